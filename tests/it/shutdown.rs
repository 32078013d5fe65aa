//! Stopping with every worker blocked on a receiver that never answers: stop returns within
//! the send timeout plus a small bound and leaves nothing leased (the library's `Handle::stop`,
//! and the binary on SIGTERM), on each backend.

use std::time::{Duration, Instant};

use clair_notifier::{NotifierConfig, Service, Timestamp};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::{Silent, sample, wait_for};

const WORKERS: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(1);
/// Allowed on top of the send timeout: thread wake-ups and two small transactions, on a
/// loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(5);
/// Enough queued work that a stop which sent it all (each send timing out) would take half a
/// minute, far past the bound.
const QUEUED: usize = 1000;

on_every_backend!(
    stop_with_32_workers_blocked_on_a_silent_receiver_is_bounded_and_releases_everything,
    #[cfg(feature = "cli")]
    sigterm_with_32_workers_blocked_exits_in_bounded_time,
);

fn stop_with_32_workers_blocked_on_a_silent_receiver_is_bounded_and_releases_everything(
    db: TestDb,
) {
    let silent = Silent::start();
    let store = db.open();
    let mut config = NotifierConfig::default();
    config.http.endpoint = silent.url();
    config.http.timeout = TIMEOUT;
    config.workers = WORKERS;
    config.poll_interval = Duration::from_millis(50);
    let handle = Service::new(config, store.clone()).start().unwrap();
    let batch: Vec<_> = (0..QUEUED)
        .map(|i| sample(&format!("CVE-{i}"), 1))
        .collect();
    store.insert(&batch, Timestamp::now()).unwrap();
    wait_for(
        "every worker blocked on the receiver",
        Duration::from_secs(10),
        || silent.accepted() >= WORKERS,
    );
    let started = Instant::now();
    handle.stop();
    let took = started.elapsed();
    eprintln!("stop with {WORKERS} workers blocked (timeout {TIMEOUT:?}): returned in {took:.2?}");
    assert!(took < TIMEOUT + SLACK, "stop took {took:?}");
    let c = store.counts(Timestamp::now()).unwrap();
    assert_eq!(c.leased, 0, "{c:?}");
    assert_eq!(db.rows_with_lease(), 0, "no lease outlives stop");
    // The unsent ones are due at once; the timed-out ones wait for their retry.
    assert_eq!(c.pending + c.failing, QUEUED as u64, "{c:?}");
    assert!(
        c.failing >= WORKERS as u64,
        "the timed-out sends count: {c:?}"
    );
}

#[cfg(feature = "cli")]
fn sigterm_with_32_workers_blocked_exits_in_bounded_time(db: TestDb) {
    use crate::common::bin::{log_tail, sigterm, spawn_serve, wait_exit};

    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("serve.toml"),
        format!(
            "{}[notifier]\nworkers = {WORKERS}\npoll_interval = \"50ms\"\n\
             [notifier.http]\nendpoint = \"{}\"\ntimeout = \"{}ms\"\n[api]\naddr = \"\"\n",
            db.config_table(),
            silent.url(),
            TIMEOUT.as_millis()
        ),
    )
    .unwrap();
    let store = db.open();
    let batch: Vec<_> = (0..QUEUED)
        .map(|i| sample(&format!("CVE-{i}"), 1))
        .collect();
    store.insert(&batch, Timestamp::now()).unwrap();
    let mut child = spawn_serve(d);
    wait_for(
        "every worker blocked on the receiver",
        Duration::from_secs(20),
        || silent.accepted() >= WORKERS,
    );
    let started = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30), d);
    let took = started.elapsed();
    eprintln!("SIGTERM with {WORKERS} workers blocked (timeout {TIMEOUT:?}): exited in {took:.2?}");
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 20));
    assert!(took < TIMEOUT + SLACK, "exit took {took:?}");
    assert_eq!(db.rows_with_lease(), 0, "{}", log_tail(d, 20));
    assert_eq!(store.counts(Timestamp::now()).unwrap().leased, 0);
}
