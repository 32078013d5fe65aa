//! The SQLite datastore.
//!
//! # Durability
//!
//! The database runs in WAL mode (`journal_mode = WAL`). Inserts and marks of read commit with
//! `synchronous = FULL`: the WAL is synced before the commit returns, so a notification that
//! [`insert`](crate::Datastore::insert) returned survives a power cut. Claims, lease renewals
//! and outcomes commit with `synchronous = NORMAL` (synced at checkpoints): a power cut may
//! undo the last of them, which only means a notification is sent once more. A process crash
//! (kill -9) loses nothing in either mode.
//!
//! Every connection sets `busy_timeout` (5 s) so that writers of other processes are waited
//! for rather than failed at once; the service retries what still fails.
//!
//! # Connections
//!
//! One writer connection, behind a mutex (SQLite allows one writer at a time anyway), and a
//! small pool of reader connections for the read API and the command line, which in WAL mode
//! read while the writer writes.

mod attempts;
mod check;
mod checkpoint;
mod circuit;
mod claim;
mod connection;
mod encoding;
#[cfg(feature = "postgres")]
mod export;
mod insert;
mod lease;
mod notifiers;
mod outcome;
mod owners;
mod query;
mod resend;
mod retention;
mod schema;
mod vacuum;

pub use vacuum::Vacuumed;

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::Connection;

pub(crate) use connection::store_error;
use connection::{open_connection, write};

use crate::attempt::Attempt;
use crate::error::{Error, ErrorKind, Result};
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
};
use crate::store::{
    CircuitChange, ClaimRequest, Claimed, Counts, Datastore, DeleteRequest, LeaseOwner, ListFilter,
    NotifierState, Outcome, OwnerGuard, Resend, Sends,
};
use crate::time::Timestamp;
use crate::wake::Waker;
#[cfg(feature = "postgres")]
pub(crate) use export::Exported;
pub(crate) use lease::IdHasher;

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::store::AttemptLog;

/// Reader connections kept open for reuse.
const READER_POOL: usize = 8;

/// Notifications stored in an SQLite database file.
pub struct SqliteStore {
    path: String,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    watchers: Mutex<Vec<Waker>>,
    /// Which attempts are logged: an [`AttemptLog`] as a number.
    attempt_log: AtomicU8,
    /// Whether owner locks work in the owners' folder (known once the folder exists).
    locks_work: OnceLock<bool>,
    // Declared after `writer`, so the writer (and its WAL hook) is dropped first.
    _checkpointer: checkpoint::Checkpointer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it with its schema if missing and migrating an
    /// older schema.
    ///
    /// # Errors
    ///
    /// A [`Store`](ErrorKind::Store) error if the file cannot be opened or created, belongs to
    /// another program, or has a newer schema; [`NotADatabase`](ErrorKind::NotADatabase) if it
    /// is not an SQLite database or is corrupt. A file that is refused is left untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_string_lossy().into_owned();
        if Path::new(&path).is_dir() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("could not open {path}: it is a directory"),
            ));
        }
        let mut writer = open_connection(&path)?;
        // A file that is not ours is refused before anything is written to it (switching to
        // WAL rewrites its header).
        writer
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| store_error(&path, "could not open", e))?;
        schema::readable_version(&writer, &path)?;
        // A new database gets 8 KiB pages (a file that exists keeps its own): the size that
        // measured best for inserts with layers and for synced commits (BENCHMARKS.md); and
        // incremental auto-vacuum, so that deleting old notifications shrinks the file.
        writer
            .execute_batch("PRAGMA page_size = 8192; PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(|e| store_error(&path, "could not open", e))?;
        // journal_mode is a property of the file: set it once, check that it took.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| store_error(&path, "could not open", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::new(
                ErrorKind::Store,
                format!("could not switch {path} to WAL mode (it stayed in {mode} mode)"),
            ));
        }
        schema::migrate(&mut writer, &path)?;
        // Refresh the planner's statistics where tables changed a lot since the last open,
        // reading a bounded sample (a full ANALYZE of millions of rows took half a second).
        writer
            .execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize = 0x10002")
            .map_err(|e| store_error(&path, "could not open", e))?;
        let checkpointer =
            checkpoint::Checkpointer::start(&path, &mut writer, open_connection(&path)?)?;
        Ok(SqliteStore {
            _checkpointer: checkpointer,
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
            attempt_log: AtomicU8::new(AttemptLog::default().as_u8()),
            locks_work: OnceLock::new(),
        })
    }

    /// Chooses which attempts this store logs from now on (every failure always; by default
    /// only the last success of each notification, see [`AttemptLog`]).
    pub fn set_attempt_log(&self, log: AttemptLog) {
        self.attempt_log.store(log.as_u8(), Ordering::Relaxed);
    }

    /// The path this store was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether owner locks work beside this database (tested once, when the folder exists).
    fn can_judge_owners(&self) -> bool {
        let dir = owners::dir_of(&self.path);
        if let Some(&known) = self.locks_work.get() {
            return known;
        }
        if !dir.is_dir() {
            return false;
        }
        *self.locks_work.get_or_init(|| {
            let works = owners::locks_work(&dir);
            if !works {
                log::warn!(
                    "file locks do not work in {} (a network file system?): the work of a \
                     crashed instance waits for its lease to expire",
                    dir.display()
                );
            }
            works
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a transaction on the writer (synced if `durable`: an operator's change),
    /// its driver errors said to be `doing`.
    fn write_sql<T>(
        &self,
        doing: &str,
        durable: bool,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = &self.path;
        write(&mut self.writer(), path, doing, durable, |tx| {
            f(tx).map_err(|e| store_error(path, doing, e))
        })
    }

    /// Runs `f` on a reader connection from the pool.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
        doing: &str,
    ) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn).map_err(|e| store_error(&self.path, doing, e));
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }
}

