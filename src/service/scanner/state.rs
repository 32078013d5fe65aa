//! [`ScanState`]: what the scanner remembers from one turn of its loop to the next, and the
//! decisions of each step. Plain data with time passed in (no channels, no store, no clock), so
//! that each step is tested alone, without threads or sleeps.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::notification::NotificationId;
use crate::store::{IdHasher, Outcome};
use crate::time::Timestamp;

/// The first wait after a failed store operation; it doubles up to [`MAX_STORE_RETRY`].
const FIRST_STORE_RETRY: Duration = Duration::from_millis(50);

/// The longest wait after a failed store operation before the next try.
const MAX_STORE_RETRY: Duration = Duration::from_secs(5);

/// Outcomes are written in batches: when this many are waiting, ...
pub(super) const OUTCOME_BATCH: usize = 512;

/// ... or when the oldest has waited this long, or when nothing else is in flight, or with
/// the next claim. (One transaction per outcome would cost the scanner a core at the rates
/// of a loopback receiver.)
pub(super) const FLUSH_DELAY: Duration = Duration::from_millis(20);

/// The most claimed at once while nothing is in flight ...
pub(super) const FIRST_CLAIM: usize = 64;

/// ... and how much larger each following claim may be, up to the queue's free room. A claim
/// is one transaction that the workers wait for when they are idle: growing claims get them
/// sending at once and keep them fed while the queue fills (one claim of the whole queue would
/// leave them idle for as long as it takes).
pub(super) const CLAIM_GROWTH: usize = 4;

/// How often a full queue is looked at again while due work waits for room in it.
pub(super) const ROOM_CHECK: Duration = Duration::from_millis(1);

/// What one turn writes: the waiting outcomes (`flush`) and a claim of up to `claim`
/// notifications, in one store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// How many notifications to claim (0: none).
    pub claim: usize,
    /// Whether to write the waiting outcomes now.
    pub flush: bool,
}

impl Plan {
    /// Whether this turn calls the store at all.
    pub fn writes(&self) -> bool {
        self.claim > 0 || self.flush
    }
}

/// How the scanner waits at the end of a turn (unless it goes on at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wait {
    /// The longest wait: a wake-up, a stop (and an outcome, see below) end it sooner.
    pub timeout: Duration,
    /// Whether one outcome ends the wait. While a batch gathers, outcomes pile up in their
    /// channel (it has room for every job in flight) rather than waking the scanner each.
    pub for_outcomes: bool,
}

/// The scanner's memory and settings.
#[derive(Debug)]
pub(super) struct ScanState {
    /// Job queue capacity; a claim fills at most the free part.
    capacity: usize,
    /// Claim only when at least this many slots are free (batches, not trickles).
    claim_threshold: usize,
    /// How often the store is asked when the next notification is due.
    poll: Duration,
    /// How often the leases of work in flight are renewed.
    renew_every: Duration,
    /// Work claimed and not yet reported (hashed as the store's id sets are: by one
    /// multiplication, as a row id asks no more).
    in_flight: HashSet<NotificationId, BuildHasherDefault<IdHasher>>,
    /// Outcomes not yet written.
    pending: Vec<Outcome>,
    /// When the oldest outcome in `pending` arrived.
    pending_since: Instant,
    /// A wake-up (an in-process insert) asked for a look at due work.
    woken: bool,
    /// When the next notification is due, as far as the scanner knows.
    next_due: Option<Timestamp>,
    /// When the store was last asked for the next due time.
    last_poll: Option<Instant>,
    /// When leases were last renewed.
    last_renew: Instant,
    /// The wait after the next failed store operation.
    store_retry: Duration,
    /// The last claim got all it asked for: more may be due at once.
    draining: bool,
    /// The most the next claim may take, free room permitting.
    ramp: usize,
    /// Every enabled notifier is held (paused, or its circuit open): nothing is claimed but
    /// probes, nothing counts as due.
    paused: bool,
    /// Notifiers (by index) whose open circuit gets a probe (the next claimed notifications),
    /// each with when the store gave it out; each notifier listed once.
    probes: Vec<(usize, Instant)>,
}

impl ScanState {
    /// The state of a scanner starting at `at` over a job queue of `capacity`, which asks the
    /// store every `poll` and holds leases of `lease`. It starts as if woken: it looks at due
    /// work at once.
    pub fn new(capacity: usize, poll: Duration, lease: Duration, at: Instant) -> ScanState {
        ScanState {
            capacity,
            claim_threshold: (capacity / 2).max(1),
            poll,
            renew_every: lease / 3,
            in_flight: HashSet::default(),
            pending: Vec::new(),
            pending_since: at,
            woken: true,
            next_due: None,
            last_poll: None,
            last_renew: at,
            store_retry: FIRST_STORE_RETRY,
            draining: false,
            ramp: FIRST_CLAIM,
            paused: false,
            probes: Vec::new(),
        }
    }

