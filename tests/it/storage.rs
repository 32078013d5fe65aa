//! Storage faults under a running service: another process holding the write lock, the
//! database files made read-only (immutable), a full disk, and a corrupt or foreign file given
//! to the binary. In every case nothing is lost and nothing crashes.
//!
//! How each fault is made, as root too (CI runs as root, where `chmod` stops nothing):
//! - the write lock: a real second process (this test binary, re-run in a helper mode) opens
//!   the database and holds `BEGIN IMMEDIATE`;
//! - read-only: `chattr +i` on the database and its WAL (the immutable flag stops even root,
//!   and also stops writes through descriptors already open; `chmod` would not, for anyone:
//!   permissions are checked at `open`). The shared-memory `-shm` file is left alone: it is
//!   written through `mmap`, where an immutable file means SIGBUS, not an error. Skipped, with
//!   a note, where `chattr` is unavailable (not root, or a file system without the flag);
//! - a full disk: a real small tmpfs (`mount -t tmpfs -o size=...`), filled up by a file.
//!   Skipped, with a note, where mounting is not allowed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clair_notifier::{Datastore, NotifierConfig, Service, SqliteStore, Timestamp};

use crate::common::receiver::Receiver;
use crate::common::{sample, temp_db, wait_for};

fn config(url: &str, workers: usize) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.http.endpoint = url.to_string();
    c.http.timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    c.workers = workers;
    c
}

/// How many requests the receiver got for each name.
fn received(rx: &Receiver) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rx.requests() {
        *m.entry(r.name()).or_default() += 1;
    }
    m
}

// ---------------------------------------------------------------------------------------
// (a) Another process holds the write lock.

const LOCK_DB: &str = "CLAIR_TEST_LOCK_DB";
const LOCK_READY: &str = "CLAIR_TEST_LOCK_READY";
const LOCK_HOLD_MS: &str = "CLAIR_TEST_LOCK_HOLD_MS";
const LOCK_RELEASE: &str = "CLAIR_TEST_LOCK_RELEASE";

