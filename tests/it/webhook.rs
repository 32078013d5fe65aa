//! The webhook notifier against real servers on 127.0.0.1: a plain HTTP receiver, a raw
//! HTTP/TLS server (statuses, headers, connection counts, client certificates, SNI), a
//! listener that never answers, and a CONNECT proxy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clair_notifier::{
    Delivery, HttpConfig, Notifier, NotifierConfig, SendError, Service, Timestamp, Webhook,
};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::proxy::Proxy;
use crate::common::rawhttp::{RawServer, Silent, response};
use crate::common::receiver::Receiver;
use crate::common::tls::{Pki, path};
use crate::common::{sample, wait_for};

const NAME: &str = "6e4ad270-4957-4242-b5ad-dad851379573";
const SECRET_VALUE: &str = "Bearer s3cr3t-header-value";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn http(endpoint: &str) -> HttpConfig {
    HttpConfig {
        endpoint: endpoint.to_string(),
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    }
}

fn webhook(http: &HttpConfig) -> Webhook {
    Webhook::from_config(http)
        .unwrap_or_else(|e| panic!("configure {http:?}: {}", e.chain()))
        .expect("an endpoint is set")
}

fn delivery(name: &str) -> Delivery {
    Delivery {
        name: name.to_string(),
        created: Timestamp::now(),
        notified: None,
        attempt: 1,
    }
}

fn send(w: &Webhook, name: &str) -> Result<(), SendError> {
    w.send(&delivery(name))
}

fn config_error(http: &HttpConfig) -> String {
    match Webhook::from_config(http) {
        Ok(_) => panic!("{http:?} was accepted"),
        Err(e) => {
            assert_eq!(e.kind(), clair_notifier::ErrorKind::Config);
            e.chain()
        }
    }
}

/// A raw server that answers each request with the status in its path (`/status/302`), with
/// `Location` and `Retry-After` from the query (`?location=...&retry=...`).
fn status_server() -> RawServer {
    RawServer::http(|req| {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let status = path
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let mut headers = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let v = v.replace("%20", " ").replace("%2C", ",");
            match k {
                "location" => headers.push(("Location".to_string(), v)),
                "retry" => headers.push(("Retry-After".to_string(), v)),
                _ => {}
            }
        }
        let headers: Vec<_> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        response(status, &headers, b"")
    })
}

#[test]
fn posts_the_exact_envelope_with_the_configured_headers() {
    let rx = Receiver::start(1);
    let mut h = http(&rx.url());
    h.headers = BTreeMap::from([
        ("Authorization".to_string(), SECRET_VALUE.to_string()),
        ("X-Clair-Instance".to_string(), "eu-1".to_string()),
    ]);
    send(&webhook(&h), NAME).unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "/hook");
    assert_eq!(
        r.body,
        br#"{"Notification":{"Name":"6e4ad270-4957-4242-b5ad-dad851379573"}}"#
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Content-Length"), Some("64"));
    assert_eq!(r.header("Authorization"), Some(SECRET_VALUE));
    assert_eq!(r.header("X-Clair-Instance"), Some("eu-1"));
    assert!(
        r.header("User-Agent")
            .is_some_and(|ua| ua.starts_with("clair-notifier/")),
        "{:?}",
        r.headers
    );
    // Not signed unless a secret is set.
    assert_eq!(r.header("webhook-signature"), None);
}

