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
use common::binary;
use common::nginx::{Nginx, find_nginx};
use common::*;

const N: usize = 20_000;

fn ceiling(rx: &Receiver, workers: usize) -> f64 {
    rx.reset();
    let rate = raw_posts(&rx.url(), workers, N);
    assert_eq!(rx.distinct(), N, "ceiling: receiver saw every name");
    rate
}

/// `n` raw ureq POSTs of the webhook's body to `url` from `workers` threads: POSTs/s.
fn raw_posts(url: &str, workers: usize, n: usize) -> f64 {
    let agent = raw_agent();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (agent, next) = (agent.clone(), next.clone());
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        break;
                    }
                    raw_post(&agent, url, i);
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
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

/// The service delivering the `n` notifications of `store` to nginx with `workers` workers,
/// timed from its start to the last POST nginx logged.
fn service_nginx(
    nginx: &mut Nginx,
    store: &Arc<SqliteStore>,
    n: usize,
    workers: usize,
    ahead: Duration,
) -> f64 {
    let mut config = NotifierConfig::default();
    config.http.endpoint = nginx.url();
    config.workers = workers;
    let clock = clair_notifier::Clock::from_fn(move || Timestamp::now().plus(ahead));
    assert_eq!(store.counts(clock.now()).unwrap().due, n as u64, "all due");
    nginx.mark();
    let start = std::time::SystemTime::now();
    let handle = Service::new(config, store.clone())
        .clock(clock.clone())
        .start()
        .unwrap();
    let logged = nginx.wait_for("library service", n, Duration::from_secs(600));
    handle.stop();
    let after = nginx.logged();
    assert_eq!(
        (after.lines, after.posts_ok),
        (n, n),
        "library service: nginx logged exactly {n} POSTs answered 200"
    );
    assert_eq!(store.counts(clock.now()).unwrap().due, 0, "all recorded");
    let secs = logged
        .last
        .unwrap()
        .duration_since(start)
        .unwrap_or_default();
    n as f64 / secs.as_secs_f64().max(0.001)
}

/// Raw ureq POSTs to nginx, checked against its log.
fn ceiling_nginx(nginx: &mut Nginx, workers: usize, n: usize) -> f64 {
    nginx.mark();
    let rate = raw_posts(&nginx.url(), workers, n);
    let logged = nginx.wait_for("raw POSTs", n, Duration::from_secs(60));
    assert_eq!(
        (logged.lines, logged.posts_ok),
        (n, n),
        "ceiling: {n} POSTs"
    );
    rate
}

/// The median ratio of each run to the mean of the ceilings just before and after it, with
/// the lowest and highest ratio.
fn paired(runs: &[f64], before: &[f64], after: &[f64]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = (0..runs.len())
        .map(|i| runs[i] / ((before[i] + after[i]) / 2.0))
        .collect();
    let (lowest, highest) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    (median(ratios), lowest, highest)
}

/// The library service and the `clair-notifier` binary against nginx, each compared with raw
/// ureq POSTs from as many threads to the same nginx: for each N and W, rounds of ceiling,
/// library, ceiling, binary, ceiling, ...
fn against_nginx(ws: &[usize], rounds: usize) {
    let Some(program) = find_nginx() else {
        println!(
            "# nginx: SKIPPED the nginx receiver: no nginx program found \
             (install it, e.g. `apt-get install -y nginx`, or set BENCH_NGINX_BIN)"
        );
        return;
    };
    let mut nginx = match Nginx::start(&program) {
        Ok(nginx) => nginx,
        Err(e) => {
            println!("# nginx: SKIPPED the nginx receiver: {e}");
            return;
        }
    };
    let binary = if env_list("BENCH_BINARY", &[1]) == [0] {
        None
    } else {
        let found = binary::program();
        if found.is_none() {
            println!("# nginx: SKIPPED the binary: built without the `cli` feature");
        }
        found
    };
    println!(
        "# nginx: {} (1 worker process, return 200, keep-alive, access log on) on {}",
        program.display(),
        nginx.addr
    );
    for n in env_list("BENCH_N", &[20_000, 100_000]) {
        let input = binary.as_ref().map(|_| binary::input(nginx.dir(), n));
        for &workers in ws {
            let dir = tempfile::tempdir().unwrap();
            let store = filled_store(&dir, n);
            std::thread::sleep(Duration::from_millis(500));
            let mut ceilings = vec![ceiling_nginx(&mut nginx, workers, n)];
            let (mut library, mut bin) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let ahead = Duration::from_secs(3 * 3600) * round as u32;
                library.push(service_nginx(&mut nginx, &store, n, workers, ahead));
                ceilings.push(ceiling_nginx(&mut nginx, workers, n));
                if let (Some(program), Some(input)) = (&binary, &input) {
                    bin.push(binary::serve_run(program, &mut nginx, input, n, workers));
                    ceilings.push(ceiling_nginx(&mut nginx, workers, n));
                }
            }
            // With the binary, ceilings are c0 L c1 B c2 L c3 ...: library run i sits
            // between ceilings 2i and 2i+1, binary run i between 2i+1 and 2i+2.
            let step = if bin.is_empty() { 1 } else { 2 };
            let at =
                |k: usize| -> Vec<f64> { ceilings.iter().skip(k).step_by(step).copied().collect() };
            let tag = format!("nginx_n{n}_w{workers}");
            figure(
                &format!("{tag}_raw_posts"),
                median(ceilings.clone()),
                "posts/s",
            );
            let (lib_ratio, lo, hi) = paired(&library, &at(0), &at(1));
            figure(
                &format!("{tag}_library"),
                median(library),
                "notifications/s",
            );
            figure(&format!("{tag}_ratio_library"), lib_ratio, "ratio");
            println!("# {tag}: library, {rounds} rounds, ratios from {lo:.3} to {hi:.3}");
            if !bin.is_empty() {
                let (bin_ratio, lo, hi) = paired(&bin, &at(1), &at(2));
                figure(&format!("{tag}_binary"), median(bin), "notifications/s");
                figure(&format!("{tag}_ratio_binary"), bin_ratio, "ratio");
                println!("# {tag}: binary, {rounds} rounds, ratios from {lo:.3} to {hi:.3}");
                if n == 100_000 {
                    check(
                        &format!("{tag}_ratio_binary>=0.85"),
                        bin_ratio >= 0.85,
                        &format!("{bin_ratio:.3}"),
                    );
                }
            }
        }
    }
}

/// A comma-separated list of numbers from the environment, or `default`.
fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.trim().parse().expect(name))
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "# throughput: {}; in-process receiver: {} notifications",
        machine(),
        N
    );
    let ws = env_list("BENCH_W", &[8, 32]);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let receivers = std::env::var("BENCH_RECEIVER").unwrap_or_else(|_| "rust,nginx".into());
    let receivers: Vec<&str> = receivers.split(',').map(str::trim).collect();
    let rx = Receiver::start(8, false);
    for &workers in ws.iter().filter(|_| receivers.contains(&"rust")) {
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
    // The attempt log's cost is measured with the in-process receiver.
    if receivers.contains(&"rust") && !std::env::var("BENCH_ATTEMPT_LOG").is_ok_and(|v| v == "0") {
        attempt_log_cost(&rx, rounds.min(5));
    }
    if receivers.contains(&"nginx") {
        against_nginx(&ws, rounds);
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
