//! The PostgreSQL datastore (cargo feature `postgres`): several instances, on several
//! machines, sharing one queue.
//!
//! The semantics are the [`Datastore`] contract's, done the PostgreSQL way: the schema is
//! migrated on open under an advisory lock; due work is claimed with `FOR UPDATE SKIP LOCKED`
//! under renewable leases, each claim fenced by a token of its own ([`claim`]); outcomes are
//! written in batches with the next claim, in one statement; pages are keyset range queries;
//! no transaction is held open across a delivery; inserts `NOTIFY` every instance
//! ([`listen`]); owners prove they are alive with session advisory locks ([`owners`]). The
//! attempt log is written with the outcomes, in the same statement ([`attempts`]); each
//! notifier's pause and circuit live in a row of its own, changed under its row lock
//! ([`notifiers`], [`circuit`]), so every instance sees and obeys the same state.
//!
//! # Durability
//!
//! Every write is one statement committed with the server's `synchronous_commit` (on by
//! default): an insert or a mark of read that returned survives a crash of the server.
//!
//! # Connections
//!
//! A small pool, re-made after a broken connection (see [`pool`]); every session has a
//! statement timeout ([`STATEMENT_TIMEOUT`]), so a stuck query holds no thread for ever. The
//! listener and each owner lock have a connection of their own.

mod attempts;
mod circuit;
mod claim;
mod connect;
mod import;
mod insert;
mod listen;
mod notifiers;
mod owners;
mod pool;
mod query;
mod resend;
mod retention;
mod schema;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once};

pub use connect::{PostgresOptions, STATEMENT_TIMEOUT, SslMode};
pub use import::Copied;

use crate::attempt::Attempt;
use crate::error::{Error, ErrorKind, Result};
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
};
use crate::store::{
    AttemptLog, CircuitChange, ClaimRequest, Claimed, Counts, Datastore, DeleteRequest, LeaseOwner,
    ListFilter, NotifierState, Outcome, OwnerGuard, Resend, Sends,
};
use crate::time::Timestamp;
use crate::wake::Waker;

