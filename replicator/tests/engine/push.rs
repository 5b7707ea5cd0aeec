//! The push loop (issue #19) against the UCServer simulator over real
//! loopback sockets, a static user list, the scripted calendar source and a
//! fake change feed fed by hand: events become refreshes of just those
//! mailboxes, de-duplicated and batched, one writer at a time with the
//! cycles, and the feed is told the mailboxes after every full cycle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::replication::*;
use chrono::{Duration as ChronoDuration, DurationRound as _, Utc};
use ews_calendar_replicator::directory::StaticDirectory;
use ews_calendar_replicator::replication::{
    run_push, run_scheduled_with_feed, ChangeFeed, CycleObserver, CycleReport, Engine, FeedStatus,
    MailboxChange, ReplicationSettings, StateStore, UserOutcome, WriterLock,
};
use ews_calendar_replicator::sim::ucserver::{UcServerSimConfig, UserDatabase};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_calendar_replicator::ucserver::asn::{AsnRequestError, ADMIN_GET_USER_PROFILES};
use ews_calendar_replicator::ucserver::UcServerClient;
use ews_toolkit::availability::CalendarEvent;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;

use crate::support::ucserver::{settings, start_sim_with};

/// Generous: these bound waits for conditions, they assert no speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// A change feed fed by hand: records what it is told to watch.
#[derive(Default)]
struct FakeFeed {
    watched: Mutex<Vec<Vec<String>>>,
    status: Mutex<FeedStatus>,
}

impl ChangeFeed for FakeFeed {
    fn watch(&self, mailboxes: &[String]) {
        let mut sorted = mailboxes.to_vec();
        sorted.sort();
        self.watched.lock().unwrap().push(sorted);
    }

    fn status(&self) -> FeedStatus {
        self.status.lock().unwrap().clone()
    }
}

/// Counts the change events the engine's observer is told about.
#[derive(Default)]
struct Counting {
    changes: AtomicUsize,
    refreshes: AtomicUsize,
    cycles: AtomicUsize,
}

impl CycleObserver for Counting {
    fn change_received(&self, _change: &MailboxChange) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
    fn push_refresh_finished(&self, _report: &CycleReport) {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
    }
    fn cycle_finished(&self, _report: &CycleReport) {
        self.cycles.fetch_add(1, Ordering::SeqCst);
    }
}

/// The standard setup with `replication`, its engine watched by a
/// [`Counting`] observer.
async fn setup_counting(replication: ReplicationSettings) -> (Setup, Arc<Counting>) {
    let counting = Arc::new(Counting::default());
    let Setup { sim, engine, _dir } = setup_with(replication).await;
    let engine = engine.with_observer(counting.clone());
    (Setup { sim, engine, _dir }, counting)
}

/// A meeting `days` days from now: refreshes read the window from the
/// real now, as the service does.
fn upcoming(id: &str, days: i64, subject: &str) -> CalendarEvent {
    let start =
        Utc::now().duration_trunc(ChronoDuration::hours(1)).unwrap() + ChronoDuration::days(days);
    CalendarEvent {
        start,
        end: start + ChronoDuration::hours(1),
        ..meeting(id, 2, 9, subject)
    }
}

/// alice and carol with upcoming meetings, then a cycle at the real now.
async fn first_cycle(s: &Setup) {
    let calendars = s.engine.calendars();
    calendars.set("alice@example.com", vec![upcoming("a1", 1, "Planning")]);
    calendars.set("carol@example.com", vec![upcoming("c1", 2, "Workshop")]);
    let report = s.engine.run_cycle(Utc::now(), &Default::default()).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(report.counters.written, 2);
}

