//! Owner locks: how one instance proves to the others on the same host that it is alive.
//!
//! Each running instance holds an exclusive lock on a file of its own, named after its owner id,
//! in `<database>.owners/`, for as long as it runs. The operating system drops the lock the
//! moment the process dies (a crash, `kill -9`, an OOM kill), so a lock that another instance
//! can take proves its owner dead, and that owner's leases can be freed at once instead of when
//! they expire. A live instance is never judged dead, however slow or stopped it is: it still
//! holds its lock.
//!
//! Where locks do not work (some network file systems answer every lock request with success,
//! or with an error), the self-test [`locks_work`] says so; the store then never judges an
//! owner dead, and crashed instances' work waits for their leases to expire, as it did before
//! owner locks existed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::store::LeaseOwner;

/// The folder of owner lock files of the database at `db`.
pub fn dir_of(db: &str) -> PathBuf {
    PathBuf::from(format!("{db}.owners"))
}

/// A held owner lock: dropping it (or the process ending) releases the lock. The file stays;
/// the next instance that finds it unlocked removes it.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

/// Creates `dir` if needed and locks the file of `owner` in it.
///
/// # Errors
///
/// A [`Store`](ErrorKind::Store) error naming the folder or file that could not be created,
/// opened or locked.
pub fn hold(dir: &Path, owner: LeaseOwner) -> Result<Held> {
    let fail = |what: String, e: io::Error| Error::with_source(ErrorKind::Store, what, e);
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(
            format!(
                "could not create the folder of owner locks {} (each running instance holds a \
                 lock on a file in it)",
                dir.display()
            ),
            e,
        )
    })?;
    let path = file_of(dir, owner);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            fail(
                format!("could not create the owner lock {}", path.display()),
                e,
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Held { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Store,
            format!(
                "the owner lock {} is held by another process",
                path.display()
            ),
        )),
        Err(TryLockError::Error(e)) => Err(fail(
            format!("could not lock the owner lock {}", path.display()),
            e,
        )),
    }
}

/// Whether exclusive locks work in `dir`: a file locked through one handle must refuse a lock
/// through another. A probe file is made and removed.
pub fn locks_work(dir: &Path) -> bool {
    let probe = dir.join(format!("probe-{}", LeaseOwner::random().get()));
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&probe)
    };
    let works = match (open(), open()) {
        (Ok(first), Ok(second)) => {
            first.try_lock().is_ok() && matches!(second.try_lock(), Err(TryLockError::WouldBlock))
        }
        _ => false,
    };
    let _ = std::fs::remove_file(&probe);
    works
}

/// An owner found dead: its lock is held by the caller until this is dropped, so that no one
/// else judges it at the same time.
#[derive(Debug)]
pub struct Dead {
    pub owner: LeaseOwner,
    path: PathBuf,
    _file: File,
}

impl Dead {
    /// Removes the dead owner's file (its leases have been freed).
    pub fn forget(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The owners in `dir` whose lock can be taken: their processes are gone. Files that are not
/// owner locks, that vanish meanwhile or that cannot be opened are passed over (their owners
/// are left to lease expiry). A missing folder holds no one.
pub fn dead(dir: &Path) -> Vec<Dead> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&n| n >= 0)
            .map(LeaseOwner::new)
        else {
            continue;
        };
        let path = entry.path();
        // Opened for reading and writing, never created: a file removed meanwhile is passed over.
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            found.push(Dead {
                owner,
                path,
                _file: file,
            });
        }
    }
    found
}

fn file_of(dir: &Path, owner: LeaseOwner) -> PathBuf {
    dir.join(owner.get().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_proves_its_owner_alive_and_a_dropped_one_dead() {
        let dir = tempfile::tempdir().unwrap();
        let owners = dir.path().join("n.db.owners");
        assert!(dead(&owners).is_empty(), "no folder, no one");
        let (a, b) = (LeaseOwner::new(11), LeaseOwner::new(22));
        let held_a = hold(&owners, a).unwrap();
        let held_b = hold(&owners, b).unwrap();
        assert!(locks_work(&owners));
        assert!(dead(&owners).is_empty(), "both alive");
        std::fs::write(owners.join("notes.txt"), "not an owner").unwrap();
        drop(held_b);
        let found = dead(&owners);
        assert_eq!(found.iter().map(|d| d.owner).collect::<Vec<_>>(), [b]);
        // While one caller holds a dead owner's lock, no other judges it.
        assert!(dead(&owners).is_empty());
        for d in found {
            d.forget();
        }
        assert!(!owners.join("22").exists());
        assert!(owners.join("11").exists());
        assert!(dead(&owners).is_empty(), "a forgotten owner is gone");
        drop(held_a);
        assert_eq!(dead(&owners).len(), 1);
        assert!(
            hold(&owners, LeaseOwner::new(33)).is_ok(),
            "the folder is reused"
        );
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let owners = dir.path().join("n.db.owners");
        std::fs::write(&owners, "a file where the folder should be").unwrap();
        let e = hold(&owners, LeaseOwner::new(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert!(
            e.to_string().starts_with(&format!(
                "could not create the folder of owner locks {}",
                owners.display()
            )),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        assert!(dead(&owners).is_empty());
    }
}
