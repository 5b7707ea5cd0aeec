//! The replication engine against the UCServer simulator over real loopback
//! sockets, with a static user list and a scripted calendar source (the
//! Exchange simulator end-to-end is tested with the binary).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::replication::*;
use chrono::{DateTime, Utc};
use ews_calendar_replicator::replication::{
    run_scheduled, CycleOptions, CycleRecord, MatchedBy, Progress, ReplicationSettings, StateError,
    StateStore, UserOutcome, UserRecord,
};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_calendar_replicator::ucserver::asn::{
    AsnRequestError, ADMIN_GET_USER_PROFILES, APPOINTMENT_SET_ENTRY_LIST,
};
use tokio::sync::{watch, Semaphore};

// ------------------------------------------------------------------ cycles

#[tokio::test]
async fn offline_users_are_replicated_and_a_second_cycle_writes_nothing() {
    let s = setup().await;
    let first = cycle(&s).await;
    assert!(first.error.is_none(), "{first:#?}");
    assert_eq!(names(&first), ["alice", "carol", "dave", "erin", ADMIN]);
    assert_eq!(outcome(&first, "alice"), &UserOutcome::Written);
    assert_eq!(outcome(&first, "carol"), &UserOutcome::Written);
    for skipped in ["dave", "erin", ADMIN] {
        assert!(
            matches!(outcome(&first, skipped), UserOutcome::Skipped { .. }),
            "{skipped}: {first:#?}"
        );
    }
    let UserOutcome::Skipped { reason } = outcome(&first, "erin") else {
        unreachable!()
    };
    assert!(reason.contains("no mailbox"), "{reason}");
    let UserOutcome::Skipped { reason } = outcome(&first, "dave") else {
        unreachable!()
    };
    assert!(reason.contains("no directory user"), "{reason}");
    let matched: Vec<_> = first.users.iter().map(|u| u.matched_by).collect();
    assert_eq!(
        matched,
        [
            Some(MatchedBy::ObjectGuid),
            Some(MatchedBy::Dn),
            None,
            Some(MatchedBy::SamAccountName),
            None
        ]
    );
    assert!(first.succeeded());
    assert_eq!(
        (
            first.counters.listed,
            first.counters.written,
            first.counters.skipped
        ),
        (5, 2, 3)
    );
    assert_eq!(first.counters.appointments_written, 3);

    // What reached the UCServer: alice's two and carol's one, bob nothing.
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning", "Review"]);
    assert_eq!(stored_subjects(&s.sim, "carol"), ["Workshop"]);
    assert_eq!(s.sim.appointments("bob"), None);
    let alice = s.sim.appointments("alice").unwrap();
    assert_eq!(alice[0].entry_id, "a1");
    assert_eq!(alice[0].status, 2);
    assert_eq!(alice[0].start, at(2, 9));
    // One read for all mailboxes, over the window.
    assert_eq!(
        *s.engine.calendars().requests.lock().unwrap(),
        [vec![
            "alice@example.com".to_owned(),
            "carol@example.com".to_owned()
        ]]
    );
    assert_eq!(first.window_start, now());
    assert_eq!(first.window_end, now() + chrono::Duration::days(30));

    let second = cycle(&s).await;
    assert_eq!(s.sim.total_writes(), 2, "the second cycle wrote");
    assert_eq!(outcome(&second, "alice"), &UserOutcome::Unchanged);
    assert_eq!(outcome(&second, "carol"), &UserOutcome::Unchanged);
    assert_eq!((second.counters.written, second.counters.unchanged), (0, 2));

    // Both cycles were recorded, newest first.
    let cycles = s.engine.state().recent_cycles(10).unwrap();
    assert_eq!(
        cycles
            .iter()
            .map(|c| (c.written, c.unchanged))
            .collect::<Vec<_>>(),
        [(0, 2), (2, 0)]
    );
}

#[tokio::test]
async fn a_changed_calendar_is_written_once() {
    let s = setup().await;
    cycle(&s).await;
    s.engine.calendars().set(
        "alice@example.com",
        vec![meeting("a1", 2, 9, "Planning (moved)")],
    );
    let changed = cycle(&s).await;
    assert_eq!(outcome(&changed, "alice"), &UserOutcome::Written);
    assert_eq!(outcome(&changed, "carol"), &UserOutcome::Unchanged);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning (moved)"]);
    assert_eq!(
        (s.sim.write_count("alice"), s.sim.write_count("carol")),
        (2, 1)
    );

    cycle(&s).await;
    assert_eq!(
        (s.sim.write_count("alice"), s.sim.write_count("carol")),
        (2, 1)
    );
}

