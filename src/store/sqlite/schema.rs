//! The SQLite schema, created and migrated when a store is opened.
//!
//! THE RULE: `MIGRATIONS` is append-only. A migration that has shipped is never edited,
//! reordered or removed; a change of schema is a new entry at the end. `PRAGMA user_version`
//! holds how many migrations a database has applied.

use rusqlite::Connection;

use crate::error::{Error, ErrorKind, Result};

/// Each entry moves the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: notifications, their layers, per-notifier round progress, and settings.
    "
    CREATE TABLE notification (
        id                INTEGER PRIMARY KEY,
        name              TEXT NOT NULL UNIQUE,
        created_at        INTEGER NOT NULL,      -- unix milliseconds
        notified_at       INTEGER,               -- last successful round
        read_at           INTEGER,               -- marked read (Clair's deleted_at)
        due_at            INTEGER,               -- next due; the lease's expiry while leased;
                                                 -- NULL once read
        lease_owner       INTEGER,               -- set while claimed
        attempts          INTEGER NOT NULL DEFAULT 0,  -- failed tries in the current round
        last_error        TEXT,                  -- set while failing
        has_progress      INTEGER NOT NULL DEFAULT 0   -- rows exist in progress
    );
    -- Finding due work is a range scan from the start of this index up to now: read rows
    -- are not in it, and notified rows sit past now, so neither is ever scanned.
    CREATE INDEX notification_due ON notification (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX notification_failing ON notification (id)
        WHERE last_error IS NOT NULL AND read_at IS NULL;

    -- What a notification says, apart from its hot delivery state: claims and outcomes
    -- rewrite only the small notification rows.
    CREATE TABLE content (
        notification_id   INTEGER PRIMARY KEY,
        old_vulnerability TEXT,                  -- JSON
        new_vulnerability TEXT                   -- JSON
    );

    -- The layers introducing each side's vulnerability, in order: a page is one range of the
    -- primary key.
    CREATE TABLE layer (
        notification_id INTEGER NOT NULL,
        side            INTEGER NOT NULL,        -- 0 Old, 1 New
        seq             INTEGER NOT NULL,        -- position in the list, from 0
        name            TEXT NOT NULL,
        PRIMARY KEY (notification_id, side, seq)
    ) WITHOUT ROWID;

    -- Per-notifier state of an unfinished delivery round (absent in the common case).
    CREATE TABLE progress (
        notification_id INTEGER NOT NULL,
        notifier        TEXT NOT NULL,
        attempts        INTEGER NOT NULL,
        succeeded       INTEGER NOT NULL,
        last_error      TEXT,
        PRIMARY KEY (notification_id, notifier)
    ) WITHOUT ROWID;

    CREATE TABLE setting (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: names kept as the 16 bytes of their UUID (the name index is less than half the
    // size, so a batch of random names dirties fewer of its pages), and layers kept in chunks
    // of consecutive names, one row a chunk (a notification with a few layers a side costs
    // one row a side, not one a layer).
    "
    CREATE TABLE notification_v2 (
        id                INTEGER PRIMARY KEY,
        name              BLOB NOT NULL UNIQUE,  -- the UUID's 16 bytes
        created_at        INTEGER NOT NULL,
        notified_at       INTEGER,
        read_at           INTEGER,
        due_at            INTEGER,
        lease_owner       INTEGER,
        attempts          INTEGER NOT NULL DEFAULT 0,
        last_error        TEXT,
        has_progress      INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO notification_v2
        SELECT id, unhex(replace(name, '-', '')), created_at, notified_at, read_at, due_at,
               lease_owner, attempts, last_error, has_progress
        FROM notification;
    DROP TABLE notification;
    ALTER TABLE notification_v2 RENAME TO notification;
    CREATE INDEX notification_due ON notification (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX notification_failing ON notification (id)
        WHERE last_error IS NOT NULL AND read_at IS NULL;

    -- The layers of each side, in order, as chunks: JSON arrays of consecutive names, each
    -- under 3,000 bytes so that a row fits in one page. A side's first chunk sits in its
    -- content row (a notification with a few dozen layers a side is one row); the others are
    -- rows of `layer_chunk`, `start` being the position of their first name. A page starts at
    -- the chunk holding its first position, so it reads a few rows whatever the page number.
    ALTER TABLE content ADD COLUMN old_layers TEXT;  -- JSON array, positions 0, 1, ...
    ALTER TABLE content ADD COLUMN new_layers TEXT;
    CREATE TABLE layer_chunk (
        id              INTEGER PRIMARY KEY,     -- appended in order: cheap inserts
        notification_id INTEGER NOT NULL,
        side            INTEGER NOT NULL,        -- 0 Old, 1 New
        start           INTEGER NOT NULL,        -- position of the first name (> 0)
        names           TEXT NOT NULL            -- JSON array of names
    );
    CREATE UNIQUE INDEX layer_chunk_position ON layer_chunk (notification_id, side, start);
    UPDATE content SET
        old_layers = (SELECT json_group_array(name ORDER BY seq) FROM layer
                      WHERE notification_id = content.notification_id AND side = 0 AND seq < 40
                      HAVING count(*) > 0),
        new_layers = (SELECT json_group_array(name ORDER BY seq) FROM layer
                      WHERE notification_id = content.notification_id AND side = 1 AND seq < 40
                      HAVING count(*) > 0);
    INSERT INTO layer_chunk (notification_id, side, start, names)
        SELECT notification_id, side, min(seq), json_group_array(name ORDER BY seq)
        FROM layer WHERE seq >= 40 GROUP BY notification_id, side, seq / 40
        ORDER BY notification_id, side, min(seq);
    DROP TABLE layer;
    ",
    // 3: a lease's expiry kept in its own column. A claim no longer moves the notification
    // in the due index (only its outcome does, to the next due time): leased notifications
    // stay where they were in it, and the due scan passes over those whose lease is live.
    "
    ALTER TABLE notification ADD COLUMN lease_until INTEGER;  -- set with lease_owner
    UPDATE notification SET lease_until = due_at WHERE lease_owner IS NOT NULL;
    ",
    // 4: leases kept per owner, one row per running instance with the ids it holds: a claim
    // writes that row once instead of every claimed notification. Leases taken under the
    // earlier schema become plain due times (their expiry), as if their owner had stopped.
    "
    CREATE TABLE lease (
        owner INTEGER PRIMARY KEY,               -- a running instance
        until INTEGER NOT NULL,                  -- its leases expire then unless renewed
        ids   BLOB NOT NULL                      -- the ids it holds, 8 bytes each, little-endian
    );
    UPDATE notification SET due_at = max(due_at, lease_until) WHERE lease_owner IS NOT NULL;
    ALTER TABLE notification DROP COLUMN lease_until;
    ALTER TABLE notification DROP COLUMN lease_owner;
    ",
    // 5: read notifications by the time they were read, for deleting them past retention.
    "
    CREATE INDEX notification_read ON notification (read_at) WHERE read_at IS NOT NULL;
    ",
    // 6: what operators set per notifier (a pause), and an index to find the notifications
    // whose round waits for one notifier (made due at once when it resumes).
    "
    CREATE TABLE notifier (
        name      TEXT PRIMARY KEY,
        paused_at INTEGER                        -- set while paused
    ) WITHOUT ROWID;
    CREATE INDEX progress_waiting ON progress (notifier, notification_id) WHERE succeeded = 0;
    ",
    // 7: the attempt log. Rows are numbered per notification (`logged` counts them), so that
    // the oldest beyond the last 100 are one range of the key to delete. The last success may
    // be kept in the notification's row instead (see `AttemptLog`): it is rewritten anyway.
    "
    CREATE TABLE attempt (
        notification_id INTEGER NOT NULL,
        seq             INTEGER NOT NULL,        -- 1, 2, ... per notification
        notifier        TEXT NOT NULL,
        started_at      INTEGER NOT NULL,        -- unix milliseconds
        duration_ms     INTEGER NOT NULL,
        class           TEXT NOT NULL,           -- ok, status, timeout, connect, tls, panic, other
        status          INTEGER,                 -- HTTP status, where there was one
        excerpt         TEXT,                    -- at most 1 KiB of the answer or the error
        next_due        INTEGER,
        PRIMARY KEY (notification_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX attempt_started ON attempt (started_at);  -- for [retention] attempts
    ALTER TABLE notification ADD COLUMN logged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notification ADD COLUMN ok_notifier TEXT;  -- the last success, when kept here
    ALTER TABLE notification ADD COLUMN ok_at INTEGER;
    ALTER TABLE notification ADD COLUMN ok_ms INTEGER;
    ALTER TABLE notification ADD COLUMN ok_next_due INTEGER;
    ",
    // 8: each notifier's circuit (the breaker).
    "
    ALTER TABLE notifier ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;  -- consecutive
    ALTER TABLE notifier ADD COLUMN open_since INTEGER;      -- set while the circuit is open
    ALTER TABLE notifier ADD COLUMN next_probe INTEGER;      -- set while the circuit is open
    ",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of the database behind `conn`, if this program can use it (a newer or
/// negative version, or another program's tables, are refused). Reading it also reads the
/// file's first page, so a file that is not SQLite or is corrupt fails here.
pub fn readable_version(conn: &Connection, path: &str) -> Result<i64> {
    let err = |e: rusqlite::Error| super::store_error(path, "could not set up the schema of", e);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    // A negative version was written by no version of this program: refused like one from
    // the future, rather than taken as an index into the migrations.
    if !(0..=VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "{path} has schema version {version}, which this program (schema {VERSION}) \
                 cannot read: upgrade clair-notifier"
            ),
        ));
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if tables > 0 {
            return Err(Error::new(
                ErrorKind::Store,
                format!("{path} is an SQLite database of another program, not clair-notifier's"),
            ));
        }
    }
    Ok(version)
}

/// Brings the schema of `conn` up to [`VERSION`], in one transaction (so two processes
/// opening a new file at once do not both create it).
pub fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let err = |e: rusqlite::Error| super::store_error(path, "could not set up the schema of", e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let version = readable_version(&tx, path)?;
    if version == VERSION {
        return Ok(());
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(err)?;
    tx.commit().map_err(err)
}
