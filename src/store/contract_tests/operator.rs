//! The operators' calls (resend, pause, resume) and the circuits, on every backend, with
//! time passed in.

use std::time::Duration;

use super::backends::TestStore;
use super::{A, B, done, new_only, t};
use crate::notification::{NotificationId, State};
use crate::store::{
    Breaker, CircuitChange, Claimed, Datastore, NotifierProgress, Outcome, Resend, Sends,
};
use crate::time::Timestamp;

fn lease(now: Timestamp) -> Timestamp {
    now.plus(Duration::from_secs(100))
}

fn stored(s: &dyn Datastore, n: usize) -> Vec<String> {
    let batch: Vec<_> = (0..n).map(|_| new_only(0)).collect();
    s.insert(&batch, t(0)).unwrap()
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
fn three_recorded(s: &dyn Datastore, second: &str) -> Vec<Claimed> {
    stored(s, 3);
    let c = s.claim(A, 10, t(0), lease(t(0))).unwrap();
    let outcomes = vec![
        failed(c[0].id, t(90_000), "webhook"),
        failed(c[1].id, t(90_000), second),
        done(c[2].id, t(90_000)),
    ];
    s.record(A, &outcomes, t(10)).unwrap();
    c
}

fn resend_starts_a_fresh_round_at_once_and_is_idempotent(s: &dyn Datastore) {
    let names = stored(s, 1);
    let c = s.claim(A, 10, t(0), lease(t(0))).unwrap();
    s.record(A, &[failed(c[0].id, t(50_000), "webhook")], t(10))
        .unwrap();
    assert_eq!(s.claim(A, 10, t(20), lease(t(20))).unwrap().len(), 0);

    for _ in 0..2 {
        assert_eq!(s.resend(&names[0], false, t(30)).unwrap(), Resend::Resent);
        let got = s.summary(&names[0]).unwrap().unwrap();
        assert_eq!(
            (got.attempts, got.last_error, got.due),
            (0, None, Some(t(30)))
        );
    }
    let c = s.claim(A, 10, t(30), lease(t(30))).unwrap();
    assert_eq!(c.len(), 1);
    assert!(
        c[0].progress.is_empty(),
        "progress cleared: {:?}",
        c[0].progress
    );
}

fn resend_of_a_read_notification_needs_unread(s: &dyn Datastore) {
    let names = stored(s, 1);
    s.mark_read(&names[0], t(5)).unwrap();
    assert_eq!(s.resend(&names[0], false, t(6)).unwrap(), Resend::Read);
    assert_eq!(s.summary(&names[0]).unwrap().unwrap().read, Some(t(5)));
    assert_eq!(s.claim(A, 10, t(6), lease(t(6))).unwrap().len(), 0);

    assert_eq!(s.resend(&names[0], true, t(7)).unwrap(), Resend::Resent);
    let got = s.summary(&names[0]).unwrap().unwrap();
    assert_eq!((got.read, got.state()), (None, State::Pending));
    assert_eq!(s.claim(A, 10, t(7), lease(t(7))).unwrap().len(), 1);
}

fn resend_of_unknown_names_changes_nothing(s: &dyn Datastore) {
    stored(s, 1);
    for name in ["", "nope", "00000000-0000-4000-8000-000000000000"] {
        assert_eq!(s.resend(name, true, t(1)).unwrap(), Resend::Unknown);
    }
    assert_eq!(s.resend_failing(t(1)).unwrap(), 0);
}

fn resend_keeps_a_live_lease(s: &dyn Datastore) {
    let names = stored(s, 1);
    let c = s.claim(A, 10, t(0), lease(t(0))).unwrap();
    assert_eq!(s.resend(&names[0], false, t(1)).unwrap(), Resend::Resent);
    assert!(s.claim(B, 10, t(2), lease(t(2))).unwrap().is_empty());
    // The owner's outcome is still written, and decides what follows.
    s.record(A, &[done(c[0].id, t(9_000))], t(3)).unwrap();
    let got = s.summary(&names[0]).unwrap().unwrap();
    assert_eq!((got.notified, got.due), (Some(t(3)), Some(t(9_000))));
}

fn resend_failing_takes_every_failing_notification_once(s: &dyn Datastore) {
    let c = three_recorded(s, "webhook");
    s.mark_read(&c[1].name, t(11)).unwrap();
    assert_eq!(s.resend_failing(t(20)).unwrap(), 1);
    assert_eq!(s.resend_failing(t(21)).unwrap(), 0);
    let again = s.claim(A, 10, t(21), lease(t(21))).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].name, c[0].name);
    assert!(again[0].progress.is_empty());
}