fn changed(mailbox: &str) -> MailboxChange {
    MailboxChange::Changed {
        mailbox: mailbox.to_owned(),
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Runs the push loop of `engine` over `changes` until the channel closes
/// (the test drops the sender), collecting the refreshes' reports.
async fn push_until_closed<S: StateStore>(
    engine: &TestEngine<S>,
    mut changes: UnboundedReceiver<MailboxChange>,
) -> Vec<CycleReport> {
    let (_stop, shutdown) = watch::channel(false);
    let mut reports = Vec::new();
    let summary = tokio::time::timeout(
        PATIENCE,
        run_push(
            engine,
            None,
            &mut changes,
            &WriterLock::new(),
            shutdown,
            |r| reports.push(r.clone()),
        ),
    )
    .await
    .expect("the push loop ends when its channel closes");
    assert_eq!(summary.refreshes as usize, reports.len());
    reports
}

fn users_of(report: &CycleReport) -> Vec<(&str, &UserOutcome)> {
    report
        .users
        .iter()
        .map(|u| (u.user_name.as_str(), &u.outcome))
        .collect()
}

#[tokio::test]
async fn a_change_becomes_one_refresh_of_that_mailbox() {
    let s = setup().await;
    first_cycle(&s).await;
    let reads = s.engine.calendars().requests.lock().unwrap().len();
    s.engine.calendars().set(
        "alice@example.com",
        vec![upcoming("a3", 3, "Moved in Outlook")],
    );
    let (tx, rx) = unbounded_channel();
    // Several events for one change (Exchange sends created and modified,
    // and a resync may come along): one read, one write.
    for change in [
        changed("alice@example.com"),
        changed("Alice@Example.com"),
        MailboxChange::Resync {
            mailbox: "alice@example.com".into(),
        },
    ] {
        tx.send(change).unwrap();
    }
    drop(tx);
    let reports = push_until_closed(&s.engine, rx).await;
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(users_of(&reports[0]), [("alice", &UserOutcome::Written)]);
    assert!(reports[0].partial);
    let requests = s.engine.calendars().requests.lock().unwrap().clone();
    assert_eq!(requests[reads..], [vec!["alice@example.com".to_owned()]]);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Moved in Outlook"]);
    assert_eq!(s.sim.write_count("carol"), 1, "carol untouched");
    // Refreshes stay out of the cycle history (one row: the cycle).
    assert_eq!(s.engine.state().recent_cycles(10).unwrap().len(), 1);
}

#[tokio::test]
async fn refreshes_match_users_with_the_directory_as_last_read_instead_of_reading_it_again() {
    let s = setup().await;
    first_cycle(&s).await;
    let refresh = |mailbox: &'static str| {
        let (tx, rx) = unbounded_channel();
        tx.send(changed(mailbox)).unwrap();
        drop(tx);
        push_until_closed(&s.engine, rx)
    };
    s.engine
        .calendars()
        .set("alice@example.com", vec![upcoming("a4", 2, "First change")]);
    let first = refresh("alice@example.com").await;
    assert_eq!(users_of(&first[0]), [("alice", &UserOutcome::Written)]);
    // The user list breaks: a directory read would fail the refresh.
    std::fs::write(
        s._dir.path().join("users.toml"),
        "[[user]]\nsmtp = \"x@example.com\"\n",
    )
    .unwrap();
    s.engine.calendars().set(
        "alice@example.com",
        vec![upcoming("a5", 2, "Second change")],
    );
    let second = refresh("alice@example.com").await;
    assert!(second[0].error.is_none(), "{second:#?}");
    assert_eq!(users_of(&second[0]), [("alice", &UserOutcome::Written)]);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Second change"]);
    // The next cycle reads the directory again, and says it is broken.
    let cycle = s.engine.run_cycle(Utc::now(), &Default::default()).await;
    assert!(cycle.error.unwrap().contains("directory"));
}

#[tokio::test]
async fn events_during_the_debounce_join_the_first_ones_refresh() {
    // A debounce longer than any test: the refresh comes when the channel
    // closes, so every event sent before then must be in it.
    let (s, counting) = setup_counting(ReplicationSettings {
        push_debounce: Duration::from_secs(3600),
        ..ReplicationSettings::default()
    })
    .await;
    let (tx, rx) = unbounded_channel();
    let sender = async {
        tx.send(changed("alice@example.com")).unwrap();
        // The loop has taken the first event and is collecting.
        wait_for("the first event", || {
            counting.changes.load(Ordering::SeqCst) == 1
        })
        .await;
        tx.send(changed("carol@example.com")).unwrap();
        drop(tx);
    };
    let (reports, ()) = tokio::join!(push_until_closed(&s.engine, rx), sender);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(
        users_of(&reports[0]),
        [
            ("alice", &UserOutcome::Written),
            ("carol", &UserOutcome::Written)
        ]
    );
    assert_eq!(s.engine.calendars().requests.lock().unwrap().len(), 1);
    assert_eq!(counting.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(counting.cycles.load(Ordering::SeqCst), 0);
}

/// `n` offline users u0..u{n-1}, each with a mailbox and one meeting.
async fn setup_many(n: usize) -> (Setup, Vec<String>) {
    let mut users: Vec<_> = (0..n)
        .map(|i| sim_user(&format!("u{i}"), i as u32 + 1, false))
        .collect();
    let mut admin = sim_user(ADMIN, 99_999, false);
    admin.admin = true;
    admin.password = Some(crate::support::ucserver::ADMIN_PASSWORD.into());
    users.push(admin);
    let sim = start_sim_with(UcServerSimConfig::new(UserDatabase { users })).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("users.toml");
    let mut text = String::new();
    let mut mailboxes = Vec::new();
    for i in 0..n {
        let mailbox = format!("u{i}@example.com");
        text.push_str(&format!(
            "[[user]]\nobject_guid = \"6f1c2a3b-0000-4000-8000-{:012x}\"\nsmtp = \"{mailbox}\"\n\n",
            i + 1
        ));
        mailboxes.push(mailbox);
    }
    std::fs::write(&list, text).unwrap();
    let calendars = ScriptedCalendars::default();
    for (i, mailbox) in mailboxes.iter().enumerate() {
        calendars.set(mailbox, vec![upcoming(&format!("m{i}"), 1, "Standup")]);
    }
    let engine = Engine::new(
        UcServerClient::connect(settings(&sim)).await.unwrap(),
        StaticDirectory::from_file(&list).unwrap(),
        calendars,
        MemoryStateStore::new(),
        ReplicationSettings::default(),
    );
    (
        Setup {
            sim,
            engine,
            _dir: dir,
        },
        mailboxes,
    )
}

#[tokio::test]
async fn a_burst_for_250_mailboxes_is_read_in_refreshes_of_at_most_100() {
    let (s, mailboxes) = setup_many(250).await;
    let (tx, rx) = unbounded_channel();
    for mailbox in &mailboxes {
        tx.send(changed(mailbox)).unwrap();
        // The same mailbox again: still one read.
        tx.send(changed(&mailbox.to_uppercase())).unwrap();
    }
    drop(tx);
    let reports = push_until_closed(&s.engine, rx).await;
    let requests = s.engine.calendars().requests.lock().unwrap().clone();
    let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    // Every mailbox read once, in the order the events came.
    assert_eq!(requests.concat(), mailboxes);
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.users.len() <= 100));
    assert_eq!(
        reports.iter().map(|r| r.counters.written).sum::<usize>(),
        250
    );
    assert_eq!(s.sim.total_writes(), 250, "each user written exactly once");
}

