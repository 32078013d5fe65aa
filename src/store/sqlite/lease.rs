//! Leases: one row per running instance, holding the ids of the notifications it has claimed
//! and not yet reported, and when they all expire unless renewed.
//!
//! A claim records its batch by rewriting its owner's row (one row write per claim, not one
//! per notification), and leaves the notifications themselves untouched: they keep their place
//! in the due index, and the due scan passes over the ids under a live lease. When an owner's
//! lease expires (a crashed instance), the next claim by another instance deletes its row, and
//! its notifications are due again at once. An owner whose row is gone has lost its leases: its
//! late outcomes are ignored.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use rusqlite::{Connection, Transaction, params};

use crate::notification::NotificationId;
use crate::store::LeaseOwner;
use crate::time::Timestamp;

/// Sets of ids, read and written by every claim and outcome batch: hashed by one
/// multiplication (the ids are row ids, not chosen by anyone who could aim at collisions).
pub type Ids = HashSet<i64, BuildHasherDefault<IdHasher>>;
/// Leased ids and their lease's expiry.
pub type Expiries = HashMap<i64, i64, BuildHasherDefault<IdHasher>>;

/// The hasher of [`Ids`] and [`Expiries`], and of the scanner's set of ids in flight. and of the scanner's set of ids in flight.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Deletes the lease rows of `owners` (instances known to be gone): the notifications they
/// held keep the due time they had when claimed, which is past, so they are due at once;
/// their round's progress is untouched. Returns each owner that held any, with how many.
pub fn free(
    tx: &Transaction<'_>,
    owners: &[LeaseOwner],
) -> rusqlite::Result<Vec<(LeaseOwner, usize)>> {
    let mut freed = Vec::new();
    let mut delete = tx.prepare_cached("DELETE FROM lease WHERE owner = ?1 RETURNING ids")?;
    for &owner in owners {
        let mut rows = delete.query([owner.get()])?;
        while let Some(r) = rows.next()? {
            let held = decode(r.get_ref(0)?.as_blob()?).count();
            if held > 0 {
                freed.push((owner, held));
            }
        }
    }
    Ok(freed)
}

/// The leases as one transaction sees them.
#[derive(Debug, Default)]
pub struct Leases {
    /// The ids the owner holds, and when its lease expires; `None` if it holds none.
    own: Option<Own>,
    /// Ids under other owners' live leases.
    others: Ids,
}

/// The owner's lease within one transaction: its ids sorted, as its row keeps them, with the
/// ones ended meanwhile marked. (A set built from the row and sorted back into it costs
/// every transaction a hash and a sort step per id in flight, thousands of them.)
#[derive(Debug)]
struct Own {
    /// Sorted, without repeats.
    ids: Vec<i64>,
    /// Whether `ids[i]`'s lease has ended in this transaction.
    ended: Vec<bool>,
    /// How many of `ids` have not ended.
    live: usize,
    /// When the lease expires (milliseconds).
    until: i64,
}

impl Own {
    /// An owner's lease on sorted `ids`.
    fn new(ids: Vec<i64>, until: i64) -> Own {
        Own {
            ended: vec![false; ids.len()],
            live: ids.len(),
            ids,
            until,
        }
    }

    /// Where `id` is, if the lease holds it.
    fn find(&self, id: i64) -> Option<usize> {
        // Most ids a claim looks at are newer than all those held: no search for them.
        let (&first, &last) = (self.ids.first()?, self.ids.last()?);
        if id < first || id > last {
            return None;
        }
        self.ids.binary_search(&id).ok().filter(|&i| !self.ended[i])
    }

    /// The ids held, in order.
    fn held(&self) -> impl Iterator<Item = i64> + '_ {
        self.ids
            .iter()
            .zip(&self.ended)
            .filter(|(_, e)| !**e)
            .map(|(id, _)| *id)
    }
}

