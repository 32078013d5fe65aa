//! What operators change through the store (a resend of notifications, the pause of a
//! notifier), and each notifier's circuit. The service reads the notifiers' state from the
//! store, so that every instance sharing it, and a restart, obey the same operator and see
//! the same circuits.

use std::time::Duration;

use crate::time::Timestamp;

/// What [`Datastore::resend`](super::Datastore::resend) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// The notification is due at once, with a fresh round.
    Resent,
    /// The notification is read, and `unread` was not asked for: nothing changed.
    Read,
    /// There is no notification of that name.
    Unknown,
}

/// What the store keeps of one notifier for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierState {
    /// The notifier's registered name.
    pub notifier: String,
    /// Since when it is paused; `None` when it is not.
    pub paused: Option<Timestamp>,
    /// Its consecutive failed sends (across notifications), 0 after a success.
    pub failures: u32,
    /// Since when its circuit is open; `None` while it is closed.
    pub open_since: Option<Timestamp>,
    /// While its circuit is open, when the next probe may be sent.
    pub next_probe: Option<Timestamp>,
    /// Unread notifications put aside until it resumes or its circuit closes (their round
    /// waits only for it, or for it and other held notifiers), and not due at the `now` of
    /// the call.
    pub waiting: u64,
}

/// The circuit breaker's settings for one notifier (`[notifier] breaker_failures` and
/// `breaker_probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Consecutive failed sends that open the circuit; 0 turns the breaker off.
    pub failures: u32,
    /// While the circuit is open, one probe this often.
    pub probe: Duration,
}

/// The results of sends through one notifier, in order, for
/// [`Datastore::record_sends`](super::Datastore::record_sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sends {
    /// The notifier's registered name.
    pub notifier: String,
    /// Each send's result, oldest first: `true` when it succeeded.
    pub results: Vec<bool>,
    /// The breaker's settings to apply.
    pub breaker: Breaker,
}

/// What [`Datastore::record_sends`](super::Datastore::record_sends) did to a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitChange {
    /// It stayed as it was.
    Unchanged,
    /// It opened, after this many consecutive failed sends.
    Opened(u32),
    /// It closed: a send succeeded.
    Closed,
}

/// A circuit after `results` (oldest first) from `failures` consecutive failures, open or not
/// (`open`): its consecutive failures, whether it is open, and whether its next probe moves
/// (it opened, or a probe failed). What every store's `record_sends` computes, under the
/// notifier's lock.
pub(crate) fn fold_sends(
    mut failures: u32,
    mut open: bool,
    results: &[bool],
    breaker: Breaker,
) -> (u32, bool, bool) {
    let mut probe_moved = false;
    for &ok in results {
        if ok {
            failures = 0;
            open = false;
        } else {
            failures = failures.saturating_add(1);
            if open {
                probe_moved = true;
            } else if breaker.failures > 0 && failures >= breaker.failures {
                open = true;
                probe_moved = true;
            }
        }
    }
    (failures, open, probe_moved)
}
