//! Shared pieces of the benchmarks: a loopback receiver, stores, figures.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[macro_use]
#[path = "../../tests/support/forward.rs"]
mod forward;

pub mod binary;
pub mod counted;
pub mod nginx;

use clair_notifier::{
    Datastore, Delivery, NewNotification, Notifier, NotifierConfig, Registry, SendError, Service,
    SqliteStore, Timestamp, Vulnerability, VulnerabilityWithLayers,
};

/// A keep-alive HTTP receiver on 127.0.0.1 that answers 200 at once and records the
/// distinct notification names it saw (so a benchmark can check its own result). One thread
/// per connection, request heads parsed with httparse: nothing is shared between connections
/// but the set of names.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub posts: Arc<AtomicU64>,
    names: Arc<Mutex<HashSet<String>>>,
    /// Instant each name was first seen.
    pub first_seen: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
}

impl Receiver {
    pub fn start(_threads: usize, record_times: bool) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(AtomicU64::new(0));
        let names = Arc::new(Mutex::new(HashSet::new()));
        let first_seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let (p, n, f) = (posts.clone(), names.clone(), first_seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (p, n, f) = (p.clone(), n.clone(), f.clone());
                std::thread::spawn(move || serve(conn, &p, &n, &f, record_times));
            }
        });
        Receiver {
            addr,
            posts,
            names,
            first_seen,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn distinct(&self) -> usize {
        self.names.lock().unwrap().len()
    }

    pub fn reset(&self) {
        self.names.lock().unwrap().clear();
        self.first_seen.lock().unwrap().clear();
        self.posts.store(0, Ordering::SeqCst);
    }
}

