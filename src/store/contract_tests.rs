//! The [`Datastore`] contract, checked against every backend from one source: each test body
//! takes a store, and [`backends!`] runs it on a fresh SQLite file and, with the cargo feature
//! `postgres`, on a fresh database of the server named by `CLAIR_NOTIFIER_TEST_PG` (the test
//! prints that it was skipped when that is not set; it fails when the server is unreachable).

#[macro_use]
mod backends;
mod attempts;
mod operator;

use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::notification::{
    NewNotification, NotificationId, PageCursor, State, Vulnerability, VulnerabilityWithLayers,
};
use crate::store::{Datastore, LeaseOwner, ListFilter, NotifierProgress, Outcome};
use crate::time::Timestamp;

pub(super) fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(super) fn vuln(name: &str, layers: usize) -> VulnerabilityWithLayers {
    VulnerabilityWithLayers {
        vulnerability: Vulnerability {
            name: name.to_string(),
            severity: "High".into(),
            ..Vulnerability::default()
        },
        layers: (0..layers).map(|i| format!("layer-{i}")).collect(),
    }
}

pub(super) fn new_only(layers: usize) -> NewNotification {
    NewNotification {
        old: None,
        new: Some(vuln("CVE-1", layers)),
    }
}

pub(super) const A: LeaseOwner = LeaseOwner::new(1);
pub(super) const B: LeaseOwner = LeaseOwner::new(2);

pub(super) fn done(id: NotificationId, next_due: Timestamp) -> Outcome {
    Outcome {
        log: Vec::new(),
        id,
        notified: true,
        next_due,
        attempts: 0,
        last_error: None,
        progress: Vec::new(),
    }
}

fn all(limit: usize) -> ListFilter {
    ListFilter { state: None, limit }
}

