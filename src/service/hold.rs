//! Held notifiers: paused by an operator, or with their circuit open, as the scanner last
//! read them from the store (every poll interval) or learned from its own writes. Workers
//! send nothing through a held notifier, except a probe of its open circuit; a notification
//! whose round waits only for held notifiers is put aside, without an attempt spent, until
//! one of them resumes or closes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::notification::NotificationId;
use crate::store::{NotifierState, Outcome};
use crate::time::Timestamp;

/// Flags per enabled notifier, in the workers' order, and the probes in flight.
#[derive(Debug)]
pub(crate) struct Holds {
    names: Vec<String>,
    paused: Vec<AtomicBool>,
    open: Vec<AtomicBool>,
    /// Consecutive failures known (so that a success is reported to reset them).
    failing: Vec<AtomicBool>,
    /// Claimed notifications sent as the probe of an open circuit, until their delivery is
    /// over: id → (notifier index, whether a worker has taken the probe).
    probes: Mutex<HashMap<NotificationId, (usize, bool)>>,
    /// How many `probes` holds (read without the lock on every delivery).
    probe_count: AtomicUsize,
}

/// What changed when the store's states were applied.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub paused: Vec<String>,
    pub resumed: Vec<String>,
}

fn flags(n: usize) -> Vec<AtomicBool> {
    (0..n).map(|_| AtomicBool::new(false)).collect()
}

impl Holds {
    /// Nothing held, for the enabled notifiers `names`.
    pub fn new(names: &[String]) -> Holds {
        Holds {
            names: names.to_vec(),
            paused: flags(names.len()),
            open: flags(names.len()),
            failing: flags(names.len()),
            probes: Mutex::new(HashMap::new()),
            probe_count: AtomicUsize::new(0),
        }
    }

    /// The enabled notifiers' names, in the workers' order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the `i`th enabled notifier is held: paused, or its circuit open.
    pub fn is_held(&self, i: usize) -> bool {
        self.paused[i].load(Ordering::Relaxed) || self.open[i].load(Ordering::Relaxed)
    }

    /// Whether the `i`th enabled notifier's circuit is open.
    pub fn is_open(&self, i: usize) -> bool {
        self.open[i].load(Ordering::Relaxed)
    }

    /// Whether the `i`th enabled notifier has failures counted (or an open circuit): its
    /// sends must be reported to the store, successes too.
    pub fn is_failing(&self, i: usize) -> bool {
        self.failing[i].load(Ordering::Relaxed) || self.is_open(i)
    }

