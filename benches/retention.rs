//! Insert-to-POST latency with and without a backlog of read notifications past retention, in
//! the same run: does the collector, deleting its batches, hold delivery up?
//!
//! - `no_backlog`: a service (retention 30 days) on a database with nothing to delete;
//! - `backlog`: the same database after `RETENTION_ROWS` (1,000,000) notifications read 31 days
//!   ago were added, measured from the moment a new service starts, while its collector deletes
//!   them (the figures say how many it deleted meanwhile, so a collector that did nothing
//!   cannot pass for a fast one).
//!
//! The backlog is built directly in SQL (inserted through the store, then marked read 31 days
//! ago in one statement): a million synced `mark_read` calls would take an hour.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clair_notifier::{Datastore, NotifierConfig, RetentionConfig, Service, SqliteStore, Timestamp};
use common::*;

const DAY: Duration = Duration::from_secs(86_400);

fn rows() -> usize {
    std::env::var("RETENTION_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Starts a service, warms its connections up, measures 1000 notifications, stops it; returns
/// the latencies and how many notifications its collector deleted meanwhile.
fn run(rx: &Receiver, store: &Arc<SqliteStore>) -> (Vec<Duration>, u64) {
    let mut config = NotifierConfig::default();
    config.http.endpoint = rx.url();
    config.workers = 8;
    config.poll_interval = Duration::from_millis(100);
    let handle = Service::new(config, store.clone())
        .retention(RetentionConfig::default())
        .start()
        .unwrap();
    let gap = Duration::from_millis(5);
    insert_to_post(rx, store, 20, gap);
    rx.reset();
    let metrics = handle.metrics();
    let deleted_before = metrics.deleted();
    let (lat, _) = insert_to_post(rx, store, 1000, gap);
    let deleted = metrics.deleted() - deleted_before;
    rx.reset();
    handle.stop();
    (lat, deleted)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = rows();
    println!("# retention: {}, backlog of {rows} rows", machine());
    let rx = Receiver::start(4, true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retention.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());

    let (quiet, _) = run(&rx, &store);

    let built = Instant::now();
    let old = Timestamp::now().minus(31 * DAY).as_millis();
    let batch = 10_000;
    let mut done = 0;
    while done < rows {
        let n = batch.min(rows - done);
        let b: Vec<_> = (0..n).map(|i| notification(done + i, 1)).collect();
        store.insert(&b, Timestamp::from_millis(old)).unwrap();
        done += n;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let marked = conn
        .execute(
            "UPDATE notification SET read_at = ?1, due_at = NULL WHERE created_at = ?1",
            [old],
        )
        .unwrap();
    drop(conn);
    assert_eq!(marked, rows, "the backlog");
    figure("backlog_build", built.elapsed().as_secs_f64(), "s");
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    figure("backlog_file", size as f64 / (1 << 20) as f64, "MiB");

    let (busy, deleted) = run(&rx, &store);
    let left = store.counts(Timestamp::now()).unwrap().read;

    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (b50, b99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    figure("no_backlog_p50", ms(q50), "ms");
    figure("no_backlog_p99", ms(q99), "ms");
    figure("backlog_p50", ms(b50), "ms");
    figure("backlog_p99", ms(b99), "ms");
    figure("backlog_max", ms(*busy.last().unwrap()), "ms");
    figure("deleted_while_measuring", deleted as f64, "rows");
    figure("backlog_left_after", left as f64, "rows");
    let ratio = b99.as_secs_f64() / q99.as_secs_f64().max(1e-6);
    figure("p99_ratio", ratio, "x");
    check(
        "backlog_p99<=2x_no_backlog_p99",
        ratio <= 2.0,
        &format!("{b99:?} against {q99:?}, {deleted} rows deleted meanwhile"),
    );
    check(
        "collector_deleted_while_measuring",
        deleted > 0,
        &format!("{deleted} of {rows}"),
    );
}