#[test]
fn any_2xx_succeeds() {
    let server = status_server();
    for status in [200, 201, 202, 204, 299] {
        let w = webhook(&http(&server.http_url(&format!("/status/{status}"))));
        send(&w, NAME).unwrap_or_else(|e| panic!("{status}: {e}"));
    }
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn other_statuses_fail_with_one_line_and_redirects_are_not_followed() {
    let server = status_server();
    let elsewhere = server.http_url("/elsewhere");
    for status in [301, 302, 303, 307, 308] {
        let url = server.http_url(&format!("/status/{status}?location={elsewhere}"));
        let err = send(&webhook(&http(&url)), NAME).expect_err("a redirect is a failure");
        let msg = err.message();
        assert!(msg.contains(&format!("got status {status}")), "{msg}");
        assert!(msg.contains("not followed"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    assert!(
        server.requests().iter().all(|r| r.target != "/elsewhere"),
        "a Location was followed: {:?}",
        server.requests()
    );
    for status in [400, 401, 404, 409, 429, 500, 502, 503] {
        let url = server.http_url(&format!("/status/{status}"));
        let err = send(&webhook(&http(&url)), NAME).expect_err("not 2xx");
        let msg = err.message();
        assert!(
            msg.starts_with(&format!("POST {url}: got status {status}")),
            "{msg}"
        );
        assert!(msg.contains("expected 2xx"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(err.retry_after(), None, "{status}");
    }
}

#[test]
fn connection_refused_is_a_failed_attempt() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{addr}/hook");
    let err = send(&webhook(&http(&url)), NAME).expect_err("nobody listens");
    assert!(err.message().starts_with(&format!("POST {url}: ")), "{err}");
}

#[test]
fn the_timeout_bounds_a_server_that_never_answers() {
    let silent = Silent::start();
    let mut h = http(&format!("http://{}/hook", silent.addr));
    h.timeout = Duration::from_millis(500);
    let w = webhook(&h);
    let start = Instant::now();
    let err = send(&w, NAME).expect_err("no answer");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "gave up early: {took:?}"
    );
    // Generous: the bound is the timeout, the margin is for a loaded machine.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(err.message().ends_with("timed out after 500ms"), "{err}");
    assert_eq!(silent.accepted(), 1);
}

#[test]
fn the_timeout_defaults_to_five_seconds() {
    assert_eq!(HttpConfig::default().timeout, Duration::from_secs(5));
}

#[test]
fn sequential_posts_share_one_connection() {
    let server = RawServer::http(|_| response(200, &[], b"ok"));
    let w = webhook(&http(&server.http_url("/hook")));
    for _ in 0..3 {
        send(&w, NAME).unwrap();
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(server.connections(), 1, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.peer == reqs[0].peer && r.conn == 1));
}

/// A receiver on 127.0.0.1 that answers the first request of each connection with a 200
/// (keep-alive, nothing said of closing), then 20 ms later either closes the connection or,
/// with `stray`, writes bytes nobody asked for and keeps it open. Returns its address and how
/// many connections it accepted.
fn one_answer_a_connection(stray: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                stream.write_all(&response(200, &[], b"")).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                if stray {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
                    std::thread::sleep(Duration::from_secs(5));
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn a_pooled_connection_the_receiver_closed_or_spoiled_is_not_reused() {
    for stray in [false, true] {
        let (addr, accepted) = one_answer_a_connection(stray);
        let w = webhook(&http(&format!("http://{addr}/hook")));
        for i in 0..3 {
            if let Err(e) = send(&w, NAME) {
                panic!("POST {i} (stray bytes: {stray}) failed: {e}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Each POST found the one before's connection closed or spoiled when it took it out
        // of the pool, and opened another.
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "stray bytes: {stray}");
    }
}

#[test]
fn a_long_answer_is_cut_short_and_its_connection_dropped() {
    let big = vec![b'x'; 1024 * 1024];
    let server = RawServer::http(move |_| response(200, &[], &big));
    let w = webhook(&http(&server.http_url("/hook")));
    send(&w, NAME).unwrap();
    send(&w, NAME).unwrap();
    assert_eq!(server.requests().len(), 2);
    // Past the bound, the rest of the body is not read: that connection cannot be reused.
    assert_eq!(server.connections(), 2);
}

#[test]
fn retry_after_is_surfaced_as_seconds_and_as_an_http_date() {
    let server = status_server();
    let w = webhook(&http(&server.http_url("/status/503?retry=120")));
    let err = send(&w, NAME).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));

    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(300));
    let url = server.http_url(&format!(
        "/status/429?retry={}",
        date.replace(' ', "%20").replace(',', "%2C")
    ));
    let err = send(&webhook(&http(&url)), NAME).unwrap_err();
    let delay = err.retry_after().expect("a date is a delay");
    assert!(
        delay > Duration::from_secs(250) && delay <= Duration::from_secs(300),
        "{delay:?}"
    );

    // Any failure status may carry one; nonsense is ignored.
    let err = send(
        &webhook(&http(&server.http_url("/status/500?retry=7"))),
        NAME,
    )
    .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let err = send(
        &webhook(&http(&server.http_url("/status/503?retry=soon"))),
        NAME,
    )
    .unwrap_err();
    assert_eq!(err.retry_after(), None);
}

/// The Standard Webhooks check, written out independently of the notifier.
fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = format!("v1,{}", STANDARD.encode(ring::hmac::sign(&key, &signed)));
    signature.split(' ').any(|s| s == expected)
}

#[test]
fn signed_posts_verify_with_every_secret() {
    let rx = Receiver::start(1);
    let second = format!("whsec_{}", STANDARD.encode(b"the next secret, rotated in"));
    let mut h = http(&rx.url());
    h.signing_secret = format!("{SIGNING_SECRET} {second}");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    send(&webhook(&h), NAME).unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = &rx.requests()[0];
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let sig = r.header("webhook-signature").expect("webhook-signature");
    assert_eq!(id, format!("{NAME}.0"), "the name and the round");
    let ts_n: u64 = ts.parse().unwrap();
    assert!(before <= ts_n && ts_n <= after, "{ts}");
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    assert!(sig.split(' ').all(|s| s.starts_with("v1,")), "{sig}");
    assert!(verify(SIGNING_SECRET, id, ts, &r.body, sig));
    assert!(verify(&second, id, ts, &r.body, sig));
    let other = format!("whsec_{}", STANDARD.encode(b"not one of the secrets"));
    assert!(!verify(&other, id, ts, &r.body, sig));
    // A tampered body does not verify.
    assert!(!verify(SIGNING_SECRET, id, ts, b"{}", sig));
}

#[test]
fn mutual_tls_succeeds_with_the_client_certificate_and_the_ca() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = RawServer::https(pki.server_config(true), |_| response(200, &[], b""));
    let mut h = http(&server.https_url("/hook"));
    h.cafile = path(&pki.ca);
    h.certfile = path(&pki.client_cert);
    h.keyfile = path(&pki.client_key);
    let w = webhook(&h);
    send(&w, NAME).unwrap();
    send(&w, NAME).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.client_cert));
    assert_eq!(
        reqs[0].body,
        format!(r#"{{"Notification":{{"Name":"{NAME}"}}}}"#).into_bytes()
    );
    assert_eq!(server.connections(), 1, "TLS connections are reused too");
}

#[test]
fn mutual_tls_fails_without_the_client_certificate() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = RawServer::https(pki.server_config(true), |_| response(200, &[], b""));
    let mut h = http(&server.https_url("/hook"));
    h.cafile = path(&pki.ca);
    let err = send(&webhook(&h), NAME).expect_err("the server requires a client certificate");
    assert!(
        err.message().starts_with("POST https://127.0.0.1:"),
        "{err}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    wait_for(
        "the server's handshake error",
        Duration::from_secs(5),
        || !server.tls_errors().is_empty(),
    );
}

#[test]
fn tls_fails_when_the_ca_is_not_trusted() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = RawServer::https(pki.server_config(false), |_| response(200, &[], b""));
    // The built-in roots do not know the test CA.
    let err = send(&webhook(&http(&server.https_url("/hook"))), NAME).expect_err("unknown CA");
    assert!(err.message().contains("UnknownIssuer"), "{err}");
    // Nor does an unrelated CA.
    let mut h = http(&server.https_url("/hook"));
    h.cafile = path(&pki.other_ca);
    let err = send(&webhook(&h), NAME).expect_err("unknown CA");
    assert!(err.message().contains("UnknownIssuer"), "{err}");
    assert!(server.requests().is_empty());
    // The right CA works.
    h.cafile = path(&pki.ca);
    send(&webhook(&h), NAME).unwrap();
}

