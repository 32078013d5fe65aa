//! Operating two instances of the real binary on one PostgreSQL database
//! (`CLAIR_NOTIFIER_TEST_PG`): the circuit they share opens once, its probes go out spaced
//! across both and spend no attempt, `pause` stops both, `resume` delivers everything and the
//! circuit closes once, and `show --attempts` shows the tries.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use clair_notifier::Timestamp;

use crate::cli::run_in;
use crate::common::backends::TestDb;
use crate::common::bin::{log_count, log_tail, sigterm, wait_exit};
use crate::common::receiver::Receiver;
use crate::common::{sample, wait_for};
use crate::operate::spawn_serve;

const OPENED: &str = "circuit of notifier webhook opened";
const CLOSED: &str = "circuit of notifier webhook closed";
const PAUSED: &str = "notifier webhook is paused";
const HELD: &str = "every notifier is held";
const CFG: [&str; 2] = ["--config", "serve.toml"];

fn instance(db: &TestDb, endpoint: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("serve.toml"),
        format!(
            "{}[notifier]\nworkers = 4\npoll_interval = \"100ms\"\n\
             max_backoff = \"200ms\"\nbreaker_failures = 5\nbreaker_probe = \"500ms\"\n\
             [notifier.http]\nendpoint = \"{endpoint}\"\n[api]\naddr = \"\"\n",
            db.config_table()
        ),
    )
    .unwrap();
    dir
}

fn total(dirs: &[tempfile::TempDir], line: &str) -> usize {
    dirs.iter().map(|d| log_count(d.path(), line)).sum()
}

/// Waits for two more polls of every instance that log `line`.
fn two_polls(dirs: &[tempfile::TempDir], line: &str) {
    let seen: Vec<usize> = dirs.iter().map(|d| log_count(d.path(), line)).collect();
    wait_for(
        "two polls of each instance",
        Duration::from_secs(10),
        || {
            dirs.iter()
                .zip(&seen)
                .all(|(d, &n)| log_count(d.path(), line) >= n + 2)
        },
    );
}

fn stop(mut child: Child, dir: &Path) {
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30), dir);
    assert!(status.success(), "{status:?}: {}", log_tail(dir, 20));
}

#[test]
fn two_instances_share_the_circuit_the_pause_and_the_attempt_log() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.open();
    let receiver = Receiver::start(4);
    receiver.set_status(503);
    let batch: Vec<_> = (0..200).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    let dirs = [
        instance(&db, &receiver.url()),
        instance(&db, &receiver.url()),
    ];
    let serves: Vec<Child> = dirs.iter().map(|d| spawn_serve(d.path())).collect();

    wait_for("the circuit to open", Duration::from_secs(30), || {
        total(&dirs, OPENED) >= 1
    });
    two_polls(&dirs, HELD);
    // Once nothing is leased, sends under way when it opened are over (a slow receiver may
    // hold one up to the timeout): what comes next are probes.
    wait_for("sends under way to end", Duration::from_secs(30), || {
        db.rows_with_lease() == 0
    });
    assert_eq!(total(&dirs, OPENED), 1, "one opening, by one instance");
    let (before, spent) = (receiver.count(), db.attempts_spent());
    wait_for("three probes", Duration::from_secs(30), || {
        receiver.count() >= before + 3
    });
    // The store gives out one probe per breaker_probe (500 ms) between the instances, and an
    // instance gives up a probe it has not claimed work for within a poll (100 ms): probes
    // of either instance are at least 400 ms apart, less what a loaded machine adds.
    let probes: Vec<_> = receiver.requests()[before..].iter().map(|r| r.at).collect();
    for pair in probes.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(300), "probes {gap:?} apart");
    }
    assert_eq!(
        db.attempts_spent(),
        spent,
        "a probe or a wait spent an attempt"
    );

    // Paused, with the receiver back: no probe, no POST, from either instance.
    let d0 = dirs[0].path();
    assert_eq!(
        run_in(d0, &[&CFG[..], &["pause", "webhook"]].concat(), None).code,
        0
    );
    wait_for("both to see the pause", Duration::from_secs(10), || {
        dirs.iter().all(|d| log_count(d.path(), PAUSED) == 1)
    });
    receiver.set_status(200);
    two_polls(&dirs, HELD);
    let settled = receiver.count();
    two_polls(&dirs, HELD);
    two_polls(&dirs, HELD);
    assert_eq!(receiver.count(), settled, "a POST arrived while paused");
    let stats = run_in(d0, &[&CFG[..], &["stats", "--json"]].concat(), None).ok();
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["notifiers"]["webhook"]["paused"], true, "{stats:?}");
    assert_eq!(v["notifiers"]["webhook"]["circuit"], "open", "{stats:?}");

    assert_eq!(
        run_in(d0, &[&CFG[..], &["resume", "webhook"]].concat(), None).code,
        0
    );
    wait_for("every notification", Duration::from_secs(60), || {
        store.counts(Timestamp::now()).unwrap().notified == names.len() as u64
    });
    assert_eq!(total(&dirs, CLOSED), 1, "one closing, by one instance");
    let delivered: std::collections::HashSet<String> =
        receiver.requests().iter().map(|r| r.name()).collect();
    assert_eq!(delivered.len(), names.len());

    // The log of a notification that failed before it was delivered.
    let failed = receiver.requests()[0].name();
    let show = run_in(
        d0,
        &[&CFG[..], &["show", &failed, "--attempts", "--json"]].concat(),
        None,
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let tries = v["Attempts"].as_array().unwrap();
    assert!(tries.len() >= 2, "{show:?}");
    assert_eq!(tries[0]["Outcome"], "status", "{show:?}");
    assert_eq!(tries[0]["Status"], 503, "{show:?}");
    assert_eq!(tries.last().unwrap()["Outcome"], "ok", "{show:?}");
    for (serve, dir) in serves.into_iter().zip(&dirs) {
        stop(serve, dir.path());
    }
}
