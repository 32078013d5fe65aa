//! A worker thread: takes claimed notifications from the queue, sends each through every
//! enabled notifier that has not yet succeeded in the round, and reports the outcome.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

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
    // On its way out (after a stop) the scanner closes the queue: a worker waiting here wakes
    // then, with the queue's last jobs or none.
    while let Ok(job) = jobs.recv() {
        // A job taken after a stop is left for the scanner to release.
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
    let mut log = Vec::with_capacity(notifiers.len());
    let Claimed {
        progress,
        id,
        name,
        created,
        notified,
    } = job;
    let delivery = Delivery {
        name,
        created,
        notified,
        attempt: 1,
    };
    // The common case: one notifier, a fresh round, nothing held or paced.
    let plain = notifiers.len() == 1
        && progress.is_empty()
        && !shared.holds.is_held(0)
        && shared.pacers[0].is_none();
    let mut outcome = if plain {
        step_one(shared, notifiers, id, delivery, rng, &mut log)
    } else {
        step(shared, notifiers, id, &progress, delivery, rng, &mut log)
    };
    shared.holds.forget_probe(id);
    for a in &mut log {
        a.next_due = Some(outcome.next_due);
    }
    outcome.log = log;
    outcome
}

/// [`step`] for a fresh round through the only notifier, which is neither held nor paced:
/// no progress is kept unless the try fails.
fn step_one(
    shared: &Shared,
    notifiers: &Notifiers,
    id: NotificationId,
    delivery: Delivery,
    rng: &mut Rng,
    log: &mut Vec<Attempt>,
) -> Outcome {
    let (name, notifier) = &notifiers[0];
    let tried = send(shared, 0, name, notifier.as_ref(), &delivery);
    log.push(tried.attempt);
    let Some((error, retry_after)) = tried.failed else {
        return succeeded(shared, id, &delivery);
    };
    let progress = vec![NotifierProgress {
        notifier: name.clone(),
        attempts: 1,
        succeeded: false,
        last_error: Some(error),
    }];
    let ended = Ended {
        progress,
        waiting: Vec::new(),
        retry_after,
    };
    conclude(shared, notifiers, id, &delivery, ended, rng)
}

/// One round's step for notification `id`, with the round's `done` progress so far: every
/// notifier not yet done (and not paused) is tried once, and each try is added to `log`.
fn step(
    shared: &Shared,
    notifiers: &Notifiers,
    id: NotificationId,
    done: &[NotifierProgress],
    mut delivery: Delivery,
    rng: &mut Rng,
    log: &mut Vec<Attempt>,
) -> Outcome {
    let mut progress: Vec<NotifierProgress> = Vec::with_capacity(notifiers.len());
    let mut retry_after = None;
    // Notifiers paused by an operator: skipped, without an attempt spent.
    let mut waiting = Vec::new();
    for (i, (name, notifier)) in notifiers.iter().enumerate() {
        let mut p = done
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
        let probe = held && shared.holds.probe(id, i);
        if (held && !probe) || (!p.succeeded && !paced(shared, i)) {
            waiting.push(p.notifier.clone());
        } else if !p.succeeded {
            let before = probe.then(|| p.clone());
            delivery.attempt = p.attempts + 1;
            let tried = send(shared, i, name, notifier.as_ref(), &delivery);
            match tried.failed {
                None => {
                    p.succeeded = true;
                    p.last_error = None;
                }
                Some((error, wait)) => {
                    p.attempts += 1;
                    if let Some(d) = wait {
                        retry_after = Some(retry_after.map_or(d, |r: Duration| r.max(d)));
                    }
                    p.last_error = Some(error);
                }
            }
            log.push(tried.attempt);
            if let Some(before) = before.filter(|_| !p.succeeded) {
                // A failed probe is a question to the endpoint, not a try of this
                // notification: its round is as it was, and it waits with the others.
                p = before;
                waiting.push(p.notifier.clone());
            }
        }
        progress.push(p);
    }
    let ended = Ended {
        progress,
        waiting,
        retry_after,
    };
    conclude(shared, notifiers, id, &delivery, ended, rng)
}

