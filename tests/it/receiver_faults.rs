//! Receiver faults, through the real `Service` and the webhook notifier: one misbehaving
//! notification among healthy ones, on a raw-socket receiver (`common::faulty`). For each
//! fault: the attempt is classified and recorded (`last_error`, `attempts`), its retry is
//! scheduled in the store within `max_backoff`, the healthy notifications are all delivered
//! meanwhile (the workers are never all stuck), and the notification is delivered once the
//! receiver recovers.

use std::sync::Arc;
use std::time::Duration;

use clair_notifier::{Datastore, Handle, NotifierConfig, Service, State, Timestamp};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::faulty::{Fault, Faulty, Hit};
use crate::common::{sample, wait_for};

/// Signed POSTs carry the notification's name in `webhook-id` (`<name>.<round>`), which the
/// receiver reads before the body.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEALTHY: usize = 30;

struct Rig {
    rx: Faulty,
    store: Arc<dyn Datastore>,
    config: NotifierConfig,
}

fn rig(db: &TestDb, timeout: Duration, max_backoff: Duration) -> Rig {
    let rx = Faulty::start();
    let store = db.open();
    let mut config = NotifierConfig::default();
    config.http.endpoint = rx.url();
    config.http.signing_secret = SECRET.into();
    config.http.timeout = timeout;
    config.attempts = 1000;
    config.workers = 2;
    config.poll_interval = Duration::from_millis(50);
    config.max_backoff = max_backoff;
    Rig { rx, store, config }
}

impl Rig {
    fn insert(&self, what: &str) -> String {
        self.store
            .insert(&[sample(what, 1)], Timestamp::now())
            .unwrap()[0]
            .clone()
    }

    fn start(&self) -> Handle {
        Service::new(self.config.clone(), self.store.clone())
            .start()
            .unwrap()
    }

    fn summary(&self, name: &str) -> clair_notifier::NotificationSummary {
        self.store.summary(name).unwrap().unwrap()
    }

    fn insert_healthy(&self) -> Vec<String> {
        let batch: Vec<_> = (0..HEALTHY)
            .map(|i| sample(&format!("CVE-OK-{i}"), 1))
            .collect();
        self.store.insert(&batch, Timestamp::now()).unwrap()
    }

    fn all_notified(&self, names: &[String]) -> bool {
        names.iter().all(|n| self.summary(n).notified.is_some())
    }
}

on_every_backend!(
    server_errors_500_and_503_are_retried,
    a_redirect_is_a_failure_and_is_not_followed,
    a_receiver_that_never_answers_times_out,
    a_connection_closed_mid_request_is_a_failed_attempt,
    a_connection_closed_mid_status_line_is_a_failed_attempt,
    an_answer_dripped_byte_by_byte_is_bounded_by_the_timeout,
    an_endless_error_body_is_read_a_bounded_amount,
    a_2xx_with_a_cut_endless_or_huge_body_is_a_delivery,
    retry_after_is_honoured_and_capped_at_max_backoff,
);

/// Runs one faulty notification among healthy ones, checks what is recorded, lets the
/// receiver recover, and returns the rig for fault-specific checks.
fn fault_then_recover(db: &TestDb, fault: Fault, expect: &str, timeout: Duration) -> (Rig, String) {
    let max_backoff = Duration::from_millis(300);
    let r = rig(db, timeout, max_backoff);
    let bad = r.insert("CVE-BAD");
    r.rx.set(&bad, Some(fault.clone()));
    let handle = r.start();
    let healthy = r.insert_healthy();
    wait_for(
        "the healthy ones delivered",
        Duration::from_secs(30),
        || r.all_notified(&healthy),
    );
    wait_for("two failed attempts", Duration::from_secs(30), || {
        r.summary(&bad).attempts >= 2
    });
    let s = r.summary(&bad);
    assert_eq!(s.state(), State::Failing, "{fault:?}: {s:?}");
    assert_eq!(s.notified, None);
    let error = s.last_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("webhook: POST ") && error.contains(expect),
        "{fault:?}: wanted {expect:?} in {error:?}"
    );
    assert!(!error.contains('\n'), "{error:?}");
    // The retry is scheduled in the store, within max_backoff of the last attempt.
    let due = s.due.expect("a retry is scheduled");
    let last = r.rx.hits_for(&bad).last().unwrap().ts;
    assert!(
        due <= last.plus(timeout + max_backoff + Duration::from_secs(1)),
        "{fault:?}: due {due:?}, last attempt {last:?}"
    );
    // The receiver recovers: delivered at the next retry.
    r.rx.set(&bad, None);
    wait_for("delivered after recovery", Duration::from_secs(30), || {
        r.summary(&bad).notified.is_some()
    });
    let s = r.summary(&bad);
    assert_eq!(
        (s.state(), s.attempts, s.last_error),
        (State::Notified, 0, None)
    );
    handle.stop();
    (r, bad)
}

