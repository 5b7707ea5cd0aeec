//! What every [`StateStore`] must do, written once and run against both
//! stores (`memory::…` and `sqlite::…` tests): the engine relies on these
//! whichever store it is given, so the demo and dry runs behave as the
//! service does.

use chrono::{DateTime, TimeZone as _, Utc};

use super::{MemoryStateStore, SqliteStateStore};
use crate::replication::ports::{CycleRecord, FeedRecord, FeedStatus, StateStore};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, minute, 0).unwrap()
}

fn cycle(minute: u32) -> CycleRecord {
    CycleRecord {
        started_at: at(minute),
        finished_at: at(minute + 1),
        users_listed: 3,
        written: 1,
        unchanged: 1,
        skipped: 1,
        failed: vec![],
        overran: false,
        error: None,
        partial: false,
        could_not_run: false,
        attempts: 1,
    }
}

/// Sends that got no answer become unsettled until written once more.
fn unanswered_sends_become_unsettled_until_written_once_more(store: &dyn StateStore) {
    let at = at(0);
    let unsettled = |user: &str| store.user(user).unwrap().unwrap().unsettled_hash;
    // A send answered: nothing stays behind.
    store.record_sending("alice", "a1").unwrap();
    store.record_written("alice", "a1", at).unwrap();
    // Sends never answered (bob's process was killed, carol's timed out).
    store.record_sending("bob", "b-sent").unwrap();
    store.record_sending("carol", "c-sent").unwrap();
    assert_eq!(
        store.user("bob").unwrap().unwrap().sending_hash.as_deref(),
        Some("b-sent")
    );
    assert_eq!(store.settle_unanswered_sends().unwrap(), 2);
    assert_eq!(store.settle_unanswered_sends().unwrap(), 0, "settled once");
    assert_eq!(unsettled("alice"), None);
    assert_eq!(unsettled("bob").as_deref(), Some("b-sent"));
    // Bob's calendar is the list that was in flight: one write settles it.
    store.record_sending("bob", "b-sent").unwrap();
    store.record_written("bob", "b-sent", at).unwrap();
    assert_eq!(unsettled("bob"), None);
    // Carol's changed: the unanswered list may still be stored after this
    // write, so one more write (of the list then current) is due.
    store.record_sending("carol", "c-now").unwrap();
    store.record_written("carol", "c-now", at).unwrap();
    let carol = store.user("carol").unwrap().unwrap();
    assert_eq!(carol.unsettled_hash.as_deref(), Some("c-now"));
    assert_eq!(carol.sending_hash, None);
    assert_eq!(carol.written_hash.as_deref(), Some("c-now"));
    store.record_written("carol", "c-now", at).unwrap();
    assert_eq!(unsettled("carol"), None);
    // A failed write keeps its send: it may have been stored.
    store.record_sending("alice", "a2").unwrap();
    store.record_failure("alice", "timed out", at).unwrap();
    assert_eq!(store.settle_unanswered_sends().unwrap(), 1);
    assert_eq!(unsettled("alice").as_deref(), Some("a2"));
}

fn a_failure_keeps_the_written_hash_and_a_write_clears_the_error(store: &dyn StateStore) {
    assert_eq!(store.user("alice").unwrap(), None);
    store.record_written("alice", "hash-1", at(1)).unwrap();
    store
        .record_failure("alice", "Exchange timed out", at(2))
        .unwrap();
    let record = store.user("alice").unwrap().unwrap();
    assert_eq!(record.written_hash.as_deref(), Some("hash-1"));
    assert_eq!(record.written_at, Some(at(1)));
    assert_eq!(record.last_error.as_deref(), Some("Exchange timed out"));
    assert_eq!(record.last_error_at, Some(at(2)));

    store.record_written("alice", "hash-2", at(3)).unwrap();
    let record = store.user("alice").unwrap().unwrap();
    assert_eq!(record.written_hash.as_deref(), Some("hash-2"));
    assert_eq!((record.last_error, record.last_error_at), (None, None));

    // A user who never had a successful write has no hash; users come back
    // in name order.
    store.record_failure("bob", "no mailbox", at(4)).unwrap();
    let users: Vec<_> = store
        .users()
        .unwrap()
        .into_iter()
        .map(|u| (u.user_name, u.written_hash))
        .collect();
    assert_eq!(
        users,
        [
            ("alice".to_owned(), Some("hash-2".to_owned())),
            ("bob".to_owned(), None)
        ]
    );
}

