//! Crash safety of the real binary: `serve` is killed with SIGKILL at random moments (during
//! start-up and claims, with sends in flight, while outcomes are written) and restarted each
//! time; at the end nothing is lost, nothing stays leased, and the duplicates stay within
//! what a kill can leave in flight.
//!
//! The long test is `#[ignore]`d (it runs for tens of seconds) and runs as its own step of
//! `.ci/run`: `cargo test --test it -- --ignored --nocapture crash_`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use clair_notifier::{Datastore, SqliteStore, Timestamp};

use crate::common::bin::{
    integrity_check, log_count, log_tail, rows_with_lease_owner, sigterm, spawn_serve, wait_exit,
    wait_started,
};
use crate::common::receiver::Receiver;
use crate::common::{sample, wait_for};

/// A small xorshift generator: the test prints its seed, and `CRASH_SEED` replays a run.
struct Rng(u64);

impl Rng {
    fn from_env_or_time() -> (Rng, u64) {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORKERS: usize = 8;
/// The service's job queue capacity for `WORKERS`.
fn queue_capacity() -> usize {
    clair_notifier::service::queue_capacity(WORKERS)
}
const KILLS: usize = 24;
/// `notifier.lease` in the test's configuration, in milliseconds.
const LEASE_MS: i64 = 1000;

/// The expiry of the furthest lease in the database, in Unix milliseconds.
fn furthest_lease(path: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT max(until) FROM lease", [], |r| r.get(0))
        .unwrap()
}

#[test]
#[ignore = "runs for tens of seconds: a step of .ci/run (cargo test --test it -- --ignored crash_)"]
fn crash_serve_killed_with_sigkill_loses_nothing() {
    let (mut rng, seed) = Rng::from_env_or_time();
    eprintln!("crash test: seed {seed} (CRASH_SEED={seed} replays the kill delays)");
    // A receiver slowed a little, so that sends are in flight when the kill comes.
    let rx = Receiver::start(16);
    rx.set_delay(Duration::from_millis(3));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("n.db");
    write_serve_config(d, WORKERS, &rx.url());
    let store = SqliteStore::open(&db).unwrap();
    let mut names = Vec::new();
    let insert = |n: usize, names: &mut Vec<String>| {
        let batch: Vec<_> = (0..n)
            .map(|i| sample(&format!("CVE-{}", names.len() + i), 2))
            .collect();
        names.extend(store.insert(&batch, Timestamp::now()).unwrap());
    };
    insert(1500, &mut names);

    // (kill number, delay or trigger, requests the receiver saw during that run)
    let mut runs = Vec::new();
    let started = Instant::now();
    for kill in 0..KILLS {
        let before = rx.count();
        let mut child = spawn_serve(d);
        // Waves of inserts while a (soon killed) service runs: claims of fresh work.
        if kill == 8 || kill == 16 {
            insert(1000, &mut names);
        }
        let how = match kill % 3 {
            // A fixed delay from start: start-up, the first claims and their writes.
            0 => {
                let ms = rng.below(300);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{ms} ms after start")
            }
            // Once sends are flowing: kill with requests in flight.
            1 => {
                let want = 1 + rng.below(200) as usize;
                let deadline = Instant::now() + Duration::from_secs(5);
                while rx.count() < before + want && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let extra = rng.below(20);
                std::thread::sleep(Duration::from_millis(extra));
                format!("{extra} ms after the {want}th send")
            }
            // A longer run: several batches of outcomes written and claimed.
            _ => {
                let ms = 300 + rng.below(900);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{ms} ms after start")
            }
        };
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "run {kill} ended by itself ({status}); its log ends:\n{}",
            log_tail(d, 30)
        );
        // No lease reaches further than one lease past the kill.
        let furthest = furthest_lease(&db);
        let limit = Timestamp::now().as_millis() + LEASE_MS;
        assert!(
            furthest.is_none_or(|t| t <= limit),
            "a lease runs {} ms past the kill",
            furthest.unwrap_or(0) - Timestamp::now().as_millis()
        );
        runs.push((kill, how, rx.count() - before));
    }
    let killed_for = started.elapsed();

    // A final clean run to completion, stopped with SIGTERM once it has started.
    let started_before = log_count(d, "notifier service started");
    let mut child = spawn_serve(d);
    let total = names.len() as u64;
    wait_for_notified(&store, total, &mut child, d);
    wait_started(d, started_before);
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10), d);
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 30));

    // Every notification was received at least once and is marked notified.
    let mut received: HashMap<String, usize> = HashMap::new();
    for r in rx.requests() {
        *received.entry(r.name()).or_default() += 1;
    }
    let lost: Vec<&String> = names
        .iter()
        .filter(|n| !received.contains_key(*n))
        .collect();
    let counts = store.counts(Timestamp::now()).unwrap();
    let requests: usize = received.values().sum();
    let duplicates = requests - received.len();
    let max_per_name = received.values().max().copied().unwrap_or(0);
    for (kill, how, seen) in &runs {
        eprintln!("  kill {kill:2}: {how}; {seen} requests in that run");
    }
    eprintln!(
        "crash test: {KILLS} SIGKILLs over {killed_for:.1?} and a final clean run; {total} \
         notifications, {} received, {} lost, {requests} requests, {duplicates} duplicates \
         (at most {max_per_name} sends of one notification), bound {}",
        received.len(),
        lost.len(),
        KILLS * (queue_capacity() + WORKERS)
    );
    assert!(lost.is_empty(), "never received: {lost:?}");
    assert_eq!(received.len() as u64, total, "only our names were sent");
    assert_eq!(counts.notified, total, "{counts:?}");
    assert_eq!(
        counts.pending + counts.failing + counts.read,
        0,
        "{counts:?}"
    );
    assert_eq!(
        rows_with_lease_owner(&db),
        0,
        "a lease outlived a clean stop"
    );
    assert_eq!(counts.due, 0, "{counts:?}");
    // At-least-once: a kill re-sends at most what it left claimed or in flight.
    assert!(
        duplicates <= KILLS * (queue_capacity() + WORKERS),
        "{duplicates} duplicates"
    );
    assert_eq!(integrity_check(&db), "ok");
}

