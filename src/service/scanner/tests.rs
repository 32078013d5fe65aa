//! The scanner's steps, driven by time passed in: no threads, no store, no sleeps.

use std::time::{Duration, Instant};

use super::state::{
    CLAIM_GROWTH, FIRST_CLAIM, FLUSH_DELAY, OUTCOME_BATCH, Plan, ROOM_CHECK, ScanState,
};
use crate::error::{Error, ErrorKind};
use crate::notification::NotificationId;
use crate::store::Outcome;
use crate::time::Timestamp;

const CAPACITY: usize = 1024;
const POLL: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A scanner's state at `t0`, and the wall-clock time it reads then.
fn start() -> (ScanState, Instant, Timestamp) {
    let t0 = Instant::now();
    (
        ScanState::new(CAPACITY, POLL, LEASE, t0),
        t0,
        Timestamp::from_millis(1_000_000),
    )
}

fn outcome(id: i64, next_due: Timestamp) -> Outcome {
    Outcome {
        log: Vec::new(),
        id: NotificationId::new(id),
        notified: true,
        next_due,
        attempts: 0,
        last_error: None,
        progress: Vec::new(),
    }
}

/// Claims as `plan` says and gets `got` of them (ids from `first`), as the loop would.
fn claim(st: &mut ScanState, plan: Plan, got: usize, first: i64, now: Timestamp) -> bool {
    let ask = st.written(plan, got, now);
    for id in first..first + got as i64 {
        st.track(NotificationId::new(id));
    }
    ask
}

#[test]
fn the_first_claim_is_small_and_the_next_grow_up_to_the_free_room() {
    let (mut st, t0, now) = start();
    // Woken at start: due work is looked at before anything is known of it.
    let plan = st.decide(now, t0, 0);
    assert_eq!(
        plan,
        Plan {
            claim: FIRST_CLAIM,
            flush: false
        }
    );
    assert!(
        !claim(&mut st, plan, FIRST_CLAIM, 0, now),
        "got all it asked"
    );
    // More may be due at once: the next claim is four times larger.
    let plan = st.decide(now, t0, FIRST_CLAIM);
    assert_eq!(plan.claim, FIRST_CLAIM * CLAIM_GROWTH);
    claim(&mut st, plan, plan.claim, 1_000, now);
    // Then the free room caps it.
    let queued = 320;
    let plan = st.decide(now, t0, queued);
    assert_eq!(plan.claim, CAPACITY - queued);
}

#[test]
fn a_claim_that_gets_less_than_it_asked_ends_the_growth() {
    let (mut st, t0, now) = start();
    let plan = st.decide(now, t0, 0);
    assert!(
        claim(&mut st, plan, 10, 0, now),
        "short: ask when the next is due"
    );
    st.polled(t0, Ok(Some(now.plus(Duration::from_secs(60)))));
    assert_eq!(st.decide(now, t0, 10).claim, 0, "nothing due, not woken");
    // The ten come back; the next due work gets a small first claim again.
    for id in 0..10 {
        st.take_outcome(outcome(id, now.plus(LEASE)), t0);
    }
    st.wake();
    let plan = st.decide(now, t0, 0);
    assert_eq!(plan.claim, FIRST_CLAIM);
    assert!(plan.flush, "outcomes go with the claim");
}

#[test]
fn while_a_backlog_drains_claims_stay_full_even_with_an_empty_queue() {
    let (mut st, t0, now) = start();
    let mut first = 0;
    for _ in 0..4 {
        let plan = st.decide(now, t0, 0);
        claim(&mut st, plan, plan.claim, first, now);
        first += plan.claim as i64;
    }
    // Fast workers report everything and empty the queue: the backlog still drains.
    for id in 0..first {
        st.take_outcome(outcome(id, now.plus(LEASE)), t0);
    }
    assert_eq!(st.decide(now, t0, 0).claim, CAPACITY);
}

