//! The service end to end: a real database (an SQLite file, and a PostgreSQL database when
//! `CLAIR_NOTIFIER_TEST_PG` names a server; each test runs on both), a real loopback
//! receiver, the webhook notifier.

use std::sync::Arc;
use std::time::Duration;

use clair_notifier::attempt::AttemptClass;
use clair_notifier::{Datastore, NotifierConfig, Service, State, Timestamp};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::receiver::Receiver;
use crate::common::{OffsetClock, Silent, sample, wait_for};

on_every_backend!(
    happy_path_delivers_each_notification_exactly_once,
    retries_back_off_then_succeed,
    exhausted_attempts_wait_for_the_renotify_interval,
    unread_notifications_are_sent_again_after_the_interval_and_read_ones_never,
    a_crashed_owners_expired_lease_is_taken_over,
    two_services_on_one_database_do_not_double_send,
    stop_is_prompt_with_a_hanging_receiver_and_leaves_nothing_leased,
    failing_and_hanging_notifications_do_not_hold_up_healthy_ones,
    a_panicking_notifier_is_a_failed_attempt_and_its_worker_lives_on,
    with_no_enabled_notifier_the_service_is_disabled,
    in_process_inserts_wake_the_scanner_and_other_writers_are_found_as_documented,
    idle_workers_get_a_small_first_batch_then_a_full_queue,
    fast_workers_draining_a_backlog_keep_claims_full,
);

fn webhook_config(url: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.http.endpoint = url.to_string();
    c.http.timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c.max_backoff = Duration::from_millis(50);
    c
}

fn notified_count(store: &dyn Datastore) -> u64 {
    store.counts(Timestamp::now()).unwrap().notified
}

fn happy_path_delivers_each_notification_exactly_once(db: TestDb) {
    let rx = Receiver::start(4);
    let store = db.open();
    let handle = Service::new(webhook_config(&rx.url()), store.clone())
        .start()
        .unwrap();
    let batch: Vec<_> = (0..500).map(|i| sample(&format!("CVE-{i}"), 3)).collect();
    let names = store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("500 notified", Duration::from_secs(30), || {
        notified_count(&*store) == 500
    });
    handle.stop();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 500, "each sent once");
    let mut seen: Vec<String> = reqs.iter().map(|r| r.name()).collect();
    seen.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(seen, want);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(
            r.body,
            format!(r#"{{"Notification":{{"Name":"{}"}}}}"#, r.name()).into_bytes()
        );
    }
    let s = store.summary(&names[0]).unwrap().unwrap();
    assert_eq!(s.state(), State::Notified);
}

fn start_with_clock(
    config: NotifierConfig,
    store: Arc<dyn Datastore>,
    clock: &OffsetClock,
) -> clair_notifier::Handle {
    Service::new(config, store)
        .clock(clock.clock())
        .start()
        .unwrap()
}

fn retries_back_off_then_succeed(db: TestDb) {
    let rx = Receiver::start(2);
    rx.fail_next(2, 500);
    let store = db.open();
    let handle = Service::new(webhook_config(&rx.url()), store.clone())
        .start()
        .unwrap();
    let name = store
        .insert(&[sample("CVE-R", 0)], Timestamp::now())
        .unwrap()[0]
        .clone();
    wait_for("delivered after retries", Duration::from_secs(20), || {
        store.summary(&name).unwrap().unwrap().notified.is_some()
    });
    handle.stop();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "two failures then a success");
    // Backoff is capped at max_backoff (50ms) with jitter between half and all of it.
    for pair in reqs.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(20), "retry after only {gap:?}");
    }
    let s = store.summary(&name).unwrap().unwrap();
    assert_eq!(
        (s.state(), s.attempts, s.last_error),
        (State::Notified, 0, None)
    );
}

