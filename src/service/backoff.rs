//! Retry delays: exponential backoff with jitter, capped.

use std::time::Duration;

/// The generator of the jitter.
pub(super) use fastrand::Rng;

/// The first retry waits about this long; each later one doubles it.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// The wait before the next try after `failures` failed tries in a round (from 1): the base
/// delay doubles from [`INITIAL_BACKOFF`] and is capped at `max`; the wait is drawn between
/// half the base and the base ("equal jitter"), so retries of many notifications spread out.
/// A receiver's `retry_after` is honoured when longer, still capped at `max`.
pub fn delay(
    failures: u32,
    max: Duration,
    retry_after: Option<Duration>,
    rng: &mut Rng,
) -> Duration {
    let doublings = failures.saturating_sub(1).min(40);
    let base = INITIAL_BACKOFF
        .saturating_mul(1u32 << doublings.min(31))
        .min(max);
    let half = base / 2;
    let span = (base - half).as_micros() as u64;
    let jittered = half + Duration::from_micros(rng.u64(0..=span));
    match retry_after {
        Some(asked) if asked > jittered => asked.min(max),
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_is_capped() {
        let mut rng = Rng::new();
        let max = Duration::from_secs(15 * 60);
        for failures in 1..=12u32 {
            let base = Duration::from_secs(1u64 << (failures - 1)).min(max);
            for _ in 0..200 {
                let d = delay(failures, max, None, &mut rng);
                assert!(
                    d >= base / 2 && d <= base,
                    "{failures}: {d:?} outside {base:?}"
                );
            }
        }
        assert!(delay(u32::MAX, max, None, &mut rng) <= max);
        let small = Duration::from_millis(50);
        assert!(delay(3, small, None, &mut rng) <= small);
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut rng = Rng::new();
        let max = Duration::from_secs(900);
        let mut seen: Vec<_> = (0..100).map(|_| delay(5, max, None, &mut rng)).collect();
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 50, "only {} distinct delays", seen.len());
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let mut rng = Rng::new();
        let max = Duration::from_secs(60);
        let d = delay(1, max, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(d, Duration::from_secs(30));
        let d = delay(1, max, Some(Duration::from_secs(3600)), &mut rng);
        assert_eq!(d, max);
        let d = delay(1, max, Some(Duration::ZERO), &mut rng);
        assert!(d >= Duration::from_millis(500));
    }
}