fn server_errors_500_and_503_are_retried(db: TestDb) {
    for status in [500, 503] {
        fault_then_recover(
            &db,
            Fault::Status(status, vec![]),
            &format!("got status {status}"),
            Duration::from_secs(2),
        );
    }
}

fn a_redirect_is_a_failure_and_is_not_followed(db: TestDb) {
    let probe = Faulty::start();
    let location = format!("http://{}/elsewhere", probe.addr);
    let (r, _) = fault_then_recover(
        &db,
        Fault::Status(302, vec![("Location".into(), location.clone())]),
        &format!("got status 302 Found, expected 2xx (redirect to {location} not followed)"),
        Duration::from_secs(2),
    );
    assert!(r.rx.paths().iter().all(|p| p == "/hook"));
    assert!(probe.paths().is_empty(), "the redirect was followed");
}

fn a_receiver_that_never_answers_times_out(db: TestDb) {
    let timeout = Duration::from_millis(800);
    let (r, bad) = fault_then_recover(&db, Fault::Silent, "timed out after 800ms", timeout);
    for e in r.rx.endings_for(&bad) {
        // The client gave up after its timeout (not before, not much after).
        assert!(e.after >= timeout / 2, "{e:?}");
        assert!(e.after < timeout + Duration::from_secs(3), "{e:?}");
    }
}

fn a_connection_closed_mid_request_is_a_failed_attempt(db: TestDb) {
    fault_then_recover(
        &db,
        Fault::CloseMidRequest,
        "io: Peer disconnected",
        Duration::from_secs(2),
    );
}

fn a_connection_closed_mid_status_line_is_a_failed_attempt(db: TestDb) {
    fault_then_recover(
        &db,
        Fault::CloseMidStatus,
        "io: Peer disconnected",
        Duration::from_secs(2),
    );
}

fn an_answer_dripped_byte_by_byte_is_bounded_by_the_timeout(db: TestDb) {
    let timeout = Duration::from_millis(1000);
    let (r, bad) = fault_then_recover(&db, Fault::Drip, "timed out after 1s", timeout);
    let endings = r.rx.endings_for(&bad);
    assert!(!endings.is_empty());
    for e in endings {
        assert!(e.after < timeout + Duration::from_secs(3), "{e:?}");
        assert!(
            e.bytes_written < 100,
            "the whole answer was never written: {e:?}"
        );
    }
}

fn an_endless_error_body_is_read_a_bounded_amount(db: TestDb) {
    let timeout = Duration::from_secs(2);
    let (r, bad) = fault_then_recover(&db, Fault::Endless(500), "got status 500", timeout);
    for e in r.rx.endings_for(&bad) {
        assert!(e.after < timeout + Duration::from_secs(3), "{e:?}");
        // What the kernel's socket buffers hold, not the endless stream.
        assert!(e.bytes_written < 32 << 20, "{e:?}");
    }
}

