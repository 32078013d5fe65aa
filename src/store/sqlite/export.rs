//! Reading a whole database out, in id order and in batches, to copy it into another store
//! (`clair-notifier migrate --to postgres://...`): notifications with their attempt log, then
//! the settings and the notifiers' states.

use rusqlite::Connection;

use super::encoding::name_text;
use super::query;
use crate::attempt::Attempt;
use crate::error::Result;
use crate::notification::{NotificationPage, PageCursor};
use crate::store::{NotifierProgress, NotifierState};
use crate::time::Timestamp;

/// One notification as stored, with all its layers, its round's progress and its attempt
/// log. Leases are not exported: what was in flight is due again in the copy.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The notification with every layer of both sides (`next` is `None`).
    pub page: NotificationPage,
    /// Its next due time as stored (`None` once read).
    pub due: Option<Timestamp>,
    /// Per-notifier progress of an unfinished round.
    pub progress: Vec<NotifierProgress>,
    /// How many rows its attempt log ever had (the number of the last one).
    pub logged: i64,
    /// The last success kept in its row, if the log keeps it there.
    pub last_ok: Option<Attempt>,
    /// The rows of its attempt log with their numbers, oldest first.
    pub attempts: Vec<(i64, Attempt)>,
}

/// What a database holds beside its notifications.
#[derive(Debug, Clone, Default)]
pub struct ExportedRest {
    /// Every setting (`key`, `value`).
    pub settings: Vec<(String, String)>,
    /// Every notifier's state (pause, circuit); `waiting` is not counted.
    pub notifiers: Vec<NotifierState>,
}

impl super::SqliteStore {
    /// Calls `f` with the notifications in id order, up to `batch` at a time, then returns
    /// the settings and the notifiers' states. Reads one snapshot.
    ///
    /// # Errors
    ///
    /// A store failure, or what `f` returns.
    pub(crate) fn export(
        &self,
        batch: usize,
        mut f: impl FnMut(&[Exported]) -> Result<()>,
    ) -> Result<ExportedRest> {
        let mut conn = super::open_connection(&self.path)?;
        let err = |e| super::store_error(&self.path, "could not read", e);
        let tx = conn.transaction().map_err(err)?;
        let mut after = i64::MIN;
        loop {
            let rows = next_batch(&tx, after, batch).map_err(err)?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.id;
            let mut out = Vec::with_capacity(rows.len());
            for Row {
                id,
                name,
                due,
                has_progress,
                logged,
            } in rows
            {
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
                let (last_ok, attempts) = super::attempts::parts(&tx, &name)
                    .map_err(err)?
                    .unwrap_or_default();
                out.push(Exported {
                    page,
                    due: due.map(Timestamp::from_millis),
                    progress,
                    logged,
                    last_ok,
                    attempts,
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
        let notifiers =
            super::notifiers::notifiers(&tx, Timestamp::from_millis(i64::MAX)).map_err(err)?;
        Ok(ExportedRest {
            settings,
            notifiers,
        })
    }
}

struct Row {
    id: i64,
    name: String,
    due: Option<i64>,
    has_progress: bool,
    logged: i64,
}

fn next_batch(conn: &Connection, after: i64, batch: usize) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, due_at, has_progress, logged FROM notification
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map([after, batch as i64], |r| {
        Ok(Row {
            id: r.get(0)?,
            name: name_text(r, 1)?,
            due: r.get(2)?,
            has_progress: r.get(3)?,
            logged: r.get(4)?,
        })
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
