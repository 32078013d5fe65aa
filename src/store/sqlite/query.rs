//! Reading notifications (pages, summaries, lists, counts) and marking them read.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::encoding::{from_json, name_key, name_text};
use crate::error::Result;
use crate::notification::{
    NotificationId, NotificationPage, NotificationSummary, PageCursor, State, Vulnerability,
    VulnerabilityWithLayers,
};
use crate::store::{Counts, ListFilter};
use crate::time::Timestamp;

const SUMMARY_COLUMNS: &str =
    "id, name, created_at, notified_at, read_at, due_at, attempts, last_error";

/// The due time shown is when the notification becomes due: its lease's expiry while that is
/// later.
fn leased_until(s: &mut NotificationSummary, until: Option<i64>) {
    if let (Some(due), Some(until)) = (s.due, until) {
        s.due = Some(Timestamp::from_millis(due.as_millis().max(until)));
    }
}

fn with_lease(
    conn: &Connection,
    mut s: NotificationSummary,
) -> rusqlite::Result<NotificationSummary> {
    let until = super::lease::expiry_of(conn, s.id.get())?;
    leased_until(&mut s, until);
    Ok(s)
}

fn summary_row(r: &Row<'_>) -> rusqlite::Result<NotificationSummary> {
    let ts = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(Timestamp::from_millis))
    };
    Ok(NotificationSummary {
        id: NotificationId::new(r.get(0)?),
        name: name_text(r, 1)?,
        created: Timestamp::from_millis(r.get(2)?),
        notified: ts(3)?,
        read: ts(4)?,
        due: ts(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
    })
}

pub fn mark_read(tx: &Transaction<'_>, path: &str, name: &str, now: Timestamp) -> Result<bool> {
    let err = |e| super::store_error(path, "could not mark a notification read in", e);
    let Some(key) = name_key(name) else {
        return Ok(false);
    };
    let id: Option<i64> = tx
        .prepare_cached(
            "UPDATE notification SET read_at = ?1, due_at = NULL, has_progress = 0
             WHERE name = ?2 RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(params![now.as_millis(), &key[..]], |r| r.get(0))
                .optional()
        })
        .map_err(err)?;
    let Some(id) = id else { return Ok(false) };
    tx.prepare_cached("DELETE FROM progress WHERE notification_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(err)?;
    Ok(true)
}

pub fn summary(conn: &Connection, name: &str) -> rusqlite::Result<Option<NotificationSummary>> {
    let Some(key) = name_key(name) else {
        return Ok(None);
    };
    conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM notification WHERE name = ?1"
    ))?
    .query_row([&key[..]], summary_row)
    .optional()?
    .map(|s| with_lease(conn, s))
    .transpose()
}

pub fn page(
    conn: &Connection,
    name: &str,
    cursor: PageCursor,
    limit: u32,
) -> rusqlite::Result<Option<NotificationPage>> {
    let Some(key) = name_key(name) else {
        return Ok(None);
    };
    let row = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, old_vulnerability, new_vulnerability, old_layers,
                    new_layers
             FROM notification JOIN content ON notification_id = id WHERE name = ?1"
        ))?
        .query_row([&key[..]], |r| {
            Ok((
                summary_row(r)?,
                [
                    (
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(10)?,
                    ),
                    (
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, Option<String>>(11)?,
                    ),
                ],
            ))
        })
        .optional()?;
    let Some((summary, [old_side, new_side])) = row else {
        return Ok(None);
    };
    let summary = with_lease(conn, summary)?;
    // The chunks after the first, from the one holding position ?3 on, in order; stepped
    // only as far as the page needs.
    let mut chunks = conn.prepare_cached(
        "SELECT start, names FROM layer_chunk
         WHERE notification_id = ?1 AND side = ?2
           AND start >= coalesce((SELECT max(start) FROM layer_chunk
                                  WHERE notification_id = ?1 AND side = ?2 AND start <= ?3), 0)
         ORDER BY start",
    )?;
    let mut side = |(json, first): (Option<String>, Option<String>),
                    side: i64,
                    start: i64|
     -> rusqlite::Result<_> {
        let Some(json) = json else {
            return Ok((None, -1));
        };
        let vulnerability: Vulnerability = from_json(&json, 8 + side as usize)?;
        let mut v = VulnerabilityWithLayers {
            vulnerability,
            layers: Vec::new(),
        };
        if start < 0 {
            return Ok((Some(v), -1));
        }
        // Appends the names of a chunk starting at `first`; Some(next) once the page is full.
        let mut take = |first: i64, names: Vec<String>| -> Option<i64> {
            for (position, layer) in (first..).zip(names) {
                if position < start {
                    continue;
                }
                if v.layers.len() == limit as usize {
                    return Some(position);
                }
                v.layers.push(layer);
            }
            None
        };
        let first = match first {
            Some(json) => from_json(&json, 10 + side as usize)?,
            None => Vec::new(),
        };
        let first_len = first.len() as i64;
        if start < first_len
            && let Some(next) = take(0, first)
        {
            return Ok((Some(v), next));
        }
        let mut rows = chunks.query(params![summary.id.get(), side, start])?;
        while let Some(row) = rows.next()? {
            let names: Vec<String> = from_json(row.get_ref(1)?.as_str()?, 1)?;
            if let Some(next) = take(row.get(0)?, names) {
                return Ok((Some(v), next));
            }
        }
        Ok((Some(v), -1))
    };
    let (old, next_old) = side(old_side, 0, cursor.old)?;
    let (new, next_new) = side(new_side, 1, cursor.new)?;
    let next = PageCursor {
        old: next_old,
        new: next_new,
    };
    Ok(Some(NotificationPage {
        summary,
        old,
        new,
        next: (!next.is_end()).then_some(next),
    }))
}

