//! A [`StateStore`] in memory: for the demo, for tests, and for runs that
//! must not touch the state database. What both stores must do is checked
//! against both by `state::contract`. Behaves like the SQLite store
//! (user names compared case-insensitively, failures keep the written hash,
//! newest cycles first) except that it forgets everything on exit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::replication::ports::{CycleRecord, FeedRecord, StateError, StateStore, UserRecord};

/// Cycles kept; older ones are dropped (the SQLite store prunes too).
pub const MEMORY_CYCLES_KEPT: usize = 1000;

#[derive(Default)]
struct Inner {
    /// Keyed by the lower-cased user name.
    users: HashMap<String, UserRecord>,
    /// Newest first.
    cycles: VecDeque<CycleRecord>,
    feed: Option<FeedRecord>,
}

/// An in-memory state store.
#[derive(Default)]
pub struct MemoryStateStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStateStore")
            .field("users", &inner.users.len())
            .field("cycles", &inner.cycles.len())
            .finish()
    }
}

impl MemoryStateStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `users` (e.g. a copy of another store's records).
    pub fn with_users(users: impl IntoIterator<Item = UserRecord>) -> Self {
        let store = Self::new();
        store.lock().users = users
            .into_iter()
            .map(|r| (r.user_name.to_lowercase(), r))
            .collect();
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not make the records unreadable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<'a>(inner: &'a mut Inner, user_name: &str) -> &'a mut UserRecord {
        inner
            .users
            .entry(user_name.to_lowercase())
            .or_insert_with(|| UserRecord {
                user_name: user_name.to_owned(),
                written_hash: None,
                written_at: None,
                last_error: None,
                last_error_at: None,
                sending_hash: None,
                unsettled_hash: None,
            })
    }
}

impl StateStore for MemoryStateStore {
    fn user(&self, user_name: &str) -> Result<Option<UserRecord>, StateError> {
        Ok(self.lock().users.get(&user_name.to_lowercase()).cloned())
    }

    fn users(&self) -> Result<Vec<UserRecord>, StateError> {
        let mut users: Vec<UserRecord> = self.lock().users.values().cloned().collect();
        users.sort_by_key(|a| a.user_name.to_lowercase());
        Ok(users)
    }

    fn record_sending(&self, user_name: &str, hash: &str) -> Result<(), StateError> {
        let mut inner = self.lock();
        Self::entry(&mut inner, user_name).sending_hash = Some(hash.to_owned());
        Ok(())
    }

    fn settle_unanswered_sends(&self) -> Result<usize, StateError> {
        let mut inner = self.lock();
        let mut settled = 0;
        for record in inner.users.values_mut() {
            if let Some(hash) = record.sending_hash.take() {
                record.unsettled_hash = Some(hash);
                settled += 1;
            }
        }
        Ok(settled)
    }

    fn record_written(
        &self,
        user_name: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        let record = Self::entry(&mut inner, user_name);
        record.written_hash = Some(hash.to_owned());
        record.written_at = Some(at);
        record.last_error = None;
        record.last_error_at = None;
        record.sending_hash = None;
        if record.unsettled_hash.as_deref().is_some_and(|u| u != hash) {
            record.unsettled_hash = Some(hash.to_owned());
        } else {
            record.unsettled_hash = None;
        }
        Ok(())
    }

    fn record_failure(
        &self,
        user_name: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        let record = Self::entry(&mut inner, user_name);
        record.last_error = Some(reason.to_owned());
        record.last_error_at = Some(at);
        Ok(())
    }

    fn clear_failure(&self, user_name: &str) -> Result<(), StateError> {
        // As in the SQLite store: a user never seen gets no record.
        if let Some(record) = self.lock().users.get_mut(&user_name.to_lowercase()) {
            record.last_error = None;
            record.last_error_at = None;
        }
        Ok(())
    }

    fn record_cycle(&self, cycle: &CycleRecord) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.cycles.push_front(cycle.clone());
        inner.cycles.truncate(MEMORY_CYCLES_KEPT);
        Ok(())
    }

    fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StateError> {
        Ok(self.lock().cycles.iter().take(limit).cloned().collect())
    }

    fn record_feed_status(&self, record: &FeedRecord) -> Result<(), StateError> {
        let mut record = record.clone();
        record.feed.polled.truncate(super::POLLED_KEPT);
        self.lock().feed = Some(record);
        Ok(())
    }

    fn feed_status(&self) -> Result<Option<FeedRecord>, StateError> {
        Ok(self.lock().feed.clone())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, minute, 0).unwrap()
    }

    fn cycle(minute: u32) -> CycleRecord {
        CycleRecord {
            started_at: at(minute),
            finished_at: at(minute),
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

    #[test]
    fn user_names_are_compared_case_insensitively_and_keep_their_first_spelling() {
        let store = MemoryStateStore::new();
        assert_eq!(store.user("alice").unwrap(), None);
        store.record_written("Alice", "h1", at(0)).unwrap();
        store
            .record_failure("alice", "Exchange down", at(1))
            .unwrap();
        let record = store.user("ALICE").unwrap().unwrap();
        assert_eq!(record.user_name, "Alice");
        assert_eq!(record.written_hash.as_deref(), Some("h1"));
        assert_eq!(record.written_at, Some(at(0)));
        assert_eq!(record.last_error.as_deref(), Some("Exchange down"));
        assert_eq!(record.last_error_at, Some(at(1)));

        store.record_written("alice", "h2", at(2)).unwrap();
        let record = store.user("alice").unwrap().unwrap();
        assert_eq!(record.written_hash.as_deref(), Some("h2"));
        assert_eq!((record.last_error, record.last_error_at), (None, None));

        store.record_failure("bob", "no mailbox", at(3)).unwrap();
        let names: Vec<_> = store
            .users()
            .unwrap()
            .into_iter()
            .map(|u| (u.user_name, u.written_hash))
            .collect();
        assert_eq!(
            names,
            [
                ("Alice".to_owned(), Some("h2".to_owned())),
                ("bob".to_owned(), None)
            ]
        );
    }

    #[test]
    fn cycles_come_back_newest_first_and_old_ones_are_dropped() {
        let store = MemoryStateStore::new();
        for minute in 0..3 {
            store.record_cycle(&cycle(minute)).unwrap();
        }
        let recent = store.recent_cycles(2).unwrap();
        assert_eq!(
            recent.iter().map(|c| c.started_at).collect::<Vec<_>>(),
            [at(2), at(1)]
        );
        for _ in 0..MEMORY_CYCLES_KEPT {
            store.record_cycle(&cycle(5)).unwrap();
        }
        assert_eq!(
            store.recent_cycles(usize::MAX).unwrap().len(),
            MEMORY_CYCLES_KEPT
        );
    }

    #[test]
    fn a_copy_of_other_records_starts_where_they_left_off() {
        let store = MemoryStateStore::with_users([UserRecord {
            user_name: "Carol".into(),
            written_hash: Some("h".into()),
            written_at: Some(at(0)),
            last_error: None,
            last_error_at: None,
            sending_hash: None,
            unsettled_hash: None,
        }]);
        assert_eq!(
            store
                .user("carol")
                .unwrap()
                .unwrap()
                .written_hash
                .as_deref(),
            Some("h")
        );
    }
}
