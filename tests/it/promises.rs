//! What the README promises of the binary, word for word: exact output and exit status of
//! `check-config` on a database it must not touch, of `serve`'s start and stop, of `add`'s
//! mistakes, of `-v`, and the walkthrough "Run it against your own endpoint" as written.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::{BIN, line, run_in};
use crate::common::Silent;

/// A running `clair-notifier` whose stderr lines arrive on a channel.
pub(crate) struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(dir: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (20 s at most) for a stderr line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line with {needle:?} within 20 s: {:#?}", self.seen);
                }
            }
        }
    }

    fn sigterm(&self) {
        crate::common::bin::sigterm(&self.child);
    }

    /// Waits for the exit; every stderr line, the log's timestamps cut off.
    fn finish(mut self) -> (i32, Vec<String>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), untimed(&self.seen))
    }
}

/// Log lines without their timestamp (`2026-11-28T04:25:46.123Z INFO  x` -> `INFO  x`).
fn untimed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.split_once("Z ") {
            Some((t, rest)) if t.starts_with("20") => rest.to_string(),
            _ => l.clone(),
        })
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Issue 15, item 3: check-config reads the database without creating or writing anything,
/// and refuses what serve refuses, with the same sentence and exit status.
#[test]
fn check_config_reads_the_database_read_only_and_refuses_what_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |file: &str| format!("[database]\npath = \"{file}\"\n[api]\naddr = \"\"\n");
    std::fs::write(d.join("c.toml"), config("n.db")).unwrap();
    let r = run_in(d, &["-c", "c.toml", "check-config"], None).ok();
    assert!(
        r.stdout
            .contains("\ndatabase       n.db (will be created)\n"),
        "{r:?}"
    );
    assert!(
        !d.join("n.db").exists(),
        "check-config created the database"
    );
    run_in(d, &["-c", "c.toml", "add"], Some(&line("CVE-1", 1))).ok();
    let before = (listing(d), std::fs::read(d.join("n.db")).unwrap());
    let r = run_in(d, &["-c", "c.toml", "check-config"], None).ok();
    assert!(
        r.stdout.contains("\ndatabase       n.db (exists)\n"),
        "{r:?}"
    );
    assert_eq!(
        (listing(d), std::fs::read(d.join("n.db")).unwrap()),
        before,
        "check-config wrote something or left a side file"
    );

    let schema: i64 = rusqlite::Connection::open(d.join("n.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    // Foreign, corrupt and newer files.
    std::fs::write(d.join("text.db"), "just some words\n".repeat(100)).unwrap();
    {
        let conn = rusqlite::Connection::open(d.join("corrupt.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let mut bytes = std::fs::read(d.join("corrupt.db")).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 31 % 256) as u8;
    }
    std::fs::write(d.join("corrupt.db"), &bytes).unwrap();
    rusqlite::Connection::open(d.join("foreign.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    rusqlite::Connection::open(d.join("newer.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let untouched = "(it was left untouched; database.path must name a clair-notifier database, or a file to create).";
    for (file, code, sentence) in [
        (
            "text.db",
            2,
            format!("could not open text.db: the file is not an SQLite database {untouched}"),
        ),
        (
            "corrupt.db",
            2,
            format!("could not open corrupt.db: the database file is corrupt {untouched}"),
        ),
        (
            "foreign.db",
            1,
            "foreign.db is an SQLite database of another program, not clair-notifier's."
                .to_string(),
        ),
        (
            "newer.db",
            1,
            format!(
                "newer.db has schema version 99, which this program (schema {schema}) cannot read: upgrade clair-notifier."
            ),
        ),
    ] {
        std::fs::write(d.join("c.toml"), config(file)).unwrap();
        let before = (listing(d), std::fs::read(d.join(file)).unwrap());
        let checked = run_in(d, &["-c", "c.toml", "check-config"], None);
        assert_eq!(checked.code, code, "{checked:?}");
        assert_eq!(checked.stderr, format!("clair-notifier: {sentence}\n"));
        assert_eq!(checked.stdout, "", "{checked:?}");
        assert_eq!(
            (listing(d), std::fs::read(d.join(file)).unwrap()),
            before,
            "{file}: check-config wrote something or left a side file"
        );
        let served = run_in(d, &["-c", "c.toml", "serve"], None);
        assert_eq!(
            (served.code, &served.stderr),
            (code, &checked.stderr),
            "{served:?}"
        );
    }
}

/// Issue 15, items 5 and 6: serve says "created" for a database it created and "exists"
/// after, and says once that the notifier is disabled.
#[test]
fn serve_says_what_it_created_and_that_the_notifier_is_disabled_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.toml"),
        "[database]\npath = \"n.db\"\n[api]\naddr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    for (round, database) in [(1, "created"), (2, "exists")] {
        let mut serve = Running::start(d, &["-c", "c.toml", "serve"]);
        serve.wait_line("INFO  read API http://127.0.0.1:0 (");
        serve.sigterm();
        let (code, log) = serve.finish();
        assert_eq!(code, 0, "{log:#?}");
        let disabled: Vec<&String> = log.iter().filter(|l| l.contains("disabled")).collect();
        assert_eq!(
            disabled,
            [
                "WARN  notifier disabled: no notifier is enabled, so notifications are stored but not delivered (set [notifier.http] endpoint to enable the webhook)"
            ],
            "round {round}: {log:#?}"
        );
        let db: Vec<&String> = log.iter().filter(|l| l.contains("n.db")).collect();
        assert_eq!(
            db,
            [&format!("INFO  database n.db ({database})")],
            "{log:#?}"
        );
        assert_eq!(log.iter().filter(|l| l.contains("read API off")).count(), 0);
    }
}

/// Issue 15, item 9: a second signal while stopping exits at once, status 1, as documented.
#[test]
fn a_second_signal_while_stopping_exits_at_once_with_status_1() {
    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.toml"),
        format!(
            "[database]\npath = \"n.db\"\n[notifier]\nlease = \"2m\"\npoll_interval = \"100ms\"\n\
             [notifier.http]\nendpoint = \"{}\"\ntimeout = \"30s\"\n[api]\naddr = \"\"\n",
            silent.url()
        ),
    )
    .unwrap();
    let mut serve = Running::start(d, &["-c", "c.toml", "serve"]);
    serve.wait_line("INFO  read API off");
    run_in(d, &["-c", "c.toml", "add"], Some(&line("CVE-1", 1))).ok();
    crate::common::wait_for("a send in flight", Duration::from_secs(20), || {
        silent.accepted() >= 1
    });
    serve.sigterm();
    serve.wait_line("stopping (signal received; a second one exits at once)");
    let started = Instant::now();
    serve.sigterm();
    let (code, log) = serve.finish();
    assert_eq!(code, 1, "{log:#?}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("clair-notifier: stopped at once by a second signal."),
        "{log:#?}"
    );
    // The send in flight would have held the graceful stop for its 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(20), "{log:#?}");
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains("a second signal during the stop exits at once with status 1 (`stopped at once by a second signal`)"),
        "the exit-status paragraph says it"
    );
}

/// Issue 15, items 2 and 13: add's missing Name says which side, columns are of the line;
/// -v on add, list and stats says what was opened and done.
#[test]
fn add_names_the_side_without_a_name_and_verbose_commands_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = format!(
        "{}\n{}\n",
        line("CVE-1", 1),
        r#"{"New":{"Vulnerability":{"Severity":"High"}}}"#
    );
    let r = run_in(d, &["add"], Some(&input));
    assert_eq!(
        (r.code, r.stderr.as_str(), r.stdout.as_str()),
        (
            2,
            "clair-notifier: line 2: the New vulnerability needs a Name; nothing was added.\n",
            ""
        )
    );
    let r = run_in(
        d,
        &["add"],
        Some("\n\n{\"Old\":{\"Vulnerability\":{\"Name\":\"x\"}},}\n"),
    );
    assert_eq!(
        r.stderr,
        "clair-notifier: line 3: trailing comma (column 39); nothing was added.\n"
    );
    assert_eq!(r.code, 2);

    std::fs::write(d.join("c.toml"), "[database]\npath = \"n.db\"\n").unwrap();
    let verbose = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["-c", "c.toml", "-v"];
        all.extend_from_slice(args);
        let r = run_in(d, &all, stdin).ok();
        let lines: Vec<String> = r.stderr.lines().map(String::from).collect();
        untimed(&lines)
    };
    let two = format!("{}\n{}\n", line("CVE-1", 1), line("CVE-2", 1));
    assert_eq!(
        verbose(&["add"], Some(&two)),
        [
            "INFO  configuration c.toml is valid",
            "INFO  database n.db created",
            "INFO  added 2 notifications from standard input",
        ]
    );
    assert_eq!(
        verbose(&["list", "--state", "pending"], None),
        [
            "INFO  configuration c.toml read",
            "INFO  database n.db opened",
            "INFO  listed 2 notifications (pending, at most 100)",
        ]
    );
    assert_eq!(
        verbose(&["stats"], None),
        [
            "INFO  configuration c.toml read",
            "INFO  database n.db opened",
            "INFO  counted 2 notifications",
        ]
    );
    // Without -v: nothing on stderr.
    assert_eq!(run_in(d, &["-c", "c.toml", "stats"], None).ok().stderr, "");
}

