//! The scanner thread: the only writer of delivery state.
//!
//! It claims due notifications in batches into the bounded job queue, writes back the
//! workers' outcomes in batches (in the same transaction as the next claim), renews the
//! leases of work in flight, and sleeps until the next notification is due, a wake-up (an
//! in-process insert), the poll interval (rows written by other processes), or a stop.
//! On stop it waits for the sends in flight, writes their outcomes, and releases the leases
//! of work that was claimed but never sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::Shared;
use crate::notification::NotificationId;
use crate::store::{ClaimRequest, Claimed, Outcome};
use crate::time::Timestamp;

/// The longest wait after a failed store operation before the next try.
const MAX_STORE_RETRY: Duration = Duration::from_secs(5);

/// Outcomes are written in batches: when this many are waiting, ...
const OUTCOME_BATCH: usize = 512;

/// ... or when the oldest has waited this long, or when nothing else is in flight, or with
/// the next claim. (One transaction per outcome would cost the scanner a core at the rates
/// of a loopback receiver.)
const FLUSH_DELAY: Duration = Duration::from_millis(20);

/// The most claimed at once while nothing is in flight ...
const FIRST_CLAIM: usize = 64;

/// ... and how much larger each following claim may be, up to the queue's free room. A claim
/// is one transaction that the workers wait for when they are idle: growing claims get them
/// sending at once and keep them fed while the queue fills (one claim of the whole queue would
/// leave them idle for as long as it takes).
const CLAIM_GROWTH: usize = 4;

/// How often a full queue is looked at again while due work waits for room in it.
const ROOM_CHECK: Duration = Duration::from_millis(1);

/// How many times outcomes are tried on the way out before they are left to the leases.
const FINAL_WRITE_TRIES: u32 = 5;

pub(crate) struct Scanner {
    pub shared: Arc<Shared>,
    pub jobs: Sender<Claimed>,
    pub outcomes: Receiver<Outcome>,
    pub wake: Receiver<()>,
    /// Queue capacity; a claim fills at most the free part.
    pub capacity: usize,
    /// Claim only when at least this many slots are free (batches, not trickles).
    pub claim_threshold: usize,
}

impl Scanner {
    pub fn run(self) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let poll = config.poll_interval;
        let renew_every = config.lease / 3;
        // Work claimed and not yet reported, by id.
        let mut in_flight: HashMap<NotificationId, ()> = HashMap::new();
        let mut pending: Vec<Outcome> = Vec::new();
        // When the oldest outcome in `pending` arrived.
        let mut pending_since = Instant::now();
        let mut woken = true;
        let mut next_due: Option<Timestamp> = None;
        let mut last_poll: Option<Instant> = None;
        let mut last_renew = Instant::now();
        let mut store_retry = Duration::from_millis(50);
        // The last claim got all it asked for: more may be due at once.
        let mut draining = false;
        // The most the next claim may take, free room permitting.
        let mut ramp = FIRST_CLAIM;

