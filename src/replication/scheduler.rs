//! Cycles every `interval`, one at a time: the next cycle starts `interval`
//! after the previous one started, or right after it ended when it took
//! longer (reported, and no burst of catch-up cycles). A shutdown request
//! ends the wait at once, and a running cycle stops at its next safe point
//! (see [`Engine::run_cycle`]). The waits use the monotonic clock, so a
//! wall-clock step (NTP, VM resume, `date -s`) neither starts a cycle early
//! nor delays one (the fault matrix's clock-jump rows check it).

use chrono::Utc;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::directory::UserDirectory;

use super::cycle::{CycleOptions, Engine};
use super::ports::{CalendarSource, StateStore, UcServerPort};
use super::report::CycleReport;

/// What a scheduler run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleSummary {
    pub cycles: u64,
    /// Cycles that took longer than the interval.
    pub overruns: u64,
    /// The last cycle was stopped by the shutdown.
    pub abandoned: bool,
}

/// Runs cycles until `shutdown` turns true; calls `on_cycle` after each.
/// `options.shutdown` is replaced by `shutdown`.
pub async fn run_scheduled<U, D, C, S>(
    engine: &Engine<U, D, C, S>,
    options: CycleOptions,
    shutdown: watch::Receiver<bool>,
    mut on_cycle: impl FnMut(&CycleReport),
) -> ScheduleSummary
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
{
    let interval = engine.settings().interval;
    let options = CycleOptions {
        shutdown: Some(shutdown.clone()),
        ..options
    };
    let mut summary = ScheduleSummary::default();
    let mut wait = shutdown;
    loop {
        if *wait.borrow() {
            break;
        }
        let started = Instant::now();
        let report = engine.run_cycle(Utc::now(), &options).await;
        summary.cycles += 1;
        summary.abandoned = report.abandoned;
        on_cycle(&report);
        if report.abandoned || *wait.borrow() {
            break;
        }
        let next = started + interval;
        if Instant::now() >= next {
            summary.overruns += 1;
            tracing::warn!(
                "the replication cycle took {:.1} s, longer than the interval of {} s; the next cycle starts now (consider a longer interval)",
                started.elapsed().as_secs_f64(),
                interval.as_secs()
            );
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            requested = async { wait.wait_for(|stop| *stop).await.is_ok() } => {
                if requested {
                    break;
                }
                // The sender is gone: no shutdown can come; keep the rhythm.
                tokio::time::sleep_until(next).await;
            }
        }
    }
    tracing::info!(cycles = summary.cycles, "replication stopped");
    summary
}
