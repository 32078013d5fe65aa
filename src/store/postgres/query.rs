//! Reading notifications (pages as keyset ranges, summaries, lists, counts), marking them
//! read, and settings.

use postgres::Row;

use super::claim::encode;
use super::pool::Conn;
use crate::notification::{
    NotificationPage, NotificationSummary, PageCursor, State, VulnerabilityWithLayers,
};
use crate::store::{Counts, ListFilter};
use crate::time::Timestamp;

/// The columns [`summary_row`] reads. The due time shown is when the notification becomes due:
/// its lease's expiry while that is later.
macro_rules! summary_columns {
    () => {
        "n.id, n.name, n.created_at, n.notified_at, n.read_at,
         CASE WHEN n.due_at IS NOT NULL THEN greatest(n.due_at, n.lease_until) END,
         n.attempts, n.last_error"
    };
}

/// Lists, newest first, by state.
macro_rules! list_where {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            summary_columns!(),
            " FROM notification n WHERE ",
            $condition,
            " ORDER BY n.id DESC LIMIT $1"
        )
    };
}

fn summary_row(r: &Row) -> NotificationSummary {
    let ts = |i: usize| r.get::<_, Option<i64>>(i).map(Timestamp::from_millis);
    NotificationSummary {
        id: encode(r.get(0), 0),
        name: r.get::<_, uuid::Uuid>(1).hyphenated().to_string(),
        created: Timestamp::from_millis(r.get(2)),
        notified: ts(3),
        read: ts(4),
        due: ts(5),
        attempts: r.get::<_, i32>(6).max(0) as u32,
        last_error: r.get(7),
    }
}

/// The UUID of `name` if it is a name this store hands out (lowercase, hyphenated).
pub(super) fn key(name: &str) -> Option<uuid::Uuid> {
    let uuid = uuid::Uuid::try_parse(name).ok()?;
    (uuid.hyphenated().to_string() == name).then_some(uuid)
}

/// The row id of the notification whose name is `$1` (a primary-key lookup in
/// `notification_name`), for statements that find a notification by name.
macro_rules! id_of_name {
    () => {
        "SELECT notification_id FROM notification_name WHERE name = $1"
    };
}
pub(super) use id_of_name;

pub fn mark_read(conn: &mut Conn, name: &str, now: Timestamp) -> Result<bool, postgres::Error> {
    let Some(key) = key(name) else {
        return Ok(false);
    };
    let rows = conn.query(
        concat!(
            "UPDATE notification SET read_at = $2, due_at = NULL, progress = NULL,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = (",
            id_of_name!(),
            ") RETURNING id"
        ),
        &[&key, &now.as_millis()],
    )?;
    Ok(!rows.is_empty())
}

pub fn summary(
    conn: &mut Conn,
    name: &str,
) -> Result<Option<NotificationSummary>, postgres::Error> {
    let sql = concat!(
        "SELECT ",
        summary_columns!(),
        " FROM notification n WHERE n.id = (",
        id_of_name!(),
        ")"
    );
    let rows = by_name(conn, name, sql)?;
    Ok(rows.first().map(summary_row))
}

/// The rows `sql` finds with the key of `name` as `$1`; none when `name` is not a UUID (no
/// notification has such a name).
fn by_name(conn: &mut Conn, name: &str, sql: &'static str) -> Result<Vec<Row>, postgres::Error> {
    match key(name) {
        Some(key) => conn.query(sql, &[&key]),
        None => Ok(Vec::new()),
    }
}

