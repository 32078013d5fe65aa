//! A datastore that counts the scanner's store calls and delegates each to a [`SqliteStore`]:
//! how many outcomes and claimed rows one transaction carries decides what the lease row and
//! the transaction cost per delivery, and that depends on the run's timing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use clair_notifier::store::{ClaimRequest, Claimed, LeaseOwner, Outcome};
use clair_notifier::{Datastore, NotificationId, Result, SqliteStore, Timestamp};

pub struct Counted {
    pub inner: SqliteStore,
    /// `record_and_claim` calls (one transaction each), outcomes written, rows claimed.
    pub writes: AtomicU64,
    pub outcomes: AtomicU64,
    pub claimed: AtomicU64,
    pub next_due: AtomicU64,
    pub renew: AtomicU64,
    pub dead_owner_checks: AtomicU64,
}

impl Counted {
    pub fn new(inner: SqliteStore) -> Counted {
        Counted {
            inner,
            writes: AtomicU64::new(0),
            outcomes: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            next_due: AtomicU64::new(0),
            renew: AtomicU64::new(0),
            dead_owner_checks: AtomicU64::new(0),
        }
    }

    /// One line: the counts, and per write transaction.
    pub fn report(&self) -> String {
        let w = self.writes.load(Relaxed).max(1) as f64;
        format!(
            "store calls: {} write transactions ({:.1} outcomes and {:.1} claimed rows each), \
             {} next_due, {} renew, {} dead-owner checks",
            self.writes.load(Relaxed),
            self.outcomes.load(Relaxed) as f64 / w,
            self.claimed.load(Relaxed) as f64 / w,
            self.next_due.load(Relaxed),
            self.renew.load(Relaxed),
            self.dead_owner_checks.load(Relaxed),
        )
    }
}

impl Datastore for Counted {
    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        self.writes.fetch_add(1, Relaxed);
        self.outcomes.fetch_add(outcomes.len() as u64, Relaxed);
        let claimed = self.inner.record_and_claim(owner, outcomes, claim)?;
        self.claimed.fetch_add(claimed.len() as u64, Relaxed);
        Ok(claimed)
    }
    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], until: Timestamp) -> Result<usize> {
        self.renew.fetch_add(1, Relaxed);
        self.inner.renew(owner, ids, until)
    }
    fn release_dead_owners(&self, now: Timestamp) -> Result<Vec<(LeaseOwner, usize)>> {
        self.dead_owner_checks.fetch_add(1, Relaxed);
        self.inner.release_dead_owners(now)
    }
    fn next_due(&self) -> Result<Option<Timestamp>> {
        self.next_due.fetch_add(1, Relaxed);
        self.inner.next_due()
    }
    forward_to_inner!(
        insert,
        release,
        hold_owner,
        mark_read,
        page,
        summary,
        list,
        counts,
        setting_or_insert,
        delete_read,
        delete_attempts,
        resend,
        resend_failing,
        set_paused,
        end_wait,
        notifiers,
        record_sends,
        take_probe,
        attempts,
        watch
    );
}