impl Datastore for SqliteStore {
    fn insert(&self, notifications: &[NewNotification], now: Timestamp) -> Result<Vec<String>> {
        super::check_all(notifications)?;
        let names = {
            let mut conn = self.writer();
            write(&mut conn, &self.path, "could not insert into", true, |tx| {
                insert::insert(tx, &self.path, notifications, now)
            })?
        };
        crate::wake::wake_all(&mut self.watchers.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(names)
    }

    fn renew(&self, owner: LeaseOwner, ids: &[NotificationId], until: Timestamp) -> Result<usize> {
        let mut conn = self.writer();
        write(
            &mut conn,
            &self.path,
            "could not renew leases in",
            false,
            |tx| claim::renew(tx, &self.path, owner, ids, until),
        )
    }

    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        ClaimRequest {
            limit,
            now,
            lease_until,
        }: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        if outcomes.is_empty() && limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.writer();
        write(
            &mut conn,
            &self.path,
            "could not record deliveries in",
            false,
            |tx| {
                let mut leases = lease::Leases::load(tx, owner, now)
                    .map_err(|e| store_error(&self.path, "could not read the leases in", e))?;
                let log = AttemptLog::from_u8(self.attempt_log.load(Ordering::Relaxed));
                outcome::record(tx, &self.path, &mut leases, outcomes, now, log)?;
                let claimed = if limit == 0 {
                    Vec::new()
                } else {
                    claim::claim(tx, &self.path, &mut leases, limit, now, lease_until)?
                };
                leases
                    .save(tx, owner)
                    .map_err(|e| store_error(&self.path, "could not record leases in", e))?;
                Ok(claimed)
            },
        )
    }

    fn release(&self, owner: LeaseOwner, ids: &[NotificationId], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer();
        write(
            &mut conn,
            &self.path,
            "could not release leases in",
            false,
            |tx| claim::release(tx, &self.path, owner, ids, now),
        )
    }

    fn hold_owner(&self, owner: LeaseOwner) -> Result<OwnerGuard> {
        let held = owners::hold(&owners::dir_of(&self.path), owner)?;
        Ok(if self.can_judge_owners() {
            OwnerGuard::new(held)
        } else {
            OwnerGuard::none()
        })
    }

    fn release_dead_owners(&self, _now: Timestamp) -> Result<Vec<(LeaseOwner, usize)>> {
        // Freed notifications keep the due time they had when claimed, which is past: due at
        // once without writing them.
        if !self.can_judge_owners() {
            return Ok(Vec::new());
        }
        let dead = owners::dead(&owners::dir_of(&self.path));
        if dead.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.writer();
        let freed = write(
            &mut conn,
            &self.path,
            "could not free the leases of stopped instances in",
            false,
            |tx| {
                let who: Vec<LeaseOwner> = dead.iter().map(|d| d.owner).collect();
                lease::free(tx, &who)
                    .map_err(|e| store_error(&self.path, "could not free leases in", e))
            },
        )?;
        drop(conn);
        // Their leases are gone: their files are no longer needed.
        for d in dead {
            d.forget();
        }
        Ok(freed)
    }

    fn next_due(&self) -> Result<Option<Timestamp>> {
        self.read(claim::next_due, "could not read the schedule of")
    }