#[tokio::test]
async fn a_change_for_a_user_logged_on_in_procall_writes_nothing() {
    let s = setup().await;
    first_cycle(&s).await;
    let writes = s.sim.total_writes();
    // bob is online: his client sets his presence, the service must not.
    s.engine
        .calendars()
        .set("bob@example.com", vec![upcoming("b2", 3, "Bob moved")]);
    let (tx, rx) = unbounded_channel();
    tx.send(changed("bob@example.com")).unwrap();
    drop(tx);
    let reports = push_until_closed(&s.engine, rx).await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].users.is_empty(), "{reports:#?}");
    assert_eq!(s.sim.total_writes(), writes);
    assert_eq!(s.sim.appointments("bob"), None);
}

#[tokio::test]
async fn a_change_that_leaves_the_list_as_it_was_writes_nothing() {
    let s = setup().await;
    first_cycle(&s).await;
    let writes = s.sim.total_writes();
    // E.g. an appointment's body edited: nothing the UCServer shows changed.
    let (tx, rx) = unbounded_channel();
    tx.send(changed("carol@example.com")).unwrap();
    drop(tx);
    let reports = push_until_closed(&s.engine, rx).await;
    assert_eq!(users_of(&reports[0]), [("carol", &UserOutcome::Unchanged)]);
    assert_eq!(s.sim.total_writes(), writes);
}