fn serve(
    mut conn: std::net::TcpStream,
    posts: &AtomicU64,
    names: &Mutex<HashSet<String>>,
    first_seen: &Mutex<std::collections::HashMap<String, Instant>>,
    record_times: bool,
) {
    use std::io::{Read, Write};
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        // Parse a complete request (head and Content-Length body) from buf[..len].
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(head)) => {
                let body_len: usize = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                (head + body_len <= len).then_some((head, body_len))
            }
            Ok(httparse::Status::Partial) => None,
            Err(_) => return,
        };
        match parsed {
            Some((head, body_len)) => {
                let at = Instant::now();
                let body = &buf[head..head + body_len];
                if let Some(name) = std::str::from_utf8(body)
                    .ok()
                    .and_then(|b| b.strip_prefix(r#"{"Notification":{"Name":""#))
                    .and_then(|r| r.strip_suffix(r#""}}"#))
                {
                    if record_times {
                        first_seen
                            .lock()
                            .unwrap()
                            .entry(name.to_string())
                            .or_insert(at);
                    }
                    names.lock().unwrap().insert(name.to_string());
                }
                posts.fetch_add(1, Ordering::Relaxed);
                if conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .is_err()
                {
                    return;
                }
                buf.copy_within(head + body_len..len, 0);
                len -= head + body_len;
            }
            None => {
                if len == buf.len() {
                    return;
                }
                match conn.read(&mut buf[len..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
            }
        }
    }
}

/// The ureq agent of the raw POSTs (the HTTP ceiling): statuses as values, no redirects, no
/// proxy, a pool with room for every thread's connection.
pub fn raw_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .max_idle_connections(256)
        .max_idle_connections_per_host(256)
        .build()
        .into()
}

/// One raw POST of the webhook's body for notification `i`, byte for byte what the webhook
/// sends (a name needs no JSON escaping), its answer read.
pub fn raw_post(agent: &ureq::Agent, url: &str, i: usize) {
    let body = format!(
        r#"{{"Notification":{{"Name":"{:08x}-0000-4000-8000-{i:012x}"}}}}"#,
        i
    );
    let mut r = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .expect("post");
    let _ = r.body_mut().read_to_vec();
}

/// A notification with `layers` layers on each of Old and New (or New only when 0).
pub fn notification(i: usize, layers: usize) -> NewNotification {
    let side = |tag: &str| VulnerabilityWithLayers {
        vulnerability: Vulnerability {
            name: format!("CVE-2024-{i:05}"),
            namespace_name: "debian:12".into(),
            severity: "High".into(),
            description: format!("{tag} description of a vulnerability in openssl"),
            ..Default::default()
        },
        layers: (0..layers)
            .map(|l| format!("sha256:{l:060}{i:04x}"))
            .collect(),
    };
    NewNotification {
        old: (layers > 0).then(|| side("old")),
        new: Some(side("new")),
    }
}

/// Inserts `count` notifications one at a time through `store`, `gap` apart, waits until `rx`
/// (reset before) has seen them all, and returns the latencies from each insert call to the
/// receiver's first sight of its name (sorted), and how long each insert call took.
pub fn insert_to_post(
    rx: &Receiver,
    store: &SqliteStore,
    count: usize,
    gap: Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut sent = Vec::with_capacity(count);
    let mut calls = Vec::with_capacity(count);
    for i in 0..count {
        let at = Instant::now();
        let name = store
            .insert(&[notification(i, 0)], Timestamp::now())
            .unwrap()
            .remove(0);
        calls.push(at.elapsed());
        sent.push((name, at));
        std::thread::sleep(gap);
    }
    wait_until("all seen", Duration::from_secs(120), || {
        rx.distinct() == count
    });
    let seen = rx.first_seen.lock().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .map(|(name, at)| seen[name].saturating_duration_since(*at))
        .collect();
    lat.sort();
    (lat, calls)
}

/// Prints one figure as `name value unit`.
pub fn figure(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.3} {unit}");
}

/// Prints a target check line.
pub fn check(name: &str, ok: bool, detail: &str) {
    println!(
        "target {name} {} ({detail})",
        if ok { "MET" } else { "MISSED" }
    );
}

/// Waits until `cond` or panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The machine, for the record.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("{cpus} cpus, {model}")
}

/// Percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A notifier that returns Ok at once and counts its calls.
pub struct Noop(Arc<AtomicU64>);
impl Noop {
    pub fn new(sent: Arc<AtomicU64>) -> Noop {
        Noop(sent)
    }
}
impl Notifier for Noop {
    fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }
    fn send(&self, _: &Delivery) -> Result<(), SendError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Rate of the service with a no-op notifier over a store holding `n` due notifications.
pub fn noop_rate(store: Arc<SqliteStore>, n: u64, workers: usize) -> f64 {
    noop_rate_at(store, n, workers, Duration::ZERO)
}

/// The same with the service's clock `ahead` of the wall clock (so that notifications
/// delivered by an earlier run are due again: each run is a renotify round).
pub fn noop_rate_at(store: Arc<SqliteStore>, n: u64, workers: usize, ahead: Duration) -> f64 {
    let sent = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::new();
    registry.register("noop", Noop(sent.clone()));
    let config = NotifierConfig {
        workers,
        ..NotifierConfig::default()
    };
    let clock = clair_notifier::Clock::from_fn(move || Timestamp::now().plus(ahead));
    let due = store.counts(clock.now()).unwrap().due;
    assert_eq!(due, n, "noop: {n} due before the run");
    let start = Instant::now();
    let handle = Service::new(config, store.clone())
        .registry(registry)
        .clock(clock.clone())
        .start()
        .unwrap();
    wait_until("all sent", Duration::from_secs(300), || {
        sent.load(Ordering::Relaxed) >= n
    });
    let secs = start.elapsed().as_secs_f64();
    handle.stop();
    // `stop` wrote every outcome before returning: nothing is left due.
    assert_eq!(
        store.counts(clock.now()).unwrap().due,
        0,
        "noop: every outcome recorded"
    );
    assert_eq!(sent.load(Ordering::Relaxed), n, "noop: each sent once");
    n as f64 / secs
}

/// W threads calling the webhook notifier's `send` directly: the HTTP client as the service
/// configures it (timeouts, headers), without store, queue or outcomes.
pub fn webhook_only(rx: &Receiver, workers: usize, n: usize) -> f64 {
    use clair_notifier::{HttpConfig, Webhook};
    rx.reset();
    let http = HttpConfig {
        endpoint: rx.url(),
        ..HttpConfig::default()
    };
    let webhook = Webhook::from_config(&http).unwrap().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (webhook, next) = (&webhook, next.clone());
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        break;
                    }
                    let d = Delivery {
                        name: format!("{i:08x}-0000-4000-8000-{i:012x}"),
                        created: Timestamp::now(),
                        notified: None,
                        attempt: 1,
                    };
                    webhook.send(&d).expect("send");
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rx.distinct(), n, "webhook: receiver saw every name");
    n as f64 / secs
}

/// User + system CPU seconds of the process or thread whose `stat` file is `path`
/// (`/proc/self/stat`, `/proc/PID/stat`, `/proc/self/task/TID/stat`); 0 if it cannot be read.
pub fn stat_cpu(path: impl AsRef<std::path::Path>) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}
