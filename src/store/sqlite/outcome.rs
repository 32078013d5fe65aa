//! Writing back what became of claimed notifications, with their attempts.

use rusqlite::{OptionalExtension, Statement, ToSql, Transaction, params, params_from_iter};

use super::attempts;
use super::lease::Leases;
use crate::error::Result;
use crate::store::Outcome;
use crate::store::attempt_log::{AttemptLog, ok_columns};
use crate::time::Timestamp;

/// How many rows the log gains (`?n`), and the last success kept in the notification's row
/// (`?a` to `?d`: when the log keeps it there; else the row keeps what it held). A macro, so
/// that each statement's text is a constant rather than formatted at each transaction.
macro_rules! logged_columns {
    ($n:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        concat!(
            "logged = logged + ?",
            $n,
            ", ok_notifier = coalesce(?",
            $a,
            ", ok_notifier),
             ok_at = coalesce(?",
            $b,
            ", ok_at), ok_ms = coalesce(?",
            $c,
            ", ok_ms),
             ok_next_due = coalesce(?",
            $d,
            ", ok_next_due)"
        )
    };
}

pub fn record(
    tx: &Transaction<'_>,
    path: &str,
    leases: &mut Leases,
    outcomes: &[Outcome],
    now: Timestamp,
    log: AttemptLog,
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let err = |e| super::store_error(path, "could not record deliveries in", e);
    // An outcome for a lease the owner no longer holds (another instance took it over) changes
    // nothing; nor does one for a notification read meanwhile (the WHERE).
    let mut update = tx
        .prepare_cached(concat!(
            "UPDATE notification SET
                notified_at = CASE WHEN ?1 THEN ?2 ELSE notified_at END,
                due_at = ?3, attempts = ?4, last_error = ?5, has_progress = ?6, ",
            logged_columns!(8, 9, 10, 11, 12),
            " WHERE id = ?7 AND read_at IS NULL RETURNING logged"
        ))
        .map_err(err)?;
    // The common outcome, a round that succeeded at its first try with no progress stored,
    // binds only what varies (this one when the log gains rows: every success is logged); a
    // row that has progress stored takes the general path, which clears it.
    let mut succeeded = tx
        .prepare_cached(concat!(
            "UPDATE notification SET notified_at = ?1, due_at = ?2, attempts = 0,
                last_error = NULL, ",
            logged_columns!(4, 5, 6, 7, 8),
            " WHERE id = ?3 AND read_at IS NULL AND has_progress = 0 RETURNING logged"
        ))
        .map_err(err)?;
    // The same with no row for the log (by default, a success only rewrites the last success
    // kept in the row): no count to return, so the row is written and nothing read back.
    let mut quiet = tx
        .prepare_cached(
            "UPDATE notification SET notified_at = ?1, due_at = ?2, attempts = 0,
                last_error = NULL, ok_notifier = coalesce(?4, ok_notifier),
                ok_at = coalesce(?5, ok_at), ok_ms = coalesce(?6, ok_ms),
                ok_next_due = coalesce(?7, ok_next_due)
             WHERE id = ?3 AND read_at IS NULL AND has_progress = 0",
        )
        .map_err(err)?;
    // The same when the success it keeps is this outcome's (its next due time is the
    // outcome's, as a worker's is): the columns are set, not coalesced, and the next due
    // time is bound once.
    let mut kept = tx
        .prepare_cached(
            "UPDATE notification SET notified_at = ?1, due_at = ?2, attempts = 0,
                last_error = NULL, ok_notifier = ?4, ok_at = ?5, ok_ms = ?6, ok_next_due = ?2
             WHERE id = ?3 AND read_at IS NULL AND has_progress = 0",
        )
        .map_err(err)?;
    for o in outcomes {
        if !leases.end(o.id) {
            continue;
        }
        let (rows, ok) = log.split(&o.log);
        let (ok_notifier, ok_at, ok_ms, ok_next) = ok_columns(ok);
        let plain =
            o.notified && o.attempts == 0 && o.last_error.is_none() && o.progress.is_empty();
        // Both statements end with the log's values, from their ?4 and ?8 on.
        let count = rows.len() as i64;
        let tail: [&dyn ToSql; 5] = [&count, &ok_notifier, &ok_at, &ok_ms, &ok_next];
        let run = |stmt: &mut Statement<'_>, head: &[&dyn ToSql]| {
            stmt.query_row(params_from_iter(head.iter().chain(&tail)), |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(err)
        };
        // The head of the success statements' values.
        let head: [&dyn ToSql; 3] = [&now.as_millis(), &o.next_due.as_millis(), &o.id.get()];
        if plain && rows.is_empty() {
            let (stmt, ok) = match ok {
                Some(_) if ok_next == Some(o.next_due.as_millis()) => (&mut kept, &tail[1..4]),
                _ => (&mut quiet, &tail[1..]),
            };
            if stmt
                .execute(params_from_iter(head.iter().chain(ok)))
                .map_err(err)?
                == 1
            {
                continue;
            }
        }
        let mut logged = None;
        if plain && !rows.is_empty() {
            logged = run(&mut succeeded, &head)?;
        }
        let general = logged.is_none();
        if general {
            let head: [&dyn ToSql; 7] = [
                &o.notified,
                &now.as_millis(),
                &o.next_due.as_millis(),
                &o.attempts,
                &o.last_error,
                &!o.progress.is_empty(),
                &o.id.get(),
            ];
            logged = run(&mut update, &head)?;
        }
        let Some(logged) = logged else {
            continue;
        };
        attempts::append(tx, o.id.get(), logged, &rows).map_err(err)?;
        if !general {
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
