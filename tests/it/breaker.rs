//! The circuit breaker with the real binary: a receiver that fails opens the webhook's
//! circuit (one log line), probes go out one per `breaker_probe` without spending attempts,
//! and once the receiver recovers the first probe closes it (one log line) and every
//! notification is delivered. On each backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clair_notifier::{Delivery, Notifier, NotifierConfig, Registry, SendError, Service, Timestamp};

use crate::cli::run_in;
use crate::common::backends::{TestDb, on_every_backend};
use crate::common::bin::log_count;
use crate::common::receiver::Receiver;
use crate::common::{sample, wait_for};
use crate::operate::{spawn_serve, stop_on};

const OPENED: &str = "circuit of notifier webhook opened";
const CLOSED: &str = "circuit of notifier webhook closed";
const HELD: &str = "every notifier is held";

on_every_backend!(
    an_open_circuit_sends_only_spaced_probes_and_a_recovery_delivers_everything,
    sends_to_the_other_notifiers_go_on_while_one_circuit_is_open,
);

fn an_open_circuit_sends_only_spaced_probes_and_a_recovery_delivers_everything(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start(4);
    receiver.set_status(503);
    std::fs::write(
        d.join("serve.toml"),
        format!(
            "{}[notifier]\nworkers = 4\n\
             poll_interval = \"100ms\"\nmax_backoff = \"200ms\"\nbreaker_failures = 5\n\
             breaker_probe = \"500ms\"\n[notifier.http]\nendpoint = \"{}\"\n[api]\naddr = \"\"\n",
            db.config_table(),
            receiver.url()
        ),
    )
    .unwrap();
    let store = db.open();
    let batch: Vec<_> = (0..300).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    let serve = spawn_serve(d);
    wait_for("the circuit to open", Duration::from_secs(30), || {
        log_count(d, OPENED) == 1
    });
    assert_eq!(log_count(d, OPENED), 1, "one line per opening");
    // Two polls later, and once nothing is leased, sends that were under way when it opened
    // are over (a slow receiver may hold one up to the timeout): what comes next are probes.
    let held = log_count(d, HELD);
    wait_for("two polls while open", Duration::from_secs(10), || {
        log_count(d, HELD) >= held + 2
    });
    wait_for("sends under way to end", Duration::from_secs(30), || {
        db.rows_with_lease() == 0
    });
    let (before, spent) = (receiver.count(), db.attempts_spent());
    wait_for("three probes", Duration::from_secs(30), || {
        receiver.count() >= before + 3
    });
    let probes: Vec<_> = receiver.requests()[before..].iter().map(|r| r.at).collect();
    for pair in probes.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(450), "probes {gap:?} apart");
    }
    assert_eq!(
        db.attempts_spent(),
        spent,
        "a probe or a wait spent an attempt"
    );
    let cfg = ["--config", "serve.toml"];
    let stats = run_in(d, &[&cfg[..], &["stats", "--json"]].concat(), None).ok();
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["notifiers"]["webhook"]["circuit"], "open", "{stats:?}");
    assert!(
        v["notifiers"]["webhook"]["failures"].as_u64() >= Some(5),
        "{stats:?}"
    );

    assert_eq!(
        log_count(d, OPENED),
        1,
        "one line per opening, not per failure"
    );
    // A restart keeps the circuit open: still only probes, and no second opening.
    stop_on(&db, serve, d);
    let serve = spawn_serve(d);
    let before = receiver.count();
    wait_for(
        "two probes after the restart",
        Duration::from_secs(30),
        || receiver.count() >= before + 2,
    );
    let probes: Vec<_> = receiver.requests()[before..].iter().map(|r| r.at).collect();
    assert!(probes[1] - probes[0] >= Duration::from_millis(450));
    assert_eq!(log_count(d, OPENED), 0, "the restart opened it again");

    receiver.set_status(200);
    wait_for("every notification", Duration::from_secs(60), || {
        let c = store.counts(Timestamp::now()).unwrap();
        c.notified == names.len() as u64
    });
    assert_eq!(log_count(d, CLOSED), 1);
    let delivered: std::collections::HashSet<String> =
        receiver.requests().iter().map(|r| r.name()).collect();
    assert_eq!(delivered.len(), names.len());
    stop_on(&db, serve, d);
}

