//! Delivery throughput against the HTTP ceiling, and the service's own overhead.
//!
//! Prints `name value unit` lines and ratios measured in this one run:
//! - `http_ceiling_wN`: N threads doing raw ureq POSTs of the same body to the same receiver;
//! - `service_wN`: the service delivering the same number of due notifications with N workers;
//! - `noop_service`: the service with a notifier that returns Ok at once (claims, channel,
//!   outcomes: the store's and the service's own cost).
//!
//! - `attempt_log_*`: the attempt log's cost, side by side in one run: the no-op service and
//!   the webhook service (8 workers) with each `AttemptLog` setting (`off`: no log at all;
//!   `last_success`, the default: every failure and the last success; `every_success`),
//!   alternating over renotify rounds of one store. `BENCH_ATTEMPT_LOG=0` skips it.
//!
//! Every run checks that the receiver saw exactly N distinct names.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clair_notifier::store::AttemptLog;
use clair_notifier::{Datastore, NotifierConfig, Service, SqliteStore, Timestamp};
use common::*;

const N: usize = 20_000;

fn ceiling(rx: &Receiver, workers: usize) -> f64 {
    rx.reset();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .max_idle_connections(256)
        .max_idle_connections_per_host(256)
        .build()
        .into();
    let url = rx.url();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (agent, url, next) = (agent.clone(), url.clone(), next.clone());
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= N {
                        break;
                    }
                    // The webhook's body, byte for byte (a name needs no JSON escaping).
                    let body = format!(
                        r#"{{"Notification":{{"Name":"{:08x}-0000-4000-8000-{i:012x}"}}}}"#,
                        i
                    );
                    let mut r = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body)
                        .expect("post");
                    let _ = r.body_mut().read_to_vec();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rx.distinct(), N, "ceiling: receiver saw every name");
    N as f64 / secs
}

fn filled_store(dir: &tempfile::TempDir, n: usize) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).unwrap());
    let batch: Vec<_> = (0..n).map(|i| notification(i, 0)).collect();
    for chunk in batch.chunks(5_000) {
        store.insert(chunk, Timestamp::from_millis(0)).unwrap();
    }
    store
}

