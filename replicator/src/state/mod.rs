//! The state stores, both implementing the engine's port
//! [`StateStore`](crate::replication::StateStore): the state database here,
//! and [`MemoryStateStore`] (`memory`) for the demo and dry runs.
//!
//! The state database: per UCServer user the hash of the list last written
//! and the last error, per cycle a summary. SQLite (WAL), one file, private
//! to the service user (mode 0600). Every record is one transaction, so a
//! crash leaves the old or the new record, never half of one.

#[cfg(test)]
mod contract;
mod memory;
mod migrations;

pub use memory::{MemoryStateStore, MEMORY_CYCLES_KEPT};

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};

use crate::replication::ports::{
    CycleRecord, FeedRecord, FeedStatus, StateError, StateStore, UserFailure, UserRecord,
};

/// File name of the database inside the state directory.
pub const STATE_FILE_NAME: &str = "state.sqlite";

/// Cycle summaries kept; older ones are deleted as new ones are recorded
/// (at 15 minutes per cycle, about ten weeks).
pub const CYCLES_KEPT: u64 = 7000;

/// Polled mailboxes (with their reasons) kept in the recorded feed status:
/// enough for `status` to show what is wrong, without rewriting thousands
/// of rows every minute when a whole site is polled. The count is kept in
/// full.
pub const POLLED_KEPT: usize = 100;

/// [`StateStore`] on a SQLite file.
pub struct SqliteStateStore {
    path: PathBuf,
    connection: Mutex<Connection>,
    cycles_kept: u64,
}

impl std::fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStateStore {
    /// Opens the database at `path`, creating it (and its directory) if
    /// needed, and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStateStore, StateError> {
        let error = |message: String| StateError {
            path: path.display().to_string(),
            message,
        };
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(directory)
                .map_err(|e| {
                    error(format!(
                        "cannot create the directory {}: {e}; create it writable for the service user, or set [state] path",
                        directory.display()
                    ))
                })?;
        }
        // Create the file ourselves so that it is private from the start.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| error(open_failure_message(&e)))?;
        let connection = Connection::open(path).map_err(|e| {
            error(format!(
                "cannot open it: {e}; check that the file and its directory are writable for the service user"
            ))
        })?;
        restrict_permissions(path).map_err(|e| {
            error(format!(
                "cannot make it private to the service user (chmod 600): {e}"
            ))
        })?;
        let store = SqliteStateStore {
            path: path.to_owned(),
            connection: Mutex::new(connection),
            cycles_kept: CYCLES_KEPT,
        };
        store.prepare().map_err(|e| store.describe(e))?;
        Ok(store)
    }

    /// Keeps the newest `cycles` cycle summaries instead of [`CYCLES_KEPT`].
    pub fn with_cycles_kept(mut self, cycles: u64) -> SqliteStateStore {
        self.cycles_kept = cycles.max(1);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn prepare(&self) -> Result<(), rusqlite::Error> {
        let mut connection = self.lock();
        connection.busy_timeout(Duration::from_secs(10))?;
        // The first statement that reads the file: a file that is not a
        // database fails here.
        let mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %self.path.display(), mode, "state database is not in WAL mode");
        }
        connection.pragma_update(None, "foreign_keys", true)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        migrations::migrate(&mut connection)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so the connection stays usable.
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A database error as a [`StateError`] with the fix where one is known.
    fn describe(&self, error: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.display().to_string(),
            message: describe_sqlite_error(&error),
        }
    }
}

fn open_failure_message(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "cannot open or create it: {error}; give the service user write access to the file and its directory, or set [state] path"
        ),
        _ => format!("cannot open or create it: {error}; check the path in [state] path"),
    }
}

