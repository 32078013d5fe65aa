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

mod check;
mod checkpoint;
mod claim;
mod encoding;
#[cfg(feature = "postgres")]
mod export;
mod insert;
mod lease;
mod outcome;
mod owners;
mod query;
mod retention;
mod schema;
mod vacuum;

pub use vacuum::Vacuumed;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::{
    NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
};
use crate::store::{
    ClaimRequest, Claimed, Counts, Datastore, DeleteRequest, LeaseOwner, ListFilter, Outcome,
    OwnerGuard,
};
use crate::time::Timestamp;
use crate::wake::Waker;
#[cfg(feature = "postgres")]
pub(crate) use export::Exported;

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections kept open for reuse.
const READER_POOL: usize = 8;

/// Notifications stored in an SQLite database file.
pub struct SqliteStore {
    path: String,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    watchers: Mutex<Vec<Waker>>,
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

/// Maps a driver error to this crate's error, saying what was being done to which file.
pub(crate) fn store_error(path: &str, doing: &str, e: rusqlite::Error) -> Error {
    let detail = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Some("the disk is full"),
        Some(rusqlite::ErrorCode::NotADatabase) => Some("the file is not an SQLite database"),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => Some("the database file is corrupt"),
        Some(rusqlite::ErrorCode::ReadOnly) => Some("the database is read-only"),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            Some("another connection held the write lock too long")
        }
        Some(rusqlite::ErrorCode::CannotOpen) => Some("the file cannot be opened"),
        Some(rusqlite::ErrorCode::SystemIoFailure) => Some(
            "the operating system failed a read or write of the file (is it immutable, or the disk failing?)",
        ),
        _ => None,
    };
    let message = match detail {
        Some(d) => format!("{doing} {path}: {d}"),
        None => format!("{doing} {path}"),
    };
    let kind = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            ErrorKind::NotADatabase
        }
        _ => ErrorKind::Store,
    };
    Error::with_source(kind, message, e)
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
            locks_work: OnceLock::new(),
        })
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

/// Opens one connection with this store's settings. `synchronous` is NORMAL; the durable
/// operations raise it to FULL around their commit.
fn open_connection(path: &str) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| store_error(path, "could not open", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| store_error(path, "could not open", e))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8000;",
    )
    .map_err(|e| store_error(path, "could not open", e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs `f` in an IMMEDIATE transaction on `conn`; with `durable`, the commit is synced.
fn write<T>(
    conn: &mut Connection,
    path: &str,
    doing: &str,
    durable: bool,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let err = |e| store_error(path, doing, e);
    if durable {
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(err)?;
    }
    let result = (|| {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let out = f(&tx)?;
        tx.commit().map_err(err)?;
        Ok(out)
    })();
    if durable {
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(err)?;
    }
    result
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
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        let ClaimRequest {
            limit,
            now,
            lease_until,
        } = claim;
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
                outcome::record(tx, &self.path, &mut leases, outcomes, now)?;
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

    fn watch(&self, waker: Waker) {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
    }
}

#[cfg(test)]
mod tests;
