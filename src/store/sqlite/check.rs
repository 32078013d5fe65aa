//! Checking a database file without writing to it (what `check-config` does before `serve`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{SqliteStore, schema, store_error};
use crate::error::{Error, ErrorKind, Result};

impl SqliteStore {
    /// Whether [`SqliteStore::open`] would accept the file at `path`, found without creating,
    /// migrating or writing anything: `Ok(true)` for a clair-notifier database of this or an
    /// older schema, `Ok(false)` when there is no file (open would create it). No `-wal` or
    /// `-shm` file appears beside a database that had none.
    ///
    /// # Errors
    ///
    /// What [`SqliteStore::open`] would refuse, in the same words: a file that is not an SQLite
    /// database or is corrupt ([`NotADatabase`](ErrorKind::NotADatabase)), a database of another
    /// program or of a newer schema, a directory, a file that cannot be read
    /// ([`Store`](ErrorKind::Store)).
    pub fn check(path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        let shown = path.to_string_lossy().into_owned();
        if path.is_dir() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("could not open {shown}: it is a directory"),
            ));
        }
        if !path.exists() {
            return Ok(false);
        }
        let conn = open_read_only(path, &shown)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| store_error(&shown, "could not open", e))?;
        schema::readable_version(&conn, &shown)?;
        Ok(true)
    }

    /// Whether exclusive file locks work where the database at `path` keeps its owner locks
    /// (`<database>.owners/`, or the database's folder while that does not exist yet: a probe
    /// file is made there and removed). Where they do not (some network file systems), the
    /// work of a crashed instance waits for its lease to expire instead of being taken over at
    /// once.
    pub fn owner_locks_work(path: impl AsRef<Path>) -> bool {
        let shown = path.as_ref().to_string_lossy().into_owned();
        let owners = super::owners::dir_of(&shown);
        let dir = if owners.is_dir() {
            owners
        } else {
            match path.as_ref().parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => Path::new(".").to_path_buf(),
            }
        };
        super::owners::locks_work(&dir)
    }
}

/// A read-only connection. SQLite creates `-wal` and `-shm` files for a read-only reader of a
/// WAL database that has none, so such a file is opened as immutable instead (no locks, no
/// side files); one with a `-wal` (in use, or left by a crash) is read with it.
fn open_read_only(path: &Path, shown: &str) -> Result<Connection> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut uri = String::from("file:");
    for c in shown.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    if !Path::new(&wal).exists() {
        uri.push_str("?immutable=1");
    }
    let conn = Connection::open_with_flags(&uri, flags)
        .map_err(|e| store_error(shown, "could not open", e))?;
    conn.busy_timeout(super::BUSY_TIMEOUT)
        .map_err(|e| store_error(shown, "could not open", e))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side_files(path: &Path) -> Vec<bool> {
        ["-wal", "-shm", "-journal"]
            .iter()
            .map(|suffix| {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                Path::new(&p).exists()
            })
            .collect()
    }

    #[test]
    fn a_missing_file_is_not_created_and_a_database_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n?#%.db");
        assert!(!SqliteStore::check(&path).unwrap());
        assert!(!path.exists());
        drop(SqliteStore::open(&path).unwrap());
        let before = std::fs::read(&path).unwrap();
        assert_eq!(side_files(&path), [false, false, false]);
        assert!(SqliteStore::check(&path).unwrap());
        assert_eq!(
            side_files(&path),
            [false, false, false],
            "a side file appeared"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // In use by a running store (its -wal open): read through the -wal.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(side_files(&path)[..2], [true, true]);
        assert!(SqliteStore::check(&path).unwrap());
        drop(store);
    }

    #[test]
    fn foreign_newer_and_garbage_files_are_refused_as_open_refuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"not a database, just text. ".repeat(200)).unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let newer = dir.path().join("newer.db");
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        for (path, kind) in [
            (&garbage, ErrorKind::NotADatabase),
            (&foreign, ErrorKind::Store),
            (&newer, ErrorKind::Store),
        ] {
            let before = std::fs::read(path).unwrap();
            let checked = SqliteStore::check(path).unwrap_err();
            assert_eq!(std::fs::read(path).unwrap(), before, "{checked}");
            let opened = SqliteStore::open(path).unwrap_err();
            assert_eq!(checked.to_string(), opened.to_string());
            assert_eq!((checked.kind(), opened.kind()), (kind, kind));
        }
    }

    #[test]
    fn owner_locks_are_tested_where_they_will_live_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("n.db");
        assert!(SqliteStore::owner_locks_work(&db));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no probe left"
        );
        let store = SqliteStore::open(&db).unwrap();
        let _held = crate::Datastore::hold_owner(&store, crate::store::LeaseOwner::new(5)).unwrap();
        assert!(SqliteStore::owner_locks_work(&db), "tested in n.db.owners");
        assert_eq!(
            std::fs::read_dir(dir.path().join("n.db.owners"))
                .unwrap()
                .count(),
            1,
            "only the owner's own lock file"
        );
        // A folder where no file can be made cannot hold locks either.
        assert!(!SqliteStore::owner_locks_work(
            dir.path().join("missing/n.db")
        ));
    }
}
