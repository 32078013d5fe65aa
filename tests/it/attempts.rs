//! The attempt log end to end: tries classified by the webhook, written by the real binary's
//! `serve`, shown by `show --attempts [--json]` and by the read API under its token; on each
//! backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clair_notifier::api::{Api, Request};
use clair_notifier::attempt::AttemptClass;
use clair_notifier::{ApiConfig, Datastore, Delivery, HttpConfig, Notifier};
use clair_notifier::{Timestamp, Webhook};

use crate::cli::run_in;
use crate::common::backends::{TestDb, on_every_backend};
use crate::common::rawhttp::{RawServer, response};
use crate::common::{Silent, sample, wait_for};
use crate::operate::{spawn_serve, stop_on};

on_every_backend!(
    every_try_is_shown_by_show_attempts_and_the_api,
    a_panic_is_logged_as_one,
    the_collector_deletes_attempts_past_retention_attempts,
);

fn send_once(endpoint: &str) -> clair_notifier::SendError {
    let http = HttpConfig {
        endpoint: endpoint.to_string(),
        timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    };
    let webhook = Webhook::from_config(&http).unwrap().unwrap();
    let delivery = Delivery {
        name: "6e4ad270-4957-4242-b5ad-dad851379573".into(),
        created: Timestamp::now(),
        notified: None,
        attempt: 1,
    };
    webhook.send(&delivery).unwrap_err()
}

#[test]
fn the_webhook_classifies_its_failures() {
    let busy = RawServer::http(|_| response(503, &[], b"overloaded, try later"));
    let e = send_once(&busy.http_url("/hook"));
    assert_eq!((e.class(), e.status()), (AttemptClass::Status, Some(503)));
    assert_eq!(e.body(), Some("overloaded, try later"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    assert_eq!(send_once(&url).class(), AttemptClass::Connect);

    let silent = Silent::start();
    assert_eq!(send_once(&silent.url()).class(), AttemptClass::Timeout);
}

fn every_try_is_shown_by_show_attempts_and_the_api(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two busy answers, then success.
    let answered = Arc::new(AtomicUsize::new(0));
    let n = answered.clone();
    let receiver = RawServer::http(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            response(503, &[], b"overloaded, try later")
        } else {
            response(200, &[], b"")
        }
    });
    crate::operate::write_config(d, &db, &receiver.http_url("/hook"));
    let store = db.open();
    let name = store
        .insert(&[sample("CVE-1", 1)], Timestamp::now())
        .unwrap()[0]
        .clone();
    let serve = spawn_serve(d);
    wait_for("the delivery", Duration::from_secs(30), || {
        store.summary(&name).unwrap().unwrap().notified.is_some()
    });
    stop_on(&db, serve, d);

    let cfg = ["--config", "serve.toml"];
    let table = run_in(
        d,
        &[&cfg[..], &["show", &name, "--attempts"]].concat(),
        None,
    )
    .ok();
    let lines: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(lines.len(), 3, "{table:?}");
    for busy in &lines[..2] {
        assert_eq!(busy[1..4], ["webhook", "status", "503"], "{table:?}");
        assert_eq!(busy[6], "overloaded, try later", "{table:?}");
    }
    assert_eq!(lines[2][1..4], ["webhook", "ok", "-"], "{table:?}");

    let json = run_in(
        d,
        &[&cfg[..], &["show", &name, "--attempts", "--json"]].concat(),
        None,
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["Name"], name.as_str());
    let outcomes: Vec<&str> = v["Attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["status", "status", "ok"]);
    assert!(v["Attempts"][0]["NextDue"].as_i64() > v["Attempts"][0]["Started"].as_i64());

    // The route answers the same document, under the notification routes' token rule.
    let config = ApiConfig {
        token: "s3cret".into(),
        ..ApiConfig::default()
    };
    let api = Api::new(&config, store.clone()).unwrap();
    let url = format!("/v1/notifications/{name}/attempts");
    assert_eq!(api.handle(&Request::new("GET", &url)).status, 401);
    let ok = api.handle(&Request::new("GET", &url).bearer("s3cret"));
    assert_eq!((ok.status, ok.body), (200, json.stdout.into_bytes()));
    let unknown = Request::new("GET", "/v1/notifications/nope/attempts").bearer("s3cret");
    assert_eq!(api.handle(&unknown).status, 404);
    assert_eq!(
        api.handle(&Request::new("DELETE", &url).bearer("s3cret"))
            .status,
        405
    );

    run_in(
        d,
        &[&cfg[..], &["show", "nope", "--attempts"]].concat(),
        None,
    )
    .fails(1, "there is no notification named \"nope\"");
    run_in(d, &[&cfg[..], &["show", &name, "--json"]].concat(), None)
        .fails(2, "--json only with --attempts");
    run_in(
        d,
        &[&cfg[..], &["show", &name, "--attempts", "--limit", "3"]].concat(),
        None,
    )
    .fails(2, "takes no --limit");
}

/// A notifier that panics on its first call and succeeds after.
struct PanicsOnce(AtomicUsize);

impl Notifier for PanicsOnce {
    fn configure(&mut self, _: &clair_notifier::NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }
    fn send(&self, d: &Delivery) -> Result<(), clair_notifier::SendError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom on {}", d.name);
        }
        Ok(())
    }
}