#[test]
fn servername_is_verified_and_sent_as_sni_while_connecting_to_the_endpoint() {
    let pki = Pki::new(&["notifier.test"]);
    let server = RawServer::https(pki.server_config(true), |_| response(200, &[], b""));
    let mut h = http(&server.https_url("/hook?x=1"));
    h.cafile = path(&pki.ca);
    h.certfile = path(&pki.client_cert);
    h.keyfile = path(&pki.client_key);

    // The certificate is not for 127.0.0.1.
    let err = send(&webhook(&h), NAME).expect_err("name mismatch");
    assert!(err.message().contains("certificate"), "{err}");

    h.servername = "notifier.test".into();
    let w = webhook(&h);
    send(&w, NAME).unwrap();
    send(&w, NAME).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].sni.as_deref(), Some("notifier.test"));
    assert_eq!(reqs[0].target, "/hook?x=1");
    // Like Go's tls.Config.ServerName: Host stays the endpoint's.
    assert_eq!(
        reqs[0].header("Host"),
        Some(server.addr.to_string().as_str())
    );
    assert_eq!(server.connections(), 2, "one failed, then one reused");

    h.servername = "other.test".into();
    let err = send(&webhook(&h), NAME).expect_err("the certificate is not for other.test");
    assert!(err.message().contains("certificate"), "{err}");
}

