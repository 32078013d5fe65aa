//! The attempt log, on every backend: written with its outcome, bounded, read back, deleted
//! past retention.

use std::time::Duration;

use super::backends::TestStore;
use super::{A, B, new_only, t};
use crate::attempt::{Attempt, AttemptClass, KEPT_ATTEMPTS};
use crate::store::{AttemptLog, Datastore, Outcome};

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

/// Claims the one due notification of `store` at `at` and records `class` for it: a
/// delivery, or a failed try due again 1 ms later.
fn one_round(store: &dyn Datastore, at: i64, class: AttemptClass) {
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

fn one(s: &dyn Datastore) -> String {
    s.insert(&[new_only(0)], t(0)).unwrap().remove(0)
}

fn failures_get_rows_and_the_last_success_is_kept_by_default(s: &dyn Datastore) {
    let name = one(s);
    one_round(s, 0, AttemptClass::Status);
    one_round(s, 10, AttemptClass::Ok);
    one_round(s, 20, AttemptClass::Timeout);
    one_round(s, 30, AttemptClass::Ok);
    let log = s.attempts(&name).unwrap().unwrap();
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
    assert_eq!(log[0].next_due, Some(t(1)));
    assert_eq!(log[2].duration, Duration::from_millis(7));
    assert_eq!(log[2].next_due, Some(t(31)));
    assert_eq!((log[2].status, log[2].excerpt.as_deref()), (None, None));
}

fn every_success_is_logged_when_asked_and_only_the_last_hundred_are_kept(s: &dyn TestStore) {
    let name = one(s);
    s.set_log(AttemptLog::EverySuccess);
    let rounds = i64::from(KEPT_ATTEMPTS) + 5;
    for i in 0..rounds {
        let class = if i % 2 == 0 {
            AttemptClass::Ok
        } else {
            AttemptClass::Connect
        };
        one_round(s, i * 10, class);
    }
    let log = s.attempts(&name).unwrap().unwrap();
    assert_eq!(log.len(), KEPT_ATTEMPTS as usize);
    assert_eq!(log[0].started, t(50), "the five oldest were dropped");
    assert_eq!(log.last().unwrap().started, t((rounds - 1) * 10));
    assert!(log.windows(2).all(|w| w[0].started < w[1].started));
}

fn one_outcome_with_more_tries_than_are_kept_keeps_the_last(s: &dyn Datastore) {
    let name = one(s);
    let c = s.claim(A, 1, t(0), t(100)).unwrap();
    let tries: Vec<Attempt> = (0..i64::from(KEPT_ATTEMPTS) + 3)
        .map(|i| attempt(AttemptClass::Timeout, i, i + 1))
        .collect();
    let outcome = Outcome {
        id: c[0].id,
        notified: false,
        next_due: t(500),
        attempts: 1,
        last_error: Some("webhook: timeout".into()),
        progress: Vec::new(),
        log: tries,
    };
    s.record(A, &[outcome], t(1)).unwrap();
    let log = s.attempts(&name).unwrap().unwrap();
    assert_eq!(log.len(), KEPT_ATTEMPTS as usize);
    assert_eq!(log[0].started, t(3));
}

fn an_ignored_outcome_logs_nothing_and_off_logs_nothing(s: &dyn TestStore) {
    let name = one(s);
    let c = s.claim(A, 1, t(0), t(10)).unwrap();
    // B takes the expired lease over: A's late outcome is ignored, with its attempts.
    assert_eq!(s.claim(B, 1, t(20), t(100)).unwrap().len(), 1);
    let late = Outcome {
        id: c[0].id,
        notified: true,
        next_due: t(5_000),
        attempts: 0,
        last_error: None,
        progress: Vec::new(),
        log: vec![attempt(AttemptClass::Ok, 1, 5_000)],
    };
    s.record(A, &[late], t(21)).unwrap();
    assert_eq!(s.attempts(&name).unwrap().unwrap(), []);

    s.mark_read(&name, t(22)).unwrap();
    let name = one(s);
    s.set_log(AttemptLog::Off);
    one_round(s, 30, AttemptClass::Status);
    one_round(s, 40, AttemptClass::Ok);
    assert_eq!(s.attempts(&name).unwrap().unwrap(), []);
    assert_eq!(s.attempts("nope").unwrap(), None);
    assert_eq!(
        s.attempts("00000000-0000-4000-8000-000000000000").unwrap(),
        None
    );
}

fn old_attempts_are_deleted_oldest_first_in_batches(s: &dyn Datastore) {
    let name = one(s);
    for i in 0..5 {
        one_round(s, i * 10, AttemptClass::Status);
    }
    one_round(s, 50, AttemptClass::Ok);
    assert_eq!(s.delete_attempts(t(25), 2).unwrap(), 2);
    assert_eq!(s.delete_attempts(t(25), 2).unwrap(), 1);
    assert_eq!(s.delete_attempts(t(25), 2).unwrap(), 0);
    let left: Vec<i64> = s
        .attempts(&name)
        .unwrap()
        .unwrap()
        .iter()
        .map(|a| a.started.as_millis())
        .collect();
    // The last success is kept with its notification.
    assert_eq!(left, [30, 40, 50]);
}

fn a_deleted_notification_takes_its_attempts_along(s: &dyn Datastore) {
    let name = one(s);
    one_round(s, 0, AttemptClass::Status);
    s.mark_read(&name, t(5)).unwrap();
    let request = crate::store::DeleteRequest {
        collector: A,
        read_before: t(5),
        limit: 10,
        now: t(6),
    };
    assert_eq!(s.delete_read(request).unwrap(), 1);
    assert_eq!(s.attempts(&name).unwrap(), None);
    assert_eq!(s.delete_attempts(t(1_000), 10).unwrap(), 0, "none left");
}

backends!(
    failures_get_rows_and_the_last_success_is_kept_by_default,
    every_success_is_logged_when_asked_and_only_the_last_hundred_are_kept,
    one_outcome_with_more_tries_than_are_kept_keeps_the_last,
    an_ignored_outcome_logs_nothing_and_off_logs_nothing,
    old_attempts_are_deleted_oldest_first_in_batches,
    a_deleted_notification_takes_its_attempts_along,
);