fn insert_is_all_or_nothing_and_names_are_uuids(s: &dyn Datastore) {
    let bad = NewNotification {
        old: None,
        new: Some(vuln("", 0)),
    };
    let err = s.insert(&[new_only(1), bad], t(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("notification 2 of 2"), "{err}");
    assert_eq!(s.counts(t(0)).unwrap().total(), 0);
    let names = s.insert(&[new_only(1), new_only(0)], t(0)).unwrap();
    assert_eq!(names.len(), 2);
    for n in &names {
        let u = uuid::Uuid::parse_str(n).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(n, &u.hyphenated().to_string());
        assert_eq!(s.summary(n).unwrap().unwrap().state(), State::Pending);
    }
    assert!(s.summary(&names[0].to_uppercase()).unwrap().is_none());
    assert!(s.summary("not-a-name").unwrap().is_none());
}

fn claims_lease_and_expired_leases_are_taken_over(s: &dyn Datastore) {
    s.insert(&[new_only(0), new_only(0), new_only(0)], t(0))
        .unwrap();
    let a = s.claim(A, 2, t(10), t(1_000)).unwrap();
    assert_eq!(a.len(), 2);
    // Leased work is not due for anyone else until its lease expires.
    let b = s.claim(B, 10, t(20), t(2_000)).unwrap();
    assert_eq!(b.len(), 1);
    assert!(s.claim(B, 10, t(999), t(2_000)).unwrap().is_empty());
    assert_eq!(s.counts(t(999)).unwrap().leased, 3);
    // A crashed: at t=1000 its leases expire and B takes them over.
    let taken = s.claim(B, 10, t(1_000), t(3_000)).unwrap();
    let mut names: Vec<_> = taken.iter().map(|c| &c.name).collect();
    names.sort();
    let mut expected: Vec<_> = a.iter().map(|c| &c.name).collect();
    expected.sort();
    assert_eq!(names, expected);
    let b_id = taken.iter().find(|c| c.name == a[0].name).unwrap().id;
    // A's late outcome and renewal for a lease it lost change nothing.
    s.record(A, &[done(a[0].id, t(9_000))], t(1_001)).unwrap();
    assert_eq!(s.renew(A, &[a[0].id], t(50_000)).unwrap(), 0);
    let got = s.summary(&a[0].name).unwrap().unwrap();
    assert_eq!((got.notified, got.due), (None, Some(t(3_000))));
    // B's outcome is recorded.
    s.record(B, &[done(b_id, t(9_000))], t(1_002)).unwrap();
    let got = s.summary(&a[0].name).unwrap().unwrap();
    assert_eq!(got.notified, Some(t(1_002)));
    assert_eq!(got.due, Some(t(9_000)));
    assert_eq!(got.state(), State::Notified);
}

fn renew_extends_only_own_leases_and_release_makes_due(s: &dyn Datastore) {
    s.insert(&[new_only(0)], t(0)).unwrap();
    let c = s.claim(A, 1, t(0), t(100)).unwrap();
    assert_eq!(s.renew(B, &[c[0].id], t(10_000)).unwrap(), 0);
    assert_eq!(s.renew(A, &[c[0].id], t(500)).unwrap(), 1);
    assert!(s.claim(B, 1, t(400), t(1_000)).unwrap().is_empty());
    s.release(B, &[c[0].id], t(420)).unwrap();
    assert!(
        s.claim(B, 1, t(430), t(1_000)).unwrap().is_empty(),
        "B held nothing to release"
    );
    s.release(A, &[c[0].id], t(450)).unwrap();
    assert_eq!(s.next_due().unwrap(), Some(t(450)));
    assert_eq!(s.claim(B, 1, t(450), t(1_000)).unwrap().len(), 1);
}

fn due_order_and_next_due_follow_outcomes(s: &dyn Datastore) {
    s.insert(&[new_only(0), new_only(0)], t(0)).unwrap();
    let c = s.claim(A, 10, t(0), t(100)).unwrap();
    s.record(A, &[done(c[0].id, t(7_200)), done(c[1].id, t(5_000))], t(1))
        .unwrap();
    assert_eq!(s.next_due().unwrap(), Some(t(5_000)));
    assert!(s.claim(A, 10, t(4_999), t(6_000)).unwrap().is_empty());
    let c2 = s.claim(A, 10, t(7_200), t(8_000)).unwrap();
    assert_eq!(c2.len(), 2);
    assert_eq!(c2[0].name, c[1].name, "oldest due first");
    assert_eq!(c2[0].notified, Some(t(1)));
}

fn outcomes_fold_into_the_next_claim(s: &dyn Datastore) {
    let names = s.insert(&[new_only(0), new_only(0)], t(0)).unwrap();
    let first = s.claim(A, 1, t(0), t(100)).unwrap();
    let req = crate::store::ClaimRequest {
        limit: 5,
        now: t(1),
        lease_until: t(200),
    };
    let next = s
        .record_and_claim(A, &[done(first[0].id, t(50))], req)
        .unwrap();
    assert_eq!(
        next.len(),
        1,
        "the other one; the recorded one is not due yet"
    );
    assert_eq!(next[0].name, names[1]);
    assert_eq!(s.summary(&names[0]).unwrap().unwrap().notified, Some(t(1)));
}

/// While an owner's lease is live, what it holds is neither claimed, nor counted due, nor
/// taken for the next due time, and its summary shows when the lease expires.
fn live_leases_are_passed_over_by_claims_counts_and_next_due(s: &dyn Datastore) {
    let names = s
        .insert(&[new_only(0), new_only(0), new_only(0)], t(0))
        .unwrap();
    let first = s.claim(A, 1, t(10), t(2_000)).unwrap();
    assert_eq!(first[0].name, names[0]);
    assert_eq!(s.next_due().unwrap(), Some(t(0)), "two are still due");
    let c = s.counts(t(10)).unwrap();
    assert_eq!((c.due, c.leased, c.oldest_due), (2, 1, Some(t(0))));
    let rest = s.claim(A, 10, t(20), t(2_000)).unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(s.next_due().unwrap(), Some(t(2_000)), "the lease's expiry");
    let c = s.counts(t(20)).unwrap();
    assert_eq!((c.due, c.leased, c.oldest_due), (0, 3, None));
    assert!(s.claim(B, 10, t(1_999), t(3_000)).unwrap().is_empty());
    assert_eq!(s.summary(&names[0]).unwrap().unwrap().due, Some(t(2_000)));
    let listed = s.list(all(10)).unwrap();
    assert!(listed.iter().all(|s| s.due == Some(t(2_000))), "{listed:?}");
    // Renewing moves the expiry (never back), not the due time.
    assert_eq!(s.renew(A, &[first[0].id], t(1_500)).unwrap(), 1);
    assert_eq!(s.next_due().unwrap(), Some(t(2_000)));
    let ids: Vec<_> = first.iter().chain(&rest).map(|c| c.id).collect();
    assert_eq!(s.renew(A, &ids, t(2_500)).unwrap(), 3);
    assert_eq!(s.next_due().unwrap(), Some(t(2_500)));
    // An outcome ends the lease and sets the next due time.
    s.record(A, &[done(first[0].id, t(600))], t(30)).unwrap();
    assert_eq!(s.next_due().unwrap(), Some(t(600)));
    let c = s.counts(t(600)).unwrap();
    assert_eq!((c.due, c.leased, c.oldest_due), (1, 2, Some(t(600))));
    // An expired lease is due again at once, from its old place.
    let c = s.counts(t(2_500)).unwrap();
    assert_eq!((c.due, c.leased, c.oldest_due), (3, 0, Some(t(0))));
    assert_eq!(s.claim(B, 10, t(2_500), t(4_000)).unwrap().len(), 3);
}

fn read_notifications_are_never_claimed_and_stay_read(s: &dyn Datastore) {
    let names = s.insert(&[new_only(0), new_only(0)], t(0)).unwrap();
    let c = s.claim(A, 10, t(0), t(100)).unwrap();
    assert!(s.mark_read(&names[0], t(5)).unwrap());
    assert!(
        s.mark_read(&names[0], t(6)).unwrap(),
        "a second mark is fine"
    );
    assert!(!s.mark_read("nope", t(6)).unwrap());
    // An outcome for the read one does not bring it back.
    let outcomes: Vec<_> = c.iter().map(|c| done(c.id, t(50))).collect();
    s.record(A, &outcomes, t(10)).unwrap();
    let got = s.summary(&names[0]).unwrap().unwrap();
    assert_eq!(
        (got.read, got.due, got.state()),
        (Some(t(6)), None, State::Read)
    );
    let later = s.claim(A, 10, t(1_000_000), t(2_000_000)).unwrap();
    assert_eq!(
        later.iter().map(|c| &c.name).collect::<Vec<_>>(),
        [&names[1]]
    );
    s.mark_read(&names[1], t(7)).unwrap();
    assert_eq!(s.next_due().unwrap(), None, "everything is read");
}

fn round_progress_is_kept_and_cleared(s: &dyn Datastore) {
    let names = s.insert(&[new_only(0)], t(0)).unwrap();
    let c = s.claim(A, 1, t(0), t(100)).unwrap();
    assert!(c[0].progress.is_empty());
    let progress = vec![
        NotifierProgress {
            notifier: "a".into(),
            attempts: 0,
            succeeded: true,
            last_error: None,
        },
        NotifierProgress {
            notifier: "b".into(),
            attempts: 2,
            succeeded: false,
            last_error: Some("b: 500 \"quoted\"".into()),
        },
    ];
    let retry = Outcome {
        log: Vec::new(),
        id: c[0].id,
        notified: false,
        next_due: t(10),
        attempts: 2,
        last_error: Some("b: 500".into()),
        progress: progress.clone(),
    };
    s.record(A, &[retry], t(1)).unwrap();
    let got = s.summary(&names[0]).unwrap().unwrap();
    assert_eq!((got.state(), got.attempts), (State::Failing, 2));
    let failing = ListFilter {
        state: Some(State::Failing),
        limit: 10,
    };
    assert_eq!(s.list(failing).unwrap().len(), 1);
    let c = s.claim(A, 1, t(10), t(100)).unwrap();
    assert_eq!(c[0].progress, progress);
    s.record(A, &[done(c[0].id, t(500))], t(11)).unwrap();
    let c = s.claim(A, 1, t(500), t(600)).unwrap();
    assert!(c[0].progress.is_empty());
}

fn pages_walk_old_and_new_together_by_position(s: &dyn Datastore) {
    let n = NewNotification {
        old: Some(vuln("CVE-OLD", 3)),
        new: Some(vuln("CVE-NEW", 5)),
    };
    let name = s.insert(&[n], t(0)).unwrap().remove(0);
    let mut cursor = PageCursor::FIRST;
    let (mut old, mut new, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let p = s.page(&name, cursor, 2).unwrap().unwrap();
        pages += 1;
        let (o, nw) = (p.old.unwrap(), p.new.unwrap());
        assert_eq!(o.vulnerability.name, "CVE-OLD");
        assert_eq!(o.vulnerability.severity, "High");
        assert_eq!(nw.vulnerability.name, "CVE-NEW");
        assert!(o.layers.len() <= 2 && nw.layers.len() <= 2);
        old.extend(o.layers);
        new.extend(nw.layers);
        match p.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(old, ["layer-0", "layer-1", "layer-2"]);
    assert_eq!(new, ["layer-0", "layer-1", "layer-2", "layer-3", "layer-4"]);
    let p2 = s
        .page(&name, PageCursor { old: 2, new: 2 }, 2)
        .unwrap()
        .unwrap();
    assert_eq!(p2.next, Some(PageCursor { old: -1, new: 4 }));
    assert!(s.page("missing", PageCursor::FIRST, 2).unwrap().is_none());
    // A side that does not exist pages as -1.
    let only_new = s.insert(&[new_only(1)], t(0)).unwrap().remove(0);
    let p = s.page(&only_new, PageCursor::FIRST, 5).unwrap().unwrap();
    assert!(p.old.is_none());
    assert_eq!(p.next, None);
}

fn list_and_counts_by_state(s: &dyn Datastore) {
    let names = s
        .insert(&[new_only(0), new_only(0), new_only(0)], t(0))
        .unwrap();
    let c = s.claim(A, 1, t(0), t(100)).unwrap();
    s.record(A, &[done(c[0].id, t(1_000))], t(1)).unwrap();
    s.mark_read(&names[2], t(2)).unwrap();
    let counts = s.counts(t(3)).unwrap();
    assert_eq!(
        (counts.pending, counts.notified, counts.failing, counts.read),
        (1, 1, 0, 1)
    );
    assert_eq!(counts.due, 1);
    let listed = s.list(all(10)).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].name, names[2], "newest first");
    let pending = ListFilter {
        state: Some(State::Pending),
        limit: 10,
    };
    assert_eq!(s.list(pending).unwrap().len(), 1);
    assert_eq!(s.list(all(1)).unwrap().len(), 1);
}

