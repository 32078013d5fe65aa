//! Storing new notifications: one statement for a whole batch (rows, content and layers from
//! arrays), which also notifies every listening instance when it commits.

use super::pool::Conn;
use crate::notification::{NewNotification, VulnerabilityWithLayers};
use crate::time::Timestamp;

/// The channel instances `LISTEN` on; an insert's `NOTIFY` is delivered when it commits.
pub const CHANNEL: &str = "clair_notifier";

/// A statement inserting notification rows in a CTE `n` (its own text, with parameters from
/// `$8`), then their names (the table that finds a row by name), content and layers from the arrays of [`Rows`] (`$1` to `$7`), then
/// `$tail`.
macro_rules! insert_rows {
    ($notification:literal, $tail:literal) => {
        concat!(
            "WITH n AS (",
            $notification,
            " RETURNING id, name
            ), nn AS (
                INSERT INTO notification_name (name, notification_id) SELECT name, id FROM n
            ), c AS (
                INSERT INTO content (notification_id, old_vulnerability, new_vulnerability)
                SELECT n.id, x.old, x.new
                FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(name, old, new)
                JOIN n ON n.name = x.name
            ), l AS (
                INSERT INTO layer (notification_id, side, seq, name)
                SELECT n.id, y.side, y.seq, y.layer
                FROM unnest($4::uuid[], $5::smallint[], $6::integer[], $7::text[])
                    AS y(name, side, seq, layer)
                JOIN n ON n.name = y.name
            ) ",
            $tail
        )
    };
}
pub(super) use insert_rows;

const INSERT: &str = insert_rows!(
    "INSERT INTO notification (name, created_at, due_at)
     SELECT name, $8, $8 FROM unnest($1::uuid[]) AS x(name)",
    "SELECT pg_notify('clair_notifier', '')"
);

/// The arrays `$1` to `$7` of [`insert_rows!`]: names, each side's vulnerability as JSON, and
/// one entry per layer.
#[derive(Default)]
pub struct Rows<'a> {
    pub names: Vec<uuid::Uuid>,
    old: Vec<Option<String>>,
    new: Vec<Option<String>>,
    layer_of: Vec<uuid::Uuid>,
    side: Vec<i16>,
    seq: Vec<i32>,
    layer: Vec<&'a str>,
}

impl<'a> Rows<'a> {
    /// Adds the notification `name` with its sides.
    pub fn push(
        &mut self,
        name: uuid::Uuid,
        old: Option<&'a VulnerabilityWithLayers>,
        new: Option<&'a VulnerabilityWithLayers>,
    ) {
        let json = |v: Option<&VulnerabilityWithLayers>| {
            v.map(|v| serde_json::to_string(&v.vulnerability).unwrap_or_default())
        };
        self.names.push(name);
        self.old.push(json(old));
        self.new.push(json(new));
        for (side, v) in [(0_i16, old), (1, new)] {
            let Some(v) = v else { continue };
            for (seq, layer) in (0_i32..).zip(&v.layers) {
                self.layer_of.push(name);
                self.side.push(side);
                self.seq.push(seq);
                self.layer.push(layer);
            }
        }
    }

    /// How many layer names were added.
    pub fn layers(&self) -> usize {
        self.layer.len()
    }

    /// Runs `statement` (made with [`insert_rows!`]) with these arrays and `more` as `$8` on.
    pub fn run<T: ?Sized + postgres::ToStatement>(
        &self,
        client: &mut impl postgres::GenericClient,
        statement: &T,
        more: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
            &self.names,
            &self.old,
            &self.new,
            &self.layer_of,
            &self.side,
            &self.seq,
            &self.layer,
        ];
        params.extend_from_slice(more);
        client.query(statement, &params)
    }
}

/// Inserts `notifications` (already checked) under fresh names, returned in order.
pub fn insert(
    conn: &mut Conn,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<Vec<uuid::Uuid>, postgres::Error> {
    let mut rows = Rows::default();
    for n in notifications {
        rows.push(uuid::Uuid::new_v4(), n.old.as_ref(), n.new.as_ref());
    }
    let statement = conn.statement(INSERT)?;
    rows.run(&mut conn.client, &statement, &[&now.as_millis()])?;
    Ok(rows.names)
}
