//! The read API over real HTTP on loopback: Clair v1's JSON and status codes, paging, page
//! tokens, limits, the bearer token, /health and /metrics, and the whole receiver loop. What
//! reads or writes the store runs on each backend; the HTTP layer's own checks on SQLite.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use clair_notifier::api::{Api, Request, RunningServer, Server, ServiceView};
use clair_notifier::{
    ApiConfig, Datastore, FixedIn, NewNotification, NotifierConfig, Service, SqliteStore,
    Timestamp, Vulnerability, VulnerabilityWithLayers,
};
use serde_json::Value;

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::receiver::Receiver;
use crate::common::{OffsetClock, sample, temp_db, wait_for};

const JSON: &str = "application/json;charset=utf-8";

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into()
}

fn call(method: &str, url: &str, bearer: Option<&str>) -> Answer {
    let a = agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = a.run(req.body(()).unwrap()).expect(url);
    Answer {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}

fn get(base: &str, path: &str) -> Answer {
    call("GET", &format!("{base}{path}"), None)
}

fn error(message: &str) -> String {
    format!("{{\"Error\":{{\"Message\":\"{message}\"}}}}\n")
}

struct Fixture {
    db: TestDb,
    store: Arc<dyn Datastore>,
    server: RunningServer,
    base: String,
}

/// The API on a new database of `db`'s backend.
fn start_on(db: TestDb, config: ApiConfig) -> Fixture {
    let store = db.open();
    let server = Server::start(&config, store.clone(), None).unwrap();
    let base = format!("http://{}", server.addr());
    Fixture {
        db,
        store,
        server,
        base,
    }
}

fn start_with(config: ApiConfig) -> Fixture {
    start_on(TestDb::sqlite(), config)
}

fn loopback() -> ApiConfig {
    ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    }
}

fn start() -> Fixture {
    start_with(loopback())
}

fn layers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Old with 5 layers, New with 2, every vulnerability field set.
fn rich() -> NewNotification {
    let v = |desc: &str, sev: &str| Vulnerability {
        name: "CVE-2016-TEST1".into(),
        namespace_name: "debian:8".into(),
        description: desc.into(),
        link: "https://security-tracker.debian.org/tracker/CVE-2016-TEST1".into(),
        severity: sev.into(),
        metadata: serde_json::json!({"NVD": {"CVSSv3": {"Score": 7.5}}})
            .as_object()
            .unwrap()
            .clone(),
        fixed_by: "1.0.2".into(),
        fixed_in: vec![FixedIn {
            name: "openssl".into(),
            namespace_name: "debian:8".into(),
            version: "1.0.2".into(),
        }],
    };
    NewNotification {
        old: Some(VulnerabilityWithLayers {
            vulnerability: v("Test vulnerability in openssl", "Medium"),
            layers: layers("old-", 5),
        }),
        new: Some(VulnerabilityWithLayers {
            vulnerability: v("Test vulnerability in openssl (updated)", "High"),
            layers: layers("new-", 2),
        }),
    }
}

on_every_backend!(
    get_answers_clairs_json_byte_for_byte,
    pages_walk_old_and_new_lists_of_different_lengths,
    bad_limits_tokens_and_names_are_clairs_errors,
    delete_marks_read_repeatably_and_the_notification_stays_readable,
    page_tokens_survive_a_restart_and_need_the_same_key,
    health_and_metrics_show_the_service_and_stuck_work,
    a_clair_receiver_reads_every_page_deletes_and_hears_no_more,
);

fn get_answers_clairs_json_byte_for_byte(db: TestDb) {
    let f = start_on(db, loopback());
    let names = f.store.insert(&[rich()], Timestamp::now()).unwrap();
    let name = &names[0];
    let created = f.store.summary(name).unwrap().unwrap().created.as_secs();
    let a = get(&f.base, &format!("/v1/notifications/{name}?limit=2"));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.content_type.as_deref(), Some(JSON));
    let j = a.json();
    let page = j["Notification"]["Page"].as_str().unwrap();
    let next = j["Notification"]["NextPage"].as_str().unwrap();
    for t in [page, next] {
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{t}"
        );
    }
    let vuln = |desc: &str, sev: &str| {
        format!(
            r#"{{"Name":"CVE-2016-TEST1","NamespaceName":"debian:8","Description":"{desc}","Link":"https://security-tracker.debian.org/tracker/CVE-2016-TEST1","Severity":"{sev}","Metadata":{{"NVD":{{"CVSSv3":{{"Score":7.5}}}}}},"FixedBy":"1.0.2","FixedIn":[{{"Name":"openssl","NamespaceName":"debian:8","Version":"1.0.2"}}]}}"#
        )
    };
    let want = format!(
        r#"{{"Notification":{{"Name":"{name}","Created":"{created}","Limit":2,"Page":"{page}","NextPage":"{next}","Old":{{"Vulnerability":{},"LayersIntroducingVulnerability":["old-0","old-1"]}},"New":{{"Vulnerability":{},"LayersIntroducingVulnerability":["new-0","new-1"]}}}}}}"#,
        vuln("Test vulnerability in openssl", "Medium"),
        vuln("Test vulnerability in openssl (updated)", "High"),
    ) + "\n";
    assert_eq!(a.body, want);
}

