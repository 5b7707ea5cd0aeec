//! The push loop: change events from a [`ChangeFeed`] (Exchange's streaming
//! notifications) make the engine read the changed mailboxes within
//! seconds, instead of at the next cycle.
//!
//! Events are de-duplicated by mailbox and collected for a short debounce
//! after the first ([`ReplicationSettings::push_debounce`]), then read in
//! refreshes of at most [`MAX_MAILBOXES_PER_REFRESH`] mailboxes (one
//! GetUserAvailability request each) through the cycle's own pipeline
//! ([`Engine::refresh_mailboxes`]): a list is written only when it changed,
//! and users logged on in ProCall are not written. A refresh never runs
//! while a cycle does: both take the [`WriterLock`], so the UCServer and
//! the state store see one writer at a time. The periodic cycle stays the
//! safety net: a refresh that fails leaves its users to the next cycle.
//!
//! [`ReplicationSettings::push_debounce`]: super::ReplicationSettings::push_debounce

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::directory::UserDirectory;

use super::cycle::{CycleOptions, Engine};
use super::ports::{
    CalendarSource, ChangeFeed, FeedRecord, FeedStatus, MailboxChange, StateStore, UcServerPort,
};
use super::report::{CycleReport, UserOutcome};

/// Mailboxes read by one refresh: one GetUserAvailability request holds at
/// most 100 mailboxes ("GetUserAvailability operation", Microsoft Learn:
/// the request can contain at most 100 mailboxes).
pub const MAX_MAILBOXES_PER_REFRESH: usize = 100;

/// How often the push loop records the feed's status in the state store
/// while no refresh runs (`status` reads it from there).
pub const FEED_RECORD_EVERY: Duration = Duration::from_secs(60);

/// One writer at a time: a cycle and a push refresh each hold this while
/// they run, so they never write the same user's list concurrently (an
/// older list could otherwise overtake a newer one) and the state's
/// "nothing in flight at the start" rule holds for both.
#[derive(Clone, Default)]
pub struct WriterLock(Arc<Mutex<()>>);

impl WriterLock {
    pub fn new() -> WriterLock {
        WriterLock::default()
    }

    /// Waits for the other writer to finish (first come, first served).
    pub async fn lock(&self) -> OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }
}

/// What the push loop refreshes through: an [`Engine`], or in the service
/// whatever holds the engine in force.
#[allow(async_fn_in_trait)] // awaited in place, never spawned
pub trait Refresh {
    /// The wait after the first event before reading.
    fn debounce(&self) -> Duration;
    /// Reads and writes the users of `mailboxes` (at most
    /// [`MAX_MAILBOXES_PER_REFRESH`]); see [`Engine::refresh_mailboxes`].
    async fn refresh(&self, mailboxes: &[String], options: &CycleOptions) -> CycleReport;
    /// An event arrived (for the observer's counts).
    fn change_received(&self, _change: &MailboxChange) {}
    /// Keeps the feed's status for `status` (the state store).
    fn record_feed(&self, _record: &FeedRecord) {}
}

impl<U, D, C, S> Refresh for Engine<U, D, C, S>
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
{
    fn debounce(&self) -> Duration {
        self.settings().push_debounce
    }

    async fn refresh(&self, mailboxes: &[String], options: &CycleOptions) -> CycleReport {
        self.refresh_mailboxes(Utc::now(), mailboxes, options).await
    }

    fn change_received(&self, change: &MailboxChange) {
        self.observer().change_received(change);
    }

    fn record_feed(&self, record: &FeedRecord) {
        if let Err(e) = self.state().record_feed_status(record) {
            tracing::debug!("the state database did not record the change feed's status: {e}");
        }
    }
}

/// What a push loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushSummary {
    /// Events received (before de-duplication).
    pub changes: u64,
    /// Of these, resyncs (events may have been missed).
    pub resyncs: u64,
    pub refreshes: u64,
    /// Lists the refreshes wrote.
    pub written: u64,
}