/// A receiver that answers each probe only after a second: the instance sends its next probe
/// once the last one is answered, not one per `breaker_probe` piling up in its queue (which
/// its workers would send all at once when they came free).
#[test]
fn a_slow_receiver_gets_one_probe_at_a_time() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receiver = Receiver::start(4);
    receiver.set_status(503);
    receiver.set_delay(Duration::from_secs(1));
    std::fs::write(
        d.join("serve.toml"),
        format!(
            "{}[notifier]\nworkers = 4\npoll_interval = \"50ms\"\nmax_backoff = \"100ms\"\n\
             breaker_failures = 3\nbreaker_probe = \"100ms\"\n[notifier.http]\n\
             endpoint = \"{}\"\n[api]\naddr = \"\"\n",
            db.config_table(),
            receiver.url()
        ),
    )
    .unwrap();
    let batch: Vec<_> = (0..50).map(|i| sample(&format!("CVE-{i}"), 1)).collect();
    db.open().insert(&batch, Timestamp::now()).unwrap();
    let serve = spawn_serve(d);
    wait_for("the circuit to open", Duration::from_secs(30), || {
        log_count(d, OPENED) == 1
    });
    // The sends under way when it opened are answered within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let before = receiver.count();
    std::thread::sleep(Duration::from_secs(3));
    let probes = receiver.count() - before;
    // One probe a second at most (each waits for the last one's answer): three in three
    // seconds, four with the window's edges; one per breaker_probe would be thirty.
    assert!((1..=4).contains(&probes), "{probes} probes in 3 s");
    stop_on(&db, serve, d);
}

#[test]
fn new_breaker_keys_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (body, needle) in [
        (
            "breaker_failures = -1",
            "notifier.breaker_failures: expected a whole number",
        ),
        (
            "breaker_probe = \"soon\"",
            "notifier.breaker_probe: invalid duration \"soon\"",
        ),
        (
            "breaker_probe = \"0s\"",
            "notifier.breaker_probe must be longer than 0",
        ),
    ] {
        std::fs::write(d.join("c.toml"), format!("[notifier]\n{body}\n")).unwrap();
        run_in(d, &["--config", "c.toml", "check-config"], None).fails(2, needle);
    }
    for (body, said) in [
        (
            "breaker_failures = 7\nbreaker_probe = \"1m\"",
            "opens after 7 consecutive failed sends; then one probe every 1m",
        ),
        ("breaker_failures = 0", "breaker        off"),
    ] {
        let hook = "[notifier.http]\nendpoint = \"http://127.0.0.1:9/hook\"";
        std::fs::write(d.join("c.toml"), format!("[notifier]\n{body}\n{hook}\n")).unwrap();
        let r = run_in(d, &["--config", "c.toml", "check-config"], None).ok();
        assert!(r.stdout.contains(said), "{r:?}");
    }
}

/// A notifier that fails every send (`fails`) or succeeds, counting its calls and names.
struct Counting {
    fails: bool,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Notifier for Counting {
    fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }
    fn send(&self, d: &Delivery) -> Result<(), SendError> {
        self.seen.lock().unwrap().push(d.name.clone());
        if self.fails {
            Err(SendError::new("down"))
        } else {
            Ok(())
        }
    }
}

fn sends_to_the_other_notifiers_go_on_while_one_circuit_is_open(db: TestDb) {
    let store = db.open();
    let (bad, good) = (Arc::default(), Arc::<Mutex<Vec<String>>>::default());
    let mut registry = Registry::new();
    registry.register(
        "bad",
        Counting {
            fails: true,
            seen: Arc::clone(&bad),
        },
    );
    registry.register(
        "good",
        Counting {
            fails: false,
            seen: Arc::clone(&good),
        },
    );
    let mut config = NotifierConfig::default();
    config.breaker.failures = 3;
    config.breaker.probe = Duration::from_secs(3600);
    config.max_backoff = Duration::from_millis(50);
    let handle = Service::new(config, store.clone())
        .registry(registry)
        .start()
        .unwrap();
    let first: Vec<_> = (0..20).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.insert(&first, Timestamp::now()).unwrap();
    wait_for("bad's circuit to open", Duration::from_secs(30), || {
        let states = store.notifiers(Timestamp::now()).unwrap();
        states
            .iter()
            .any(|s| s.notifier == "bad" && s.open_since.is_some())
    });
    let before = bad.lock().unwrap().len();
    let more: Vec<_> = (0..50).map(|i| sample(&format!("CVE-x{i}"), 0)).collect();
    let names = store.insert(&more, Timestamp::now()).unwrap();
    wait_for("good to get every new one", Duration::from_secs(30), || {
        let seen = good.lock().unwrap();
        names.iter().all(|n| seen.contains(n))
    });
    let after = bad.lock().unwrap().len();
    assert!(
        after <= before + 8,
        "bad got {} sends while open",
        after - before
    );
    // Every notification's round now waits only for bad, without an attempt spent on it.
    wait_for("all 70 put aside for bad", Duration::from_secs(30), || {
        let states = store.notifiers(Timestamp::now()).unwrap();
        states
            .iter()
            .any(|s| s.notifier == "bad" && s.waiting == 70)
    });
    for n in &names {
        assert_eq!(store.summary(n).unwrap().unwrap().attempts, 0, "{n}");
    }
    handle.stop();
}
