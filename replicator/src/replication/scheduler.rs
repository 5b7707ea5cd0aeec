//! Cycles every `interval`, one at a time: the next cycle starts `interval`
//! after the previous one started, or right after it ended when it took
//! longer (reported, and no burst of catch-up cycles). A shutdown request
//! ends the wait at once, and a running cycle stops at its next safe point
//! (see [`Engine::run_cycle`]). The waits use the monotonic clock, so a
//! wall-clock step (NTP, VM resume, `date -s`) neither starts a cycle early
//! nor delays one (the fault matrix's clock-jump rows check it).
//!
//! The loop also drives a [`Heartbeat`] (the service's systemd watchdog):
//! the ticks come from this loop, polled together with the running cycle or
//! the wait, never from a task of their own, so a scheduler that stops
//! being polled (a blocked thread, a starved runtime) stops the pings. A
//! cycle may legitimately run long (a throttled Exchange, tens of thousands
//! of mailboxes): pings go on while it runs, up to [`hung_turn_limit`];
//! a turn still running then is taken as hung and the ticks say so.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::directory::UserDirectory;

use super::cycle::{CycleOptions, Engine};
use super::ports::{
    CalendarSource, ChangeFeed, FeedStatus, MailboxChange, StateStore, UcServerPort,
};
use super::push::{run_push, watched_mailboxes, WriterLock};
use super::report::CycleReport;

/// What a scheduler run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleSummary {
    pub cycles: u64,
    /// Cycles that took longer than the interval.
    pub overruns: u64,
    /// The last cycle was stopped by the shutdown.
    pub abandoned: bool,
    /// Refreshes the push loop ran ([`run_scheduled_with_feed`]).
    pub push_refreshes: u64,
}

/// What one turn of the loop did.
#[derive(Debug)]
pub enum Turn {
    /// A cycle ran (whether or not it succeeded); `abandoned`: it was
    /// stopped by the shutdown.
    Ran { abandoned: bool },
    /// No cycle could start (e.g. a server is down at start); the next
    /// turn comes after `retry_in`, or at once when the retry signal fires.
    NotStarted { retry_in: Duration },
}

/// What the scheduler runs: one turn at a time.
#[allow(async_fn_in_trait)] // awaited in place, never spawned: no Send bound needed
pub trait Scheduled {
    /// From one cycle's start to the next; read before every wait, so it
    /// may change between turns (a reloaded configuration).
    fn interval(&self) -> Duration;
    /// One turn; `shutdown` turning true stops a running cycle at its next
    /// safe point.
    async fn turn(&mut self, shutdown: &watch::Receiver<bool>) -> Turn;
    /// A turn running longer than this is taken as hung by the heartbeat.
    fn hung_after(&self) -> Duration {
        hung_turn_limit(self.interval())
    }
}

/// One tick of the [`Heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The loop is alive: ping the watchdog.
    Alive,
    /// The current turn has run past the limit: taken as hung, no ping.
    Hung { running_for: Duration },
}

/// Ticks every `every` from inside the scheduler loop.
pub struct Heartbeat<'a> {
    pub every: Duration,
    pub tick: Box<dyn FnMut(Beat) + Send + 'a>,
}

/// How long a turn may run before the heartbeat takes it as hung: four
/// intervals, at least an hour. Every network read is bounded in time, so
/// even a heavily throttled cycle (back-offs of at most 5 minutes each)
/// ends well within it; a turn past it is stuck (a lost wake-up, a
/// deadlock), and a restart by the watchdog is the way out.
pub fn hung_turn_limit(interval: Duration) -> Duration {
    (interval.saturating_mul(4)).max(Duration::from_secs(3600))
}

/// Runs `future` while ticking the heartbeat; a tick after `hung_after`
/// from the start reports [`Beat::Hung`].
async fn with_heartbeat<F: Future>(
    future: F,
    heartbeat: &mut Option<Heartbeat<'_>>,
    hung_after: Option<Duration>,
) -> F::Output {
    let Some(heartbeat) = heartbeat else {
        return future.await;
    };
    tokio::pin!(future);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(heartbeat.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            output = &mut future => return output,
            _ = ticks.tick() => {
                let running_for = started.elapsed();
                if hung_after.is_some_and(|limit| running_for > limit) {
                    (heartbeat.tick)(Beat::Hung { running_for });
                } else {
                    (heartbeat.tick)(Beat::Alive);
                }
            }
        }
    }
}

