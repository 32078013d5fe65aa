//! What operators set per notifier (its pause), and what held notifiers leave waiting.

use rusqlite::{Connection, Transaction, params};

use crate::store::NotifierState;
use crate::time::Timestamp;

/// Pauses `notifier` at `now`; a second pause keeps the first one's time.
pub fn pause(tx: &Transaction<'_>, notifier: &str, now: Timestamp) -> rusqlite::Result<bool> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO notifier (name, paused_at) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET paused_at = ?2 WHERE paused_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![notifier, now.as_millis()]))?;
    Ok(changed > 0)
}

/// Ends the pause of `notifier`, and makes due at `now` what waits for it.
pub fn resume(tx: &Transaction<'_>, notifier: &str, now: Timestamp) -> rusqlite::Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE notifier SET paused_at = NULL WHERE name = ?1 AND paused_at IS NOT NULL",
        )
        .and_then(|mut s| s.execute([notifier]))?;
    // Also when nothing changed: a repeated resume picks up what a service wrote while it had
    // not yet seen the first one.
    end_wait(tx, notifier, now)?;
    Ok(changed > 0)
}

/// Makes due at `now` every unread notification whose round waits for `notifier` (it
/// resumed, or its circuit closed). Leased notifications keep their lease.
pub fn end_wait(tx: &Transaction<'_>, notifier: &str, now: Timestamp) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE notification SET due_at = min(due_at, ?2)
         WHERE read_at IS NULL AND id IN
             (SELECT notification_id FROM progress WHERE notifier = ?1 AND succeeded = 0)",
    )?
    .execute(params![notifier, now.as_millis()])
}

pub fn notifiers(conn: &Connection, now: Timestamp) -> rusqlite::Result<Vec<NotifierState>> {
    let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
    conn.prepare_cached(
        "SELECT name, paused_at, failures, open_since, next_probe,
             (SELECT count(*) FROM progress p JOIN notification n ON n.id = p.notification_id
              WHERE p.notifier = notifier.name AND p.succeeded = 0 AND n.read_at IS NULL
                  AND n.due_at > ?1)
         FROM notifier ORDER BY name",
    )?
    .query_map([now.as_millis()], |r| {
        Ok(NotifierState {
            notifier: r.get(0)?,
            paused: ts(r.get(1)?),
            failures: r.get(2)?,
            open_since: ts(r.get(3)?),
            next_probe: ts(r.get(4)?),
            waiting: r.get::<_, i64>(5)?.max(0) as u64,
        })
    })?
    .collect()
}