#[test]
fn the_configured_proxy_carries_the_post() {
    let rx = Receiver::start(1);
    let proxy = Proxy::start();
    let mut h = http(&rx.url());
    h.proxy = proxy.url();
    let r = send(&webhook(&h), NAME);
    let seen = proxy.requests();
    r.unwrap_or_else(|e| panic!("{e}: {seen:?}"));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line, format!("CONNECT {} HTTP/1.1", rx.addr));
    assert_eq!(seen[0].header("Proxy-Authorization"), None);
    assert_eq!(rx.count(), 1);
}

#[test]
fn proxy_credentials_are_sent_to_the_proxy_and_never_shown() {
    let rx = Receiver::start(1);
    let proxy = Proxy::start();
    let mut h = http(&rx.url());
    h.proxy = format!("http://notifier:pr0xy-pa55@{}", proxy.addr);
    let w = webhook(&h);
    send(&w, NAME).unwrap();
    let seen = proxy.requests();
    assert_eq!(
        seen[0].header("Proxy-Authorization"),
        Some(format!("Basic {}", STANDARD.encode("notifier:pr0xy-pa55")).as_str())
    );
    assert!(!format!("{w:?}").contains("pr0xy-pa55"), "{w:?}");
    assert!(!format!("{h:?}").contains("pr0xy-pa55"), "{h:?}");
    // The receiver does not see the proxy's credentials.
    assert_eq!(rx.requests()[0].header("Proxy-Authorization"), None);
}

#[test]
fn a_proxy_with_tls_and_servername_tunnels_to_the_servername() {
    let pki = Pki::new(&["notifier.test"]);
    let server = RawServer::https(pki.server_config(true), |_| response(200, &[], b""));
    // The proxy knows notifier.test (this machine does not).
    let proxy = Proxy::with_names(&["notifier.test"]);
    let mut h = http(&server.https_url("/hook"));
    h.cafile = path(&pki.ca);
    h.certfile = path(&pki.client_cert);
    h.keyfile = path(&pki.client_key);
    h.servername = "notifier.test".into();
    h.proxy = proxy.url();
    let r = send(&webhook(&h), NAME);
    let seen = proxy.requests();
    r.unwrap_or_else(|e| panic!("{e}: {seen:?}"));
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The tunnel is asked for the name; TLS checks it end to end.
    let port = server.addr.port();
    assert_eq!(
        seen[0].line,
        format!("CONNECT notifier.test:{port} HTTP/1.1")
    );
    let reqs = server.requests();
    assert_eq!(reqs[0].sni.as_deref(), Some("notifier.test"));
    assert_eq!(
        reqs[0].header("Host"),
        Some(server.addr.to_string().as_str())
    );
}

const CHILD_WEBHOOK: &str = "CLAIR_NOTIFIER_TEST_WEBHOOK";
const CHILD_CONTROL: &str = "CLAIR_NOTIFIER_TEST_CONTROL";

