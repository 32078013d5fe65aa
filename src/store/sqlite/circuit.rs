//! Each notifier's circuit: consecutive failed sends, opened at the breaker's threshold,
//! probed while open, closed by a success.

use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};

use super::notifiers::end_wait;
use crate::store::operator::fold_sends;
use crate::store::{CircuitChange, Sends};
use crate::time::Timestamp;

pub fn record_sends(
    tx: &Transaction<'_>,
    sends: &Sends,
    now: Timestamp,
) -> rusqlite::Result<CircuitChange> {
    let (notifier, breaker) = (sends.notifier.as_str(), sends.breaker);
    let row: Option<(u32, Option<i64>)> = tx
        .prepare_cached("SELECT failures, open_since FROM notifier WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([notifier], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
    let (failures, opened) = row.unwrap_or((0, None));
    let was_open = opened.is_some();
    let (failures, open, probe_moved) = fold_sends(failures, was_open, &sends.results, breaker);
    let open_since = match (was_open, open) {
        (true, true) => opened,
        (_, true) => Some(now.as_millis()),
        (_, false) => None,
    };
    let next_probe = now.plus(breaker.probe).as_millis();
    tx.prepare_cached(
        "INSERT INTO notifier (name, failures, open_since, next_probe) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET failures = ?2, open_since = ?3,
             next_probe = CASE WHEN ?3 IS NULL THEN NULL WHEN ?5 THEN ?4 ELSE next_probe END",
    )
    .and_then(|mut s| {
        s.execute(params![
            notifier,
            failures,
            open_since,
            open.then_some(next_probe),
            probe_moved
        ])
    })?;
    Ok(match (was_open, open) {
        (false, true) => CircuitChange::Opened(failures),
        (true, false) => {
            end_wait(tx, notifier, now)?;
            CircuitChange::Closed
        }
        _ => CircuitChange::Unchanged,
    })
}

/// Takes the next probe of `notifier`'s open circuit, if due at `now`; the one after is due
/// `probe` later.
pub fn take_probe(
    tx: &Transaction<'_>,
    notifier: &str,
    probe: Duration,
    now: Timestamp,
) -> rusqlite::Result<bool> {
    let taken = tx
        .prepare_cached(
            "UPDATE notifier SET next_probe = ?3
             WHERE name = ?1 AND open_since IS NOT NULL AND next_probe <= ?2",
        )
        .and_then(|mut s| {
            s.execute(params![
                notifier,
                now.as_millis(),
                now.plus(probe).as_millis()
            ])
        })?;
    Ok(taken > 0)
}