/// Issue 15, items 7 and 8: show's help says what a limit over 1000 does (and it does it);
/// list's help says what ATTEMPTS counts, and a failing notification shows it.
#[test]
fn show_limit_and_list_attempts_are_what_the_help_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let help = run_in(d, &["show", "--help"], None).ok().stdout;
    assert!(
        help.contains("--limit N      layers per side on the page (default 100; more than 1000 is served as\n                 1000, as the API does, and Limit says so)"),
        "{help}"
    );
    // A closed port on loopback: every try fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
        d.join("c.toml"),
        format!(
            "[database]\npath = \"n.db\"\n[notifier]\nattempts = 2\nmax_backoff = \"100ms\"\n\
             poll_interval = \"100ms\"\n[notifier.http]\nendpoint = \"http://127.0.0.1:{port}/hook\"\n\
             [api]\naddr = \"\"\n"
        ),
    )
    .unwrap();
    let name = run_in(d, &["-c", "c.toml", "add"], Some(&line("CVE-1", 1500)))
        .ok()
        .stdout
        .trim()
        .to_string();
    let r = run_in(d, &["-c", "c.toml", "show", &name, "--limit", "5000"], None).ok();
    let page: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(page["Notification"]["Limit"], 1000, "{r:?}");
    assert_eq!(
        page["Notification"]["New"]["LayersIntroducingVulnerability"]
            .as_array()
            .map(Vec::len),
        Some(1000)
    );

    let help = run_in(d, &["list", "--help"], None).ok().stdout;
    assert!(
        help.contains("ATTEMPTS is the number of failed tries in\nthe current delivery round"),
        "{help}"
    );
    let columns = |d: &Path| {
        let r = run_in(d, &["-c", "c.toml", "list"], None).ok();
        let cols: Vec<String> = r.stdout.trim_end().split('\t').map(String::from).collect();
        (cols[1].clone(), cols[5].clone(), cols[6].clone())
    };
    assert_eq!(
        columns(d),
        ("pending".into(), "0".into(), "-".into()),
        "never tried"
    );
    let mut serve = Running::start(d, &["-c", "c.toml", "serve"]);
    serve.wait_line("giving up this round after 2 attempts");
    serve.sigterm();
    let (code, log) = serve.finish();
    assert_eq!(code, 0, "{log:#?}");
    let (state, attempts, error) = columns(d);
    assert_eq!((state.as_str(), attempts.as_str()), ("failing", "2"));
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