fn restrict_permissions(path: &Path) -> io::Result<()> {
    let metadata = fs::metadata(path)?;
    if metadata.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn describe_sqlite_error(error: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => format!(
            "the file is not a usable SQLite database ({error}); move it away (or delete it) and start again: \
             a new database is created, and every user's calendar is written once more"
        ),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => format!(
            "the database is locked by another process ({error}); is a second replicator running with the same [state] path?"
        ),
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) | Some(ErrorCode::CannotOpen) => format!(
            "cannot write it ({error}); give the service user write access to the file and its directory"
        ),
        Some(ErrorCode::DiskFull) => format!("the disk is full ({error}); free some space"),
        _ => match error {
            rusqlite::Error::SqliteFailure(_, Some(message))
                if message.starts_with(migrations::NEWER_SCHEMA_PREFIX) =>
            {
                message.clone()
            }
            _ => error.to_string(),
        },
    }
}

/// Stored as RFC 3339 text: readable with the `sqlite3` tool, and exact.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_timestamp(column: usize, text: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    column,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    })
    .transpose()
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        user_name: row.get(0)?,
        written_hash: row.get(1)?,
        written_at: parse_timestamp(2, row.get(2)?)?,
        last_error: row.get(3)?,
        last_error_at: parse_timestamp(4, row.get(4)?)?,
        sending_hash: row.get(5)?,
        unsettled_hash: row.get(6)?,
    })
}

const USER_COLUMNS: &str =
    "user_name, written_hash, written_at, last_error, last_error_at, sending_hash, unsettled_hash";

