//! The scanner thread: the only writer of delivery state.
//!
//! It claims due notifications in batches into the bounded job queue, writes back the
//! workers' outcomes in batches (in the same transaction as the next claim), renews the
//! leases of work in flight, and sleeps until the next notification is due, a wake-up (an
//! in-process insert), the poll interval (rows written by other processes), or a stop.
//! On stop it waits for the sends in flight, writes their outcomes, and releases the leases
//! of work that was claimed but never sent.
//!
//! Each turn of its loop is five steps: take outcomes in, decide the claim, write outcomes
//! and claim, renew leases, wait. What they decide lives in [`ScanState`] (time passed in,
//! tested alone); this file does the channels and the store calls.

mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::{Shared, breaker};
use crate::notification::NotificationId;
use crate::store::{ClaimRequest, Claimed, Outcome};
use crate::time::Timestamp;
use state::{Plan, ScanState, Wait};

/// How many times outcomes are tried on the way out before they are left to the leases.
const FINAL_WRITE_TRIES: u32 = 5;

pub(crate) struct Scanner {
    pub shared: Arc<Shared>,
    pub jobs: Sender<Claimed>,
    pub outcomes: Receiver<Outcome>,
    pub wake: Receiver<()>,
    /// Queue capacity; a claim fills at most the free part.
    pub capacity: usize,
}

impl Scanner {
    pub fn run(self) {
        let config = &self.shared.config;
        let mut st = ScanState::new(
            self.capacity,
            config.poll_interval,
            config.lease,
            Instant::now(),
        );
        loop {
            // Step 1: take outcomes in.
            let at = Instant::now();
            while let Ok(o) = self.outcomes.try_recv() {
                st.take_outcome(o, at);
            }
            if self.shared.stopper.is_stopped() {
                break;
            }
            let now = self.shared.clock.now();
            if st.should_poll(at) {
                self.take_over_dead_owners(now);
                self.read_holds(&mut st, at);
                if st.poll_reads_due() {
                    st.polled(at, self.shared.store.next_due());
                } else {
                    st.polled_without_read(at);
                }
            }
            // Step 2: decide the claim.
            let plan = st.decide(now, at, self.jobs.len());
            // Step 3: write outcomes and claim.
            if plan.writes() && !self.write(&mut st, plan, now) {
                continue;
            }
            // Step 4: renew leases.
            let mut at = Instant::now();
            if st.renew_due(at) {
                self.renew(&st);
                at = Instant::now();
            }
            // Step 5: wait.
            let now = self.shared.clock.now();
            if let Some(wait) = st.wait(now, at, self.jobs.len()) {
                self.wait(&mut st, wait);
            }
        }
        self.shutdown(st);
    }

