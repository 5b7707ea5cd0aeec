//! What the service is doing, as the engine and the Exchange reader report
//! it: the metrics, the last cycles, each server's state, the failing users,
//! and from these the health verdict. Holds no appointment: a cycle's report
//! is reduced to counts, user names and failure reasons as it arrives.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::replication::{
    ChangeFeed, CycleObserver, CycleReport, FeedStatus, MailboxChange, Server, UserOutcome,
};
use ews_toolkit::resilience::RequestObserver;

use super::metrics::{cycle_outcome, Metrics};

/// Cycles the status page lists.
pub const RECENT_CYCLES: usize = 10;

/// A server as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Not contacted yet.
    Unknown,
    Reachable {
        since: DateTime<Utc>,
    },
    Unreachable {
        since: DateTime<Utc>,
        reason: String,
    },
}

/// One finished cycle, without its users' lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleSummary {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// success, partial, failed, abandoned.
    pub outcome: &'static str,
    pub listed: usize,
    pub written: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
    pub error: Option<String>,
}

/// Users that failed for the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureGroup {
    /// The reason with each user's own name and mailbox left out.
    pub reason: String,
    pub users: Vec<String>,
}

/// What the push loop did since the start (change events and the
/// refreshes they caused; see `replication::push`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushCounts {
    /// Change events received (before de-duplication).
    pub changes: u64,
    /// Of these, resyncs (events may have been missed: read in full).
    pub resyncs: u64,
    pub refreshes: u64,
    /// Refreshes that failed as a whole (left to the next cycle).
    pub failed_refreshes: u64,
    /// Lists the refreshes wrote.
    pub written: u64,
    pub last_refresh_at: Option<DateTime<Utc>>,
}

/// A copy of the state at one moment, for the page.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: &'static str,
    pub started_at: DateTime<Utc>,
    pub interval: Duration,
    /// Since when a cycle is running.
    pub cycle_running_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Newest first.
    pub cycles: Vec<CycleSummary>,
    pub servers: Vec<(Server, ServerState)>,
    /// Of the last cycle that read the users; largest group first.
    pub failing: Vec<FailureGroup>,
    pub health: Result<String, String>,
    /// The change feed's status; `None` when the service runs without one
    /// (notifications off): every calendar is read by the cycle.
    pub feed: Option<FeedStatus>,
    pub push: PushCounts,
}

#[derive(Debug)]
struct State {
    cycle_running_since: Option<DateTime<Utc>>,
    last_finished: Option<Instant>,
    last_success_at: Option<DateTime<Utc>>,
    cycles: VecDeque<CycleSummary>,
    servers: BTreeMap<Server, ServerState>,
    failing: Vec<FailureGroup>,
    push: PushCounts,
}

/// The service's monitor: an observer of the engine and of the Exchange
/// reader, read by the HTTP endpoints.
pub struct Monitor {
    /// The replication interval in force (a SIGHUP reload may change it);
    /// its only holder in the service.
    interval: Mutex<Duration>,
    started: Instant,
    started_at: DateTime<Utc>,
    metrics: Metrics,
    state: Mutex<State>,
    feed: Mutex<Option<Arc<dyn ChangeFeed>>>,
}

impl Monitor {
    /// `interval`: the replication interval (the health check allows two).
    pub fn new(interval: Duration) -> Monitor {
        Monitor {
            interval: Mutex::new(interval),
            started: Instant::now(),
            started_at: Utc::now(),
            metrics: Metrics::new(),
            state: Mutex::new(State {
                cycle_running_since: None,
                last_finished: None,
                last_success_at: None,
                cycles: VecDeque::new(),
                servers: Server::ALL
                    .into_iter()
                    .map(|s| (s, ServerState::Unknown))
                    .collect(),
                failing: Vec::new(),
                push: PushCounts::default(),
            }),
            feed: Mutex::new(None),
        }
    }

    /// The change feed whose status the page and the metrics show (the
    /// composition root sets it when notifications are on; a feed set
    /// again replaces the one before).
    pub fn watch_feed(&self, feed: Arc<dyn ChangeFeed>) {
        *self.feed.lock().unwrap_or_else(|e| e.into_inner()) = Some(feed);
    }

    /// The feed's status now; `None` without a feed.
    pub fn feed_status(&self) -> Option<FeedStatus> {
        let feed = self.feed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        feed.map(|feed| feed.status())
    }