#[test]
fn environment_proxy_variables_never_apply() {
    // The variables are set for a child process (this test binary, running only the test
    // below), not in this multi-threaded one.
    let rx = Receiver::start(1);
    let control = Receiver::start(1);
    let proxy = Proxy::start();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "webhook::env_proxy_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env(var, proxy.url());
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    cmd.env(CHILD_WEBHOOK, rx.url());
    cmd.env(CHILD_CONTROL, control.url());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert_eq!(rx.count(), 1, "the webhook reached its endpoint");
    assert_eq!(control.count(), 1);
    // Only the control (ureq's defaults read the variables) went through the proxy.
    let lines: Vec<_> = proxy.requests().into_iter().map(|r| r.line).collect();
    assert_eq!(
        lines,
        [format!("CONNECT {} HTTP/1.1", control.addr)],
        "the webhook used the environment's proxy"
    );
}

/// Run by `environment_proxy_variables_never_apply` with the proxy variables set.
#[test]
#[ignore = "run by environment_proxy_variables_never_apply"]
fn env_proxy_child() {
    let (Ok(endpoint), Ok(control)) = (std::env::var(CHILD_WEBHOOK), std::env::var(CHILD_CONTROL))
    else {
        return;
    };
    send(&webhook(&http(&endpoint)), NAME).unwrap();
    // A control: an agent with ureq's defaults takes the proxy from the environment.
    let resp = ureq::Agent::new_with_defaults()
        .post(&control)
        .send(format!(r#"{{"Notification":{{"Name":"{NAME}"}}}}"#))
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn configuration_errors_name_the_key_and_the_file() {
    let pki = Pki::new(&["127.0.0.1"]);
    let base = || {
        let mut h = http("https://127.0.0.1:1/hook");
        h.cafile = path(&pki.ca);
        h.certfile = path(&pki.client_cert);
        h.keyfile = path(&pki.client_key);
        h
    };
    assert!(Webhook::from_config(&base()).unwrap().is_some());
    let missing = pki.dir.path().join("missing.pem");
    let not_pem = pki.dir.path().join("notes.txt");
    std::fs::write(&not_pem, "just some text\n").unwrap();

    let mut h = base();
    h.cafile = path(&missing);
    let e = config_error(&h);
    assert!(e.starts_with("notifier.http.cafile: could not read"), "{e}");
    assert!(e.contains(&path(&missing)), "{e}");
    assert!(e.contains("No such file"), "{e}");

    let mut h = base();
    h.cafile = path(&not_pem);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.cafile") && e.contains(&path(&not_pem)),
        "{e}"
    );
    assert!(e.contains("no PEM certificate"), "{e}");

    let mut h = base();
    h.cafile = path(pki.dir.path());
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.cafile") && e.contains("could not read"),
        "{e}"
    );

    let mut h = base();
    h.certfile = path(&missing);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.certfile") && e.contains(&path(&missing)),
        "{e}"
    );

    let mut h = base();
    h.certfile = path(&pki.client_key);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.certfile") && e.contains("no PEM certificate"),
        "{e}"
    );

    let mut h = base();
    h.keyfile = path(&pki.client_cert);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.keyfile") && e.contains("no unencrypted PEM private key"),
        "{e}"
    );

    // A key that is not the certificate's.
    let mut h = base();
    h.keyfile = path(&pki.server_key);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.keyfile") && e.contains("notifier.http.certfile"),
        "{e}"
    );
    assert!(e.ends_with("the key is not the certificate's"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");

    let mut h = base();
    h.keyfile = String::new();
    let e = config_error(&h);
    assert!(e.contains("notifier.http.keyfile is not"), "{e}");
    let mut h = base();
    h.certfile = String::new();
    let e = config_error(&h);
    assert!(e.contains("notifier.http.certfile is not"), "{e}");

    let mut h = base();
    h.proxy = "socks5://127.0.0.1:1080".into();
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.proxy \"socks5://127.0.0.1:1080\""),
        "{e}"
    );

    let mut h = base();
    h.endpoint = "127.0.0.1:8080/hook".into();
    assert!(config_error(&h).contains("notifier.http.endpoint"));

    let mut h = base();
    h.headers = BTreeMap::from([("X-Token".to_string(), "a\r\nb".to_string())]);
    let e = config_error(&h);
    assert!(
        e.contains("notifier.http.headers") && e.contains("X-Token"),
        "{e}"
    );

    let mut h = base();
    h.servername = "not a name".into();
    assert!(config_error(&h).contains("notifier.http.servername"));
    let mut h = base();
    h.endpoint = "http://127.0.0.1:1/hook".into();
    h.servername = "notifier.test".into();
    assert!(config_error(&h).contains("notifier.http.servername"));

    let mut h = base();
    h.signing_secret = "whsec_!!!! whsec_c2VjcmV0".into();
    let e = config_error(&h);
    assert!(e.contains("notifier.http.signing_secret"), "{e}");
    assert!(!e.contains("!!!!") && !e.contains("c2VjcmV0"), "{e}");

    let mut h = base();
    h.timeout = Duration::ZERO;
    assert!(config_error(&h).contains("notifier.http.timeout"));

    // Through the Notifier trait too.
    let mut c = NotifierConfig {
        http: base(),
        ..NotifierConfig::default()
    };
    c.http.cafile = path(&missing);
    let e = Webhook::default().configure(&c).unwrap_err();
    assert!(e.to_string().contains("notifier.http.cafile"), "{e}");
    c.http.endpoint = String::new();
    assert!(!Webhook::default().configure(&c).unwrap());
}