/// What one send came to: its attempt for the log and, if it failed, the error to show and
/// the wait the receiver asked for.
struct Tried {
    attempt: Attempt,
    failed: Option<(String, Option<Duration>)>,
}

/// Sends `delivery` through the `i`th notifier, `name`, counting the result.
fn send(
    shared: &Shared,
    i: usize,
    name: &str,
    notifier: &dyn Notifier,
    delivery: &Delivery,
) -> Tried {
    let counters = &shared.metrics.notifiers[i].1;
    let (started, clock) = (shared.clock.now(), Instant::now());
    let sent = catch_unwind(AssertUnwindSafe(|| notifier.send(delivery)));
    let mut attempt = Attempt {
        notifier: name.to_string(),
        started,
        duration: clock.elapsed(),
        class: AttemptClass::Ok,
        status: None,
        excerpt: None,
        next_due: None,
    };
    let failed = match sent {
        Ok(Ok(())) => {
            counters.ok.fetch_add(1, Ordering::Relaxed);
            None
        }
        Ok(Err(e)) => {
            log::warn!(
                "notifier {name}: attempt {} for {} failed: {e}",
                delivery.attempt,
                delivery.name
            );
            counters.failed.fetch_add(1, Ordering::Relaxed);
            attempt.class = e.class();
            attempt.status = e.status();
            let said = e.body().filter(|b| !b.is_empty());
            attempt.excerpt = Some(excerpt(said.unwrap_or(e.message())));
            Some((format!("{name}: {}", e.message()), e.retry_after()))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".to_string());
            log::error!("notifier {name} panicked sending {}: {what}", delivery.name);
            counters.failed.fetch_add(1, Ordering::Relaxed);
            counters.panicked.fetch_add(1, Ordering::Relaxed);
            attempt.class = AttemptClass::Panic;
            attempt.excerpt = Some(excerpt(&what));
            Some((format!("{name}: panicked: {what}"), None))
        }
    };
    Tried { attempt, failed }
}

/// Where a round's step left each notifier: its progress, the ones that wait (held or
/// paced), and the longest wait a failed receiver asked for.
struct Ended {
    progress: Vec<NotifierProgress>,
    waiting: Vec<String>,
    retry_after: Option<Duration>,
}

/// The outcome of a round's step that `ended` as it says.
fn conclude(
    shared: &Shared,
    notifiers: &Notifiers,
    id: NotificationId,
    delivery: &Delivery,
    ended: Ended,
    rng: &mut Rng,
) -> Outcome {
    let Ended {
        progress,
        waiting,
        retry_after,
    } = ended;
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
        return outcome(id, false, now.plus(wait), attempts, None, progress);
    }
    if failing.is_empty() {
        return succeeded(shared, id, delivery);
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
            delivery.name,
            crate::config::format_duration(config.renotify_interval)
        );
        let next_due = now.plus(config.renotify_interval);
        return outcome(id, false, next_due, attempts, Some(last_error), Vec::new());
    }
    shared.metrics.retries.fetch_add(1, Ordering::Relaxed);
    let wait = backoff::delay(attempts, config.max_backoff, retry_after, rng);
    let next_due = now.plus(wait);
    outcome(id, false, next_due, attempts, Some(last_error), progress)
}

/// The outcome of a round that succeeded through every notifier.
fn succeeded(shared: &Shared, id: NotificationId, delivery: &Delivery) -> Outcome {
    let now = shared.clock.now();
    shared.metrics.rounds_ok.fetch_add(1, Ordering::Relaxed);
    if delivery.notified.is_none() {
        let ms = now.since(delivery.created).as_millis();
        shared.metrics.latency_ms.observe(ms as u64);
    }
    let next_due = now.plus(shared.config.renotify_interval);
    outcome(id, true, next_due, 0, None, Vec::new())
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
