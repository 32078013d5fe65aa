//! Claiming due work under leases fenced by a token per claim, writing outcomes back in
//! batches (folded into the next claim: one statement, one round trip), renewing and
//! releasing leases.
//!
//! # Fencing
//!
//! Every claim of a notification gives it a new `lease_token`, and the id the service holds
//! carries it: `row id << 16 | token` (a [`NotificationId`] means what its store says it
//! means). Renewals, outcomes and releases match the owner *and* the token, so that an
//! instance whose lease lapsed while it stalled can neither renew nor record over the claim
//! that took the work over, not even its own later claim of the same notification.

use postgres::Row;

use super::attempts;
use super::pool::Conn;
use crate::notification::NotificationId;
use crate::store::{AttemptLog, ClaimRequest, Claimed, LeaseOwner, NotifierProgress, Outcome};
use crate::time::Timestamp;

const TOKEN_BITS: u32 = 16;
const TOKEN_MASK: i64 = (1 << TOKEN_BITS) - 1;

/// The id the service holds for `row` under claim `token`.
pub fn encode(row: i64, token: i32) -> NotificationId {
    NotificationId::new((row << TOKEN_BITS) | (i64::from(token) & TOKEN_MASK))
}

/// The row and claim token of an id from [`encode`].
pub fn decode(id: NotificationId) -> (i64, i32) {
    (id.get() >> TOKEN_BITS, (id.get() & TOKEN_MASK) as i32)
}

/// Outcomes are written where the owner still holds the claim (and the notification is not
/// read); then due work is claimed, oldest first, skipping rows other claims have locked. The
/// `LIMIT` sits in a `MATERIALIZED` CTE so that no more rows are locked than are returned, and
/// the claimed rows are updated through `= ANY(ARRAY(...))`, an index lookup each: joined to
/// the CTE, the planner hashed the whole table for every claim.
///
/// The outcomes' rows are found by `id = ANY($1)` (as many index lookups as outcomes, and the
/// planner knows how many); every other condition on them is written against a column of the
/// materialized outcomes (`owner`; `unread` for `read_at IS NULL`), none on the table alone.
/// With `lease_owner = $9` as a condition of its own, statistics gathered while few rows were
/// leased (or before a bulk insert was analyzed) made the planner expect a handful of rows,
/// and it scanned or hashed the whole table (60,000 rows: 50-450 ms a batch, whenever
/// autovacuum had just analyzed it).
///
/// The attempt log (`$12` on, see [`attempts::Log`]) is written for the outcomes recorded, in
/// the same statement.
const RECORD_AND_CLAIM: &str = "
WITH o AS MATERIALIZED (
    SELECT *, $9::bigint AS owner, true AS unread
    FROM unnest($1::bigint[], $2::integer[], $3::boolean[], $4::bigint[],
                $5::integer[], $6::text[], $7::text[],
                $12::bigint[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[])
        WITH ORDINALITY
        AS o(id, token, notified, next_due, attempts, last_error, progress,
             nlog, ok_notifier, ok_at, ok_ms, ok_next_due, ord)
), recorded AS (
    UPDATE notification n SET
        notified_at = CASE WHEN o.notified THEN $8 ELSE n.notified_at END,
        due_at = o.next_due, attempts = o.attempts, last_error = o.last_error,
        progress = o.progress, lease_owner = NULL, lease_until = NULL,
        logged = n.logged + o.nlog, ok_notifier = coalesce(o.ok_notifier, n.ok_notifier),
        ok_at = coalesce(o.ok_at, n.ok_at), ok_ms = coalesce(o.ok_ms, n.ok_ms),
        ok_next_due = coalesce(o.ok_next_due, n.ok_next_due)
    FROM o
    WHERE n.id = ANY($1) AND n.id = o.id AND n.lease_owner = o.owner AND n.lease_token = o.token
        AND (n.read_at IS NULL) = o.unread
    RETURNING n.id, n.logged, o.nlog, o.ord
), logged AS (
    INSERT INTO attempt (notification_id, seq, notifier, started_at, duration_ms, class,
                         status, excerpt, next_due)
    SELECT r.id, r.logged - r.nlog + a.pos, a.notifier, a.started, a.ms, a.class, a.status,
           a.excerpt, a.next_due
    FROM unnest($17::bigint[], $18::bigint[], $19::text[], $20::bigint[], $21::bigint[],
                $22::text[], $23::integer[], $24::text[], $25::bigint[])
        AS a(ord, pos, notifier, started, ms, class, status, excerpt, next_due)
    JOIN recorded r ON r.ord = a.ord
    WHERE r.logged - r.nlog + a.pos > r.logged - $26
), dropped AS (
    DELETE FROM attempt t USING recorded r
    WHERE r.nlog > 0 AND r.logged > $26 AND t.notification_id = r.id
      AND t.seq <= r.logged - $26
), due AS MATERIALIZED (
    SELECT id FROM notification
    WHERE due_at <= $8 AND (lease_until IS NULL OR lease_until <= $8) AND id <> ALL($1)
    ORDER BY due_at LIMIT $10
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notification n SET lease_owner = $9, lease_until = $11,
        lease_token = (n.lease_token + 1) % 65536
    WHERE n.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING n.id, n.lease_token, n.name, n.created_at, n.notified_at, n.progress, n.due_at
)
SELECT * FROM claimed";

pub fn record_and_claim(
    conn: &mut Conn,
    owner: LeaseOwner,
    outcomes: &[Outcome],
    claim: ClaimRequest,
    log: AttemptLog,
) -> Result<Vec<Claimed>, postgres::Error> {
    let mut logs = attempts::Log::default();
    let n = outcomes.len();
    let (mut rows, mut tokens) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut notified, mut next_due) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut attempts, mut errors, mut progress) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for o in outcomes {
        let (row, token) = decode(o.id);
        rows.push(row);
        tokens.push(token);
        notified.push(o.notified);
        next_due.push(o.next_due.as_millis());
        attempts.push(i32::try_from(o.attempts).unwrap_or(i32::MAX));
        errors.push(o.last_error.clone());
        progress.push((!o.progress.is_empty()).then(|| progress_json(&o.progress)));
        logs.push(log, &o.log);
    }
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let (now, owner, until) = (
        claim.now.as_millis(),
        owner.get(),
        claim.lease_until.as_millis(),
    );
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
        &rows, &tokens, &notified, &next_due, &attempts, &errors, &progress, &now, &owner, &limit,
        &until,
    ];
    params.extend(logs.params());
    let found = conn.query(RECORD_AND_CLAIM, &params)?;
    let mut claimed: Vec<(i64, Claimed)> = found.iter().map(claimed_row).collect();
    claimed.sort_by_key(|(due, c)| (*due, c.id));
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

