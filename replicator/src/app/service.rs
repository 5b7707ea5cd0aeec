//! The service's engine across the scheduler's turns: assembled from the
//! configuration in force once the servers answer, watched by the monitor,
//! assembled anew after a reload; a start that fails is recorded and tried
//! again with a growing pause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use crate::config::Config;
use crate::monitoring::Monitor;
use crate::replication::{
    watched_mailboxes, ChangeFeed, Counters, CycleObserver as _, CycleOptions, CycleReport,
    FeedRecord, FeedStatus, MailboxChange, Refresh, StateStore, WriterLock,
};

use super::{assemble_observed, record_could_not_run, AssembleError, ConfiguredEngine};

/// The first wait after a failed start; it doubles up to
/// `min(interval, 5 minutes)`.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Why there is no engine for this turn.
#[derive(Debug)]
pub enum NotStarted {
    /// Shutdown was asked for while connecting.
    Stopped,
    /// A server could not be used; the next try is due after `retry_in`.
    Failed {
        error: AssembleError,
        retry_in: Duration,
    },
}

/// The configuration in force, the engine once the servers answered, and
/// the monitor that observes every engine built. The monitor holds the
/// replication interval in force (its health check and the scheduler read
/// the same value).
pub struct ServiceEngine<S> {
    config: Config,
    state: S,
    monitor: Arc<Monitor>,
    engine: Option<Arc<ConfiguredEngine<S>>>,
    retry_delay: Duration,
    /// What the push loop reads: the engine and change feed in force.
    push: ServicePush<S>,
    /// Every feed built sends its changes here, for the one push loop.
    changes: UnboundedSender<MailboxChange>,
    changes_rx: Option<UnboundedReceiver<MailboxChange>>,
    writer: WriterLock,
}

/// The engine and the change feed in force, shared with the push loop: it
/// outlives each engine (a reload or reconnect builds new ones).
pub struct ServicePush<S> {
    current: Arc<Mutex<Current<S>>>,
}

impl<S> Clone for ServicePush<S> {
    fn clone(&self) -> Self {
        ServicePush {
            current: self.current.clone(),
        }
    }
}

struct Current<S> {
    engine: Option<Arc<ConfiguredEngine<S>>>,
    feed: Option<Arc<dyn ChangeFeed>>,
}

impl<S> ServicePush<S> {
    fn engine(&self) -> Option<Arc<ConfiguredEngine<S>>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .engine
            .clone()
    }

    fn feed(&self) -> Option<Arc<dyn ChangeFeed>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed
            .clone()
    }

    fn set(&self, engine: Option<Arc<ConfiguredEngine<S>>>, feed: Option<Arc<dyn ChangeFeed>>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current { engine, feed };
    }
}

impl<S: StateStore> Refresh for ServicePush<S> {
    fn debounce(&self) -> Duration {
        self.engine().map_or(
            crate::replication::ReplicationSettings::default().push_debounce,
            |e| e.settings().push_debounce,
        )
    }

    async fn refresh(&self, mailboxes: &[String], options: &CycleOptions) -> CycleReport {
        match self.engine() {
            Some(engine) => {
                engine
                    .refresh_mailboxes(Utc::now(), mailboxes, options)
                    .await
            }
            // Between a reload and the next turn: the cycle reads them.
            None => {
                let now = Utc::now();
                CycleReport {
                    started_at: now,
                    finished_at: now,
                    window_start: now,
                    window_end: now,
                    dry_run: false,
                    partial: true,
                    counters: Counters::default(),
                    durations: Default::default(),
                    overran: false,
                    abandoned: false,
                    error: Some("no engine is running (reconnecting or reloading); the next cycle reads these mailboxes".to_owned()),
                    warnings: Vec::new(),
                    users: Vec::new(),
                }
            }
        }
    }

    fn change_received(&self, change: &MailboxChange) {
        if let Some(engine) = self.engine() {
            engine.change_received(change);
        }
    }

    fn record_feed(&self, record: &FeedRecord) {
        if let Some(engine) = self.engine() {
            engine.record_feed(record);
        }
    }
}

impl<S: Send + Sync> ChangeFeed for ServicePush<S> {
    fn watch(&self, mailboxes: &[String]) {
        if let Some(feed) = self.feed() {
            feed.watch(mailboxes);
        }
    }

    fn status(&self) -> FeedStatus {
        self.feed().map(|f| f.status()).unwrap_or_default()
    }
}

impl<S: StateStore + Clone> ServiceEngine<S> {
    /// Nothing connects until the first [`engine`](Self::engine).
    pub fn new(config: Config, state: S) -> ServiceEngine<S> {
        let monitor = Arc::new(Monitor::new(config.replication.interval));
        let (changes, changes_rx) = mpsc::unbounded_channel();
        ServiceEngine {
            config,
            state,
            monitor,
            engine: None,
            retry_delay: FIRST_RETRY,
            push: ServicePush {
                current: Arc::new(Mutex::new(Current {
                    engine: None,
                    feed: None,
                })),
            },
            changes,
            changes_rx: Some(changes_rx),
            writer: WriterLock::new(),
        }
    }

    /// For the push loop: the changes of every feed this service builds
    /// (`None` after the first call).
    pub fn take_changes(&mut self) -> Option<UnboundedReceiver<MailboxChange>> {
        self.changes_rx.take()
    }

    /// For the push loop: the engine and feed in force, whichever they are.
    pub fn push(&self) -> ServicePush<S> {
        self.push.clone()
    }

    /// Held by each cycle and each push refresh: one writer at a time.
    pub fn writer(&self) -> &WriterLock {
        &self.writer
    }

