//! The operators' calls (resend, pause, resume) on real SQLite files, with time passed in.

use super::tests::{A, B, done, stored, t};
use super::*;
use crate::notification::State;
use crate::store::{Breaker, CircuitChange, NotifierProgress, Resend, Sends};

fn lease(now: Timestamp) -> Timestamp {
    now.plus(Duration::from_secs(100))
}

/// An outcome of a failed try with `notifier` not yet succeeded, due again at `next_due`.
fn failed(id: NotificationId, next_due: Timestamp, notifier: &str) -> Outcome {
    Outcome {
        log: Vec::new(),
        id,
        notified: false,
        next_due,
        attempts: 3,
        last_error: Some(format!("{notifier}: 503")),
        progress: vec![NotifierProgress {
            notifier: notifier.into(),
            attempts: 3,
            succeeded: false,
            last_error: Some(format!("{notifier}: 503")),
        }],
    }
}

/// Three notifications, claimed and recorded: the first failing for `webhook`, the second
/// failing for `second`, the third delivered; each due again at 90 s.
fn three_recorded(second: &str) -> (tempfile::TempDir, SqliteStore, Vec<Claimed>) {
    let (dir, store, _) = stored(3);
    let c = store.claim(A, 10, t(0), lease(t(0))).unwrap();
    let outcomes = vec![
        failed(c[0].id, t(90_000), "webhook"),
        failed(c[1].id, t(90_000), second),
        done(c[2].id, t(90_000)),
    ];
    store.record(A, &outcomes, t(10)).unwrap();
    (dir, store, c)
}

#[test]
fn resend_starts_a_fresh_round_at_once_and_is_idempotent() {
    let (_dir, store, names) = stored(1);
    let c = store.claim(A, 10, t(0), lease(t(0))).unwrap();
    store
        .record(A, &[failed(c[0].id, t(50_000), "webhook")], t(10))
        .unwrap();
    assert_eq!(store.claim(A, 10, t(20), lease(t(20))).unwrap().len(), 0);

    for _ in 0..2 {
        assert_eq!(
            store.resend(&names[0], false, t(30)).unwrap(),
            Resend::Resent
        );
        let s = store.summary(&names[0]).unwrap().unwrap();
        assert_eq!((s.attempts, s.last_error, s.due), (0, None, Some(t(30))));
    }
    let c = store.claim(A, 10, t(30), lease(t(30))).unwrap();
    assert_eq!(c.len(), 1);
    assert!(
        c[0].progress.is_empty(),
        "progress cleared: {:?}",
        c[0].progress
    );
}

#[test]
fn resend_of_a_read_notification_needs_unread() {
    let (_dir, store, names) = stored(1);
    store.mark_read(&names[0], t(5)).unwrap();
    assert_eq!(store.resend(&names[0], false, t(6)).unwrap(), Resend::Read);
    assert_eq!(store.summary(&names[0]).unwrap().unwrap().read, Some(t(5)));
    assert_eq!(store.claim(A, 10, t(6), lease(t(6))).unwrap().len(), 0);

    assert_eq!(store.resend(&names[0], true, t(7)).unwrap(), Resend::Resent);
    let s = store.summary(&names[0]).unwrap().unwrap();
    assert_eq!((s.read, s.state()), (None, State::Pending));
    assert_eq!(store.claim(A, 10, t(7), lease(t(7))).unwrap().len(), 1);
}

#[test]
fn resend_of_unknown_names_changes_nothing() {
    let (_dir, store, _) = stored(1);
    for name in ["", "nope", "00000000-0000-4000-8000-000000000000"] {
        assert_eq!(store.resend(name, true, t(1)).unwrap(), Resend::Unknown);
    }
    assert_eq!(store.resend_failing(t(1)).unwrap(), 0);
}

#[test]
fn resend_keeps_a_live_lease() {
    let (_dir, store, names) = stored(1);
    let c = store.claim(A, 10, t(0), lease(t(0))).unwrap();
    assert_eq!(
        store.resend(&names[0], false, t(1)).unwrap(),
        Resend::Resent
    );
    assert!(store.claim(B, 10, t(2), lease(t(2))).unwrap().is_empty());
    // The owner's outcome is still written, and decides what follows.
    store.record(A, &[done(c[0].id, t(9_000))], t(3)).unwrap();
    let s = store.summary(&names[0]).unwrap().unwrap();
    assert_eq!((s.notified, s.due), (Some(t(3)), Some(t(9_000))));
}

#[test]
fn resend_failing_takes_every_failing_notification_once() {
    let (_dir, store, c) = three_recorded("webhook");
    store.mark_read(&c[1].name, t(11)).unwrap();
    assert_eq!(store.resend_failing(t(20)).unwrap(), 1);
    assert_eq!(store.resend_failing(t(21)).unwrap(), 0);
    let again = store.claim(A, 10, t(21), lease(t(21))).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].name, c[0].name);
    assert!(again[0].progress.is_empty());
}