/// Runs turns until `shutdown` turns true. After a cycle the next one
/// starts `interval` after its start; after a turn that could not start a
/// cycle, after its `retry_in`, or at once when `retry_now` changes.
pub async fn run_turns(
    service: &mut impl Scheduled,
    shutdown: watch::Receiver<bool>,
    mut retry_now: Option<watch::Receiver<()>>,
    mut heartbeat: Option<Heartbeat<'_>>,
) -> ScheduleSummary {
    let mut summary = ScheduleSummary::default();
    let mut wait = shutdown.clone();
    loop {
        if *wait.borrow() {
            break;
        }
        let started = Instant::now();
        let hung_after = service.hung_after();
        let turn = with_heartbeat(service.turn(&shutdown), &mut heartbeat, Some(hung_after)).await;
        let next = match turn {
            Turn::Ran { abandoned } => {
                summary.cycles += 1;
                summary.abandoned = abandoned;
                if abandoned || *wait.borrow() {
                    break;
                }
                let interval = service.interval();
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
                // A reload applies from the next scheduled cycle.
                (next, false)
            }
            Turn::NotStarted { retry_in } => {
                if *wait.borrow() {
                    break;
                }
                (Instant::now() + retry_in, true)
            }
        };
        let (next, retry) = next;
        if let Some(signal) = retry_now.as_mut() {
            if !retry {
                // After a cycle the signal does not shorten the wait; one
                // sent during a failed turn does: that turn did not see it.
                signal.borrow_and_update();
            }
        }
        let stop = with_heartbeat(
            wait_until(next, &mut wait, retry_now.as_mut().filter(|_| retry)),
            &mut heartbeat,
            None,
        )
        .await;
        if stop {
            break;
        }
    }
    tracing::info!(cycles = summary.cycles, "replication stopped");
    summary
}

/// Waits until `next`, or until `retry_now` changes; `true` when shutdown
/// was requested.
async fn wait_until(
    next: Instant,
    shutdown: &mut watch::Receiver<bool>,
    retry_now: Option<&mut watch::Receiver<()>>,
) -> bool {
    let retry = async {
        match retry_now {
            Some(signal) => {
                if signal.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep_until(next) => false,
        () = retry => false,
        requested = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
            if requested {
                return true;
            }
            // The sender is gone: no shutdown can come; keep the rhythm.
            tokio::time::sleep_until(next).await;
            false
        }
    }
}

/// An engine scheduled as it is, calling `on_cycle` after each cycle; with
/// a feed, each cycle holds the writer lock and then tells the feed the
/// mailboxes it replicated.
struct EngineTurns<'e, E, F> {
    engine: &'e E,
    options: CycleOptions,
    on_cycle: F,
    writer: Option<WriterLock>,
    feed: Option<&'e dyn ChangeFeed>,
}

impl<U, D, C, S, F> Scheduled for EngineTurns<'_, Engine<U, D, C, S>, F>
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
    F: FnMut(&CycleReport),
{
    fn interval(&self) -> Duration {
        self.engine.settings().interval
    }

    async fn turn(&mut self, _shutdown: &watch::Receiver<bool>) -> Turn {
        let guard = match &self.writer {
            Some(writer) => Some(writer.lock().await),
            None => None,
        };
        let report = self.engine.run_cycle(Utc::now(), &self.options).await;
        drop(guard);
        if let (Some(feed), Some(mailboxes)) = (self.feed, watched_mailboxes(&report)) {
            feed.watch(&mailboxes);
        }
        (self.on_cycle)(&report);
        Turn::Ran {
            abandoned: report.abandoned,
        }
    }
}

/// Runs cycles of `engine` until `shutdown` turns true; calls `on_cycle`
/// after each. `options.shutdown` is replaced by `shutdown`.
pub async fn run_scheduled<U, D, C, S>(
    engine: &Engine<U, D, C, S>,
    options: CycleOptions,
    shutdown: watch::Receiver<bool>,
    on_cycle: impl FnMut(&CycleReport),
) -> ScheduleSummary
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
{
    run_scheduled_with_feed::<U, D, C, S, NoFeed>(engine, options, None, shutdown, on_cycle).await
}

/// A feed type for callers without one.
pub enum NoFeed {}

impl ChangeFeed for NoFeed {
    fn watch(&self, _mailboxes: &[String]) {
        match *self {}
    }
    fn status(&self) -> FeedStatus {
        match *self {}
    }
}

