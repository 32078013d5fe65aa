//! [`SpyStore`]: the SQLite store, watched and broken on demand.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use clair_notifier::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
};
use clair_notifier::store::{ClaimRequest, Claimed, Counts, LeaseOwner, ListFilter, Outcome};
use clair_notifier::{Datastore, Result, SqliteStore, Timestamp, Waker};

/// The SQLite store, which notes the size of each claim it is asked for and panics on a claim
/// once told to (as a custom datastore with a bug might).
pub struct SpyStore {
    pub inner: SqliteStore,
    /// The `limit` of every claim, in order.
    pub limits: Mutex<Vec<usize>>,
    /// Set: the next claim panics.
    pub panic_on_claim: AtomicBool,
}

impl SpyStore {
    pub fn open(path: &Path) -> SpyStore {
        SpyStore {
            inner: SqliteStore::open(path).unwrap(),
            limits: Mutex::new(Vec::new()),
            panic_on_claim: AtomicBool::new(false),
        }
    }
}

impl Datastore for SpyStore {
    fn insert(&self, n: &[NewNotification], now: Timestamp) -> Result<Vec<String>> {
        self.inner.insert(n, now)
    }
    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], t: Timestamp) -> Result<usize> {
        self.inner.renew(owner, ids, t)
    }
    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        if claim.limit > 0 {
            if self.panic_on_claim.load(Ordering::SeqCst) {
                panic!("the spy store panics on a claim, as told");
            }
            self.limits.lock().unwrap().push(claim.limit);
        }
        self.inner.record_and_claim(owner, outcomes, claim)
    }
    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()> {
        self.inner.release(owner, ids, now)
    }
    fn next_due(&self) -> Result<Option<Timestamp>> {
        self.inner.next_due()
    }
    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool> {
        self.inner.mark_read(name, now)
    }
    fn page(&self, name: &str, c: PageCursor, limit: u32) -> Result<Option<NotificationPage>> {
        self.inner.page(name, c, limit)
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
    fn watch(&self, waker: Waker) {
        self.inner.watch(waker)
    }
}
