//! Secrets never reach a log line: the real binary at trace level, with a signing secret,
//! custom header values, an API token, a pagination key and a proxy password, delivering
//! notifications (some failing, so error paths log) and serving authorized and unauthorized
//! API requests; then its whole stderr, and `check-config`'s output, are searched for each.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::cli::{BIN, line, run_in};
use crate::common::proxy::Proxy;
use crate::common::receiver::Receiver;
use crate::common::wait_for;

#[test]
fn no_secret_appears_in_trace_logs_or_check_config() {
    let rx = Receiver::start(2);
    // The first two POSTs fail (500), so failed attempts and retries are logged too.
    rx.fail_next(2, 500);
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let signing_key = b"signing-key-bytes-SECRET-0001";
    let signing_b64 = STANDARD.encode(signing_key);
    let signing_secret = format!("whsec_{signing_b64}");
    let header_secret = "hdr-SECRET-0002";
    let bearer_secret = "bearer-SECRET-0003";
    let api_token = "api-token-SECRET-0004";
    let proxy_password = "proxy-pass-SECRET-0005";
    let pagination_key = "c2VjcmV0LXBhZ2luYXRpb24ta2V5LTAwMDYtMzJieXQ=";
    let proxy_url = format!("http://someone:{proxy_password}@{}", proxy.addr);
    let config = format!(
        "[database]\npath = \"n.db\"\n\
         [notifier]\npoll_interval = \"100ms\"\nmax_backoff = \"200ms\"\n\
         [notifier.http]\nendpoint = \"{}\"\nsigning_secret = \"{signing_secret}\"\n\
         proxy = \"{proxy_url}\"\n\
         headers = {{ X-Api-Key = \"{header_secret}\", Authorization = \"Bearer {bearer_secret}\" }}\n\
         [api]\naddr = \"127.0.0.1:0\"\ntoken = \"{api_token}\"\npagination_key = \"{pagination_key}\"\n",
        rx.url()
    );
    std::fs::write(d.join("secret.toml"), &config).unwrap();
    let secrets: Vec<String> = vec![
        signing_secret.clone(),
        signing_b64.clone(),
        String::from_utf8_lossy(signing_key).into_owned(),
        header_secret.into(),
        bearer_secret.into(),
        api_token.into(),
        proxy_password.into(),
        pagination_key.into(),
        pagination_key.trim_end_matches('=').into(),
    ];

    let mut child = Command::new(BIN)
        .args(["-vvv", "--config", "secret.toml", "serve"])
        .current_dir(d)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, logs) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut log: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let l = logs
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("serve logs where it listens");
        log.push(l.clone());
        if let Some(a) = l.split("read API listening on http://").nth(1) {
            break a.trim().to_string();
        }
    };

    let input: String = (0..4)
        .map(|i| line(&format!("CVE-S{i}"), 2) + "\n")
        .collect();
    let added = run_in(d, &["-vvv", "--config", "secret.toml", "add"], Some(&input)).ok();
    let names: Vec<&str> = added.stdout.lines().collect();
    wait_for(
        "every notification delivered",
        Duration::from_secs(30),
        || names.iter().all(|n| rx.count_for(n) >= 1) && rx.count() >= names.len() + 2,
    );
    assert!(
        !proxy.requests().is_empty(),
        "the POSTs went through the proxy"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let url = format!("http://{addr}/v1/notifications/{}?limit=1", names[0]);
    let ok = agent
        .get(&url)
        .header("Authorization", format!("Bearer {api_token}"))
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = agent
        .get(&url)
        .header("Authorization", format!("Bearer {api_token}x"))
        .call()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let del = agent
        .delete(format!("http://{addr}/v1/notifications/{}", names[1]))
        .header("Authorization", format!("Bearer {api_token}"))
        .call()
        .unwrap();
    assert_eq!(del.status(), 200);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let _ = reader.join();
    log.extend(logs.try_iter());
    assert_eq!(status.code(), Some(0), "{log:#?}");
    let text = log.join("\n");
    // The log is really verbose: it did log the failures and each request.
    assert!(text.contains("got status 500"), "{text}");
    assert!(text.contains("TRACE") || text.contains("DEBUG"), "{text}");
    assert!(text.contains("GET /v1/notifications/"), "{text}");

    let check = run_in(
        d,
        &["-vvv", "--config", "secret.toml", "check-config"],
        None,
    )
    .ok();
    let outputs = [
        ("serve's stderr", text.as_str()),
        ("add's stderr", added.stderr.as_str()),
        ("check-config's stdout", check.stdout.as_str()),
        ("check-config's stderr", check.stderr.as_str()),
    ];
    for (what, out) in outputs {
        for s in &secrets {
            assert!(
                !out.contains(s.as_str()),
                "{what} shows the secret {s:?}:\n{out}"
            );
        }
    }
    eprintln!(
        "{} secrets searched in {} log lines of serve at trace level and in check-config",
        secrets.len(),
        log.len()
    );
}