/// [`run_scheduled`] with a change feed: the push loop
/// ([`run_push`]) runs beside the cycles on the changes from `feed`'s
/// channel, one writer at a time, and after every full cycle the feed is
/// told the mailboxes it replicated ([`ChangeFeed::watch`]). Both stop at
/// `shutdown`. Without a feed, exactly [`run_scheduled`].
pub async fn run_scheduled_with_feed<U, D, C, S, F>(
    engine: &Engine<U, D, C, S>,
    options: CycleOptions,
    feed: Option<(&F, UnboundedReceiver<MailboxChange>)>,
    shutdown: watch::Receiver<bool>,
    on_cycle: impl FnMut(&CycleReport),
) -> ScheduleSummary
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
    F: ChangeFeed,
{
    let options = CycleOptions {
        shutdown: Some(shutdown.clone()),
        ..options
    };
    let Some((feed, mut changes)) = feed else {
        let mut turns = EngineTurns {
            engine,
            options,
            on_cycle,
            writer: None,
            feed: None,
        };
        return run_turns(&mut turns, shutdown, None, None).await;
    };
    let writer = WriterLock::new();
    let mut turns = EngineTurns {
        engine,
        options,
        on_cycle,
        writer: Some(writer.clone()),
        feed: Some(feed),
    };
    let cycles = run_turns(&mut turns, shutdown.clone(), None, None);
    let push = run_push(engine, Some(feed), &mut changes, &writer, shutdown, |_| {});
    let (mut summary, push) = tokio::join!(cycles, push);
    summary.push_refreshes = push.refreshes;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Turns that wait for the test to let them finish (or never finish).
    struct Gate {
        beats: Arc<Mutex<Vec<Beat>>>,
        /// Beats a turn waits for before it finishes; `None`: never.
        finish_after_beats: Option<usize>,
        hung_after: Duration,
        turns: usize,
        stop: watch::Sender<bool>,
    }

    impl Scheduled for Gate {
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }

        fn hung_after(&self) -> Duration {
            self.hung_after
        }

        async fn turn(&mut self, _shutdown: &watch::Receiver<bool>) -> Turn {
            self.turns += 1;
            loop {
                let seen = self.beats.lock().unwrap().len();
                if self.finish_after_beats.is_some_and(|n| seen >= n) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // One turn, then stop the loop.
            let _ = self.stop.send(true);
            Turn::NotStarted {
                retry_in: Duration::from_secs(3600),
            }
        }
    }

    fn heartbeat(beats: &Arc<Mutex<Vec<Beat>>>) -> Heartbeat<'static> {
        let beats = beats.clone();
        Heartbeat {
            every: Duration::from_millis(2),
            tick: Box::new(move |beat| beats.lock().unwrap().push(beat)),
        }
    }

    #[tokio::test]
    async fn the_heartbeat_ticks_alive_while_a_long_turn_runs() {
        let beats = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = watch::channel(false);
        let mut gate = Gate {
            beats: beats.clone(),
            finish_after_beats: Some(5),
            hung_after: Duration::from_secs(3600),
            turns: 0,
            stop,
        };
        let hb = heartbeat(&beats);
        tokio::time::timeout(
            Duration::from_secs(60),
            run_turns(&mut gate, shutdown, None, Some(hb)),
        )
        .await
        .expect("the turn ends once it has seen five beats");
        assert_eq!(gate.turns, 1);
        let beats = beats.lock().unwrap();
        assert!(beats.len() >= 5);
        assert!(beats.iter().all(|b| *b == Beat::Alive), "{beats:?}");
    }

    #[tokio::test]
    async fn a_turn_past_the_limit_is_reported_hung_and_no_longer_alive() {
        let beats = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = watch::channel(false);
        let mut gate = Gate {
            beats: beats.clone(),
            finish_after_beats: None,
            hung_after: Duration::from_millis(20),
            turns: 0,
            stop,
        };
        let hb = heartbeat(&beats);
        let hung = {
            let beats = beats.clone();
            async move {
                loop {
                    let hung = beats
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|b| matches!(b, Beat::Hung { .. }))
                        .count();
                    if hung >= 3 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                _ = run_turns(&mut gate, shutdown, None, Some(hb)) => panic!("the turn never ends"),
                () = hung => {}
            }
        })
        .await
        .expect("the hung turn is reported");
        let beats = beats.lock().unwrap();
        let first_hung = beats
            .iter()
            .position(|b| matches!(b, Beat::Hung { .. }))
            .unwrap();
        assert!(
            beats[first_hung..]
                .iter()
                .all(|b| matches!(b, Beat::Hung { running_for } if *running_for > Duration::from_millis(20))),
            "once hung, no more Alive: {beats:?}"
        );
    }

    #[tokio::test]
    async fn a_retry_signal_ends_the_wait_after_a_turn_that_could_not_start() {
        struct Failing {
            turns: usize,
            stop: watch::Sender<bool>,
            retried: watch::Sender<usize>,
        }
        impl Scheduled for Failing {
            fn interval(&self) -> Duration {
                Duration::from_secs(3600)
            }
            async fn turn(&mut self, _shutdown: &watch::Receiver<bool>) -> Turn {
                self.turns += 1;
                let _ = self.retried.send(self.turns);
                if self.turns == 2 {
                    let _ = self.stop.send(true);
                }
                Turn::NotStarted {
                    retry_in: Duration::from_secs(3600),
                }
            }
        }
        let (stop, shutdown) = watch::channel(false);
        let (retry_tx, retry_rx) = watch::channel(());
        let (turns_tx, mut turns_rx) = watch::channel(0);
        let mut service = Failing {
            turns: 0,
            stop,
            retried: turns_tx,
        };
        let poke = async move {
            turns_rx.wait_for(|n| *n == 1).await.unwrap();
            // Keep poking: the first may land before the wait begins.
            loop {
                let _ = retry_tx.send(());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                _ = run_turns(&mut service, shutdown, Some(retry_rx), None) => {}
                () = poke => {}
            }
        })
        .await
        .expect("the second turn comes at the retry signal, not after an hour");
        assert_eq!(service.turns, 2);
    }

    #[test]
    fn the_hung_limit_is_four_intervals_and_at_least_an_hour() {
        assert_eq!(
            hung_turn_limit(Duration::from_secs(15 * 60)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            hung_turn_limit(Duration::from_secs(30 * 60)),
            Duration::from_secs(2 * 3600)
        );
    }
}
