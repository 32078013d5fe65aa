//! `demo`: the whole loop on one host, with no configuration.
//!
//! A database in a temporary directory; the notifier service; the read API on 127.0.0.1 (a
//! free port, so it never clashes with a running `serve`); a built-in receiver that behaves
//! like a real Clair v1 consumer: it answers each webhook at once, then a consumer thread
//! reads every page of the notification through the read API, checks every layer against
//! what was inserted, and marks it read with DELETE. Progress goes to stderr, the summary to
//! stdout.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clair_notifier::api::{Server, ServiceView};
use clair_notifier::service::Metrics;
use clair_notifier::{
    ApiConfig, Datastore, NotifierConfig, Registry, Service, SqliteStore, Timestamp,
};
use crossbeam_channel::{Receiver, Sender, bounded};

use crate::CliError;
use crate::sample::{self, Rng};
use crate::serve::signal_stopper;

/// Layers per side asked for on each page.
const PAGE_LIMIT: u32 = 100;
/// The demo gives up after this long.
const DEADLINE: Duration = Duration::from_secs(300);
const CONSUMERS: usize = 4;
const BATCH: usize = 100;

/// What the consumer read of one notification.
struct Read {
    name: String,
    old_layers: Vec<String>,
    new_layers: Vec<String>,
    pages: u64,
    read_at: Timestamp,
}