#[tokio::test]
async fn a_refresh_never_runs_while_a_cycle_writes() {
    let s = Arc::new(
        setup_with(ReplicationSettings {
            interval: Duration::from_secs(3600),
            push_debounce: Duration::ZERO,
            ..ReplicationSettings::default()
        })
        .await,
    );
    let feed = Arc::new(FakeFeed::default());
    let (tx, rx) = unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let (cycle_tx, mut cycles) = unbounded_channel();
    // The first cycle gets alice's calendar and writes it; carol's answer
    // waits for the test: the cycle is in its writing phase (reads and
    // writes overlap) while the event arrives.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *s.engine.calendars().stream_gate.lock().unwrap() = Some(gate.clone());
    let runner = {
        let (s, feed) = (s.clone(), feed.clone());
        tokio::spawn(async move {
            run_scheduled_with_feed(
                &s.engine,
                Default::default(),
                Some((&*feed, rx)),
                shutdown,
                move |r| cycle_tx.send(r.clone()).unwrap(),
            )
            .await
        })
    };
    wait_for("the cycle's first write", || {
        s.sim.write_count("alice") == 1
    })
    .await;
    s.engine
        .calendars()
        .set("alice@example.com", vec![upcoming("a9", 5, "Late change")]);
    tx.send(changed("alice@example.com")).unwrap();
    // A refresh running now would read Exchange: wait for that read (it
    // must not come), or long enough for it to have come.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while s.engine.calendars().requests.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        s.engine.calendars().requests.lock().unwrap().len(),
        1,
        "a refresh read Exchange while the cycle was writing"
    );
    gate.add_permits(100);
    let first = tokio::time::timeout(PATIENCE, cycles.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.succeeded(), "{first:#?}");
    wait_for("the refresh after the cycle", || {
        stored_subjects(&s.sim, "alice") == ["Late change"]
    })
    .await;
    stop.send(true).unwrap();
    let summary = tokio::time::timeout(PATIENCE, runner)
        .await
        .expect("shutdown ends cycles and push loop")
        .unwrap();
    assert_eq!(summary.cycles, 1);
    assert_eq!(summary.push_refreshes, 1);
    let requests = s.engine.calendars().requests.lock().unwrap().clone();
    assert_eq!(requests[1], ["alice@example.com"]);
}

#[tokio::test]
async fn the_feed_is_told_the_replicated_mailboxes_after_each_full_cycle() {
    let s = Arc::new(
        setup_with(ReplicationSettings {
            interval: Duration::from_millis(5),
            ..ReplicationSettings::default()
        })
        .await,
    );
    let feed = FakeFeed::default();
    let (_tx, rx) = unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let mut cycles = 0;
    let summary = tokio::time::timeout(
        PATIENCE,
        run_scheduled_with_feed(
            &s.engine,
            Default::default(),
            Some((&feed, rx)),
            shutdown,
            |_| {
                cycles += 1;
                if cycles == 2 {
                    stop.send(true).unwrap();
                }
            },
        ),
    )
    .await
    .expect("two cycles, then shutdown");
    assert_eq!(summary.cycles, 2);
    // alice and carol: bob is logged on (not listed), dave has no list
    // entry, erin no mailbox.
    let wanted = vec![
        "alice@example.com".to_owned(),
        "carol@example.com".to_owned(),
    ];
    assert_eq!(*feed.watched.lock().unwrap(), [wanted.clone(), wanted]);
}

