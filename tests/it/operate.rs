//! The operators' commands with the real binary, on each backend: `pause`/`resume` while
//! `serve` drains a backlog (no POST while paused, every notification after), `resend` (one,
//! read ones, `--failing`) while `serve` delivers, and their mistakes.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clair_notifier::Timestamp;

use crate::cli::run_in;
use crate::common::backends::{TestDb, on_every_backend};
use crate::common::bin::{BIN, log_count, log_tail, rows_with_lease_owner, sigterm, wait_exit};
use crate::common::receiver::Receiver;
use crate::common::{sample, wait_for};

const WORKERS: usize = 4;
const PAUSED: &str = "notifier webhook is paused";
const LOOKED: &str = "every notifier is held (paused or its circuit open): claiming only probes";

on_every_backend!(
    pause_stops_every_post_and_resume_delivers_the_rest_once,
    resend_while_serve_delivers_loses_and_breaks_nothing,
    operator_commands_refuse_bad_input_with_one_sentence,
);

/// `serve.toml` in `dir`: the database `db`, a fast poll, the webhook at `url`.
pub(crate) fn write_config(dir: &Path, db: &TestDb, url: &str) {
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "{}[notifier]\nworkers = {WORKERS}\n\
             poll_interval = \"100ms\"\nmax_backoff = \"200ms\"\n\
             [notifier.http]\nendpoint = \"{url}\"\n[api]\naddr = \"\"\n",
            db.config_table()
        ),
    )
    .unwrap();
}

/// `serve` in `dir`, logging its scanner's debug lines (each poll while paused says so).
pub(crate) fn spawn_serve(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Command::new(BIN)
        .args(["--config", "serve.toml", "serve"])
        .current_dir(dir)
        .env("RUST_LOG", "info,clair_notifier::service::scanner=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start serve")
}

fn insert(db: &TestDb, n: usize) -> Vec<String> {
    let batch: Vec<_> = (0..n).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    db.open().insert(&batch, Timestamp::now()).unwrap()
}

/// Stops `serve` (started in `dir`) with SIGTERM: it exits 0 and leaves no lease on `db`.
pub(crate) fn stop_on(db: &TestDb, child: Child, dir: &Path) {
    exits_cleanly(child, dir);
    assert_eq!(db.rows_with_lease(), 0, "{}", log_tail(dir, 20));
}

/// [`stop_on`] for a `serve` on the SQLite file `notifier.db` in `dir`.
pub(crate) fn stop(child: Child, dir: &Path) {
    exits_cleanly(child, dir);
    assert_eq!(rows_with_lease_owner(&dir.join("notifier.db")), 0);
}

fn exits_cleanly(mut child: Child, dir: &Path) {
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30), dir);
    assert!(status.success(), "{status:?}: {}", log_tail(dir, 20));
}

fn distinct(receiver: &Receiver) -> HashSet<String> {
    receiver.requests().iter().map(|r| r.name()).collect()
}

fn pause_stops_every_post_and_resume_delivers_the_rest_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start(8);
    receiver.set_delay(Duration::from_millis(5));
    write_config(d, &db, &receiver.url());
    let names = insert(&db, 2000);
    let serve = spawn_serve(d);
    wait_for("a part of the backlog", Duration::from_secs(60), || {
        receiver.count() >= 200
    });
    let cfg = ["--config", "serve.toml"];
    run_in(d, &[&cfg[..], &["pause", "webhook"]].concat(), None).ok();
    wait_for("serve to see the pause", Duration::from_secs(10), || {
        log_count(d, PAUSED) == 1
    });
    let seen = receiver.count();
    // Two polls later, the sends that were under way have ended ...
    let polls = log_count(d, LOOKED);
    wait_for("two polls while paused", Duration::from_secs(10), || {
        log_count(d, LOOKED) >= polls + 2
    });
    let settled = receiver.count();
    assert!(
        settled <= seen + WORKERS,
        "{} POSTs after the pause was seen",
        settled - seen
    );
    // ... and three more polls bring no POST at all.
    wait_for(
        "three more polls while paused",
        Duration::from_secs(10),
        || log_count(d, LOOKED) >= polls + 5,
    );
    assert_eq!(receiver.count(), settled, "a POST arrived while paused");
    assert!(
        settled < names.len(),
        "the backlog was not drained before the pause"
    );

    let stats = run_in(d, &[&cfg[..], &["stats", "--json"]].concat(), None).ok();
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["notifiers"]["webhook"]["paused"], true, "{stats:?}");
    assert_eq!(v["failing"], 0, "waiting is not failing: {stats:?}");
    let list = run_in(d, &[&cfg[..], &["list", "--limit", "1"]].concat(), None).ok();
    assert!(
        list.stderr.contains("notifier webhook is paused since"),
        "{list:?}"
    );
    assert_eq!(db.attempts_spent(), 0, "a wait spent attempts");

    run_in(d, &[&cfg[..], &["resume", "webhook"]].concat(), None).ok();
    wait_for("every notification", Duration::from_secs(120), || {
        distinct(&receiver).len() == names.len()
    });
    assert_eq!(
        receiver.count(),
        names.len(),
        "a notification was sent twice"
    );
    assert_eq!(log_count(d, "notifier webhook resumed"), 1);
    stop_on(&db, serve, d);
}

