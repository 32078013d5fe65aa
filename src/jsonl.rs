//! The `jsonl` notifier: appends one JSON line per notification to a file, or to stdout (Unix).
//!
//! `[notifier.jsonl] path = "/var/log/clair/notifications.jsonl"` (or `"-"` for stdout). Each
//! line is the whole notification (the read API's document without its paging fields, every
//! layer), written in one piece under a lock, so lines of concurrent workers never mix. A
//! delivery counts once its line is on disk (`fdatasync`); the workers that wrote while one
//! of them synced are covered by one sync together. The file is opened at the first delivery,
//! created if missing; when it has been moved or removed (logrotate), the next delivery
//! reopens it at its path, with no signal needed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::NotifierConfig;
use crate::document::Source;
use crate::error::{Error, Result};
use crate::notifier::{Delivery, Notifier, SendError};
use crate::params::Table;
use crate::store::Datastore;
use crate::text::one_line;

/// The built-in `jsonl` notifier, enabled when `[notifier.jsonl] path` is set.
#[derive(Default)]
pub struct Jsonl {
    sink: Option<Sink>,
    source: Source,
}

impl std::fmt::Debug for Jsonl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.sink.as_ref().map(|s| match &s.path {
            Some(p) => p.display().to_string(),
            None => "-".to_string(),
        });
        f.debug_struct("Jsonl")
            .field("path", &target)
            .finish_non_exhaustive()
    }
}

/// Where lines go: a file (`path`) or stdout (`path` is `None`).
struct Sink {
    path: Option<PathBuf>,
    state: Mutex<State>,
    /// How many lines are known to be on disk; held while syncing, so that one sync serves
    /// every line written before it started.
    synced: Mutex<u64>,
}

#[derive(Default)]
struct State {
    /// The open file and its device and inode; `None` before the first line.
    file: Option<(Arc<File>, (u64, u64))>,
    /// Lines written so far.
    written: u64,
}

impl Jsonl {
    /// Checks `[notifier.jsonl]` of `config` as configuring does; `true` when it enables the
    /// notifier.
    ///
    /// # Errors
    ///
    /// A configuration error naming the key: an unknown key, a `path` whose directory does
    /// not exist or that is not a regular file.
    pub fn check(config: &NotifierConfig) -> Result<bool> {
        Ok(path(config)?.is_some())
    }
}

/// The configured path: `Some(None)` for stdout.
fn path(config: &NotifierConfig) -> Result<Option<Option<PathBuf>>> {
    let Some(table) = Table::of(config, "jsonl", &["path"])? else {
        return Ok(None);
    };
    let path = table.string("path")?;
    if path.is_empty() {
        return Ok(None);
    }
    if path == "-" {
        return Ok(Some(None));
    }
    let p = Path::new(path);
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|d| !d.is_dir()) {
        return Err(Error::config(format!(
            "notifier.jsonl.path \"{path}\": the directory {} does not exist",
            dir.display()
        )));
    }
    if p.metadata().is_ok_and(|m| !m.is_file()) {
        return Err(Error::config(format!(
            "notifier.jsonl.path \"{path}\" is not a regular file"
        )));
    }
    Ok(Some(Some(p.to_path_buf())))
}

impl Notifier for Jsonl {
    fn configure(&mut self, config: &NotifierConfig) -> Result<bool> {
        self.sink = path(config)?.map(Sink::new);
        Ok(self.sink.is_some())
    }

    fn send(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
        let Some(sink) = &self.sink else {
            return Err(SendError::new("the jsonl notifier is not configured"));
        };
        let line = self.source.read(&delivery.name)?;
        sink.append(&line).map_err(|e| {
            let to = sink
                .path
                .as_ref()
                .map_or("stdout".to_string(), |p| p.display().to_string());
            SendError::new(one_line(&format!("jsonl {to}: {e}")))
        })
    }

    fn bind(&mut self, store: &Arc<dyn Datastore>) {
        self.source.bind(store);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sink {
    fn new(path: Option<PathBuf>) -> Sink {
        Sink {
            path,
            state: Mutex::new(State::default()),
            synced: Mutex::new(0),
        }
    }

    /// Writes `line` in one piece, then returns once it is on disk.
    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            let mut out = std::io::stdout().lock();
            out.write_all(line)?;
            return out.flush();
        };
        let mine = {
            let mut state = lock(&self.state);
            let file = current(&mut state, path)?;
            (&*file).write_all(line)?;
            state.written += 1;
            state.written
        };
        let mut synced = lock(&self.synced);
        if *synced >= mine {
            return Ok(());
        }
        // Every line written so far is in the current file, or in one reopened away from,
        // which was synced then.
        let (file, upto) = {
            let state = lock(&self.state);
            match &state.file {
                Some((file, _)) => (file.clone(), state.written),
                None => return Ok(()),
            }
        };
        file.sync_data()?;
        *synced = upto;
        Ok(())
    }
}

/// The file at `path`, opened (created if missing) on first use and again when what is at
/// `path` is no longer the file open (moved or removed).
fn current(state: &mut State, path: &Path) -> std::io::Result<Arc<File>> {
    let at_path = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    if let Some((file, id)) = &state.file {
        if at_path == Some(*id) {
            return Ok(file.clone());
        }
        // Lines in the file left behind must be on disk before they stop being counted as
        // the current file's.
        file.sync_data()?;
    }
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    let m = file.metadata()?;
    let file = Arc::new(file);
    state.file = Some((file.clone(), (m.dev(), m.ino())));
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::with_table;

    #[test]
    fn a_moved_or_removed_file_is_reopened_at_its_path() {
        let dir = tempfile::Builder::new().prefix("jsonl").tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let sink = Sink::new(Some(path.clone()));
        sink.append(b"1\n").unwrap();
        std::fs::rename(&path, dir.path().join("n.jsonl.1")).unwrap();
        sink.append(b"2\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        sink.append(b"3\n").unwrap();
        sink.append(b"4\n").unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("n.jsonl.1"), "1\n");
        assert_eq!(read("n.jsonl"), "3\n4\n");
        assert_eq!(*lock(&sink.synced), 4);
    }

    #[test]
    fn paths_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/n.jsonl");
        let err = Jsonl::check(&with_table("jsonl", serde_json::json!({ "path": missing })))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("notifier.jsonl.path"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        let err = Jsonl::check(&with_table(
            "jsonl",
            serde_json::json!({ "path": dir.path() }),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not a regular file"), "{err}");
        let file = dir.path().join("n.jsonl");
        assert!(Jsonl::check(&with_table("jsonl", serde_json::json!({ "path": file }))).unwrap());
        assert!(!file.exists(), "checking creates nothing");
        assert!(Jsonl::check(&with_table("jsonl", serde_json::json!({ "path": "-" }))).unwrap());
        assert!(!Jsonl::check(&with_table("jsonl", serde_json::json!({ "path": "" }))).unwrap());
        let err = Jsonl::check(&with_table("jsonl", serde_json::json!({ "file": "x" })))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown key `notifier.jsonl.file` (expected path)");
    }
}