#[tokio::test]
async fn a_user_who_logs_on_is_no_longer_replicated() {
    let s = setup().await;
    cycle(&s).await;
    assert!(s.sim.set_online("alice", true));
    s.engine
        .calendars()
        .set("alice@example.com", vec![meeting("a9", 4, 9, "New")]);
    let report = cycle(&s).await;
    assert!(!names(&report).contains(&"alice"), "{report:#?}");
    assert_eq!(s.sim.write_count("alice"), 1);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning", "Review"]);

    // Logged off again: replicated again, with the current calendar.
    assert!(s.sim.set_online("alice", false));
    let report = cycle(&s).await;
    assert_eq!(outcome(&report, "alice"), &UserOutcome::Written);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["New"]);
}

#[tokio::test]
async fn all_users_are_replicated_when_only_offline_users_is_off() {
    let s = setup_with(ReplicationSettings {
        only_offline_users: false,
        ..ReplicationSettings::default()
    })
    .await;
    let report = cycle(&s).await;
    assert_eq!(outcome(&report, "bob"), &UserOutcome::Written);
    assert_eq!(stored_subjects(&s.sim, "bob"), ["Bob's"]);
}

#[tokio::test]
async fn a_failed_read_leaves_the_ucserver_untouched_and_the_next_cycle_catches_up() {
    let s = setup().await;
    cycle(&s).await;
    let calendars = s.engine.calendars();
    calendars.set("alice@example.com", vec![meeting("a5", 5, 9, "Later")]);
    calendars.down.store(true, Ordering::SeqCst);

    let down = cycle(&s).await;
    for user in ["alice", "carol"] {
        let UserOutcome::Failed { reason } = outcome(&down, user) else {
            panic!("{user} did not fail: {down:#?}")
        };
        assert!(reason.contains("connection refused"), "{reason}");
        assert!(
            reason.contains("keeps the user's previous appointments"),
            "{reason}"
        );
    }
    assert!(!down.succeeded());
    assert_eq!(s.sim.total_writes(), 2, "a failed read wrote something");
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning", "Review"]);
    let record = s.engine.state().user("alice").unwrap().unwrap();
    assert!(record.written_hash.is_some());
    assert!(record.last_error.unwrap().contains("connection refused"));
    let recorded = &s.engine.state().recent_cycles(1).unwrap()[0];
    assert_eq!(recorded.failed.len(), 2);

    // One mailbox failing alone affects only that user.
    calendars.down.store(false, Ordering::SeqCst);
    calendars.set_error("carol@example.com", "ErrorMailboxMoveInProgress");
    let partial = cycle(&s).await;
    assert_eq!(outcome(&partial, "alice"), &UserOutcome::Written);
    assert!(
        matches!(outcome(&partial, "carol"), UserOutcome::Failed { reason } if reason.contains("ErrorMailboxMoveInProgress"))
    );
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Later"]);
    assert_eq!(stored_subjects(&s.sim, "carol"), ["Workshop"]);

    // Back: carol's unchanged calendar is not rewritten, her error is cleared
    // only by a write (she keeps the last error until then).
    calendars.set("carol@example.com", vec![meeting("c1", 2, 10, "Workshop")]);
    let back = cycle(&s).await;
    assert_eq!(outcome(&back, "carol"), &UserOutcome::Unchanged);
    assert_eq!(s.sim.write_count("carol"), 1);
    assert!(back.succeeded());
}

#[tokio::test]
async fn a_refused_write_loses_nothing_and_is_retried_next_cycle() {
    let s = setup().await;
    s.sim.fail_operation(
        APPOINTMENT_SET_ENTRY_LIST,
        1,
        AsnRequestError {
            error_detail: 5,
            error_string: "database busy".into(),
        },
    );
    let first = cycle(&s).await;
    // The first write (alice's) was refused, carol's went through.
    let UserOutcome::Failed { reason } = outcome(&first, "alice") else {
        panic!("{first:#?}")
    };
    assert!(reason.contains("database busy"), "{reason}");
    assert_eq!(outcome(&first, "carol"), &UserOutcome::Written);
    assert_eq!(s.sim.appointments("alice"), None);
    let record = s.engine.state().user("alice").unwrap().unwrap();
    assert_eq!(record.written_hash, None);

    let second = cycle(&s).await;
    assert_eq!(outcome(&second, "alice"), &UserOutcome::Written);
    assert_eq!(outcome(&second, "carol"), &UserOutcome::Unchanged);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning", "Review"]);
    let record = s.engine.state().user("alice").unwrap().unwrap();
    assert!(record.written_hash.is_some() && record.last_error.is_none());
}

