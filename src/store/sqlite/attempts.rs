//! The attempt log: rows appended with the outcome they belong to, the oldest beyond
//! [`KEPT_ATTEMPTS`] dropped in the same write, and read back for one notification.
//!
//! Which successes get a row is the store's [`AttemptLog`](crate::store::AttemptLog)
//! setting: every one, or only the last, kept in the notification's own row (which the outcome
//! rewrites anyway, so that a delivery still writes one row).

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::encoding::name_key;
use crate::attempt::{Attempt, AttemptClass, KEPT_ATTEMPTS};
use crate::time::Timestamp;

/// Appends `rows` to the log of notification `id`, which now counts `logged` rows ever
/// written (these included), and drops those beyond the last [`KEPT_ATTEMPTS`].
pub(super) fn append(
    tx: &Transaction<'_>,
    id: i64,
    logged: i64,
    rows: &[&Attempt],
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO attempt (notification_id, seq, notifier, started_at, duration_ms, class,
             status, excerpt, next_due)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let first = logged - rows.len() as i64 + 1;
    for (i, a) in rows.iter().enumerate() {
        insert.execute(params![
            id,
            first + i as i64,
            a.notifier,
            a.started.as_millis(),
            a.duration.as_millis() as i64,
            a.class.as_str(),
            a.status,
            a.excerpt,
            a.next_due.map(Timestamp::as_millis),
        ])?;
    }
    if logged > i64::from(KEPT_ATTEMPTS) {
        tx.prepare_cached("DELETE FROM attempt WHERE notification_id = ?1 AND seq <= ?2")?
            .execute(params![id, logged - i64::from(KEPT_ATTEMPTS)])?;
    }
    Ok(())
}

/// The log of the notification `name`, oldest first; `None` if there is none of that name.
pub(super) fn read(conn: &Connection, name: &str) -> rusqlite::Result<Option<Vec<Attempt>>> {
    let Some((ok, rows)) = parts(conn, name)? else {
        return Ok(None);
    };
    let mut log: Vec<Attempt> = rows.into_iter().map(|(_, a)| a).collect();
    if let Some(ok) = ok {
        let at = log.partition_point(|a| a.started <= ok.started);
        log.insert(at, ok);
    }
    Ok(Some(log))
}

/// The log of the notification `name` as stored: the last success kept in its row, and its
/// rows with their numbers, oldest first; `None` if there is none of that name.
pub(super) fn parts(conn: &Connection, name: &str) -> rusqlite::Result<Option<Parts>> {
    let Some(key) = name_key(name) else {
        return Ok(None);
    };
    let head = conn
        .prepare_cached(
            "SELECT id, ok_notifier, ok_at, ok_ms, ok_next_due FROM notification WHERE name = ?1",
        )?
        .query_row([&key[..]], |r| {
            let ok = match r.get::<_, Option<String>>(1)? {
                None => None,
                Some(notifier) => Some(Attempt {
                    notifier,
                    started: Timestamp::from_millis(r.get(2)?),
                    duration: Duration::from_millis(r.get::<_, i64>(3)?.max(0) as u64),
                    class: AttemptClass::Ok,
                    status: None,
                    excerpt: None,
                    next_due: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
                }),
            };
            Ok((r.get::<_, i64>(0)?, ok))
        })
        .optional()?;
    let Some((id, ok)) = head else {
        return Ok(None);
    };
    let rows = conn
        .prepare_cached(
            "SELECT notifier, started_at, duration_ms, class, status, excerpt, next_due, seq
             FROM attempt WHERE notification_id = ?1 ORDER BY seq",
        )?
        .query_map([id], |r| {
            let a = Attempt {
                notifier: r.get(0)?,
                started: Timestamp::from_millis(r.get(1)?),
                duration: Duration::from_millis(r.get::<_, i64>(2)?.max(0) as u64),
                class: AttemptClass::from_name(&r.get::<_, String>(3)?),
                status: r.get(4)?,
                excerpt: r.get(5)?,
                next_due: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_millis),
            };
            Ok((r.get(7)?, a))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some((ok, rows)))
}

/// The last success kept in a notification's row, and the rows of its log with their
/// numbers.
pub(super) type Parts = (Option<Attempt>, Vec<(i64, Attempt)>);

/// Deletes up to `limit` rows that started at or before `before`, oldest first.
pub(super) fn delete_before(
    tx: &Transaction<'_>,
    before: Timestamp,
    limit: usize,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "DELETE FROM attempt WHERE (notification_id, seq) IN
             (SELECT notification_id, seq FROM attempt INDEXED BY attempt_started
              WHERE started_at <= ?1 ORDER BY started_at LIMIT ?2)",
    )?
    .execute(params![
        before.as_millis(),
        limit.min(i64::MAX as usize) as i64
    ])
}
