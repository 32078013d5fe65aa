//! Storage of notifications and of their delivery state, behind the [`Datastore`] trait.
//!
//! The service talks to storage only through [`Datastore`], whose operations speak in this
//! crate's types (no SQL, no driver types), so that backends other than [`SqliteStore`] can
//! follow. Every operation that depends on the time takes `now` from its caller.
//!
//! # Delivery state
//!
//! Each notification carries the time it is next due (`due`, absent once read) and, while it
//! is claimed, a lease: the owner's id and the lease's expiry. A claimed notification is not
//! due while its lease is live; it becomes due when its due time has come and its lease (if
//! any) has expired, so an expired lease (a crashed owner) makes it due again with no extra
//! bookkeeping. A claim leaves `due` as it was; only the outcome sets it. A store may keep
//! leases per owner (the SQLite store keeps one row per running instance listing what it
//! holds, so that a claim writes one row, not one per notification): an owner's leases then
//! expire together, and renewing any extends them all. Per-notifier progress within a round
//! (attempts, success, last error) is kept only while a round is unfinished; the common case
//! (every notifier succeeds on the first try) writes one row.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::error::Result;
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor, State,
};
use crate::service::Waker;
use crate::time::Timestamp;

/// Identifies one running service instance as the holder of leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseOwner(pub i64);

impl LeaseOwner {
    /// A fresh random owner id.
    pub fn random() -> LeaseOwner {
        LeaseOwner((uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX)
    }
}

/// The state of one notifier within the current round of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierProgress {
    /// The notifier's registered name.
    pub notifier: String,
    /// Failed tries of this notifier in this round.
    pub attempts: u32,
    /// Whether this notifier already succeeded in this round.
    pub succeeded: bool,
    /// Its last failure in this round.
    pub last_error: Option<String>,
}

/// A notification claimed for delivery, leased to the claimer.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The store's identifier.
    pub id: NotificationId,
    /// The public name.
    pub name: String,
    /// When it was stored.
    pub created: Timestamp,
    /// When a round last succeeded.
    pub notified: Option<Timestamp>,
    /// Progress of the current round, per notifier; empty when the round is fresh.
    pub progress: Vec<NotifierProgress>,
}

/// What became of one claimed notification, to be written back by [`Datastore::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The notification.
    pub id: NotificationId,
    /// The round succeeded: set `notified` to now.
    pub notified: bool,
    /// When it is next due.
    pub next_due: Timestamp,
    /// Failed attempts in the round now in progress (0 when a round ended).
    pub attempts: u32,
    /// The failure to show, while the notification is failing.
    pub last_error: Option<String>,
    /// Per-notifier progress of an unfinished round; empty when the round ended.
    pub progress: Vec<NotifierProgress>,
    /// Whether stored progress must be replaced (it existed at claim, or `progress` is set).
    pub replace_progress: bool,
}

/// Counts of notifications by state, and delivery figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Never delivered, not failing.
    pub pending: u64,
    /// Delivered, not read, not failing.
    pub notified: u64,
    /// Last attempt failed.
    pub failing: u64,
    /// Marked read.
    pub read: u64,
    /// Due now (including expired leases).
    pub due: u64,
    /// Currently leased.
    pub leased: u64,
    /// When the longest-waiting due notification became due.
    pub oldest_due: Option<Timestamp>,
}

impl Counts {
    /// All notifications.
    pub fn total(&self) -> u64 {
        self.pending + self.notified + self.failing + self.read
    }
}

/// Which notifications [`Datastore::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this state; `None` for all.
    pub state: Option<State>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Durable storage of notifications and their delivery state.
///
/// Implementations are shared by the scanner, the workers' owner, the read API and the
/// command line, from several threads and possibly several processes.
pub trait Datastore: Send + Sync + 'static {
    /// Stores `notifications` in one transaction, each under a new random name, and returns
    /// the names in order. They are due at once. Once this returns, they survive a crash.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) naming the index of a notification
    /// without a side or a vulnerability name (then nothing is stored); a store failure.
    fn insert(&self, notifications: &[NewNotification], now: Timestamp) -> Result<Vec<String>>;

    /// Leases up to `limit` due notifications (oldest due first) to `owner` until
    /// `lease_until`.
    ///
    /// # Errors
    ///
    /// A store failure (nothing is claimed then).
    fn claim(
        &self,
        owner: LeaseOwner,
        limit: usize,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<Claimed>>;

    /// Extends `owner`'s leases on `ids` to at least `until` (a store that keeps leases per
    /// owner extends all of them); returns how many of `ids` it still held.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], until: Timestamp) -> Result<usize>;

    /// Writes back `outcomes` of notifications leased to `owner`, ending their leases. An
    /// outcome for a lease `owner` no longer holds is ignored (another instance took it over);
    /// a notification read meanwhile stays read.
    ///
    /// # Errors
    ///
    /// A store failure (then none of them is written).
    fn record(&self, owner: LeaseOwner, outcomes: &[Outcome], now: Timestamp) -> Result<()>;

    /// [`record`](Datastore::record) then [`claim`](Datastore::claim); a store may do both in
    /// one transaction.
    ///
    /// # Errors
    ///
    /// A store failure (then neither happened).
    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        limit: usize,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<Claimed>> {
        self.record(owner, outcomes, now)?;
        self.claim(owner, limit, now, lease_until)
    }

    /// Ends `owner`'s leases on `ids` without an outcome: they are due again at `now`.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()>;

    /// When the next notification becomes due (possibly in the past), or `None` if none is
    /// scheduled.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn next_due(&self) -> Result<Option<Timestamp>>;

    /// Marks the notification `name` read at `now` (again, if it already was: the time moves
    /// forward, as in Clair). Returns `false` if there is no such notification.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool>;

    /// One page of the notification `name`: up to `limit` layers of each side starting at
    /// `cursor`. `None` if there is no such notification.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn page(&self, name: &str, cursor: PageCursor, limit: u32) -> Result<Option<NotificationPage>>;

    /// The notification `name` without its vulnerabilities.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn summary(&self, name: &str) -> Result<Option<NotificationSummary>>;

    /// Notifications by state, newest first.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn list(&self, filter: ListFilter) -> Result<Vec<NotificationSummary>>;

    /// Counts by state at `now`.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn counts(&self, now: Timestamp) -> Result<Counts>;

    /// Stores `value` under `key` unless a value is already there, and returns the stored
    /// value, so that instances sharing a store agree on one (the read API's generated
    /// pagination key lives here).
    ///
    /// # Errors
    ///
    /// A store failure.
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;

    /// Has `waker` woken after every successful [`insert`](Datastore::insert) through this
    /// value, so that a running service sees in-process inserts at once. Wakers of stopped
    /// services are dropped.
    fn watch(&self, waker: Waker);
}
