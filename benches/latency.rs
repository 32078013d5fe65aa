//! Latency from insert to the receiver seeing the webhook POST.
//!
//! - `in_process`: one notification at a time at a steady 200/s (far under capacity), inserted
//!   through the service's own store, which wakes the scanner at once;
//! - `other_writer`: rows written through a second store on the same file, as another process
//!   would write them: nothing wakes the scanner, which finds them within `poll_interval`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clair_notifier::{NotifierConfig, Service, SqliteStore};
use common::*;

/// How long each `insert` call took (its synced commit is most of the latency).
static INSERT_CALLS: std::sync::Mutex<Vec<Duration>> = std::sync::Mutex::new(Vec::new());

fn run(rx: &Receiver, store: &SqliteStore, count: usize, gap: Duration) -> Vec<Duration> {
    let (lat, calls) = insert_to_post(rx, store, count, gap);
    INSERT_CALLS.lock().unwrap().extend(calls);
    lat
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("# latency: {}", machine());
    let rx = Receiver::start(4, true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latency.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let poll = Duration::from_millis(100);
    let mut config = NotifierConfig::default();
    config.http.endpoint = rx.url();
    config.workers = 8;
    config.poll_interval = poll;
    let handle = Service::new(config, store.clone()).start().unwrap();

    // Warm up the connection pool.
    run(&rx, &store, 20, Duration::from_millis(2));
    rx.reset();
    INSERT_CALLS.lock().unwrap().clear();

    let lat = run(&rx, &store, 1000, Duration::from_millis(5));
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let mut calls = std::mem::take(&mut *INSERT_CALLS.lock().unwrap());
    calls.sort();
    figure("in_process_p50", p50.as_secs_f64() * 1e3, "ms");
    figure("in_process_p99", p99.as_secs_f64() * 1e3, "ms");
    figure(
        "in_process_max",
        lat.last().unwrap().as_secs_f64() * 1e3,
        "ms",
    );
    figure(
        "in_process_insert_call_p50",
        percentile(&calls, 0.5).as_secs_f64() * 1e3,
        "ms",
    );
    check(
        "in_process_p50<=2ms",
        p50 <= Duration::from_millis(2),
        &format!("{p50:?}"),
    );
    check(
        "in_process_p99<=10ms",
        p99 <= Duration::from_millis(10),
        &format!("{p99:?}"),
    );

    rx.reset();
    let other = SqliteStore::open(&path).unwrap(); // not watched by the service
    let lat = run(&rx, &other, 60, Duration::from_millis(37));
    let p50 = percentile(&lat, 0.5);
    figure("other_writer_p50", p50.as_secs_f64() * 1e3, "ms");
    figure(
        "other_writer_p99",
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        "ms",
    );
    figure("poll_interval", poll.as_secs_f64() * 1e3, "ms");
    check(
        "other_writer_p50<=poll_interval+5ms",
        p50 <= poll + Duration::from_millis(5),
        &format!("{p50:?} with poll_interval {poll:?}"),
    );
    handle.stop();
}
