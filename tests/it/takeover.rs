//! Dead owners recognised at once, with the real binary: the work a killed `serve` held is
//! taken over by the next start (or by another instance) within a poll interval, not when its
//! lease expires; a stopped but live instance keeps its leases; a folder of owner locks that
//! cannot be made stops the start with one sentence naming it.
//!
//! The tests that time a restart are `#[ignore]`d (they need the machine to themselves to time
//! seconds) and run in `.ci/run`'s reliability step (`--ignored crash_`).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clair_notifier::{Datastore, SqliteStore, Timestamp};

use crate::common::bin::{BIN, log_count, log_tail, sigterm, spawn_serve, wait_exit};
use crate::common::rawhttp::{RawServer, response};
use crate::common::receiver::Receiver;
use crate::common::{sample, wait_for};

/// Writes `serve.toml` in `dir` for the database `db`, with the default lease (10 minutes)
/// unless `extra` says otherwise, and no read API.
fn write_config(dir: &Path, db: &Path, url: &str, notifier: &str) {
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[database]\npath = \"{}\"\n[notifier]\n{notifier}\n\
             [notifier.http]\nendpoint = \"{url}\"\n[api]\naddr = \"\"\n",
            db.display()
        ),
    )
    .unwrap();
}

/// The instance id `serve.log` in `dir` gave its `n`th start (from 1).
fn instance(dir: &Path, n: usize) -> i64 {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let line = text
        .lines()
        .filter(|l| l.contains("notifier service started"))
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no start {n} in the log:\n{}", log_tail(dir, 20)));
    line.rsplit("instance ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits for the `n`th start of `serve` in `dir`.
fn started(dir: &Path, n: usize) {
    wait_for("serve to start", Duration::from_secs(30), || {
        log_count(dir, "notifier service started") >= n
    });
}

/// The ids leased to each owner, from the lease rows.
fn leases(db: &Path) -> HashMap<i64, usize> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT owner, length(ids) / 8 FROM lease")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Distinct names the receiver saw, and how many requests in all.
fn received(rx: &Receiver) -> (HashMap<String, usize>, usize) {
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let requests = rx.requests();
    for r in &requests {
        *by_name.entry(r.name()).or_default() += 1;
    }
    (by_name, requests.len())
}

/// The case a single-host user meets: 5,000 due, `serve` with the default 10-minute lease
/// killed with SIGKILL mid-run and started again at once. Everything is delivered within
/// seconds of the restart, and the duplicates are no more than what the kill left in flight.
/// The receiver answers in 10 ms on a thread per connection (so that no request waits behind
/// the dead process's connections).
#[test]
#[ignore = "times a restart: a step of .ci/run (cargo test --test it -- --ignored crash_)"]
fn crash_restart_after_sigkill_delivers_everything_within_seconds() {
    const N: usize = 5000;
    const WORKERS: usize = 32;
    let rx = RawServer::http(|_| {
        std::thread::sleep(Duration::from_millis(10));
        response(200, &[], b"")
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("n.db");
    write_config(
        d,
        &db,
        &rx.http_url("/hook"),
        &format!("workers = {WORKERS}"),
    );
    let store = SqliteStore::open(&db).unwrap();
    let batch: Vec<_> = (0..N).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();

    let mut first = spawn_serve(d);
    wait_for("1,000 sends", Duration::from_secs(60), || {
        rx.requests().len() >= 1000
    });
    kill9(&mut first);
    let dead = instance(d, 1);
    let held = leases(&db).get(&dead).copied().unwrap_or(0);
    let at_kill = rx.requests().len();

    let restart = Instant::now();
    let mut second = spawn_serve(d);
    wait_for(
        "every notification after the restart",
        Duration::from_secs(60),
        || rx.names_seen().0.len() == N,
    );
    let took = restart.elapsed();
    wait_for(
        "every notification notified",
        Duration::from_secs(60),
        || store.counts(Timestamp::now()).unwrap().notified == N as u64,
    );
    sigterm(&second);
    let status = wait_exit(&mut second, Duration::from_secs(10), d);
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 20));

    let (by_name, requests) = rx.names_seen();
    let duplicates = requests - by_name.len();
    let in_flight = clair_notifier::service::queue_capacity(WORKERS) + WORKERS;
    eprintln!(
        "takeover: killed after {at_kill} sends holding {held} leases; every one of {N} \
         delivered {took:.2?} after the restart; {duplicates} duplicates (bound {in_flight})"
    );
    assert!(held > 0, "the kill left leases behind: the case under test");
    assert!(
        log_count(d, &format!("of instance {dead})")) == 1,
        "the restart says whose work it took: {}",
        log_tail(d, 20)
    );
    assert!(
        took < Duration::from_secs(5),
        "delivered {took:?} after the restart: the dead instance's leases were waited for"
    );
    assert!(duplicates <= in_flight, "{duplicates} duplicates");
    for n in &names {
        assert!(by_name.contains_key(n));
    }
    assert!(leases(&db).is_empty(), "nothing stays leased");
}

/// Two instances on one database, one killed: the survivor takes the dead one's leases within
/// a poll interval (and a few seconds of room), long before they expire.
#[test]
#[ignore = "times a takeover: a step of .ci/run (cargo test --test it -- --ignored crash_)"]
fn crash_survivor_takes_a_killed_instances_work_within_a_poll() {
    let rx = Receiver::start(16);
    rx.set_delay(Duration::from_millis(20));
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("n.db");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        write_config(d, &db, &rx.url(), "workers = 4\npoll_interval = \"1s\"");
    }
    let store = SqliteStore::open(&db).unwrap();
    // More than one instance's queue (1,024 with 4 workers), so that both hold leases.
    let batch: Vec<_> = (0..3000).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.insert(&batch, Timestamp::now()).unwrap();

    let mut first = spawn_serve(&a);
    started(&a, 1);
    let mut second = spawn_serve(&b);
    started(&b, 1);
    let (dead, survivor) = (instance(&a, 1), instance(&b, 1));
    wait_for("both to hold leases", Duration::from_secs(30), || {
        let l = leases(&db);
        l.get(&dead).is_some_and(|&n| n > 0) && l.get(&survivor).is_some_and(|&n| n > 0)
    });
    kill9(&mut first);
    let killed = Instant::now();
    wait_for(
        "the survivor to take the dead instance's leases",
        Duration::from_secs(30),
        || !leases(&db).contains_key(&dead),
    );
    let took = killed.elapsed();
    eprintln!(
        "takeover: the survivor freed the killed instance's leases {took:.2?} after the kill"
    );
    // Against a 10-minute lease: poll_interval (1 s) and room for a loaded 2-core machine.
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: more than poll_interval (1 s) and 4 s"
    );
    assert_eq!(log_count(&b, &format!("of instance {dead})")), 1);
    wait_for("every notification", Duration::from_secs(60), || {
        received(&rx).0.len() == 3000
    });
    sigterm(&second);
    assert_eq!(
        wait_exit(&mut second, Duration::from_secs(10), &b).code(),
        Some(0)
    );
}

