//! The attempt log: rows written with the outcomes they belong to (in the scanner's one
//! statement, see [`claim`](super::claim)), the oldest beyond [`KEPT_ATTEMPTS`] dropped in the
//! same statement, read back for one notification, and deleted past retention.
//!
//! As for SQLite, which successes get a row is the store's [`AttemptLog`]; by default only the
//! last success is kept, in the notification's own row.

use std::time::Duration;

use postgres::types::ToSql;

use super::pool::Conn;
use crate::attempt::{Attempt, AttemptClass, KEPT_ATTEMPTS};
use crate::store::AttemptLog;
use crate::store::attempt_log::ok_columns;
use crate::time::Timestamp;

/// The attempt log's parameters of one batch of outcomes, in their order: per outcome
/// (`$12` to `$16`) how many rows it adds and the last success kept in its row; per row
/// (`$17` to `$25`) its outcome (from 1), its place among that outcome's rows (from 1) and
/// its values; then (`$26`) how many rows a notification keeps.
#[derive(Default)]
pub struct Log {
    count: Vec<i64>,
    ok_notifier: Vec<Option<String>>,
    ok_at: Vec<Option<i64>>,
    ok_ms: Vec<Option<i64>>,
    ok_next_due: Vec<Option<i64>>,
    rows: Tries<i64>,
}

/// Rows of the attempt log as arrays for `unnest`: each with a key naming its notification
/// (of type `K`), a number, and its values.
pub struct Tries<K> {
    key: Vec<K>,
    seq: Vec<i64>,
    notifier: Vec<String>,
    started: Vec<i64>,
    ms: Vec<i64>,
    class: Vec<&'static str>,
    status: Vec<Option<i32>>,
    excerpt: Vec<Option<String>>,
    next_due: Vec<Option<i64>>,
}

impl<K> Default for Tries<K> {
    fn default() -> Self {
        Tries {
            key: Vec::new(),
            seq: Vec::new(),
            notifier: Vec::new(),
            started: Vec::new(),
            ms: Vec::new(),
            class: Vec::new(),
            status: Vec::new(),
            excerpt: Vec::new(),
            next_due: Vec::new(),
        }
    }
}

impl<K: ToSql + Sync> Tries<K> {
    /// Adds the row `a` of the notification `key`, numbered `seq`.
    pub fn push(&mut self, key: K, seq: i64, a: &Attempt) {
        self.key.push(key);
        self.seq.push(seq);
        self.notifier.push(a.notifier.clone());
        self.started.push(a.started.as_millis());
        self.ms.push(millis(a.duration));
        self.class.push(a.class.as_str());
        self.status.push(a.status.map(i32::from));
        self.excerpt.push(a.excerpt.clone());
        self.next_due.push(a.next_due.map(Timestamp::as_millis));
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }

    /// The arrays, in the order of the fields.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.key,
            &self.seq,
            &self.notifier,
            &self.started,
            &self.ms,
            &self.class,
            &self.status,
            &self.excerpt,
            &self.next_due,
        ]
    }
}

const KEPT: i64 = KEPT_ATTEMPTS as i64;

impl Log {
    /// Adds the tries of the next outcome, as `mode` keeps them.
    pub fn push(&mut self, mode: AttemptLog, tries: &[Attempt]) {
        let (rows, ok) = mode.split(tries);
        let (notifier, at, ms, next) = ok_columns(ok);
        self.count.push(rows.len() as i64);
        self.ok_notifier.push(notifier.map(str::to_string));
        self.ok_at.push(at);
        self.ok_ms.push(ms);
        self.ok_next_due.push(next);
        let outcome = self.count.len() as i64;
        for (pos, a) in (1..).zip(rows) {
            self.rows.push(outcome, pos, a);
        }
    }

    /// `$12` to `$26`.
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.count,
            &self.ok_notifier,
            &self.ok_at,
            &self.ok_ms,
            &self.ok_next_due,
        ];
        params.extend(self.rows.params());
        params.push(&KEPT);
        params
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

/// The log of the notification `name`, oldest first; `None` if there is none of that name.
/// One statement: the notification's row (with the success kept there) and its rows.
pub fn read(conn: &mut Conn, name: &str) -> Result<Option<Vec<Attempt>>, postgres::Error> {
    let Some(key) = super::query::key(name) else {
        return Ok(None);
    };
    let rows = conn.query(
        concat!(
            "SELECT n.ok_notifier, n.ok_at, n.ok_ms, n.ok_next_due,
             a.notifier, a.started_at, a.duration_ms, a.class, a.status, a.excerpt, a.next_due
         FROM notification n LEFT JOIN attempt a ON a.notification_id = n.id
         WHERE n.id = (",
            super::query::id_of_name!(),
            ") ORDER BY a.seq"
        ),
        &[&key],
    )?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let duration = |ms: i64| Duration::from_millis(ms.max(0) as u64);
    let mut log: Vec<Attempt> = rows
        .iter()
        .filter_map(|r| {
            Some(Attempt {
                notifier: r.get::<_, Option<String>>(4)?,
                started: Timestamp::from_millis(r.get(5)),
                duration: duration(r.get(6)),
                class: AttemptClass::from_name(r.get(7)),
                status: r
                    .get::<_, Option<i32>>(8)
                    .and_then(|s| u16::try_from(s).ok()),
                excerpt: r.get(9),
                next_due: ts(r.get(10)),
            })
        })
        .collect();
    if let Some(notifier) = first.get::<_, Option<String>>(0) {
        let ok = Attempt {
            notifier,
            started: Timestamp::from_millis(first.get::<_, Option<i64>>(1).unwrap_or(0)),
            duration: duration(first.get::<_, Option<i64>>(2).unwrap_or(0)),
            class: AttemptClass::Ok,
            status: None,
            excerpt: None,
            next_due: ts(first.get(3)),
        };
        let at = log.partition_point(|a| a.started <= ok.started);
        log.insert(at, ok);
    }
    Ok(Some(log))
}

/// Deletes up to `limit` rows that started at or before `before`, oldest first, skipping rows
/// another statement holds (an outcome trimming the same notification's log).
pub fn delete_before(
    conn: &mut Conn,
    before: Timestamp,
    limit: usize,
) -> Result<usize, postgres::Error> {
    let rows = conn.query(
        "WITH victims AS MATERIALIZED (
             SELECT notification_id, seq FROM attempt WHERE started_at <= $1
             ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), gone AS (
             DELETE FROM attempt t USING victims v
             WHERE t.notification_id = v.notification_id AND t.seq = v.seq RETURNING 1
         )
         SELECT count(*) FROM gone",
        &[
            &before.as_millis(),
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as usize)
}
