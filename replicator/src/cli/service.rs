//! `run` (the service: scheduling, systemd readiness and watchdog, SIGHUP
//! reload) and `once` (one cycle).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use ews_calendar_replicator::app::{assemble, record_could_not_run, NotStarted, ServiceEngine};
use ews_calendar_replicator::config::{self, Config, LoadContext};
use ews_calendar_replicator::logging::{self, LogFiles, LoggingSettings};
use ews_calendar_replicator::monitoring::MonitoringServer;
use ews_calendar_replicator::replication::scheduler::{
    run_turns, Beat, Heartbeat, Scheduled, Turn,
};
use ews_calendar_replicator::replication::{
    run_push, CycleOptions, CycleReport, StateStore, UserOutcome,
};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_calendar_replicator::state::SqliteStateStore;
use ews_calendar_replicator::systemd::{Notifier, Watchdog};
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::{load_config, output, progress};

#[derive(Args)]
pub struct OnceArgs {
    /// The configuration file (default as for `run`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Write nothing to the UCServer or the state; print the appointment
    /// lists that would be written.
    #[arg(long)]
    dry_run: bool,
    /// Only this UCServer user (repeat for more).
    #[arg(long = "user", value_name = "NAME")]
    users: Vec<String>,
    /// Print the cycle report as JSON.
    #[arg(long)]
    json: bool,
}

/// A watch that turns true on SIGTERM or SIGINT (Ctrl-C).
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping after the current step"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping after the current step"),
        }
        let _ = tx.send(true);
    });
    rx
}

fn init_logging(config: &Config) -> Result<LogFiles, String> {
    let files = logging::init(&config.logging).map_err(|e| format!("logging: {e}"))?;
    log_config_warnings(config);
    Ok(files)
}

fn log_config_warnings(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
}

/// A service must not run with a password every local user can read,
/// unless the configuration says so.
fn refuse_readable_secrets(config: &Config) -> Result<(), String> {
    if config.allow_readable_secrets || config.readable_secrets.is_empty() {
        return Ok(());
    }
    let found: Vec<String> = config
        .readable_secrets
        .iter()
        .map(|w| w.to_string())
        .collect();
    Err(format!(
        "{}: refusing to run: {}",
        config.file.display(),
        found.join("; ")
    ))
}

/// The service as the scheduler sees it: the engine (through the
/// composition root), a configuration reloaded by SIGHUP waiting for the
/// next turn, and what systemd is told.
struct Service<S> {
    app: ServiceEngine<S>,
    reloaded: Arc<Mutex<Option<Config>>>,
    notifier: Notifier,
    warned_load: bool,
}

impl<S: StateStore + Clone> Service<S> {
    /// A configuration reloaded since the last turn replaces the one in
    /// force; the engine is assembled anew from it.
    fn apply_reloaded(&mut self) {
        let reloaded = self
            .reloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(config) = reloaded {
            tracing::info!(
                config = %config.file.display(),
                "using the reloaded configuration from this cycle on"
            );
            self.app.reconfigure(config);
            self.warned_load = false;
        }
    }
}

impl<S: StateStore + Clone> Scheduled for Service<S> {
    fn interval(&self) -> Duration {
        self.app.interval()
    }

    async fn turn(&mut self, shutdown: &watch::Receiver<bool>) -> Turn {
        self.apply_reloaded();
        let status = |text: &str| {
            let _ = self.notifier.status(text);
        };
        let writer = self.app.writer().clone();
        let engine = match self.app.engine(shutdown).await {
            Ok(engine) => engine,
            Err(NotStarted::Stopped) => {
                return Turn::NotStarted {
                    retry_in: Duration::ZERO,
                }
            }
            Err(NotStarted::Failed { error, retry_in }) => {
                status(&error.waiting_for());
                return Turn::NotStarted { retry_in };
            }
        };
        status("replicating");
        let options = CycleOptions {
            shutdown: Some(shutdown.clone()),
            ..CycleOptions::default()
        };
        // One writer at a time: a push refresh running now finishes first.
        let writing = writer.lock().await;
        // The engine logs the cycle's summary and each failed user.
        let report = engine.run_cycle(Utc::now(), &options).await;
        drop(writing);
        // The change feed watches the mailboxes this cycle replicated.
        self.app.cycle_finished(&report);
        if !self.warned_load {
            self.warned_load = true;
            if let Some(warning) =
                config::load_warning(&self.app.config().replication, report.counters.listed)
            {
                tracing::warn!("{warning}");
            }
        }
        let finished = report.finished_at.format("%H:%M:%S");
        let c = &report.counters;
        status(&match &report.error {
            Some(error) => format!("last cycle {finished} failed: {error}"),
            None => format!(
                "last cycle {finished}: {} written, {} unchanged, {} skipped, {} failed",
                c.written, c.unchanged, c.skipped, c.failed
            ),
        });
        Turn::Ran {
            abandoned: report.abandoned,
        }
    }
}

/// The settings a reload cannot change (they take effect on restart).
struct Startup {
    logging: LoggingSettings,
    state_path: PathBuf,
}

