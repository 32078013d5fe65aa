//! Deleting read notifications past their retention, and returning the freed pages to the
//! file system a few at a time.
//!
//! A database created by this version uses `auto_vacuum = INCREMENTAL`: deleted rows leave
//! free pages, and [`return_free_pages`] moves up to [`VACUUM_STEP`] of them to the end of the
//! file and cuts it there, one short write after each batch of deletes and at each look of an
//! idle collector, until none is left. An older database (`auto_vacuum = NONE`) keeps its free
//! pages for later inserts until [`SqliteStore::vacuum`](super::SqliteStore::vacuum) converts
//! it.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::Result;
use crate::store::{DeleteRequest, LeaseOwner};
use crate::time::Timestamp;

/// The most pages returned at once (256 KiB with 8 KiB pages): one short write transaction, so
/// that the scanner's claims are not held up behind it.
pub const VACUUM_STEP: u32 = 32;

/// How long a collector's turn lasts past its last batch: meanwhile other instances' calls
/// delete nothing, so that one instance at a time collects.
pub const TURN: Duration = Duration::from_secs(60);

/// The setting holding the current turn: `<owner> <until, unix milliseconds>`.
const TURN_KEY: &str = "retention.collector";

/// Whether another collector than `collector` holds a turn that is live at `now`.
fn others_turn(conn: &Connection, collector: LeaseOwner, now: Timestamp) -> rusqlite::Result<bool> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM setting WHERE key = ?1")?
        .query_row([TURN_KEY], |r| r.get(0))
        .optional()?;
    let Some((owner, until)) = value.as_deref().and_then(|v| v.split_once(' ')) else {
        return Ok(false);
    };
    let (Ok(owner), Ok(until)) = (owner.parse::<i64>(), until.parse::<i64>()) else {
        return Ok(false); // unreadable: nobody's
    };
    Ok(owner != collector.get() && until > now.as_millis())
}

/// Deletes up to `limit` notifications read at or before `read_before`, oldest read first,
/// with their content, layers and progress, unless another collector's turn is live; returns
/// how many. A call that deletes takes (or extends) `collector`'s turn.
pub fn delete_read(tx: &Transaction<'_>, path: &str, request: &DeleteRequest) -> Result<usize> {
    let &DeleteRequest {
        collector,
        read_before,
        limit,
        now,
    } = request;
    let err = |e| super::store_error(path, "could not delete read notifications from", e);
    if others_turn(tx, collector, now).map_err(err)? {
        return Ok(0);
    }
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM notification
             WHERE read_at IS NOT NULL AND read_at <= ?1 ORDER BY read_at LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![read_before.as_millis(), limit.min(i64::MAX as usize) as i64],
                |r| r.get(0),
            )?
            .collect()
        })
        .map_err(err)?;
    for sql in [
        "DELETE FROM layer_chunk WHERE notification_id = ?1",
        "DELETE FROM content WHERE notification_id = ?1",
        "DELETE FROM progress WHERE notification_id = ?1",
        "DELETE FROM attempt WHERE notification_id = ?1",
        "DELETE FROM notification WHERE id = ?1",
    ] {
        let mut s = tx.prepare_cached(sql).map_err(err)?;
        for id in &ids {
            s.execute([id]).map_err(err)?;
        }
    }
    if !ids.is_empty() {
        let turn = format!("{} {}", collector.get(), now.plus(TURN).as_millis());
        tx.prepare_cached(
            "INSERT INTO setting (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut s| s.execute([TURN_KEY, turn.as_str()]))
        .map_err(err)?;
    }
    Ok(ids.len())
}

/// Whether `collector` may find something to delete: no other collector's turn is live, and
/// some notification was read at or before `read_before` (a read, so that an idle collector
/// never takes the write lock).
pub fn any_read(conn: &Connection, request: &DeleteRequest) -> rusqlite::Result<bool> {
    if others_turn(conn, request.collector, request.now)? {
        return Ok(false);
    }
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM notification
                        WHERE read_at IS NOT NULL AND read_at <= ?1)",
    )?
    .query_row([request.read_before.as_millis()], |r| r.get(0))
}

/// How many free pages there are to return: none unless the database is in incremental
/// auto-vacuum mode (a read).
pub fn free_pages(conn: &Connection) -> rusqlite::Result<i64> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        return Ok(0);
    }
    conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
}

/// Returns up to [`VACUUM_STEP`] free pages to the file system (a database in incremental
/// auto-vacuum mode; elsewhere this does nothing).
pub fn return_free_pages(conn: &Connection) -> rusqlite::Result<()> {
    // Each step of the statement frees one page: run it to the end.
    let mut s = conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))?;
    let mut rows = s.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}
