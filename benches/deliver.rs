//! One delivery run, for tools that count (valgrind's callgrind, `strace -c -f`,
//! `perf stat -e context-switches`): fills a fresh store with `DELIVER_N` due notifications
//! (default 5,000), then runs the library service with `DELIVER_W` workers (default 8) until
//! every one is delivered, and stops it. `DELIVER_TO` picks the notifier:
//! - `noop`: returns Ok at once (the store's and the service's own work);
//! - `nginx`: the webhook to nginx (see `common/nginx.rs`; started before the fill);
//! - `rust`: the webhook to the benches' in-process receiver;
//! - `raw`: no service: `DELIVER_W` threads (`raw-post-N`) POSTing the same bodies to nginx
//!   with a bare ureq agent, the POST's own cost to compare a delivery with;
//! - `none`: the fill only, with nginx started as for `nginx`, so that subtracting its counts
//!   from a delivering run's leaves the deliveries' own.
//!
//! `DELIVER_POLL_MS` sets `poll_interval` (the library's default, 1 s, otherwise; the binary
//! bench uses 50 ms).
//!
//! It prints what it did and nothing timed: its figures are the tools' counts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clair_notifier::{Datastore, NotifierConfig, Registry, Service, SqliteStore, Timestamp};
use common::counted::Counted;
use common::nginx::{Nginx, find_nginx};
use common::*;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}

/// Context switches of this process's threads so far (`/proc/self/task/*/status`), summed by
/// thread name with its number dropped (`notify-worker-3` counts as `notify-worker-`):
/// threads, voluntary (blocked: a futex wait, a read with no data) and involuntary (preempted),
/// and CPU time (user + system, clock ticks, from `stat`).
fn thread_switches() -> std::collections::BTreeMap<String, (u64, u64, u64, u64)> {
    let mut groups = std::collections::BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
        let name = read("comm")
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_string();
        let status = read("status");
        let field = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let ticks = (stat_cpu(task.path().join("stat")) * 100.0).round() as u64;
        let g: &mut (u64, u64, u64, u64) = groups.entry(name).or_default();
        g.0 += 1;
        g.1 += field("voluntary_ctxt_switches:");
        g.2 += field("nonvoluntary_ctxt_switches:");
        g.3 += ticks;
    }
    groups
}

fn print_switches(n: usize, switches: std::collections::BTreeMap<String, (u64, u64, u64, u64)>) {
    for (group, (threads, voluntary, involuntary, ticks)) in switches {
        println!(
            "switches {group}: {threads} threads, {voluntary} voluntary ({:.3} a delivery), \
             {involuntary} involuntary ({:.3} a delivery), cpu {} ms ({:.2} us a delivery)",
            voluntary as f64 / n as f64,
            involuntary as f64 / n as f64,
            ticks * 10,
            ticks as f64 * 10_000.0 / n as f64
        );
    }
}

/// `n` POSTs of the webhook's body from `workers` threads with one bare ureq agent (as the
/// throughput bench's ceiling), printing the threads' switches before they exit.
fn raw(url: &str, workers: usize, n: usize) {
    let agent = raw_agent();
    let next = AtomicU64::new(0);
    let done = std::sync::Barrier::new(workers + 1);
    let read = std::sync::Barrier::new(workers + 1);
    std::thread::scope(|s| {
        for w in 0..workers {
            let (agent, next, done, read) = (agent.clone(), &next, &done, &read);
            std::thread::Builder::new()
                .name(format!("raw-post-{w}"))
                .spawn_scoped(s, move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= n {
                            break;
                        }
                        raw_post(&agent, url, i);
                    }
                    done.wait();
                    read.wait();
                })
                .unwrap();
        }
        done.wait();
        print_switches(n, thread_switches());
        read.wait();
    });
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("DELIVER_N", 5_000);
    let workers = env("DELIVER_W", 8);
    let to = std::env::var("DELIVER_TO").unwrap_or_else(|_| "noop".into());
    let mut nginx = match to.as_str() {
        "nginx" | "none" | "raw" => {
            let program = find_nginx().expect("no nginx program (apt-get install -y nginx)");
            Some(Nginx::start(&program).expect("start nginx"))
        }
        _ => None,
    };
    let rx = (to == "rust").then(|| Receiver::start(8, false));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Counted::new(
        SqliteStore::open(dir.path().join("deliver.db")).unwrap(),
    ));
    let batch: Vec<_> = (0..n).map(|i| notification(i, 0)).collect();
    for chunk in batch.chunks(5_000) {
        store.insert(chunk, Timestamp::from_millis(0)).unwrap();
    }
    drop(batch);
    if to == "raw" {
        let nginx = nginx.as_mut().unwrap();
        nginx.mark();
        raw(&nginx.url(), workers, n);
        nginx.wait_for("raw POSTs", n, Duration::from_secs(600));
        println!("deliver: {n} raw POSTs to nginx from {workers} threads");
        return;
    }
    if to == "none" {
        println!("deliver: filled {n}, delivered none");
        return;
    }
    let mut config = NotifierConfig {
        workers,
        ..NotifierConfig::default()
    };
    if let Ok(ms) = std::env::var("DELIVER_POLL_MS") {
        config.poll_interval = Duration::from_millis(ms.parse().expect("DELIVER_POLL_MS"));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::with_builtins();
    match (&mut nginx, &rx) {
        (Some(nginx), _) => {
            config.http.endpoint = nginx.url();
            nginx.mark();
        }
        (_, Some(rx)) => config.http.endpoint = rx.url(),
        _ => {
            registry = Registry::new();
            registry.register("noop", Noop::new(sent.clone()));
        }
    }
    let handle = Service::new(config, store.clone())
        .registry(registry)
        .start()
        .unwrap();
    let wait = Duration::from_secs(3600);
    match (&mut nginx, &rx) {
        (Some(nginx), _) => {
            nginx.wait_for("deliveries", n, wait);
        }
        (_, Some(rx)) => wait_until("deliveries", wait, || rx.distinct() == n),
        _ => wait_until("deliveries", wait, || {
            sent.load(Ordering::Relaxed) >= n as u64
        }),
    }
    // Read before the stop, while the service's threads are alive.
    let switches = thread_switches();
    handle.stop();
    print_switches(n, switches);
    println!("{}", store.report());
    let counts = store.counts(Timestamp::now()).unwrap();
    assert_eq!(counts.notified, n as u64, "every one recorded as notified");
    println!("deliver: {n} to {to} with {workers} workers");
}
