//! The real binary: exit codes, stderr sentences, stdout formats, configuration mistakes,
//! `serve` under SIGTERM, and the demo.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::receiver::Receiver;
use crate::common::wait_for;
use crate::promises::Running;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_clair-notifier");

/// The outcome of one run, printed in full when an assertion fails.
pub(crate) struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n$ clair-notifier {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
    /// Exits with `code` and one line on stderr containing `needle`; nothing on stdout.
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        assert!(self.stderr.starts_with("clair-notifier: "), "{self:?}");
        assert!(self.stderr.contains(needle), "wanted {needle:?}: {self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        self
    }
}

pub(crate) fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let _ = writer.join();
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

pub(crate) fn line(vuln: &str, layers: usize) -> String {
    let layers: Vec<String> = (0..layers).map(|i| format!("\"l{i}\"")).collect();
    format!(
        r#"{{"New":{{"Vulnerability":{{"Name":"{vuln}","Severity":"High"}},"LayersIntroducingVulnerability":[{}]}}}}"#,
        layers.join(",")
    )
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_lowercase()
}

#[test]
fn help_and_usage_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = run_in(d, &["--help"], None).ok();
    assert!(r.stdout.contains("Usage: clair-notifier"), "{r:?}");
    for c in [
        "serve",
        "demo",
        "add",
        "list",
        "show",
        "mark-read",
        "stats",
        "check-config",
        "receive",
    ] {
        let r = run_in(d, &[c, "--help"], None).ok();
        assert!(r.stdout.contains("Usage: clair-notifier"), "{r:?}");
        assert!(r.stdout.contains(c), "{r:?}");
        let r2 = run_in(d, &["help", c], None).ok();
        assert_eq!(r.stdout, r2.stdout);
    }
    run_in(d, &[], None).fails(2, "a command is needed");
    run_in(d, &["frobnicate"], None).fails(2, "no command \"frobnicate\"");
    run_in(d, &["list", "--state", "maybe"], None).fails(2, "--state must be");
    run_in(d, &["serve", "--bogus"], None).fails(2, "--bogus");
    run_in(d, &["show"], None).fails(2, "needs a notification NAME");
    run_in(d, &["list"], None).fails(1, "there is no database at clair-notifier.db");
}

#[test]
fn add_list_show_mark_read_stats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = format!(
        "{}\n\n{}\n{}\n",
        line("CVE-1", 3),
        line("CVE-2", 1),
        line("CVE-3", 250)
    );
    let r = run_in(d, &["add"], Some(&input)).ok();
    let names: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(names.len(), 3, "{r:?}");
    assert!(names.iter().all(|n| is_uuid(n)), "{r:?}");
    assert_eq!(r.stderr, "", "{r:?}");

    // From a file too.
    std::fs::write(d.join("more.jsonl"), line("CVE-4", 1)).unwrap();
    let r = run_in(d, &["add", "more.jsonl"], None).ok();
    assert!(is_uuid(r.stdout.trim()), "{r:?}");

    let r = run_in(d, &["list"], None).ok();
    assert_eq!(r.stdout.lines().count(), 4, "{r:?}");
    for l in r.stdout.lines() {
        let cols: Vec<&str> = l.split('\t').collect();
        assert!(is_uuid(cols[0]), "{l}");
        assert_eq!(cols[1], "pending", "{l}");
        assert!(cols[2].ends_with('Z'), "{l}");
    }
    let r = run_in(d, &["list", "--limit", "1"], None).ok();
    assert_eq!(r.stdout.lines().count(), 1);

    // show prints what GET returns; its NextPage leads to the next page.
    let big = names[2];
    let r = run_in(d, &["show", big, "--limit", "100"], None).ok();
    assert!(r.stdout.ends_with("}\n"), "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let n = &j["Notification"];
    assert_eq!(n["Name"], big);
    assert_eq!(n["Limit"], 100);
    assert_eq!(n["New"]["LayersIntroducingVulnerability"][0], "l0");
    let next = n["NextPage"].as_str().unwrap();
    let r = run_in(d, &["show", big, "--limit", "100", "--page", next], None).ok();
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["Notification"]["New"]["LayersIntroducingVulnerability"][0],
        "l100"
    );
    assert_eq!(j["Notification"]["Page"], next);
    run_in(d, &["show", big, "--page", "forged"], None)
        .fails(2, "invalid or expired pagination token");
    run_in(d, &["show", big, "--limit", "0"], None).fails(2, "--limit");
    run_in(d, &["show", "nope"], None).fails(1, "there is no notification named \"nope\"");

    run_in(d, &["mark-read", names[0]], None).ok();
    run_in(d, &["mark-read", names[0]], None).ok();
    run_in(d, &["mark-read", "nope"], None).fails(1, "no notification named \"nope\"");
    let r = run_in(d, &["list", "--state", "read"], None).ok();
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(r.stdout.starts_with(names[0]));
    let r = run_in(d, &["show", names[0]], None).ok();
    assert!(r.stdout.contains("\"Deleted\":\""), "{r:?}");

    let r = run_in(d, &["stats", "--json"], None).ok();
    let s: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (s["pending"].as_u64(), s["read"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["total"], 4);
    let r = run_in(d, &["stats"], None).ok();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("pending") && l.ends_with(" 3")),
        "{r:?}"
    );
}

