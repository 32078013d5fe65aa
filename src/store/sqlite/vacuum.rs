//! Rewriting a whole database file (`VACUUM`): the one way to convert a database made before
//! incremental auto-vacuum, and to give back at once all the space a large delete freed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{SqliteStore, store_error};
use crate::error::{Error, ErrorKind, Result};

/// What [`SqliteStore::vacuum`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vacuumed {
    /// The file's size before.
    pub bytes_before: u64,
    /// The file's size after.
    pub bytes_after: u64,
    /// Whether the database used incremental auto-vacuum already (else it does now).
    pub was_incremental: bool,
}

impl SqliteStore {
    /// Rewrites the database at `path` in full, with `auto_vacuum = INCREMENTAL` (so that a
    /// database made before this version returns freed pages from then on) and without free
    /// pages. The database must exist and be clair-notifier's (an older schema is migrated
    /// first). It needs the file to itself for as long as it runs (no `serve`, no other
    /// command), and free disk about the size of the file for the copy it writes.
    ///
    /// # Errors
    ///
    /// A [`Store`](ErrorKind::Store) error: no database at `path`, a file that is not
    /// clair-notifier's database, another process holding the database open (nothing is
    /// changed then), or a failure of the rewrite (a full disk, say: the file stays as it was).
    pub fn vacuum(path: impl AsRef<Path>) -> Result<Vacuumed> {
        let path = path.as_ref();
        let shown = path.to_string_lossy().into_owned();
        if !path.is_file() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("there is no database at {shown}"),
            ));
        }
        // Checks the file is ours and brings its schema up to date; closed again at once.
        drop(SqliteStore::open(path)?);
        let err = |doing: &str, e| store_error(&shown, doing, e);
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| err("could not open", e))?;
        // No waiting: an exclusive lock that is not free now is held by a running process.
        conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy)
                | Some(rusqlite::ErrorCode::DatabaseLocked) => Error::with_source(
                    ErrorKind::Store,
                    format!(
                        "{shown} is open in another process (stop serve and any other \
                         clair-notifier command first): vacuum needs the database to itself"
                    ),
                    e,
                ),
                _ => err("could not lock", e),
            })?;
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(|e| err("could not read the settings of", e))?;
        let bytes_before = file_size(path);
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .map_err(|e| err("could not vacuum", e))?;
        drop(conn);
        Ok(Vacuumed {
            bytes_before,
            bytes_after: file_size(path),
            was_incremental: mode == 2,
        })
    }
}

/// The database file's size with its write-ahead log.
pub(super) fn file_size(path: &Path) -> u64 {
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    [path, wal.as_path()]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}
