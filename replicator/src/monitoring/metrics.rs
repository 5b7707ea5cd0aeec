//! The Prometheus metrics (`prometheus-client`, OpenMetrics text format).
//! Names start with `ews_replicator_`; the README lists them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::replication::{CycleReport, FeedStatus, Server};
use ews_toolkit::transport::TransportStats;

/// Where the Exchange transport's counters are read from when `/metrics`
/// is asked for (`None` before the first connection).
pub type TransportStatsSource = Box<dyn Fn() -> Option<TransportStats> + Send + Sync>;

/// `mechanism`: kerberos, ntlm.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MechanismLabel {
    mechanism: &'static str,
}

/// `outcome`: success, partial, failed, abandoned.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// `result`: written, unchanged, skipped, failed (users); accepted, failed
/// (UCServer writes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `kind`: changed (an event), resync (events may have been missed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Cycle durations: a cycle takes seconds to minutes.
const DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Every metric the service exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    cycles: Family<OutcomeLabel, Counter>,
    cycle_duration: Histogram,
    last_cycle_users: Family<ResultLabel, Gauge>,
    users: Family<ResultLabel, Counter>,
    exchange_requests: Counter,
    exchange_busy_answers: Counter,
    exchange_retries: Counter,
    exchange_back_off: Counter<f64, AtomicU64>,
    ucserver_writes: Family<ResultLabel, Counter>,
    server_up: Family<ServerLabel, Gauge>,
    last_success: Gauge<f64, AtomicU64>,
    push_changes: Family<KindLabel, Counter>,
    push_refreshes: Family<OutcomeLabel, Counter>,
    push_users: Family<ResultLabel, Counter>,
    feed_subscribed: Gauge,
    feed_polled: Gauge,
    feed_connections: Gauge,
    feed_last_event: Gauge<f64, AtomicU64>,
    feed_resubscribed: Gauge,
    auth_handshakes: Family<MechanismLabel, Counter>,
    ntlm_fallbacks: Counter,
    /// The transport watched, and its counters as last added.
    transport: std::sync::Mutex<Option<(TransportStatsSource, TransportStats)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ews_replicator");
        let metrics = Metrics {
            cycles: Family::default(),
            cycle_duration: Histogram::new(DURATION_BUCKETS),
            last_cycle_users: Family::default(),
            users: Family::default(),
            exchange_requests: Counter::default(),
            exchange_busy_answers: Counter::default(),
            exchange_retries: Counter::default(),
            exchange_back_off: Counter::default(),
            ucserver_writes: Family::default(),
            server_up: Family::default(),
            last_success: Gauge::default(),
            push_changes: Family::default(),
            push_refreshes: Family::default(),
            push_users: Family::default(),
            feed_subscribed: Gauge::default(),
            feed_polled: Gauge::default(),
            feed_connections: Gauge::default(),
            feed_last_event: Gauge::default(),
            feed_resubscribed: Gauge::default(),
            auth_handshakes: Family::default(),
            ntlm_fallbacks: Counter::default(),
            transport: std::sync::Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The running version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        registry.register(
            "cycles",
            "Replication cycles by outcome: success (every user replicated or skipped by rule), partial (some users failed), failed (a server could not be used, nothing written), abandoned (stopped by shutdown)",
            metrics.cycles.clone(),
        );
        registry.register_with_unit(
            "cycle_duration",
            "How long replication cycles took",
            Unit::Seconds,
            metrics.cycle_duration.clone(),
        );
        registry.register(
            "last_cycle_users",
            "Users of the last cycle by result (written, unchanged, skipped, failed)",
            metrics.last_cycle_users.clone(),
        );
        registry.register(
            "users",
            "Users handled by all cycles, by result (written, unchanged, skipped, failed)",
            metrics.users.clone(),
        );
        registry.register(
            "exchange_requests",
            "GetUserAvailability requests sent to Exchange (retries included)",
            metrics.exchange_requests.clone(),
        );
        registry.register(
            "exchange_busy_answers",
            "Busy answers from Exchange (ErrorServerBusy, HTTP 503)",
            metrics.exchange_busy_answers.clone(),
        );
        registry.register(
            "exchange_retries",
            "Exchange requests sent again (after busy answers, connection limits, timeouts)",
            metrics.exchange_retries.clone(),
        );
        registry.register_with_unit(
            "exchange_back_off",
            "Time spent pausing because Exchange was busy or counted too many connections",
            Unit::Seconds,
            metrics.exchange_back_off.clone(),
        );
        registry.register(
            "ucserver_writes",
            "Appointment lists sent to the UCServer, by result (accepted, failed)",
            metrics.ucserver_writes.clone(),
        );
        registry.register(
            "server_up",
            "1 when the server answered at the last attempt, 0 when it could not be used (ucserver, directory, exchange); absent before the first attempt",
            metrics.server_up.clone(),
        );
        registry.register_with_unit(
            "last_successful_cycle_timestamp",
            "When the last cycle that ran to its end finished (Unix time); 0 before the first",
            Unit::Seconds,
            metrics.last_success.clone(),
        );
        registry.register(
            "push_changes",
            "Change events from Exchange's streaming notifications, by kind: changed (an event for a calendar), resync (events may have been missed; the mailbox is read in full)",
            metrics.push_changes.clone(),
        );
        registry.register(
            "push_refreshes",
            "Reads of changed mailboxes between cycles (up to 100 mailboxes each), by outcome: success, partial (some users failed), failed (a server could not be used, left to the next cycle), abandoned",
            metrics.push_refreshes.clone(),
        );
        registry.register(
            "push_users",
            "Users handled by push refreshes, by result (written, unchanged, failed)",
            metrics.push_users.clone(),
        );
        registry.register(
            "feed_subscribed_mailboxes",
            "Mailboxes with a live streaming subscription (changes arrive within seconds)",
            metrics.feed_subscribed.clone(),
        );
        registry.register(
            "feed_polled_mailboxes",
            "Mailboxes read by the periodic cycle only (access denied, subscription limit; see the status page for the reasons)",
            metrics.feed_polled.clone(),
        );
        registry.register(
            "feed_connections",
            "Event connections (GetStreamingEvents) held open to Exchange",
            metrics.feed_connections.clone(),
        );
        registry.register_with_unit(
            "feed_last_event_timestamp",
            "When the last change event arrived (Unix time; keep-alives do not count); 0 before the first",
            Unit::Seconds,
            metrics.feed_last_event.clone(),
        );
        registry.register(
            "feed_resubscribed",
            "Subscriptions lost and made again since the start (expired, server restart, dropped connection)",
            metrics.feed_resubscribed.clone(),
        );
        registry.register(
            "auth_handshakes",
            "Handshakes with Exchange by mechanism: kerberos (accepted, the server's token verified), ntlm (completed, accepted or not; fallbacks included)",
            metrics.auth_handshakes.clone(),
        );
        registry.register(
            "ntlm_fallbacks",
            "NTLM handshakes under auth = \"negotiate\" because Kerberos could not start (the log and check say why)",
            metrics.ntlm_fallbacks.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Reads the Exchange transport's counters from `source` from now on
    /// (a new engine after a reload brings a new transport, counting from 0).
    pub fn watch_transport(&self, source: TransportStatsSource) {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((source, TransportStats::default()));
    }

    /// Adds what the watched transport counted since the last read: the
    /// counters here keep rising across reloads.
    fn read_transport(&self) {
        let mut watched = self.transport.lock().unwrap_or_else(|e| e.into_inner());
        let Some((source, seen)) = watched.as_mut() else {
            return;
        };
        let Some(now) = source() else {
            return;
        };
        let added = |now: u64, before: u64| now.saturating_sub(before);
        self.auth_handshakes
            .get_or_create(&MechanismLabel {
                mechanism: "kerberos",
            })
            .inc_by(added(now.kerberos_handshakes, seen.kerberos_handshakes));
        self.auth_handshakes
            .get_or_create(&MechanismLabel { mechanism: "ntlm" })
            .inc_by(added(now.ntlm_handshakes, seen.ntlm_handshakes));
        self.ntlm_fallbacks
            .inc_by(added(now.ntlm_fallbacks, seen.ntlm_fallbacks));
        *seen = now;
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        self.read_transport();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn exchange_request(&self) {
        self.exchange_requests.inc();
    }

    pub fn exchange_busy_answer(&self) {
        self.exchange_busy_answers.inc();
    }

    pub fn exchange_retry(&self) {
        self.exchange_retries.inc();
    }

    pub fn exchange_back_off(&self, pause: Duration) {
        self.exchange_back_off.inc_by(pause.as_secs_f64());
    }

    pub fn ucserver_write(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "failed" };
        self.ucserver_writes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn server(&self, server: Server, up: bool) {
        self.server_up
            .get_or_create(&ServerLabel {
                server: server.label(),
            })
            .set(i64::from(up));
    }

    /// A finished cycle with its `outcome` (see [`cycle_outcome`]).
    pub fn cycle(&self, report: &CycleReport, outcome: &'static str) {
        self.cycles.get_or_create(&OutcomeLabel { outcome }).inc();
        self.cycle_duration
            .observe(report.durations.total_ms as f64 / 1000.0);
        let c = &report.counters;
        for (result, count) in [
            ("written", c.written),
            ("unchanged", c.unchanged),
            ("skipped", c.skipped),
            ("failed", c.failed),
        ] {
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            self.last_cycle_users
                .get_or_create(&ResultLabel { result })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            self.users
                .get_or_create(&ResultLabel { result })
                .inc_by(count);
        }
    }

    /// A change event; `resync`: events may have been missed.
    pub fn push_change(&self, resync: bool) {
        let kind = if resync { "resync" } else { "changed" };
        self.push_changes.get_or_create(&KindLabel { kind }).inc();
    }

    /// A finished push refresh.
    pub fn push_refresh(&self, report: &CycleReport) {
        self.push_refreshes
            .get_or_create(&OutcomeLabel {
                outcome: cycle_outcome(report),
            })
            .inc();
        let c = &report.counters;
        for (result, count) in [
            ("written", c.written),
            ("unchanged", c.unchanged),
            ("failed", c.failed),
        ] {
            self.push_users
                .get_or_create(&ResultLabel { result })
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// The change feed's status now.
    pub fn feed(&self, feed: &FeedStatus) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.feed_subscribed.set(gauge(feed.subscribed));
        self.feed_polled.set(gauge(feed.polled.len()));
        self.feed_connections.set(gauge(feed.connections));
        self.feed_last_event.set(
            feed.last_event_at
                .map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0),
        );
        self.feed_resubscribed
            .set(i64::try_from(feed.resubscribed).unwrap_or(i64::MAX));
    }

    pub fn successful_cycle(&self, finished_at: DateTime<Utc>) {
        self.last_success
            .set(finished_at.timestamp_millis() as f64 / 1000.0);
    }
}

/// success, partial, failed or abandoned.
pub fn cycle_outcome(report: &CycleReport) -> &'static str {
    if report.error.is_some() {
        "failed"
    } else if report.abandoned {
        "abandoned"
    } else if report.counters.failed > 0 {
        "partial"
    } else {
        "success"
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn source(counts: &Arc<[AtomicU64; 3]>) -> TransportStatsSource {
        let counts = counts.clone();
        Box::new(move || {
            Some(TransportStats {
                kerberos_handshakes: counts[0].load(Ordering::Relaxed),
                ntlm_handshakes: counts[1].load(Ordering::Relaxed),
                ntlm_fallbacks: counts[2].load(Ordering::Relaxed),
                ..TransportStats::default()
            })
        })
    }

    #[test]
    fn handshakes_by_mechanism_and_fallbacks_keep_rising_across_a_new_transport() {
        let metrics = Metrics::new();
        let first = Arc::new([AtomicU64::new(3), AtomicU64::new(2), AtomicU64::new(2)]);
        metrics.watch_transport(source(&first));
        let text = metrics.encode();
        for line in [
            "ews_replicator_auth_handshakes_total{mechanism=\"kerberos\"} 3",
            "ews_replicator_auth_handshakes_total{mechanism=\"ntlm\"} 2",
            "ews_replicator_ntlm_fallbacks_total 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        first[0].store(5, Ordering::Relaxed);
        assert!(metrics
            .encode()
            .contains("ews_replicator_auth_handshakes_total{mechanism=\"kerberos\"} 5"));
        // A reload: a new transport counting from 0 adds to the totals.
        let second = Arc::new([AtomicU64::new(1), AtomicU64::new(0), AtomicU64::new(0)]);
        metrics.watch_transport(source(&second));
        let text = metrics.encode();
        assert!(
            text.contains("ews_replicator_auth_handshakes_total{mechanism=\"kerberos\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("ews_replicator_ntlm_fallbacks_total 2"),
            "{text}"
        );
    }
}