/// A page: the row with its content, then one keyset range of layers per side (both in one
/// statement), one more than the page holds to know where the next starts.
pub fn page(
    conn: &mut Conn,
    name: &str,
    cursor: PageCursor,
    limit: u32,
) -> Result<Option<NotificationPage>, postgres::Error> {
    let sql = concat!(
        "SELECT ",
        summary_columns!(),
        ", c.old_vulnerability, c.new_vulnerability
         FROM notification n JOIN content c ON c.notification_id = n.id WHERE n.id = (",
        id_of_name!(),
        ")"
    );
    let rows = by_name(conn, name, sql)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let summary = summary_row(row);
    let vulnerability = |i: usize| -> Option<VulnerabilityWithLayers> {
        let json: Option<String> = row.get(i);
        Some(VulnerabilityWithLayers {
            vulnerability: serde_json::from_str(&json?).unwrap_or_default(),
            layers: Vec::new(),
        })
    };
    let (mut old, mut new) = (vulnerability(8), vulnerability(9));
    // A side that is absent or finished starts past any position.
    let start = |v: &Option<VulnerabilityWithLayers>, at: i64| {
        if v.is_some() && at >= 0 {
            i32::try_from(at).unwrap_or(i32::MAX)
        } else {
            i32::MAX
        }
    };
    let take = i64::from(limit) + 1;
    let layers = conn.query(
        "(SELECT side, seq, name FROM layer
          WHERE notification_id = $1 AND side = 0 AND seq >= $2 ORDER BY seq LIMIT $4)
         UNION ALL
         (SELECT side, seq, name FROM layer
          WHERE notification_id = $1 AND side = 1 AND seq >= $3 ORDER BY seq LIMIT $4)",
        &[
            &(summary.id.get() >> 16),
            &start(&old, cursor.old),
            &start(&new, cursor.new),
            &take,
        ],
    )?;
    let mut next = PageCursor { old: -1, new: -1 };
    for r in &layers {
        let (side, seq, layer): (i16, i32, String) = (r.get(0), r.get(1), r.get(2));
        let (v, next) = if side == 0 {
            (&mut old, &mut next.old)
        } else {
            (&mut new, &mut next.new)
        };
        let Some(v) = v else { continue };
        if v.layers.len() == limit as usize {
            *next = i64::from(seq);
        } else {
            v.layers.push(layer);
        }
    }
    Ok(Some(NotificationPage {
        summary,
        old,
        new,
        next: (!next.is_end()).then_some(next),
    }))
}

pub fn list(
    conn: &mut Conn,
    filter: ListFilter,
) -> Result<Vec<NotificationSummary>, postgres::Error> {
    let sql = match filter.state {
        None => list_where!("true"),
        Some(State::Read) => list_where!("n.read_at IS NOT NULL"),
        Some(State::Failing) => list_where!("n.read_at IS NULL AND n.last_error IS NOT NULL"),
        Some(State::Notified) => {
            list_where!("n.read_at IS NULL AND n.last_error IS NULL AND n.notified_at IS NOT NULL")
        }
        Some(State::Pending) => {
            list_where!("n.read_at IS NULL AND n.last_error IS NULL AND n.notified_at IS NULL")
        }
    };
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    Ok(conn
        .query(sql, &[&limit])?
        .iter()
        .map(summary_row)
        .collect())
}

pub fn counts(conn: &mut Conn, now: Timestamp) -> Result<Counts, postgres::Error> {
    let rows = conn.query(
        "SELECT
           count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL AND notified_at IS NULL),
           count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL
                            AND notified_at IS NOT NULL),
           count(*) FILTER (WHERE read_at IS NULL AND last_error IS NOT NULL),
           count(*) FILTER (WHERE read_at IS NOT NULL),
           count(*) FILTER (WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)),
           count(*) FILTER (WHERE due_at IS NOT NULL AND lease_until > $1),
           min(due_at) FILTER (WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1))
         FROM notification",
        &[&now.as_millis()],
    )?;
    let r = &rows[0];
    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    Ok(Counts {
        pending: n(0),
        notified: n(1),
        failing: n(2),
        read: n(3),
        due: n(4),
        leased: n(5),
        oldest_due: r.get::<_, Option<i64>>(6).map(Timestamp::from_millis),
    })
}

/// Inserts `value` unless `key` has one, and returns the stored value. A statement that lost
/// the race to another instance's insert does not see its row (its snapshot is older): the
/// next one does.
pub fn setting_or_insert(
    conn: &mut Conn,
    key: &str,
    value: &str,
) -> Result<Option<String>, postgres::Error> {
    for _ in 0..3 {
        let rows = conn.query(
            "WITH ins AS (
                 INSERT INTO setting (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO NOTHING RETURNING value)
             SELECT value FROM ins UNION ALL SELECT value FROM setting WHERE key = $1",
            &[&key, &value],
        )?;
        if let Some(r) = rows.first() {
            return Ok(Some(r.get(0)));
        }
    }
    Ok(None)
}