    /// Records what this instance learned of the `i`th notifier's circuit.
    pub fn set_circuit(&self, i: usize, open: bool, failing: bool) {
        self.open[i].store(open, Ordering::Relaxed);
        self.failing[i].store(failing, Ordering::Relaxed);
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Whether the notifier `name` is enabled and held.
    pub fn named(&self, name: &str) -> bool {
        self.index(name).is_some_and(|i| self.is_held(i))
    }

    /// Whether every enabled notifier is held (then nothing is claimed but probes).
    pub fn all(&self) -> bool {
        !self.names.is_empty() && (0..self.names.len()).all(|i| self.is_held(i))
    }

    /// Takes the store's `states` (a notifier missing there is neither paused nor failing);
    /// returns the pauses that changed.
    pub fn apply(&self, states: &[NotifierState]) -> Changes {
        let mut changes = Changes::default();
        for (i, name) in self.names.iter().enumerate() {
            let state = states.iter().find(|s| &s.notifier == name);
            let paused = state.is_some_and(|s| s.paused.is_some());
            let open = state.is_some_and(|s| s.open_since.is_some());
            self.set_circuit(i, open, state.is_some_and(|s| s.failures > 0));
            if self.paused[i].swap(paused, Ordering::Relaxed) != paused {
                if paused {
                    changes.paused.push(name.clone());
                } else {
                    changes.resumed.push(name.clone());
                }
            }
        }
        changes
    }

    /// Makes the claimed notification `id` the probe of the `i`th notifier's open circuit.
    pub fn add_probe(&self, id: NotificationId, i: usize) {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes.insert(id, (i, false));
        self.probe_count.store(probes.len(), Ordering::Relaxed);
    }

    /// Whether a probe of the `i`th notifier is claimed and its delivery not over (waiting
    /// in the queue or being sent). Until it is, this instance takes no other: workers held
    /// up by a slow receiver would otherwise send the probes of every interval at once when
    /// they come free.
    pub fn probing(&self, i: usize) -> bool {
        self.probe_count.load(Ordering::Relaxed) > 0
            && self
                .probes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .any(|&(n, _)| n == i)
    }

    /// The delivery of `id` is over (or it never went to the queue): its probe, used or not
    /// (its notifier had already succeeded in its round), is dropped.
    pub fn forget_probe(&self, id: NotificationId) {
        if self.probe_count.load(Ordering::Relaxed) > 0 {
            let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
            probes.remove(&id);
            self.probe_count.store(probes.len(), Ordering::Relaxed);
        }
    }

    /// Whether `id` is sent as the probe of the `i`th notifier's open circuit (not paused:
    /// an operator's pause wins); asked once per delivery: the probe is then spent.
    pub fn probe(&self, id: NotificationId, i: usize) -> bool {
        !self.paused[i].load(Ordering::Relaxed) && self.is_open(i) && self.take_probe(id, i)
    }

    fn take_probe(&self, id: NotificationId, i: usize) -> bool {
        if self.probe_count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        match probes.get_mut(&id) {
            Some((n, taken)) if *n == i && !*taken => {
                *taken = true;
                true
            }
            _ => false,
        }
    }

    /// A notification put aside for held notifiers whose wait is over (one of them resumed
    /// or closed since the worker looked) is due at `now`, not later.
    pub fn end_wait(&self, outcome: &mut Outcome, now: Timestamp) {
        if is_waiting(outcome)
            && !outcome
                .progress
                .iter()
                .any(|p| !p.succeeded && self.named(&p.notifier))
        {
            outcome.next_due = outcome.next_due.min(now);
        }
    }
}

/// Whether `outcome` puts its notification aside for held notifiers: not delivered, no
/// error, progress kept (a failed try always has an error; a finished round keeps none).
pub(crate) fn is_waiting(outcome: &Outcome) -> bool {
    !outcome.notified && outcome.last_error.is_none() && !outcome.progress.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::NotificationId;
    use crate::store::NotifierProgress;

    fn state(name: &str, paused: bool) -> NotifierState {
        NotifierState {
            notifier: name.into(),
            paused: paused.then(|| Timestamp::from_millis(1)),
            ..NotifierState::default()
        }
    }

    #[test]
    fn changes_are_reported_once_and_all_means_every_enabled_one() {
        let p = Holds::new(&["a".into(), "b".into()]);
        let c = p.apply(&[state("a", true), state("zz", true)]);
        assert_eq!(c.paused, vec!["a".to_string()]);
        assert!(p.is_held(0) && !p.is_held(1) && !p.all());
        assert_eq!(p.apply(&[state("a", true)]), Changes::default());
        p.apply(&[state("a", true), state("b", true)]);
        assert!(p.all());
        let c = p.apply(&[state("b", true)]);
        assert_eq!(c.resumed, vec!["a".to_string()]);
        assert!(!Holds::new(&[]).all());
    }

    #[test]
    fn a_wait_ends_once_its_notifier_resumed() {
        let p = Holds::new(&["a".into()]);
        p.apply(&[state("a", true)]);
        let mut o = Outcome {
            log: Vec::new(),
            id: NotificationId::new(1),
            notified: false,
            next_due: Timestamp::from_millis(1_000_000),
            attempts: 0,
            last_error: None,
            progress: vec![NotifierProgress {
                notifier: "a".into(),
                attempts: 0,
                succeeded: false,
                last_error: None,
            }],
        };
        p.end_wait(&mut o, Timestamp::from_millis(5));
        assert_eq!(o.next_due, Timestamp::from_millis(1_000_000));
        p.apply(&[]);
        p.end_wait(&mut o, Timestamp::from_millis(5));
        assert_eq!(o.next_due, Timestamp::from_millis(5));
        // A failed try is no wait.
        o.last_error = Some("a: 503".into());
        o.next_due = Timestamp::from_millis(9);
        p.end_wait(&mut o, Timestamp::from_millis(5));
        assert_eq!(o.next_due, Timestamp::from_millis(9));
    }

    #[test]
    fn a_probe_is_sent_once_and_counts_until_its_delivery_is_over() {
        let p = Holds::new(&["a".into(), "b".into()]);
        let open = NotifierState {
            open_since: Some(Timestamp::from_millis(1)),
            ..state("a", false)
        };
        p.apply(&[open]);
        let (id, other) = (NotificationId::new(7), NotificationId::new(8));
        assert!(!p.probing(0));
        p.add_probe(id, 0);
        assert!(p.probing(0) && !p.probing(1), "claimed, queued");
        assert!(!p.probe(other, 0), "another notification is no probe");
        assert!(!p.probe(id, 1), "nor is it one of another notifier");
        assert!(p.probe(id, 0), "the worker sends it");
        assert!(!p.probe(id, 0), "once");
        assert!(p.probing(0), "while it is being sent, no other is taken");
        p.forget_probe(id);
        assert!(!p.probing(0), "its delivery is over");
    }
}
