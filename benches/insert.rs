//! Bulk insert through the library, with the durability the product ships (each call is one
//! transaction whose commit is synced).

mod common;

use std::time::Instant;

use clair_notifier::{Datastore, SqliteStore, Timestamp};
use common::*;

fn rate(layers: usize, total: usize, per_call: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("insert.db")).unwrap();
    let batch: Vec<_> = (0..per_call).map(|i| notification(i, layers)).collect();
    let start = Instant::now();
    let mut names = 0;
    for _ in 0..total / per_call {
        names += store.insert(&batch, Timestamp::now()).unwrap().len();
    }
    let secs = start.elapsed().as_secs_f64();
    let counts = store.counts(Timestamp::now()).unwrap();
    assert_eq!(counts.pending as usize, total, "every notification stored");
    assert_eq!(names, total);
    total as f64 / secs
}

/// The median of three runs, each on a fresh database (the machine is shared and noisy).
fn median_rate(layers: usize, total: usize, per_call: usize) -> f64 {
    let mut rates: Vec<f64> = (0..3).map(|_| rate(layers, total, per_call)).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "# {layers} layers a side: runs of {:.0}, {:.0}, {:.0} /s",
        rates[0], rates[1], rates[2]
    );
    rates[1]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("# insert: {}", machine());
    let only = std::env::var("BENCH_INSERT").unwrap_or_default();
    if only != "layers" {
        let plain = median_rate(0, 200_000, 10_000);
        figure("insert_no_layers", plain, "notifications/s");
        check(
            "insert_no_layers>=200000/s",
            plain >= 200_000.0,
            &format!("{plain:.0}/s"),
        );
    }
    if only == "plain" {
        return;
    }
    let layered = median_rate(10, 50_000, 5_000);
    figure("insert_10_layers_old_and_new", layered, "notifications/s");
    check(
        "insert_10_layers>=50000/s",
        layered >= 50_000.0,
        &format!("{layered:.0}/s"),
    );
}
