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

/// The due time shown is when the notification becomes due: its lease's expiry while that is
/// later.
const SUMMARY_COLUMNS: &str = "id, name, created_at, notified_at, read_at,
    max(due_at, coalesce(lease_until, due_at)), attempts, last_error";

fn summary_row(r: &Row<'_>) -> rusqlite::Result<NotificationSummary> {
    let ts = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(Timestamp::from_millis))
    };
    Ok(NotificationSummary {
        id: NotificationId(r.get(0)?),
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
            "UPDATE notification SET read_at = ?1, due_at = NULL, lease_owner = NULL,
                lease_until = NULL, has_progress = 0
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
    .optional()
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
        let mut rows = chunks.query(params![summary.id.0, side, start])?;
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
    rows.collect()
}

pub fn counts(conn: &Connection, now: Timestamp) -> rusqlite::Result<Counts> {
    let c = conn
        .prepare_cached(
            "SELECT
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL AND notified_at IS NULL),
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NULL AND notified_at IS NOT NULL),
               count(*) FILTER (WHERE read_at IS NULL AND last_error IS NOT NULL),
               count(*) FILTER (WHERE read_at IS NOT NULL),
               count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_until > ?1),
               count(*) FILTER (WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)),
               min(due_at) FILTER (WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1))
             FROM notification",
        )?
        .query_row([now.as_millis()], |r| {
            Ok(Counts {
                pending: r.get::<_, i64>(0)? as u64,
                notified: r.get::<_, i64>(1)? as u64,
                failing: r.get::<_, i64>(2)? as u64,
                read: r.get::<_, i64>(3)? as u64,
                leased: r.get::<_, i64>(4)? as u64,
                due: r.get::<_, i64>(5)? as u64,
                oldest_due: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_millis),
            })
        })?;
    Ok(c)
}