/// The in-memory store, except that it refuses every before-send record (a
/// full disk, a read-only state file).
struct RefusesSendRecords(MemoryStateStore);

impl StateStore for RefusesSendRecords {
    fn user(&self, user_name: &str) -> Result<Option<UserRecord>, StateError> {
        self.0.user(user_name)
    }
    fn users(&self) -> Result<Vec<UserRecord>, StateError> {
        self.0.users()
    }
    fn record_sending(&self, _user_name: &str, _hash: &str) -> Result<(), StateError> {
        Err(StateError {
            path: "/var/lib/ews-calendar-replicator/state.sqlite".into(),
            message: "database or disk is full".into(),
        })
    }
    fn settle_unanswered_sends(&self) -> Result<usize, StateError> {
        self.0.settle_unanswered_sends()
    }
    fn record_written(&self, user: &str, hash: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        self.0.record_written(user, hash, at)
    }
    fn record_failure(
        &self,
        user: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.0.record_failure(user, reason, at)
    }
    fn clear_failure(&self, user_name: &str) -> Result<(), StateError> {
        self.0.clear_failure(user_name)
    }
    fn record_cycle(&self, cycle: &CycleRecord) -> Result<(), StateError> {
        self.0.record_cycle(cycle)
    }
    fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StateError> {
        self.0.recent_cycles(limit)
    }
}

#[tokio::test]
async fn a_send_the_state_database_cannot_record_is_not_sent_and_is_not_blamed_on_the_ucserver() {
    let s = setup_with_state(
        ReplicationSettings::default(),
        RefusesSendRecords(MemoryStateStore::new()),
    )
    .await;
    let report = cycle(&s).await;
    let UserOutcome::Failed { reason } = outcome(&report, "alice") else {
        panic!("{report:#?}")
    };
    assert!(
        reason.starts_with("not sent: the state database did not record the send")
            && reason.contains("database or disk is full")
            && reason.contains("disk space and permissions"),
        "{reason}"
    );
    assert!(!reason.contains("UCServer"), "{reason}");
    // Nothing reached the UCServer: a list the state cannot track is not sent.
    assert_eq!(s.sim.write_count("alice"), 0);
    assert_eq!(s.sim.appointments("alice"), None);
}

#[tokio::test]
async fn a_listing_failure_fails_the_cycle_with_nothing_written() {
    let s = setup().await;
    s.sim.fail_operation(
        ADMIN_GET_USER_PROFILES,
        1,
        AsnRequestError {
            error_detail: 5,
            error_string: "user directory unavailable".into(),
        },
    );
    let report = cycle(&s).await;
    let error = report.error.clone().expect("the cycle failed");
    assert!(error.contains("did not list its users"), "{error}");
    assert!(report.users.is_empty() && !report.succeeded());
    assert_eq!(s.sim.total_writes(), 0);
    assert_eq!(s.engine.calendars().reads.load(Ordering::SeqCst), 0);
    let recorded = &s.engine.state().recent_cycles(1).unwrap()[0];
    assert_eq!(recorded.error.as_deref(), Some(error.as_str()));

    cycle(&s).await;
    assert_eq!(s.sim.total_writes(), 2);
}

#[tokio::test]
async fn a_broken_user_list_fails_the_cycle_with_nothing_written() {
    let s = setup().await;
    let list = s._dir.path().join("users.toml");
    std::fs::write(&list, "[[user]]\nsmtp = \"x@example.com\"\n").unwrap();
    let report = cycle(&s).await;
    let error = report.error.expect("the cycle failed");
    assert!(
        error.contains("directory") && error.contains("line 1"),
        "{error}"
    );
    assert_eq!(s.sim.total_writes(), 0);
    assert_eq!(s.engine.calendars().reads.load(Ordering::SeqCst), 0);
}

// ------------------------------------------------------------------ options

