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

#[cfg(test)]
mod contract_tests;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{Copied, PostgresOptions, PostgresStore, STATEMENT_TIMEOUT, SslMode};
pub use sqlite::{SqliteStore, Vacuumed};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor, State,
};
use crate::time::Timestamp;
use crate::wake::Waker;

/// Checks every notification of a batch before anything is written, so that a bad one
/// inserts nothing: [`InvalidInput`](ErrorKind::InvalidInput) naming its index.
fn check_all(notifications: &[NewNotification]) -> Result<()> {
    for (i, n) in notifications.iter().enumerate() {
        n.check().map_err(|why| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("notification {} of {}: {why}", i + 1, notifications.len()),
            )
        })?;
    }
    Ok(())
}

/// Identifies one running service instance as the holder of leases.
///
/// Each service draws a random one when it starts; a store keeps it beside what the instance
/// holds. It is a positive 63-bit number, so that any store can keep it as a signed 64-bit
/// integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseOwner(i64);

impl LeaseOwner {
    /// A fresh random owner id.
    pub fn random() -> LeaseOwner {
        LeaseOwner((uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX)
    }

    /// The owner a store kept as `raw` (a value [`get`](LeaseOwner::get) returned).
    pub const fn new(raw: i64) -> LeaseOwner {
        LeaseOwner(raw)
    }

    /// The number to keep in a store.
    pub const fn get(self) -> i64 {
        self.0
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

/// A notification claimed for delivery, leased to the claimer: what a worker needs to send
/// it and to report its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Progress of the current round, per notifier; empty when the round is fresh.
    pub progress: Vec<NotifierProgress>,
    /// What its [`Outcome`] names it by.
    pub id: NotificationId,
    /// The public name: what the notifiers send.
    pub name: String,
    /// When it was stored (the latency metric counts from here).
    pub created: Timestamp,
    /// When a round last succeeded; `None` before its first delivery.
    pub notified: Option<Timestamp>,
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
    /// Per-notifier progress of an unfinished round, replacing what the store held; empty
    /// when the round ended (the store then forgets the round's progress).
    pub progress: Vec<NotifierProgress>,
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

/// Keeps an owner provably alive to the other users of a store while it lives (see
/// [`Datastore::hold_owner`]); dropping it ends the proof.
pub struct OwnerGuard(Option<Box<dyn std::any::Any + Send + Sync>>);

impl OwnerGuard {
    /// A guard that keeps `proof` (a lock, a connection) until it is dropped.
    pub fn new(proof: impl std::any::Any + Send + Sync) -> OwnerGuard {
        OwnerGuard(Some(Box::new(proof)))
    }

    /// A guard that proves nothing, for stores that cannot tell whether an owner is alive.
    pub fn none() -> OwnerGuard {
        OwnerGuard(None)
    }

    /// Whether this guard holds a proof.
    pub fn proves(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for OwnerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerGuard")
            .field("proves", &self.proves())
            .finish()
    }
}

/// What [`Datastore::delete_read`] is asked to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The instance collecting: the turn it takes or keeps (see [`Datastore::delete_read`]).
    pub collector: LeaseOwner,
    /// Notifications read at or before this are deleted.
    pub read_before: Timestamp,
    /// At most this many; 0 deletes nothing.
    pub limit: usize,
    /// The time of the call.
    pub now: Timestamp,
}

/// What [`Datastore::record_and_claim`] is asked to claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest {
    /// At most this many notifications; 0 claims nothing (the call only records).
    pub limit: usize,
    /// The time of the call: what is due at or before it may be claimed, and outcomes are
    /// recorded at it.
    pub now: Timestamp,
    /// When the leases taken expire unless renewed.
    pub lease_until: Timestamp,
}

/// Durable storage of notifications and their delivery state.
///
/// Implementations are shared by the scanner, the read API and the command line, from several
/// threads and possibly several processes (instances) at once. Every operation that depends on
/// the time takes it from its caller, so a backend never reads a clock of its own.
///
/// # The contract
///
/// A backend is correct when these hold; the SQLite store's tests check each of them
/// (`src/store/sqlite/tests.rs`), and a second backend should be tested against the same list.
///
/// - **Due.** A notification is due at `now` when it is not read, its due time is at or before
///   `now`, and no live lease covers it. Inserted notifications are due at once. Read ones are
///   never due again and never claimed again.
/// - **Leases.** A claim leases what it returns to its owner until `lease_until`; while that
///   lease is live, no claim (by any owner) returns it again, and it is not counted as due.
///   A claim leaves the due time as it was: once the lease expires without an outcome (a
///   crashed owner), the notification is due again with nothing else to clean up. A store may
///   keep leases per owner; then renewing extends all of that owner's leases together.
/// - **Dead owners.** A store that can tell whether an owner's process is alive (see
///   [`hold_owner`](Datastore::hold_owner)) frees the leases of a provably dead owner at once
///   ([`release_dead_owners`](Datastore::release_dead_owners)). It never frees a live owner's
///   leases, however slow or stalled that owner is: only expiry or proven death frees work.
/// - **Outcomes.** An outcome is written only while its owner still holds the lease: an outcome
///   for a lease that expired and was taken by another owner, or that was released, changes
///   nothing. An outcome for a notification read meanwhile leaves it read. Writing an outcome
///   ends its lease and sets the next due time; a notified outcome sets the notified time to
///   the call's `now`.
/// - **Progress.** The per-notifier progress given with an outcome replaces what the store held
///   for that notification; an outcome with none clears it. The next claim returns it.
/// - **Atomicity.** Each writing call is all or nothing: when it returns an error, none of its
///   effects happened, and the caller may try the same call again.
/// - **Durability.** Once [`insert`](Datastore::insert) or [`mark_read`](Datastore::mark_read)
///   returns, its effect survives a crash of the process. Claims and outcomes may be lost by a
///   power cut (the notification is then sent again, never lost).
pub trait Datastore: Send + Sync + 'static {
    /// Stores `notifications` in one transaction, each under a new random name (a UUID v4,
    /// lowercase, hyphenated), and returns the names in order. They are due at once, and every
    /// waker given to [`watch`](Datastore::watch) is woken. Once this returns, they survive a
    /// crash.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) naming the index of a notification
    /// that fails [`NewNotification::check`] (then nothing is stored); a store failure.
    fn insert(&self, notifications: &[NewNotification], now: Timestamp) -> Result<Vec<String>>;

