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
//! | `clair_notifier_up` | gauge | 1 when `/health` finds the notifier service healthy: running, or disabled (no endpoint set); 0 once it stopped or one of its threads died |
//!
//! Counters are this process's since it started; gauges come from the database, so they
//! count the work of every instance sharing it.

use std::fmt::Write;

use super::ServiceView;
use crate::service::Metrics;
use crate::store::Counts;
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
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("clair_notifier_"), "{line}");
            value.parse::<f64>().unwrap();
        }
    }
}