#[tokio::test]
async fn a_dry_run_writes_nothing_and_reports_the_lists_it_would_write() {
    let s = setup().await;
    let steps = Arc::new(Mutex::new(Vec::new()));
    let recorder = steps.clone();
    let options = CycleOptions {
        dry_run: true,
        progress: Some(Arc::new(move |p: &Progress| {
            recorder.lock().unwrap().push(p.clone())
        })),
        ..CycleOptions::default()
    };
    let report = s.engine.run_cycle(now(), &options).await;
    assert!(report.dry_run && report.succeeded());
    assert_eq!(outcome(&report, "alice"), &UserOutcome::WouldWrite);
    assert_eq!(report.counters.would_write, 2);
    assert_eq!(s.sim.total_writes(), 0);
    assert!(s.engine.state().users().unwrap().is_empty());
    assert!(s.engine.state().recent_cycles(10).unwrap().is_empty());

    let json = serde_json::to_value(&report).unwrap();
    let alice = &json["users"][0];
    assert_eq!(alice["user_name"], "alice");
    assert_eq!(alice["outcome"], "would_write");
    assert_eq!(alice["mailbox"], "alice@example.com");
    assert_eq!(alice["appointments"][0]["subject"], "Planning");
    assert_eq!(alice["appointments"][0]["status"], "busy");
    assert_eq!(alice["appointments"][1]["start"], "2026-12-03T14:00:00Z");
    assert_eq!(json["users"][2]["outcome"], "skipped");
    assert!(json["users"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("no directory user"));

    let steps = steps.lock().unwrap().clone();
    assert_eq!(
        steps[..2],
        [
            Progress::UsersListed {
                listed: 5,
                selected: 5
            },
            Progress::ReadingCalendars { mailboxes: 2 }
        ]
    );
    assert_eq!(
        steps.last(),
        Some(&Progress::UserDone {
            done: 2,
            total: 2,
            user_name: "carol".into()
        })
    );

    // After a real cycle, a dry run sees only the change.
    cycle(&s).await;
    s.engine
        .calendars()
        .set("carol@example.com", vec![meeting("c2", 7, 9, "Other")]);
    let report = s.engine.run_cycle(now(), &options).await;
    assert_eq!(outcome(&report, "alice"), &UserOutcome::Unchanged);
    assert_eq!(outcome(&report, "carol"), &UserOutcome::WouldWrite);
    assert_eq!(s.sim.total_writes(), 2);
    assert_eq!(stored_subjects(&s.sim, "carol"), ["Workshop"]);
}

#[tokio::test]
async fn named_users_only_are_handled_and_unlisted_names_are_reported() {
    let s = setup().await;
    let options = CycleOptions {
        only_users: vec!["Carol".into(), "bob".into(), "nobody".into()],
        ..CycleOptions::default()
    };
    let report = s.engine.run_cycle(now(), &options).await;
    assert_eq!(names(&report), ["carol", "bob", "nobody"]);
    assert_eq!(outcome(&report, "carol"), &UserOutcome::Written);
    let UserOutcome::Skipped { reason } = outcome(&report, "bob") else {
        panic!("{report:#?}")
    };
    assert!(reason.contains("logged on"), "{reason}");
    assert!(matches!(
        outcome(&report, "nobody"),
        UserOutcome::Skipped { .. }
    ));
    assert_eq!(s.sim.appointments("alice"), None);
    assert_eq!(
        *s.engine.calendars().requests.lock().unwrap(),
        [vec!["carol@example.com".to_owned()]]
    );
}

// ------------------------------------------------------------------ scheduler

fn quick(interval_ms: u64) -> ReplicationSettings {
    ReplicationSettings {
        interval: Duration::from_millis(interval_ms),
        ..ReplicationSettings::default()
    }
}

#[tokio::test]
async fn scheduled_cycles_never_overlap_and_stop_on_shutdown() {
    let s = Arc::new(setup_with(quick(5)).await);
    let (stop, shutdown) = watch::channel(false);
    let mut reports = Vec::new();
    let summary = run_scheduled(&s.engine, CycleOptions::default(), shutdown, |report| {
        reports.push(report.clone());
        if reports.len() == 3 {
            stop.send(true).unwrap();
        }
    })
    .await;
    assert_eq!(summary.cycles, 3);
    assert!(!summary.abandoned);
    assert_eq!(s.engine.calendars().reads.load(Ordering::SeqCst), 3);
    assert_eq!(s.engine.calendars().max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(
        reports
            .iter()
            .map(|r| r.counters.written)
            .collect::<Vec<_>>(),
        [2, 0, 0]
    );
    // Each cycle started after the previous one finished.
    for pair in reports.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at);
    }
}

#[tokio::test]
async fn a_cycle_longer_than_the_interval_is_reported_and_the_next_follows_directly() {
    let s = setup_with(quick(1)).await;
    *s.engine.calendars().delay.lock().unwrap() = Duration::from_millis(50);
    let (stop, shutdown) = watch::channel(false);
    let mut overran = Vec::new();
    let summary = run_scheduled(&s.engine, CycleOptions::default(), shutdown, |report| {
        overran.push(report.overran);
        if overran.len() == 2 {
            stop.send(true).unwrap();
        }
    })
    .await;
    assert_eq!(overran, [true, true]);
    assert_eq!((summary.cycles, summary.overruns), (2, 1));
    let recorded = s.engine.state().recent_cycles(10).unwrap();
    assert!(recorded.iter().all(|c| c.overran));
}

