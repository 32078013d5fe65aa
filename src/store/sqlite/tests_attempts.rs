//! The attempt log on real SQLite files: written with its outcome, bounded, read back.

use super::tests::{A, B, stored, t};
use super::*;
use crate::attempt::{AttemptClass, KEPT_ATTEMPTS};

fn attempt(class: AttemptClass, at: i64, next_due: i64) -> Attempt {
    Attempt {
        notifier: "webhook".into(),
        started: t(at),
        duration: Duration::from_millis(7),
        class,
        status: (class == AttemptClass::Status).then_some(503),
        excerpt: (class != AttemptClass::Ok).then(|| "busy".to_string()),
        next_due: Some(t(next_due)),
    }
}

/// Claims the one notification of `store` at `at` and records `class` for it: a delivery,
/// or a failed try due again 1 ms later.
fn one_round(store: &SqliteStore, at: i64, class: AttemptClass) {
    let c = store.claim(A, 1, t(at), t(at + 100)).unwrap();
    assert_eq!(c.len(), 1, "due at {at}");
    let ok = class == AttemptClass::Ok;
    let outcome = Outcome {
        id: c[0].id,
        notified: ok,
        next_due: t(at + 1),
        attempts: u32::from(!ok),
        last_error: (!ok).then(|| "webhook: busy".into()),
        progress: Vec::new(),
        log: vec![attempt(class, at, at + 1)],
    };
    store.record(A, &[outcome], t(at)).unwrap();
}

#[test]
fn failures_get_rows_and_the_last_success_is_kept_by_default() {
    let (_dir, store, names) = stored(1);
    one_round(&store, 0, AttemptClass::Status);
    one_round(&store, 10, AttemptClass::Ok);
    one_round(&store, 20, AttemptClass::Timeout);
    one_round(&store, 30, AttemptClass::Ok);
    let log = store.attempts(&names[0]).unwrap().unwrap();
    let seen: Vec<(AttemptClass, i64)> = log
        .iter()
        .map(|a| (a.class, a.started.as_millis()))
        .collect();
    assert_eq!(
        seen,
        [
            (AttemptClass::Status, 0),
            (AttemptClass::Timeout, 20),
            (AttemptClass::Ok, 30)
        ]
    );
    assert_eq!(log[0].status, Some(503));
    assert_eq!(log[0].excerpt.as_deref(), Some("busy"));
    assert_eq!(log[2].duration, Duration::from_millis(7));
    assert_eq!(log[2].next_due, Some(t(31)));
}

#[test]
fn every_success_is_logged_when_asked_and_only_the_last_hundred_are_kept() {
    let (_dir, store, names) = stored(1);
    store.set_attempt_log(AttemptLog::EverySuccess);
    let rounds = i64::from(KEPT_ATTEMPTS) + 5;
    for i in 0..rounds {
        let class = if i % 2 == 0 {
            AttemptClass::Ok
        } else {
            AttemptClass::Connect
        };
        one_round(&store, i * 10, class);
    }
    let log = store.attempts(&names[0]).unwrap().unwrap();
    assert_eq!(log.len(), KEPT_ATTEMPTS as usize);
    assert_eq!(log[0].started, t(50), "the five oldest were dropped");
    assert_eq!(log.last().unwrap().started, t((rounds - 1) * 10));
    assert!(log.windows(2).all(|w| w[0].started < w[1].started));
}

#[test]
fn an_ignored_outcome_logs_nothing_and_off_logs_nothing() {
    let (_dir, store, names) = stored(1);
    let c = store.claim(A, 1, t(0), t(10)).unwrap();
    // B takes the expired lease over: A's late outcome is ignored, with its attempts.
    assert_eq!(store.claim(B, 1, t(20), t(100)).unwrap().len(), 1);
    let late = Outcome {
        id: c[0].id,
        notified: true,
        next_due: t(5_000),
        attempts: 0,
        last_error: None,
        progress: Vec::new(),
        log: vec![attempt(AttemptClass::Ok, 1, 5_000)],
    };
    store.record(A, &[late], t(21)).unwrap();
    assert_eq!(store.attempts(&names[0]).unwrap().unwrap(), []);

    let (_dir, store, names) = stored(1);
    store.set_attempt_log(AttemptLog::Off);
    one_round(&store, 0, AttemptClass::Status);
    one_round(&store, 10, AttemptClass::Ok);
    assert_eq!(store.attempts(&names[0]).unwrap().unwrap(), []);
    assert_eq!(store.attempts("nope").unwrap(), None);
}

#[test]
fn old_attempts_are_deleted_oldest_first_in_batches() {
    let (_dir, store, names) = stored(1);
    for i in 0..5 {
        one_round(&store, i * 10, AttemptClass::Status);
    }
    one_round(&store, 50, AttemptClass::Ok);
    assert_eq!(store.delete_attempts(t(25), 2).unwrap(), 2);
    assert_eq!(store.delete_attempts(t(25), 2).unwrap(), 1);
    assert_eq!(store.delete_attempts(t(25), 2).unwrap(), 0);
    let left: Vec<i64> = store
        .attempts(&names[0])
        .unwrap()
        .unwrap()
        .iter()
        .map(|a| a.started.as_millis())
        .collect();
    // The last success is kept with its notification.
    assert_eq!(left, [30, 40, 50]);
}