/// What SIGHUP does: reopen the log files (logrotate renamed them) and
/// read the configuration again. A valid one waits in `reloaded` for the
/// next cycle and `retry` is poked (a service waiting for a server tries
/// again at once); an invalid one is reported and the old one stays.
fn reload(
    path: &Path,
    running: &Startup,
    log_files: &LogFiles,
    reloaded: &Mutex<Option<Config>>,
    retry: &watch::Sender<()>,
) {
    match log_files.reopen() {
        Ok(Some(file)) => tracing::info!("SIGHUP: log file {} reopened", file.display()),
        Ok(None) => {}
        Err(e) => tracing::error!(
            "SIGHUP: cannot reopen the log file ({e}); logging goes on to the file open before; make [logging] directory writable for the service user"
        ),
    }
    let config = match load_config(path).and_then(|config| {
        refuse_readable_secrets(&config)?;
        Ok(config)
    }) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(
                "SIGHUP: the configuration was not reloaded: {e}; the service goes on with the configuration it had: correct the file and reload again (systemctl reload ews-calendar-replicator)"
            );
            return;
        }
    };
    log_config_warnings(&config);
    if config.logging != running.logging {
        tracing::warn!(
            "SIGHUP: [logging] changed; log settings take effect when the service restarts (systemctl restart ews-calendar-replicator)"
        );
    }
    if config.state_path != running.state_path {
        tracing::warn!(
            "SIGHUP: [state] path changed; the state database in use stays {} until the service restarts",
            running.state_path.display()
        );
    }
    tracing::info!(
        config = %path.display(),
        interval_minutes = config.replication.interval.as_secs() / 60,
        "SIGHUP: configuration reloaded; it applies from the next cycle"
    );
    *reloaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
    let _ = retry.send(());
}

/// `run`: the service.
pub async fn run(path: &Path) -> Result<ExitCode, String> {
    // SIGHUP's default action ends the process (rc 129): take it over first.
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|e| format!("cannot listen for SIGHUP (reload): {e}"))?;
    let config = load_config(path)?;
    refuse_readable_secrets(&config)?;
    let log_files = init_logging(&config)?;
    let state = SqliteStateStore::open(&config.state_path).map_err(|e| e.to_string())?;
    let state = Arc::new(state);
    let notifier = Notifier::from_env();
    let shutdown = shutdown_on_signals();
    tracing::info!(
        config = %config.file.display(),
        interval_minutes = config.replication.interval.as_secs() / 60,
        "ews-calendar-replicator {} starting",
        env!("CARGO_PKG_VERSION")
    );

    let reloaded = Arc::new(Mutex::new(None));
    let (retry_tx, retry_rx) = watch::channel(());
    {
        let running = Startup {
            logging: config.logging.clone(),
            state_path: config.state_path.clone(),
        };
        let (path, reloaded) = (path.to_owned(), reloaded.clone());
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload(&path, &running, &log_files, &reloaded, &retry_tx);
            }
        });
    }

    // Monitoring (metrics, /healthz and the status page) starts beside the
    // scheduler, before READY=1: an address that cannot be bound fails the
    // start, naming monitoring.listen.
    let listen = config.monitoring.listen;
    let app = ServiceEngine::new(config, state);
    let _monitoring = match listen {
        Some(listen) => Some(MonitoringServer::start(listen, app.monitor().clone()).await?),
        None => None,
    };

    // Ready means running and scheduling: whether the servers answer is
    // shown in STATUS=, not by holding back READY=1 (TimeoutStartSec would
    // end a service whose UCServer is down at boot).
    let _ = notifier.status("connecting to the directory and the UCServer");
    let _ = notifier.ready();
    let heartbeat = Watchdog::from_env().map(|watchdog| {
        let notifier = notifier.clone();
        let mut reported = false;
        Heartbeat {
            every: watchdog.ping_every(),
            tick: Box::new(move |beat| match beat {
                Beat::Alive => {
                    reported = false;
                    let _ = notifier.watchdog();
                }
                Beat::Hung { running_for } if !reported => {
                    reported = true;
                    tracing::error!(
                        "the running cycle has taken {} minutes, past the limit of four intervals (at least an hour): taken as hung, the watchdog is no longer pinged and systemd restarts the service",
                        running_for.as_secs() / 60
                    );
                }
                Beat::Hung { .. } => {}
            }),
        }
    });
    let mut service = Service {
        app,
        reloaded,
        notifier: notifier.clone(),
        warned_load: false,
    };
    // The push loop beside the cycles: change events from the feed of the
    // engine in force make the changed mailboxes be read within seconds.
    let mut changes = service.app.take_changes().expect("taken once");
    let push = service.app.push();
    let writer = service.app.writer().clone();
    let pushing = run_push(
        &push,
        Some(&push),
        &mut changes,
        &writer,
        shutdown.clone(),
        |_| {},
    );
    let cycles = run_turns(&mut service, shutdown, Some(retry_rx), heartbeat);
    let (summary, pushed) = tokio::join!(cycles, pushing);
    tracing::info!(
        changes = pushed.changes,
        refreshes = pushed.refreshes,
        written = pushed.written,
        "push loop stopped"
    );
    let _ = notifier.stopping();
    tracing::info!(
        cycles = summary.cycles,
        overruns = summary.overruns,
        abandoned = summary.abandoned,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// `once`'s exit codes (documented in `once --help` and the README).
pub mod once_exit {
    /// Nothing failed (users skipped by rule, such as the UCServer's
    /// administrator or a user without a mailbox, are not failures).
    pub const OK: u8 = 0;
    /// The cycle ran, and some users failed (or were not handled because
    /// the run was interrupted).
    pub const USERS_FAILED: u8 = 1;
    /// The cycle could not run: configuration, state database, or a server
    /// (UCServer, directory) unreachable.
    pub const COULD_NOT_RUN: u8 = 2;
}

/// `once`: one cycle, exit code as [`once_exit`].
pub async fn once(args: OnceArgs) -> Result<ExitCode, String> {
    match once_or_could_not_run(args).await {
        Ok(code) => Ok(code),
        Err(message) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(once_exit::COULD_NOT_RUN))
        }
    }
}