fn settings_keep_the_first_value(s: &dyn Datastore) {
    assert_eq!(s.setting_or_insert("k", "one").unwrap(), "one");
    assert_eq!(s.setting_or_insert("k", "two").unwrap(), "one");
    assert_eq!(s.setting_or_insert("other", "two").unwrap(), "two");
}

fn inserts_wake_watchers(s: &dyn Datastore) {
    let (waker, woken) = crate::wake::Waker::new();
    s.watch(waker);
    s.insert(&[new_only(0)], t(0)).unwrap();
    woken
        .recv_timeout(Duration::from_secs(10))
        .expect("the waker was woken after an insert");
}

fn read_notifications_are_deleted_oldest_first_and_unread_never(s: &dyn Datastore) {
    use crate::store::DeleteRequest;
    let names = s
        .insert(&[new_only(2), new_only(2), new_only(2)], t(0))
        .unwrap();
    s.mark_read(&names[1], t(10)).unwrap();
    s.mark_read(&names[0], t(20)).unwrap();
    let request = |limit, read_before| DeleteRequest {
        collector: A,
        read_before,
        limit,
        now: t(30),
    };
    assert_eq!(
        s.delete_read(request(0, t(100))).unwrap(),
        0,
        "a limit of 0"
    );
    assert_eq!(s.delete_read(request(1, t(100))).unwrap(), 1);
    assert!(
        s.summary(&names[1]).unwrap().is_none(),
        "read longest ago goes first"
    );
    assert!(s.page(&names[1], PageCursor::FIRST, 5).unwrap().is_none());
    assert!(!s.mark_read(&names[1], t(31)).unwrap());
    assert_eq!(
        s.delete_read(request(10, t(15))).unwrap(),
        0,
        "read after read_before"
    );
    assert_eq!(s.delete_read(request(10, t(100))).unwrap(), 1);
    assert_eq!(s.counts(t(40)).unwrap().total(), 1, "the unread one stays");
    assert_eq!(
        s.summary(&names[2]).unwrap().unwrap().state(),
        State::Pending
    );
}