fn pause_and_resume_are_kept_and_idempotent(s: &dyn TestStore) {
    assert!(s.notifiers(t(0)).unwrap().is_empty());
    assert!(s.set_paused("webhook", true, t(10)).unwrap());
    assert!(!s.set_paused("webhook", true, t(20)).unwrap());
    let states = s.reopen().notifiers(t(0)).unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].notifier.as_str(), states[0].paused),
        ("webhook", Some(t(10)))
    );
    assert!(s.set_paused("webhook", false, t(30)).unwrap());
    assert!(!s.set_paused("webhook", false, t(40)).unwrap());
    assert_eq!(s.notifiers(t(0)).unwrap()[0].paused, None);
    // Never-paused names are not made up.
    assert!(!s.set_paused("other", false, t(40)).unwrap());
    assert_eq!(s.notifiers(t(0)).unwrap().len(), 1);
    // Name order, bytewise.
    s.set_paused("Zeta", true, t(50)).unwrap();
    s.set_paused("alpha", true, t(50)).unwrap();
    let names: Vec<String> = s
        .notifiers(t(0))
        .unwrap()
        .into_iter()
        .map(|n| n.notifier)
        .collect();
    assert_eq!(names, ["Zeta", "alpha", "webhook"]);
}

fn resume_makes_due_what_waits_for_that_notifier_only(s: &dyn Datastore) {
    let c = three_recorded(s, "other");
    s.set_paused("webhook", true, t(11)).unwrap();
    assert!(s.claim(A, 10, t(12), lease(t(12))).unwrap().is_empty());
    let states = s.notifiers(t(12)).unwrap();
    assert_eq!((states.len(), states[0].waiting), (1, 1), "{states:?}");
    // Ending the wait alone leaves the pause as it is.
    assert_eq!(s.end_wait("webhook", t(12)).unwrap(), 1);
    assert_eq!(s.notifiers(t(12)).unwrap()[0].paused, Some(t(11)));
    assert_eq!(s.notifiers(t(12)).unwrap()[0].waiting, 0, "due now");
    s.set_paused("webhook", false, t(13)).unwrap();
    let due = s.claim(A, 10, t(13), lease(t(13))).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].name, c[0].name);
    assert_eq!(due[0].progress[0].attempts, 3, "attempts spent stay spent");
}

fn resume_leaves_a_live_lease_and_read_notifications_alone(s: &dyn Datastore) {
    let c = three_recorded(s, "webhook");
    s.mark_read(&c[1].name, t(11)).unwrap();
    s.set_paused("webhook", true, t(11)).unwrap();
    assert_eq!(
        s.end_wait("webhook", t(12)).unwrap(),
        1,
        "the read one stays"
    );
    let mine = s.claim(A, 10, t(12), lease(t(12))).unwrap();
    assert_eq!(
        mine.iter().map(|d| &d.name).collect::<Vec<_>>(),
        [&c[0].name]
    );
    // Ending the wait again, or resuming, breaks no lease.
    assert_eq!(s.end_wait("webhook", t(13)).unwrap(), 1);
    assert!(s.claim(B, 10, t(14), lease(t(14))).unwrap().is_empty());
    assert!(s.set_paused("webhook", false, t(15)).unwrap());
    assert!(s.claim(B, 10, t(15), lease(t(15))).unwrap().is_empty());
    assert_eq!(s.summary(&c[1].name).unwrap().unwrap().read, Some(t(11)));
    assert_eq!(s.summary(&c[1].name).unwrap().unwrap().due, None);
}

fn record(s: &dyn Datastore, results: &[bool], breaker: Breaker, at: i64) -> CircuitChange {
    let sends = Sends {
        notifier: "webhook".into(),
        results: results.to_vec(),
        breaker,
    };
    s.record_sends(&sends, t(at)).unwrap()
}

const BREAKER: Breaker = Breaker {
    failures: 3,
    probe: Duration::from_secs(30),
};

