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
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
}

impl NotifierCounters {
    /// Successful sends.
    pub fn ok(&self) -> u64 {
        read(&self.ok)
    }

    /// Failed sends (errors and panics): Clair's `clair_notifier_backend_errors_total`.
    pub fn failed(&self) -> u64 {
        read(&self.failed)
    }

    /// Sends that panicked (also counted in [`failed`](NotifierCounters::failed)).
    pub fn panicked(&self) -> u64 {
        read(&self.panicked)
    }
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
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
    pub(crate) fn observe(&self, ms: u64) {
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

/// What a running service has done since it started: counters its threads add to and anyone
/// may read (see [`Handle::metrics`](super::Handle::metrics)).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per enabled notifier, in name order.
    pub(crate) notifiers: Vec<(String, NotifierCounters)>,
    pub(crate) rounds_ok: AtomicU64,
    pub(crate) rounds_failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) deleted: AtomicU64,
    pub(crate) latency_ms: Histogram,
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

    /// Each enabled notifier's name and counters, in name order.
    pub fn notifiers(&self) -> impl ExactSizeIterator<Item = (&str, &NotifierCounters)> {
        self.notifiers.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// Rounds in which every notifier succeeded.
    pub fn rounds_ok(&self) -> u64 {
        read(&self.rounds_ok)
    }

    /// Rounds that ran out of attempts.
    pub fn rounds_failed(&self) -> u64 {
        read(&self.rounds_failed)
    }

    /// Retries scheduled.
    pub fn retries(&self) -> u64 {
        read(&self.retries)
    }

    /// Notifications claimed.
    pub fn claimed(&self) -> u64 {
        read(&self.claimed)
    }

    /// Store operations that failed (and were retried).
    pub fn store_errors(&self) -> u64 {
        read(&self.store_errors)
    }

    /// Read notifications deleted past their retention.
    pub fn deleted(&self) -> u64 {
        read(&self.deleted)
    }

    /// Time from creation to the first successful round, in milliseconds: Clair's
    /// `clair_notifier_latency_milliseconds`.
    pub fn latency_ms(&self) -> &Histogram {
        &self.latency_ms
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
