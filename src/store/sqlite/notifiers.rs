//! What operators set per notifier: its pause.

use rusqlite::{Connection, Transaction, params};

use crate::error::Result;
use crate::store::NotifierState;
use crate::time::Timestamp;

fn error(path: &str, e: rusqlite::Error) -> crate::Error {
    super::store_error(path, "could not change a notifier's state in", e)
}

/// Pauses `notifier` at `now`; a second pause keeps the first one's time.
pub fn pause(tx: &Transaction<'_>, path: &str, notifier: &str, now: Timestamp) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO notifier (name, paused_at) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET paused_at = ?2 WHERE paused_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![notifier, now.as_millis()]))
        .map_err(|e| error(path, e))?;
    Ok(changed > 0)
}

/// Ends the pause of `notifier`, and makes due at `now` what waits for it.
pub fn resume(tx: &Transaction<'_>, path: &str, notifier: &str, now: Timestamp) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE notifier SET paused_at = NULL WHERE name = ?1 AND paused_at IS NOT NULL",
        )
        .and_then(|mut s| s.execute([notifier]))
        .map_err(|e| error(path, e))?;
    // Also when nothing changed: a repeated resume picks up what a service wrote while it had
    // not yet seen the first one. Leased notifications keep their lease.
    tx.prepare_cached(
        "UPDATE notification SET due_at = min(due_at, ?2)
         WHERE read_at IS NULL AND id IN
             (SELECT notification_id FROM progress WHERE notifier = ?1 AND succeeded = 0)",
    )
    .and_then(|mut s| s.execute(params![notifier, now.as_millis()]))
    .map_err(|e| error(path, e))?;
    Ok(changed > 0)
}

pub fn notifiers(conn: &Connection) -> rusqlite::Result<Vec<NotifierState>> {
    conn.prepare_cached("SELECT name, paused_at FROM notifier ORDER BY name")?
        .query_map([], |r| {
            Ok(NotifierState {
                notifier: r.get(0)?,
                paused: r.get::<_, Option<i64>>(1)?.map(Timestamp::from_millis),
            })
        })?
        .collect()
}