/// Notifications stored in a PostgreSQL database.
pub struct PostgresStore {
    pool: pool::Pool,
    watchers: Arc<Mutex<Vec<Waker>>>,
    listening: Once,
    held_here: owners::HeldHere,
    /// Which attempts are logged: an [`AttemptLog`] as a number.
    attempt_log: AtomicU8,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.pool.target.name)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the server of `options`, creating the schema if the database has none and
    /// migrating an older one (instances opening at once take turns).
    ///
    /// # Errors
    ///
    /// A configuration error naming the key at fault (`database.url`,
    /// `database.sslrootcert`); a [`Store`](ErrorKind::Store) error naming host and port when
    /// the server cannot be reached or refuses the login, or when the database has a newer
    /// schema. No message ever holds the password.
    pub fn open(options: &PostgresOptions) -> Result<PostgresStore> {
        let target = connect::Target::new(options)?;
        let pool = pool::Pool::new(target);
        pool.with("could not set up the schema of", |conn| {
            let name = pool.target.name.clone();
            schema::migrate(&mut conn.client, &name)
        })??;
        Ok(PostgresStore::on(pool))
    }

    /// A store on the connections of `pool` (its schema already migrated).
    fn on(pool: pool::Pool) -> PostgresStore {
        PostgresStore {
            pool,
            watchers: Arc::new(Mutex::new(Vec::new())),
            listening: Once::new(),
            held_here: owners::HeldHere::default(),
            attempt_log: AtomicU8::new(AttemptLog::default().as_u8()),
        }
    }

    /// Chooses which attempts this store logs from now on (every failure always; by default
    /// only the last success of each notification, kept in its row; see [`AttemptLog`]).
    pub fn set_attempt_log(&self, log: AttemptLog) {
        self.attempt_log.store(log.as_u8(), Ordering::Relaxed);
    }

    /// Checks `options` as [`open`](PostgresStore::open) would, without connecting.
    ///
    /// # Errors
    ///
    /// A configuration error naming `database.url` or `database.sslrootcert`.
    pub fn check_options(options: &PostgresOptions) -> Result<()> {
        connect::Target::new(options).map(drop)
    }

    /// `host:port/database` of the server (no user, no password).
    pub fn server(&self) -> &str {
        &self.pool.target.name
    }

    /// Whether the database holds no notification, no setting and no notifier state (what
    /// `migrate --to` needs).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn is_empty(&self) -> Result<bool> {
        self.pool.with("could not read", |c| {
            let rows = c.query(
                "SELECT NOT EXISTS (SELECT 1 FROM notification)
                     AND NOT EXISTS (SELECT 1 FROM setting)
                     AND NOT EXISTS (SELECT 1 FROM notifier)",
                &[],
            )?;
            Ok(rows[0].get(0))
        })
    }

    fn wake_local(&self) {
        crate::wake::wake_all(&mut self.watchers.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Datastore for PostgresStore {
    fn insert(&self, notifications: &[NewNotification], now: Timestamp) -> Result<Vec<String>> {
        super::check_all(notifications)?;
        if notifications.is_empty() {
            return Ok(Vec::new());
        }
        let names = self.pool.with("could not insert into", |c| {
            insert::insert(c, notifications, now)
        })?;
        self.wake_local();
        Ok(names.iter().map(|n| n.hyphenated().to_string()).collect())
    }

    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        if outcomes.is_empty() && claim.limit == 0 {
            return Ok(Vec::new());
        }
        let log = AttemptLog::from_u8(self.attempt_log.load(Ordering::Relaxed));
        self.pool.with("could not record deliveries in", |c| {
            claim::record_and_claim(c, owner, outcomes, claim, log)
        })
    }

    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], until: Timestamp) -> Result<usize> {
        self.pool.with("could not renew leases in", |c| {
            claim::renew(c, owner, ids, until)
        })
    }

    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.pool.with("could not release leases in", |c| {
            claim::release(c, owner, ids, now)
        })
    }

    fn hold_owner(&self, owner: LeaseOwner) -> Result<OwnerGuard> {
        Ok(OwnerGuard::new(owners::hold(
            &self.pool.target,
            owner,
            &self.held_here,
        )?))
    }

    fn release_dead_owners(&self, _now: Timestamp) -> Result<Vec<(LeaseOwner, usize)>> {
        self.pool
            .with("could not free the leases of stopped instances in", |c| {
                owners::release_dead(c, &self.held_here)
            })
    }

    fn next_due(&self) -> Result<Option<Timestamp>> {
        self.pool
            .with("could not read the schedule of", claim::next_due)
    }

    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool> {
        self.pool
            .with("could not mark a notification read in", |c| {
                query::mark_read(c, name, now)
            })
    }

    fn delete_read(&self, request: DeleteRequest) -> Result<usize> {
        if request.limit == 0 {
            return Ok(0);
        }
        self.pool
            .with("could not delete read notifications from", |c| {
                retention::delete_read(c, &request)
            })
    }

    fn page(&self, name: &str, cursor: PageCursor, limit: u32) -> Result<Option<NotificationPage>> {
        self.pool.with("could not read a notification from", |c| {
            query::page(c, name, cursor, limit)
        })
    }

    fn summary(&self, name: &str) -> Result<Option<NotificationSummary>> {
        self.pool.with("could not read a notification from", |c| {
            query::summary(c, name)
        })
    }

    fn list(&self, filter: ListFilter) -> Result<Vec<NotificationSummary>> {
        self.pool.with("could not list notifications in", |c| {
            query::list(c, filter)
        })
    }

    fn counts(&self, now: Timestamp) -> Result<Counts> {
        self.pool.with("could not count notifications in", |c| {
            query::counts(c, now)
        })
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        self.pool
            .with("could not write a setting to", |c| {
                query::setting_or_insert(c, key, value)
            })?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "could not write the setting {key} to PostgreSQL at {}: another \
                         instance kept changing it",
                        self.pool.target.name
                    ),
                )
            })
    }

    fn resend(&self, name: &str, unread: bool, now: Timestamp) -> Result<Resend> {
        self.pool.with("could not resend in", |c| {
            resend::resend(c, name, unread, now)
        })
    }

    fn resend_failing(&self, now: Timestamp) -> Result<u64> {
        self.pool
            .with("could not resend in", |c| resend::resend_failing(c, now))
    }

    fn set_paused(&self, notifier: &str, paused: bool, now: Timestamp) -> Result<bool> {
        self.pool
            .with("could not change a notifier's state in", |c| {
                if paused {
                    notifiers::pause(c, notifier, now)
                } else {
                    notifiers::resume(c, notifier, now)
                }
            })
    }

    fn end_wait(&self, notifier: &str, now: Timestamp) -> Result<usize> {
        self.pool
            .with("could not make waiting notifications due in", |c| {
                notifiers::end_wait(c, notifier, now)
            })
    }

    fn notifiers(&self, now: Timestamp) -> Result<Vec<NotifierState>> {
        self.pool
            .with("could not read the notifiers' state in", |c| {
                notifiers::notifiers(c, now)
            })
    }

    fn record_sends(&self, sends: &Sends, now: Timestamp) -> Result<CircuitChange> {
        self.pool.with("could not record sends in", |c| {
            circuit::record_sends(c, sends, now)
        })
    }

    fn take_probe(
        &self,
        notifier: &str,
        probe: std::time::Duration,
        now: Timestamp,
    ) -> Result<bool> {
        self.pool.with("could not take a probe in", |c| {
            circuit::take_probe(c, notifier, probe, now)
        })
    }

    fn delete_attempts(&self, before: Timestamp, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        self.pool.with("could not delete old attempts in", |c| {
            attempts::delete_before(c, before, limit)
        })
    }

    fn attempts(&self, name: &str) -> Result<Option<Vec<Attempt>>> {
        self.pool.with("could not read the attempts in", |c| {
            attempts::read(c, name)
        })
    }

    fn watch(&self, waker: Waker) {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
        self.listening.call_once(|| {
            listen::start(self.pool.target.clone(), Arc::downgrade(&self.watchers));
        });
    }
}
#[cfg(test)]
mod tests;