#[test]
fn pause_and_resume_are_kept_and_idempotent() {
    let (dir, store, _) = stored(0);
    assert!(store.notifiers(t(0)).unwrap().is_empty());
    assert!(store.set_paused("webhook", true, t(10)).unwrap());
    assert!(!store.set_paused("webhook", true, t(20)).unwrap());
    let reopened = SqliteStore::open(dir.path().join("test.db")).unwrap();
    let states = reopened.notifiers(t(0)).unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].notifier.as_str(), states[0].paused),
        ("webhook", Some(t(10)))
    );
    assert!(store.set_paused("webhook", false, t(30)).unwrap());
    assert!(!store.set_paused("webhook", false, t(40)).unwrap());
    assert_eq!(store.notifiers(t(0)).unwrap()[0].paused, None);
    // Never-paused names are not made up.
    assert!(!store.set_paused("other", false, t(40)).unwrap());
    assert_eq!(store.notifiers(t(0)).unwrap().len(), 1);
}

#[test]
fn resume_makes_due_what_waits_for_that_notifier_only() {
    let (_dir, store, c) = three_recorded("other");
    store.set_paused("webhook", true, t(11)).unwrap();
    assert!(store.claim(A, 10, t(12), lease(t(12))).unwrap().is_empty());
    // Ending the wait alone leaves the pause as it is.
    assert_eq!(store.end_wait("webhook", t(12)).unwrap(), 1);
    assert_eq!(store.notifiers(t(12)).unwrap()[0].paused, Some(t(11)));
    store.set_paused("webhook", false, t(13)).unwrap();
    let due = store.claim(A, 10, t(13), lease(t(13))).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, c[0].id);
    assert_eq!(due[0].progress[0].attempts, 3, "attempts spent stay spent");
}

fn record(store: &SqliteStore, results: &[bool], breaker: Breaker, at: i64) -> CircuitChange {
    let sends = Sends {
        notifier: "webhook".into(),
        results: results.to_vec(),
        breaker,
    };
    store.record_sends(&sends, t(at)).unwrap()
}

const BREAKER: Breaker = Breaker {
    failures: 3,
    probe: Duration::from_secs(30),
};

#[test]
fn a_circuit_opens_at_the_threshold_is_probed_and_closes_on_a_success() {
    let (dir, store, _) = stored(0);
    let record = |sends: &[bool], at| record(&store, sends, BREAKER, at);
    assert_eq!(record(&[false, false], 0), CircuitChange::Unchanged);
    // A success in between starts the count again.
    assert_eq!(record(&[true, false, false], 1), CircuitChange::Unchanged);
    assert_eq!(record(&[false, false], 2), CircuitChange::Opened(4));
    let state = &SqliteStore::open(dir.path().join("test.db"))
        .unwrap()
        .notifiers(t(2))
        .unwrap()[0];
    assert_eq!(
        (state.failures, state.open_since, state.next_probe),
        (4, Some(t(2)), Some(t(30_002)))
    );
    // One probe per interval, whoever asks.
    assert!(
        !store
            .take_probe("webhook", BREAKER.probe, t(30_001))
            .unwrap()
    );
    assert!(
        store
            .take_probe("webhook", BREAKER.probe, t(30_002))
            .unwrap()
    );
    assert!(
        !store
            .take_probe("webhook", BREAKER.probe, t(30_003))
            .unwrap()
    );
    // A failed probe keeps it open and moves the next one.
    assert_eq!(record(&[false], 30_010), CircuitChange::Unchanged);
    assert_eq!(
        store.notifiers(t(0)).unwrap()[0].next_probe,
        Some(t(60_010))
    );
    assert_eq!(record(&[true], 60_020), CircuitChange::Closed);
    let state = &store.notifiers(t(0)).unwrap()[0];
    assert_eq!(
        (state.failures, state.open_since, state.next_probe),
        (0, None, None)
    );
    assert!(
        !store
            .take_probe("webhook", BREAKER.probe, t(90_000))
            .unwrap()
    );
}

#[test]
fn without_a_threshold_no_circuit_opens_and_closing_frees_what_waited() {
    let (_dir, store, c) = three_recorded("other");
    let off = Breaker {
        failures: 0,
        ..BREAKER
    };
    let record = |sends: &[bool], b| record(&store, sends, b, 20);
    assert_eq!(record(&[false; 50], off), CircuitChange::Unchanged);
    assert_eq!(record(&[false], BREAKER), CircuitChange::Opened(51));
    assert_eq!(
        store.notifiers(t(20)).unwrap()[0].waiting,
        1,
        "the first one"
    );
    assert!(store.claim(A, 10, t(21), lease(t(21))).unwrap().is_empty());
    assert_eq!(record(&[true], BREAKER), CircuitChange::Closed);
    let due = store.claim(A, 10, t(21), lease(t(21))).unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [c[0].id]);
}
