//! The connector chain of the webhook's agent: ureq's own (HTTP CONNECT proxy, TCP, rustls),
//! with the address guard (see `guard`) before TCP, and one link between TCP and TLS that keeps
//! socket timeouts steady.
//!
//! ureq hands each socket operation the time that remains of the exchange, and its TCP
//! transport sets the socket's timeout whenever that value changes; this link rounds it down
//! to a step of a hundredth of the configured timeout, so on a pooled connection the socket is
//! left alone (the system calls it saves: BENCHMARKS.md, "Steady socket timeouts"). Rounding
//! down never lets an exchange outlast its timeout; it may end it up to one step early.

use std::fmt;
use std::time::Duration;

use ureq::Error;

use super::guard::{Guarded, Policy};
use ureq::unversioned::transport::time::Duration as Remaining;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, RustlsConnector,
    TcpConnector, Transport,
};

/// ureq's connector chain for HTTP CONNECT proxies, TCP and rustls, with the address guard
/// before TCP and [`SteadyTimeouts`] between TCP and TLS.
pub(crate) fn connector(
    timeout: Duration,
    policy: Policy,
) -> impl Connector<(), Out = impl Transport> {
    ().chain(ConnectProxyConnector::default())
        .chain(Guarded::new(policy, TcpConnector::default()))
        .chain(SteadyTimeouts::new(timeout))
        .chain(RustlsConnector::default())
}

/// Wraps the transport below it in a [`Steady`] one.
pub(crate) struct SteadyTimeouts {
    step: Duration,
}

impl SteadyTimeouts {
    pub(crate) fn new(timeout: Duration) -> SteadyTimeouts {
        SteadyTimeouts {
            step: (timeout / 100).max(Duration::from_millis(1)),
        }
    }
}

impl fmt::Debug for SteadyTimeouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SteadyTimeouts")
            .field("step", &self.step)
            .finish()
    }
}

impl<In: Transport> Connector<In> for SteadyTimeouts {
    type Out = Steady<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| Steady {
            inner,
            step: self.step,
        }))
    }
}

/// A transport that passes the remaining time down rounded to its step.
pub(crate) struct Steady<T> {
    inner: T,
    step: Duration,
}

impl<T> fmt::Debug for Steady<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steady").field("step", &self.step).finish()
    }
}

impl<T: Transport> Steady<T> {
    fn steady(&self, mut timeout: NextTimeout) -> NextTimeout {
        timeout.after = round_down(timeout.after, self.step);
        timeout
    }
}

/// `remaining` rounded down to a multiple of `step`; left as it is when under two steps (the
/// end of a budget is passed on exactly).
fn round_down(remaining: Remaining, step: Duration) -> Remaining {
    match remaining {
        Remaining::Exact(d) if d >= step * 2 => {
            let steps = d.as_nanos() / step.as_nanos().max(1);
            Remaining::Exact(step * u32::try_from(steps).unwrap_or(u32::MAX))
        }
        other => other,
    }
}

impl<T: Transport> Transport for Steady<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = self.steady(timeout);
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = self.steady(timeout);
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_is_rounded_down_to_the_step_and_never_up() {
        let step = Duration::from_millis(50);
        let ms = |n| Remaining::Exact(Duration::from_millis(n));
        assert_eq!(round_down(ms(4999), step), ms(4950));
        assert_eq!(round_down(ms(4951), step), ms(4950));
        assert_eq!(round_down(ms(4950), step), ms(4950));
        assert_eq!(round_down(ms(100), step), ms(100));
        // Under two steps: exact, so the end of the budget is not cut short.
        assert_eq!(round_down(ms(99), step), ms(99));
        assert_eq!(round_down(ms(3), step), ms(3));
        assert_eq!(round_down(ms(0), step), ms(0));
        assert!(matches!(
            round_down(Remaining::NotHappening, step),
            Remaining::NotHappening
        ));
        for n in 0..20_000 {
            let d = Duration::from_micros(n * 997);
            if let Remaining::Exact(r) = round_down(Remaining::Exact(d), step) {
                assert!(r <= d && d - r < step, "{d:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn the_step_is_a_hundredth_of_the_timeout_and_at_least_a_millisecond() {
        assert_eq!(
            SteadyTimeouts::new(Duration::from_secs(5)).step,
            Duration::from_millis(50)
        );
        assert_eq!(
            SteadyTimeouts::new(Duration::from_millis(20)).step,
            Duration::from_millis(1)
        );
    }
}
