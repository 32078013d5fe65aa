//! Opening a connection with the store's settings, running a write transaction on one, and
//! saying what a driver error means.

use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;
use crate::error::{Error, ErrorKind, Result};

/// Opens one connection with this store's settings. `synchronous` is NORMAL; the durable
/// operations raise it to FULL around their commit.
pub(super) fn open_connection(path: &str) -> Result<Connection> {
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
pub(super) fn write<T>(
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
