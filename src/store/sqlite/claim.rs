//! Claiming due notifications under a lease, renewing and releasing leases.

use rusqlite::{Connection, Transaction, params};

use crate::error::Result;
use crate::notification::NotificationId;
use crate::store::{Claimed, LeaseOwner, NotifierProgress};
use crate::time::Timestamp;

/// The first due notifications, in due order: due and not under a live lease. A claim
/// leaves a notification where it is in the due index, so the notifications in flight are
/// passed over at the start of each scan (a few per claimed one at most: the job queue
/// bounds them). The index is named: with statistics saying that most rows are due (a large
/// backlog), the planner would otherwise scan and sort the whole table for every batch.
pub(super) const DUE: &str = "SELECT id, name, created_at, notified_at, has_progress
     FROM notification INDEXED BY notification_due
     WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
     ORDER BY due_at LIMIT ?2";

pub fn claim(
    tx: &Transaction<'_>,
    path: &str,
    owner: LeaseOwner,
    limit: usize,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<Claimed>> {
    let err = |e| super::store_error(path, "could not claim notifications in", e);
    // "Due" covers "not leased, or leased by an owner whose lease expired".
    let mut select = tx.prepare_cached(DUE).map_err(err)?;
    let rows = select
        .query_map(params![now.as_millis(), limit as i64], |r| {
            Ok((
                Claimed {
                    id: NotificationId(r.get(0)?),
                    name: super::encoding::name_text(r, 1)?,
                    created: Timestamp::from_millis(r.get(2)?),
                    notified: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_millis),
                    progress: Vec::new(),
                },
                r.get::<_, bool>(4)?,
            ))
        })
        .map_err(err)?;
    let mut claimed = Vec::new();
    let mut with_progress = Vec::new();
    for row in rows {
        let (c, has_progress) = row.map_err(err)?;
        if has_progress {
            with_progress.push(claimed.len());
        }
        claimed.push(c);
    }
    let mut lease = tx
        .prepare_cached("UPDATE notification SET lease_until = ?1, lease_owner = ?2 WHERE id = ?3")
        .map_err(err)?;
    for c in &claimed {
        lease
            .execute(params![lease_until.as_millis(), owner.0, c.id.0])
            .map_err(err)?;
    }
    if !with_progress.is_empty() {
        let mut progress = tx
            .prepare_cached(
                "SELECT notifier, attempts, succeeded, last_error FROM progress
                 WHERE notification_id = ?1 ORDER BY notifier",
            )
            .map_err(err)?;
        for i in with_progress {
            let rows = progress
                .query_map([claimed[i].id.0], |r| {
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
    let mut stmt = tx
        .prepare_cached(
            "UPDATE notification SET lease_until = ?1
             WHERE id = ?2 AND lease_owner = ?3 AND read_at IS NULL",
        )
        .map_err(err)?;
    let mut held = 0;
    for id in ids {
        held += stmt
            .execute(params![until.as_millis(), id.0, owner.0])
            .map_err(err)?;
    }
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
    let mut stmt = tx
        .prepare_cached(
            "UPDATE notification SET due_at = ?1, lease_owner = NULL, lease_until = NULL
             WHERE id = ?2 AND lease_owner = ?3 AND read_at IS NULL",
        )
        .map_err(err)?;
    for id in ids {
        stmt.execute(params![now.as_millis(), id.0, owner.0])
            .map_err(err)?;
    }
    Ok(())
}

/// A notification becomes due at its due time, or when its lease expires if that is later.
/// Leased notifications keep their place in the due index, so the walk in due order passes
/// over the ones in flight and stops at the first whose due time cannot beat the best found.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<Timestamp>> {
    let mut stmt = conn.prepare_cached(
        "SELECT due_at, lease_until FROM notification INDEXED BY notification_due
         WHERE due_at IS NOT NULL ORDER BY due_at",
    )?;
    let mut rows = stmt.query([])?;
    let mut best: Option<i64> = None;
    while let Some(r) = rows.next()? {
        let due: i64 = r.get(0)?;
        if best.is_some_and(|b| due >= b) {
            break;
        }
        let at = r.get::<_, Option<i64>>(1)?.map_or(due, |l| l.max(due));
        best = Some(best.map_or(at, |b| b.min(at)));
    }
    Ok(best.map(Timestamp::from_millis))
}
