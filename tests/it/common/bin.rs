//! Running the real binary: `serve` in a directory holding its `serve.toml`, logs in
//! `serve.log`, SIGTERM, bounded waits; and checks of the database it leaves.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_clair-notifier");

/// Starts `clair-notifier --config serve.toml serve` in `dir`, its stderr appended to
/// `serve.log` there.
pub fn spawn_serve(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .unwrap();
    Command::new(BIN)
        .args(["--config", "serve.toml", "serve"])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start clair-notifier serve")
}

/// The last `n` lines of `serve.log` in `dir`, to show when an assertion fails.
pub fn log_tail(dir: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Waits up to `limit` for `child` to exit; kills it and panics past that.
pub fn wait_exit(child: &mut Child, limit: Duration, dir: &Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not exit within {limit:?}; its log ends:\n{}",
                log_tail(dir, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Notifications still held under a lease (ids in the lease rows, 8 bytes each; after a clean
/// stop there must be none).
pub fn rows_with_lease_owner(path: &Path) -> i64 {
    super::backends::sqlite_leases(path)
}

pub fn integrity_check(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// How many lines of `serve.log` in `dir` contain `text`.
pub fn log_count(dir: &Path, text: &str) -> usize {
    std::fs::read_to_string(dir.join("serve.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

/// Waits until `serve.log` in `dir` says a service started more often than `before` times.
pub fn wait_started(dir: &Path, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_count(dir, "notifier service started") == before {
        assert!(
            Instant::now() < deadline,
            "serve did not start: {}",
            log_tail(dir, 30)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