#[test]
fn add_with_a_bad_line_in_the_middle_inserts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_in(d, &["add"], Some(&line("CVE-0", 1))).ok();
    for (bad, needle) in [
        ("{not json", "line 2: "),
        (
            r#"{"Old":null,"New":null}"#,
            "line 2: a notification needs an Old or a New",
        ),
        (
            r#"{"New":{"Vulnerability":{"Name":""}}}"#,
            "line 2: the New vulnerability needs a Name",
        ),
        (
            r#"{"New":{"Vulnerability":{"Name":"x","Sevrity":"High"}}}"#,
            "line 2: unknown field `Sevrity`",
        ),
    ] {
        let input = format!("{}\n{bad}\n{}\n", line("CVE-1", 1), line("CVE-2", 1));
        run_in(d, &["add"], Some(&input)).fails(2, needle);
    }
    run_in(d, &["add", "missing.jsonl"], None).fails(2, "could not read missing.jsonl");
    let r = run_in(d, &["stats", "--json"], None).ok();
    assert!(r.stdout.contains("\"total\":1"), "{r:?}");
}

#[test]
fn each_kind_of_configuration_mistake_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str)] = &[
        (
            "[api]\npaginationKey = \"x\"\n",
            "line 2: unknown key `api.paginationKey`",
        ),
        (
            "[notifier]\nrenotifyInterval = \"1m\"\n",
            "notifier.renotifyInterval",
        ),
        (
            "[notifier]\nrenotify_interval = \"2 hours\"\n",
            "line 2: notifier.renotify_interval: invalid duration",
        ),
        (
            "[notifier]\nworkers = \"four\"\n",
            "line 2: notifier.workers: expected a whole number, found the string \"four\".",
        ),
        (
            "[notifier]\nworkers = 0\n",
            "notifier.workers must be between 1 and 1024",
        ),
        (
            "[notifier.http]\nendpoint = \"ftp://x/\"\n",
            "notifier.http.endpoint",
        ),
        (
            "[notifier.http]\nendpoint = \"not a url\"\n",
            "notifier.http.endpoint",
        ),
        ("[api]\npagination_key = \"short\"\n", "api.pagination_key"),
        ("[api]\naddr = \"nowhere\"\n", "api.addr \"nowhere\""),
        (
            "[database]\npath = \"no/such/dir/n.db\"\n",
            "database.path: the directory no/such/dir does not exist",
        ),
        (
            "[notifier.slack]\nurl = \"x\"\n",
            "[notifier.slack]: no notifier named \"slack\"",
        ),
        (
            "[notifier.webhook]\nendpoint = \"http://x/\"\n",
            "configured in [notifier.http]",
        ),
        ("[api\n", "line 1: "),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = format!("bad{i}.toml");
        std::fs::write(d.join(&file), text).unwrap();
        let r = run_in(d, &["--config", &file, "check-config"], None).fails(2, needle);
        assert!(
            r.stderr.contains(&file) || !needle.starts_with("line"),
            "{r:?}"
        );
        // serve refuses it the same way, before doing anything.
        run_in(d, &["--config", &file, "serve"], None).fails(2, needle);
    }
    assert!(!d.join("clair-notifier.db").exists(), "nothing was created");
    run_in(d, &["--config", "absent.toml", "check-config"], None)
        .fails(2, "could not read the configuration file absent.toml");
}

/// Mistakes name the file and the line, in one shape: a value of the wrong type, and those
/// found after the file is read (two keys against each other, a notifier this program lacks, a
/// bad endpoint, an unknown key inside [notifier]).
#[test]
fn configuration_mistakes_name_the_file_line_and_key_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str)] = &[
        (
            "[notifier]\nworkers = 2\nattempts = \"five\"\n",
            "c.toml: line 3: notifier.attempts: expected a whole number, found the string \"five\".",
        ),
        (
            "[notifier]\nattempts = 3\nlease = \"5s\"\n",
            "c.toml: line 3: notifier.lease (5s) must be at least twice notifier.http.timeout (5s), so a send in flight keeps its lease.",
        ),
        (
            "[api]\naddr = \"\"\n\n[notifier.slack]\nurl = \"x\"\n",
            "c.toml: line 4: [notifier.slack]: no notifier named \"slack\" is built into this program (the webhook is configured in [notifier.http]).",
        ),
        (
            "[database]\npath = \"n.db\"\n\n[notifier.http]\nendpoint = \"ftp://x/\"\n",
            "c.toml: line 5: notifier.http.endpoint \"ftp://x/\" must start with http:// or https://.",
        ),
        (
            "# mine\n\n[notifier]\nattempts = 3\n\nrenotifyInterval = \"2h\"\n",
            "c.toml: line 6: unknown key `notifier.renotifyInterval` (expected attempts, renotify_interval, max_backoff, workers, poll_interval, lease, breaker_failures, breaker_probe, http or a [notifier.<name>] table).",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(d.join("c.toml"), text).unwrap();
        for command in ["check-config", "serve", "add"] {
            let r = run_in(d, &["-c", "c.toml", command], Some("")).fails(2, want);
            assert_eq!(r.stderr, format!("clair-notifier: {want}\n"), "{r:?}");
        }
    }
    assert!(!d.join("n.db").exists(), "nothing was created");
}

