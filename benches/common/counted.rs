//! A datastore that counts the scanner's store calls and delegates each to a [`SqliteStore`]:
//! how many outcomes and claimed rows one transaction carries decides what the lease row and
//! the transaction cost per delivery, and that depends on the run's timing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use std::time::Duration;

use clair_notifier::attempt::Attempt;
use clair_notifier::store::{
    CircuitChange, ClaimRequest, Claimed, Counts, DeleteRequest, LeaseOwner, ListFilter,
    NotifierState, Outcome, OwnerGuard, Resend, Sends,
};
use clair_notifier::{
    Datastore, NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
    Result, SqliteStore, Timestamp, Waker,
};

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
    fn insert(&self, n: &[NewNotification], now: Timestamp) -> Result<Vec<String>> {
        self.inner.insert(n, now)
    }
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
    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()> {
        self.inner.release(owner, ids, now)
    }
    fn hold_owner(&self, owner: LeaseOwner) -> Result<OwnerGuard> {
        self.inner.hold_owner(owner)
    }
    fn release_dead_owners(&self, now: Timestamp) -> Result<Vec<(LeaseOwner, usize)>> {
        self.dead_owner_checks.fetch_add(1, Relaxed);
        self.inner.release_dead_owners(now)
    }
    fn next_due(&self) -> Result<Option<Timestamp>> {
        self.next_due.fetch_add(1, Relaxed);
        self.inner.next_due()
    }
    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool> {
        self.inner.mark_read(name, now)
    }
    fn page(&self, name: &str, cursor: PageCursor, limit: u32) -> Result<Option<NotificationPage>> {
        self.inner.page(name, cursor, limit)
    }
    fn summary(&self, name: &str) -> Result<Option<NotificationSummary>> {
        self.inner.summary(name)
    }
    fn list(&self, filter: ListFilter) -> Result<Vec<NotificationSummary>> {
        self.inner.list(filter)
    }
    fn counts(&self, now: Timestamp) -> Result<Counts> {
        self.inner.counts(now)
    }
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        self.inner.setting_or_insert(key, value)
    }
    fn delete_read(&self, request: DeleteRequest) -> Result<usize> {
        self.inner.delete_read(request)
    }
    fn delete_attempts(&self, before: Timestamp, limit: usize) -> Result<usize> {
        self.inner.delete_attempts(before, limit)
    }
    fn resend(&self, name: &str, unread: bool, now: Timestamp) -> Result<Resend> {
        self.inner.resend(name, unread, now)
    }
    fn resend_failing(&self, now: Timestamp) -> Result<u64> {
        self.inner.resend_failing(now)
    }
    fn set_paused(&self, notifier: &str, paused: bool, now: Timestamp) -> Result<bool> {
        self.inner.set_paused(notifier, paused, now)
    }
    fn end_wait(&self, notifier: &str, now: Timestamp) -> Result<usize> {
        self.inner.end_wait(notifier, now)
    }
    fn notifiers(&self, now: Timestamp) -> Result<Vec<NotifierState>> {
        self.inner.notifiers(now)
    }
    fn record_sends(&self, sends: &Sends, now: Timestamp) -> Result<CircuitChange> {
        self.inner.record_sends(sends, now)
    }
    fn take_probe(&self, notifier: &str, probe: Duration, now: Timestamp) -> Result<bool> {
        self.inner.take_probe(notifier, probe, now)
    }
    fn attempts(&self, name: &str) -> Result<Option<Vec<Attempt>>> {
        self.inner.attempts(name)
    }
    fn watch(&self, waker: Waker) {
        self.inner.watch(waker)
    }
}