/// Not a test of its own: the helper mode of this test binary. When run with `LOCK_DB` set,
/// it opens that database in a second process, takes the write lock (`BEGIN IMMEDIATE`),
/// creates the `LOCK_READY` file, holds the lock `LOCK_HOLD_MS` (or, with `LOCK_RELEASE`
/// set, until that file exists), and commits.
#[test]
fn helper_hold_write_lock_when_asked() {
    let Ok(db) = std::env::var(LOCK_DB) else {
        return;
    };
    let ready = std::env::var(LOCK_READY).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(&ready, b"locked").unwrap();
    match std::env::var(LOCK_RELEASE) {
        Ok(release) => wait_for("the release file", Duration::from_secs(120), || {
            Path::new(&release).exists()
        }),
        Err(_) => {
            let hold: u64 = std::env::var(LOCK_HOLD_MS).unwrap().parse().unwrap();
            std::thread::sleep(Duration::from_millis(hold));
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// How long the helper above holds the lock.
enum Hold {
    /// This long: a lock the store must simply wait for.
    For(Duration),
    /// Until the test creates this file.
    Until(PathBuf),
}

/// Runs the helper above in another process; returns once it holds the lock.
fn hold_write_lock(db: &Path, hold: Hold) -> std::process::Child {
    let ready = db.with_extension("locked");
    let mut command = Command::new(std::env::current_exe().unwrap());
    match hold {
        Hold::For(d) => command.env(LOCK_HOLD_MS, d.as_millis().to_string()),
        Hold::Until(file) => command.env(LOCK_RELEASE, file),
    };
    let child = command
        .args([
            "--exact",
            "storage::helper_hold_write_lock_when_asked",
            "--test-threads=1",
            "--quiet",
        ])
        .env(LOCK_DB, db)
        .env(LOCK_READY, &ready)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the other process to hold the lock",
        Duration::from_secs(20),
        || ready.exists(),
    );
    child
}

#[test]
#[ignore = "holds the lock past the 5 s busy timeout: a step of .ci/run (cargo test --test it -- --ignored storage_)"]
fn storage_write_lock_held_by_another_process_delays_but_loses_nothing() {
    let rx = Receiver::start(4);
    rx.set_delay(Duration::from_millis(10));
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let handle = Service::new(config(&rx.url(), 4), store.clone())
        .start()
        .unwrap();
    let batch: Vec<_> = (0..400).map(|i| sample(&format!("CVE-{i}"), 2)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("sends under way", Duration::from_secs(20), || {
        rx.count() >= 20
    });
    // Held past the store's busy timeout (5 s): the service's own retries must take over.
    let release = path.with_extension("release");
    let locked_at = Instant::now();
    let mut locker = hold_write_lock(&path, Hold::Until(release.clone()));
    let sent_when_locked = rx.count();
    // Sends already claimed go on; their outcomes wait in memory.
    wait_for("sends while locked", Duration::from_secs(5), || {
        rx.count() > sent_when_locked
    });
    // Two store errors: the lock outlived the busy timeout, and the service tried again.
    let metrics = handle.metrics();
    wait_for(
        "a retry after a store error",
        Duration::from_secs(60),
        || metrics.store_errors() >= 2,
    );
    assert!(handle.is_running(), "the service must not give up");
    std::fs::write(&release, b"").unwrap();
    assert!(locker.wait().unwrap().success(), "the lock holder failed");
    let released_after = locked_at.elapsed();
    wait_for("all 400 notified", Duration::from_secs(60), || {
        store.counts(Timestamp::now()).unwrap().notified == 400
    });
    let errors = handle.metrics().store_errors();
    handle.stop();
    let got = received(&rx);
    let dup = got.values().filter(|&&n| n > 1).count();
    eprintln!(
        "busy database: lock held {released_after:.1?} by another process; {} requests while \
         locked began, {errors} store errors retried, 400 of 400 notified, {dup} duplicates",
        rx.count() - sent_when_locked
    );
    assert!(
        errors > 0,
        "the lock outlived the busy timeout: errors expected"
    );
    for n in &names {
        assert_eq!(got.get(n), Some(&1), "{n}: sent exactly once");
    }
    let c = store.counts(Timestamp::now()).unwrap();
    assert_eq!((c.pending, c.failing, c.leased), (0, 0, 0), "{c:?}");
    assert_eq!(crate::common::bin::integrity_check(&path), "ok");
}

/// A lock held for less than the busy timeout is simply waited for (no error at all).
#[test]
fn a_short_write_lock_is_waited_for() {
    let rx = Receiver::start(4);
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let handle = Service::new(config(&rx.url(), 2), store.clone())
        .start()
        .unwrap();
    let mut locker = hold_write_lock(&path, Hold::For(Duration::from_millis(1500)));
    // The insert itself waits for the lock (busy_timeout), then the service delivers.
    let names = store
        .insert(
            &(0..50)
                .map(|i| sample(&format!("CVE-{i}"), 1))
                .collect::<Vec<_>>(),
            Timestamp::now(),
        )
        .unwrap();
    assert!(locker.wait().unwrap().success());
    wait_for("50 notified", Duration::from_secs(20), || {
        store.counts(Timestamp::now()).unwrap().notified == 50
    });
    handle.stop();
    let got = received(&rx);
    for n in &names {
        assert_eq!(got.get(n), Some(&1), "{n}");
    }
}

// ---------------------------------------------------------------------------------------
// (b) The database made read-only under the running service.

/// Sets or clears the immutable flag of `files`; false if `chattr` is not possible here.
fn chattr(flag: &str, files: &[PathBuf]) -> bool {
    Command::new("chattr")
        .arg(flag)
        .args(files)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the immutable flag when dropped, so a failing test leaves removable files.
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

#[test]
fn database_made_read_only_under_the_service_loses_nothing() {
    let rx = Receiver::start(4);
    rx.set_delay(Duration::from_millis(5));
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let files = vec![path.clone(), path.with_extension("db-wal")];
    // Is the immutable flag available (root, and a file system that has it)?
    if !chattr("+i", &files) {
        eprintln!(
            "SKIPPED database_made_read_only_under_the_service_loses_nothing: chattr +i is not \
             possible here (needs root and a file system with the immutable flag)"
        );
        return;
    }
    chattr("-i", &files);
    let handle = Service::new(config(&rx.url(), 4), store.clone())
        .start()
        .unwrap();
    let names = store
        .insert(
            &(0..300)
                .map(|i| sample(&format!("CVE-{i}"), 2))
                .collect::<Vec<_>>(),
            Timestamp::now(),
        )
        .unwrap();
    wait_for("sends under way", Duration::from_secs(20), || {
        rx.count() >= 20
    });
    let guard = Immutable(files.clone());
    assert!(chattr("+i", &files));
    let sent_when_frozen = rx.count();
    // Writes now fail: an insert says so, and nothing of it is stored.
    let err = store
        .insert(&[sample("CVE-frozen", 1)], Timestamp::now())
        .unwrap_err();
    eprintln!("insert into the read-only database: {}", err.chain());
    assert_eq!(err.kind(), clair_notifier::ErrorKind::Store);
    assert!(
        err.to_string()
            .contains("failed a read or write of the file"),
        "{}",
        err.chain()
    );
    let metrics = handle.metrics();
    let errors = || metrics.store_errors();
    wait_for(
        "the service to hit the read-only file",
        Duration::from_secs(20),
        || errors() > 0,
    );
    // Reads go on: the read API and the command line still answer.
    assert_eq!(store.counts(Timestamp::now()).unwrap().total(), 300);
    wait_for("a retry after the error", Duration::from_secs(20), || {
        errors() >= 2
    });
    assert!(handle.is_running(), "the service must not give up");
    drop(guard);
    wait_for("all 300 notified", Duration::from_secs(30), || {
        store.counts(Timestamp::now()).unwrap().notified == 300
    });
    let errors = errors();
    handle.stop();
    let got = received(&rx);
    eprintln!(
        "read-only database: {} requests began while frozen, {errors} store errors retried, \
         300 of 300 notified, {} duplicates",
        rx.count() - sent_when_frozen,
        got.values().filter(|&&n| n > 1).count()
    );
    for n in &names {
        assert_eq!(got.get(n), Some(&1), "{n}: sent exactly once");
    }
    assert_eq!(store.counts(Timestamp::now()).unwrap().total(), 300);
    assert_eq!(crate::common::bin::integrity_check(&path), "ok");
}

// ---------------------------------------------------------------------------------------
// (c) The disk fills up under the running binary.

/// A small tmpfs mounted on a new directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where mounting is not allowed (not root, or no CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns its path and size.
    fn fill(&self) -> (PathBuf, u64) {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 4096];
        let mut written = 0u64;
        while f.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = f.sync_all();
        (path, written)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: still unmounts if something holds a file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[cfg(feature = "cli")]
#[test]
fn full_disk_under_serve_is_survived_and_nothing_is_lost() {
    use crate::common::bin::{log_tail, sigterm, spawn_serve, wait_exit};

    let Some(disk) = SmallDisk::mount("3m") else {
        eprintln!(
            "SKIPPED full_disk_under_serve_is_survived_and_nothing_is_lost: cannot mount a \
             small tmpfs here (needs root or CAP_SYS_ADMIN)"
        );
        return;
    };
    let rx = Receiver::start(4);
    rx.set_delay(Duration::from_millis(10));
    let home = tempfile::tempdir().unwrap();
    let d = home.path();
    let db = disk.path().join("n.db");
    std::fs::write(
        d.join("serve.toml"),
        format!(
            "[database]\npath = \"{}\"\n\
             [notifier]\nworkers = 4\npoll_interval = \"100ms\"\n\
             [notifier.http]\nendpoint = \"{}\"\ntimeout = \"2s\"\n[api]\naddr = \"\"\n",
            db.display(),
            rx.url()
        ),
    )
    .unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let names = store
        .insert(
            &(0..300)
                .map(|i| sample(&format!("CVE-{i}"), 10))
                .collect::<Vec<_>>(),
            Timestamp::now(),
        )
        .unwrap();
    let mut child = spawn_serve(d);
    wait_for("sends under way", Duration::from_secs(20), || {
        rx.count() >= 20
    });
    let (filler, filled) = disk.fill();
    let sent_when_full = rx.count();
    // An insert now fails, saying why, and stores nothing.
    let err = store
        .insert(&[sample("CVE-no-room", 100)], Timestamp::now())
        .unwrap_err();
    eprintln!("insert on the full disk: {}", err.chain());
    assert!(
        err.to_string().contains("the disk is full"),
        "{}",
        err.chain()
    );
    // Logged twice: serve hit the full disk, and tried again after it.
    wait_for(
        "serve to log the full disk and a retry",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(d.join("serve.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("the disk is full") && l.contains("retrying in"))
                .count()
                >= 2
        },
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve must keep running: {}",
        log_tail(d, 20)
    );
    // Space returns: everything is delivered and recorded.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.counts(Timestamp::now()).unwrap().notified < 300 {
        assert!(
            Instant::now() < deadline,
            "not all notified: {:?}\n{}",
            store.counts(Timestamp::now()).unwrap(),
            log_tail(d, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10), d);
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 20));
    let log = std::fs::read_to_string(d.join("serve.log")).unwrap();
    let full_lines = log
        .lines()
        .filter(|l| l.contains("the disk is full"))
        .count();
    let example = log
        .lines()
        .find(|l| l.contains("the disk is full"))
        .unwrap_or_default()
        .to_string();
    let got = received(&rx);
    eprintln!(
        "full disk: {filled} bytes of filler; {} requests began while full; {full_lines} log \
         lines about it, e.g.\n  {example}\n  300 of 300 notified, {} duplicates",
        rx.count() - sent_when_full,
        got.values().filter(|&&n| n > 1).count()
    );
    for n in &names {
        assert_eq!(got.get(n), Some(&1), "{n}: sent exactly once");
    }
    let c = store.counts(Timestamp::now()).unwrap();
    assert_eq!((c.total(), c.leased), (300, 0), "{c:?}");
    assert_eq!(crate::common::bin::integrity_check(&db), "ok");
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------------
// (d) A corrupt or non-SQLite file given to the binary as its database.

#[cfg(feature = "cli")]
#[test]
fn corrupt_or_non_sqlite_database_file_exits_2_and_is_left_untouched() {
    use crate::common::bin::BIN;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Not SQLite at all: bytes of another kind of file.
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(d.join("garbage.db"), &garbage).unwrap();
    // An SQLite header followed by garbage: a database whose first page is destroyed.
    {
        let conn = rusqlite::Connection::open(d.join("corrupt.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let mut corrupt = std::fs::read(d.join("corrupt.db")).unwrap();
    for (i, b) in corrupt.iter_mut().enumerate().skip(100) {
        *b = (i * 31 % 256) as u8;
    }
    std::fs::write(d.join("corrupt.db"), &corrupt).unwrap();
    let add_line = r#"{"New":{"Vulnerability":{"Name":"CVE-1"}}}"#;
    for (file, needle) in [
        ("garbage.db", "is not an SQLite database"),
        ("corrupt.db", "is corrupt"),
    ] {
        let before = std::fs::read(d.join(file)).unwrap();
        std::fs::write(
            d.join("c.toml"),
            format!("[database]\npath = \"{file}\"\n[api]\naddr = \"\"\n"),
        )
        .unwrap();
        for cmd in [
            &["serve"][..],
            &["add"],
            &["list"],
            &["stats"],
            &["mark-read", "x"],
        ] {
            let mut child = Command::new(BIN)
                .args(["--config", "c.toml"])
                .args(cmd)
                .current_dir(d)
                .env_remove("RUST_LOG")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let _ = child.stdin.take().unwrap().write_all(add_line.as_bytes());
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let shown = format!("{file}: clair-notifier {cmd:?}: {:?}\n{stderr}", out.status);
            assert_eq!(out.status.code(), Some(2), "{shown}");
            assert!(out.stdout.is_empty(), "{shown}");
            assert_eq!(stderr.lines().count(), 1, "one line: {shown}");
            assert!(stderr.starts_with("clair-notifier: "), "{shown}");
            assert!(stderr.contains(file) && stderr.contains(needle), "{shown}");
            assert!(!stderr.contains("panicked"), "{shown}");
            assert_eq!(
                std::fs::read(d.join(file)).unwrap(),
                before,
                "{shown}: bytes changed"
            );
            if cmd == ["serve"] {
                eprintln!("{file}: {}", stderr.trim());
            }
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(
                !d.join(format!("{file}{suffix}")).exists(),
                "{file}{suffix} left behind"
            );
        }
    }
}

/// Stopping while the disk is full: stop still returns (the final writes are tried a few
/// times), the unwritten work stays leased, and once space returns a new service picks it up
/// when the lease expires: nothing is lost.
#[test]
fn stop_on_a_full_disk_is_bounded_and_a_restart_delivers_the_rest() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!(
            "SKIPPED stop_on_a_full_disk_is_bounded_and_a_restart_delivers_the_rest: cannot \
             mount a small tmpfs here (needs root or CAP_SYS_ADMIN)"
        );
        return;
    };
    let rx = Receiver::start(4);
    rx.set_delay(Duration::from_millis(10));
    let db = disk.path().join("n.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let clock = crate::common::OffsetClock::default();
    let names = store
        .insert(
            &(0..200)
                .map(|i| sample(&format!("CVE-{i}"), 5))
                .collect::<Vec<_>>(),
            Timestamp::now(),
        )
        .unwrap();
    let handle = Service::new(config(&rx.url(), 4), store.clone())
        .clock(clock.clock())
        .start()
        .unwrap();
    wait_for("sends under way", Duration::from_secs(20), || {
        rx.count() >= 20
    });
    let (filler, _) = disk.fill();
    let metrics = handle.metrics();
    wait_for("a store error", Duration::from_secs(20), || {
        metrics.store_errors() > 0
    });
    let started = Instant::now();
    handle.stop();
    let took = started.elapsed();
    std::fs::remove_file(&filler).unwrap();
    let before = store.counts(clock.now()).unwrap();
    // Past the lease of the stopped service, a new one takes its work over.
    clock.advance(NotifierConfig::default().lease + Duration::from_secs(1));
    let handle = Service::new(config(&rx.url(), 4), store.clone())
        .clock(clock.clock())
        .start()
        .unwrap();
    wait_for("all 200 notified", Duration::from_secs(30), || {
        store.counts(clock.now()).unwrap().notified == 200
    });
    handle.stop();
    let got = received(&rx);
    eprintln!(
        "stop on a full disk: returned in {took:.2?} with {} still leased; after a restart \
         200 of 200 notified, {} duplicates",
        before.leased,
        got.values().filter(|&&n| n > 1).count()
    );
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    for n in &names {
        assert!(got.contains_key(n), "{n} never received");
    }
    assert_eq!(crate::common::bin::integrity_check(&db), "ok");
}
