//! `/health` and `clair_notifier_up` tell the truth: a service whose scanner or a worker died
//! is unhealthy although nobody asked it to stop; a service with no endpoint is healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clair_notifier::api::{Server, ServiceView};
use clair_notifier::service::ServiceState;
use clair_notifier::{
    ApiConfig, Clock, Datastore, Delivery, Notifier, NotifierConfig, Registry, SendError, Service,
    Timestamp,
};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::{sample, wait_for};

/// A notifier that succeeds at once.
struct Ok0;

impl Notifier for Ok0 {
    fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }
    fn send(&self, _: &Delivery) -> Result<(), SendError> {
        Ok(())
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("ok", Ok0);
    r
}

fn loopback() -> ApiConfig {
    ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    }
}

/// Status and body of `GET http://{addr}{path}`.
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut r = agent.get(format!("http://{addr}{path}")).call().unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap())
}

on_every_backend!(
    a_scanner_killed_by_a_panicking_store_makes_health_answer_503,
    a_worker_that_died_makes_the_service_unhealthy,
);

fn a_scanner_killed_by_a_panicking_store_makes_health_answer_503(db: TestDb) {
    let store = db.recording();
    let handle = Service::new(NotifierConfig::default(), store.clone())
        .registry(registry())
        .start()
        .unwrap();
    let server = Server::start(&loopback(), store.clone(), Some(ServiceView::of(&handle))).unwrap();
    let (status, body) = get(server.addr(), "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "{\"Status\":\"ok\",\"Notifier\":\"running\",\"Store\":\"ok\"}\n"
        )
    );
    assert!(
        get(server.addr(), "/metrics")
            .1
            .contains("\nclair_notifier_up 1\n")
    );

    store.panic_on_claim.store(true, Ordering::SeqCst);
    // The insert wakes the scanner, whose claim panics.
    store
        .insert(&[sample("CVE-1", 0)], Timestamp::now())
        .unwrap();
    wait_for("the scanner to die", Duration::from_secs(20), || {
        handle.liveness().state() == ServiceState::Failed
    });
    assert!(!handle.is_running());
    assert!(!handle.stopper().is_stopped(), "nobody asked for a stop");
    let (status, body) = get(server.addr(), "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "{\"Status\":\"unavailable\",\"Notifier\":\"failed\",\"Store\":\"ok\"}\n"
        )
    );
    let (status, metrics) = get(server.addr(), "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\nclair_notifier_up 0\n"), "{metrics}");
    server.stop();
    handle.stop();
}

fn a_worker_that_died_makes_the_service_unhealthy(db: TestDb) {
    let store = db.recording();
    // Workers read the clock after each send: the first worker to do so panics, outside the
    // guard that catches a notifier's panics.
    let armed = Arc::new(AtomicBool::new(true));
    let trap = Arc::clone(&armed);
    let clock = Clock::from_fn(move || {
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("notify-worker-"));
        if on_worker && trap.swap(false, Ordering::SeqCst) {
            panic!("a clock that panics once on a worker");
        }
        Timestamp::now()
    });
    let handle = Service::new(NotifierConfig::default(), store.clone())
        .registry(registry())
        .clock(clock)
        .start()
        .unwrap();
    let view = ServiceView::of(&handle);
    let server = Server::start(&loopback(), store.clone(), Some(view)).unwrap();
    store
        .insert(&[sample("CVE-1", 0), sample("CVE-2", 0)], Timestamp::now())
        .unwrap();
    wait_for("a worker to die", Duration::from_secs(20), || {
        !armed.load(Ordering::SeqCst) && handle.liveness().state() == ServiceState::Failed
    });
    let (status, body) = get(server.addr(), "/health");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"Notifier\":\"failed\""), "{body}");
    assert!(
        get(server.addr(), "/metrics")
            .1
            .contains("\nclair_notifier_up 0\n")
    );
    // Once stopped, it says so rather than "failed".
    handle.stop();
    let (status, body) = get(server.addr(), "/health");
    assert_eq!(status, 503);
    assert!(body.contains("\"Notifier\":\"stopped\""), "{body}");
    server.stop();
}

/// The binary with no endpoint: `/health` answers 200 with its fields in the README's order,
/// and `clair_notifier_up` agrees with it.
#[cfg(feature = "cli")]
#[test]
fn with_no_endpoint_health_is_ok_in_the_documented_order_and_up_is_1() {
    use crate::common::bin::{log_tail, sigterm, spawn_serve, wait_exit};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("serve.toml"),
        "[database]\npath = \"n.db\"\n[api]\naddr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = spawn_serve(d);
    let mut addr = None;
    wait_for("serve to log its address", Duration::from_secs(20), || {
        let log = std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();
        addr = log
            .lines()
            .find_map(|l| l.split("read API listening on http://").nth(1))
            .map(|a| a.trim().parse::<std::net::SocketAddr>().unwrap());
        addr.is_some()
    });
    let addr = addr.unwrap();
    let (status, body) = get(addr, "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "{\"Status\":\"ok\",\"Notifier\":\"disabled\",\"Store\":\"ok\"}\n"
        ),
        "{}",
        log_tail(d, 20)
    );
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\nclair_notifier_up 1\n"), "{metrics}");
    sigterm(&child);
    let exit = wait_exit(&mut child, Duration::from_secs(20), d);
    assert_eq!(exit.code(), Some(0), "{}", log_tail(d, 20));
}
