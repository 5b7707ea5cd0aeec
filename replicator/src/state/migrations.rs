//! Schema versions of the state database. A new version appends a step to
//! [`STEPS`]; steps already released are never edited.

use rusqlite::{Connection, OptionalExtension as _};

/// Step `n` (0-based) brings the schema from version `n` to `n + 1`.
const STEPS: &[&str] = &[
    // 1: users and cycles.
    "CREATE TABLE users (
        user_name TEXT PRIMARY KEY NOT NULL,
        written_hash TEXT,
        written_at TEXT,
        last_error TEXT,
        last_error_at TEXT
    );
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        users_listed INTEGER NOT NULL,
        written INTEGER NOT NULL,
        unchanged INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        overran INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE cycle_failures (
        cycle_id INTEGER NOT NULL REFERENCES cycles (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (cycle_id, position)
    );",
    // 2: the list in flight and a list whose send got no answer (see
    // `UserRecord::sending_hash` and `unsettled_hash`).
    "ALTER TABLE users ADD COLUMN sending_hash TEXT;
    ALTER TABLE users ADD COLUMN unsettled_hash TEXT;",
    // 3: `once --user` runs (partial), and rows for cycles that could not
    // run (the service could not connect), one per streak of tries.
    "ALTER TABLE cycles ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cycles ADD COLUMN could_not_run INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cycles ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    UPDATE cycles SET could_not_run = 1 WHERE error IS NOT NULL AND error NOT LIKE 'abandoned at shutdown%';",
    // 4: the change feed's status and the push loop's counts (one row,
    // replaced as it changes) for `status`. `polled` is a JSON array of
    // [mailbox, reason] pairs, at most `POLLED_KEPT` of `polled_count`.
    "CREATE TABLE feed_status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        recorded_at TEXT NOT NULL,
        subscribed INTEGER NOT NULL,
        polled_count INTEGER NOT NULL,
        polled TEXT NOT NULL,
        connections INTEGER NOT NULL,
        last_event_at TEXT,
        resubscribed INTEGER NOT NULL,
        changes INTEGER NOT NULL,
        resyncs INTEGER NOT NULL,
        refreshes INTEGER NOT NULL,
        written INTEGER NOT NULL
    );",
];

/// The schema version this program writes.
pub const CURRENT_VERSION: i64 = STEPS.len() as i64;

/// Start of the error message for a database of a newer program version.
pub const NEWER_SCHEMA_PREFIX: &str = "the database has schema version";

/// Brings the schema to [`CURRENT_VERSION`], each step in its own
/// transaction together with the version it reaches.
pub fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let version: i64 = connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    if version > CURRENT_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "{NEWER_SCHEMA_PREFIX} {version}, but this program knows versions up to {CURRENT_VERSION}: \
                 it was written by a newer ews-calendar-replicator; run that version, or set [state] path to a new file"
            )),
        ));
    }
    for (index, step) in STEPS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(step)?;
        transaction.execute("DELETE FROM schema_version", [])?;
        transaction.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [index as i64 + 1],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_keeps_the_version_and_the_data() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        connection
            .execute("INSERT INTO users (user_name) VALUES ('alice')", [])
            .unwrap();
        migrate(&mut connection).unwrap();
        let (version, rows): (i64, i64) = connection
            .query_row(
                "SELECT (SELECT version FROM schema_version), (SELECT COUNT(*) FROM schema_version)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, rows), (CURRENT_VERSION, 1));
        let users: i64 = connection
            .query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(users, 1);
    }

    /// A version 2 database (as released before the partial and
    /// could-not-run columns) keeps its cycles; a cycle-wide error becomes
    /// a could-not-run row, a shutdown does not.
    #[test]
    fn version_2_cycles_gain_the_partial_and_could_not_run_columns() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL);")
            .unwrap();
        for step in &STEPS[..2] {
            connection.execute_batch(step).unwrap();
        }
        connection
            .execute_batch(
                "INSERT INTO schema_version (version) VALUES (2);
                 INSERT INTO cycles (started_at, finished_at, users_listed, written, unchanged, skipped, overran, error)
                 VALUES ('2026-11-01T09:00:00Z', '2026-11-01T09:01:00Z', 5, 2, 3, 0, 0, NULL),
                        ('2026-11-01T09:15:00Z', '2026-11-01T09:15:01Z', 0, 0, 0, 0, 0, 'UCServer: cannot connect'),
                        ('2026-11-01T09:30:00Z', '2026-11-01T09:30:01Z', 5, 1, 0, 0, 0, 'abandoned at shutdown; 4 users not handled');",
            )
            .unwrap();
        migrate(&mut connection).unwrap();
        let rows: Vec<(i64, i64, i64, i64)> = connection
            .prepare("SELECT written, partial, could_not_run, attempts FROM cycles ORDER BY id")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![(2, 0, 0, 1), (0, 0, 1, 1), (1, 0, 0, 1)]);
        let version: i64 = connection
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, CURRENT_VERSION);
    }
}