    /// A reloaded configuration's interval: the health check and the
    /// scheduler (through [`interval`](Self::interval)) follow it.
    pub fn set_interval(&self, interval: Duration) {
        *self.interval.lock().unwrap_or_else(|e| e.into_inner()) = interval;
    }

    /// The replication interval in force: the one value the service's
    /// scheduler and the health check both read.
    pub fn interval(&self) -> Duration {
        *self.interval.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // update is a single assignment or push.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `/metrics`.
    pub fn encode_metrics(&self) -> String {
        // The feed's gauges are read when asked for, not pushed: the feed
        // changes them from its own tasks.
        if let Some(feed) = self.feed_status() {
            self.metrics.feed(&feed);
        }
        self.metrics.encode()
    }

    /// `Ok(text)` when healthy, `Err(reason)` otherwise (`/healthz`).
    pub fn health(&self) -> Result<String, String> {
        self.health_at(Instant::now())
    }

    /// Healthy while the last cycle finished (or, before the first, the
    /// service started) at most two intervals before `now` and no server
    /// is known to be unreachable.
    pub fn health_at(&self, now: Instant) -> Result<String, String> {
        let state = self.state();
        let since = state.last_finished.unwrap_or(self.started);
        let age = now.saturating_duration_since(since);
        let limit = self.interval() * 2;
        let mut problems = Vec::new();
        if age > limit {
            problems.push(match state.last_finished {
                Some(_) => format!(
                    "no cycle has finished for {} s, more than two intervals ({} s); see the log for a hung or failing cycle",
                    age.as_secs(),
                    limit.as_secs()
                ),
                None => format!(
                    "no cycle has finished in the {} s since the start, more than two intervals ({} s); see the log",
                    age.as_secs(),
                    limit.as_secs()
                ),
            });
        }
        for (server, server_state) in &state.servers {
            if let ServerState::Unreachable { since, reason } = server_state {
                problems.push(format!(
                    "the {} cannot be used since {}: {reason}",
                    server.display_name(),
                    since.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
        }
        if problems.is_empty() {
            Ok(match state.last_finished {
                Some(_) => format!("ok: the last cycle finished {} s ago", age.as_secs()),
                None => "ok: started, no cycle finished yet".to_owned(),
            })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The state for the page.
    pub fn snapshot(&self) -> Snapshot {
        let health = self.health();
        let feed = self.feed_status();
        let state = self.state();
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at,
            interval: self.interval(),
            cycle_running_since: state.cycle_running_since,
            last_success_at: state.last_success_at,
            cycles: state.cycles.iter().cloned().collect(),
            servers: state
                .servers
                .iter()
                .map(|(s, st)| (*s, st.clone()))
                .collect(),
            failing: state.failing.clone(),
            health,
            feed,
            push: state.push.clone(),
        }
    }

    fn set_server(&self, server: Server, up: Result<(), &str>) {
        self.metrics.server(server, up.is_ok());
        let now = Utc::now();
        let mut state = self.state();
        let entry = state.servers.entry(server).or_insert(ServerState::Unknown);
        *entry = match (up, &*entry) {
            (Ok(()), ServerState::Reachable { since }) => ServerState::Reachable { since: *since },
            (Ok(()), _) => ServerState::Reachable { since: now },
            (Err(reason), ServerState::Unreachable { since, .. }) => ServerState::Unreachable {
                since: *since,
                reason: reason.to_owned(),
            },
            (Err(reason), _) => ServerState::Unreachable {
                since: now,
                reason: reason.to_owned(),
            },
        };
    }
}

/// The failures of a cycle grouped by reason; each user's own name and
/// mailbox are cut out of the reason so that the same cause groups.
fn group_failures(report: &CycleReport) -> Vec<FailureGroup> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for user in &report.users {
        if let UserOutcome::Failed { reason } = &user.outcome {
            let mut general = reason.clone();
            if let Some(mailbox) = user.mailbox.as_deref().filter(|m| !m.is_empty()) {
                general = general.replace(mailbox, "<mailbox>");
            }
            groups
                .entry(general)
                .or_default()
                .push(user.user_name.clone());
        }
    }
    let mut groups: Vec<FailureGroup> = groups
        .into_iter()
        .map(|(reason, users)| FailureGroup { reason, users })
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.users.len()));
    groups
}

impl CycleObserver for Monitor {
    fn cycle_started(&self, started_at: DateTime<Utc>) {
        self.state().cycle_running_since = Some(started_at);
    }

    fn server_reached(&self, server: Server) {
        self.set_server(server, Ok(()));
    }

    fn server_unreachable(&self, server: Server, reason: &str) {
        self.set_server(server, Err(reason));
    }

    fn ucserver_write(&self, accepted: bool) {
        self.metrics.ucserver_write(accepted);
    }

    fn cycle_finished(&self, report: &CycleReport) {
        let outcome = cycle_outcome(report);
        self.metrics.cycle(report, outcome);
        let ran_to_its_end = report.error.is_none() && !report.abandoned;
        if ran_to_its_end {
            self.metrics.successful_cycle(report.finished_at);
        }
        let c = &report.counters;
        let summary = CycleSummary {
            started_at: report.started_at,
            duration: Duration::from_millis(report.durations.total_ms),
            outcome,
            listed: c.listed,
            written: c.written,
            unchanged: c.unchanged,
            skipped: c.skipped,
            failed: c.failed,
            error: report.error.clone(),
        };
        let failing = ran_to_its_end.then(|| group_failures(report));
        let mut state = self.state();
        state.cycle_running_since = None;
        state.last_finished = Some(Instant::now());
        if ran_to_its_end {
            state.last_success_at = Some(report.finished_at);
        }
        if let Some(failing) = failing {
            state.failing = failing;
        }
        state.cycles.push_front(summary);
        state.cycles.truncate(RECENT_CYCLES);
    }

    fn change_received(&self, change: &MailboxChange) {
        let resync = matches!(change, MailboxChange::Resync { .. });
        self.metrics.push_change(resync);
        let mut state = self.state();
        state.push.changes += 1;
        if resync {
            state.push.resyncs += 1;
        }
    }

    fn push_refresh_finished(&self, report: &CycleReport) {
        self.metrics.push_refresh(report);
        let mut state = self.state();
        state.push.refreshes += 1;
        if report.error.is_some() {
            state.push.failed_refreshes += 1;
        }
        state.push.written += report.counters.written as u64;
        state.push.last_refresh_at = Some(report.finished_at);
    }
}

impl RequestObserver for Monitor {
    fn request_sent(&self) {
        self.metrics.exchange_request();
    }

    fn busy_answer(&self) {
        self.metrics.exchange_busy_answer();
    }

    fn retry(&self) {
        self.metrics.exchange_retry();
    }

    fn backed_off(&self, pause: Duration) {
        self.metrics.exchange_back_off(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{Counters, Durations, UserReport};

    fn report(users: Vec<UserReport>, error: Option<&str>) -> CycleReport {
        let now = Utc::now();
        let failed = users
            .iter()
            .filter(|u| matches!(u.outcome, UserOutcome::Failed { .. }))
            .count();
        CycleReport {
            started_at: now,
            finished_at: now,
            window_start: now,
            window_end: now,
            dry_run: false,
            partial: false,
            counters: Counters {
                failed,
                ..Counters::default()
            },
            durations: Durations::default(),
            overran: false,
            abandoned: false,
            error: error.map(str::to_owned),
            warnings: Vec::new(),
            users,
        }
    }

    fn failed(name: &str, reason: &str) -> UserReport {
        UserReport {
            user_name: name.to_owned(),
            mailbox: Some(format!("{name}@example.com")),
            matched_by: None,
            outcome: UserOutcome::Failed {
                reason: reason.to_owned(),
            },
            appointment_count: None,
            appointments: None,
        }
    }

    struct StaticFeed(FeedStatus);

    impl ChangeFeed for StaticFeed {
        fn watch(&self, _mailboxes: &[String]) {}
        fn status(&self) -> FeedStatus {
            self.0.clone()
        }
    }

    #[test]
    fn the_feed_and_the_push_refreshes_reach_the_page_and_the_metrics() {
        let monitor = Monitor::new(Duration::from_secs(900));
        let page = super::super::page::render(&monitor.snapshot());
        assert!(page.contains("Off: every calendar is read by the periodic cycle only"));
        let last_event = Utc::now();
        monitor.watch_feed(Arc::new(StaticFeed(FeedStatus {
            subscribed: 41,
            polled: vec![
                ("x@example.com".into(), "access denied <no rights>".into()),
                ("y@example.com".into(), "access denied <no rights>".into()),
            ],
            connections: 3,
            last_event_at: Some(last_event),
            resubscribed: 2,
        })));
        monitor.change_received(&MailboxChange::Changed {
            mailbox: "a@example.com".into(),
        });
        monitor.change_received(&MailboxChange::Resync {
            mailbox: "b@example.com".into(),
        });
        let mut refreshed = report(Vec::new(), None);
        refreshed.counters.written = 2;
        monitor.push_refresh_finished(&refreshed);
        let snapshot = monitor.snapshot();
        assert_eq!(snapshot.feed.as_ref().unwrap().subscribed, 41);
        assert_eq!(
            snapshot.push,
            PushCounts {
                changes: 2,
                resyncs: 1,
                refreshes: 1,
                failed_refreshes: 0,
                written: 2,
                last_refresh_at: Some(refreshed.finished_at),
            }
        );
        assert!(snapshot.cycles.is_empty(), "a refresh is not a cycle");
        let page = super::super::page::render(&snapshot);
        assert!(page.contains("<th>subscribed mailboxes</th><td class=\"num\">41</td>"));
        assert!(
            page.contains("2 polled: access denied &lt;no rights&gt;"),
            "{page}"
        );
        let metrics = monitor.encode_metrics();
        for line in [
            "ews_replicator_feed_subscribed_mailboxes 41",
            "ews_replicator_feed_polled_mailboxes 2",
            "ews_replicator_feed_connections 3",
            "ews_replicator_push_changes_total{kind=\"resync\"} 1",
            "ews_replicator_push_refreshes_total{outcome=\"success\"} 1",
            "ews_replicator_push_users_total{result=\"written\"} 2",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    }

    #[test]
    fn healthy_within_two_intervals_of_the_last_cycle_and_not_after() {
        let interval = Duration::from_secs(60);
        let monitor = Monitor::new(interval);
        let start = monitor.started;
        assert!(monitor.health_at(start).is_ok(), "just started");
        let err = monitor
            .health_at(start + interval * 2 + Duration::from_secs(1))
            .unwrap_err();
        assert!(
            err.contains("no cycle has finished in the 121 s since the start"),
            "{err}"
        );
        monitor.cycle_finished(&report(Vec::new(), None));
        let finished = monitor.state().last_finished.unwrap();
        assert!(monitor.health_at(finished + interval * 2).is_ok());
        let err = monitor
            .health_at(finished + interval * 2 + Duration::from_secs(1))
            .unwrap_err();
        assert!(err.contains("no cycle has finished for 121 s"), "{err}");
    }

    #[test]
    fn an_unreachable_server_is_unhealthy_until_it_answers_again() {
        let monitor = Monitor::new(Duration::from_secs(900));
        monitor.server_unreachable(Server::Directory, "connection refused");
        let err = monitor.health().unwrap_err();
        assert!(
            err.starts_with("the directory cannot be used since"),
            "{err}"
        );
        assert!(err.ends_with(": connection refused"), "{err}");
        monitor.server_reached(Server::Directory);
        assert!(monitor.health().is_ok());
    }

    #[test]
    fn failures_group_by_reason_without_the_users_own_mailbox() {
        let monitor = Monitor::new(Duration::from_secs(900));
        monitor.cycle_finished(&report(
            vec![
                failed(
                    "a",
                    "Exchange could not read the mailbox a@example.com (gone)",
                ),
                failed(
                    "b",
                    "Exchange could not read the mailbox b@example.com (gone)",
                ),
                failed("c", "the UCServer did not accept the list"),
            ],
            None,
        ));
        let failing = monitor.snapshot().failing;
        assert_eq!(failing.len(), 2);
        assert_eq!(failing[0].users, ["a", "b"]);
        assert_eq!(
            failing[0].reason,
            "Exchange could not read the mailbox <mailbox> (gone)"
        );
        assert_eq!(failing[1].users, ["c"]);
        // A cycle that could not run keeps the last known failures.
        monitor.cycle_finished(&report(
            Vec::new(),
            Some("the UCServer did not list its users"),
        ));
        assert_eq!(monitor.snapshot().failing.len(), 2);
    }
}
