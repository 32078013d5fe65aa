//! A worker thread: takes claimed notifications from the queue, sends each through every
//! enabled notifier that has not yet succeeded in the round, and reports the outcome.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::Shared;
use super::backoff::{self, Rng};
use crate::attempt::{Attempt, AttemptClass, excerpt};
use crate::notification::NotificationId;
use crate::notifier::{Delivery, Notifier};
use crate::store::{Claimed, NotifierProgress, Outcome};
use crate::time::Timestamp;

/// The enabled notifiers, shared by all workers.
pub(crate) type Notifiers = Arc<Vec<(String, Box<dyn Notifier>)>>;

pub(crate) fn run(
    shared: Arc<Shared>,
    notifiers: Notifiers,
    jobs: Receiver<Claimed>,
    outcomes: Sender<Outcome>,
) {
    let mut rng = Rng::new();
    loop {
        let job = select! {
            recv(shared.stopper.receiver()) -> _ => return,
            recv(jobs) -> job => match job {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        // A job taken in the same instant as a stop is left for the scanner to release.
        if shared.stopper.is_stopped() {
            return;
        }
        let outcome = deliver(&shared, &notifiers, job, &mut rng);
        if outcomes.send(outcome).is_err() {
            return;
        }
    }
}

/// One round's step for one notification, with its attempts logged: each is next due when
/// the outcome says.
fn deliver(shared: &Shared, notifiers: &Notifiers, job: Claimed, rng: &mut Rng) -> Outcome {
    let mut log = Vec::new();
    let id = job.id;
    let mut outcome = step(shared, notifiers, job, rng, &mut log);
    shared.holds.forget_probe(id);
    for a in &mut log {
        a.next_due = Some(outcome.next_due);
    }
    outcome.log = log;
    outcome
}

/// One round's step for one notification: every notifier not yet done (and not paused) is
/// tried once, and each try is added to `log`.
fn step(
    shared: &Shared,
    notifiers: &Notifiers,
    job: Claimed,
    rng: &mut Rng,
    log: &mut Vec<Attempt>,
) -> Outcome {
    let mut progress: Vec<NotifierProgress> = Vec::with_capacity(notifiers.len());
    let mut retry_after = None;
    // Notifiers paused by an operator: skipped, without an attempt spent.
    let mut waiting = Vec::new();
    for (i, (name, notifier)) in notifiers.iter().enumerate() {
        let mut p = job
            .progress
            .iter()
            .find(|p| &p.notifier == name)
            .cloned()
            .unwrap_or_else(|| NotifierProgress {
                notifier: name.clone(),
                attempts: 0,
                succeeded: false,
                last_error: None,
            });
        let held = !p.succeeded && shared.holds.is_held(i);
        let probe = held && shared.holds.probe(job.id, i);
        if (held && !probe) || (!p.succeeded && !paced(shared, i)) {
            waiting.push(p.notifier.clone());
        } else if !p.succeeded {
            let before = p.clone();
            let delivery = Delivery {
                name: job.name.clone(),
                created: job.created,
                notified: job.notified,
                attempt: p.attempts + 1,
            };
            let counters = &shared.metrics.notifiers[i].1;
            let (started, clock) = (shared.clock.now(), Instant::now());
            let sent = catch_unwind(AssertUnwindSafe(|| notifier.send(&delivery)));
            let mut attempt = Attempt {
                notifier: name.clone(),
                started,
                duration: clock.elapsed(),
                class: AttemptClass::Ok,
                status: None,
                excerpt: None,
                next_due: None,
            };
            match sent {
                Ok(Ok(())) => {
                    p.succeeded = true;
                    p.last_error = None;
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    p.attempts += 1;
                    log::warn!(
                        "notifier {name}: attempt {} for {} failed: {e}",
                        p.attempts,
                        job.name
                    );
                    if let Some(d) = e.retry_after() {
                        retry_after =
                            Some(retry_after.map_or(d, |r: std::time::Duration| r.max(d)));
                    }
                    p.last_error = Some(format!("{name}: {}", e.message()));
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    attempt.class = e.class();
                    attempt.status = e.status();
                    let said = e.body().filter(|b| !b.is_empty());
                    attempt.excerpt = Some(excerpt(said.unwrap_or(e.message())));
                }
                Err(panic) => {
                    p.attempts += 1;
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic".to_string());
                    log::error!("notifier {name} panicked sending {}: {what}", job.name);
                    p.last_error = Some(format!("{name}: panicked: {what}"));
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    counters.panicked.fetch_add(1, Ordering::Relaxed);
                    attempt.class = AttemptClass::Panic;
                    attempt.excerpt = Some(excerpt(&what));
                }
            }
            log.push(attempt);
            if probe && !p.succeeded {
                // A failed probe is a question to the endpoint, not a try of this
                // notification: its round is as it was, and it waits with the others.
                p = before;
                waiting.push(p.notifier.clone());
            }
        }
        progress.push(p);
    }

    let now = shared.clock.now();
    let config = &shared.config;
    let failing: Vec<&NotifierProgress> = progress
        .iter()
        .filter(|p| !p.succeeded && !waiting.contains(&p.notifier))
        .collect();
    if failing.is_empty() && !waiting.is_empty() {
        // Only paused notifiers are left: put aside until the next round, or until one of them
        // resumes (the store, or the scanner, then makes it due at once). No error: waiting is
        // not failing.
        let attempts = progress.iter().map(|p| p.attempts).max().unwrap_or(0);
        // Behind an open circuit it comes back at the next probe (it may be the one); behind
        // a pause only, at the next round (a resume makes it due at once).
        let circuit = notifiers
            .iter()
            .enumerate()
            .any(|(i, (n, _))| waiting.contains(n) && shared.holds.is_open(i));
        let wait = if shared.stopper.is_stopped() {
            // Stopped while waiting for a pacing slot: due again at once.
            Duration::ZERO
        } else if circuit {
            config.breaker.probe.min(config.renotify_interval)
        } else {
            config.renotify_interval
        };
        return outcome(job.id, false, now.plus(wait), attempts, None, progress);
    }
    if failing.is_empty() {
        shared.metrics.rounds_ok.fetch_add(1, Ordering::Relaxed);
        if job.notified.is_none() {
            let ms = now.since(job.created).as_millis();
            shared.metrics.latency_ms.observe(ms as u64);
        }
        let next_due = now.plus(config.renotify_interval);
        return outcome(job.id, true, next_due, 0, None, Vec::new());
    }
    let attempts = failing.iter().map(|p| p.attempts).max().unwrap_or(0);
    let last_error = failing
        .iter()
        .filter_map(|p| p.last_error.as_deref())
        .collect::<Vec<_>>()
        .join("; ");
    if attempts >= config.attempts {
        // The round failed: start afresh after renotify_interval.
        shared.metrics.rounds_failed.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "notification {}: giving up this round after {attempts} attempts; next round in {}",
            job.name,
            crate::config::format_duration(config.renotify_interval)
        );
        let next_due = now.plus(config.renotify_interval);
        return outcome(
            job.id,
            false,
            next_due,
            attempts,
            Some(last_error),
            Vec::new(),
        );
    }
    shared.metrics.retries.fetch_add(1, Ordering::Relaxed);
    let wait = backoff::delay(attempts, config.max_backoff, retry_after, rng);
    let next_due = now.plus(wait);
    outcome(
        job.id,
        false,
        next_due,
        attempts,
        Some(last_error),
        progress,
    )
}

/// Waits for the next send slot of the `i`th notifier, if it is paced; `false` if a stop
/// came first (then nothing is sent).
fn paced(shared: &Shared, i: usize) -> bool {
    match &shared.pacers[i] {
        None => true,
        Some(pacer) => {
            let wait = pacer.reserve(Instant::now());
            wait.is_zero() || shared.stopper.sleep(wait)
        }
    }
}

/// An outcome of notification `id` (its attempts are added by the caller).
fn outcome(
    id: NotificationId,
    notified: bool,
    next_due: Timestamp,
    attempts: u32,
    last_error: Option<String>,
    progress: Vec<NotifierProgress>,
) -> Outcome {
    Outcome {
        id,
        notified,
        next_due,
        attempts,
        last_error,
        progress,
        log: Vec::new(),
    }
}
