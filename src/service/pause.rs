//! Paused notifiers, as the scanner last read them from the store (every poll interval):
//! workers send nothing through a paused notifier, and a notification whose round waits only
//! for paused notifiers is put aside, without an attempt spent, until one of them resumes.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::{NotifierState, Outcome};
use crate::time::Timestamp;

/// One flag per enabled notifier, in the workers' order.
#[derive(Debug)]
pub(crate) struct Paused {
    names: Vec<String>,
    flags: Vec<AtomicBool>,
}

/// What changed when the store's states were applied.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub paused: Vec<String>,
    pub resumed: Vec<String>,
}

impl Paused {
    /// Nothing paused, for the enabled notifiers `names`.
    pub fn new(names: &[String]) -> Paused {
        Paused {
            names: names.to_vec(),
            flags: names.iter().map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Whether the `i`th enabled notifier is paused.
    pub fn is_paused(&self, i: usize) -> bool {
        self.flags[i].load(Ordering::Relaxed)
    }

    /// Whether the notifier `name` is enabled and paused.
    pub fn named(&self, name: &str) -> bool {
        self.names
            .iter()
            .position(|n| n == name)
            .is_some_and(|i| self.is_paused(i))
    }

    /// Whether every enabled notifier is paused (then nothing is claimed at all).
    pub fn all(&self) -> bool {
        !self.flags.is_empty() && (0..self.flags.len()).all(|i| self.is_paused(i))
    }

    /// Takes the store's `states` (a notifier missing there is not paused); returns what
    /// changed.
    pub fn apply(&self, states: &[NotifierState]) -> Changes {
        let mut changes = Changes::default();
        for (i, name) in self.names.iter().enumerate() {
            let paused = states
                .iter()
                .any(|s| &s.notifier == name && s.paused.is_some());
            if self.flags[i].swap(paused, Ordering::Relaxed) != paused {
                if paused {
                    changes.paused.push(name.clone());
                } else {
                    changes.resumed.push(name.clone());
                }
            }
        }
        changes
    }

    /// A notification put aside for paused notifiers whose wait is over (one of them
    /// resumed since the worker looked) is due at `now`, not at its next round.
    pub fn end_wait(&self, outcome: &mut Outcome, now: Timestamp) {
        if is_waiting(outcome)
            && !outcome
                .progress
                .iter()
                .any(|p| !p.succeeded && self.named(&p.notifier))
        {
            outcome.next_due = now;
        }
    }
}

/// Whether `outcome` puts its notification aside for paused notifiers: not delivered, no
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
        }
    }

    #[test]
    fn changes_are_reported_once_and_all_means_every_enabled_one() {
        let p = Paused::new(&["a".into(), "b".into()]);
        let c = p.apply(&[state("a", true), state("zz", true)]);
        assert_eq!(c.paused, vec!["a".to_string()]);
        assert!(p.is_paused(0) && !p.is_paused(1) && !p.all());
        assert_eq!(p.apply(&[state("a", true)]), Changes::default());
        p.apply(&[state("a", true), state("b", true)]);
        assert!(p.all());
        let c = p.apply(&[state("b", true)]);
        assert_eq!(c.resumed, vec!["a".to_string()]);
        assert!(!Paused::new(&[]).all());
    }

    #[test]
    fn a_wait_ends_once_its_notifier_resumed() {
        let p = Paused::new(&["a".into()]);
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
}