#[test]
fn no_claim_without_half_the_queue_free_or_nothing_due() {
    let (mut st, t0, now) = start();
    assert_eq!(st.decide(now, t0, CAPACITY / 2 + 1).claim, 0);
    assert_eq!(st.decide(now, t0, CAPACITY / 2).claim, FIRST_CLAIM);
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, 0, 0, now);
    st.polled(t0, Ok(None));
    assert_eq!(st.decide(now, t0, 0).claim, 0, "none scheduled");
    st.polled(t0, Ok(Some(now)));
    assert_eq!(st.decide(now, t0, 0).claim, FIRST_CLAIM, "due now");
}

#[test]
fn outcomes_are_written_in_batches_while_work_is_in_flight() {
    let (mut st, t0, now) = start();
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, FIRST_CLAIM, 0, now);
    st.polled(t0, Ok(None));
    let at = t0 + ms(100);
    st.take_outcome(outcome(0, now.plus(LEASE)), at);
    // Others are in flight and nothing is due: the batch gathers ...
    assert!(!st.decide(now, at + FLUSH_DELAY - ms(1), 0).flush);
    // ... until its oldest has waited FLUSH_DELAY.
    assert!(st.decide(now, at + FLUSH_DELAY, 0).flush);
    // A later outcome does not restart the delay.
    st.take_outcome(outcome(1, now.plus(LEASE)), at + ms(15));
    assert!(st.decide(now, at + FLUSH_DELAY, 0).flush);
}

#[test]
fn a_full_batch_or_the_last_outcome_in_flight_is_written_at_once() {
    let (mut st, t0, now) = start();
    let n = OUTCOME_BATCH as i64 + 1;
    let plan = st.decide(now, t0, 0);
    st.written(plan, 0, now);
    for id in 0..n {
        st.track(NotificationId::new(id));
    }
    for id in 0..OUTCOME_BATCH as i64 - 1 {
        st.take_outcome(outcome(id, now.plus(LEASE)), t0);
    }
    st.polled(t0, Ok(None));
    let plan = st.decide(now, t0, 0);
    assert_eq!(
        plan,
        Plan {
            claim: 0,
            flush: false
        }
    );
    st.take_outcome(outcome(n - 2, now.plus(LEASE)), t0);
    assert!(st.decide(now, t0, 0).flush, "a full batch");
    let plan = st.decide(now, t0, 0);
    st.written(plan, 0, now);
    st.take_outcome(outcome(n - 1, now.plus(LEASE)), t0);
    assert!(st.decide(now, t0, 0).flush, "nothing else in flight");
}

#[test]
fn written_outcomes_bring_the_next_due_time_forward() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now.plus(Duration::from_secs(3600)))));
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, 2, 0, now);
    st.polled(t0, Ok(Some(now.plus(Duration::from_secs(3600)))));
    let retry = now.plus(Duration::from_secs(2));
    st.take_outcome(outcome(0, retry), t0);
    st.take_outcome(outcome(1, now.plus(Duration::from_secs(7200))), t0);
    let plan = st.decide(now, t0, 0);
    assert!(plan.flush && plan.claim == 0);
    st.written(plan, 0, now);
    assert_eq!(st.pending().len(), 0);
    // Nothing in flight, nothing pending: sleep until the retry is due, and claim it then.
    let w = st.wait(now, t0, 0).unwrap();
    assert_eq!(w.timeout, Duration::from_secs(1), "the poll comes first");
    let w = st.wait(now, t0 + ms(900), 0).unwrap();
    assert_eq!(w.timeout, ms(100));
    st.polled(t0 + POLL, Ok(Some(now.plus(Duration::from_secs(3600)))));
    assert_eq!(
        st.wait(now, t0 + POLL, 0).unwrap().timeout,
        POLL,
        "an hour away: the next poll"
    );
    st.polled(t0 + POLL, Ok(Some(retry)));
    assert_eq!(
        st.wait(now.plus(ms(1500)), t0 + POLL, 0).unwrap().timeout,
        ms(500)
    );
    assert_eq!(st.decide(retry, t0 + POLL, 0).claim, FIRST_CLAIM);
}