fn exhausted_attempts_wait_for_the_renotify_interval(db: TestDb) {
    let rx = Receiver::start(2);
    rx.set_status(503);
    let store = db.recording();
    let clock = OffsetClock::default();
    let mut config = webhook_config(&rx.url());
    config.attempts = 3;
    config.renotify_interval = Duration::from_secs(3600);
    let handle = start_with_clock(config, store.clone(), &clock);
    let name = store.insert(&[sample("CVE-X", 0)], clock.now()).unwrap()[0].clone();
    wait_for("3 attempts", Duration::from_secs(20), || rx.count() == 3);
    wait_for("round recorded as failed", Duration::from_secs(10), || {
        store.summary(&name).unwrap().unwrap().due.unwrap()
            > clock.now().plus(Duration::from_secs(3000))
    });
    let s = store.summary(&name).unwrap().unwrap();
    assert_eq!(s.state(), State::Failing);
    assert_eq!(s.attempts, 3);
    assert!(
        s.last_error.as_deref().unwrap().contains("503"),
        "{:?}",
        s.last_error
    );
    assert_eq!(s.notified, None);
    // Nothing more is sent until the interval has passed (Clair v1 retried at once, forever):
    // woken, the scanner looks and finds nothing due.
    let looked_at = clock.now();
    handle.waker().wake();
    let claim = store.claim_since(
        "a claim after the round",
        looked_at,
        Duration::from_secs(10),
    );
    assert!(
        claim.names.is_empty(),
        "claimed before the interval: {claim:?}"
    );
    assert_eq!(rx.count(), 3);
    // An hour later, a new round starts, and this time the receiver is back.
    rx.set_status(200);
    clock.advance(Duration::from_secs(3600));
    handle.waker().wake();
    wait_for(
        "delivered in the next round",
        Duration::from_secs(20),
        || store.summary(&name).unwrap().unwrap().notified.is_some(),
    );
    assert_eq!(rx.count(), 4);
    let s = store.summary(&name).unwrap().unwrap();
    assert_eq!(
        (s.state(), s.attempts, s.last_error),
        (State::Notified, 0, None)
    );
    handle.stop();
}

fn unread_notifications_are_sent_again_after_the_interval_and_read_ones_never(db: TestDb) {
    let rx = Receiver::start(2);
    let store = db.recording();
    let clock = OffsetClock::default();
    let mut config = webhook_config(&rx.url());
    config.renotify_interval = Duration::from_secs(7200);
    let handle = start_with_clock(config, store.clone(), &clock);
    let names = store
        .insert(&[sample("CVE-A", 0), sample("CVE-B", 0)], clock.now())
        .unwrap();
    let notified = |name: &str| store.summary(name).unwrap().unwrap().notified;
    wait_for("both sent and recorded", Duration::from_secs(20), || {
        names.iter().all(|n| notified(n).is_some())
    });
    store.mark_read(&names[1], clock.now()).unwrap();
    let looked_at = clock.now();
    handle.waker().wake();
    let claim = store.claim_since(
        "a claim after both rounds",
        looked_at,
        Duration::from_secs(10),
    );
    assert!(
        claim.names.is_empty(),
        "claimed before the interval: {claim:?}"
    );
    assert_eq!(rx.count(), 2, "nothing is sent again before the interval");
    let first_round = notified(&names[0]).unwrap();
    clock.advance(Duration::from_secs(7200));
    let next_round = clock.now();
    handle.waker().wake();
    wait_for("the unread one sent again", Duration::from_secs(20), || {
        notified(&names[0]) > Some(first_round)
    });
    // Once that round is recorded, the scanner looks again and finds nothing.
    let looked_at = clock.now();
    handle.waker().wake();
    store.claim_since(
        "a claim after the second round",
        looked_at,
        Duration::from_secs(10),
    );
    handle.stop();
    assert_eq!(rx.count_for(&names[0]), 2);
    let since: Vec<_> = store
        .claims()
        .into_iter()
        .filter(|c| c.now >= next_round)
        .collect();
    assert!(
        since.iter().all(|c| !c.names.contains(&names[1])),
        "a read notification is never claimed again: {since:?}"
    );
    assert_eq!(
        rx.count_for(&names[1]),
        1,
        "a read notification is never sent again"
    );
}