impl StateStore for SqliteStateStore {
    fn user(&self, user_name: &str) -> Result<Option<UserRecord>, StateError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE user_name = ?1"),
                params![user_name],
                user_from_row,
            )
            .optional()
            .map_err(|e| self.describe(e))
    }

    fn users(&self) -> Result<Vec<UserRecord>, StateError> {
        let connection = self.lock();
        let result = (|| {
            let mut statement = connection.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY user_name"
            ))?;
            let rows = statement.query_map([], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|e| self.describe(e))
    }

    fn record_sending(&self, user_name: &str, hash: &str) -> Result<(), StateError> {
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO users (user_name, sending_hash) VALUES (?1, ?2)
                 ON CONFLICT (user_name) DO UPDATE SET sending_hash = excluded.sending_hash",
                params![user_name, hash],
            )
            .map(|_| ())
            .map_err(|e| self.describe(e))
    }

    fn settle_unanswered_sends(&self) -> Result<usize, StateError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE users SET unsettled_hash = sending_hash, sending_hash = NULL
                 WHERE sending_hash IS NOT NULL",
                [],
            )
            .map_err(|e| self.describe(e))
    }

    fn record_written(
        &self,
        user_name: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut connection = self.lock();
        let result = (|| {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO users (user_name, written_hash, written_at, last_error, last_error_at)
                 VALUES (?1, ?2, ?3, NULL, NULL)
                 ON CONFLICT (user_name) DO UPDATE SET
                   written_hash = excluded.written_hash,
                   written_at = excluded.written_at,
                   last_error = NULL,
                   last_error_at = NULL,
                   sending_hash = NULL,
                   unsettled_hash = CASE
                     WHEN unsettled_hash IS NULL OR unsettled_hash = excluded.written_hash THEN NULL
                     ELSE excluded.written_hash
                   END",
                params![user_name, hash, timestamp(at)],
            )?;
            transaction.commit()
        })();
        result.map_err(|e| self.describe(e))
    }

    fn record_failure(
        &self,
        user_name: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut connection = self.lock();
        let result = (|| {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO users (user_name, last_error, last_error_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_name) DO UPDATE SET
                   last_error = excluded.last_error,
                   last_error_at = excluded.last_error_at",
                params![user_name, reason, timestamp(at)],
            )?;
            transaction.commit()
        })();
        result.map_err(|e| self.describe(e))
    }

    fn clear_failure(&self, user_name: &str) -> Result<(), StateError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE users SET last_error = NULL, last_error_at = NULL WHERE user_name = ?1",
                params![user_name],
            )
            .map(|_| ())
            .map_err(|e| self.describe(e))
    }

    fn record_cycle(&self, cycle: &CycleRecord) -> Result<(), StateError> {
        let mut connection = self.lock();
        let result = (|| {
            let transaction = connection.transaction()?;
            // The service failing to connect the same way again: one row
            // for the streak, so that the history keeps its real cycles.
            if cycle.could_not_run && cycle.failed.is_empty() {
                let extended = transaction.execute(
                    "UPDATE cycles SET finished_at = ?1, attempts = attempts + ?2
                     WHERE id = (SELECT MAX(id) FROM cycles)
                       AND could_not_run = 1 AND partial = ?3 AND error IS ?4
                       AND NOT EXISTS (SELECT 1 FROM cycle_failures WHERE cycle_id = cycles.id)",
                    params![
                        timestamp(cycle.finished_at),
                        cycle.attempts.max(1) as i64,
                        cycle.partial,
                        cycle.error,
                    ],
                )?;
                if extended == 1 {
                    return transaction.commit();
                }
            }
            transaction.execute(
                "INSERT INTO cycles (started_at, finished_at, users_listed, written, unchanged, skipped, overran, error, partial, could_not_run, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    timestamp(cycle.started_at),
                    timestamp(cycle.finished_at),
                    cycle.users_listed as i64,
                    cycle.written as i64,
                    cycle.unchanged as i64,
                    cycle.skipped as i64,
                    cycle.overran,
                    cycle.error,
                    cycle.partial,
                    cycle.could_not_run,
                    cycle.attempts.max(1) as i64,
                ],
            )?;
            let cycle_id = transaction.last_insert_rowid();
            {
                let mut insert = transaction.prepare(
                    "INSERT INTO cycle_failures (cycle_id, position, user_name, reason) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (position, failure) in cycle.failed.iter().enumerate() {
                    insert.execute(params![
                        cycle_id,
                        position as i64,
                        failure.user_name,
                        failure.reason
                    ])?;
                }
            }
            transaction.execute(
                "DELETE FROM cycles WHERE id <= ?1 - ?2",
                params![cycle_id, self.cycles_kept as i64],
            )?;
            transaction.commit()
        })();
        result.map_err(|e| self.describe(e))
    }

    fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.cycles_where("1", limit)
    }

    fn record_feed_status(&self, record: &FeedRecord) -> Result<(), StateError> {
        let feed = &record.feed;
        let kept = &feed.polled[..feed.polled.len().min(POLLED_KEPT)];
        let polled = serde_json::to_string(kept).map_err(|e| StateError {
            path: self.path.display().to_string(),
            message: format!("the polled mailboxes could not be encoded: {e}"),
        })?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO feed_status (id, recorded_at, subscribed, polled_count, polled, connections, last_event_at, resubscribed, changes, resyncs, refreshes, written)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    timestamp(record.recorded_at),
                    count(feed.subscribed as u64),
                    count(record.polled_total as u64),
                    polled,
                    count(feed.connections as u64),
                    feed.last_event_at.map(timestamp),
                    count(feed.resubscribed),
                    count(record.changes),
                    count(record.resyncs),
                    count(record.refreshes),
                    count(record.written),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.describe(e))
    }

    fn feed_status(&self) -> Result<Option<FeedRecord>, StateError> {
        let connection = self.lock();
        connection
            .query_row(
                "SELECT recorded_at, subscribed, polled_count, polled, connections, last_event_at, resubscribed, changes, resyncs, refreshes, written FROM feed_status WHERE id = 1",
                [],
                |row| {
                    let polled_json: String = row.get(3)?;
                    let polled: Vec<(String, String)> = serde_json::from_str(&polled_json)
                        .map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                3,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?;
                    let count = |i: usize| -> rusqlite::Result<u64> {
                        Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
                    };
                    Ok(FeedRecord {
                            recorded_at: parse_timestamp(0, row.get(0)?)?
                                .unwrap_or_default(),
                            feed: FeedStatus {
                                subscribed: count(1)? as usize,
                                polled,
                                connections: count(4)? as usize,
                                last_event_at: parse_timestamp(5, row.get(5)?)?,
                                resubscribed: count(6)?,
                            },
                            changes: count(7)?,
                            resyncs: count(8)?,
                            refreshes: count(9)?,
                            written: count(10)?,
                            polled_total: count(2)? as usize,
                        })
                },
            )
            .optional()
            .map_err(|e| self.describe(e))
    }
}