#[derive(Default)]
struct Tally {
    webhooks: AtomicU64,
    read: AtomicUsize,
    reads: Mutex<Vec<Read>>,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 20 {
            errors.push(e);
        }
    }
    fn error_count(&self) -> usize {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

pub fn run(count: usize) -> Result<(), CliError> {
    let stopper = signal_stopper()?;
    let dir = tempfile::Builder::new()
        .prefix("clair-notifier-demo-")
        .tempdir()
        .map_err(|e| CliError::runtime(format!("could not make a temporary directory: {e}")))?;
    let db = dir.path().join("notifications.db");
    let store = Arc::new(SqliteStore::open(&db)?);
    let tally = Arc::new(Tally::default());

    // The receiver's webhook endpoint, and its consumers.
    let (names_tx, names_rx) = bounded::<String>(count.max(16));
    let receiver = WebhookReceiver::start(names_tx, Arc::clone(&tally))?;

    let mut config = NotifierConfig::default();
    config.http.endpoint = format!("http://{}/hook", receiver.addr);
    let handle = Service::new(config, store.clone())
        .registry(Registry::with_builtins())
        .stopper(stopper.clone())
        .start()?;
    let metrics = handle.metrics();
    let api_config = ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    };
    let api = Server::start(&api_config, store.clone(), Some(ServiceView::of(&handle)))?;
    let api_url = format!("http://{}", api.addr());
    let consumers: Vec<JoinHandle<()>> = (0..CONSUMERS)
        .map(|i| {
            let (rx, tally, url) = (names_rx.clone(), Arc::clone(&tally), api_url.clone());
            std::thread::Builder::new()
                .name(format!("demo-consumer-{i}"))
                .spawn(move || consume(&rx, &tally, &url))
                .map_err(|e| CliError::runtime(format!("could not start a thread: {e}")))
        })
        .collect::<Result<_, _>>()?;
    drop(names_rx);

    eprintln!(
        "demo: database {}, read API {api_url}, receiver http://{}/hook",
        db.display(),
        receiver.addr
    );
    let started = Instant::now();
    let mut expected: HashMap<String, (usize, usize)> = HashMap::with_capacity(count);
    let mut rng = Rng::with_seed(0x5eed_c1a1);
    let mut layers_inserted = 0usize;
    let mut made = 0;
    while made < count && !stopper.is_stopped() {
        let n = BATCH.min(count - made);
        let batch: Vec<_> = (made..made + n)
            .map(|i| sample::notification(&mut rng, i))
            .collect();
        let names = store.insert(&batch, Timestamp::now())?;
        for (name, n) in names.into_iter().zip(&batch) {
            let old = n.old.as_ref().map_or(0, |v| v.layers.len());
            let new = n.new.as_ref().map_or(0, |v| v.layers.len());
            layers_inserted += old + new;
            expected.insert(name, (old, new));
        }
        made += n;
    }

    let outcome = watch(count, &tally, &metrics, started, &stopper);
    let elapsed = started.elapsed();
    handle.stop();
    api.stop();
    drop(receiver);
    for c in consumers {
        let _ = c.join();
    }
    outcome?;

    // Check every layer read against what was inserted.
    let reads = std::mem::take(&mut *tally.reads.lock().unwrap_or_else(|e| e.into_inner()));
    let mut latencies = Vec::with_capacity(reads.len());
    let (mut pages, mut layers_read, mut mismatches) = (0, 0, 0);
    for r in &reads {
        pages += r.pages;
        layers_read += r.old_layers.len() + r.new_layers.len();
        let want = expected.get(&r.name).copied();
        let distinct = |v: &Vec<String>| {
            let mut s = v.clone();
            s.sort();
            s.dedup();
            s.len() == v.len()
        };
        if want != Some((r.old_layers.len(), r.new_layers.len()))
            || !distinct(&r.old_layers)
            || !distinct(&r.new_layers)
        {
            mismatches += 1;
        }
        if let Some(s) = store.summary(&r.name)? {
            latencies.push(r.read_at.since(s.created).as_millis() as u64);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    let counts = store.counts(Timestamp::now())?;
    let webhooks = tally.webhooks.load(Ordering::Relaxed);
    let (_, sent, sent_sum) = metrics.latency_ms().snapshot();
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "demo: {} notifications delivered, read and marked read in {:.2}s ({:.0}/s)",
        reads.len(),
        secs,
        reads.len() as f64 / secs
    )?;
    writeln!(
        out,
        "  webhooks   {webhooks} received for {count} notifications"
    )?;
    writeln!(
        out,
        "  pages      {pages} read with limit={PAGE_LIMIT}: {layers_read} of {layers_inserted} layers, {}",
        if mismatches == 0 {
            "every one as inserted".to_string()
        } else {
            format!("{mismatches} notifications did NOT match")
        }
    )?;
    writeln!(
        out,
        "  latency    insert to read: p50 {}ms, p99 {}ms, max {}ms; insert to webhook: mean {}ms",
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0),
        sent_sum.checked_div(sent).unwrap_or(0)
    )?;
    writeln!(
        out,
        "  database   pending {}, notified {}, failing {}, read {}",
        counts.pending, counts.notified, counts.failing, counts.read
    )?;
    drop(out);
    if mismatches > 0 || reads.len() != count || counts.read != count as u64 {
        return Err(CliError::runtime(format!(
            "the demo's receiver did not read every notification as inserted ({} read, {mismatches} mismatched)",
            reads.len()
        )));
    }
    Ok(())
}

/// Shows progress until every notification is read; fails on a consumer error, a stop
/// signal or the deadline.
fn watch(
    count: usize,
    tally: &Tally,
    metrics: &Metrics,
    started: Instant,
    stopper: &clair_notifier::Stopper,
) -> Result<(), CliError> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let line = || {
        let read = tally.read.load(Ordering::Relaxed);
        let delivered = metrics.rounds_ok();
        let rate = read as f64 / started.elapsed().as_secs_f64().max(0.001);
        format!("delivered {delivered:>6}/{count}   read {read:>6}/{count}   {rate:>7.0}/s")
    };
    let result = loop {
        let read = tally.read.load(Ordering::Relaxed);
        if read >= count {
            break Ok(());
        }
        if tally.error_count() > 0 {
            let first = tally.errors.lock().unwrap_or_else(|e| e.into_inner())[0].clone();
            break Err(CliError::runtime(format!(
                "the demo's receiver failed: {first}"
            )));
        }
        if started.elapsed() > DEADLINE {
            break Err(CliError::runtime(format!(
                "the demo did not finish within {}s ({read} of {count} read)",
                DEADLINE.as_secs()
            )));
        }
        if terminal {
            eprint!("\r\x1b[2K{}", line());
        } else if last_line.elapsed() >= Duration::from_secs(1) {
            eprintln!("{}", line());
            last_line = Instant::now();
        }
        if !stopper.sleep(Duration::from_millis(100)) {
            break Err(CliError::runtime("the demo was interrupted"));
        }
    };
    if terminal {
        eprintln!("\r\x1b[2K{}", line());
    } else {
        eprintln!("{}", line());
    }
    result
}

