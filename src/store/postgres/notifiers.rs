//! What operators set per notifier (its pause), and what held notifiers leave waiting: the
//! unread notifications whose round has progress of the notifier, not succeeded (found
//! through the partial index `notification_progress`).

use super::pool::Conn;
use crate::store::NotifierState;
use crate::time::Timestamp;

/// CTEs `w` and `u` making due at `$2` every unread notification whose round waits for the
/// notifier `$1`, locking them in id order (as every such statement does, so that two of them
/// cannot deadlock). Leases are left as they are: a notification in flight keeps its own.
macro_rules! ending_wait {
    () => {
        "w AS (
             SELECT id FROM notification
             WHERE progress IS NOT NULL AND read_at IS NULL
               AND progress::jsonb @> jsonb_build_array(
                   jsonb_build_object('notifier', $1::text, 'succeeded', false))
             ORDER BY id FOR UPDATE
         ), u AS (
             UPDATE notification n SET due_at = least(n.due_at, $2::bigint)
             FROM w WHERE n.id = w.id RETURNING 1
         )"
    };
}
pub(super) use ending_wait;

/// Pauses `notifier` at `now`; a second pause keeps the first one's time.
pub fn pause(conn: &mut Conn, notifier: &str, now: Timestamp) -> Result<bool, postgres::Error> {
    let rows = conn.query(
        "WITH p AS (
             INSERT INTO notifier (name, paused_at) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET paused_at = $2 WHERE notifier.paused_at IS NULL
             RETURNING 1)
         SELECT count(*) FROM p",
        &[&notifier, &now.as_millis()],
    )?;
    Ok(rows[0].get::<_, i64>(0) > 0)
}

/// Ends the pause of `notifier` and makes due at `now` what waits for it, in one statement.
/// Also when it was not paused: a repeated resume picks up what a service wrote while it had
/// not yet seen the first one.
pub fn resume(conn: &mut Conn, notifier: &str, now: Timestamp) -> Result<bool, postgres::Error> {
    let rows = conn.query(
        concat!(
            "WITH r AS (
                 UPDATE notifier SET paused_at = NULL WHERE name = $1 AND paused_at IS NOT NULL
                 RETURNING 1
             ), ",
            ending_wait!(),
            " SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM u)"
        ),
        &[&notifier, &now.as_millis()],
    )?;
    Ok(rows[0].get::<_, i64>(0) > 0)
}

/// Makes due at `now` every unread notification whose round waits for `notifier`.
pub fn end_wait(conn: &mut Conn, notifier: &str, now: Timestamp) -> Result<usize, postgres::Error> {
    let rows = conn.query(
        concat!("WITH ", ending_wait!(), " SELECT count(*) FROM u"),
        &[&notifier, &now.as_millis()],
    )?;
    Ok(rows[0].get::<_, i64>(0) as usize)
}

/// Every notifier with a row, in name order (bytewise, as SQLite sorts), with what waits for
/// it at `now`.
pub fn notifiers(conn: &mut Conn, now: Timestamp) -> Result<Vec<NotifierState>, postgres::Error> {
    let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
    let rows = conn.query(
        "SELECT name, paused_at, failures, open_since, next_probe,
             (SELECT count(*) FROM notification n
              WHERE n.progress IS NOT NULL AND n.read_at IS NULL AND n.due_at > $1
                AND n.progress::jsonb @> jsonb_build_array(
                    jsonb_build_object('notifier', notifier.name, 'succeeded', false)))
         FROM notifier ORDER BY name COLLATE \"C\"",
        &[&now.as_millis()],
    )?;
    Ok(rows
        .iter()
        .map(|r| NotifierState {
            notifier: r.get(0),
            paused: ts(r.get(1)),
            failures: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
            open_since: ts(r.get(3)),
            next_probe: ts(r.get(4)),
            waiting: r.get::<_, i64>(5).max(0) as u64,
        })
        .collect())
}
