//! The read API over loopback: GET of a page (limit 100) of a notification with 100,000
//! layers, on page 1 and on page 1,000, and DELETE; p50 and requests/s with a few keep-alive
//! clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clair_notifier::api::{PageKey, Server};
use clair_notifier::{ApiConfig, Datastore, PageCursor, SqliteStore, Timestamp};
use common::*;

const CLIENTS: usize = 4;

/// `total` requests made by `CLIENTS` threads; returns (p50, requests/s).
fn load(total: usize, request: impl Fn(&ureq::Agent, usize) + Sync) -> (Duration, f64) {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut all: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .proxy(None)
                        .build()
                        .into();
                    let mut took = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return took;
                        }
                        let t = Instant::now();
                        request(&agent, i);
                        took.push(t.elapsed());
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let rate = total as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (percentile(&all, 0.5), rate)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("# read API: {}, {CLIENTS} keep-alive clients", machine());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("api.db")).unwrap());
    let mut big = notification(0, 0);
    big.new.as_mut().unwrap().layers = (0..100_000).map(|l| format!("sha256:{l:064x}")).collect();
    let name = store.insert(&[big], Timestamp::now()).unwrap().remove(0);
    let config = ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    };
    let server = Server::start(&config, store.clone(), None).unwrap();
    let base = format!("http://{}", server.addr());
    let key = PageKey::resolve(&config, store.as_ref()).unwrap();

    let mut p50s = Vec::new();
    for (label, start_at) in [("page_1", 0i64), ("page_1000", 99_900)] {
        let token = key.seal(
            &name,
            PageCursor {
                old: -1,
                new: start_at,
            },
        );
        let url = format!("{base}/v1/notifications/{name}?limit=100&page={token}");
        let first = format!("sha256:{start_at:064x}");
        let (p50, rate) = load(4_000, |agent, _| {
            let mut r = agent.get(&url).call().unwrap();
            assert_eq!(r.status(), 200);
            let body = r.body_mut().read_to_string().unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let layers = v["Notification"]["New"]["LayersIntroducingVulnerability"]
                .as_array()
                .unwrap();
            assert_eq!(layers.len(), 100);
            assert_eq!(layers[0], first.as_str(), "the right page");
        });
        figure(&format!("get_{label}_p50"), p50.as_secs_f64() * 1e3, "ms");
        figure(&format!("get_{label}_rate"), rate, "requests/s");
        p50s.push(p50.as_secs_f64());
    }
    let ratio = p50s[1] / p50s[0];
    figure("ratio_page_1000_to_page_1_p50", ratio, "ratio");
    check(
        "page_1000_costs_as_page_1",
        (0.75..=1.33).contains(&ratio),
        &format!("{ratio:.3}"),
    );

    let names = store
        .insert(
            &(0..2_000).map(|i| notification(i, 0)).collect::<Vec<_>>(),
            Timestamp::now(),
        )
        .unwrap();
    let (p50, rate) = load(names.len(), |agent, i| {
        let r = agent
            .delete(&format!("{base}/v1/notifications/{}", names[i]))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    assert_eq!(store.counts(Timestamp::now()).unwrap().read, 2_000);
    figure("delete_p50", p50.as_secs_f64() * 1e3, "ms");
    figure("delete_rate", rate, "requests/s");
    server.stop();
}