    /// Step 1, take outcomes in: a worker reported `outcome` at `at`.
    pub fn take_outcome(&mut self, outcome: Outcome, at: Instant) {
        if self.pending.is_empty() {
            self.pending_since = at;
        }
        self.in_flight.remove(&outcome.id);
        self.pending.push(outcome);
    }

    /// A wake-up arrived: look at due work at once.
    pub fn wake(&mut self) {
        self.woken = true;
    }

    /// Whether the store should be asked for the next due time at `at` (rows written by
    /// other processes are seen this way).
    pub fn should_poll(&self, at: Instant) -> bool {
        self.last_poll
            .is_none_or(|t| at.saturating_duration_since(t) >= self.poll)
    }

    /// Whether a poll must ask the store for the next due time: not while a backlog drains
    /// (the last claim got all it asked for, so the next one is made as soon as there is room,
    /// and a claim that comes back short asks anyway). Such a read walks the due index past
    /// every leased row, which costs the more, the more is in flight.
    pub fn poll_reads_due(&self) -> bool {
        !self.draining
    }

    /// A poll at `at` that did not ask for the next due time (see
    /// [`poll_reads_due`](ScanState::poll_reads_due)): the next poll is a poll interval away.
    pub fn polled_without_read(&mut self, at: Instant) {
        self.last_poll = Some(at);
    }

    /// The store was asked for the next due time at `at`; a failed read keeps what was known.
    pub fn polled(&mut self, at: Instant, read: Result<Option<Timestamp>>) {
        self.last_poll = Some(at);
        self.learned_next_due(read);
    }

    /// The store was asked for the next due time outside a poll (after a claim that got less
    /// than it asked): the next poll, which also reads the holds, the probes and the dead
    /// owners, stays due when it was. (Counted as a poll, short claims coming faster than the
    /// poll interval would put those reads off for as long as they came.)
    pub fn learned_next_due(&mut self, read: Result<Option<Timestamp>>) {
        match read {
            Ok(d) => self.next_due = d,
            Err(e) => log::error!("{}", e.chain()),
        }
    }

    /// Whether every enabled notifier is held (read from the store at each poll): then
    /// nothing is claimed but probes, and due work waits without the scanner spinning on it.
    pub fn set_paused(&mut self, all: bool) {
        self.paused = all;
    }

    /// The open circuits of these notifiers (by index) get a probe, given out by the store
    /// at `at`: the next claimed notifications (while everything is held, only as many are
    /// claimed). A notifier already waiting for its probe keeps one, the newer.
    pub fn want_probes(&mut self, notifiers: Vec<usize>, at: Instant) {
        self.expire_probes(at);
        for i in notifiers {
            match self.probes.iter_mut().find(|(n, _)| *n == i) {
                Some(held) => held.1 = at,
                None => self.probes.push((i, at)),
            }
        }
    }

    /// Gives up, at `at`, the probes no claim used within a poll interval of being given
    /// out. The store gives one probe per interval between all the instances sharing it; one
    /// kept until a later claim found work could go out close to another instance's next.
    /// Given up, it is taken from the store again when next due there.
    fn expire_probes(&mut self, at: Instant) {
        let poll = self.poll;
        self.probes
            .retain(|&(_, taken)| at.saturating_duration_since(taken) < poll);
    }

    /// The notifier the next claimed notification probes, if any (of the probes that were
    /// current when the claim was decided).
    pub fn next_probe(&mut self) -> Option<usize> {
        self.probes.pop().map(|(i, _)| i)
    }

    /// Outcomes waiting to be written, to adjust before they are (see
    /// [`Holds::end_wait`](crate::service::hold::Holds::end_wait)).
    pub fn pending_mut(&mut self) -> &mut [Outcome] {
        &mut self.pending
    }

    /// Step 2, decide the claim, at `now` (`at` on the monotonic clock) with `queued` jobs
    /// waiting in the queue: claim while work is due and at least half the queue is free,
    /// a small first batch when the workers are idle, growing claims after it; write the
    /// outcomes with a claim, when a batch is full or old, or when nothing else is in flight.
    /// Probes held for a poll interval unused are given up first.
    pub fn decide(&mut self, now: Timestamp, at: Instant, queued: usize) -> Plan {
        self.expire_probes(at);
        let free = self.capacity.saturating_sub(queued);
        let due_now = self.woken || self.next_due.is_some_and(|d| d <= now);
        let claim = if self.paused {
            // Probes only, one notification each.
            if due_now {
                self.probes.len().min(free)
            } else {
                0
            }
        } else if !due_now || free < self.claim_threshold {
            0
        } else {
            if self.in_flight.is_empty() && !self.draining {
                // Idle workers and no backlog being worked through: a small first batch
                // gets them sending at once; the claims right after it grow until the
                // queue is full. (While a backlog drains, claims stay full even when fast
                // workers have emptied the queue.)
                self.ramp = FIRST_CLAIM;
            }
            free.min(self.ramp)
        };
        let flush = !self.pending.is_empty()
            && (claim > 0
                || self.pending.len() >= OUTCOME_BATCH
                || self.in_flight.is_empty()
                || at.saturating_duration_since(self.pending_since) >= FLUSH_DELAY);
        Plan { claim, flush }
    }