/// A live instance stopped with SIGSTOP for longer than the poll interval is not robbed: the
/// other instance delivers new work meanwhile and leaves the stopped one's leases alone; after
/// SIGCONT the stopped one writes its outcomes and nothing is sent twice.
#[test]
fn a_stopped_instance_keeps_its_leases_and_writes_its_outcomes_after_it_continues() {
    let rx = Receiver::start(8);
    rx.set_delay(Duration::from_millis(150));
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("n.db");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        write_config(
            d,
            &db,
            &rx.url(),
            "workers = 2\npoll_interval = \"100ms\"\nlease = \"20s\"",
        );
    }
    let store = SqliteStore::open(&db).unwrap();
    let batch: Vec<_> = (0..40).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    let mut first = spawn_serve(&a);
    started(&a, 1);
    let stopped = instance(&a, 1);
    wait_for("sends in flight", Duration::from_secs(30), || {
        rx.count() >= 2
    });
    signal(&first, "-STOP");
    let held = leases(&db).get(&stopped).copied().unwrap_or(0);
    assert!(
        held > 0,
        "the stopped instance holds leases: the case under test"
    );

    let mut second = spawn_serve(&b);
    started(&b, 1);
    // Work added while the first is stopped reaches the receiver through the second, many
    // poll intervals in a row: proof that the second looked for dead owners meanwhile.
    for round in 0..3 {
        let probe = store
            .insert(&[sample(&format!("CVE-P{round}"), 0)], Timestamp::now())
            .unwrap()
            .remove(0);
        wait_for(
            "the second instance to deliver new work",
            Duration::from_secs(30),
            || rx.count_for(&probe) == 1,
        );
    }
    assert_eq!(
        leases(&db).get(&stopped).copied(),
        Some(held),
        "a stopped but live instance keeps its leases"
    );
    assert_eq!(log_count(&b, "took over"), 0, "{}", log_tail(&b, 20));

    signal(&first, "-CONT");
    wait_for(
        "every notification delivered",
        Duration::from_secs(60),
        || {
            let c = store.counts(Timestamp::now()).unwrap();
            c.notified == names.len() as u64 + 3
        },
    );
    sigterm(&first);
    sigterm(&second);
    assert_eq!(
        wait_exit(&mut first, Duration::from_secs(10), &a).code(),
        Some(0)
    );
    assert_eq!(
        wait_exit(&mut second, Duration::from_secs(10), &b).code(),
        Some(0)
    );
    let (by_name, requests) = received(&rx);
    assert_eq!(requests, by_name.len(), "nothing was sent twice");
    assert!(leases(&db).is_empty());
}

/// A folder of owner locks that cannot be made stops `serve` at start, exit 1, with one
/// sentence naming it.
#[test]
fn serve_refuses_to_start_without_its_folder_of_owner_locks() {
    let rx = Receiver::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("n.db");
    write_config(d, &db, &rx.url(), "");
    std::fs::write(d.join("n.db.owners"), "a file where the folder should be").unwrap();
    let out = Command::new(BIN)
        .args(["--config", "serve.toml", "serve"])
        .current_dir(d)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "clair-notifier: could not create the folder of owner locks {}.owners",
            db.display()
        )),
        "{stderr}"
    );
    assert_eq!(rx.count(), 0);
}
