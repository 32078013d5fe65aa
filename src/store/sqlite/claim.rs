//! Claiming due notifications under a lease, renewing and releasing leases.

use rusqlite::{Connection, Transaction, params};

use super::lease::{self, Leases};
use crate::error::Result;
use crate::notification::NotificationId;
use crate::store::{Claimed, LeaseOwner, NotifierProgress};
use crate::time::Timestamp;

/// The due notifications in due order. A claim leaves a notification where it is in the
/// index, so the ones in flight are passed over at the start of each scan (about one per
/// claimed notification: the job queue bounds them). The index is named: with statistics
/// saying that most rows are due (a large backlog), the planner would otherwise scan and sort
/// the whole table for every batch.
pub(super) const DUE: &str = "SELECT id, name, created_at, notified_at, has_progress
     FROM notification INDEXED BY notification_due
     WHERE due_at <= ?1 ORDER BY due_at";

/// Leases up to `limit` due notifications (oldest due first, passing over the ones under a
/// lease) to `owner` until `lease_until`, adding them to `leases`.
pub fn claim(
    tx: &Transaction<'_>,
    path: &str,
    leases: &mut Leases,
    limit: usize,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<Claimed>> {
    let err = |e| super::store_error(path, "could not claim notifications in", e);
    let mut claimed = Vec::with_capacity(limit.min(8192));
    let mut with_progress = Vec::new();
    {
        let mut due = tx.prepare_cached(DUE).map_err(err)?;
        let mut rows = due.query([now.as_millis()]).map_err(err)?;
        while claimed.len() < limit {
            let Some(r) = rows.next().map_err(err)? else {
                break;
            };
            let id: i64 = r.get(0).map_err(err)?;
            if leases.taken(id) {
                continue;
            }
            if r.get::<_, bool>(4).map_err(err)? {
                with_progress.push(claimed.len());
            }
            claimed.push(Claimed {
                id: NotificationId::new(id),
                name: super::encoding::name_text(r, 1).map_err(err)?,
                created: Timestamp::from_millis(r.get(2).map_err(err)?),
                notified: r
                    .get::<_, Option<i64>>(3)
                    .map_err(err)?
                    .map(Timestamp::from_millis),
                progress: Vec::new(),
            });
        }
    }
    let ids: Vec<i64> = claimed.iter().map(|c| c.id.get()).collect();
    leases.take(ids, lease_until);
    if !with_progress.is_empty() {
        let mut progress = tx
            .prepare_cached(
                "SELECT notifier, attempts, succeeded, last_error FROM progress
                 WHERE notification_id = ?1 ORDER BY notifier",
            )
            .map_err(err)?;
        for i in with_progress {
            let rows = progress
                .query_map([claimed[i].id.get()], |r| {
                    Ok(NotifierProgress {
                        notifier: r.get(0)?,
                        attempts: r.get(1)?,
                        succeeded: r.get(2)?,
                        last_error: r.get(3)?,
                    })
                })
                .map_err(err)?;
            for p in rows {
                claimed[i].progress.push(p.map_err(err)?);
            }
        }
    }
    Ok(claimed)
}

pub fn renew(
    tx: &Transaction<'_>,
    path: &str,
    owner: LeaseOwner,
    ids: &[NotificationId],
    until: Timestamp,
) -> Result<usize> {
    let err = |e| super::store_error(path, "could not renew leases in", e);
    // Renewing deletes no other owner's row: no time is given to judge them by.
    let mut leases = Leases::load(tx, owner, Timestamp::from_millis(i64::MIN)).map_err(err)?;
    let held = leases.renew(ids, until);
    leases.save(tx, owner).map_err(err)?;
    Ok(held)
}

pub fn release(
    tx: &Transaction<'_>,
    path: &str,
    owner: LeaseOwner,
    ids: &[NotificationId],
    now: Timestamp,
) -> Result<()> {
    let err = |e| super::store_error(path, "could not release leases in", e);
    let mut leases = Leases::load(tx, owner, now).map_err(err)?;
    let mut due = tx
        .prepare_cached("UPDATE notification SET due_at = ?1 WHERE id = ?2 AND read_at IS NULL")
        .map_err(err)?;
    for &id in ids {
        if leases.end(id) {
            due.execute(params![now.as_millis(), id.get()])
                .map_err(err)?;
        }
    }
    leases.save(tx, owner).map_err(err)
}

/// A notification becomes due at its due time, or when its lease expires if that is later.
/// Leased notifications keep their place in the due index, so the walk in due order passes
/// over the ones in flight and stops at the first whose due time cannot beat the best found.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<Timestamp>> {
    let expiries = lease::expiries(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT due_at, id FROM notification INDEXED BY notification_due
         WHERE due_at IS NOT NULL ORDER BY due_at",
    )?;
    let mut rows = stmt.query([])?;
    let mut best: Option<i64> = None;
    while let Some(r) = rows.next()? {
        let due: i64 = r.get(0)?;
        if best.is_some_and(|b| due >= b) {
            break;
        }
        let at = expiries.get(&r.get(1)?).map_or(due, |&l| l.max(due));
        best = Some(best.map_or(at, |b| b.min(at)));
    }
    Ok(best.map(Timestamp::from_millis))
}