impl Leases {
    /// Reads the leases within `tx` for `owner` at `now`, deleting the rows of other owners
    /// whose lease has expired (their notifications are free from now on).
    pub fn load(tx: &Transaction<'_>, owner: LeaseOwner, now: Timestamp) -> rusqlite::Result<Self> {
        let mut leases = Leases::default();
        let mut expired = Vec::new();
        {
            let mut stmt = tx.prepare_cached("SELECT owner, until, ids FROM lease")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (who, until): (i64, i64) = (r.get(0)?, r.get(1)?);
                let ids = decode(r.get_ref(2)?.as_blob()?);
                if who == owner.get() {
                    let mut ids: Vec<i64> = ids.collect();
                    if !ids.is_sorted_by(|a, b| a < b) {
                        ids.sort_unstable();
                        ids.dedup();
                    }
                    leases.own = Some(Own::new(ids, until));
                } else if until > now.as_millis() {
                    leases.others.extend(ids);
                } else {
                    expired.push(who);
                }
            }
        }
        for who in expired {
            tx.prepare_cached("DELETE FROM lease WHERE owner = ?1")?
                .execute([who])?;
        }
        Ok(leases)
    }

    /// Whether a claim must pass over `id`: leased to the owner or live under another.
    pub fn taken(&self, id: i64) -> bool {
        self.others.contains(&id) || self.own.as_ref().is_some_and(|own| own.find(id).is_some())
    }

    /// Ends the owner's lease on `id`; returns whether it held it.
    pub fn end(&mut self, id: NotificationId) -> bool {
        let Some(own) = self.own.as_mut() else {
            return false;
        };
        match own.find(id.get()) {
            Some(i) => {
                own.ended[i] = true;
                own.live -= 1;
                true
            }
            None => false,
        }
    }

    /// Adds `ids` to the owner's lease, which then lasts at least until `until`.
    pub fn take(&mut self, ids: impl IntoIterator<Item = i64>, until: Timestamp) {
        let mut new: Vec<i64> = ids.into_iter().collect();
        new.sort_unstable();
        let old = self
            .own
            .take()
            .unwrap_or_else(|| Own::new(Vec::new(), i64::MIN));
        // Merged in one pass: the ids held and the new ones, both sorted.
        let mut ids = Vec::with_capacity(old.live + new.len());
        let mut held = old.held().peekable();
        let mut new = new.into_iter().peekable();
        loop {
            let next = match (held.peek(), new.peek()) {
                (Some(&a), Some(&b)) if a < b => held.next(),
                (Some(&a), Some(&b)) if a == b => {
                    held.next();
                    new.next()
                }
                (Some(_), None) => held.next(),
                (_, Some(_)) => new.next(),
                (None, None) => break,
            };
            ids.extend(next);
        }
        self.own = Some(Own::new(ids, old.until.max(until.as_millis())));
    }

    /// Extends the owner's lease to at least `until`; returns how many of `ids` it holds
    /// (none if it holds no lease: it has lost them).
    pub fn renew(&mut self, ids: &[NotificationId], until: Timestamp) -> usize {
        let Some(own) = self.own.as_mut() else {
            return 0;
        };
        own.until = own.until.max(until.as_millis());
        ids.iter().filter(|id| own.find(id.get()).is_some()).count()
    }

    /// Writes the owner's row back: deleted once it holds nothing.
    pub fn save(&self, tx: &Transaction<'_>, owner: LeaseOwner) -> rusqlite::Result<()> {
        match &self.own {
            Some(own) if own.live > 0 => {
                let mut blob = Vec::with_capacity(own.live * 8);
                for id in own.held() {
                    blob.extend_from_slice(&id.to_le_bytes());
                }
                tx.prepare_cached(
                    "INSERT INTO lease (owner, until, ids) VALUES (?1, ?2, ?3)
                     ON CONFLICT (owner) DO UPDATE SET until = excluded.until, ids = excluded.ids",
                )?
                .execute(params![owner.get(), own.until, blob])?;
            }
            _ => {
                tx.prepare_cached("DELETE FROM lease WHERE owner = ?1")?
                    .execute([owner.get()])?;
            }
        }
        Ok(())
    }
}

/// Every leased id with its lease's expiry (live or not: a notification under an expired lease
/// is due, and its expiry is in the past).
pub fn expiries(conn: &Connection) -> rusqlite::Result<Expiries> {
    let mut stmt = conn.prepare_cached("SELECT until, ids FROM lease")?;
    let mut rows = stmt.query([])?;
    let mut map = Expiries::default();
    while let Some(r) = rows.next()? {
        let until: i64 = r.get(0)?;
        for id in decode(r.get_ref(1)?.as_blob()?) {
            map.insert(id, until);
        }
    }
    Ok(map)
}

