//! Each notifier's circuit: consecutive failed sends, opened at the breaker's threshold,
//! probed while open, closed by a success. Instances sharing the database change a circuit
//! one at a time: [`record_sends`] holds the notifier's row lock for its transaction, and
//! [`take_probe`] is one conditional update.

use std::time::Duration;

use super::notifiers::ending_wait;
use super::pool::Conn;
use crate::store::operator::fold_sends;
use crate::store::{CircuitChange, Sends};
use crate::time::Timestamp;

pub fn record_sends(
    conn: &mut Conn,
    sends: &Sends,
    now: Timestamp,
) -> Result<CircuitChange, postgres::Error> {
    let (notifier, breaker) = (sends.notifier.as_str(), sends.breaker);
    let mut tx = conn.client.transaction()?;
    // The row, made if missing, locked until the commit.
    let row = tx.query_one(
        "INSERT INTO notifier (name) VALUES ($1)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name
         RETURNING failures, open_since",
        &[&notifier],
    )?;
    let (failures, opened): (i32, Option<i64>) = (row.get(0), row.get(1));
    let was_open = opened.is_some();
    let failures = u32::try_from(failures).unwrap_or(0);
    let (failures, open, probe_moved) = fold_sends(failures, was_open, &sends.results, breaker);
    let open_since = match (was_open, open) {
        (true, true) => opened,
        (_, true) => Some(now.as_millis()),
        (_, false) => None,
    };
    let next_probe = open.then(|| now.plus(breaker.probe).as_millis());
    tx.execute(
        "UPDATE notifier SET failures = $2, open_since = $3,
             next_probe = CASE WHEN $3::bigint IS NULL THEN NULL
                               WHEN $5 THEN $4::bigint ELSE next_probe END
         WHERE name = $1",
        &[
            &notifier,
            &i32::try_from(failures).unwrap_or(i32::MAX),
            &open_since,
            &next_probe,
            &probe_moved,
        ],
    )?;
    let change = match (was_open, open) {
        (false, true) => CircuitChange::Opened(failures),
        (true, false) => {
            tx.query(
                concat!("WITH ", ending_wait!(), " SELECT count(*) FROM u"),
                &[&notifier, &now.as_millis()],
            )?;
            CircuitChange::Closed
        }
        _ => CircuitChange::Unchanged,
    };
    tx.commit()?;
    Ok(change)
}

/// Takes the next probe of `notifier`'s open circuit, if due at `now`; the one after is due
/// `probe` later. Of instances asking at once, the first update wins; the others then find
/// the probe moved.
pub fn take_probe(
    conn: &mut Conn,
    notifier: &str,
    probe: Duration,
    now: Timestamp,
) -> Result<bool, postgres::Error> {
    let taken = conn.client.execute(
        "UPDATE notifier SET next_probe = $3
         WHERE name = $1 AND open_since IS NOT NULL AND next_probe <= $2",
        &[&notifier, &now.as_millis(), &now.plus(probe).as_millis()],
    )?;
    Ok(taken > 0)
}