    /// The outcomes to write (all that are waiting).
    pub fn pending(&self) -> &[Outcome] {
        &self.pending
    }

    /// Step 3, write outcomes and claim, succeeded at `now`: `plan` was carried out and
    /// `claimed` notifications were claimed (the caller tracks each with
    /// [`track`](ScanState::track)). Returns whether everything due was claimed, so that the
    /// store must be asked when the next one is due (see [`polled`](ScanState::polled)).
    pub fn written(&mut self, plan: Plan, claimed: usize, now: Timestamp) -> bool {
        self.store_retry = FIRST_STORE_RETRY;
        for o in self.pending.drain(..) {
            self.next_due = Some(self.next_due.map_or(o.next_due, |d| d.min(o.next_due)));
        }
        if plan.claim == 0 {
            return false;
        }
        self.woken = false;
        self.draining = claimed == plan.claim;
        if self.draining {
            self.ramp = self.ramp.saturating_mul(CLAIM_GROWTH);
            // More may be due at once.
            self.next_due = Some(now);
            false
        } else {
            true
        }
    }

    /// A claimed notification went to the queue: it is in flight until its outcome comes.
    pub fn track(&mut self, id: NotificationId) {
        self.in_flight.insert(id);
    }

    /// The write failed: how long to wait before the next try (doubling each time, up to
    /// five seconds). The outcomes are kept.
    pub fn write_failed(&mut self) -> Duration {
        let wait = self.store_retry;
        self.store_retry = (wait * 2).min(MAX_STORE_RETRY);
        wait
    }

    /// Step 4, renew leases: whether the leases of work in flight are due for renewal at
    /// `at` (every third of the lease); if so, counts them renewed from `at`.
    pub fn renew_due(&mut self, at: Instant) -> bool {
        let due = !self.in_flight.is_empty()
            && at.saturating_duration_since(self.last_renew) >= self.renew_every;
        if due {
            self.last_renew = at;
        }
        due
    }

    /// The notifications in flight.
    pub fn in_flight(&self) -> impl ExactSizeIterator<Item = NotificationId> + '_ {
        self.in_flight.iter().copied()
    }

    /// Step 5, wait: at `now` (`at`) with `queued` jobs in the queue, `None` if there is
    /// something to do at once (due work and room for it), else how to wait: until the next
    /// poll, the next due time, the next lease renewal or the end of a gathering batch,
    /// whichever comes first, and shortly when due work waits for room in the queue.
    pub fn wait(&self, now: Timestamp, at: Instant, queued: usize) -> Option<Wait> {
        let free = self.capacity.saturating_sub(queued);
        let due = !self.paused && self.next_due.is_some_and(|d| d <= now);
        let room = free >= self.claim_threshold;
        if due && room {
            return None;
        }
        let since = |t: Instant| at.saturating_duration_since(t);
        let mut timeout = self
            .poll
            .saturating_sub(self.last_poll.map_or(Duration::ZERO, since));
        // Due work that waits for room in the queue: look again shortly (workers empty it at
        // their own pace; nothing signals it). Otherwise sleep until the next due time, which
        // is not "now" here.
        if due {
            timeout = timeout.min(ROOM_CHECK);
        } else if let Some(d) = self.next_due
            && !self.paused
        {
            timeout = timeout.min(d.since(now));
        }
        if !self.in_flight.is_empty() {
            timeout = timeout.min(self.renew_every.saturating_sub(since(self.last_renew)));
        }
        let for_outcomes = self.pending.is_empty();
        if !for_outcomes {
            timeout = timeout.min(FLUSH_DELAY.saturating_sub(since(self.pending_since)));
        }
        Some(Wait {
            timeout,
            for_outcomes,
        })
    }

    /// On the way out: the outcomes to write, and the notifications claimed and never
    /// reported (to release).
    pub fn into_leftovers(self) -> (Vec<Outcome>, Vec<NotificationId>) {
        (self.pending, self.in_flight.into_iter().collect())
    }
}