        loop {
            while let Ok(o) = self.outcomes.try_recv() {
                if pending.is_empty() {
                    pending_since = Instant::now();
                }
                in_flight.remove(&o.id);
                pending.push(o);
            }
            if shared.stopper.is_stopped() {
                break;
            }
            let now = shared.clock.now();
            if last_poll.is_none_or(|t| t.elapsed() >= poll) {
                last_poll = Some(Instant::now());
                match shared.store.next_due() {
                    Ok(d) => next_due = d,
                    Err(e) => log::error!("{}", e.chain()),
                }
            }
            let free = self.capacity.saturating_sub(self.jobs.len());
            let due_now = woken || next_due.is_some_and(|d| d <= now);
            let limit = if !due_now || free < self.claim_threshold {
                0
            } else {
                if in_flight.is_empty() && !draining {
                    // Idle workers and no backlog being worked through: a small first batch
                    // gets them sending at once; the claims right after it grow until the
                    // queue is full. (While a backlog drains, claims stay full even when fast
                    // workers have emptied the queue.)
                    ramp = FIRST_CLAIM;
                }
                free.min(ramp)
            };

            let flush = !pending.is_empty()
                && (limit > 0
                    || pending.len() >= OUTCOME_BATCH
                    || in_flight.is_empty()
                    || pending_since.elapsed() >= FLUSH_DELAY);
            if limit > 0 || flush {
                let lease_until = now.plus(config.lease);
                let claim = ClaimRequest {
                    limit,
                    now,
                    lease_until,
                };
                match shared.store.record_and_claim(shared.owner, &pending, claim) {
                    Ok(claimed) => {
                        store_retry = Duration::from_millis(50);
                        for o in pending.drain(..) {
                            next_due = Some(next_due.map_or(o.next_due, |d| d.min(o.next_due)));
                        }
                        if limit > 0 {
                            woken = false;
                            draining = claimed.len() == limit;
                            if draining {
                                ramp = ramp.saturating_mul(CLAIM_GROWTH);
                            }
                            shared
                                .metrics
                                .claimed
                                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
                            if claimed.len() < limit {
                                // Everything due now is claimed: learn when the next one is.
                                last_poll = Some(Instant::now());
                                match shared.store.next_due() {
                                    Ok(d) => next_due = d,
                                    Err(e) => log::error!("{}", e.chain()),
                                }
                            } else {
                                next_due = Some(now);
                            }
                            for c in claimed {
                                in_flight.insert(c.id, ());
                                // Never blocks: at most `free` were claimed.
                                if let Err(e) = self.jobs.try_send(c) {
                                    let c = e.into_inner();
                                    log::error!(
                                        "job queue refused {}; it will be released",
                                        c.name
                                    );
                                }
                            }
                        }
                    }
                    Err(e) => {
                        shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                        log::error!(
                            "{} (retrying in {} ms; {} outcomes kept)",
                            e.chain(),
                            store_retry.as_millis(),
                            pending.len()
                        );
                        if !shared.stopper.sleep(store_retry) {
                            continue;
                        }
                        store_retry = (store_retry * 2).min(MAX_STORE_RETRY);
                        continue;
                    }
                }
            }

            if last_renew.elapsed() >= renew_every && !in_flight.is_empty() {
                last_renew = Instant::now();
                let ids: Vec<NotificationId> = in_flight.keys().copied().collect();
                let until = shared.clock.now().plus(config.lease);
                match shared.store.renew(shared.owner, &ids, until) {
                    Ok(held) => log::debug!("renewed {held} of {} leases", ids.len()),
                    Err(e) => {
                        shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("{}", e.chain());
                    }
                }
            }

            // Is there something to do at once?
            let now = shared.clock.now();
            let free = self.capacity.saturating_sub(self.jobs.len());
            if free >= self.claim_threshold && next_due.is_some_and(|d| d <= now) {
                continue;
            }
            let mut timeout =
                poll.saturating_sub(last_poll.map_or(Duration::ZERO, |t| t.elapsed()));
            // Due work that waits for room in the queue: look again shortly (workers empty
            // it at their own pace; nothing signals it). Otherwise sleep until the next due
            // time, which must not be "now" here or the loop would spin.
            let waiting_for_room =
                free < self.claim_threshold && next_due.is_some_and(|d| d <= now);
            if waiting_for_room {
                timeout = timeout.min(ROOM_CHECK);
            } else if let Some(d) = next_due {
                timeout = timeout.min(d.since(now));
            }
            if !in_flight.is_empty() {
                timeout = timeout.min(renew_every.saturating_sub(last_renew.elapsed()));
            }
            if pending.is_empty() {
                select! {
                    recv(self.outcomes) -> o => if let Ok(o) = o {
                        pending_since = Instant::now();
                        in_flight.remove(&o.id);
                        pending.push(o);
                    },
                    recv(self.wake) -> _ => woken = true,
                    recv(shared.stopper.receiver()) -> _ => {},
                    default(timeout) => {},
                }
            } else {
                // A batch is gathering: let outcomes pile up in their channel (it has room
                // for every job in flight) rather than waking for each one.
                let timeout = timeout.min(FLUSH_DELAY.saturating_sub(pending_since.elapsed()));
                select! {
                    recv(self.wake) -> _ => woken = true,
                    recv(shared.stopper.receiver()) -> _ => {},
                    default(timeout) => {},
                }
            }
        }
        self.shutdown(in_flight, pending);
    }

    /// Waits for the workers (each finishes at most the send it has in hand), writes their
    /// outcomes, and releases the leases of claimed work that was never sent.
    fn shutdown(self, mut in_flight: HashMap<NotificationId, ()>, mut pending: Vec<Outcome>) {
        let Scanner {
            shared,
            jobs,
            outcomes,
            ..
        } = self;
        drop(jobs);
        // Workers hold the only senders: this ends when the last worker has exited.
        for o in outcomes.iter() {
            in_flight.remove(&o.id);
            pending.push(o);
        }
        let unsent: Vec<NotificationId> = in_flight.into_keys().collect();
        for attempt in 1..=FINAL_WRITE_TRIES {
            let now = shared.clock.now();
            let result = shared
                .store
                .record(shared.owner, &pending, now)
                .and_then(|()| shared.store.release(shared.owner, &unsent, now));
            match result {
                Ok(()) => {
                    log::info!(
                        "stopped: {} outcomes written, {} unsent notifications released",
                        pending.len(),
                        unsent.len()
                    );
                    return;
                }
                Err(e) if attempt < FINAL_WRITE_TRIES => {
                    log::warn!("{} (try {attempt} of {FINAL_WRITE_TRIES})", e.chain());
                    std::thread::park_timeout(Duration::from_millis(100 * u64::from(attempt)));
                }
                Err(e) => log::error!(
                    "{}: {} notifications stay leased until their lease expires and will be sent again",
                    e.chain(),
                    pending.len() + unsent.len()
                ),
            }
        }
    }
}
