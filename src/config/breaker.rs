//! `[notifier] breaker_failures` and `breaker_probe`: each notifier's circuit breaker.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::Breaker;

/// The circuit breaker, read from two keys of `[notifier]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// `breaker_failures`: consecutive failed sends through one notifier (across
    /// notifications) that open its circuit; 0 turns the breaker off. Defaults to `20`.
    pub failures: u32,
    /// `breaker_probe`: while a circuit is open, one probe this often. Defaults to `30s`.
    pub probe: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 20,
            probe: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// The settings a store applies.
    pub fn breaker(&self) -> Breaker {
        Breaker {
            failures: self.failures,
            probe: self.probe,
        }
    }

    /// Checks the probe interval (longer than 0).
    ///
    /// # Errors
    ///
    /// A configuration error naming `notifier.breaker_probe`.
    pub fn validate(&self) -> Result<()> {
        if self.probe.is_zero() {
            return Err(Error::config(
                "notifier.breaker_probe must be longer than 0",
            ));
        }
        Ok(())
    }
}