    fn mark_read(&self, name: &str, now: Timestamp) -> Result<bool> {
        let mut conn = self.writer();
        write(
            &mut conn,
            &self.path,
            "could not mark a notification read in",
            true,
            |tx| query::mark_read(tx, &self.path, name, now),
        )
    }

    fn delete_read(&self, request: DeleteRequest) -> Result<usize> {
        if request.limit == 0 {
            return Ok(0);
        }
        let doing = "could not delete read notifications from";
        if !self.read(|c| retention::any_read(c, &request), doing)? {
            // Pages freed by earlier batches go back a step at each look.
            if self.read(retention::free_pages, doing)? > 0
                && let Err(e) = retention::return_free_pages(&self.writer())
            {
                log::warn!("{}", store_error(&self.path, "could not shrink", e).chain());
            }
            return Ok(0);
        }
        let mut conn = self.writer();
        let deleted = write(&mut conn, &self.path, doing, false, |tx| {
            retention::delete_read(tx, &self.path, &request)
        })?;
        if let Err(e) = retention::return_free_pages(&conn) {
            // Only leaves the file larger for now: the next batch tries again.
            log::warn!("{}", store_error(&self.path, "could not shrink", e).chain());
        }
        Ok(deleted)
    }

    fn page(&self, name: &str, cursor: PageCursor, limit: u32) -> Result<Option<NotificationPage>> {
        self.read(
            |c| query::page(c, name, cursor, limit),
            "could not read a notification from",
        )
    }

    fn summary(&self, name: &str) -> Result<Option<NotificationSummary>> {
        self.read(
            |c| query::summary(c, name),
            "could not read a notification from",
        )
    }

    fn list(&self, filter: ListFilter) -> Result<Vec<NotificationSummary>> {
        self.read(
            |c| query::list(c, filter),
            "could not list notifications in",
        )
    }

    fn counts(&self, now: Timestamp) -> Result<Counts> {
        self.read(
            |c| query::counts(c, now),
            "could not count notifications in",
        )
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let conn = self.writer();
        conn.execute(
            "INSERT INTO setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            [key, value],
        )
        .and_then(|_| {
            conn.query_row("SELECT value FROM setting WHERE key = ?1", [key], |r| {
                r.get(0)
            })
        })
        .map_err(|e| store_error(&self.path, "could not write a setting to", e))
    }

    fn resend(&self, name: &str, unread: bool, now: Timestamp) -> Result<Resend> {
        let doing = "could not resend a notification in";
        self.write_sql(doing, true, |tx| resend::resend(tx, name, unread, now))
    }

    fn resend_failing(&self, now: Timestamp) -> Result<u64> {
        let doing = "could not resend failing notifications in";
        self.write_sql(doing, true, |tx| resend::resend_failing(tx, now))
    }

    fn set_paused(&self, notifier: &str, paused: bool, now: Timestamp) -> Result<bool> {
        self.write_sql("could not change a notifier's state in", true, |tx| {
            if paused {
                notifiers::pause(tx, notifier, now)
            } else {
                notifiers::resume(tx, notifier, now)
            }
        })
    }

    fn end_wait(&self, notifier: &str, now: Timestamp) -> Result<usize> {
        self.write_sql("could not make waiting notifications due in", false, |tx| {
            notifiers::end_wait(tx, notifier, now)
        })
    }

    fn notifiers(&self, now: Timestamp) -> Result<Vec<NotifierState>> {
        let doing = "could not read the notifiers' state in";
        self.read(|c| notifiers::notifiers(c, now), doing)
    }

    fn record_sends(&self, sends: &Sends, now: Timestamp) -> Result<CircuitChange> {
        self.write_sql("could not record sends in", false, |tx| {
            circuit::record_sends(tx, sends, now)
        })
    }

    fn take_probe(&self, notifier: &str, probe: Duration, now: Timestamp) -> Result<bool> {
        self.write_sql("could not take a probe in", false, |tx| {
            circuit::take_probe(tx, notifier, probe, now)
        })
    }

    fn delete_attempts(&self, before: Timestamp, limit: usize) -> Result<usize> {
        self.write_sql("could not delete old attempts in", false, |tx| {
            attempts::delete_before(tx, before, limit)
        })
    }

    fn attempts(&self, name: &str) -> Result<Option<Vec<Attempt>>> {
        self.read(
            |c| attempts::read(c, name),
            "could not read the attempts in",
        )
    }

    fn watch(&self, waker: Waker) {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
    }
}

#[cfg(test)]
mod tests;