fn pages_walk_old_and_new_lists_of_different_lengths(db: TestDb) {
    let f = start_on(db, loopback());
    let name = &f.store.insert(&[rich()], Timestamp::now()).unwrap()[0];
    let (mut old, mut new, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/v1/notifications/{name}?limit=2");
        if let Some(t) = &token {
            path += &format!("&page={t}");
        }
        let a = get(&f.base, &path);
        assert_eq!(a.status, 200, "{}", a.body);
        let n = a.json()["Notification"].clone();
        pages += 1;
        if let Some(t) = &token {
            assert_eq!(
                n["Page"].as_str(),
                Some(t.as_str()),
                "Page echoes the token sent"
            );
        }
        // Both sides are shown on every page, even once their layers have run out.
        assert_eq!(n["Old"]["Vulnerability"]["Severity"], "Medium");
        assert_eq!(n["New"]["Vulnerability"]["Severity"], "High");
        for (side, into) in [("Old", &mut old), ("New", &mut new)] {
            let got = n[side]["LayersIntroducingVulnerability"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(got.len() <= 2);
            into.extend(got.into_iter().map(|v| v.as_str().unwrap().to_string()));
        }
        match n.get("NextPage") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(old, layers("old-", 5));
    assert_eq!(new, layers("new-", 2));
}

fn bad_limits_tokens_and_names_are_clairs_errors(db: TestDb) {
    let f = start_on(db, loopback());
    let names = f
        .store
        .insert(&[rich(), sample("CVE-2", 3)], Timestamp::now())
        .unwrap();
    let (a, b) = (&names[0], &names[1]);
    let must = error("must provide limit query parameter");
    // limit is checked before the name is looked up.
    for path in [
        format!("/v1/notifications/{a}"),
        "/v1/notifications/does-not-exist".to_string(),
    ] {
        let r = get(&f.base, &path);
        assert_eq!((r.status, r.body.as_str()), (400, must.as_str()), "{path}");
        assert_eq!(r.content_type.as_deref(), Some(JSON));
    }
    for limit in ["abc", "", "1.5", "0", "-1", "99999999999999999999"] {
        let r = get(&f.base, &format!("/v1/notifications/{a}?limit={limit}"));
        assert_eq!(r.status, 400, "limit={limit}: {}", r.body);
        assert!(
            r.json()["Error"]["Message"]
                .as_str()
                .unwrap()
                .starts_with("invalid limit format: "),
            "{}",
            r.body
        );
    }
    // A huge limit is served as the maximum, and says so.
    let r = get(&f.base, &format!("/v1/notifications/{a}?limit=5000"));
    assert_eq!(r.json()["Notification"]["Limit"], 1000);
    let r = get(&f.base, "/v1/notifications/does-not-exist?limit=2");
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, error("the resource cannot be found").as_str())
    );

    let bad_page = error("invalid page format: invalid or expired pagination token");
    let first = get(&f.base, &format!("/v1/notifications/{a}?limit=1")).json();
    let next = first["Notification"]["NextPage"]
        .as_str()
        .unwrap()
        .to_string();
    let mut flipped = next.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (what, path) in [
        (
            "garbage",
            format!("/v1/notifications/{a}?limit=1&page=garbage"),
        ),
        ("empty", format!("/v1/notifications/{a}?limit=1&page=")),
        (
            "altered",
            format!("/v1/notifications/{a}?limit=1&page={flipped}"),
        ),
        (
            "truncated",
            format!("/v1/notifications/{a}?limit=1&page={}", &next[..20]),
        ),
        (
            "another notification's",
            format!("/v1/notifications/{b}?limit=1&page={next}"),
        ),
    ] {
        let r = get(&f.base, &path);
        assert_eq!(
            (r.status, r.body.as_str()),
            (400, bad_page.as_str()),
            "{what}"
        );
    }
    let ok = get(
        &f.base,
        &format!("/v1/notifications/{a}?limit=1&page={next}"),
    );
    assert_eq!(ok.status, 200);
}

