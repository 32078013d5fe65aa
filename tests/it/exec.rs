//! The `exec` notifier against real programs (`/bin/sh` scripts given as argument lists), in
//! a service over a real SQLite file.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clair_notifier::{
    Datastore, Delivery, Notifier, NotifierConfig, SendError, SqliteStore, Timestamp, exec::Exec,
};

use crate::common::{sample, temp_db, validate, wait_for};

fn config(command: &[&str], timeout: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.params.insert(
        "exec".into(),
        serde_json::json!({ "command": command, "timeout": timeout }),
    );
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    c
}

/// An exec notifier bound to `store` and configured with `command`.
fn exec(store: &Arc<dyn Datastore>, command: &[&str], timeout: &str) -> Exec {
    let mut e = Exec::default();
    e.bind(store);
    assert!(e.configure(&config(command, timeout)).unwrap());
    e
}

/// A store holding one notification with `layers` layers: the store and its name.
fn one(dir: &Path, layers: usize) -> (Arc<dyn Datastore>, String) {
    let store: Arc<dyn Datastore> = Arc::new(SqliteStore::open(dir.join("n.db")).unwrap());
    let name = store
        .insert(&[sample("CVE-E", layers)], Timestamp::now())
        .unwrap()
        .remove(0);
    (store, name)
}

fn send(e: &Exec, name: &str) -> Result<(), SendError> {
    e.send(&Delivery {
        name: name.to_string(),
        created: Timestamp::now(),
        notified: None,
        attempt: 1,
    })
}