fn clearing_a_failure_keeps_the_written_hash_and_time(store: &dyn StateStore) {
    store.record_written("alice", "hash-1", at(1)).unwrap();
    store
        .record_failure("alice", "Exchange down", at(2))
        .unwrap();
    store.clear_failure("alice").unwrap();
    let record = store.user("alice").unwrap().unwrap();
    assert_eq!((record.last_error, record.last_error_at), (None, None));
    assert_eq!(record.written_hash.as_deref(), Some("hash-1"));
    assert_eq!(record.written_at, Some(at(1)));
    // Clearing a user never seen is not an error and creates nothing.
    store.clear_failure("nobody").unwrap();
    assert!(store.user("nobody").unwrap().is_none());
}

fn recent_cycles_are_newest_first_and_limited(store: &dyn StateStore) {
    for minute in 0..5 {
        store.record_cycle(&cycle(minute * 2)).unwrap();
    }
    let cycles = store.recent_cycles(3).unwrap();
    let starts: Vec<_> = cycles.iter().map(|c| c.started_at).collect();
    assert_eq!(starts, vec![at(8), at(6), at(4)]);
    assert_eq!(cycles[0], cycle(8), "recorded whole");
    assert_eq!(store.recent_cycles(100).unwrap().len(), 5);
    assert!(store.recent_cycles(0).unwrap().is_empty());
}

/// The feed status is one record, replaced whole; a long polled list is
/// cut to `POLLED_KEPT` entries, its full count kept.
fn the_feed_status_is_replaced_and_its_polled_list_bounded(store: &dyn StateStore) {
    assert_eq!(store.feed_status().unwrap(), None);
    let polled: Vec<(String, String)> = (0..250)
        .map(|n| (format!("m{n}@example.com"), "access denied".to_owned()))
        .collect();
    let record = |minute: u32, polled: Vec<(String, String)>| FeedRecord {
        recorded_at: at(minute),
        polled_total: polled.len(),
        feed: FeedStatus {
            subscribed: 7,
            polled,
            connections: 1,
            last_event_at: Some(at(minute)),
            resubscribed: 2,
        },
        changes: 11,
        resyncs: 3,
        refreshes: 5,
        written: 4,
    };
    store
        .record_feed_status(&record(1, polled.clone()))
        .unwrap();
    let stored = store.feed_status().unwrap().unwrap();
    assert_eq!(stored.polled_total, 250);
    assert_eq!(stored.feed.polled, polled[..super::POLLED_KEPT]);
    assert_eq!(
        FeedRecord {
            feed: FeedStatus {
                polled: Vec::new(),
                ..stored.feed.clone()
            },
            ..stored
        },
        record(1, Vec::new()).with_total(250),
    );
    store.record_feed_status(&record(2, Vec::new())).unwrap();
    assert_eq!(store.feed_status().unwrap(), Some(record(2, Vec::new())));
}

impl FeedRecord {
    fn with_total(self, polled_total: usize) -> FeedRecord {
        FeedRecord {
            polled_total,
            ..self
        }
    }
}

/// One `#[test]` per contract function for the store `$make` returns
/// (with whatever must outlive it, such as its directory).
macro_rules! contract_tests {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;

            #[test]
            fn unanswered_sends_become_unsettled_until_written_once_more() {
                let (_keep, store) = $make;
                super::unanswered_sends_become_unsettled_until_written_once_more(&store);
            }

            #[test]
            fn a_failure_keeps_the_written_hash_and_a_write_clears_the_error() {
                let (_keep, store) = $make;
                super::a_failure_keeps_the_written_hash_and_a_write_clears_the_error(&store);
            }

            #[test]
            fn clearing_a_failure_keeps_the_written_hash_and_time() {
                let (_keep, store) = $make;
                super::clearing_a_failure_keeps_the_written_hash_and_time(&store);
            }

            #[test]
            fn recent_cycles_are_newest_first_and_limited() {
                let (_keep, store) = $make;
                super::recent_cycles_are_newest_first_and_limited(&store);
            }

            #[test]
            fn the_feed_status_is_replaced_and_its_polled_list_bounded() {
                let (_keep, store) = $make;
                super::the_feed_status_is_replaced_and_its_polled_list_bounded(&store);
            }
        }
    };
}

contract_tests!(memory, ((), MemoryStateStore::new()));
contract_tests!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStateStore::open(&dir.path().join("state.sqlite")).unwrap();
    (dir, store)
});
