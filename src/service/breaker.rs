//! The circuit breaker's side of the scanner: which sends to report to the store, what the
//! store answered (one log line when a circuit opens, one when it closes), and which probes
//! are due.

use std::sync::atomic::Ordering;

use super::Shared;
use crate::attempt::AttemptClass;
use crate::store::{CircuitChange, NotifierState, Outcome, Sends};
use crate::time::Timestamp;

/// The results of the sends in `outcomes`, per enabled notifier (by index), for the
/// notifiers whose circuit the store must hear of: those with a failure among them, or with
/// failures counted before (a success then resets them). Empty in the common case
/// (everything succeeds): then the store is not asked.
pub(crate) fn sends(shared: &Shared, outcomes: &[Outcome]) -> Vec<(usize, Vec<bool>)> {
    let on = shared.config.breaker.failures > 0;
    let holds = &shared.holds;
    let mut out = Vec::new();
    for (i, name) in holds.names().iter().enumerate() {
        let results: Vec<bool> = outcomes
            .iter()
            .flat_map(|o| &o.log)
            .filter(|a| &a.notifier == name)
            .map(|a| a.class == AttemptClass::Ok)
            .collect();
        // With the breaker off, only a circuit left open (by an earlier configuration) is
        // reported, so that a success closes it.
        if (on && results.contains(&false)) || (!results.is_empty() && holds.is_failing(i)) {
            out.push((i, results));
        }
    }
    out
}

/// Reports `sends` (from [`sends`]) to the store once their outcomes are written, and says
/// when a circuit opened or closed.
pub(crate) fn report(shared: &Shared, sends: Vec<(usize, Vec<bool>)>, now: Timestamp) {
    let breaker = shared.config.breaker.breaker();
    for (i, results) in sends {
        let name = &shared.holds.names()[i];
        let failing = results.last() == Some(&false);
        let sends = Sends {
            notifier: name.clone(),
            results,
            breaker,
        };
        match shared.store.record_sends(&sends, now) {
            Ok(CircuitChange::Opened(n)) => {
                shared.holds.set_circuit(i, true, true);
                log::warn!(
                    "circuit of notifier {name} opened after {n} consecutive failed sends: its \
                     notifications wait, due, without spending attempts, and one probe goes \
                     out every {} until one succeeds",
                    crate::config::format_duration(breaker.probe)
                );
            }
            Ok(CircuitChange::Closed) => {
                shared.holds.set_circuit(i, false, false);
                log::info!(
                    "circuit of notifier {name} closed: a send succeeded; what waited is due \
                     at once"
                );
            }
            Ok(CircuitChange::Unchanged) => {
                shared
                    .holds
                    .set_circuit(i, shared.holds.is_open(i), failing);
            }
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
            }
        }
    }
}

/// The enabled notifiers whose open circuit is due for a probe at `now` (by index), each
/// taken in the store so that instances sharing it send one probe between them; none for a
/// notifier whose last probe here is still queued or being sent.
pub(crate) fn probes_due(shared: &Shared, states: &[NotifierState], now: Timestamp) -> Vec<usize> {
    let probe = shared.config.breaker.probe;
    let mut due = Vec::new();
    for (i, name) in shared.holds.names().iter().enumerate() {
        let Some(state) = states.iter().find(|s| &s.notifier == name) else {
            continue;
        };
        if state.paused.is_some()
            || state.next_probe.is_none_or(|p| p > now)
            || shared.holds.probing(i)
        {
            continue;
        }
        match shared.store.take_probe(name, probe, now) {
            Ok(true) => due.push(i),
            Ok(false) => {}
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
            }
        }
    }
    due
}