/// Calls `release_dead_owners` until it finds someone (a server notices a closed session
/// within moments, not at once; PostgreSQL judges no one in its first seconds), or 30 s pass.
fn dead_found(s: &dyn Datastore, now: Timestamp) -> Vec<(LeaseOwner, usize)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = s.release_dead_owners(now).unwrap();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dead_owners_lose_their_leases_at_once_and_live_ones_never(s: &dyn Datastore) {
    let names = s
        .insert(&[new_only(0), new_only(0), new_only(0)], t(0))
        .unwrap();
    let guard_a = s.hold_owner(A).unwrap();
    let guard_b = s.hold_owner(B).unwrap();
    assert!(guard_a.proves() && guard_b.proves());
    let a = s.claim(A, 2, t(0), t(600_000)).unwrap();
    let retry = Outcome {
        log: Vec::new(),
        attempts: 1,
        last_error: Some("w: 500".into()),
        progress: vec![NotifierProgress {
            notifier: "w".into(),
            attempts: 1,
            succeeded: false,
            last_error: Some("w: 500".into()),
        }],
        notified: false,
        ..done(a[1].id, t(5))
    };
    s.record(A, &[retry], t(1)).unwrap();
    assert_eq!(
        s.claim(B, 5, t(2), t(600_000)).unwrap().len(),
        1,
        "B holds the third"
    );
    let again = s.claim(A, 5, t(5), t(600_000)).unwrap();
    assert_eq!(again.len(), 1, "the retry, due at 5");
    let a = [a[0].clone(), again[0].clone()];
    // Both alive: nothing is freed, however late it is.
    assert!(s.release_dead_owners(t(500_000)).unwrap().is_empty());
    assert!(s.claim(B, 5, t(500_000), t(900_000)).unwrap().is_empty());

    drop(guard_a); // A's process is gone
    assert_eq!(dead_found(s, t(10)), [(A, 2)]);
    assert!(s.release_dead_owners(t(11)).unwrap().is_empty(), "once");
    let taken = s.claim(B, 5, t(12), t(600_000)).unwrap();
    let mut got: Vec<_> = taken.iter().map(|c| (&c.name, c.progress.len())).collect();
    got.sort();
    let mut expected: Vec<_> = a.iter().map(|c| (&c.name, c.progress.len())).collect();
    expected.sort();
    assert_eq!(got, expected, "due at once, with the round's progress");
    assert_eq!(
        s.summary(&names[1]).unwrap().unwrap().attempts,
        1,
        "spent stays spent"
    );
    // A's late outcomes change nothing: the work is B's now.
    let late: Vec<_> = a.iter().map(|c| done(c.id, t(99))).collect();
    s.record(A, &late, t(13)).unwrap();
    assert!(s.summary(&names[1]).unwrap().unwrap().notified.is_none());
    drop(guard_b);
}

fn owners_that_never_held_a_lock_are_not_found_dead(s: &dyn Datastore) {
    s.insert(&[new_only(0)], t(0)).unwrap();
    s.claim(A, 1, t(0), t(100)).unwrap();
    assert!(s.release_dead_owners(t(1)).unwrap().is_empty());
    assert!(s.claim(B, 1, t(2), t(100)).unwrap().is_empty());
}

backends!(
    insert_is_all_or_nothing_and_names_are_uuids,
    claims_lease_and_expired_leases_are_taken_over,
    renew_extends_only_own_leases_and_release_makes_due,
    due_order_and_next_due_follow_outcomes,
    outcomes_fold_into_the_next_claim,
    live_leases_are_passed_over_by_claims_counts_and_next_due,
    read_notifications_are_never_claimed_and_stay_read,
    round_progress_is_kept_and_cleared,
    pages_walk_old_and_new_together_by_position,
    list_and_counts_by_state,
    settings_keep_the_first_value,
    inserts_wake_watchers,
    dead_owners_lose_their_leases_at_once_and_live_ones_never,
    owners_that_never_held_a_lock_are_not_found_dead,
    read_notifications_are_deleted_oldest_first_and_unread_never,
);
