//! The service's engine across the scheduler's turns: assembled from the
//! configuration in force once the servers answer, watched by the monitor,
//! assembled anew after a reload; a start that fails is recorded and tried
//! again with a growing pause.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::monitoring::Monitor;
use crate::replication::{CycleObserver as _, StateStore};

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
    engine: Option<ConfiguredEngine<S>>,
    retry_delay: Duration,
}

impl<S: StateStore + Clone> ServiceEngine<S> {
    /// Nothing connects until the first [`engine`](Self::engine).
    pub fn new(config: Config, state: S) -> ServiceEngine<S> {
        let monitor = Arc::new(Monitor::new(config.replication.interval));
        ServiceEngine {
            config,
            state,
            monitor,
            engine: None,
            retry_delay: FIRST_RETRY,
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
        Ok(self.engine.as_ref().expect("assembled above"))
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