/// Issue 15, item 14: the README's "Run it against your own endpoint", step by step as
/// written: its receiver, its configuration, its `add` line. Only the ports differ (free ones,
/// so that the test never clashes with a program on 8080 or 6060).
#[test]
fn the_readme_walkthrough_works_on_one_machine_as_written() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Run it against your own endpoint")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    assert!(section.contains("./target/release/clair-notifier receive\n"));
    let config = section
        .split("cat > clair-notifier.toml <<'EOF'\n")
        .nth(1)
        .and_then(|s| s.split("\nEOF\n").next())
        .unwrap();
    assert!(config.contains("endpoint = \"http://127.0.0.1:8080/clair-hook\""));
    let input = section
        .split("echo '")
        .nth(1)
        .and_then(|s| s.split("' \\").next())
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut receive = Running::start(d, &["receive", "--addr", "127.0.0.1:0"]);
    let listening = receive.wait_line("INFO  receiving webhooks on http://");
    let addr = listening
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (tx, received) = mpsc::channel();
    let stdout = receive.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::fs::write(
        d.join("clair-notifier.toml"),
        format!(
            "{}\n[api]\naddr = \"127.0.0.1:0\"\n",
            config.replace("127.0.0.1:8080", &addr)
        ),
    )
    .unwrap();
    let with_config = ["--config", "clair-notifier.toml"];
    let r = run_in(d, &[&with_config[..], &["check-config"]].concat(), None).ok();
    assert!(
        r.stdout.contains(&format!(
            "\ndatabase       notifications.db (will be created)\n\
             notifier       webhook POSTs to http://{addr}/clair-hook (timeout 5s)\n"
        )),
        "{r:?}"
    );
    let mut serve = Running::start(d, &[&with_config[..], &["serve"]].concat());
    serve.wait_line("read API listening on");
    let r = run_in(d, &[&with_config[..], &["add"]].concat(), Some(input)).ok();
    let name = r.stdout.trim().to_string();
    let webhook = received
        .recv_timeout(Duration::from_secs(20))
        .expect("the receiver printed a webhook within 20 s");
    assert_eq!(
        webhook,
        format!("{{\"Notification\":{{\"Name\":\"{name}\"}}}}")
    );
    let r = run_in(d, &[&with_config[..], &["show", &name]].concat(), None).ok();
    let page: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        page["Notification"]["New"]["Vulnerability"]["Name"],
        "CVE-2024-3094"
    );
    run_in(d, &[&with_config[..], &["mark-read", &name]].concat(), None).ok();
    serve.sigterm();
    receive.sigterm();
    let (code, log) = serve.finish();
    assert_eq!(code, 0, "{log:#?}");
    let (code, log) = receive.finish();
    assert_eq!(code, 0, "{log:#?}");
    assert!(
        log.iter().any(|l| l == "INFO  POST /clair-hook"),
        "{log:#?}"
    );
}