impl SqliteStateStore {
    /// The newest cycle that ran (handled users), however many rows of
    /// failed starts came after it: `status`'s "no cycle since".
    pub fn last_cycle_that_ran(&self) -> Result<Option<CycleRecord>, StateError> {
        Ok(self.cycles_where("could_not_run = 0", 1)?.pop())
    }

    /// Cycles matching `condition` (a fixed SQL expression), newest first.
    fn cycles_where(&self, condition: &str, limit: i64) -> Result<Vec<CycleRecord>, StateError> {
        let connection = self.lock();
        let result = (|| {
            let mut cycles_statement = connection.prepare(&format!(
                "SELECT id, started_at, finished_at, users_listed, written, unchanged, skipped, overran, error,
                        partial, could_not_run, attempts
                 FROM cycles WHERE {condition} ORDER BY id DESC LIMIT ?1"
            ))?;
            let mut failures_statement = connection.prepare(
                "SELECT user_name, reason FROM cycle_failures WHERE cycle_id = ?1 ORDER BY position",
            )?;
            let rows = cycles_statement.query_map(params![limit], |row| {
                let id: i64 = row.get(0)?;
                let record = CycleRecord {
                    started_at: parse_timestamp(1, row.get(1)?)?.unwrap_or_default(),
                    finished_at: parse_timestamp(2, row.get(2)?)?.unwrap_or_default(),
                    users_listed: row.get::<_, i64>(3)? as u64,
                    written: row.get::<_, i64>(4)? as u64,
                    unchanged: row.get::<_, i64>(5)? as u64,
                    skipped: row.get::<_, i64>(6)? as u64,
                    failed: Vec::new(),
                    overran: row.get(7)?,
                    error: row.get(8)?,
                    partial: row.get(9)?,
                    could_not_run: row.get(10)?,
                    attempts: row.get::<_, i64>(11)?.max(1) as u64,
                };
                Ok((id, record))
            })?;
            let mut cycles = Vec::new();
            for row in rows {
                let (id, mut record) = row?;
                record.failed = failures_statement
                    .query_map(params![id], |row| {
                        Ok(UserFailure {
                            user_name: row.get(0)?,
                            reason: row.get(1)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                cycles.push(record);
            }
            Ok(cycles)
        })();
        result.map_err(|e: rusqlite::Error| self.describe(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 10, minute, 0).unwrap()
            + chrono::Duration::milliseconds(123)
    }

    fn cycle(minute: u32, failed: &[(&str, &str)]) -> CycleRecord {
        CycleRecord {
            started_at: at(minute),
            finished_at: at(minute + 1),
            users_listed: 10 + minute as u64,
            written: 3,
            unchanged: 5,
            skipped: 1,
            failed: failed
                .iter()
                .map(|(user_name, reason)| UserFailure {
                    user_name: (*user_name).to_owned(),
                    reason: (*reason).to_owned(),
                })
                .collect(),
            overran: minute % 2 == 1,
            error: None,
            partial: false,
            could_not_run: false,
            attempts: 1,
        }
    }

    #[test]
    fn records_survive_closing_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/state.sqlite");
        {
            let store = SqliteStateStore::open(&path).unwrap();
            store.record_written("alice", "abc123", at(1)).unwrap();
            store
                .record_cycle(&cycle(2, &[("bob", "mailbox not found")]))
                .unwrap();
        }
        let store = SqliteStateStore::open(&path).unwrap();
        assert_eq!(
            store.user("alice").unwrap(),
            Some(UserRecord {
                user_name: "alice".into(),
                written_hash: Some("abc123".into()),
                written_at: Some(at(1)),
                last_error: None,
                last_error_at: None,
                sending_hash: None,
                unsettled_hash: None,
            })
        );
        assert_eq!(store.user("nobody").unwrap(), None);
        assert_eq!(
            store.recent_cycles(10).unwrap(),
            vec![cycle(2, &[("bob", "mailbox not found")])]
        );
    }

    #[test]
    fn the_file_and_its_directory_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/state.sqlite");
        let _store = SqliteStateStore::open(&path).unwrap();
        let file_mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(file_mode, 0o600);
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn old_cycles_and_their_failures_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteStateStore::open(&path).unwrap().with_cycles_kept(2);
        for minute in 0..4 {
            store
                .record_cycle(&cycle(minute * 2, &[("u", "r")]))
                .unwrap();
        }
        let starts: Vec<_> = store
            .recent_cycles(10)
            .unwrap()
            .iter()
            .map(|c| c.started_at)
            .collect();
        assert_eq!(starts, vec![at(6), at(4)]);
        let failures: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM cycle_failures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(failures, 2);
    }

    #[test]
    fn a_cycle_is_recorded_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteStateStore::open(&path).unwrap();
        store.record_cycle(&cycle(1, &[("carol", "x")])).unwrap();
        // A second connection makes the second failure row of the next cycle
        // fail, after the cycle row and the first failure were inserted.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON cycle_failures
                 WHEN NEW.user_name = 'boom' BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
            )
            .unwrap();
        let err = store
            .record_cycle(&cycle(3, &[("dave", "timeout"), ("boom", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("refused by test"), "{err}");
        let cycles = store.recent_cycles(10).unwrap();
        assert_eq!(cycles, vec![cycle(1, &[("carol", "x")])]);
        let failures: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM cycle_failures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(failures, 1);
    }

    #[test]
    fn a_file_that_is_not_a_database_gives_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        fs::write(
            &path,
            b"this is not a database, just some text that is long enough to look like a header. "
                .repeat(20),
        )
        .unwrap();
        let err = SqliteStateStore::open(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("not a usable SQLite database"), "{text}");
        assert!(text.contains("move it away"), "{text}");
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        drop(SqliteStateStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE schema_version SET version = 999", [])
            .unwrap();
        let text = SqliteStateStore::open(&path).unwrap_err().to_string();
        assert!(text.contains("schema version 999"), "{text}");
        assert!(text.contains("newer"), "{text}");
    }

    #[test]
    fn an_unwritable_directory_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-directory");
        fs::write(&blocker, b"").unwrap();
        let text = SqliteStateStore::open(&blocker.join("state.sqlite"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("not-a-directory"), "{text}");
        assert!(text.contains("[state] path"), "{text}");
    }

    #[test]
    fn failed_starts_with_the_same_reason_share_one_row_and_a_partial_run_is_kept_apart() {
        use crate::replication::report::could_not_run;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStateStore::open(&dir.path().join("state.sqlite")).unwrap();
        store.record_cycle(&cycle(0, &[])).unwrap();
        for minute in [10, 12, 14] {
            store
                .record_cycle(&could_not_run("UCServer unreachable", at(minute)))
                .unwrap();
        }
        store
            .record_cycle(&could_not_run("directory unreachable", at(16)))
            .unwrap();
        let cycles = store.recent_cycles(10).unwrap();
        assert_eq!(cycles.len(), 3, "{cycles:#?}");
        assert_eq!(
            cycles[0].error.as_deref(),
            Some("could not run: directory unreachable")
        );
        let streak = &cycles[1];
        assert!(streak.could_not_run);
        assert_eq!(streak.attempts, 3);
        assert_eq!((streak.started_at, streak.finished_at), (at(10), at(14)));
        assert_eq!(store.last_cycle_that_ran().unwrap(), Some(cycle(0, &[])));

        let mut partial = cycle(20, &[("alice", "x")]);
        partial.partial = true;
        store.record_cycle(&partial).unwrap();
        assert_eq!(store.recent_cycles(1).unwrap(), vec![partial.clone()]);
        assert_eq!(store.last_cycle_that_ran().unwrap(), Some(partial));
    }
}
