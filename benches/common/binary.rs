//! The `clair-notifier` binary as a user runs it: `add` of N notifications into a fresh
//! database, then `serve`, timed from the start of `serve` to the last POST nginx logged.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use clair_notifier::{Datastore, SqliteStore, Timestamp};

use super::nginx::Nginx;

/// The binary cargo built beside the benchmark (absent when built without the `cli` feature).
pub fn program() -> Option<PathBuf> {
    option_env!("CARGO_BIN_EXE_clair-notifier").map(PathBuf::from)
}

/// Writes `n` notifications as `add`'s JSON lines (the same content as [`super::notification`]
/// with no layers), once per size, in `dir`.
pub fn input(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("add-{n}.jsonl"));
    let mut text = String::with_capacity(n * 160);
    for i in 0..n {
        text.push_str(&format!(
            concat!(
                r#"{{"New":{{"Vulnerability":{{"Name":"CVE-2024-{:05}","NamespaceName":"debian:12","#,
                r#""Severity":"High","Description":"new description of a vulnerability in openssl"}},"#,
                r#""LayersIntroducingVulnerability":[]}}}}"#,
                "\n"
            ),
            i
        ));
    }
    std::fs::write(&path, text).expect("write add input");
    path
}

/// One run: a fresh database in a new temp dir, `add` of the `n` lines of `input` (not
/// timed), then `serve` with `workers` workers until nginx has logged `n` POSTs. Returns the
/// rate in notifications/s, after checking that nginx logged exactly `n` POSTs answered 200
/// and that the store holds `n` notified and nothing else.
pub fn serve_run(program: &Path, nginx: &mut Nginx, input: &Path, n: usize, workers: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("clair-notifier.toml");
    let db = dir.path().join("bench.db");
    std::fs::write(
        &config,
        format!(
            r#"[database]
path = "{}"

[notifier]
workers = {workers}
poll_interval = "50ms"

[notifier.http]
endpoint = "{}"

[api]
addr = ""
"#,
            db.display(),
            nginx.url()
        ),
    )
    .expect("write config");
    let add = Command::new(program)
        .arg("--config")
        .arg(&config)
        .arg("add")
        .arg(input)
        .stdout(Stdio::null())
        .output()
        .expect("run add");
    assert!(
        add.status.success(),
        "add failed: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    // Let the checkpoint of the insert settle before the clock starts.
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("serve log");
    nginx.mark();
    let start = SystemTime::now();
    let mut serve = Command::new(program)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start serve");
    let logged = nginx.wait_for("serve", n, Duration::from_secs(600));
    let pid = rustix::process::Pid::from_raw(serve.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM serve");
    let status = serve.wait().expect("wait for serve");
    let serve_log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(status.success(), "serve exited {status}: {serve_log}");
    let after = nginx.logged();
    assert_eq!(
        (after.lines, after.posts_ok),
        (n, n),
        "serve: nginx logged exactly {n} POSTs answered 200"
    );
    let counts = SqliteStore::open(&db)
        .expect("open the served store")
        .counts(Timestamp::now())
        .expect("counts");
    assert_eq!(
        (counts.notified, counts.total(), counts.due),
        (n as u64, n as u64, 0),
        "serve: every notification recorded as notified, once; serve log: {serve_log}"
    );
    let end = logged.last.expect("a logged time");
    let secs = end.duration_since(start).unwrap_or_default().as_secs_f64();
    // nginx's clock has millisecond steps: a run shorter than that is not measured.
    n as f64 / secs.max(0.001)
}