/// The mailboxes waiting for a refresh, in arrival order, each once
/// (mailbox addresses compare case-insensitively).
#[derive(Default)]
struct Dirty {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl Dirty {
    fn add(&mut self, mailbox: &str) {
        let mailbox = mailbox.trim();
        if !mailbox.is_empty() && self.keys.insert(mailbox.to_lowercase()) {
            self.order.push_back(mailbox.to_owned());
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn take(&mut self, at_most: usize) -> Vec<String> {
        let n = at_most.min(self.order.len());
        let batch: Vec<String> = self.order.drain(..n).collect();
        for mailbox in &batch {
            self.keys.remove(&mailbox.to_lowercase());
        }
        batch
    }
}

/// Resolves when shutdown is requested; never when the sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the push loop until `shutdown` turns true or the feed's channel
/// closes (the mailboxes still waiting are refreshed first). `feed`, when
/// given, is asked for its status, which is recorded through
/// [`Refresh::record_feed`] after each refresh and every
/// [`FEED_RECORD_EVERY`]. `on_refresh` is called after each refresh.
pub async fn run_push<R: Refresh + ?Sized>(
    refresher: &R,
    feed: Option<&dyn ChangeFeed>,
    changes: &mut UnboundedReceiver<MailboxChange>,
    writer: &WriterLock,
    mut shutdown: watch::Receiver<bool>,
    mut on_refresh: impl FnMut(&CycleReport),
) -> PushSummary {
    let mut summary = PushSummary::default();
    let mut dirty = Dirty::default();
    let mut open = true;
    let options = CycleOptions {
        shutdown: Some(shutdown.clone()),
        ..CycleOptions::default()
    };
    let record = |summary: &PushSummary| {
        if let Some(feed) = feed {
            refresher.record_feed(&feed_record(feed.status(), summary, Utc::now()));
        }
    };
    let receive = |change: MailboxChange, dirty: &mut Dirty, summary: &mut PushSummary| {
        refresher.change_received(&change);
        summary.changes += 1;
        if matches!(change, MailboxChange::Resync { .. }) {
            summary.resyncs += 1;
            tracing::info!(mailbox = %change.mailbox(), "change events may have been missed; reading the mailbox in full");
        }
        dirty.add(change.mailbox());
    };
    let mut record_timer = tokio::time::interval(FEED_RECORD_EVERY);
    record_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            break;
        }
        if dirty.is_empty() {
            if !open {
                break;
            }
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => receive(change, &mut dirty, &mut summary),
                    None => open = false,
                },
                _ = record_timer.tick() => record(&summary),
                () = stopped(&mut shutdown) => break,
            }
            if dirty.is_empty() {
                continue;
            }
            // The debounce runs from the first event, not from the latest:
            // a steady stream of events must not postpone the read forever.
            let deadline = Instant::now() + refresher.debounce();
            while open {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    change = changes.recv() => match change {
                        Some(change) => receive(change, &mut dirty, &mut summary),
                        None => open = false,
                    },
                    () = stopped(&mut shutdown) => break,
                }
            }
            if *shutdown.borrow() {
                break;
            }
        }
        // Wait for a running cycle to finish; events meanwhile join the
        // batch (taken from the channel as they come, so a long cycle
        // leaves one entry per mailbox behind, not one per event).
        let lock = writer.lock();
        tokio::pin!(lock);
        let guard = loop {
            tokio::select! {
                guard = &mut lock => break Some(guard),
                change = changes.recv(), if open => match change {
                    Some(change) => receive(change, &mut dirty, &mut summary),
                    None => open = false,
                },
                () = stopped(&mut shutdown) => break None,
            }
        };
        let Some(guard) = guard else { break };
        while let Ok(change) = changes.try_recv() {
            receive(change, &mut dirty, &mut summary);
        }
        let batch = dirty.take(MAX_MAILBOXES_PER_REFRESH);
        let report = refresher.refresh(&batch, &options).await;
        drop(guard);
        summary.refreshes += 1;
        summary.written += report.counters.written as u64;
        if let Some(error) = &report.error {
            // The next cycle reads every mailbox anyway; retrying here
            // would only hammer a server that is down.
            tracing::warn!(
                mailboxes = batch.len(),
                "push refresh failed ({error}); the next cycle reads these mailboxes"
            );
        }
        on_refresh(&report);
        record(&summary);
    }
    record(&summary);
    tracing::debug!(
        changes = summary.changes,
        refreshes = summary.refreshes,
        "push loop stopped"
    );
    summary
}

fn feed_record(feed: FeedStatus, summary: &PushSummary, at: DateTime<Utc>) -> FeedRecord {
    FeedRecord {
        recorded_at: at,
        changes: summary.changes,
        resyncs: summary.resyncs,
        refreshes: summary.refreshes,
        written: summary.written,
        polled_total: feed.polled.len(),
        feed,
    }
}

/// The mailboxes a finished cycle replicated, for [`ChangeFeed::watch`]:
/// every handled user's mailbox (written, unchanged, or failed: a failed
/// read may succeed later, and its events are wanted then), each once.
/// `None` for a report that does not stand for the whole site (dry run,
/// `once --user`, a refresh, abandoned, or failed as a whole): the feed
/// keeps what it watches.
pub fn watched_mailboxes(report: &CycleReport) -> Option<Vec<String>> {
    if report.dry_run || report.partial || report.abandoned || report.error.is_some() {
        return None;
    }
    let mut seen = HashSet::new();
    Some(
        report
            .users
            .iter()
            .filter(|u| {
                matches!(
                    u.outcome,
                    UserOutcome::Written | UserOutcome::Unchanged | UserOutcome::Failed { .. }
                )
            })
            .filter_map(|u| u.mailbox.clone())
            .filter(|m| seen.insert(m.to_lowercase()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_mailboxes_are_kept_once_in_arrival_order() {
        let mut dirty = Dirty::default();
        for m in ["b@x", "A@x", "a@X", " b@x ", "c@x", ""] {
            dirty.add(m);
        }
        assert_eq!(dirty.take(2), ["b@x", "A@x"]);
        dirty.add("b@x");
        assert_eq!(dirty.take(10), ["c@x", "b@x"]);
        assert!(dirty.is_empty());
    }
}