fn a_circuit_opens_at_the_threshold_is_probed_and_closes_on_a_success(s: &dyn TestStore) {
    let other = s.reopen();
    let record = |sends: &[bool], at| record(s, sends, BREAKER, at);
    assert_eq!(record(&[false, false], 0), CircuitChange::Unchanged);
    // A success in between starts the count again.
    assert_eq!(record(&[true, false, false], 1), CircuitChange::Unchanged);
    assert_eq!(record(&[false, false], 2), CircuitChange::Opened(4));
    let state = &other.notifiers(t(2)).unwrap()[0];
    assert_eq!(
        (state.failures, state.open_since, state.next_probe),
        (4, Some(t(2)), Some(t(30_002)))
    );
    // One probe per interval, whoever asks.
    let probe = |store: &dyn Datastore, at| store.take_probe("webhook", BREAKER.probe, t(at));
    assert!(!probe(s, 30_001).unwrap());
    assert!(probe(other.as_ref(), 30_002).unwrap());
    assert!(!probe(s, 30_003).unwrap());
    // A failed probe keeps it open and moves the next one.
    assert_eq!(record(&[false], 30_010), CircuitChange::Unchanged);
    assert_eq!(s.notifiers(t(0)).unwrap()[0].next_probe, Some(t(60_010)));
    assert_eq!(record(&[true], 60_020), CircuitChange::Closed);
    let state = &s.notifiers(t(0)).unwrap()[0];
    assert_eq!(
        (state.failures, state.open_since, state.next_probe),
        (0, None, None)
    );
    assert!(!probe(s, 90_000).unwrap());
}

fn without_a_threshold_no_circuit_opens_and_closing_frees_what_waited(s: &dyn Datastore) {
    let c = three_recorded(s, "other");
    let off = Breaker {
        failures: 0,
        ..BREAKER
    };
    let record = |sends: &[bool], b| record(s, sends, b, 20);
    assert_eq!(record(&[false; 50], off), CircuitChange::Unchanged);
    assert_eq!(record(&[false], BREAKER), CircuitChange::Opened(51));
    assert_eq!(s.notifiers(t(20)).unwrap()[0].waiting, 1, "the first one");
    assert!(s.claim(A, 10, t(21), lease(t(21))).unwrap().is_empty());
    assert_eq!(record(&[true], BREAKER), CircuitChange::Closed);
    let due = s.claim(A, 10, t(21), lease(t(21))).unwrap();
    assert_eq!(
        due.iter().map(|d| &d.name).collect::<Vec<_>>(),
        [&c[0].name]
    );
}

fn instances_recording_sends_at_once_lose_no_failure(s: &dyn TestStore) {
    let stores: Vec<Box<dyn Datastore>> = (0..4).map(|_| s.reopen()).collect();
    let many = Breaker {
        failures: 1_000,
        ..BREAKER
    };
    std::thread::scope(|scope| {
        for store in &stores {
            scope.spawn(move || {
                for i in 0..25 {
                    record(store.as_ref(), &[false, false], many, i);
                }
            });
        }
    });
    assert_eq!(s.notifiers(t(0)).unwrap()[0].failures, 200);
}

fn a_probe_is_taken_once_by_instances_asking_at_once(s: &dyn TestStore) {
    assert_eq!(record(s, &[false; 3], BREAKER, 0), CircuitChange::Opened(3));
    let stores: Vec<Box<dyn Datastore>> = (0..4).map(|_| s.reopen()).collect();
    let taken: usize = std::thread::scope(|scope| {
        let asks: Vec<_> = stores
            .iter()
            .map(|store| {
                scope.spawn(move || {
                    (0..5)
                        .filter(|_| {
                            store
                                .take_probe("webhook", BREAKER.probe, t(30_000))
                                .unwrap()
                        })
                        .count()
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).sum()
    });
    assert_eq!(taken, 1);
}

backends!(
    a_probe_is_taken_once_by_instances_asking_at_once,
    resend_starts_a_fresh_round_at_once_and_is_idempotent,
    resend_of_a_read_notification_needs_unread,
    resend_of_unknown_names_changes_nothing,
    resend_keeps_a_live_lease,
    resend_failing_takes_every_failing_notification_once,
    pause_and_resume_are_kept_and_idempotent,
    resume_makes_due_what_waits_for_that_notifier_only,
    resume_leaves_a_live_lease_and_read_notifications_alone,
    a_circuit_opens_at_the_threshold_is_probed_and_closes_on_a_success,
    without_a_threshold_no_circuit_opens_and_closing_frees_what_waited,
    instances_recording_sends_at_once_lose_no_failure,
);
