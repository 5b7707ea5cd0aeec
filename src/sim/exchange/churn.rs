//! Calendar churn: random changes to random mailboxes at random times (a
//! Poisson process of a given rate), through the same path as every other
//! calendar change, so they reach streaming subscriptions as events. For
//! demonstrations (`sim exchange --churn`) and benchmarks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use tokio::task::JoinHandle;

use super::mailbox::{SimBusyType, SimEvent};
use super::state::Shared;
use crate::sim::rng::SplitMix64;

/// Changes kept in a [`ChurnHandle`]'s log (the oldest tenth is dropped
/// beyond it).
pub const MAX_CHURN_LOG: usize = 100_000;

/// What one churn step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnKind {
    Created,
    Modified,
    Deleted,
}

/// One change the churn made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChurnChange {
    /// When the calendar changed (its events were queued at that instant).
    pub at: Instant,
    pub time: DateTime<Utc>,
    pub mailbox: String,
    pub kind: ChurnKind,
    /// The [`SimEvent::id`] created, changed or deleted.
    pub event_id: String,
}

/// A running churn; stops when dropped (or [`stop`](Self::stop)ped).
pub struct ChurnHandle {
    task: JoinHandle<()>,
    log: Arc<Mutex<Vec<ChurnChange>>>,
}

impl ChurnHandle {
    /// The changes made so far (the last [`MAX_CHURN_LOG`]), in order.
    pub fn changes(&self) -> Vec<ChurnChange> {
        self.log.lock().expect("churn log lock").clone()
    }

    /// How many changes are in the log.
    pub fn count(&self) -> usize {
        self.log.lock().expect("churn log lock").len()
    }

    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ChurnHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ChurnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChurnHandle")
            .field("changes", &self.count())
            .finish_non_exhaustive()
    }
}

pub(super) fn start(shared: Arc<Shared>, per_minute: u32, seed: u64) -> ChurnHandle {
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = log.clone();
    let task = tokio::spawn(async move {
        if per_minute == 0 {
            return;
        }
        let mut rng = SplitMix64(seed);
        let mean = 60.0 / f64::from(per_minute);
        let mut serial = 0u64;
        loop {
            // Exponential gaps: changes at random times, `per_minute` on
            // average, at most ten means apart.
            let uniform = (rng.below(1 << 30) as f64 + 1.0) / f64::from(1u32 << 30);
            let gap = (-uniform.ln() * mean).min(10.0 * mean);
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
            serial += 1;
            if let Some(change) = step(&shared, &mut rng, seed, serial) {
                let mut log = task_log.lock().expect("churn log lock");
                if log.len() >= MAX_CHURN_LOG {
                    log.drain(..MAX_CHURN_LOG / 10);
                }
                log.push(change);
            }
        }
    });
    ChurnHandle { task, log }
}

/// One random change to one random mailbox.
fn step(shared: &Shared, rng: &mut SplitMix64, seed: u64, serial: u64) -> Option<ChurnChange> {
    let mut state = shared.lock();
    if state.mailboxes.is_empty() {
        return None;
    }
    let index = rng.below(state.mailboxes.len() as u64) as usize;
    let now = Utc::now();
    let roll = rng.below(10);
    let pick = rng.next_u64();
    let shift = rng.below(8);
    let busy = SimBusyType::ALL[rng.below(4) as usize];
    let at = Instant::now();
    let (kind, event_id) = state.change_mailbox(index, |mailbox| {
        let events = &mut mailbox.events;
        if events.len() < 3 || roll < 3 {
            // A new appointment within the next hours, on a quarter hour.
            let start = (now + chrono::Duration::minutes(15 * (1 + shift as i64 * 2)))
                .duration_trunc(chrono::Duration::minutes(15))
                .unwrap_or(now);
            let id = format!("churn-{seed}-{serial}");
            events.push(SimEvent {
                id: id.clone(),
                start,
                end: start + chrono::Duration::minutes(30 * (1 + (pick % 3) as i64)),
                busy_type: if busy == SimBusyType::Free {
                    SimBusyType::Busy
                } else {
                    busy
                },
                subject: Some(format!("Churn {serial}")),
                location: None,
                private: false,
                meeting: pick % 2 == 0,
                all_day: false,
                recurrence: None,
            });
            (ChurnKind::Created, id)
        } else if roll < 6 {
            let removed = events.remove((pick % events.len() as u64) as usize);
            (ChurnKind::Deleted, removed.id)
        } else {
            // Moved by 15 minutes to 2 hours, or another busy type.
            let count = events.len() as u64;
            let event = &mut events[(pick % count) as usize];
            if pick % 2 == 0 {
                let by = chrono::Duration::minutes(15 * (1 + shift as i64));
                event.start += by;
                event.end += by;
            } else {
                let others: Vec<SimBusyType> = SimBusyType::ALL[..4]
                    .iter()
                    .copied()
                    .filter(|b| *b != event.busy_type)
                    .collect();
                event.busy_type = others[(pick / 2 % others.len() as u64) as usize];
            }
            (ChurnKind::Modified, event.id.clone())
        }
    });
    Some(ChurnChange {
        at,
        time: now,
        mailbox: state.mailboxes[index].smtp.clone(),
        kind,
        event_id,
    })
}