#[test]
fn check_config_says_what_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = run_in(d, &["check-config"], None).ok();
    assert!(r.stdout.contains("notifier       disabled"), "{r:?}");
    assert!(r.stdout.contains("http://127.0.0.1:6060"), "{r:?}");
    std::fs::write(
        d.join("c.toml"),
        "[database]\npath = \"n.db\"\n[notifier]\nrenotify_interval = \"30m\"\n\
         [notifier.http]\nendpoint = \"https://hooks.example/clair\"\n[api]\naddr = \"\"\ntoken = \"t\"\n",
    )
    .unwrap();
    let r = run_in(d, &["-c", "c.toml", "check-config"], None).ok();
    for want in [
        "c.toml is valid",
        "n.db (will be created)",
        "webhook POSTs to https://hooks.example/clair",
        "renotify every 30m",
        "read API       off",
    ] {
        assert!(r.stdout.contains(want), "{want}: {r:?}");
    }
}

/// Starts `serve`, returns the child and the read API's address from its log.
fn spawn_serve(dir: &Path, config: &str) -> (std::process::Child, String, mpsc::Receiver<String>) {
    std::fs::write(dir.join("serve.toml"), config).unwrap();
    let mut serve = Running::start(dir, &["--config", "serve.toml", "serve"]);
    let line = serve.wait_line("read API listening on http://");
    let addr = line.split("read API listening on http://").nth(1).unwrap();
    (serve.child, addr.trim().to_string(), serve.lines)
}

#[test]
fn serve_delivers_serves_and_stops_on_sigterm() {
    let rx = Receiver::start(2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = format!(
        "[database]\npath = \"n.db\"\n[notifier]\npoll_interval = \"100ms\"\n\
         [notifier.http]\nendpoint = \"{}\"\n[api]\naddr = \"127.0.0.1:0\"\n",
        rx.url()
    );
    let (mut child, addr, logs) = spawn_serve(d, &config);
    // Another process adds; the running service notices within poll_interval.
    let r = run_in(
        d,
        &["--config", "serve.toml", "add"],
        Some(&line("CVE-1", 2)),
    )
    .ok();
    let name = r.stdout.trim().to_string();
    wait_for("the webhook", Duration::from_secs(10), || {
        rx.count_for(&name) == 1
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let health = agent.get(format!("http://{addr}/health")).call().unwrap();
    assert_eq!(health.status(), 200);
    let del = agent
        .delete(format!("http://{addr}/v1/notifications/{name}"))
        .call()
        .unwrap();
    assert_eq!(del.status(), 200);
    crate::common::bin::sigterm(&child);
    // How fast it exits is shutdown.rs's subject; here it only must exit.
    let status = crate::common::bin::wait_exit(&mut child, Duration::from_secs(30), d);
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let log: Vec<String> = logs.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{log:?}");
    assert_eq!(stdout, "", "serve prints nothing on stdout");
    assert!(log.iter().any(|l| l.ends_with("INFO  stopped")), "{log:?}");
}

#[test]
fn serve_with_no_configuration_starts_disabled_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = l.contains("read API listening on http://127.0.0.1:6060")
            || l.contains("could not listen on 127.0.0.1:6060");
        seen.push(l);
        if done {
            break;
        }
    }
    if seen.iter().any(|l| l.contains("could not listen")) {
        // Port 6060 is taken on this machine (a running serve): the default address is
        // still the one tried, and the failure is a runtime one.
        assert_eq!(child.wait().unwrap().code(), Some(1), "{seen:?}");
        return;
    }
    assert!(
        seen.iter().any(|l| l.contains("notifier disabled")),
        "{seen:?}"
    );
    crate::common::bin::sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{seen:?}");
    assert!(dir.path().join("clair-notifier.db").exists());
}

#[test]
fn demo_runs_the_whole_loop_and_summarizes() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), &["demo", "--count", "60"], None).ok();
    assert!(
        r.stdout
            .starts_with("demo: 60 notifications delivered, read and marked read in "),
        "{r:?}"
    );
    for want in ["every one as inserted", "p50 ", "p99 ", "read 60"] {
        assert!(r.stdout.contains(want), "{want}: {r:?}");
    }
    assert!(r.stderr.contains("read     60/60"), "{r:?}");
    run_in(dir.path(), &["--config", "x.toml", "demo"], None).fails(2, "drop --config");
}
