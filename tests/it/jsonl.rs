//! The `jsonl` notifier: lines appended by a service with many workers to a real file, which
//! is moved away (logrotate) while deliveries go on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use clair_notifier::{Datastore, NotifierConfig, Registry, Service, SqliteStore, Timestamp};

use crate::common::{sample, temp_db, validate, wait_for};

fn config(path: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.params
        .insert("jsonl".into(), serde_json::json!({ "path": path }));
    c.workers = 8;
    c.poll_interval = Duration::from_millis(50);
    c
}

/// The names of the documents in the lines of `text`; every line must be a whole document.
fn names_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let doc: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            doc["Notification"]["Name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn concurrent_deliveries_append_whole_lines_and_survive_a_rotation() {
    let (dir, db) = temp_db();
    let path = dir.path().join("notifications.jsonl");
    let rotated = dir.path().join("notifications.jsonl.1");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let handle = Service::new(config(path.to_str().unwrap()), store.clone())
        .start()
        .unwrap();
    assert_eq!(handle.notifiers(), ["jsonl"]);
    // Long lines (200 layers) from 8 workers: any interleaving would break a line.
    let batch: Vec<_> = (0..100).map(|i| sample(&format!("CVE-{i}"), 200)).collect();
    let mut inserted: BTreeSet<String> = store
        .insert(&batch, Timestamp::now())
        .unwrap()
        .into_iter()
        .collect();
    wait_for("100 notified", Duration::from_secs(60), || {
        store.counts(Timestamp::now()).unwrap().notified == 100
    });
    std::fs::rename(&path, &rotated).unwrap();
    let later = store
        .insert(&[sample("CVE-A", 3), sample("CVE-B", 3)], Timestamp::now())
        .unwrap();
    wait_for("2 more notified", Duration::from_secs(60), || {
        store.counts(Timestamp::now()).unwrap().notified == 102
    });
    handle.stop();

    let before = names_of(&std::fs::read_to_string(&rotated).unwrap());
    let after = names_of(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(before.len(), 100);
    assert_eq!(before.iter().cloned().collect::<BTreeSet<_>>(), inserted);
    assert_eq!(
        after.iter().cloned().collect::<BTreeSet<_>>(),
        later.iter().cloned().collect()
    );
    inserted.extend(later);
    let doc: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&rotated)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let layers = doc["Notification"]["New"]["LayersIntroducingVulnerability"]
        .as_array()
        .unwrap();
    assert_eq!(layers.len(), 200, "every layer, no paging");
    assert!(doc["Notification"].get("NextPage").is_none());
}

#[test]
fn jsonl_is_a_builtin_and_bad_tables_are_configuration_errors() {
    assert!(
        Registry::with_builtins()
            .names()
            .iter()
            .any(|n| n == "jsonl")
    );
    let (dir, _) = temp_db();
    let missing = dir.path().join("missing/n.jsonl");
    let err = validate(config(missing.to_str().unwrap())).to_string();
    assert!(err.starts_with("notifier.jsonl.path"), "{err}");
    let mut c = NotifierConfig::default();
    c.params
        .insert("jsonl".into(), serde_json::json!({ "path": 5 }));
    let err = validate(c).to_string();
    assert_eq!(err, "notifier.jsonl.path must be a string");
}

/// `serve` with `path = "-"`: the lines come out on its stdout, and a bad table stops
/// `check-config` with exit status 2.
#[cfg(feature = "cli")]
#[test]
fn serve_writes_the_lines_to_stdout_with_a_dash() {
    use std::io::BufRead;

    use crate::cli::{line, run_in};
    use crate::common::bin::{sigterm, wait_exit};

    let (dir, _) = temp_db();
    let d = dir.path();
    std::fs::write(
        d.join("serve.toml"),
        "[database]\npath = \"n.db\"\n[notifier]\npoll_interval = \"100ms\"\n\
         [notifier.jsonl]\npath = \"-\"\n[api]\naddr = \"\"\n",
    )
    .unwrap();
    crate::exec::check_config_refuses(
        d,
        "[notifier.jsonl]\npath = \"no/dir/n.jsonl\"\n",
        "notifier.jsonl.path \"no/dir/n.jsonl\": the directory no/dir does not exist",
    );
    let added = run_in(
        d,
        &["--config", "serve.toml", "add"],
        Some(&format!("{}\n{}\n", line("CVE-1", 2), line("CVE-2", 2))),
    )
    .ok();
    let names: BTreeSet<String> = added.stdout.lines().map(str::to_string).collect();
    let mut child = crate::promises::Running::start(d, &["--config", "serve.toml", "serve"]).child;
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let mut got = Vec::new();
    while got.len() < 2 {
        let l = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("two lines on serve's stdout within 30 s");
        got.push(l);
    }
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(30), d).code(),
        Some(0)
    );
    let seen: BTreeSet<String> = names_of(&got.join("\n")).into_iter().collect();
    assert_eq!(seen, names);
}