    /// Writes the waiting outcomes and claims as `plan` says, in one store call, and queues
    /// what was claimed. Returns `false` when the store failed (after a wait, unless stopped).
    fn write(&self, st: &mut ScanState, plan: Plan, now: Timestamp) -> bool {
        let shared = &self.shared;
        let lease_until = now.plus(shared.config.lease);
        let claim = ClaimRequest {
            limit: plan.claim,
            now,
            lease_until,
        };
        for o in st.pending_mut() {
            shared.holds.end_wait(o, now);
        }
        let sends = breaker::sends(shared, st.pending());
        let claimed = shared
            .store
            .record_and_claim(shared.owner, st.pending(), claim);
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                let wait = st.write_failed();
                log::error!(
                    "{} (retrying in {} ms; {} outcomes kept)",
                    e.chain(),
                    wait.as_millis(),
                    st.pending().len()
                );
                shared.stopper.sleep(wait);
                return false;
            }
        };
        breaker::report(shared, sends, now);
        // A circuit that opened or closed just now holds or frees everything at once.
        st.set_paused(shared.holds.all());
        for c in &claimed {
            match st.next_probe() {
                Some(i) => shared.holds.add_probe(c.id, i),
                None => break,
            }
        }
        if st.written(plan, claimed.len(), now) {
            // Everything due now is claimed: learn when the next one is.
            st.learned_next_due(shared.store.next_due());
        }
        if plan.claim > 0 {
            shared
                .metrics
                .claimed
                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        }
        for c in claimed {
            st.track(c.id);
            // Never blocks: at most the free room was claimed.
            if let Err(e) = self.jobs.try_send(c) {
                let c = e.into_inner();
                shared.holds.forget_probe(c.id);
                log::error!("job queue refused {}; it will be released", c.name);
            }
        }
        true
    }

    /// Extends the leases of the work in flight.
    /// Frees the work of instances that are provably gone (at start, then every poll), so
    /// that a crash costs a poll interval rather than a lease.
    fn take_over_dead_owners(&self, now: Timestamp) {
        match self.shared.store.release_dead_owners(now) {
            Ok(freed) if freed.is_empty() => {}
            Ok(freed) => {
                let total: usize = freed.iter().map(|(_, n)| n).sum();
                let whose: Vec<String> = freed
                    .iter()
                    .map(|(owner, n)| format!("{n} of instance {}", owner.get()))
                    .collect();
                log::info!(
                    "took over {total} notifications leased to stopped instances ({})",
                    whose.join(", ")
                );
            }
            Err(e) => {
                self.shared
                    .metrics
                    .store_errors
                    .fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
            }
        }
    }

    /// Reads which notifiers are held (paused by an operator, or their circuit open: at
    /// start, then every poll at `at`), says once when a pause changed, and takes the probes
    /// due. A failed read keeps what was known.
    fn read_holds(&self, st: &mut ScanState, at: Instant) {
        let shared = &self.shared;
        let now = shared.clock.now();
        match shared.store.notifiers(now) {
            Ok(states) => {
                let changes = shared.holds.apply(&states);
                for name in changes.paused {
                    log::info!(
                        "notifier {name} is paused: nothing is sent through it, its \
                         notifications wait without spending attempts (resume {name} to go on)"
                    );
                }
                for name in changes.resumed {
                    log::info!("notifier {name} resumed: what waited for it is due at once");
                    // What this instance put aside between the resume and this look is made
                    // due too (the resume itself freed only what was written before it).
                    if let Err(e) = shared.store.end_wait(&name, now) {
                        shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("{}", e.chain());
                    }
                }
                st.want_probes(breaker::probes_due(shared, &states, now), at);
            }
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
            }
        }
        st.set_paused(shared.holds.all());
        if shared.holds.all() {
            log::debug!(
                "every notifier is held (paused or its circuit open): claiming only probes"
            );
        }
    }

    fn renew(&self, st: &ScanState) {
        let shared = &self.shared;
        let ids: Vec<NotificationId> = st.in_flight().collect();
        let until = shared.clock.now().plus(shared.config.lease);
        match shared.store.renew(shared.owner, &ids, until) {
            Ok(held) => log::debug!("renewed {held} of {} leases", ids.len()),
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
            }
        }
    }

    /// Sleeps as `wait` says, or until a wake-up or a stop.
    fn wait(&self, st: &mut ScanState, wait: Wait) {
        let stop = self.shared.stopper.receiver();
        if wait.for_outcomes {
            select! {
                recv(self.outcomes) -> o => if let Ok(o) = o {
                    st.take_outcome(o, Instant::now());
                },
                recv(self.wake) -> _ => st.wake(),
                recv(stop) -> _ => {},
                default(wait.timeout) => {},
            }
        } else {
            select! {
                recv(self.wake) -> _ => st.wake(),
                recv(stop) -> _ => {},
                default(wait.timeout) => {},
            }
        }
    }

    /// Waits for the workers (each finishes at most the send it has in hand), writes their
    /// outcomes, and releases the leases of claimed work that was never sent.
    fn shutdown(self, mut st: ScanState) {
        let Scanner {
            shared,
            jobs,
            outcomes,
            ..
        } = self;
        drop(jobs);
        // Workers hold the only senders: this ends when the last worker has exited.
        let at = Instant::now();
        for o in outcomes.iter() {
            st.take_outcome(o, at);
        }
        let (pending, unsent) = st.into_leftovers();
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