fn claimed_row(r: &Row) -> (i64, Claimed) {
    let progress: Option<String> = r.get(5);
    let claimed = Claimed {
        id: encode(r.get(0), r.get(1)),
        name: r.get::<_, uuid::Uuid>(2).hyphenated().to_string(),
        created: Timestamp::from_millis(r.get(3)),
        notified: r.get::<_, Option<i64>>(4).map(Timestamp::from_millis),
        progress: progress.as_deref().map(parse_progress).unwrap_or_default(),
    };
    (r.get(6), claimed)
}

/// The per-notifier progress of a round, as kept in the `progress` column.
pub(super) fn progress_json(progress: &[NotifierProgress]) -> String {
    let list: Vec<serde_json::Value> = progress
        .iter()
        .map(|p| {
            serde_json::json!({
                "notifier": p.notifier,
                "attempts": p.attempts,
                "succeeded": p.succeeded,
                "last_error": p.last_error,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The progress kept by [`progress_json`]; a value no version wrote reads as none (the round
/// then starts afresh rather than stopping claims).
fn parse_progress(json: &str) -> Vec<NotifierProgress> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| {
            Some(NotifierProgress {
                notifier: v.get("notifier")?.as_str()?.to_string(),
                attempts: u32::try_from(v.get("attempts")?.as_u64()?).ok()?,
                succeeded: v.get("succeeded")?.as_bool()?,
                last_error: v.get("last_error")?.as_str().map(str::to_string),
            })
        })
        .collect()
}

/// Splits ids into rows and tokens, for `unnest`.
fn split(ids: &[NotificationId]) -> (Vec<i64>, Vec<i32>) {
    ids.iter().map(|&id| decode(id)).unzip()
}

/// Extends the leases `owner` still holds on `ids` (each fenced by its token; the owner matched
/// as a column, see [`RECORD_AND_CLAIM`]).
pub fn renew(
    conn: &mut Conn,
    owner: LeaseOwner,
    ids: &[NotificationId],
    until: Timestamp,
) -> Result<usize, postgres::Error> {
    let (rows, tokens) = split(ids);
    let held = conn.query(
        "WITH h AS MATERIALIZED (
             SELECT *, $1::bigint AS owner FROM unnest($3::bigint[], $4::integer[]) AS h(id, token)
         ), extended AS (
             UPDATE notification n SET lease_until = greatest(n.lease_until, $2)
             FROM h WHERE n.id = ANY($3) AND n.id = h.id AND n.lease_token = h.token
                 AND n.lease_owner = h.owner
             RETURNING 1)
         SELECT count(*) FROM extended",
        &[&owner.get(), &until.as_millis(), &rows, &tokens],
    )?;
    Ok(held.first().map_or(0, |r| r.get::<_, i64>(0)) as usize)
}

pub fn release(
    conn: &mut Conn,
    owner: LeaseOwner,
    ids: &[NotificationId],
    now: Timestamp,
) -> Result<(), postgres::Error> {
    let (rows, tokens) = split(ids);
    conn.query(
        "WITH h AS MATERIALIZED (
             SELECT *, $1::bigint AS owner FROM unnest($3::bigint[], $4::integer[]) AS h(id, token)
         )
         UPDATE notification n SET lease_owner = NULL, lease_until = NULL,
             due_at = CASE WHEN n.read_at IS NULL THEN $2::bigint END
         FROM h WHERE n.id = ANY($3) AND n.id = h.id AND n.lease_token = h.token
                 AND n.lease_owner = h.owner",
        &[&owner.get(), &now.as_millis(), &rows, &tokens],
    )?;
    Ok(())
}

/// Rows the due-order walk of [`next_due`] reads before it gives up and aggregates.
const WALK: i64 = 4096;

/// When the next notification becomes due: its due time, or its lease's expiry if that is
/// later. Leased notifications keep their (past) due time, so a walk in due order passes over
/// the ones in flight and stops at the first whose due time cannot beat the best found (as the
/// SQLite store does); past [`WALK`] rows (more in flight than that) it takes the aggregate.
pub fn next_due(conn: &mut Conn) -> Result<Option<Timestamp>, postgres::Error> {
    let rows = conn.query(
        "SELECT due_at, lease_until FROM notification WHERE due_at IS NOT NULL
         ORDER BY due_at LIMIT $1",
        &[&WALK],
    )?;
    let mut best: Option<i64> = None;
    for r in &rows {
        let due: i64 = r.get(0);
        if best.is_some_and(|b| due >= b) {
            return Ok(best.map(Timestamp::from_millis));
        }
        let at = r.get::<_, Option<i64>>(1).map_or(due, |l| l.max(due));
        best = Some(best.map_or(at, |b| b.min(at)));
    }
    if (rows.len() as i64) < WALK {
        return Ok(best.map(Timestamp::from_millis));
    }
    let rows = conn.query(
        "SELECT min(greatest(due_at, lease_until)) FROM notification WHERE due_at IS NOT NULL",
        &[],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_claim_token() {
        for (row, token) in [(1, 0), (1, 65_535), (1 << 40, 7)] {
            assert_eq!(decode(encode(row, token)), (row, token));
        }
        assert_ne!(encode(5, 1), encode(5, 2), "two claims of one row differ");
        let p = vec![NotifierProgress {
            notifier: "webhook".into(),
            attempts: 3,
            succeeded: false,
            last_error: Some("HTTP 503 \"x\"".into()),
        }];
        assert_eq!(parse_progress(&progress_json(&p)), p);
        assert!(parse_progress("{").is_empty());
    }
}