    /// Writes back `outcomes` of notifications leased to `owner` (see the contract above:
    /// outcomes of leases `owner` no longer holds change nothing), then leases up to
    /// `claim.limit` notifications due at `claim.now` to `owner` until `claim.lease_until`,
    /// oldest due first, and returns them with the progress of their current round. A store
    /// should do both in one transaction: the scanner writes each batch of outcomes with its
    /// next claim.
    ///
    /// # Errors
    ///
    /// A store failure (then neither the outcomes nor the claim happened).
    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>>;

    /// Leases up to `limit` notifications due at `now` to `owner` until `lease_until`:
    /// [`record_and_claim`](Datastore::record_and_claim) with no outcomes.
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
    ) -> Result<Vec<Claimed>> {
        let claim = ClaimRequest {
            limit,
            now,
            lease_until,
        };
        self.record_and_claim(owner, &[], claim)
    }

    /// Writes back `outcomes` at `now`: [`record_and_claim`](Datastore::record_and_claim)
    /// with a claim of nothing.
    ///
    /// # Errors
    ///
    /// A store failure (then none of them is written).
    fn record(&self, owner: LeaseOwner, outcomes: &[Outcome], now: Timestamp) -> Result<()> {
        let nothing = ClaimRequest {
            limit: 0,
            now,
            lease_until: now,
        };
        self.record_and_claim(owner, outcomes, nothing).map(drop)
    }

    /// Extends `owner`'s live leases on `ids` to at least `until` (a store that keeps leases
    /// per owner extends all of them) and returns how many of `ids` it still held. A lease that
    /// expired and was taken by another owner is not taken back.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], until: Timestamp) -> Result<usize>;

    /// Ends `owner`'s leases on `ids` without an outcome: they are due again at `now` (unless
    /// read), with their round's progress kept. Ids `owner` does not hold are passed over.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()>;

    /// Proves to every other user of this store that `owner` is alive, until the returned
    /// guard is dropped or the process ends, whichever comes first (the SQLite store holds a
    /// lock on a file of the owner's in `<database>.owners/`). The service holds one for as
    /// long as it runs. A store that cannot tell returns [`OwnerGuard::none`] (the default):
    /// a crashed owner's work then waits for its leases to expire.
    ///
    /// # Errors
    ///
    /// The proof could not be set up (the SQLite store's lock folder cannot be created or
    /// written): the service does not start.
    fn hold_owner(&self, owner: LeaseOwner) -> Result<OwnerGuard> {
        let _ = owner;
        Ok(OwnerGuard::none())
    }

    /// Ends, at `now`, the leases of every owner that is provably dead (its guard from
    /// [`hold_owner`](Datastore::hold_owner) is gone with its process): their notifications
    /// are due at once, and their round's progress is kept (attempts spent stay spent).
    /// Returns each owner found dead with how many notifications it held. Owners whose
    /// liveness cannot be proven either way are left to lease expiry; a live owner is never
    /// robbed. Two callers at once free each owner once (the release is one transaction).
    /// The default finds no one.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing was released).
    fn release_dead_owners(&self, now: Timestamp) -> Result<Vec<(LeaseOwner, usize)>> {
        let _ = now;
        Ok(Vec::new())
    }

    /// When the next notification becomes due (possibly in the past; a leased one not before
    /// its lease expires), or `None` if none is scheduled (everything is read).
    ///
    /// # Errors
    ///
    /// A store failure.
    fn next_due(&self) -> Result<Option<Timestamp>>;

    /// Marks the notification `name` read at `now` (again, if it already was: the time moves
    /// forward, as in Clair): it is never due or claimed again, and an outcome written for it
    /// later leaves it read. Returns `false` if there is no such notification. Durable when it
    /// returns.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool>;

    /// Deletes up to `limit` notifications marked read at or before `read_before` (fields of
    /// `request`), those read longest ago first, with everything stored with them, and returns
    /// how many it deleted. An unread notification is never deleted, whatever its age. A
    /// deleted notification is gone for every other operation, as if never stored:
    /// [`page`](Datastore::page) and [`summary`](Datastore::summary) answer `None`,
    /// [`mark_read`](Datastore::mark_read) `false`, it is not counted, and an outcome or lease
    /// naming it is passed over. A store may also return the freed space to the file system
    /// here, a little each call (also in calls that find nothing to delete). Each call is one
    /// short transaction; the caller paces the calls so that delivery is not held up.
    ///
    /// Instances take turns: a call that deletes gives `collector` a turn that lasts a while
    /// past it (the SQLite store: a minute), during which other collectors' calls delete
    /// nothing, so that with several instances on one store only one collects at a time.
    ///
    /// The default deletes nothing: a store without it keeps every notification.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing was deleted).
    fn delete_read(&self, request: DeleteRequest) -> Result<usize> {
        let _ = request;
        Ok(0)
    }

    /// One page of the notification `name`: up to `limit` layers of each side starting at
    /// `cursor`, and the cursor of the next page (`None` on the last). Read notifications stay
    /// readable. `None` if there is no such notification.
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
    /// value, so that a running service sees in-process inserts at once (other processes'
    /// inserts are found by polling). Wakers that report
    /// [`is_closed`](crate::Waker::is_closed) may be dropped.
    fn watch(&self, waker: Waker);
}