async fn once_or_could_not_run(args: OnceArgs) -> Result<ExitCode, String> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| config::default_config_path(&LoadContext::from_process()));
    let config = load_config(&path)?;
    init_logging(&config)?;
    // A dry run reads the state (to say what would change) but never
    // creates or writes it.
    if args.dry_run && !config.state_path.exists() {
        once_with(&config, &args, std::sync::Arc::new(MemoryStateStore::new())).await
    } else {
        let state = SqliteStateStore::open(&config.state_path).map_err(|e| e.to_string())?;
        once_with(&config, &args, std::sync::Arc::new(state)).await
    }
}

async fn once_with<S: StateStore + Clone>(
    config: &Config,
    args: &OnceArgs,
    state: S,
) -> Result<ExitCode, String> {
    let engine = match assemble(config, state.clone()).await {
        Ok(engine) => engine,
        Err(e) => {
            if !args.dry_run {
                record_could_not_run(&state, &e);
            }
            return Err(e.to_string());
        }
    };
    let options = CycleOptions {
        dry_run: args.dry_run,
        only_users: args.users.clone(),
        keep_appointments: args.dry_run,
        progress: if args.json {
            None
        } else {
            progress::terminal_bar()
        },
        shutdown: Some(shutdown_on_signals()),
    };
    let report = engine.run_cycle(Utc::now(), &options).await;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        output::print_stdout(|out| writeln!(out, "{text}"))?;
    } else {
        output::print_stdout(|out| print_report(out, &report))?;
    }
    Ok(ExitCode::from(once_exit_code(&report)))
}

/// [`once_exit`] for a cycle that ran (or failed as a whole).
pub fn once_exit_code(report: &CycleReport) -> u8 {
    if report.error.is_some() {
        once_exit::COULD_NOT_RUN
    } else if report.counters.failed > 0 || report.abandoned {
        once_exit::USERS_FAILED
    } else {
        once_exit::OK
    }
}

/// The per-user summary (and, in a dry run, each planned list).
pub fn print_report(out: &mut dyn Write, report: &CycleReport) -> std::io::Result<()> {
    let c = &report.counters;
    writeln!(
        out,
        "cycle {} ({} ms){}{}: {} users listed, {} selected: {} written, {} would write, {} unchanged, {} skipped, {} failed",
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.durations.total_ms,
        if report.dry_run { " [dry run]" } else { "" },
        if report.partial { " [partial: --user]" } else { "" },
        c.listed,
        c.selected,
        c.written,
        c.would_write,
        c.unchanged,
        c.skipped,
        c.failed
    )?;
    if let Some(error) = &report.error {
        writeln!(out, "error: {error}")?;
    }
    for user in &report.users {
        let (label, reason) = match &user.outcome {
            UserOutcome::Written => ("written", String::new()),
            UserOutcome::WouldWrite => ("would write", String::new()),
            UserOutcome::Unchanged => ("unchanged", String::new()),
            UserOutcome::Skipped { reason } => ("skipped", reason.clone()),
            UserOutcome::Failed { reason } => ("FAILED", reason.clone()),
            UserOutcome::Abandoned => ("abandoned", "stopped before this user".into()),
        };
        writeln!(
            out,
            "  {:<24} {:<32} {:<11} {:>4} appointments  {}",
            user.user_name,
            user.mailbox.as_deref().unwrap_or("-"),
            label,
            user.appointment_count
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            reason
        )?;
        if let Some(list) = &user.appointments {
            for a in list {
                writeln!(
                    out,
                    "      {} - {}  {:<13} {:<8} {}{}",
                    a.start.format("%Y-%m-%d %H:%M"),
                    a.end.format("%Y-%m-%d %H:%M"),
                    a.status,
                    a.sensitivity,
                    a.subject.as_deref().unwrap_or(""),
                    a.location
                        .as_deref()
                        .map(|l| format!(" @ {l}"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}