/// Whether process `pid` is gone (reaped, not a zombie).
fn gone(pid: &str) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn read_pid(path: &Path) -> String {
    wait_for("the program wrote its pid", Duration::from_secs(10), || {
        std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn the_service_runs_the_program_with_the_whole_notification_on_stdin() {
    let (dir, db) = temp_db();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    // 3000 layers: a document larger than a pipe's buffer.
    let names = store
        .insert(
            &[sample("CVE-1", 3000), sample("CVE-2", 1)],
            Timestamp::now(),
        )
        .unwrap();
    let script = "cat > \"$0/$CLAIR_NOTIFICATION_NAME.json\"";
    let c = config(&["/bin/sh", "-c", script, out.to_str().unwrap()], "30s");
    let handle = clair_notifier::Service::new(c, store.clone())
        .start()
        .unwrap();
    assert_eq!(handle.notifiers(), ["exec"]);
    wait_for("both notified", Duration::from_secs(30), || {
        store.counts(Timestamp::now()).unwrap().notified == 2
    });
    handle.stop();
    for (name, (cve, layers)) in names.iter().zip([("CVE-1", 3000), ("CVE-2", 1)]) {
        let text = std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap();
        assert!(
            text.ends_with("}\n"),
            "one line: {}",
            &text[text.len() - 20..]
        );
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let n = &doc["Notification"];
        assert_eq!(n["Name"], name.as_str());
        assert_eq!(n["New"]["Vulnerability"]["Name"], cve);
        let got = n["New"]["LayersIntroducingVulnerability"]
            .as_array()
            .unwrap();
        assert_eq!(got.len(), layers);
        assert_eq!(got[layers - 1], format!("sha256:{:064x}", layers - 1));
        for paging in ["Limit", "Page", "NextPage"] {
            assert!(n.get(paging).is_none(), "{paging} in {n}");
        }
    }
}

#[test]
fn a_failing_program_is_a_failed_attempt_with_an_excerpt_of_its_output() {
    let (dir, _) = temp_db();
    let (store, name) = one(dir.path(), 2);
    let e = exec(
        &store,
        &["/bin/sh", "-c", "echo 'no route\nto receiver' >&2; exit 3"],
        "30s",
    );
    let err = send(&e, &name).unwrap_err();
    assert_eq!(
        err.message(),
        "exec /bin/sh: exited with status 3: no route to receiver"
    );
    // Nothing on stderr: stdout is quoted; a long output is cut.
    let e = exec(
        &store,
        &[
            "/bin/sh",
            "-c",
            "head -c 1000000 /dev/zero | tr '\\0' x; exit 1",
        ],
        "30s",
    );
    let msg = send(&e, &name).unwrap_err().message().to_string();
    assert!(
        msg.starts_with("exec /bin/sh: exited with status 1: xxxx"),
        "{msg}"
    );
    assert!(msg.len() < 400, "{} bytes", msg.len());
    let e = exec(&store, &["/bin/sh", "-c", "kill -KILL $$"], "30s");
    assert_eq!(
        send(&e, &name).unwrap_err().message(),
        "exec /bin/sh: was killed by signal 9"
    );
    let e = exec(&store, &["/bin/sh", "-c", "exit 0"], "30s");
    send(&e, &name).unwrap();
}

/// Runs `script` (which starts a grandchild in its group, records both pids, and waits) with
/// `timeout`: the attempt's error and how long it took, once both processes are gone.
fn timed_out(script: &str, timeout: &str) -> (String, Duration) {
    let (dir, _) = temp_db();
    let (store, name) = one(dir.path(), 1);
    let pids = dir.path().join("pids");
    let script = format!("{script}; sleep 60 & echo $$ $! > \"$0\"; wait");
    let e = exec(
        &store,
        &["/bin/sh", "-c", &script, pids.to_str().unwrap()],
        timeout,
    );
    let started = Instant::now();
    let err = send(&e, &name).unwrap_err();
    let took = started.elapsed();
    // The property: the attempt ends near its timeout, not with the grandchild's minute.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let line = read_pid(&pids);
    let (shell, sleeper) = line.split_once(' ').unwrap();
    assert!(gone(shell), "the program {shell} is left (a zombie?)");
    wait_for("the grandchild is gone", Duration::from_secs(10), || {
        gone(sleeper)
    });
    (err.message().to_string(), took)
}

#[test]
fn the_timeout_ends_the_whole_process_group_and_leaves_no_zombie() {
    let (message, _) = timed_out(":", "300ms");
    assert_eq!(
        message,
        "exec /bin/sh: timed out after 300ms; its process group was sent SIGTERM"
    );
}

#[test]
fn a_group_that_ignores_sigterm_gets_sigkill_two_seconds_later() {
    // An ignored signal stays ignored in the children.
    let (message, took) = timed_out("trap '' TERM", "200ms");
    assert_eq!(
        message,
        "exec /bin/sh: timed out after 200ms; its process group was sent SIGTERM, then SIGKILL"
    );
    assert!(
        took >= Duration::from_secs(2),
        "SIGKILL came after only {took:?}"
    );
}

#[test]
fn a_successful_program_is_reaped_before_the_attempt_returns() {
    let (dir, _) = temp_db();
    let (store, name) = one(dir.path(), 1);
    let pid = dir.path().join("pid");
    let e = exec(
        &store,
        &["/bin/sh", "-c", "echo $$ > \"$0\"", pid.to_str().unwrap()],
        "30s",
    );
    for _ in 0..3 {
        send(&e, &name).unwrap();
        let p = read_pid(&pid);
        assert!(gone(&p), "program {p} not reaped");
    }
}

#[test]
fn bad_exec_tables_are_configuration_errors() {
    let err = validate(config(&["/nonexistent/notify-prog"], "30s"));
    assert_eq!(
        err.to_string(),
        "notifier.exec.command: the program \"/nonexistent/notify-prog\" does not exist"
    );
    let err = validate(config(&["/bin/sh"], "soon")).to_string();
    assert!(err.starts_with("notifier.exec.timeout"), "{err}");
}

/// `check-config` of the configuration `toml` (written in `dir`) exits 2 with `sentence`.
#[cfg(feature = "cli")]
pub(crate) fn check_config_refuses(dir: &Path, toml: &str, sentence: &str) {
    std::fs::write(dir.join("bad.toml"), toml).unwrap();
    crate::cli::run_in(dir, &["--config", "bad.toml", "check-config"], None).fails(2, sentence);
}

/// The binary with `[notifier.http]`, `[notifier.exec]` and `[notifier.jsonl]` at once: each
/// gets every notification.
#[cfg(feature = "cli")]
#[test]
fn the_binary_delivers_through_webhook_exec_and_jsonl_at_once() {
    use crate::cli::{line, run_in};
    use crate::common::bin::{log_tail, sigterm, spawn_serve, wait_exit};
    use crate::common::receiver::Receiver;

    let rx = Receiver::start(2);
    let (dir, _) = temp_db();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(
        d.join("serve.toml"),
        format!(
            "[database]\npath = \"n.db\"\n\
             [notifier]\npoll_interval = \"100ms\"\n\
             [notifier.http]\nendpoint = \"{}\"\n\
             [notifier.exec]\ncommand = [\"/bin/sh\", \"-c\", \
             \"cat > out/$CLAIR_NOTIFICATION_NAME.json\"]\ntimeout = \"10s\"\n\
             [notifier.jsonl]\npath = \"n.jsonl\"\n\
             [api]\naddr = \"\"\n",
            rx.url()
        ),
    )
    .unwrap();
    check_config_refuses(
        d,
        "[notifier.exec]\ncommand = [\"/nonexistent/prog\", \"-x\"]\n",
        "notifier.exec.command: the program \"/nonexistent/prog\" does not exist",
    );
    let check = run_in(d, &["--config", "serve.toml", "check-config"], None).ok();
    for name in ["webhook", "exec", "jsonl"] {
        assert!(
            check.stdout.contains(&format!("notifier       {name}")),
            "{}",
            check.stdout
        );
    }
    let added = run_in(
        d,
        &["--config", "serve.toml", "add"],
        Some(&format!("{}\n{}\n", line("CVE-1", 3), line("CVE-2", 1))),
    )
    .ok();
    let names: BTreeSet<String> = added.stdout.lines().map(str::to_string).collect();
    assert_eq!(names.len(), 2, "{}", added.stdout);
    let mut child = spawn_serve(d);
    let jsonl_names = || {
        std::fs::read_to_string(d.join("n.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let doc: serde_json::Value = serde_json::from_str(l).unwrap();
                doc["Notification"]["Name"].as_str().unwrap().to_string()
            })
            .collect::<BTreeSet<_>>()
    };
    wait_for(
        "every notifier delivered both",
        Duration::from_secs(60),
        || {
            rx.count() >= 2
                && jsonl_names() == names
                && names
                    .iter()
                    .all(|n| d.join(format!("out/{n}.json")).exists())
        },
    );
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30), d);
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 30));
    let webhook: BTreeSet<String> = rx.requests().iter().map(|r| r.name()).collect();
    assert_eq!(webhook, names);
}