fn delete_marks_read_repeatably_and_the_notification_stays_readable(db: TestDb) {
    let store = db.open();
    let clock = OffsetClock::default();
    let api = Api::new(&loopback(), store.clone())
        .unwrap()
        .clock(clock.clock());
    let server = Server::serve(&loopback(), api, None).unwrap();
    let f = Fixture {
        db,
        store,
        base: format!("http://{}", server.addr()),
        server,
    };
    let name = &f.store.insert(&[sample("CVE-1", 3)], clock.now()).unwrap()[0];
    let url = format!("{}/v1/notifications/{name}", f.base);
    let d = call("DELETE", &url, None);
    assert_eq!((d.status, d.body.as_str()), (200, ""));
    assert_eq!(d.content_type, None);
    let first_read = f.store.summary(name).unwrap().unwrap().read.unwrap();
    let g = get(&f.base, &format!("/v1/notifications/{name}?limit=2"));
    assert_eq!(g.status, 200);
    assert_eq!(
        g.json()["Notification"]["Deleted"],
        first_read.as_secs().to_string()
    );
    clock.advance(Duration::from_secs(2));
    let d = call("DELETE", &url, None);
    assert_eq!(
        (d.status, d.body.as_str()),
        (200, ""),
        "a second DELETE is 200"
    );
    let second_read = f.store.summary(name).unwrap().unwrap().read.unwrap();
    assert!(
        second_read >= first_read.plus(Duration::from_secs(2)),
        "the read time moves with the API's clock: {first_read:?} then {second_read:?}"
    );
    let d = call(
        "DELETE",
        &format!("{}/v1/notifications/does-not-exist", f.base),
        None,
    );
    assert_eq!(
        (d.status, d.body.as_str()),
        (404, error("the resource cannot be found").as_str())
    );
}

#[test]
fn wrong_methods_and_routes_are_405_and_404() {
    let f = start();
    let r = call("POST", &format!("{}/v1/notifications/x", f.base), None);
    assert_eq!(r.status, 405);
    assert_eq!(r.body, error("method not allowed"));
    for path in [
        "/v1/notifications",
        "/v1/notifications/",
        "/v1/notifications/a/b",
        "/nope",
    ] {
        let r = get(&f.base, &format!("{path}?limit=2"));
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["Error"]["Message"].is_string());
    }
}

/// Writes `head` and `body` on a fresh connection and returns the status code.
fn raw(f: &Fixture, head: &str, body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(f.server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the status line (the server may close without reading the whole body).
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer).to_string();
    line.split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap()
}

