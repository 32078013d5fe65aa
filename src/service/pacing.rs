//! Pacing: at most `max_rate` sends per second through one notifier, across all the workers
//! of one instance. Each send reserves the next free slot (slots are `1/max_rate` apart) and
//! waits for it; a slot missed is not made up later (no bursts after a stall).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The send slots of one paced notifier.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `rate` sends per second; `None` for 0 (unlimited).
    pub fn new(rate: u32) -> Option<Pacer> {
        (rate > 0).then(|| Pacer {
            interval: Duration::from_secs(1) / rate,
            next: Mutex::new(None),
        })
    }

    /// Reserves the next slot at `now` and returns how long to wait for it.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_and_a_stall_is_not_made_up() {
        assert!(Pacer::new(0).is_none());
        let p = Pacer::new(4).unwrap();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Four senders at once: one now, then 250 ms apart.
        let waits: Vec<Duration> = (0..4).map(|_| p.reserve(t0)).collect();
        assert_eq!(waits, [ms(0), ms(250), ms(500), ms(750)]);
        // Long after, the next send goes at once, and the one after waits a full interval.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(later), ms(0));
        assert_eq!(p.reserve(later), ms(250));
    }
}
