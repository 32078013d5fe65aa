//! The PostgreSQL datastore's figures (cargo feature `postgres`), in one run:
//! - `http_ceiling_w8`: 8 threads calling the webhook notifier directly (no store);
//! - `sqlite_service_w8` and `postgres_service_w8`: one in-process service delivering the same
//!   number of due notifications, in `BENCH_ROUNDS` (3) paired rounds (SQLite, then PostgreSQL,
//!   each on a fresh database); medians, and the median of the rounds' ratios;
//! - `postgres_server_cpu_per_delivery`: CPU the server's backends of the bench database spent
//!   per delivery (read from `/proc`: the server must run on this machine, as the test cluster
//!   does; 0 when it cannot be read);
//! - `postgres_round_trips_per_1000`: statements the server ran per 1,000 deliveries (every
//!   store call is one statement, one round trip), and the client's CPU per delivery;
//! - `postgres_insert`: notifications stored per second, in batches of 1,000;
//! - `instances_1`, `_2`, `_3`: separate `serve` processes on one database, and their ratios to
//!   one instance (on a 2-core machine bounded by the cores).
//!
//! It needs a server: `CLAIR_NOTIFIER_TEST_PG=postgres://...` (contrib/pg-test-cluster start
//! DIR prints one). Without it the bench says so and skips. `BENCH_N` sets the count.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clair_notifier::{
    Datastore, NotifierConfig, PostgresOptions, PostgresStore, Service, SqliteStore, SslMode,
    Timestamp,
};
use common::*;

