//! The SQLite schema, created and migrated when a store is opened.
//!
//! THE RULE: `MIGRATIONS` is append-only. A migration that has shipped is never edited,
//! reordered or removed; a change of schema is a new entry at the end. `PRAGMA user_version`
//! holds how many migrations a database has applied.

use rusqlite::Connection;

use crate::error::{Error, ErrorKind, Result};

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
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
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema of `conn` up to [`VERSION`], in one transaction (so two processes
/// opening a new file at once do not both create it).
pub fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let err = |e: rusqlite::Error| super::store_error(path, "could not set up the schema of", e);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > VERSION {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "{path} has schema version {version}, newer than this program's {VERSION}: \
                 upgrade clair-notifier"
            ),
        ));
    }
    if version == VERSION {
        return Ok(());
    }
    if version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if tables > 0 {
            return Err(Error::new(
                ErrorKind::Store,
                format!("{path} is an SQLite database of another program, not clair-notifier's"),
            ));
        }
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(err)?;
    tx.commit().map_err(err)
}
