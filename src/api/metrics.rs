//! `/metrics`: Prometheus text format (version 0.0.4).
//!
//! Clair v1's two metrics, then what an operator needs to see stuck work:
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `clair_notifier_latency_milliseconds` | histogram | creation → first successful delivery |
//! | `clair_notifier_backend_errors_total{backend}` | counter | failed sends, per notifier |
//! | `clair_notifier_sends_total{notifier,outcome}` | counter | sends by outcome: `ok`, `error`, `panic` |
//! | `clair_notifier_rounds_total{outcome}` | counter | delivery rounds: `ok` (all notifiers), `failed` (out of attempts) |
//! | `clair_notifier_retries_total` | counter | retries scheduled |
//! | `clair_notifier_claimed_total` | counter | notifications claimed for delivery |
//! | `clair_notifier_store_errors_total` | counter | store operations that failed (and were retried) |
//! | `clair_notifier_deleted_total` | counter | read notifications deleted past `retention.read` |
//! | `clair_notifier_notifications{state}` | gauge | notifications by state: `pending`, `notified`, `failing`, `read` |
//! | `clair_notifier_due` | gauge | due now (including expired leases) |
//! | `clair_notifier_leased` | gauge | leased to a running instance |
//! | `clair_notifier_oldest_due_age_seconds` | gauge | how long the longest-waiting due notification has waited (0 if none) |
//! | `clair_notifier_paused{notifier}` | gauge | 1 while an operator has paused the notifier (`pause NOTIFIER`), else 0; every enabled or paused notifier |
//! | `clair_notifier_circuit_open{notifier}` | gauge | 1 while the notifier's circuit is open (its breaker tripped), else 0 |
//! | `clair_notifier_circuit_waiting{notifier}` | gauge | while its circuit is open, the notifications waiting behind it: those due, and those put aside for it; else 0 |
//! | `clair_notifier_up` | gauge | 1 when `/health` finds the notifier service healthy: running, or disabled (no endpoint set); 0 once it stopped or one of its threads died |
//!
//! Counters are this process's since it started; gauges come from the database, so they
//! count the work of every instance sharing it.

use std::fmt::Write;

use super::ServiceView;
use crate::service::Metrics;
use crate::store::{Counts, NotifierState};
use crate::time::Timestamp;