fn fresh_db(admin: &str, tag: &str) -> String {
    let mut client = postgres::Client::connect(admin, postgres::NoTls).expect("the server");
    let db = format!("cn_bench_{tag}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        client.batch_execute(&sql).unwrap();
    }
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

fn open(url: &str) -> PostgresStore {
    PostgresStore::open(&PostgresOptions {
        url: url.to_string(),
        password: None,
        sslmode: SslMode::Disable,
        sslrootcert: None,
    })
    .unwrap()
}

fn fill(store: &dyn Datastore, n: usize) -> f64 {
    let batch: Vec<_> = (0..n).map(|i| notification(i, 1)).collect();
    let start = Instant::now();
    for chunk in batch.chunks(1000) {
        store.insert(chunk, Timestamp::from_millis(0)).unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// CPU seconds this process has used (user + system).
fn cpu() -> f64 {
    stat_cpu("/proc/self/stat")
}

/// The service delivering the `n` due notifications of `store` with 8 workers: its rate and
/// the CPU this process spent per delivery.
fn service(rx: &Receiver, store: Arc<dyn Datastore>, n: usize) -> (f64, f64) {
    service_with(rx, store, n, || 0.0).0
}

/// [`service`], and what `server_cpu` read just before the start and once all were delivered
/// (before the stop closes the store's connections).
fn service_with(
    rx: &Receiver,
    store: Arc<dyn Datastore>,
    n: usize,
    server_cpu: impl Fn() -> f64,
) -> ((f64, f64), f64) {
    rx.reset();
    let mut config = NotifierConfig::default();
    config.http.endpoint = rx.url();
    config.workers = 8;
    let server0 = server_cpu();
    let (cpu0, start) = (cpu(), Instant::now());
    let handle = Service::new(config, store.clone()).start().unwrap();
    wait_until("all delivered", Duration::from_secs(600), || {
        rx.distinct() == n
    });
    let secs = start.elapsed().as_secs_f64();
    let server = server_cpu() - server0;
    handle.stop();
    let used = cpu() - cpu0;
    assert_eq!(
        store.counts(Timestamp::now()).unwrap().due,
        0,
        "all recorded"
    );
    ((n as f64 / secs, used / n as f64), server / n as f64)
}

/// CPU seconds the server's backends connected to `url`'s database have used, read from
/// `/proc` (0 where a backend's file cannot be read: a server on another machine).
fn backends_cpu(admin: &str, url: &str) -> f64 {
    let db = url.rsplit('/').next().unwrap();
    let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
    let pids: Vec<i32> = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    pids.iter()
        .map(|pid| stat_cpu(format!("/proc/{pid}/stat")))
        .sum()
}

/// Transactions the server committed in the database of `url` (every statement of the store
/// is one), once the statistics of ended sessions are in.
fn commits(admin: &str, url: &str) -> i64 {
    std::thread::sleep(Duration::from_millis(1500));
    let db = url.rsplit('/').next().unwrap();
    let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
    client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

fn spawn_serve(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_clair-notifier"))
        .args(["--config", "serve.toml", "serve"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `k` separate `serve` processes delivering `n` due notifications from one database.
fn instances(rx: &Receiver, admin: &str, k: usize, n: usize) -> f64 {
    let url = fresh_db(admin, &format!("k{k}"));
    fill(&open(&url), n);
    rx.reset();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("serve.toml"),
        format!(
            "[database]\nurl = \"{url}\"\nsslmode = \"disable\"\n[notifier]\nworkers = 8\n\
             [notifier.http]\nendpoint = \"{}\"\n[api]\naddr = \"\"\n",
            rx.url()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut children: Vec<Child> = (0..k).map(|_| spawn_serve(dir.path())).collect();
    wait_until("all delivered", Duration::from_secs(600), || {
        rx.distinct() == n
    });
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for c in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    rate
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Ok(admin) = std::env::var("CLAIR_NOTIFIER_TEST_PG") else {
        println!(
            "# postgres: SKIPPED: no server given. Set CLAIR_NOTIFIER_TEST_PG=postgres://... \
             (contrib/pg-test-cluster start DIR starts one and prints its URL)"
        );
        return;
    };
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!("# postgres: {n} notifications, {}", machine());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rx = Receiver::start(8, false);
    let http = webhook_only(&rx, 8, n);

    let (mut sqlite_rates, mut pg_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sqlite_cpus, mut pg_cpus, mut server_cpus) = (Vec::new(), Vec::new(), Vec::new());
    let (mut insert_rates, mut statements) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Datastore> =
            Arc::new(SqliteStore::open(dir.path().join("b.db")).unwrap());
        fill(&*sqlite, n);
        let url = fresh_db(&admin, &format!("one{round}"));
        let pg = open(&url);
        insert_rates.push(fill(&pg, n));
        let before = commits(&admin, &url);

        let (sqlite_rate, sqlite_cpu) = service(&rx, sqlite, n);
        let ((pg_rate, pg_cpu), server_cpu) =
            service_with(&rx, Arc::new(pg), n, || backends_cpu(&admin, &url));
        statements.push((commits(&admin, &url) - before) as f64 * 1000.0 / n as f64);
        println!(
            "# round {round}: sqlite {sqlite_rate:.0}/s, postgres {pg_rate:.0}/s, ratio {:.3}",
            pg_rate / sqlite_rate
        );
        sqlite_rates.push(sqlite_rate);
        pg_rates.push(pg_rate);
        ratios.push(pg_rate / sqlite_rate);
        sqlite_cpus.push(sqlite_cpu);
        pg_cpus.push(pg_cpu);
        server_cpus.push(server_cpu);
    }
    let (sqlite_rate, pg_rate, ratio) = (
        median(&mut sqlite_rates),
        median(&mut pg_rates),
        median(&mut ratios),
    );

    figure("http_ceiling_w8", http, "posts/s");
    figure("sqlite_service_w8", sqlite_rate, "notifications/s");
    figure("postgres_service_w8", pg_rate, "notifications/s");
    figure("ratio_postgres_to_sqlite", ratio, "ratio");
    figure("ratio_postgres_to_ceiling", pg_rate / http, "ratio");
    figure(
        "postgres_insert",
        median(&mut insert_rates),
        "notifications/s",
    );
    figure(
        "postgres_round_trips_per_1000",
        median(&mut statements),
        "statements",
    );
    figure(
        "sqlite_client_cpu_per_delivery",
        median(&mut sqlite_cpus) * 1e6,
        "us",
    );
    figure(
        "postgres_client_cpu_per_delivery",
        median(&mut pg_cpus) * 1e6,
        "us",
    );
    figure(
        "postgres_server_cpu_per_delivery",
        median(&mut server_cpus) * 1e6,
        "us",
    );
    check(
        "postgres>=0.5*sqlite",
        ratio >= 0.5,
        &format!("{ratio:.3}, median of {rounds} paired rounds"),
    );

    let one = instances(&rx, &admin, 1, n);
    figure("instances_1", one, "notifications/s");
    for k in [2, 3] {
        let rate = instances(&rx, &admin, k, n);
        figure(&format!("instances_{k}"), rate, "notifications/s");
        figure(&format!("ratio_instances_{k}_to_1"), rate / one, "ratio");
    }
    println!(
        "# on a 2-core machine, more instances share the same cores: the ratios are bounded by them"
    );
}