fn a_crashed_owners_expired_lease_is_taken_over(db: TestDb) {
    let rx = Receiver::start(2);
    let store = db.recording();
    let clock = OffsetClock::default();
    let name = store.insert(&[sample("CVE-L", 0)], clock.now()).unwrap()[0].clone();
    // Another instance claims it and dies without an outcome.
    let lease = Duration::from_secs(600);
    let crashed = clair_notifier::store::LeaseOwner::new(424242);
    // Claimed past the recording, so that only the service's claims are noted.
    let claimed = store
        .inner
        .claim(crashed, 10, clock.now(), clock.now().plus(lease))
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut config = webhook_config(&rx.url());
    config.lease = lease;
    let handle = start_with_clock(config, store.clone(), &clock);
    let looked_at = clock.now();
    handle.waker().wake();
    let claim = store.claim_since(
        "a claim under the live lease",
        looked_at,
        Duration::from_secs(10),
    );
    assert!(
        claim.names.is_empty(),
        "a live lease is respected: {claim:?}"
    );
    assert_eq!(rx.count(), 0, "a live lease is respected");
    clock.advance(lease);
    handle.waker().wake();
    wait_for("taken over and sent", Duration::from_secs(20), || {
        rx.count() == 1
    });
    wait_for("recorded", Duration::from_secs(10), || {
        store.summary(&name).unwrap().unwrap().notified.is_some()
    });
    handle.stop();
}

fn two_services_on_one_database_do_not_double_send(db: TestDb) {
    let rx = Receiver::start(4);
    let (a, b) = (db.open(), db.open());
    let ha = Service::new(webhook_config(&rx.url()), a.clone())
        .start()
        .unwrap();
    let hb = Service::new(webhook_config(&rx.url()), b.clone())
        .start()
        .unwrap();
    for chunk in 0..4 {
        let batch: Vec<_> = (0..500)
            .map(|i| sample(&format!("CVE-{chunk}-{i}"), 1))
            .collect();
        let store = if chunk % 2 == 0 { &a } else { &b };
        store.insert(&batch, Timestamp::now()).unwrap();
    }
    wait_for("2000 notified", Duration::from_secs(60), || {
        notified_count(&*a) == 2000
    });
    let failed: u64 = [&ha, &hb]
        .iter()
        .map(|h| h.metrics().notifiers().next().unwrap().1.failed())
        .sum();
    let (sent_a, sent_b) = (
        ha.metrics().notifiers().next().unwrap().1.ok(),
        hb.metrics().notifiers().next().unwrap().1.ok(),
    );
    ha.stop();
    hb.stop();
    assert!(
        sent_a > 0 && sent_b > 0,
        "both services worked: {sent_a} and {sent_b}"
    );
    let reqs = rx.requests();
    let mut names: Vec<String> = reqs.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2000);
    // Each notification was claimed by one service only: one successful send each.
    assert_eq!(sent_a + sent_b, 2000, "successful sends");
    // A failed attempt (retried) is the only way to see a name twice: a POST whose answer
    // did not reach the sender in time. It may also never have reached the receiver (a
    // connection refused or cut before the request was read), so each failed attempt is at
    // most one extra POST, not exactly one.
    let extra = reqs.len() as u64 - 2000;
    assert!(
        extra <= failed,
        "{extra} extra requests, {failed} failed attempts recorded"
    );
    let mut seen = std::collections::HashMap::<String, u64>::new();
    for r in &reqs {
        *seen.entry(r.name()).or_default() += 1;
    }
    for (name, n) in seen.into_iter().filter(|&(_, n)| n > 1) {
        let log = a.attempts(&name).unwrap().unwrap();
        let failures = log.iter().filter(|t| t.class != AttemptClass::Ok).count();
        assert!(
            n <= 1 + failures as u64,
            "{name} seen {n} times with {failures} failed attempts logged: {log:?}"
        );
    }
}