#[test]
fn oversized_requests_are_refused() {
    let f = start();
    let big = vec![b'x'; 100 * 1024];
    let head = format!(
        "DELETE /v1/notifications/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    assert_eq!(raw(&f, &head, &big), 413);
    let head = format!(
        "GET /v1/notifications/{}?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "n".repeat(10 * 1024)
    );
    assert_eq!(raw(&f, &head, b""), 414);
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    assert_eq!(raw(&f, &head, b""), 431);
    // The server still answers afterwards.
    assert_eq!(get(&f.base, "/health").status, 200);
}

#[test]
fn the_bearer_token_guards_get_and_delete_only() {
    let f = start_with(ApiConfig {
        token: "s3cret-token".into(),
        ..loopback()
    });
    let name = &f
        .store
        .insert(&[sample("CVE-1", 1)], Timestamp::now())
        .unwrap()[0];
    let url = format!("{}/v1/notifications/{name}?limit=1", f.base);
    for bearer in [
        None,
        Some("wrong"),
        Some("s3cret-token-but-longer"),
        Some(""),
    ] {
        let r = call("GET", &url, bearer);
        assert_eq!(r.status, 401, "{bearer:?}");
        assert_eq!(r.body, error("missing or invalid bearer token"));
        assert_eq!(call("DELETE", &url, bearer).status, 401);
    }
    assert_eq!(call("GET", &url, Some("s3cret-token")).status, 200);
    assert_eq!(get(&f.base, "/health").status, 200);
    assert_eq!(get(&f.base, "/metrics").status, 200);
    assert!(f.store.summary(name).unwrap().unwrap().read.is_none());
}

fn page_tokens_survive_a_restart_and_need_the_same_key(db: TestDb) {
    let f = start_on(db, loopback());
    let name = f.store.insert(&[rich()], Timestamp::now()).unwrap()[0].clone();
    let next = get(&f.base, &format!("/v1/notifications/{name}?limit=1")).json()["Notification"]
        ["NextPage"]
        .as_str()
        .unwrap()
        .to_string();
    let Fixture { db, server, .. } = f;
    server.stop();
    // A new process on the same database: the generated key was kept in it.
    let store = db.open();
    let again = Server::start(&loopback(), store.clone(), None).unwrap();
    let r = get(
        &format!("http://{}", again.addr()),
        &format!("/v1/notifications/{name}?limit=1&page={next}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    again.stop();
    // A configured key that differs refuses it.
    let keyed = Server::start(
        &ApiConfig {
            pagination_key: clair_notifier::api::PageKey::generate().unwrap(),
            ..loopback()
        },
        store,
        None,
    )
    .unwrap();
    let r = get(
        &format!("http://{}", keyed.addr()),
        &format!("/v1/notifications/{name}?limit=1&page={next}"),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn routes_are_pure_functions_too() {
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let api = Api::new(&ApiConfig::default(), store.clone()).unwrap();
    let name = &store
        .insert(&[sample("CVE-1", 1)], Timestamp::now())
        .unwrap()[0];
    let r = api.handle(&Request::new(
        "GET",
        &format!("/v1/notifications/{name}?limit=10"),
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, Some(JSON));
    let r = api.handle(&Request::new("PUT", "/metrics"));
    assert_eq!(r.status, 405);
    assert_eq!(r.headers, vec![("Allow", "GET".to_string())]);
}

fn fast_webhook(url: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.http.endpoint = url.to_string();
    c.http.timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    c.renotify_interval = Duration::from_millis(400);
    c.attempts = 1;
    c
}

fn health_and_metrics_show_the_service_and_stuck_work(db: TestDb) {
    let rx = Receiver::start(2);
    rx.set_status(500);
    let store = db.open();
    let handle = Service::new(fast_webhook(&rx.url()), store.clone())
        .start()
        .unwrap();
    let server = Server::start(&loopback(), store.clone(), Some(ServiceView::of(&handle))).unwrap();
    let base = format!("http://{}", server.addr());
    store
        .insert(&[sample("CVE-1", 1)], Timestamp::now())
        .unwrap();
    wait_for("a failed send", Duration::from_secs(10), || rx.count() >= 1);
    wait_for("failing in the store", Duration::from_secs(10), || {
        store.counts(Timestamp::now()).unwrap().failing == 1
    });
    let h = get(&base, "/health");
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.json()["Notifier"], "running");
    let m = get(&base, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.content_type
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for line in [
        "# TYPE clair_notifier_latency_milliseconds histogram",
        "clair_notifier_notifications{state=\"failing\"} 1",
        "clair_notifier_up 1",
    ] {
        assert!(m.body.contains(line), "{line} missing in\n{}", m.body);
    }
    let failed: u64 = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("clair_notifier_backend_errors_total{backend=\"webhook\"} "))
        .expect("backend errors")
        .parse()
        .unwrap();
    assert!(failed >= 1);
    assert!(
        m.body
            .contains("clair_notifier_sends_total{notifier=\"webhook\",outcome=\"error\"}")
    );
    assert!(m.body.contains("clair_notifier_oldest_due_age_seconds "));
    handle.stop();
    let h = get(&base, "/health");
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["Notifier"], "stopped");
}

fn a_clair_receiver_reads_every_page_deletes_and_hears_no_more(db: TestDb) {
    let rx = Receiver::start(2);
    let store = db.open();
    let handle = Service::new(fast_webhook(&rx.url()), store.clone())
        .start()
        .unwrap();
    let server = Server::start(&loopback(), store.clone(), Some(ServiceView::of(&handle))).unwrap();
    let base = format!("http://{}", server.addr());
    let names = store
        .insert(&[rich(), sample("CVE-kept-unread", 1)], Timestamp::now())
        .unwrap();
    let (read, unread) = (&names[0], &names[1]);
    wait_for("both webhooks", Duration::from_secs(10), || {
        rx.count_for(read) >= 1 && rx.count_for(unread) >= 1
    });
    // The receiver's loop: every page, then DELETE.
    let mut token: Option<String> = None;
    let mut layers = 0;
    loop {
        let mut p = format!("/v1/notifications/{read}?limit=2");
        if let Some(t) = &token {
            p += &format!("&page={t}");
        }
        let n = get(&base, &p).json()["Notification"].clone();
        for side in ["Old", "New"] {
            layers += n[side]["LayersIntroducingVulnerability"]
                .as_array()
                .map_or(0, Vec::len);
        }
        match n["NextPage"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(layers, 7);
    let d = call("DELETE", &format!("{base}/v1/notifications/{read}"), None);
    assert_eq!(d.status, 200);
    let after = rx.count_for(read);
    // The unread one is sent again after renotify_interval; the read one never is.
    wait_for(
        "a renotify of the unread one",
        Duration::from_secs(10),
        || rx.count_for(unread) >= 3,
    );
    assert_eq!(
        rx.count_for(read),
        after,
        "a read notification was sent again"
    );
    handle.stop();
}
