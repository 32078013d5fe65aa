//! The PostgreSQL schema, created and migrated when a store is opened.
//!
//! THE RULE (as for SQLite): `MIGRATIONS` is append-only; a change of schema is a new entry at
//! the end. The table `clair_notifier_schema` holds how many a database has applied. Instances
//! starting at once take turns through an advisory lock held for the migration's transaction.

use postgres::Client;

use crate::error::{Error, ErrorKind, Result};

/// The advisory lock (two-key form) that serializes migrations; owner locks use the one-key
/// form, a separate space.
pub const MIGRATION_LOCK: (i32, i32) = (0x636c_6169, 1);

/// Each entry moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: notifications with their delivery state and leases (each claim fenced by a token of
    // its own), their content, their layers one row each (a page is one key range), settings,
    // and the owners that hold advisory locks.
    "
    CREATE TABLE notification (
        id           bigserial PRIMARY KEY,
        name         uuid NOT NULL UNIQUE,
        created_at   bigint NOT NULL,          -- unix milliseconds
        notified_at  bigint,                   -- last successful round
        read_at      bigint,
        due_at       bigint,                   -- next due; NULL once read
        lease_owner  bigint,                   -- set while claimed
        lease_until  bigint,                   -- set with lease_owner
        lease_token  integer NOT NULL DEFAULT 0,  -- changes with every claim
        attempts     integer NOT NULL DEFAULT 0,
        last_error   text,
        progress     text                      -- JSON: per-notifier state of an unfinished round
    );
    CREATE INDEX notification_due ON notification (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX notification_leased ON notification (lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE TABLE content (
        notification_id   bigint PRIMARY KEY,
        old_vulnerability text,                -- JSON
        new_vulnerability text
    );
    -- One row a layer name (Old side 0, New side 1), by position from 0: a page is one
    -- keyset range of the primary key.
    CREATE TABLE layer (
        notification_id bigint NOT NULL,
        side            smallint NOT NULL CHECK (side IN (0, 1)),
        seq             integer NOT NULL CHECK (seq >= 0),
        name            text NOT NULL,
        PRIMARY KEY (notification_id, side, seq)
    );
    CREATE TABLE setting (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE owner_lock (
        owner bigint PRIMARY KEY               -- holds advisory lock `owner` while alive
    );
    ",
    // 2: read notifications in the order retention deletes them.
    "
    CREATE INDEX notification_read ON notification (read_at) WHERE read_at IS NOT NULL;
    ",
    // 3: no index on the lease columns, and room left in each page, so that a claim (which
    // changes only them) is a HOT update: no index entry is written.
    "
    DROP INDEX notification_leased;
    ALTER TABLE notification SET (fillfactor = 80);
    ",
    // 4 (the operators' features, as for SQLite): the attempt log, its rows numbered per
    // notification (`logged` counts them) so that those beyond the last 100 are one key range;
    // the last success kept in the notification's row (which the outcome rewrites anyway);
    // each notifier's pause and circuit. A partial index finds the rounds that wait for a
    // notifier (made due when it resumes, counted as waiting): only rows with progress have
    // an entry, so a plain delivery writes none, and a claim (changing neither column) stays
    // a HOT update.
    "
    CREATE TABLE attempt (
        notification_id bigint NOT NULL,
        seq             bigint NOT NULL,       -- 1, 2, ... per notification
        notifier        text NOT NULL,
        started_at      bigint NOT NULL,       -- unix milliseconds
        duration_ms     bigint NOT NULL,
        class           text NOT NULL,         -- ok, status, timeout, connect, tls, panic, other
        status          integer,               -- HTTP status, where there was one
        excerpt         text,                  -- at most 1 KiB of the answer or the error
        next_due        bigint,
        PRIMARY KEY (notification_id, seq)
    );
    CREATE INDEX attempt_started ON attempt (started_at);  -- for [retention] attempts
    ALTER TABLE notification
        ADD COLUMN logged bigint NOT NULL DEFAULT 0,
        ADD COLUMN ok_notifier text,           -- the last success, when kept here
        ADD COLUMN ok_at bigint,
        ADD COLUMN ok_ms bigint,
        ADD COLUMN ok_next_due bigint;
    CREATE INDEX notification_progress ON notification (id)
        WHERE progress IS NOT NULL AND read_at IS NULL;
    CREATE TABLE notifier (
        name       text PRIMARY KEY,
        paused_at  bigint,                     -- set while paused
        failures   integer NOT NULL DEFAULT 0, -- consecutive failed sends
        open_since bigint,                     -- set while the circuit is open
        next_probe bigint                      -- set while the circuit is open
    );
    ",
    // 5: names in a table of their own. An outcome moves its row in the due index, and an
    // update that changes an indexed column writes an entry in every index of the table:
    // with the unique index on `name` there, each delivery also wrote into a random leaf of
    // that B-tree (about a tenth of the server's CPU per delivery). The column stays, with
    // no index, for what reads the row.
    "
    CREATE TABLE notification_name (
        name            uuid PRIMARY KEY,
        notification_id bigint NOT NULL
    );
    INSERT INTO notification_name (name, notification_id) SELECT name, id FROM notification;
    ALTER TABLE notification DROP CONSTRAINT notification_name_key;
    ",
];

/// The schema version this build writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the schema up to [`VERSION`] in one transaction, under the migration lock.
///
/// # Errors
///
/// A driver failure, or a database with a newer schema.
pub fn migrate(
    client: &mut Client,
    name: &str,
) -> std::result::Result<Result<()>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS clair_notifier_schema (version integer NOT NULL)",
    )?;
    let version: i32 = tx
        .query_opt("SELECT version FROM clair_notifier_schema", &[])?
        .map_or(0, |r| r.get(0));
    if !(0..=VERSION).contains(&version) {
        return Ok(Err(Error::new(
            ErrorKind::Store,
            format!(
                "the database at {name} has schema version {version}, which this program \
                 (schema {VERSION}) cannot read: upgrade clair-notifier"
            ),
        )));
    }
    if version == VERSION {
        tx.commit()?;
        return Ok(Ok(()));
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute("DELETE FROM clair_notifier_schema", &[])?;
    tx.execute(
        "INSERT INTO clair_notifier_schema (version) VALUES ($1)",
        &[&VERSION],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}