    /// After a full cycle: the feed watches the mailboxes it replicated.
    pub fn cycle_finished(&self, report: &CycleReport) {
        if let (Some(feed), Some(mailboxes)) = (self.push.feed(), watched_mailboxes(report)) {
            feed.watch(&mailboxes);
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the monitoring endpoints serve.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// From one cycle's start to the next.
    pub fn interval(&self) -> Duration {
        self.monitor.interval()
    }

    /// `config` (reloaded) is in force from now on: the engine is assembled
    /// anew from it on the next turn, at once.
    pub fn reconfigure(&mut self, config: Config) {
        self.monitor.set_interval(config.replication.interval);
        self.config = config;
        self.engine = None;
        // The old feed's connections close; its subscriptions expire at
        // Exchange on their own.
        self.push.set(None, None);
        self.monitor
            .watch_feed(Arc::new(super::notifications::PolledOnly::new(
                "the configuration was reloaded; notifications resume with the next cycle",
            )));
        self.retry_delay = FIRST_RETRY;
    }

    /// The engine, assembled first when there is none: a server that is
    /// down is recorded (state, monitor, log) and tried again later, so the
    /// service comes up by itself once it is back.
    pub async fn engine(
        &mut self,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<&ConfiguredEngine<S>, NotStarted> {
        if self.engine.is_none() {
            let mut stop = shutdown.clone();
            let assembled = tokio::select! {
                assembled = assemble_observed(&self.config, self.state.clone(), &self.monitor) => assembled,
                _ = stop.wait_for(|stop| *stop) => return Err(NotStarted::Stopped),
            };
            match assembled {
                Ok(engine) => {
                    let engine = Arc::new(engine);
                    let feed = super::notifications::feed_for(
                        engine.calendars().settings(),
                        engine.calendars(),
                        self.changes.clone(),
                    );
                    // Always replaced: the monitor must not keep an older
                    // feed (and its connections) alive after a reload. With
                    // notifications off it shows every mailbox polled, and why.
                    self.monitor.watch_feed(feed.clone());
                    self.push.set(Some(engine.clone()), Some(feed));
                    self.engine = Some(engine);
                    self.retry_delay = FIRST_RETRY;
                }
                Err(error) => {
                    let delay = self.retry_delay;
                    tracing::error!("cannot start replicating: {error}; trying again in {delay:?}");
                    self.monitor
                        .server_unreachable(error.server(), &error.to_string());
                    record_could_not_run(&self.state, &error);
                    self.retry_delay =
                        (delay * 2).min(self.interval().min(Duration::from_secs(300)));
                    return Err(NotStarted::Failed {
                        error,
                        retry_in: delay,
                    });
                }
            }
        }
        Ok(self.engine.as_deref().expect("assembled above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, LoadContext};
    use crate::monitoring::ServerState;
    use crate::replication::Server;
    use crate::state::MemoryStateStore;

    /// A configuration whose UCServer refuses connections (a port just
    /// released) and whose directory is a one-user static list.
    fn unreachable_ucserver(dir: &std::path::Path, interval_minutes: u64) -> Config {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("users.toml"),
            "[[user]]\nsam_account_name = \"alice\"\nsmtp = \"alice@example.com\"\n",
        )
        .unwrap();
        let text = format!(
            "[ucserver]\nurl = \"http://127.0.0.1:{closed}\"\nallow_plain_http = true\n\
             username = \"Administrator\"\npassword = \"uc-secret\"\n\
             [directory]\nkind = \"static\"\nfile = \"users.toml\"\n\
             [exchange]\nurl = \"https://127.0.0.1/EWS/Exchange.asmx\"\nusername = 'CORP\\svc'\npassword = \"ews-secret\"\n\
             [replication]\ninterval_minutes = {interval_minutes}\n\
             [state]\npath = \"state.sqlite\"\n"
        );
        config::parse(
            &text,
            &dir.join("config.toml"),
            &LoadContext::with_vars([("HOME", "/nonexistent")]),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_failed_start_is_recorded_and_retried_later_and_a_reload_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(MemoryStateStore::new());
        let mut service = ServiceEngine::new(unreachable_ucserver(dir.path(), 15), state.clone());
        let (_stop, shutdown) = watch::channel(false);

        let mut waits = Vec::new();
        for _ in 0..3 {
            match service.engine(&shutdown).await {
                Err(NotStarted::Failed { error, retry_in }) => {
                    assert_eq!(error.server(), Server::UcServer, "{error}");
                    waits.push(retry_in);
                }
                other => panic!("expected a failed start, got {:?}", other.err()),
            }
        }
        assert_eq!(
            waits,
            [FIRST_RETRY, FIRST_RETRY * 2, FIRST_RETRY * 4],
            "the pause doubles"
        );
        let recorded = state.recent_cycles(10).unwrap();
        assert_eq!(recorded.len(), 3, "every failed start is in the state");
        assert!(
            recorded[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("could not connect to the UCServer")),
            "{:?}",
            recorded[0].error
        );
        let servers = service.monitor().snapshot().servers;
        assert!(
            servers
                .iter()
                .any(|(s, st)| *s == Server::UcServer
                    && matches!(st, ServerState::Unreachable { .. })),
            "{servers:?}"
        );

        // One holder of the interval: what the scheduler reads is what the
        // health check reads, before and after a reload.
        assert_eq!(service.interval(), Duration::from_secs(15 * 60));
        service.reconfigure(unreachable_ucserver(dir.path(), 1));
        assert_eq!(service.interval(), Duration::from_secs(60));
        assert_eq!(service.monitor().snapshot().interval, service.interval());
        match service.engine(&shutdown).await {
            Err(NotStarted::Failed { retry_in, .. }) => {
                assert_eq!(retry_in, FIRST_RETRY, "a reload starts the pauses afresh")
            }
            other => panic!("expected a failed start, got {:?}", other.err()),
        }
    }
}