/// Once a 2xx status has arrived, the answer's body does not matter: cut short, endless or
/// huge, the notification is delivered at the first attempt, and the attempt is bounded.
fn a_2xx_with_a_cut_endless_or_huge_body_is_a_delivery(db: TestDb) {
    let timeout = Duration::from_secs(2);
    let r = rig(&db, timeout, Duration::from_millis(300));
    let faults = [Fault::CloseMidBody, Fault::Endless(200), Fault::Huge];
    let names: Vec<String> = faults
        .iter()
        .map(|f| {
            let n = r.insert("CVE-BODY");
            r.rx.set(&n, Some(f.clone()));
            n
        })
        .collect();
    let handle = r.start();
    wait_for("all delivered", Duration::from_secs(30), || {
        r.all_notified(&names)
    });
    handle.stop();
    for (n, f) in names.iter().zip(&faults) {
        assert_eq!(
            r.rx.hits_for(n).len(),
            1,
            "{f:?}: delivered at the first attempt"
        );
        for e in r.rx.endings_for(n) {
            assert!(e.after < timeout + Duration::from_secs(3), "{f:?}: {e:?}");
            assert!(e.bytes_written < 32 << 20, "{f:?}: {e:?}");
        }
    }
}

/// The first failed attempt's outcome as recorded, with the receiver's record of that attempt
/// (read while the store has recorded exactly the one attempt the receiver saw).
fn first_attempt(r: &Rig, name: &str) -> Option<(clair_notifier::NotificationSummary, Hit)> {
    let before = r.rx.hits_for(name);
    let s = r.summary(name);
    let after = r.rx.hits_for(name);
    (before.len() == 1 && after.len() == 1 && s.attempts == 1).then(|| (s, before[0].clone()))
}

/// `429` with `Retry-After` in seconds or as an HTTP date: the next attempt waits as long as
/// asked, capped at `max_backoff`; the wait is checked in the store (`due`) and between the
/// attempts the receiver saw.
fn retry_after_is_honoured_and_capped_at_max_backoff(db: TestDb) {
    let max_backoff = Duration::from_secs(3);
    let r = rig(&db, Duration::from_secs(2), max_backoff);
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    let cases = [
        ("2", 1900u64, 2600u64),
        ("3600", 2900, 3600),
        (date.as_str(), 1400, 3600),
    ];
    let names: Vec<String> = cases
        .iter()
        .map(|(after, _, _)| {
            let n = r.insert("CVE-429");
            let headers = vec![("Retry-After".to_string(), after.to_string())];
            r.rx.set(&n, Some(Fault::Status(429, headers)));
            n
        })
        .collect();
    let handle = r.start();
    let healthy = r.insert_healthy();
    // Each one's first attempt, caught before its retry (at least 1.4 s later).
    let mut first = vec![None; names.len()];
    wait_for(
        "every first attempt recorded",
        Duration::from_secs(20),
        || {
            for (slot, n) in first.iter_mut().zip(&names) {
                if slot.is_none() {
                    *slot = first_attempt(&r, n);
                }
            }
            first.iter().all(Option::is_some)
        },
    );
    for ((n, (after, lo, hi)), f) in names.iter().zip(&cases).zip(first) {
        let (s, hit) = f.unwrap();
        assert!(
            s.last_error.as_deref().unwrap().contains("got status 429"),
            "{s:?}"
        );
        let wait = s.due.unwrap().as_millis() - hit.ts.as_millis();
        assert!(
            (*lo as i64..=*hi as i64).contains(&wait),
            "Retry-After {after}: due {wait} ms after the attempt, wanted {lo}..={hi}"
        );
        wait_for("a second attempt", Duration::from_secs(20), || {
            r.rx.hits_for(n).len() >= 2
        });
        let hits = r.rx.hits_for(n);
        let gap = hits[1].at - hits[0].at;
        assert!(
            gap >= Duration::from_millis(*lo - 100) && gap <= Duration::from_secs(10),
            "Retry-After {after}: second attempt {gap:?} after the first"
        );
    }
    assert!(r.all_notified(&healthy), "healthy ones are not held up");
    for n in &names {
        r.rx.set(n, None);
    }
    wait_for("delivered after recovery", Duration::from_secs(30), || {
        r.all_notified(&names)
    });
    handle.stop();
}
