//! The service end to end: real SQLite files, a real loopback receiver, the webhook notifier.

use std::sync::Arc;
use std::time::Duration;

use clair_notifier::{Datastore, NotifierConfig, Service, SqliteStore, State, Timestamp};

use crate::common::receiver::Receiver;
use crate::common::{sample, temp_db, wait_for};

fn webhook_config(url: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.http.endpoint = url.to_string();
    c.http.timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    c
}

fn notified_count(store: &SqliteStore) -> u64 {
    store.counts(Timestamp::now()).unwrap().notified
}

#[test]
fn happy_path_delivers_each_notification_exactly_once() {
    let rx = Receiver::start(4);
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let handle = Service::new(webhook_config(&rx.url()), store.clone())
        .start()
        .unwrap();
    let batch: Vec<_> = (0..500).map(|i| sample(&format!("CVE-{i}"), 3)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("500 notified", Duration::from_secs(30), || {
        notified_count(&store) == 500
    });
    handle.stop();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 500, "each sent once");
    let mut seen: Vec<String> = reqs.iter().map(|r| r.name()).collect();
    seen.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(seen, want);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(
            r.body,
            format!(r#"{{"Notification":{{"Name":"{}"}}}}"#, r.name()).into_bytes()
        );
    }
    let s = store.summary(&names[0]).unwrap().unwrap();
    assert_eq!(s.state(), State::Notified);
}
