//! Deleting read notifications past their retention, and returning the freed pages to the
//! file system a few at a time.
//!
//! A database created by this version uses `auto_vacuum = INCREMENTAL`: deleted rows leave
//! free pages, and [`return_free_pages`] moves up to [`VACUUM_STEP`] of them to the end of the
//! file and cuts it there, one short write each time. An older database (`auto_vacuum = NONE`)
//! keeps its free pages for later inserts (the pragma does nothing there) until
//! [`SqliteStore::vacuum`](super::SqliteStore::vacuum) converts it.

use rusqlite::{Connection, Transaction, params};

use crate::error::Result;
use crate::time::Timestamp;

/// The most pages returned after one batch of deletes (2 MiB with 8 KiB pages): one short
/// write transaction, so that the scanner's claims are not held up behind it.
pub const VACUUM_STEP: u32 = 256;

/// Deletes up to `limit` notifications read at or before `read_before`, oldest read first,
/// with their content, layers and progress; returns how many.
pub fn delete_read(
    tx: &Transaction<'_>,
    path: &str,
    read_before: Timestamp,
    limit: usize,
) -> Result<usize> {
    let err = |e| super::store_error(path, "could not delete read notifications from", e);
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
        "DELETE FROM notification WHERE id = ?1",
    ] {
        let mut s = tx.prepare_cached(sql).map_err(err)?;
        for id in &ids {
            s.execute([id]).map_err(err)?;
        }
    }
    Ok(ids.len())
}

/// Whether any notification was read at or before `read_before` (a read, so that an idle
/// collector never takes the write lock).
pub fn any_read(conn: &Connection, read_before: Timestamp) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM notification
                        WHERE read_at IS NOT NULL AND read_at <= ?1)",
    )?
    .query_row([read_before.as_millis()], |r| r.get(0))
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
