//! `run` (the service) and `once` (one cycle).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use ews_calendar_replicator::app::{assemble, AssembleError, ConfiguredEngine};
use ews_calendar_replicator::config::{self, Config, LoadContext};
use ews_calendar_replicator::logging;
use ews_calendar_replicator::monitoring::{Monitor, MonitoringServer};
use ews_calendar_replicator::replication::{
    run_scheduled, CycleObserver, CycleOptions, CycleReport, MemoryStateStore, StateStore,
    UserOutcome,
};
use ews_calendar_replicator::state::SqliteStateStore;
use ews_calendar_replicator::systemd::Notifier;
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

fn init_logging(config: &Config) -> Result<(), String> {
    logging::init(&config.logging).map_err(|e| format!("logging: {e}"))?;
    for warning in &config.warnings {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    Ok(())
}

/// Assembles the engine, retrying while a server is down at start (the
/// service must come up by itself once the UCServer or directory is back).
async fn assemble_until_ready<S: StateStore + Clone>(
    config: &Config,
    state: S,
    shutdown: &mut watch::Receiver<bool>,
    monitor: &Monitor,
) -> Option<ConfiguredEngine<S>> {
    let mut delay = Duration::from_secs(5);
    loop {
        match assemble(config, state.clone()).await {
            Ok(engine) => return Some(engine),
            Err(e) => {
                monitor.server_unreachable(e.server(), &e.to_string()); // monitoring
                tracing::error!("cannot start replicating: {e}; trying again in {delay:?}");
                record_could_not_run(&state, &e);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
        delay = (delay * 2).min(config.replication.interval.min(Duration::from_secs(300)));
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

/// `run`: the service.
pub async fn run(path: &Path) -> Result<ExitCode, String> {
    let config = load_config(path)?;
    refuse_readable_secrets(&config)?;
    init_logging(&config)?;
    let state = SqliteStateStore::open(&config.state_path).map_err(|e| e.to_string())?;
    let state = std::sync::Arc::new(state);
    let notifier = Notifier::from_env();
    let mut shutdown = shutdown_on_signals();
    tracing::info!(
        config = %config.file.display(),
        interval_minutes = config.replication.interval.as_secs() / 60,
        "ews-calendar-replicator {} starting",
        env!("CARGO_PKG_VERSION")
    );
    // monitoring (issue #16): the endpoints, and the observer they read
    let monitor = std::sync::Arc::new(Monitor::new(config.replication.interval));
    let _monitoring = match config.monitoring.listen {
        Some(listen) => Some(MonitoringServer::start(listen, monitor.clone()).await?),
        None => None,
    };
    let _ = notifier.status("connecting");
    let Some(engine) = assemble_until_ready(&config, state, &mut shutdown, &monitor).await else {
        let _ = notifier.stopping();
        return Ok(ExitCode::SUCCESS);
    };
    let engine = engine.with_observer(monitor.clone()); // monitoring
    engine.calendars().observe(monitor.clone()); // monitoring
    let _ = notifier.ready();
    let mut warned_load = false;
    let summary = run_scheduled(&engine, CycleOptions::default(), shutdown, |report| {
        log_cycle(report);
        if !warned_load {
            warned_load = true;
            if let Some(warning) = config::load_warning(&config.replication, report.counters.listed)
            {
                tracing::warn!("{warning}");
            }
        }
        let _ = notifier.status(&format!(
            "last cycle {}: {} written, {} unchanged, {} failed",
            report.finished_at.format("%H:%M:%S"),
            report.counters.written,
            report.counters.unchanged,
            report.counters.failed
        ));
    })
    .await;
    let _ = notifier.stopping();
    tracing::info!(
        cycles = summary.cycles,
        overruns = summary.overruns,
        abandoned = summary.abandoned,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

fn log_cycle(report: &CycleReport) {
    let c = &report.counters;
    if let Some(error) = &report.error {
        tracing::error!("cycle failed: {error}");
    }
    for user in &report.users {
        if let UserOutcome::Failed { reason } = &user.outcome {
            tracing::warn!(user = %user.user_name, "not replicated: {reason}");
        }
    }
    tracing::info!(
        listed = c.listed,
        written = c.written,
        unchanged = c.unchanged,
        skipped = c.skipped,
        failed = c.failed,
        duration_ms = report.durations.total_ms,
        "cycle finished"
    );
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

/// Records that no cycle could start because of `error`, so that `status`
/// shows it ("no cycle since ..."). A state database that cannot take the
/// record is logged, not fatal: the error itself is already reported.
pub fn record_could_not_run<S: StateStore>(state: &S, error: &AssembleError) {
    let reason = match error {
        AssembleError::UcServer(e) => format!("could not connect to the UCServer: {e}"),
        AssembleError::Directory(e) => format!("could not connect to the directory: {e}"),
    };
    let record = ews_calendar_replicator::replication::report::could_not_run(&reason, Utc::now());
    if let Err(e) = state.record_cycle(&record) {
        tracing::warn!("the state database did not record the failed start ({e})");
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
