//! An operator's resend: a notification due at once, with a fresh round. Leases are not
//! touched: a notification in flight keeps its own, and its outcome decides what follows.

use super::pool::Conn;
use crate::store::Resend;
use crate::time::Timestamp;

/// Makes `name` due at `now` with a fresh round (a read one only when `unread`).
pub fn resend(
    conn: &mut Conn,
    name: &str,
    unread: bool,
    now: Timestamp,
) -> std::result::Result<Resend, postgres::Error> {
    let Some(key) = super::query::key(name) else {
        return Ok(Resend::Unknown);
    };
    let rows = conn.query(
        concat!(
            "WITH target AS (SELECT id, read_at FROM notification WHERE id = (",
            super::query::id_of_name!(),
            ")),
         changed AS (
             UPDATE notification n SET due_at = $2, read_at = NULL, attempts = 0,
                 last_error = NULL, progress = NULL
             FROM target WHERE n.id = target.id AND (target.read_at IS NULL OR $3)
             RETURNING 1)
         SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM changed)"
        ),
        &[&key, &now.as_millis(), &unread],
    )?;
    let (found, changed): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    Ok(match (found, changed) {
        (0, _) => Resend::Unknown,
        (_, 0) => Resend::Read,
        _ => Resend::Resent,
    })
}

/// Resends every failing notification (unread, with an error); returns how many.
pub fn resend_failing(
    conn: &mut Conn,
    now: Timestamp,
) -> std::result::Result<u64, postgres::Error> {
    let rows = conn.query(
        "WITH changed AS (
             UPDATE notification SET due_at = $1, attempts = 0, last_error = NULL, progress = NULL
             WHERE read_at IS NULL AND last_error IS NOT NULL RETURNING 1)
         SELECT count(*) FROM changed",
        &[&now.as_millis()],
    )?;
    Ok(rows[0].get::<_, i64>(0) as u64)
}
