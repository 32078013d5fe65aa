//! Writing back what became of claimed notifications.

use rusqlite::{Transaction, params};

use super::lease::Leases;
use crate::error::Result;
use crate::store::Outcome;
use crate::time::Timestamp;

pub fn record(
    tx: &Transaction<'_>,
    path: &str,
    leases: &mut Leases,
    outcomes: &[Outcome],
    now: Timestamp,
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let err = |e| super::store_error(path, "could not record deliveries in", e);
    // An outcome for a lease the owner no longer holds (another instance took it over) changes
    // nothing; nor does one for a notification read meanwhile (the WHERE).
    let mut update = tx
        .prepare_cached(
            "UPDATE notification SET
                notified_at = CASE WHEN ?1 THEN ?2 ELSE notified_at END,
                due_at = ?3, attempts = ?4, last_error = ?5, has_progress = ?6
             WHERE id = ?7 AND read_at IS NULL",
        )
        .map_err(err)?;
    // The common outcome, a round that succeeded at its first try with no progress stored,
    // binds only what varies; a row that has progress stored takes the general path, which
    // clears it.
    let mut succeeded = tx
        .prepare_cached(
            "UPDATE notification SET notified_at = ?1, due_at = ?2, attempts = 0,
                last_error = NULL
             WHERE id = ?3 AND read_at IS NULL AND has_progress = 0",
        )
        .map_err(err)?;
    for o in outcomes {
        if !leases.end(o.id) {
            continue;
        }
        let plain =
            o.notified && o.attempts == 0 && o.last_error.is_none() && o.progress.is_empty();
        if plain
            && succeeded
                .execute(params![now.as_millis(), o.next_due.as_millis(), o.id.get()])
                .map_err(err)?
                == 1
        {
            continue;
        }
        let changed = update
            .execute(params![
                o.notified,
                now.as_millis(),
                o.next_due.as_millis(),
                o.attempts,
                o.last_error,
                !o.progress.is_empty(),
                o.id.get()
            ])
            .map_err(err)?;
        if changed == 0 {
            continue;
        }
        tx.prepare_cached("DELETE FROM progress WHERE notification_id = ?1")
            .and_then(|mut s| s.execute([o.id.get()]))
            .map_err(err)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO progress (notification_id, notifier, attempts, succeeded, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(err)?;
        for p in &o.progress {
            insert
                .execute(params![
                    o.id.get(),
                    p.notifier,
                    p.attempts,
                    p.succeeded,
                    p.last_error
                ])
                .map_err(err)?;
        }
    }
    Ok(())
}
