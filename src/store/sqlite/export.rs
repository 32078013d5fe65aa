//! Reading a whole database out, in id order and in batches, to copy it into another store
//! (`clair-notifier migrate --to postgres://...`).

use rusqlite::Connection;

use super::encoding::name_text;
use super::query;
use crate::error::Result;
use crate::notification::{NotificationPage, PageCursor};
use crate::store::NotifierProgress;
use crate::time::Timestamp;

/// One notification as stored, with all its layers and its round's progress. Leases are not
/// exported: what was in flight is due again in the copy.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The notification with every layer of both sides (`next` is `None`).
    pub page: NotificationPage,
    /// Its next due time as stored (`None` once read).
    pub due: Option<Timestamp>,
    /// Per-notifier progress of an unfinished round.
    pub progress: Vec<NotifierProgress>,
}

impl super::SqliteStore {
    /// Calls `f` with the notifications in id order, up to `batch` at a time, then returns
    /// every setting (`key`, `value`). Reads one snapshot.
    ///
    /// # Errors
    ///
    /// A store failure, or what `f` returns.
    pub(crate) fn export(
        &self,
        batch: usize,
        mut f: impl FnMut(&[Exported]) -> Result<()>,
    ) -> Result<Vec<(String, String)>> {
        let mut conn = super::open_connection(&self.path)?;
        let err = |e| super::store_error(&self.path, "could not read", e);
        let tx = conn.transaction().map_err(err)?;
        let mut after = i64::MIN;
        loop {
            let rows = next_batch(&tx, after, batch).map_err(err)?;
            let Some(&(last, _, _, _)) = rows.last() else {
                break;
            };
            after = last;
            let mut out = Vec::with_capacity(rows.len());
            for (id, name, due, has_progress) in rows {
                let Some(page) =
                    query::page(&tx, &name, PageCursor::FIRST, u32::MAX).map_err(err)?
                else {
                    continue;
                };
                let progress = if has_progress {
                    progress_of(&tx, id).map_err(err)?
                } else {
                    Vec::new()
                };
                out.push(Exported {
                    page,
                    due: due.map(Timestamp::from_millis),
                    progress,
                });
            }
            f(&out)?;
        }
        let mut stmt = tx
            .prepare("SELECT key, value FROM setting ORDER BY key")
            .map_err(err)?;
        let settings = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        Ok(settings)
    }
}

type Row = (i64, String, Option<i64>, bool);

fn next_batch(conn: &Connection, after: i64, batch: usize) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, due_at, has_progress FROM notification WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map([after, batch as i64], |r| {
        Ok((r.get(0)?, name_text(r, 1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

fn progress_of(conn: &Connection, id: i64) -> rusqlite::Result<Vec<NotifierProgress>> {
    let mut stmt = conn.prepare_cached(
        "SELECT notifier, attempts, succeeded, last_error FROM progress
         WHERE notification_id = ?1 ORDER BY notifier",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(NotifierProgress {
            notifier: r.get(0)?,
            attempts: r.get(1)?,
            succeeded: r.get(2)?,
            last_error: r.get(3)?,
        })
    })?;
    rows.collect()
}