fn stop_is_prompt_with_a_hanging_receiver_and_leaves_nothing_leased(db: TestDb) {
    let silent = Silent::start();
    let store = db.open();
    let mut config = webhook_config(&silent.url());
    config.http.timeout = Duration::from_secs(1);
    config.workers = 4;
    let handle = Service::new(config, store.clone()).start().unwrap();
    let batch: Vec<_> = (0..50).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("all workers hanging", Duration::from_secs(10), || {
        silent.accepted() >= 4
    });
    let started = std::time::Instant::now();
    handle.stop();
    let took = started.elapsed();
    // Bounded by the send timeout (1s) plus a margin for a loaded machine; a stop that waited
    // for the queue to drain would take 12 s or more (50 sends of 1 s by 4 workers).
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let counts = store.counts(Timestamp::now()).unwrap();
    assert_eq!(counts.leased, 0, "unsent work was released");
    // The ones in flight failed (timeout) and have their retry scheduled within max_backoff.
    let soon = store
        .counts(Timestamp::now().plus(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(soon.due, 50, "and all are due again");
    assert_eq!(
        soon.failing, 4,
        "the sends in flight were recorded as failed attempts"
    );
}

fn failing_and_hanging_notifications_do_not_hold_up_healthy_ones(db: TestDb) {
    let rx = Receiver::start(8);
    let store = db.open();
    let mut config = webhook_config(&rx.url());
    config.http.timeout = Duration::from_millis(700);
    config.lease = Duration::from_secs(10);
    config.workers = 4;
    config.max_backoff = Duration::from_millis(200);
    let bad = store
        .insert(
            &[sample("CVE-BAD", 0), sample("CVE-HANG", 0)],
            Timestamp::now(),
        )
        .unwrap();
    rx.status_for(&bad[0], 500);
    rx.delay_for(&bad[1], Duration::from_secs(3));
    let handle = Service::new(config, store.clone()).start().unwrap();
    let good: Vec<_> = (0..200).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.insert(&good, Timestamp::now()).unwrap();
    wait_for("200 healthy delivered", Duration::from_secs(30), || {
        notified_count(&*store) == 200
    });
    assert!(rx.count_for(&bad[0]) >= 1);
    let s = store.summary(&bad[0]).unwrap().unwrap();
    assert_eq!(s.notified, None);
    handle.stop();
}

fn a_panicking_notifier_is_a_failed_attempt_and_its_worker_lives_on(db: TestDb) {
    use clair_notifier::{Delivery, Notifier, Registry, SendError};
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Flaky(Arc<AtomicUsize>);
    impl Notifier for Flaky {
        fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
            Ok(true)
        }
        fn send(&self, d: &Delivery) -> Result<(), SendError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if d.attempt == 1 {
                panic!("boom on {}", d.name);
            }
            Ok(())
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let store = db.open();
    let mut registry = Registry::new();
    registry.register("flaky", Flaky(calls.clone()));
    let mut config = webhook_config("");
    config.workers = 1;
    let handle = Service::new(config, store.clone())
        .registry(registry)
        .start()
        .unwrap();
    let batch: Vec<_> = (0..5).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.insert(&batch, Timestamp::now()).unwrap();
    wait_for("all delivered on retry", Duration::from_secs(20), || {
        notified_count(&*store) == 5
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "one panic and one success each"
    );
    let m = handle.metrics();
    assert_eq!(m.notifiers().next().unwrap().1.panicked(), 5);
    handle.stop();
}

fn with_no_enabled_notifier_the_service_is_disabled(db: TestDb) {
    let store = db.open();
    let handle = Service::new(NotifierConfig::default(), store)
        .start()
        .unwrap();
    assert!(!handle.is_running());
    assert!(handle.notifiers().is_empty());
}

/// Inserts through the service's own store handle wake its scanner at once. Another writer's
/// (another process's) inserts are found as the backend documents: at once on PostgreSQL
/// (`LISTEN`/`NOTIFY`), within `poll_interval` on SQLite.
fn in_process_inserts_wake_the_scanner_and_other_writers_are_found_as_documented(db: TestDb) {
    let rx = Receiver::start(2);
    let store = db.recording();
    let mut config = webhook_config(&rx.url());
    config.poll_interval = Duration::from_secs(3600);
    let handle = Service::new(config, store.clone()).start().unwrap();
    // Inserted after the scanner's first look, so that only the wake-up can explain it.
    wait_for("the scanner's first look", Duration::from_secs(10), || {
        store.looked()
    });
    store
        .insert(&[sample("CVE-W", 0)], Timestamp::now())
        .unwrap();
    // With an hour-long poll interval, only the wake-up can explain a prompt delivery.
    wait_for("woken delivery", Duration::from_secs(10), || {
        rx.count() == 1
    });
    handle.stop();

    // A service started afresh on a handle of its own; another handle inserts.
    let store = db.recording();
    let mut config = webhook_config(&rx.url());
    config.poll_interval = if db.other_writers_wake() {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(100)
    };
    let handle = Service::new(config, store.clone()).start().unwrap();
    wait_for("the scanner's first look", Duration::from_secs(10), || {
        store.looked()
    });
    let other = db.open(); // as another process would write
    other
        .insert(&[sample("CVE-P", 0)], Timestamp::now())
        .unwrap();
    let what = if db.other_writers_wake() {
        "delivery woken by another writer's insert"
    } else {
        "polled delivery"
    };
    wait_for(what, Duration::from_secs(10), || rx.count() == 2);
    handle.stop();
}

/// With idle workers, the scanner claims a small batch first, so sending starts at once, and
/// fills the rest of the queue with claims four times larger each.
fn idle_workers_get_a_small_first_batch_then_a_full_queue(db: TestDb) {
    let rx = Receiver::start(4);
    let store = db.recording();
    let batch: Vec<_> = (0..2000).map(|i| sample(&format!("CVE-{i}"), 0)).collect();
    store.inner.insert(&batch, Timestamp::now()).unwrap();
    let config = webhook_config(&rx.url());
    let capacity = clair_notifier::service::queue_capacity(config.workers);
    let handle = Service::new(config, store.clone()).start().unwrap();
    wait_for("2000 notified", Duration::from_secs(60), || {
        notified_count(&*store.inner) == 2000
    });
    handle.stop();
    let limits = store.limits();
    assert_eq!(limits[..2], [64, 256], "first claims: {limits:?}");
    // The queue's free room: all of it but what the workers have not taken yet of the first
    // 320 (the queue holds 1,024, less than the next step of 1,024).
    assert_eq!(capacity, 1024);
    assert!(
        limits[2] >= capacity - 320 && limits[2] <= capacity,
        "third claim fills the queue: {limits:?}"
    );
    assert_eq!(rx.requests().len(), 2000);
}

/// A notifier that succeeds at once.
struct Instant0(std::sync::atomic::AtomicUsize);

impl clair_notifier::Notifier for Instant0 {
    fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }
    fn send(&self, _: &clair_notifier::Delivery) -> Result<(), clair_notifier::SendError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Workers fast enough to empty the queue between claims do not shrink the claims: only the
/// first ones, growing from idle, are small.
fn fast_workers_draining_a_backlog_keep_claims_full(db: TestDb) {
    let store = db.recording();
    let batch: Vec<_> = (0..20_000)
        .map(|i| sample(&format!("CVE-{i}"), 0))
        .collect();
    store.inner.insert(&batch, Timestamp::now()).unwrap();
    let mut registry = clair_notifier::Registry::new();
    registry.register("instant", Instant0(Default::default()));
    let handle = Service::new(NotifierConfig::default(), store.clone())
        .registry(registry)
        .start()
        .unwrap();
    wait_for("20000 notified", Duration::from_secs(120), || {
        notified_count(&*store.inner) == 20_000
    });
    handle.stop();
    let limits = store.limits();
    let small = limits.iter().filter(|&&l| l <= 256).count();
    assert_eq!(small, 2, "only the first claims are small: {limits:?}");
    assert_eq!(limits[..2], [64, 256], "{limits:?}");
}