#[test]
fn debug_and_errors_never_show_header_values_or_secrets() {
    let pki = Pki::new(&["127.0.0.1"]);
    let rx = Receiver::start(1);
    rx.set_status(500);
    let mut h = http(&rx.url());
    h.headers = BTreeMap::from([("Authorization".to_string(), SECRET_VALUE.to_string())]);
    h.signing_secret = SIGNING_SECRET.into();
    h.certfile = path(&pki.client_cert);
    h.keyfile = path(&pki.client_key);
    let w = webhook(&h);
    let c = NotifierConfig {
        http: h.clone(),
        ..NotifierConfig::default()
    };
    let key_pem = std::fs::read_to_string(&pki.client_key).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    for shown in [
        format!("{w:?}"),
        format!("{w:#?}"),
        format!("{h:?}"),
        format!("{c:?}"),
        send(&w, NAME).unwrap_err().to_string(),
    ] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        assert!(!shown.contains(key_line), "{shown}");
    }
    assert!(format!("{w:?}").contains("Authorization"), "{w:?}");
    assert_eq!(
        format!("{:?}", Webhook::default()),
        "Webhook { configured: false }"
    );
}

// The service's deliveries through the webhook, on each backend.
on_every_backend!(
    service_delivers_over_mutual_tls,
    the_service_records_a_refused_connection_as_a_failed_attempt,
);

fn service_delivers_over_mutual_tls(db: TestDb) {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = RawServer::https(pki.server_config(true), |_| response(204, &[], b""));
    let store = db.open();
    let mut c = NotifierConfig {
        http: http(&server.https_url("/hook")),
        ..NotifierConfig::default()
    };
    c.http.cafile = path(&pki.ca);
    c.http.certfile = path(&pki.client_cert);
    c.http.keyfile = path(&pki.client_key);
    c.http.signing_secret = SIGNING_SECRET.into();
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    let handle = Service::new(c, store.clone()).start().unwrap();
    assert_eq!(handle.notifiers(), ["webhook"]);
    let batch: Vec<_> = (0..20).map(|i| sample(&format!("CVE-{i}"), 2)).collect();
    let mut names = store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("20 notified over mTLS", Duration::from_secs(30), || {
        store.counts(Timestamp::now()).unwrap().notified == 20
    });
    handle.stop();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 20);
    assert!(reqs.iter().all(|r| r.client_cert));
    for r in &reqs {
        let sig = r.header("webhook-signature").unwrap();
        let (id, ts) = (
            r.header("webhook-id").unwrap(),
            r.header("webhook-timestamp").unwrap(),
        );
        assert!(verify(SIGNING_SECRET, id, ts, &r.body, sig));
    }
    let mut seen: Vec<String> = reqs
        .iter()
        .map(|r| {
            let id = r.header("webhook-id").unwrap();
            let (name, round) = id.split_once('.').expect("<name>.<round>");
            assert_eq!(round, "0", "the first round");
            name.to_string()
        })
        .collect();
    seen.sort();
    names.sort();
    assert_eq!(seen, names);
    // A few workers, a few connections: not one per POST.
    assert!(
        server.connections() <= NotifierConfig::default().workers,
        "{}",
        server.connections()
    );
}