/// The `Content-Type` of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text of `counts` (read from the store at `now`) and, when a service runs
/// in this process, of its counters.
pub(crate) fn render(counts: &Counts, now: Timestamp, service: Option<&ServiceView>) -> String {
    let mut out = String::new();
    let empty = Metrics::default();
    let m = service.map_or(&empty, |s| s.metrics.as_ref());

    let name = "clair_notifier_latency_milliseconds";
    head(
        &mut out,
        name,
        "histogram",
        "Time from a notification's creation to its first successful delivery, in milliseconds.",
    );
    let (buckets, count, sum) = m.latency_ms().snapshot();
    for (bound, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");

    let name = "clair_notifier_backend_errors_total";
    head(&mut out, name, "counter", "Failed sends, per notifier.");
    for (n, c) in m.notifiers() {
        let _ = writeln!(out, "{name}{{backend=\"{}\"}} {}", label(n), c.failed());
    }

    let name = "clair_notifier_sends_total";
    head(
        &mut out,
        name,
        "counter",
        "Sends per notifier, by outcome (ok, error, panic).",
    );
    for (n, c) in m.notifiers() {
        let (failed, panicked) = (c.failed(), c.panicked());
        for (outcome, v) in [
            ("ok", c.ok()),
            ("error", failed.saturating_sub(panicked)),
            ("panic", panicked),
        ] {
            let _ = writeln!(
                out,
                "{name}{{notifier=\"{}\",outcome=\"{outcome}\"}} {v}",
                label(n)
            );
        }
    }

    let name = "clair_notifier_rounds_total";
    head(
        &mut out,
        name,
        "counter",
        "Delivery rounds: ok (every notifier succeeded) or failed (a notifier ran out of attempts).",
    );
    let _ = writeln!(out, "{name}{{outcome=\"ok\"}} {}", m.rounds_ok());
    let _ = writeln!(out, "{name}{{outcome=\"failed\"}} {}", m.rounds_failed());

    for (name, help, v) in [
        (
            "clair_notifier_retries_total",
            "Retries scheduled after a failed send.",
            m.retries(),
        ),
        (
            "clair_notifier_claimed_total",
            "Notifications claimed for delivery.",
            m.claimed(),
        ),
        (
            "clair_notifier_store_errors_total",
            "Store operations that failed (and were retried).",
            m.store_errors(),
        ),
        (
            "clair_notifier_deleted_total",
            "Read notifications deleted past retention.read.",
            m.deleted(),
        ),
    ] {
        head(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }

    let name = "clair_notifier_notifications";
    head(
        &mut out,
        name,
        "gauge",
        "Notifications in the database, by state.",
    );
    for (state, v) in [
        ("pending", counts.pending),
        ("notified", counts.notified),
        ("failing", counts.failing),
        ("read", counts.read),
    ] {
        let _ = writeln!(out, "{name}{{state=\"{state}\"}} {v}");
    }
    let oldest = counts
        .oldest_due
        .map_or(0.0, |t| now.since(t).as_millis() as f64 / 1000.0);
    let up = super::notifier_health(service).1;
    for (name, help, v) in [
        (
            "clair_notifier_due",
            "Notifications due for delivery now (including expired leases).",
            counts.due.to_string(),
        ),
        (
            "clair_notifier_leased",
            "Notifications leased to a running instance.",
            counts.leased.to_string(),
        ),
        (
            "clair_notifier_oldest_due_age_seconds",
            "How long the longest-waiting due notification has been due (0 if none).",
            format!("{oldest:.3}"),
        ),
        (
            "clair_notifier_up",
            "1 while the notifier service is healthy as /health judges it (running, or disabled: no endpoint set); 0 once it stopped or a thread of it died.",
            u8::from(up).to_string(),
        ),
    ] {
        head(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    out
}

/// The Prometheus text of the notifiers' state (read from the store at the time of `counts`,
/// so it holds for every instance): each notifier the service enabled or the store knows,
/// paused or not, its circuit open or not, and what waits behind an open circuit.
pub fn render_notifiers(
    states: &[NotifierState],
    counts: &Counts,
    service: Option<&ServiceView>,
) -> String {
    let mut out = String::new();
    let mut names: Vec<&str> = states.iter().map(|s| s.notifier.as_str()).collect();
    if let Some(s) = service {
        names.extend(s.metrics.notifiers().map(|(n, _)| n));
    }
    names.sort_unstable();
    names.dedup();
    let state = |n: &str| states.iter().find(|s| s.notifier == n);
    type Gauge<'a> = (&'a str, &'a str, &'a dyn Fn(Option<&NotifierState>) -> u64);
    let gauges: [Gauge<'_>; 3] = [
        (
            "clair_notifier_paused",
            "1 while an operator has paused the notifier (its notifications wait), else 0.",
            &|s| u64::from(s.is_some_and(|s| s.paused.is_some())),
        ),
        (
            "clair_notifier_circuit_open",
            "1 while the notifier's circuit is open (one probe at a time goes out), else 0.",
            &|s| u64::from(s.is_some_and(|s| s.open_since.is_some())),
        ),
        (
            "clair_notifier_circuit_waiting",
            "Notifications waiting behind the notifier's open circuit (due, or put aside for it).",
            &|s| match s {
                Some(s) if s.open_since.is_some() => counts.due + s.waiting,
                _ => 0,
            },
        ),
    ];
    for (name, help, value) in gauges {
        head(&mut out, name, "gauge", help);
        for &n in &names {
            let _ = writeln!(
                out,
                "{name}{{notifier=\"{}\"}} {}",
                label(n),
                value(state(n))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_well_formed() {
        let counts = Counts {
            pending: 1,
            due: 2,
            oldest_due: Some(Timestamp::from_millis(1_000)),
            ..Counts::default()
        };
        let text = render(&counts, Timestamp::from_millis(3_500), None);
        assert!(text.contains("clair_notifier_oldest_due_age_seconds 2.500\n"));
        assert!(text.contains("clair_notifier_latency_milliseconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(text.contains("clair_notifier_notifications{state=\"pending\"} 1\n"));
        // No service in this process: `/health` answers 200 ("not started"), and so up is 1.
        assert!(text.contains("clair_notifier_up 1\n"));
        let states = [
            NotifierState {
                notifier: "webhook".into(),
                paused: Some(Timestamp::from_millis(1)),
                ..NotifierState::default()
            },
            NotifierState {
                notifier: "other".into(),
                open_since: Some(Timestamp::from_millis(1)),
                waiting: 3,
                ..NotifierState::default()
            },
        ];
        let paused = render_notifiers(&states, &counts, None);
        for line in [
            "clair_notifier_paused{notifier=\"webhook\"} 1\n",
            "clair_notifier_paused{notifier=\"other\"} 0\n",
            "clair_notifier_circuit_open{notifier=\"other\"} 1\n",
            "clair_notifier_circuit_waiting{notifier=\"other\"} 5\n",
            "clair_notifier_circuit_waiting{notifier=\"webhook\"} 0\n",
        ] {
            assert!(paused.contains(line), "{line}: {paused}");
        }
        for line in (text + &paused).lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("clair_notifier_"), "{line}");
            value.parse::<f64>().unwrap();
        }
    }
}