/// Waits until `total` notifications are notified, or panics showing the log.
fn wait_for_notified(store: &SqliteStore, total: u64, child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = store.counts(Timestamp::now()).unwrap();
        if c.notified == total {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "serve exited ({status}) early: {c:?}\n{}",
                log_tail(dir, 30)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("not all notified in time: {c:?}\n{}", log_tail(dir, 30));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `serve.toml` in `dir` for `n.db` there, with a short lease (and timeout) so that each
/// restart soon picks up the dead process's work, and no read API.
fn write_serve_config(dir: &std::path::Path, workers: usize, url: &str) {
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[database]\npath = \"n.db\"\n\
             [notifier]\nworkers = {workers}\npoll_interval = \"100ms\"\nlease = \"1s\"\n\
             renotify_interval = \"1d\"\nmax_backoff = \"200ms\"\n\
             [notifier.http]\nendpoint = \"{url}\"\ntimeout = \"500ms\"\n\
             [api]\naddr = \"\"\n"
        ),
    )
    .unwrap();
}

/// A short version that runs in every `cargo test`: three kills, then a clean run.
#[test]
fn three_sigkills_then_a_clean_run_lose_nothing() {
    let rx = Receiver::start(8);
    rx.set_delay(Duration::from_millis(2));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("n.db");
    write_serve_config(d, 4, &rx.url());
    let store = SqliteStore::open(&db).unwrap();
    let batch: Vec<_> = (0..300).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    for k in 0..3 {
        let before = rx.count();
        let mut child = spawn_serve(d);
        wait_for("some sends", Duration::from_secs(20), || {
            rx.count() > before + 10 * k
        });
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let started_before = log_count(d, "notifier service started");
    let mut child = spawn_serve(d);
    wait_for_notified(&store, 300, &mut child, d);
    wait_started(d, started_before);
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10), d).code(),
        Some(0)
    );
    let mut received: HashMap<String, usize> = HashMap::new();
    for r in rx.requests() {
        *received.entry(r.name()).or_default() += 1;
    }
    for n in &names {
        assert!(received.contains_key(n), "{n} never received");
    }
    assert_eq!(rows_with_lease_owner(&db), 0);
    assert_eq!(integrity_check(&db), "ok");
}