#[test]
fn a_failed_read_of_the_next_due_time_keeps_what_was_known() {
    let (mut st, t0, now) = start();
    assert!(st.should_poll(t0));
    st.polled(t0, Ok(Some(now)));
    assert!(!st.should_poll(t0 + POLL - ms(1)));
    assert!(st.should_poll(t0 + POLL));
    st.polled(
        t0 + POLL,
        Err(Error::new(ErrorKind::Store, "the disk is gone")),
    );
    assert!(!st.should_poll(t0 + POLL), "asked, even if in vain");
    let plan = st.decide(now, t0 + POLL, 0);
    assert_eq!(plan.claim, FIRST_CLAIM, "still due");
}

#[test]
fn failed_writes_wait_longer_each_time_and_a_success_resets_the_wait() {
    let (mut st, t0, now) = start();
    let waits: Vec<Duration> = (0..9).map(|_| st.write_failed()).collect();
    assert_eq!(waits[..4], [ms(50), ms(100), ms(200), ms(400)]);
    assert_eq!(waits[8], Duration::from_secs(5), "capped");
    let plan = st.decide(now, t0, 0);
    st.written(plan, 0, now);
    assert_eq!(st.write_failed(), ms(50));
}

#[test]
fn leases_are_renewed_every_third_of_the_lease_while_work_is_in_flight() {
    let (mut st, t0, now) = start();
    let third = LEASE / 3;
    assert!(!st.renew_due(t0 + third), "nothing in flight");
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, 3, 0, now);
    assert!(!st.renew_due(t0 + third - ms(1)));
    assert!(st.renew_due(t0 + third));
    assert_eq!(st.in_flight().len(), 3);
    assert!(!st.renew_due(t0 + third + ms(1)), "just renewed");
    // The wait ends in time for the next renewal.
    st.polled(t0 + third * 2 - ms(300), Ok(None));
    let w = st.wait(now, t0 + third * 2 - ms(200), 3).unwrap();
    assert_eq!(w.timeout, ms(200));
    assert!(st.renew_due(t0 + third * 2));
}

#[test]
fn due_work_goes_on_at_once_or_waits_briefly_for_room() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    assert_eq!(st.wait(now, t0, 0), None, "due and room: no wait");
    let w = st.wait(now, t0, CAPACITY).unwrap();
    assert_eq!((w.timeout, w.for_outcomes), (ROOM_CHECK, true));
}

#[test]
fn while_a_batch_gathers_the_wait_ignores_single_outcomes_and_ends_with_the_batch() {
    let (mut st, t0, now) = start();
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, 5, 0, now);
    st.polled(t0, Ok(None));
    let w = st.wait(now, t0, 5).unwrap();
    assert_eq!((w.timeout, w.for_outcomes), (POLL, true));
    st.take_outcome(outcome(0, now.plus(LEASE)), t0 + ms(5));
    let w = st.wait(now, t0 + ms(10), 4).unwrap();
    assert_eq!((w.timeout, w.for_outcomes), (FLUSH_DELAY - ms(5), false));
}

#[test]
fn on_the_way_out_outcomes_are_kept_and_unreported_work_is_released() {
    let (mut st, t0, now) = start();
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, 3, 0, now);
    st.take_outcome(outcome(1, now.plus(LEASE)), t0);
    let (pending, mut unsent) = st.into_leftovers();
    unsent.sort();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, NotificationId::new(1));
    assert_eq!(unsent, [NotificationId::new(0), NotificationId::new(2)]);
}

#[test]
fn while_every_notifier_is_paused_nothing_is_claimed_and_the_wait_is_the_poll() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    st.set_paused(true);
    assert_eq!(st.decide(now, t0, 0).claim, 0);
    // Due work does not make it spin: it waits for the next poll, which reads the pause again.
    let wait = st.wait(now, t0 + ms(100), 0).expect("a wait, not a spin");
    assert_eq!(wait.timeout, POLL - ms(100));
    // Outcomes still get written.
    st.take_outcome(outcome(1, now.plus(POLL)), t0);
    assert_eq!(
        st.decide(now, t0, 0),
        Plan {
            claim: 0,
            flush: true
        }
    );
    st.set_paused(false);
    assert!(st.decide(now, t0, 0).claim > 0);
}