/// The service delivering the `N` notifications of `store` with `workers` workers, its clock
/// `ahead` of the wall clock (each run after the first is a renotify round).
fn service(rx: &Receiver, store: &Arc<SqliteStore>, workers: usize, ahead: Duration) -> f64 {
    rx.reset();
    let mut config = NotifierConfig::default();
    config.http.endpoint = rx.url();
    config.workers = workers;
    let clock = clair_notifier::Clock::from_fn(move || Timestamp::now().plus(ahead));
    assert_eq!(
        store.counts(clock.now()).unwrap().due,
        N as u64,
        "service: all due"
    );
    let start = Instant::now();
    let handle = Service::new(config, store.clone())
        .clock(clock.clone())
        .start()
        .unwrap();
    // Poll the receiver, not the store: a counting query every millisecond would steal
    // the CPU being measured.
    wait_until("all delivered", Duration::from_secs(300), || {
        rx.distinct() == N
    });
    let secs = start.elapsed().as_secs_f64();
    handle.stop();
    // `stop` wrote every outcome before returning.
    assert_eq!(
        store.counts(clock.now()).unwrap().due,
        0,
        "service: all recorded"
    );
    assert_eq!(rx.distinct(), N, "service: receiver saw every name");
    N as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("# throughput: {} notifications, {}", N, machine());
    let rx = Receiver::start(8, false);
    let ws: Vec<usize> = std::env::var("BENCH_W")
        .ok()
        .map(|v| {
            v.split(",")
                .filter(|x| !x.is_empty())
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .unwrap_or(vec![8, 32]);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    for workers in ws {
        let dir = tempfile::tempdir().unwrap();
        let store = filled_store(&dir, N);
        // Let the checkpoint of the inserts finish: it is not part of delivering.
        std::thread::sleep(Duration::from_millis(500));
        // Ceiling and service alternate, and each service run is compared with the mean of
        // the ceilings measured just before and just after it: the machine's drift (it is
        // shared) hits both sides of each ratio alike. The figure is the median ratio.
        let (mut ceilings, mut hooks, mut services) =
            (vec![ceiling(&rx, workers)], Vec::new(), Vec::new());
        for round in 0..rounds {
            hooks.push(webhook_only(&rx, workers, N));
            let ahead = Duration::from_secs(3 * 3600) * round as u32;
            services.push(service(&rx, &store, workers, ahead));
            ceilings.push(ceiling(&rx, workers));
        }
        let ratios: Vec<f64> = services
            .iter()
            .enumerate()
            .map(|(i, s)| s / ((ceilings[i] + ceilings[i + 1]) / 2.0))
            .collect();
        let (lowest, highest) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        let ratio = median(ratios);
        let (ceiling, hook, svc) = (median(ceilings), median(hooks), median(services));
        figure(&format!("http_ceiling_w{workers}"), ceiling, "posts/s");
        figure(
            &format!("webhook_notifier_only_w{workers}"),
            hook,
            "posts/s",
        );
        figure(&format!("service_w{workers}"), svc, "notifications/s");
        figure(
            &format!("ratio_service_to_ceiling_w{workers}"),
            ratio,
            "ratio",
        );
        println!("# w{workers}: {rounds} rounds, ratios from {lowest:.3} to {highest:.3}");
        check(
            &format!("ratio_w{workers}>=0.85"),
            ratio >= 0.85,
            &format!("{ratio:.3}"),
        );
    }
    if !std::env::var("BENCH_ATTEMPT_LOG").is_ok_and(|v| v == "0") {
        attempt_log_cost(&rx, rounds.min(5));
    }
    if std::env::var("BENCH_NOOP").is_ok_and(|v| v == "0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(&dir, N);
    let noop = noop_rate(store, N as u64, 8);
    figure("noop_service_w8", noop, "notifications/s");
    check("noop>=100000/s", noop >= 100_000.0, &format!("{noop:.0}/s"));
}

/// The delivery rate with each attempt-log setting, measured alternately (so that the shared
/// machine's drift hits each alike), and each setting's cost against no log at all.
fn attempt_log_cost(rx: &Receiver, rounds: usize) {
    let modes = [
        ("off", AttemptLog::Off),
        ("last_success", AttemptLog::LastSuccess),
        ("every_success", AttemptLog::EverySuccess),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = filled_store(&dir, N);
    std::thread::sleep(Duration::from_millis(500));
    let mut noop = vec![Vec::new(); modes.len()];
    let mut hook = vec![Vec::new(); modes.len()];
    // Each run is a renotify round of the same notifications, 3 h after the one before.
    let mut round = 0u32;
    let mut ahead = || {
        round += 1;
        Duration::from_secs(3 * 3600) * round
    };
    for _ in 0..rounds {
        for (i, (_, mode)) in modes.iter().enumerate() {
            store.set_attempt_log(*mode);
            noop[i].push(noop_rate_at(store.clone(), N as u64, 8, ahead()));
            hook[i].push(service(rx, &store, 8, ahead()));
        }
    }
    let (noop_off, hook_off) = (median(noop[0].clone()), median(hook[0].clone()));
    for (i, (label, _)) in modes.iter().enumerate() {
        let (n, h) = (median(noop[i].clone()), median(hook[i].clone()));
        figure(&format!("attempt_log_noop_{label}"), n, "notifications/s");
        figure(
            &format!("attempt_log_webhook_w8_{label}"),
            h,
            "notifications/s",
        );
        if i > 0 {
            let (noop_cost, hook_cost) = (1.0 - n / noop_off, 1.0 - h / hook_off);
            figure(
                &format!("attempt_log_cost_noop_{label}"),
                noop_cost,
                "fraction",
            );
            figure(
                &format!("attempt_log_cost_webhook_w8_{label}"),
                hook_cost,
                "fraction",
            );
            check(
                &format!("attempt_log_{label}<=10%_of_delivery_rate"),
                hook_cost <= 0.10,
                &format!("{:.1} %", hook_cost * 100.0),
            );
        }
    }
}