/// A service over `db` whose one notifier, "custom", panics once and then succeeds, with
/// `clock` and `retention`; one notification inserted and delivered after the panic.
fn panic_then_delivery(
    db: &TestDb,
    clock: &crate::common::OffsetClock,
    retention: clair_notifier::config::RetentionConfig,
) -> (Arc<dyn Datastore>, clair_notifier::Handle, String) {
    let store = db.open();
    let mut registry = clair_notifier::Registry::new();
    registry.register("custom", PanicsOnce(AtomicUsize::new(0)));
    let config = clair_notifier::NotifierConfig {
        max_backoff: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let handle = clair_notifier::Service::new(config, store.clone())
        .registry(registry)
        .clock(clock.clock())
        .retention(retention)
        .start()
        .unwrap();
    let name = store.insert(&[sample("CVE-1", 0)], clock.now()).unwrap()[0].clone();
    wait_for(
        "the delivery after the panic",
        Duration::from_secs(30),
        || store.summary(&name).unwrap().unwrap().notified.is_some(),
    );
    (store, handle, name)
}

fn a_panic_is_logged_as_one(db: TestDb) {
    let clock = crate::common::OffsetClock::default();
    let (store, handle, name) = panic_then_delivery(&db, &clock, Default::default());
    handle.stop();
    let log = store.attempts(&name).unwrap().unwrap();
    let classes: Vec<AttemptClass> = log.iter().map(|a| a.class).collect();
    assert_eq!(classes, [AttemptClass::Panic, AttemptClass::Ok]);
    assert_eq!(log[0].notifier, "custom");
    assert_eq!(
        log[0].excerpt.as_deref(),
        Some(format!("boom on {name}").as_str())
    );
    assert!(log[0].next_due.unwrap() <= log[1].started);
}

fn the_collector_deletes_attempts_past_retention_attempts(db: TestDb) {
    let clock = crate::common::OffsetClock::default();
    let retention = clair_notifier::config::RetentionConfig {
        read: Duration::ZERO,
        attempts: Duration::from_secs(3600),
    };
    let (store, handle, name) = panic_then_delivery(&db, &clock, retention);
    assert_eq!(store.attempts(&name).unwrap().unwrap().len(), 2);
    clock.advance(Duration::from_secs(2 * 3600));
    wait_for("the failed try deleted", Duration::from_secs(30), || {
        store.attempts(&name).unwrap().unwrap().len() == 1
    });
    let left = store.attempts(&name).unwrap().unwrap();
    assert_eq!(left[0].class, AttemptClass::Ok, "the last success stays");
    handle.stop();
}

#[test]
fn check_config_says_how_long_attempts_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hook = "[notifier.http]\nendpoint = \"http://127.0.0.1:9/hook\"";
    for (keep, said) in [
        (
            "\"2d\"",
            "attempt-log rows deleted 2d after they were written",
        ),
        ("\"0\"", "attempt-log rows kept with their notification"),
    ] {
        let body = format!("[retention]\nattempts = {keep}\n{hook}\n");
        std::fs::write(d.join("c.toml"), body).unwrap();
        let r = run_in(d, &["--config", "c.toml", "check-config"], None).ok();
        assert!(r.stdout.contains(said), "{r:?}");
    }
}