#[test]
fn while_everything_is_held_only_the_probes_are_claimed() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    st.set_paused(true);
    st.want_probes(vec![0], t0);
    let plan = st.decide(now, t0, 0);
    assert_eq!(plan.claim, 1, "one notification for the probe");
    claim(&mut st, plan, 1, 1, now);
    assert_eq!(st.next_probe(), Some(0));
    assert_eq!(st.next_probe(), None);
    assert_eq!(st.decide(now, t0, 0).claim, 0, "the probe is spent");
}

#[test]
fn a_notifier_waits_for_one_probe_however_often_the_store_gives_it_one() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    st.set_paused(true);
    st.want_probes(vec![0], t0);
    st.want_probes(vec![0, 1, 0], t0 + ms(10));
    let plan = st.decide(now, t0 + ms(10), 0);
    assert_eq!(plan.claim, 2, "one notification per notifier probed");
    claim(&mut st, plan, 2, 1, now);
    let mut probed = [st.next_probe(), st.next_probe()];
    probed.sort();
    assert_eq!(probed, [Some(0), Some(1)]);
    assert_eq!(st.next_probe(), None, "no second probe of notifier 0");
}

#[test]
fn a_probe_no_claim_used_within_a_poll_is_given_up() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    st.set_paused(true);
    st.want_probes(vec![0], t0);
    // The claim for it finds nothing due (another instance leased it, say).
    let plan = st.decide(now, t0, 0);
    assert_eq!(plan.claim, 1);
    claim(&mut st, plan, 0, 0, now);
    st.polled(t0, Ok(Some(now)));
    // Kept until a poll interval has passed ...
    assert_eq!(st.decide(now, t0 + POLL - ms(1), 0).claim, 1);
    // ... then given up: a later claim does not send it.
    assert_eq!(st.decide(now, t0 + POLL, 0).claim, 0, "held past a poll");
    assert_eq!(st.next_probe(), None);
    // The next probe the store gives out is sent.
    st.want_probes(vec![0], t0 + POLL);
    assert_eq!(st.decide(now, t0 + POLL, 0).claim, 1);
    assert_eq!(st.next_probe(), Some(0));
}

#[test]
fn while_a_backlog_drains_the_poll_does_not_ask_for_the_next_due_time() {
    let (mut st, t0, now) = start();
    assert!(st.poll_reads_due(), "nothing claimed yet");
    let plan = st.decide(now, t0, 0);
    claim(&mut st, plan, plan.claim, 0, now);
    assert!(
        !st.poll_reads_due(),
        "a full claim: the next claim comes anyway"
    );
    st.polled_without_read(t0 + POLL);
    assert!(!st.should_poll(t0 + POLL + ms(1)), "the poll is counted");
    assert_eq!(
        st.decide(now, t0 + POLL, 0).claim,
        FIRST_CLAIM * CLAIM_GROWTH
    );
    let plan = st.decide(now, t0 + POLL, 0);
    assert!(
        claim(&mut st, plan, 1, 5_000, now),
        "short: it asks at once"
    );
    assert!(st.poll_reads_due(), "the backlog is drained");
}

#[test]
fn short_claims_however_frequent_do_not_put_the_poll_off() {
    let (mut st, t0, now) = start();
    st.polled(t0, Ok(Some(now)));
    // Failed tries coming back due every few milliseconds: claim after claim comes back
    // short, and each asks the store when the next is due.
    for k in 1..=20u64 {
        let at = t0 + POLL * (k as u32) / 20;
        let plan = st.decide(now, at, 0);
        assert!(plan.claim > 0, "due work is claimed");
        assert!(claim(&mut st, plan, 1, k as i64 * 100, now), "short");
        st.learned_next_due(Ok(Some(now)));
        let next = st.wait(now, at, 0);
        assert!(next.is_none_or(|w| w.timeout <= POLL), "{next:?}");
    }
    // A poll interval after the last poll, the next one (holds, probes, dead owners) is due.
    assert!(st.should_poll(t0 + POLL), "the poll was put off");
}
