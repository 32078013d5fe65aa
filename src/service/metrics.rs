//! Counters kept by a running service, read by the `/metrics` endpoint and `stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (milliseconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS_MS: &[u64] = &[
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
    3_600_000,
];

/// Counters of one notifier.
#[derive(Debug, Default)]
pub struct NotifierCounters {
    /// Successful sends.
    pub ok: AtomicU64,
    /// Failed sends (errors and panics): Clair's `clair_notifier_backend_errors_total`.
    pub failed: AtomicU64,
    /// Sends that panicked (also counted in `failed`).
    pub panicked: AtomicU64,
}

/// A Prometheus-style histogram of milliseconds.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: LATENCY_BUCKETS_MS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation of `ms` milliseconds.
    pub fn observe(&self, ms: u64) {
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ms, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound (as Prometheus writes `le` buckets), the total count
    /// and the sum.
    pub fn snapshot(&self) -> (Vec<(u64, u64)>, u64, u64) {
        let mut acc = 0;
        let cumulative = LATENCY_BUCKETS_MS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                acc += n.load(Ordering::Relaxed);
                (*bound, acc)
            })
            .collect();
        (
            cumulative,
            self.count.load(Ordering::Relaxed),
            self.sum.load(Ordering::Relaxed),
        )
    }
}

/// What a running service has done since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per enabled notifier, in name order.
    pub notifiers: Vec<(String, NotifierCounters)>,
    /// Rounds in which every notifier succeeded.
    pub rounds_ok: AtomicU64,
    /// Rounds that ran out of attempts.
    pub rounds_failed: AtomicU64,
    /// Retries scheduled.
    pub retries: AtomicU64,
    /// Notifications claimed.
    pub claimed: AtomicU64,
    /// Store operations that failed (and were retried).
    pub store_errors: AtomicU64,
    /// Read notifications deleted past their retention.
    pub deleted: AtomicU64,
    /// Time from creation to the first successful round, in milliseconds: Clair's
    /// `clair_notifier_latency_milliseconds`.
    pub latency_ms: Histogram,
}

impl Metrics {
    pub(crate) fn new(names: &[String]) -> Metrics {
        Metrics {
            notifiers: names
                .iter()
                .map(|n| (n.clone(), NotifierCounters::default()))
                .collect(),
            ..Metrics::default()
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(0);
        h.observe(3);
        h.observe(3);
        h.observe(10_000_000);
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(buckets[0], (1, 1));
        assert_eq!(buckets[2], (5, 3));
        assert_eq!(buckets.last().unwrap().1, 3);
        assert_eq!(count, 4);
        assert_eq!(sum, 10_000_006);
    }
}
