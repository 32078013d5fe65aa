//! An operator's resend: a notification due at once, with a fresh round.

use rusqlite::{OptionalExtension, Transaction, params};

use super::encoding::name_key;
use crate::store::Resend;
use crate::time::Timestamp;

/// The fresh round: what a resend writes, whatever the round was.
const FRESH: &str = "due_at = ?1, attempts = 0, last_error = NULL, has_progress = 0";

pub fn resend(
    tx: &Transaction<'_>,
    name: &str,
    unread: bool,
    now: Timestamp,
) -> rusqlite::Result<Resend> {
    let Some(key) = name_key(name) else {
        return Ok(Resend::Unknown);
    };
    // The lease table is not touched: a notification in flight keeps its lease.
    let id: Option<i64> = tx
        .prepare_cached(&format!(
            "UPDATE notification SET {FRESH}, read_at = CASE WHEN ?2 THEN NULL ELSE read_at END
             WHERE name = ?3 AND (read_at IS NULL OR ?2) RETURNING id"
        ))
        .and_then(|mut s| {
            s.query_row(params![now.as_millis(), unread, &key[..]], |r| r.get(0))
                .optional()
        })?;
    let Some(id) = id else {
        let exists = tx
            .prepare_cached("SELECT 1 FROM notification WHERE name = ?1")
            .and_then(|mut s| s.exists([&key[..]]))?;
        return Ok(if exists {
            Resend::Read
        } else {
            Resend::Unknown
        });
    };
    forget_progress(tx, &[id])?;
    Ok(Resend::Resent)
}

pub fn resend_failing(tx: &Transaction<'_>, now: Timestamp) -> rusqlite::Result<u64> {
    let ids: Vec<i64> = tx
        .prepare_cached(&format!(
            "UPDATE notification SET {FRESH}
             WHERE last_error IS NOT NULL AND read_at IS NULL RETURNING id"
        ))
        .and_then(|mut s| {
            s.query_map([now.as_millis()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })?;
    forget_progress(tx, &ids)?;
    Ok(ids.len() as u64)
}

fn forget_progress(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM progress WHERE notification_id = ?1")?;
    for id in ids {
        delete.execute([id])?;
    }
    Ok(())
}