/// The expiry of the lease on `id`, if one holds it (the rows keep their ids sorted).
pub fn expiry_of(conn: &Connection, id: i64) -> rusqlite::Result<Option<i64>> {
    let mut stmt = conn.prepare_cached("SELECT until, ids FROM lease")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let blob = r.get_ref(1)?.as_blob()?;
        let (mut lo, mut hi) = (0, blob.len() / 8);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match id_at(blob, mid).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(r.get(0)?)),
            }
        }
    }
    Ok(None)
}

/// Ids under a lease live at `now`.
pub fn live(conn: &Connection, now: Timestamp) -> rusqlite::Result<Ids> {
    Ok(expiries(conn)?
        .into_iter()
        .filter(|&(_, until)| until > now.as_millis())
        .map(|(id, _)| id)
        .collect())
}

/// The ids of a row's `ids` (8 bytes each, little-endian; a trailing partial id is ignored).
fn decode(blob: &[u8]) -> impl Iterator<Item = i64> + '_ {
    (0..blob.len() / 8).map(|i| id_at(blob, i))
}

/// The `i`th id of a row's `ids`.
fn id_at(blob: &[u8], i: usize) -> i64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&blob[i * 8..i * 8 + 8]);
    i64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Consecutive ids (the common case: notifications inserted together) land in distinct
    /// buckets, and their tags (the top seven bits, which the table compares before keys)
    /// differ too.
    #[test]
    fn consecutive_ids_spread_over_the_buckets() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let low: HashSet<u64> = (1..=4096_i64).map(|id| build.hash_one(id) & 4095).collect();
        assert_eq!(low.len(), 4096);
        let tags: HashSet<u64> = (1..=4096_i64).map(|id| build.hash_one(id) >> 57).collect();
        assert!(tags.len() >= 120, "{} tags of 128", tags.len());
        let mut ids = Ids::default();
        ids.extend(0..10_000);
        assert!(ids.contains(&9_999) && !ids.contains(&10_000));
    }

    /// Taken, ended and taken again in one transaction, the owner's ids are written back
    /// sorted, once each, without the ended ones: what the next transaction and the read
    /// API's search find.
    #[test]
    fn the_owners_row_is_written_back_sorted_without_what_ended() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE lease (owner INTEGER PRIMARY KEY, until INTEGER NOT NULL, ids BLOB NOT NULL)",
        )
        .unwrap();
        let owner = LeaseOwner::new(7);
        let (t1, t2) = (Timestamp::from_millis(1_000), Timestamp::from_millis(2_000));
        let tx = conn.transaction().unwrap();
        let mut leases = Leases::load(&tx, owner, t1).unwrap();
        leases.take([9, 1, 5], t2);
        assert!(leases.end(NotificationId::new(5)));
        assert!(!leases.end(NotificationId::new(5)), "ended once");
        assert!(!leases.taken(5));
        leases.take([5, 3], t1);
        leases.save(&tx, owner).unwrap();
        let mut leases = Leases::load(&tx, owner, t1).unwrap();
        assert!([1, 3, 5, 9].iter().all(|&id| leases.taken(id)));
        assert!(!leases.taken(2));
        let ids = [1, 2, 9].map(NotificationId::new);
        assert_eq!(leases.renew(&ids, t1), 2);
        assert!(leases.end(NotificationId::new(1)));
        leases.save(&tx, owner).unwrap();
        for id in [3, 5, 9] {
            assert_eq!(expiry_of(&tx, id).unwrap(), Some(2_000), "{id}");
        }
        assert_eq!(expiry_of(&tx, 1).unwrap(), None);
        for id in [3, 5, 9] {
            assert!(leases.end(NotificationId::new(id)));
        }
        leases.save(&tx, owner).unwrap();
        let n: i64 = tx
            .query_row("SELECT count(*) FROM lease", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "a row that holds nothing is deleted");
    }
}