#[tokio::test]
async fn a_shutdown_during_the_read_abandons_the_cycle_without_writing() {
    let s = Arc::new(setup_with(quick(60_000)).await);
    s.engine.calendars().hold.store(true, Ordering::SeqCst);
    let (stop, shutdown) = watch::channel(false);
    let runner = {
        let s = s.clone();
        tokio::spawn(async move {
            run_scheduled(&s.engine, CycleOptions::default(), shutdown, |_| {}).await
        })
    };
    s.engine.calendars().read_started.notified().await;
    stop.send(true).unwrap();
    let summary = runner.await.unwrap();
    assert_eq!(summary.cycles, 1);
    assert!(summary.abandoned);
    assert_eq!(s.sim.total_writes(), 0);
    assert!(s.engine.state().users().unwrap().is_empty());
    let recorded = &s.engine.state().recent_cycles(1).unwrap()[0];
    assert!(recorded.error.as_deref().unwrap().contains("abandoned"));
}

#[tokio::test]
async fn a_shutdown_while_waiting_ends_the_wait_at_once() {
    let s = Arc::new(setup_with(quick(3_600_000)).await);
    let (stop, shutdown) = watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = {
        let s = s.clone();
        tokio::spawn(async move {
            run_scheduled(&s.engine, CycleOptions::default(), shutdown, move |r| {
                done_tx.send(r.counters.written).unwrap();
            })
            .await
        })
    };
    // After the first cycle the scheduler waits an hour; the shutdown must
    // end that wait (else this test hangs rather than failing a timing).
    assert_eq!(done_rx.recv().await, Some(2));
    stop.send(true).unwrap();
    let summary = runner.await.unwrap();
    assert_eq!(summary.cycles, 1);
    assert!(!summary.abandoned);
    assert_eq!(s.sim.total_writes(), 2);
}

#[tokio::test]
async fn a_shutdown_between_writes_keeps_every_finished_user_and_touches_no_other() {
    // One write at a time, so that "between two writes" exists.
    let s = setup_with(ReplicationSettings {
        write_concurrency: 1,
        ..ReplicationSettings::default()
    })
    .await;
    let (stop, shutdown) = watch::channel(false);
    let stop = Arc::new(stop);
    let trigger = stop.clone();
    let options = CycleOptions {
        shutdown: Some(shutdown),
        // Shutdown requested as soon as the first user is done.
        progress: Some(Arc::new(move |p: &Progress| {
            if matches!(p, Progress::UserDone { done: 1, .. }) {
                trigger.send(true).unwrap();
            }
        })),
        ..CycleOptions::default()
    };
    let report = s.engine.run_cycle(now(), &options).await;
    assert!(report.abandoned && !report.succeeded());
    assert_eq!(outcome(&report, "alice"), &UserOutcome::Written);
    assert_eq!(outcome(&report, "carol"), &UserOutcome::Abandoned);
    assert_eq!((report.counters.written, report.counters.abandoned), (1, 1));
    assert_eq!(
        (s.sim.write_count("alice"), s.sim.write_count("carol")),
        (1, 0)
    );
    let state = s.engine.state();
    assert!(state.user("alice").unwrap().unwrap().written_hash.is_some());
    assert_eq!(state.user("carol").unwrap(), None);

    // The next cycle writes carol and leaves alice alone.
    let next = cycle(&s).await;
    assert_eq!(outcome(&next, "alice"), &UserOutcome::Unchanged);
    assert_eq!(outcome(&next, "carol"), &UserOutcome::Written);
}

#[tokio::test]
async fn a_calendar_is_written_while_the_others_are_still_being_read() {
    let s = setup().await;
    let gate = Arc::new(Semaphore::new(0));
    *s.engine.calendars().stream_gate.lock().unwrap() = Some(gate.clone());
    let written = || {
        ["alice", "bob", "carol"]
            .map(|u| s.sim.write_count(u))
            .iter()
            .sum::<usize>()
    };
    // The source holds every answer after the first until a write reached
    // the UCServer: an engine that waited for the whole read would never
    // write, and the cycle would not finish.
    let release_after_first_write = async {
        while written() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before_release = written();
        gate.add_permits(10);
        before_release
    };
    let (report, written_before_release) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(cycle(&s), release_after_first_write)
    })
    .await
    .expect("the first calendar was not written while the others were held back");
    assert_eq!(written_before_release, 1);
    assert!(report.succeeded(), "{report:#?}");
    assert!(report.counters.written >= 2, "{report:#?}");
    assert_eq!(written(), report.counters.written);
}