#[tokio::test]
async fn a_cycle_that_could_not_list_the_users_leaves_the_watched_mailboxes_alone() {
    let s = setup_with(ReplicationSettings {
        interval: Duration::from_secs(3600),
        ..ReplicationSettings::default()
    })
    .await;
    s.sim.fail_operation(
        ADMIN_GET_USER_PROFILES,
        1,
        AsnRequestError {
            error_detail: 5,
            error_string: "user directory unavailable".into(),
        },
    );
    let feed = FakeFeed::default();
    let (_tx, rx) = unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let mut errors = Vec::new();
    tokio::time::timeout(
        PATIENCE,
        run_scheduled_with_feed(
            &s.engine,
            Default::default(),
            Some((&feed, rx)),
            shutdown,
            |r| {
                errors.push(r.error.clone());
                stop.send(true).unwrap();
            },
        ),
    )
    .await
    .expect("one cycle, then shutdown");
    assert!(
        errors[0].is_some(),
        "the cycle failed as a whole: {errors:?}"
    );
    assert!(feed.watched.lock().unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_ends_the_push_loop_while_it_collects_events() {
    let (s, counting) = setup_counting(ReplicationSettings {
        push_debounce: Duration::from_secs(3600),
        ..ReplicationSettings::default()
    })
    .await;
    let (tx, mut rx) = unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    tx.send(changed("alice@example.com")).unwrap();
    let writer = WriterLock::new();
    let push = run_push(&s.engine, None, &mut rx, &writer, shutdown, |_| {});
    let stopper = async {
        // The loop has the event and waits out its hour of debounce.
        wait_for("the event to be taken", || {
            counting.changes.load(Ordering::SeqCst) == 1
        })
        .await;
        stop.send(true).unwrap();
    };
    let (summary, ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(push, stopper) })
        .await
        .expect("the shutdown ends the debounce wait");
    assert_eq!(summary.changes, 1);
    assert_eq!(summary.refreshes, 0, "nothing read after the shutdown");
    assert_eq!(s.sim.total_writes(), 0);
    drop(tx);
}

#[tokio::test]
async fn shutdown_ends_cycles_and_push_loop_together() {
    let s = setup_with(ReplicationSettings {
        interval: Duration::from_secs(3600),
        ..ReplicationSettings::default()
    })
    .await;
    let feed = FakeFeed::default();
    // The sender stays open: the loop must end by the shutdown alone.
    let (_tx, rx) = unbounded_channel::<MailboxChange>();
    let (stop, shutdown) = watch::channel(false);
    let summary = tokio::time::timeout(
        PATIENCE,
        run_scheduled_with_feed(
            &s.engine,
            Default::default(),
            Some((&feed, rx)),
            shutdown,
            |_| stop.send(true).unwrap(),
        ),
    )
    .await
    .expect("the shutdown ends the hour's wait and the push loop");
    assert_eq!(summary.cycles, 1);
    assert_eq!(summary.push_refreshes, 0);
}

#[tokio::test]
async fn the_feed_status_and_the_push_counts_are_recorded_for_status() {
    let s = setup().await;
    first_cycle(&s).await;
    let feed = FakeFeed::default();
    *feed.status.lock().unwrap() = FeedStatus {
        subscribed: 2,
        polled: vec![("bob@example.com".into(), "access denied".into())],
        connections: 1,
        last_event_at: Some(Utc::now()),
        resubscribed: 0,
    };
    s.engine.calendars().set(
        "carol@example.com",
        vec![upcoming("c7", 1, "Carol's change")],
    );
    let (tx, mut rx) = unbounded_channel();
    tx.send(changed("carol@example.com")).unwrap();
    drop(tx);
    let (_stop, shutdown) = watch::channel(false);
    let summary = tokio::time::timeout(
        PATIENCE,
        run_push(
            &s.engine,
            Some(&feed),
            &mut rx,
            &WriterLock::new(),
            shutdown,
            |_| {},
        ),
    )
    .await
    .unwrap();
    assert_eq!((summary.refreshes, summary.written), (1, 1));
    let recorded = s.engine.state().feed_status().unwrap().expect("recorded");
    assert_eq!(recorded.feed, feed.status());
    assert_eq!(
        (
            recorded.changes,
            recorded.refreshes,
            recorded.written,
            recorded.polled_total
        ),
        (1, 1, 1, 1)
    );
}
