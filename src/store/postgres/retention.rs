//! Deleting notifications read long ago, one short statement a batch, with collectors taking
//! turns through a setting row (`retention_turn` = `owner:until`).

use super::pool::Conn;
use crate::store::DeleteRequest;

/// How long a collector's turn lasts past a call (as for SQLite).
const TURN_MS: i64 = 60_000;

/// The turn is taken (or kept) unless another collector's is still running; the oldest read
/// notifications are then deleted with their names, content, layers and attempts, skipping rows
/// another statement holds.
const DELETE_READ: &str = "
WITH turn AS (
    INSERT INTO setting (key, value) VALUES ('retention_turn', $1::text || ':' || $2::text)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value
    WHERE split_part(setting.value, ':', 1) = $1::text
       OR split_part(setting.value, ':', 2)::bigint <= $3
    RETURNING 1
), victims AS MATERIALIZED (
    SELECT id, name FROM notification
    WHERE read_at IS NOT NULL AND read_at <= $4 AND EXISTS (SELECT 1 FROM turn)
    ORDER BY read_at LIMIT $5
    FOR UPDATE SKIP LOCKED
), c AS (
    DELETE FROM content WHERE notification_id = ANY(ARRAY(SELECT id FROM victims))
), l AS (
    DELETE FROM layer WHERE notification_id = ANY(ARRAY(SELECT id FROM victims))
), a AS (
    DELETE FROM attempt WHERE notification_id = ANY(ARRAY(SELECT id FROM victims))
), nn AS (
    DELETE FROM notification_name WHERE name = ANY(ARRAY(SELECT name FROM victims))
), n AS (
    DELETE FROM notification WHERE id = ANY(ARRAY(SELECT id FROM victims)) RETURNING 1
)
SELECT count(*) FROM n";

pub fn delete_read(conn: &mut Conn, request: &DeleteRequest) -> Result<usize, postgres::Error> {
    let until = request.now.as_millis().saturating_add(TURN_MS);
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let rows = conn.query(
        DELETE_READ,
        &[
            &request.collector.get().to_string(),
            &until.to_string(),
            &request.now.as_millis(),
            &request.read_before.as_millis(),
            &limit,
        ],
    )?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as usize)
}