fn resend_while_serve_delivers_loses_and_breaks_nothing(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start(4);
    write_config(d, &db, &receiver.url());
    let names = insert(&db, 300);
    // The first ones fail for good: their notifications are failing until resent.
    for n in &names[..20] {
        receiver.status_for(n, 503);
    }
    let serve = spawn_serve(d);
    let cfg = ["--config", "serve.toml"];
    let failing = || {
        let r = run_in(d, &[&cfg[..], &["stats", "--json"]].concat(), None).ok();
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["failing"]
            .as_u64()
            .unwrap()
    };
    wait_for("the failing ones", Duration::from_secs(60), || {
        failing() == 20
    });
    for n in &names[..20] {
        receiver.status_for(n, 200);
    }
    // One resent by name and then all with --failing, while serve retries them.
    run_in(d, &[&cfg[..], &["resend", &names[0]]].concat(), None).ok();
    let r = run_in(d, &[&cfg[..], &["resend", "--failing"]].concat(), None).ok();
    let resent: u64 = r.stdout.trim().parse().unwrap();
    assert!(resent <= 20, "{r:?}");
    let store = db.open();
    wait_for(
        "every notification delivered",
        Duration::from_secs(60),
        || {
            let c = store.counts(Timestamp::now()).unwrap();
            c.notified == names.len() as u64
        },
    );
    assert_eq!(distinct(&receiver).len(), names.len());
    // The ones that never failed went out once: resends touched only failing ones.
    for n in &names[20..] {
        assert_eq!(receiver.count_for(n), 1, "{n}");
    }
    stop_on(&db, serve, d);
}

fn operator_commands_refuse_bad_input_with_one_sentence(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("serve.toml"), db.config_table()).unwrap();
    let names = insert(&db, 2);
    let cfg = ["--config", "serve.toml"];
    let run = |args: &[&str]| run_in(d, &[&cfg[..], args].concat(), None);

    run(&["pause", "nope"]).fails(2, "there is no notifier named \"nope\"");
    run(&["resume", "nope"]).fails(2, "the notifiers are exec, jsonl, webhook");
    run(&["pause"]).fails(2, "pause needs a NOTIFIER name");
    run(&["pause", "webhook", "x"]).fails(2, "unexpected argument \"x\"");
    run(&["pause", "webhook", "--unread"]).fails(2, "pause takes no option --unread");
    run(&["resend"]).fails(2, "resend needs a notification NAME (or --failing)");
    run(&["resend", &names[0], "--failing"]).fails(2, "a NAME or --failing, not both");
    run(&["resend", "--failing", "--unread"]).fails(2, "takes no --unread");
    run(&["resend", "nope"]).fails(1, "there is no notification named \"nope\"");

    // Twice in a row: the same answer, nothing more changed.
    for _ in 0..2 {
        run(&["pause", "webhook"]).ok();
    }
    let stats = run(&["stats"]).ok();
    assert!(
        stats.stdout.contains("paused         webhook\n"),
        "{stats:?}"
    );
    for _ in 0..2 {
        run(&["resume", "webhook"]).ok();
    }
    assert!(run(&["stats"]).ok().stdout.contains("paused         -\n"));

    run(&["mark-read", &names[1]]).ok();
    for _ in 0..2 {
        run(&["resend", &names[1]]).fails(1, "is read, so it is not resent");
    }
    run(&["resend", &names[1], "--unread"]).ok();
    run(&["resend", &names[1], "--unread"]).ok();
    let list = run(&["list", "--state", "read"]).ok();
    assert_eq!(list.stdout, "", "{list:?}");
    assert_eq!(run(&["resend", "--failing"]).ok().stdout, "0\n");
    for c in ["resend", "pause", "resume"] {
        let r = run_in(d, &[c, "--help"], None).ok();
        assert!(
            r.stdout
                .contains(&format!("clair-notifier [--config FILE] {c}")),
            "{r:?}"
        );
    }
}
