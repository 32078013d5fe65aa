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

mod attempt_log;
mod batch;
#[cfg(test)]
mod contract_tests;
mod operator;
mod owner;
#[cfg(feature = "postgres")]
mod postgres;
mod request;
mod sqlite;

pub use attempt_log::AttemptLog;
use batch::check_all;
pub use operator::{Breaker, CircuitChange, NotifierState, Resend, Sends};
pub use owner::{LeaseOwner, OwnerGuard};
#[cfg(feature = "postgres")]
pub use postgres::{Copied, PostgresOptions, PostgresStore, STATEMENT_TIMEOUT, SslMode};
pub use request::{ClaimRequest, DeleteRequest};
pub(crate) use sqlite::IdHasher;
pub use sqlite::{SqliteStore, Vacuumed};

use std::time::Duration;

use crate::attempt::Attempt;
use crate::error::Result;
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor, State,
};
use crate::time::Timestamp;
use crate::wake::Waker;

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
    /// The notification, as its [`Claimed`] named it.
    pub id: NotificationId,
    /// The round succeeded: set `notified` to now.
    pub notified: bool,
    /// When it is next due: the next try of this round (after a backoff), or the next round
    /// (`renotify_interval` after the round ended, succeeded or not).
    pub next_due: Timestamp,
    /// Failed attempts in the round now in progress (0 when a round ended).
    pub attempts: u32,
    /// The failure to show, while the notification is failing.
    pub last_error: Option<String>,
    /// Per-notifier progress of an unfinished round, replacing what the store held; empty
    /// when the round ended (the store then forgets the round's progress).
    pub progress: Vec<NotifierProgress>,
    /// The tries this outcome is made of, for the attempt log (see
    /// [`Datastore::attempts`]), oldest first.
    pub log: Vec<Attempt>,
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
/// Implementations are shared by the scanner, the read API and the command line, from several
/// threads and possibly several processes (instances) at once. Every operation that depends on
/// the time takes it from its caller, so a backend never reads a clock of its own.
///
/// # The contract
///
/// A backend is correct when these hold; `src/store/contract_tests.rs` checks each of them
/// on every backend from one source (`contract_tests/attempts.rs` and `operator.rs` beside it
/// for the attempt log, the operators' calls and the circuits), and a new backend is added
/// to its `backends!` macro.
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
/// - **Attempt log.** The attempts given with an outcome are written in the same
///   transaction as the outcome, and only when the outcome is (an ignored outcome logs
///   nothing). At most [`KEPT_ATTEMPTS`](crate::attempt::KEPT_ATTEMPTS) are kept per
///   notification: the oldest are dropped in the same write. A store may keep only the last
///   successful attempt of a notification (and every failed one) when logging every success
///   would slow deliveries; it documents which it does.
/// - **Circuits.** Each notifier's consecutive failed sends, and whether its circuit is open
///   (since when, and when its next probe is due), are kept per notifier name and shared by
///   every instance ([`record_sends`](Datastore::record_sends),
///   [`take_probe`](Datastore::take_probe), [`notifiers`](Datastore::notifiers)); a probe is
///   taken by one caller only. Ending a hold (a resume, a closing circuit) makes due at once
///   what waits for the notifier: unread notifications with progress of it not succeeded.
/// - **Operators.** [`resend`](Datastore::resend), [`resend_failing`](Datastore::resend_failing)
///   and [`set_paused`](Datastore::set_paused) never break a lease: a notification in flight
///   keeps it, and its outcome (written later) decides what follows. Each is idempotent.
/// - **Durability.** Once [`insert`](Datastore::insert), [`mark_read`](Datastore::mark_read)
///   or an operator's call returns, its effect survives a crash of the process. Claims and outcomes may be lost by a
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

    /// Deletes up to `limit` rows of the attempt log that started at or before `before`,
    /// oldest first, and returns how many (`[retention] attempts`). A last success a store
    /// keeps with its notification (see [`attempts`](Datastore::attempts)) goes with the
    /// notification. The default deletes nothing: the log stays bounded by its count per
    /// notification.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing was deleted).
    fn delete_attempts(&self, before: Timestamp, limit: usize) -> Result<usize> {
        let _ = (before, limit);
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

    /// Makes the notification `name` due at `now` with a fresh round: no failed attempts, no
    /// error, no per-notifier progress. A read notification is left as it is
    /// ([`Resend::Read`]) unless `unread`, which clears its read time first. A notification
    /// under a live lease keeps its lease (its send's outcome, written later, replaces the
    /// fresh round). Durable when it returns.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing changed).
    fn resend(&self, name: &str, unread: bool, now: Timestamp) -> Result<Resend>;

    /// [`resend`](Datastore::resend) of every failing notification (unread, with an error
    /// from its last attempt), in one transaction; returns how many.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing changed).
    fn resend_failing(&self, now: Timestamp) -> Result<u64>;

    /// Pauses (`paused`) or resumes the notifier named `notifier`, at `now`; returns whether
    /// that changed anything (pausing a paused notifier keeps its first pause time). The
    /// store accepts any name: the caller checks it against its notifiers. A running service
    /// reads this through [`notifiers`](Datastore::notifiers) every poll interval and sends
    /// nothing through a paused notifier. Resuming also makes due at `now` every unread
    /// notification whose round waits for that notifier (progress of it, not succeeded), so
    /// that what waited goes out at once. Durable when it returns.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing changed).
    fn set_paused(&self, notifier: &str, paused: bool, now: Timestamp) -> Result<bool>;

    /// Makes due at `now` every unread notification whose round waits for `notifier`
    /// (progress of it, not succeeded), as a resume does, without changing the notifier's
    /// state; returns how many. A service calls it when it sees a resume, for what it put
    /// aside between the resume and its look. Leased notifications keep their lease.
    ///
    /// # Errors
    ///
    /// A store failure (then nothing changed).
    fn end_wait(&self, notifier: &str, now: Timestamp) -> Result<usize>;

    /// What the store keeps of each notifier an operator or a failure touched, at `now`, in
    /// name order (a notifier never paused and never failing may be missing: it is neither).
    ///
    /// # Errors
    ///
    /// A store failure.
    fn notifiers(&self, now: Timestamp) -> Result<Vec<NotifierState>>;

    /// Applies the results of sends through one notifier, in order, to its circuit, at
    /// `now`: a success sets its consecutive failures to 0 and closes an open circuit; a
    /// failure adds one; when they reach `breaker.failures` (not 0) on a closed circuit, it
    /// opens at `now` with its next probe at `now + breaker.probe`; a failure on an open
    /// circuit (a failed probe) moves the next probe to `now + breaker.probe`.
    /// Closing makes due at `now` every unread notification whose round waits for the
    /// notifier, as [`set_paused`](Datastore::set_paused) does on resume. Returns what
    /// changed (instances sharing the store see the state through
    /// [`notifiers`](Datastore::notifiers)).
    ///
    /// # Errors
    ///
    /// A store failure (then nothing changed).
    fn record_sends(&self, sends: &Sends, now: Timestamp) -> Result<CircuitChange>;

    /// Takes the next probe of `notifier`'s open circuit: if it is open and its next probe is
    /// due at or before `now`, moves it to `now + probe` and returns `true`. Of several
    /// instances asking at once, one gets it.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn take_probe(&self, notifier: &str, probe: Duration, now: Timestamp) -> Result<bool>;

    /// The attempt log of the notification `name`, oldest first (at most
    /// [`KEPT_ATTEMPTS`](crate::attempt::KEPT_ATTEMPTS), or those and the last success), or
    /// `None` if there is no such notification.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn attempts(&self, name: &str) -> Result<Option<Vec<Attempt>>>;

    /// Has `waker` woken after every successful [`insert`](Datastore::insert) through this
    /// value, so that a running service sees in-process inserts at once (other processes'
    /// inserts are found by polling). Wakers that report
    /// [`is_closed`](crate::Waker::is_closed) may be dropped.
    fn watch(&self, waker: Waker);
}
