//! Storing new notifications: one statement for a whole batch (rows, content and layers from
//! arrays), which also notifies every listening instance when it commits.

use super::pool::Conn;
use crate::notification::NewNotification;
use crate::time::Timestamp;

/// The channel instances `LISTEN` on; an insert's `NOTIFY` is delivered when it commits.
pub const CHANNEL: &str = "clair_notifier";

const INSERT: &str = "
WITH n AS (
    INSERT INTO notification (name, created_at, due_at)
    SELECT name, $2, $2 FROM unnest($1::uuid[]) AS x(name)
    RETURNING id, name
), c AS (
    INSERT INTO content (notification_id, old_vulnerability, new_vulnerability)
    SELECT n.id, x.old, x.new
    FROM unnest($1::uuid[], $3::text[], $4::text[]) AS x(name, old, new)
    JOIN n ON n.name = x.name
), l AS (
    INSERT INTO layer (notification_id, side, seq, name)
    SELECT n.id, y.side, y.seq, y.layer
    FROM unnest($5::uuid[], $6::smallint[], $7::integer[], $8::text[]) AS y(name, side, seq, layer)
    JOIN n ON n.name = y.name
)
SELECT pg_notify('clair_notifier', '')";

/// Inserts `notifications` (already checked) under fresh names, returned in order.
pub fn insert(
    conn: &mut Conn,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<Vec<uuid::Uuid>, postgres::Error> {
    let names: Vec<uuid::Uuid> = notifications.iter().map(|_| uuid::Uuid::new_v4()).collect();
    let json = |v: Option<&crate::notification::VulnerabilityWithLayers>| {
        v.map(|v| serde_json::to_string(&v.vulnerability).unwrap_or_default())
    };
    let old: Vec<Option<String>> = notifications.iter().map(|n| json(n.old.as_ref())).collect();
    let new: Vec<Option<String>> = notifications.iter().map(|n| json(n.new.as_ref())).collect();
    let (mut l_name, mut l_side, mut l_seq, mut l_layer) = (vec![], vec![], vec![], vec![]);
    for (n, name) in notifications.iter().zip(&names) {
        for (side, v) in [(0_i16, &n.old), (1, &n.new)] {
            let Some(v) = v else { continue };
            for (seq, layer) in (0_i32..).zip(&v.layers) {
                l_name.push(*name);
                l_side.push(side);
                l_seq.push(seq);
                l_layer.push(layer.as_str());
            }
        }
    }
    conn.query(
        INSERT,
        &[
            &names,
            &now.as_millis(),
            &old,
            &new,
            &l_name,
            &l_side,
            &l_seq,
            &l_layer,
        ],
    )?;
    Ok(names)
}