/// The receiver's URL with the name `localhost` for its address: an address literal that the
/// guard refuses is refused when the webhook is configured, a name only when it is connected
/// to.
fn by_name(url: &str) -> String {
    assert!(url.contains("127.0.0.1"), "{url}");
    url.replace("127.0.0.1", "localhost")
}

#[test]
fn deny_private_refuses_a_receiver_on_loopback_which_gets_nothing() {
    let server = RawServer::http(|_| response(204, &[], b""));
    let mut h = http(&by_name(&server.http_url("/hook")));
    // The control: by default loopback is allowed, and the name reaches the receiver.
    send(&webhook(&h), NAME).unwrap();
    assert_eq!(server.connections(), 1);

    h.deny_private = true;
    let w = webhook(&h);
    for _ in 0..2 {
        let err = send(&w, NAME).unwrap_err();
        let msg = err.message();
        assert!(msg.starts_with("POST http://localhost:"), "{msg}");
        assert!(
            msg.contains(", a loopback address (notifier.http.deny_private = true refuses it)"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
    // Each send returned the guard's refusal, given before TCP connects: nothing reached
    // the receiver.
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests().len(), 1);
}

fn the_service_records_a_refused_connection_as_a_failed_attempt(db: TestDb) {
    let server = RawServer::http(|_| response(204, &[], b""));
    let store = db.open();
    let mut c = NotifierConfig {
        http: http(&by_name(&server.http_url("/hook"))),
        ..NotifierConfig::default()
    };
    c.http.deny_private = true;
    c.attempts = 2;
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    let handle = Service::new(c, store.clone()).start().unwrap();
    let name = store
        .insert(&[sample("CVE-G", 1)], Timestamp::now())
        .unwrap()[0]
        .clone();
    wait_for(
        "two refused attempts recorded",
        Duration::from_secs(30),
        || {
            let s = store.summary(&name).unwrap().unwrap();
            s.attempts == 2 && s.last_error.is_some()
        },
    );
    handle.stop();
    let s = store.summary(&name).unwrap().unwrap();
    assert_eq!(s.notified, None);
    let error = s.last_error.unwrap();
    assert!(error.contains("refused to connect to"), "{error}");
    assert!(error.contains("notifier.http.deny_private"), "{error}");
    assert_eq!(server.connections(), 0, "the receiver got nothing");
}

#[test]
fn the_guard_keys_are_read_and_checked_from_the_file() {
    let c = clair_notifier::Config::from_toml(
        "[notifier.http]\nendpoint = \"http://localhost:1/\"\nallow_link_local = true\n\
         deny_private = true\n",
    )
    .unwrap();
    assert!(c.notifier.http.allow_link_local && c.notifier.http.deny_private);
    let d =
        clair_notifier::Config::from_toml("[notifier.http]\nendpoint = \"http://x/\"\n").unwrap();
    assert!(!d.notifier.http.allow_link_local && !d.notifier.http.deny_private);
    for key in ["allow_link_local", "deny_private"] {
        let err = clair_notifier::Config::from_toml(&format!("[notifier.http]\n{key} = \"yes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("notifier.http.{key}")), "{err}");
    }
    // A literal the guard refuses is a configuration error naming the key that decides.
    let mut h = http("http://169.254.169.254/latest/meta-data/");
    let err = config_error(&h);
    assert!(err.contains("notifier.http.allow_link_local"), "{err}");
    h.allow_link_local = true;
    assert!(Webhook::from_config(&h).is_ok());
    let mut h = http("http://127.0.0.1:1/hook");
    h.deny_private = true;
    let err = config_error(&h);
    assert!(err.contains("notifier.http.deny_private"), "{err}");
}