pub fn list(conn: &Connection, filter: ListFilter) -> rusqlite::Result<Vec<NotificationSummary>> {
    let condition = match filter.state {
        None => "1",
        Some(State::Read) => "read_at IS NOT NULL",
        Some(State::Failing) => "read_at IS NULL AND last_error IS NOT NULL",
        Some(State::Notified) => {
            "read_at IS NULL AND last_error IS NULL AND notified_at IS NOT NULL"
        }
        Some(State::Pending) => "read_at IS NULL AND last_error IS NULL AND notified_at IS NULL",
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM notification WHERE {condition} ORDER BY id DESC LIMIT ?1"
    ))?;
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], summary_row)?;
    let mut list: Vec<NotificationSummary> = rows.collect::<rusqlite::Result<_>>()?;
    let expiries = super::lease::expiries(conn)?;
    for s in &mut list {
        leased_until(s, expiries.get(&s.id.get()).copied());
    }
    Ok(list)
}

pub fn counts(conn: &Connection, now: Timestamp) -> rusqlite::Result<Counts> {
    let mut c = conn
        .prepare_cached(
            "SELECT
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL AND notified_at IS NULL),
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL AND notified_at IS NOT NULL),
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NOT NULL),
               count(*) FILTER (WHERE read_at IS NOT NULL),
               count(*) FILTER (WHERE due_at <= ?1)
             FROM notification",
        )?
        .query_row([now.as_millis()], |r| {
            Ok(Counts {
                pending: r.get::<_, i64>(0)? as u64,
                notified: r.get::<_, i64>(1)? as u64,
                failing: r.get::<_, i64>(2)? as u64,
                read: r.get::<_, i64>(3)? as u64,
                due: r.get::<_, i64>(4)? as u64,
                ..Counts::default()
            })
        })?;
    // Notifications under a live lease are leased, not due (a read one is neither).
    let live = super::lease::live(conn, now)?;
    let mut state = conn.prepare_cached("SELECT due_at FROM notification WHERE id = ?1")?;
    for &id in &live {
        let due: Option<Option<i64>> = state.query_row([id], |r| r.get(0)).optional()?;
        if let Some(Some(due)) = due {
            c.leased += 1;
            if due <= now.as_millis() {
                c.due = c.due.saturating_sub(1);
            }
        }
    }
    // The oldest due one: the first in the due index not under a live lease.
    let mut walk = conn.prepare_cached(
        "SELECT due_at, id FROM notification INDEXED BY notification_due
         WHERE due_at <= ?1 ORDER BY due_at",
    )?;
    let mut rows = walk.query([now.as_millis()])?;
    while let Some(r) = rows.next()? {
        if !live.contains(&r.get(1)?) {
            c.oldest_due = Some(Timestamp::from_millis(r.get(0)?));
            break;
        }
    }
    Ok(c)
}