/// The consumer: for each webhook, every page through the read API, then DELETE.
fn consume(names: &Receiver<String>, tally: &Tally, api: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .max_redirects(0)
        .build()
        .into();
    for name in names {
        match read_all(&agent, api, &name) {
            Ok(mut r) => {
                let url = format!("{api}/v1/notifications/{name}");
                match agent.delete(&url).call() {
                    Ok(resp) if resp.status() == 200 => {
                        r.read_at = Timestamp::now();
                        tally
                            .reads
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(r);
                        tally.read.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => tally.error(format!("DELETE {url}: status {}", resp.status())),
                    Err(e) => tally.error(format!("DELETE {url}: {e}")),
                }
            }
            Err(e) => tally.error(e),
        }
    }
}

fn read_all(agent: &ureq::Agent, api: &str, name: &str) -> Result<Read, String> {
    let mut r = Read {
        name: name.to_string(),
        old_layers: Vec::new(),
        new_layers: Vec::new(),
        pages: 0,
        read_at: Timestamp::now(),
    };
    let mut page: Option<String> = None;
    loop {
        let mut url = format!("{api}/v1/notifications/{name}?limit={PAGE_LIMIT}");
        if let Some(p) = &page {
            url.push_str("&page=");
            url.push_str(p);
        }
        let mut resp = agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))?;
        let n = &v["Notification"];
        for (side, into) in [("Old", &mut r.old_layers), ("New", &mut r.new_layers)] {
            if let Some(layers) = n[side]["LayersIntroducingVulnerability"].as_array() {
                into.extend(layers.iter().filter_map(|l| l.as_str().map(str::to_string)));
            }
        }
        r.pages += 1;
        match n["NextPage"].as_str() {
            Some(next) if r.pages < 10_000 => page = Some(next.to_string()),
            Some(_) => return Err(format!("GET {url}: more than 10000 pages")),
            None => return Ok(r),
        }
    }
}

/// The webhook endpoint: records the name, queues it for a consumer, answers 200 at once
/// (503 if the queue is full, so the notifier retries later).
struct WebhookReceiver {
    addr: std::net::SocketAddr,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

impl WebhookReceiver {
    fn start(names: Sender<String>, tally: Arc<Tally>) -> Result<WebhookReceiver, CliError> {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| CliError::runtime(format!("could not start the demo's receiver: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| CliError::runtime("the demo's receiver has no IP address"))?;
        let server = Arc::new(server);
        let threads = (0..2)
            .map(|_| {
                let (server, names, tally) =
                    (Arc::clone(&server), names.clone(), Arc::clone(&tally));
                std::thread::spawn(move || {
                    while let Ok(mut req) = server.recv() {
                        let mut body = Vec::new();
                        let _ = std::io::Read::read_to_end(
                            &mut std::io::Read::take(req.as_reader(), 4096),
                            &mut body,
                        );
                        let name = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["Notification"]["Name"].as_str().map(str::to_string));
                        let status = match name {
                            Some(name) => {
                                tally.webhooks.fetch_add(1, Ordering::Relaxed);
                                if names.try_send(name).is_ok() {
                                    200
                                } else {
                                    503
                                }
                            }
                            None => 400,
                        };
                        let _ = req.respond(tiny_http::Response::empty(status));
                    }
                })
            })
            .collect();
        Ok(WebhookReceiver {
            addr,
            server,
            threads,
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
