//! The connector chain of the webhook's agent: ureq's own (HTTP CONNECT proxy, TCP, rustls),
//! with the address guard (see `guard`) before TCP, and one link between TCP and TLS that
//! spares the socket system calls:
//!
//! - Steady timeouts. ureq hands each socket operation the time that remains of the exchange,
//!   and its TCP transport sets the socket's timeout whenever that value changes; this link
//!   rounds it down to a step of a hundredth of the configured timeout, so on a pooled
//!   connection the socket is left alone (BENCHMARKS.md, "Steady socket timeouts"). Rounding
//!   down never lets an exchange outlast its timeout; it may end it up to one step early.
//! - One write a request. ureq transmits the request head and then the body; this link holds
//!   what it is given until ureq waits for the answer (or [`HELD_OUTPUT`] bytes wait), so a
//!   webhook's POST leaves in one write and, on loopback, one segment for the receiver to read.
//! - One liveness check a reuse. ureq checks that a pooled connection is still open when it
//!   puts it back after an answer and again when it takes it out for the next request (three
//!   system calls each). The first is answered without looking (a connection with output
//!   unsent is not reusable); the second, made just before the connection is used, looks, and
//!   finds what the first would have found (a closed connection, or bytes nobody asked for).

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
/// before TCP and [`FrugalLink`] between TCP and TLS.
pub(crate) fn connector(
    timeout: Duration,
    policy: Policy,
) -> impl Connector<(), Out = impl Transport> {
    ().chain(ConnectProxyConnector::default())
        .chain(Guarded::new(policy, TcpConnector::default()))
        .chain(FrugalLink::new(timeout))
        .chain(RustlsConnector::default())
}

/// The link that spares system calls: wraps the transport below it (TCP) in a [`Frugal`]
/// one, with socket timeouts in steps of a hundredth of the webhook's `timeout`.
pub(crate) struct FrugalLink {
    step: Duration,
}

impl FrugalLink {
    pub(crate) fn new(timeout: Duration) -> FrugalLink {
        FrugalLink {
            step: (timeout / 100).max(Duration::from_millis(1)),
        }
    }
}

impl fmt::Debug for FrugalLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrugalLink")
            .field("step", &self.step)
            .finish()
    }
}

impl<In: Transport> Connector<In> for FrugalLink {
    type Out = Frugal<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| Frugal {
            inner,
            step: self.step,
            held: Vec::new(),
            used: false,
        }))
    }
}

/// Output held back beyond which it is sent without waiting for the rest of the request.
pub(crate) const HELD_OUTPUT: usize = 16 * 1024;

/// A transport that passes the remaining time down rounded to its step, sends a request in
/// one write, and checks an idle connection once a reuse.
pub(crate) struct Frugal<T> {
    inner: T,
    step: Duration,
    /// Output ureq has transmitted that is not sent yet.
    held: Vec<u8>,
    /// Something was sent or read since the last liveness check: the next check is the one
    /// ureq makes as it puts the connection back in its pool.
    used: bool,
}

impl<T> fmt::Debug for Frugal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frugal")
            .field("step", &self.step)
            .field("held", &self.held.len())
            .field("used", &self.used)
            .finish()
    }
}

impl<T: Transport> Frugal<T> {
    fn steady(&self, mut timeout: NextTimeout) -> NextTimeout {
        timeout.after = round_down(timeout.after, self.step);
        timeout
    }

    /// Sends the output held back, through the inner transport's output buffer.
    fn send_held(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let mut sent = 0;
        while sent < self.held.len() {
            let out = self.inner.buffers().output();
            let n = out.len().min(self.held.len() - sent);
            if n == 0 {
                // ureq's buffers always have room; if one had none, say so rather than drop
                // the request's bytes.
                return Err(Error::Io(std::io::Error::other(
                    "the transport below has no output buffer",
                )));
            }
            out[..n].copy_from_slice(&self.held[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.held.clear();
        Ok(())
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

impl<T: Transport> Transport for Frugal<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = self.steady(timeout);
        self.used = true;
        if self.held.is_empty() && amount >= HELD_OUTPUT {
            return self.inner.transmit_output(amount, timeout);
        }
        let out = &self.inner.buffers().output()[..amount];
        self.held.extend_from_slice(out);
        if self.held.len() >= HELD_OUTPUT {
            self.send_held(timeout)?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        // The request goes out before any answer is looked for, even one already read.
        let timeout = self.steady(timeout);
        self.send_held(timeout)?;
        self.used = true;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = self.steady(timeout);
        self.send_held(timeout)?;
        self.used = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        if !self.held.is_empty() {
            return false;
        }
        if std::mem::take(&mut self.used) {
            // Put back after an exchange: it is looked at when taken out, before its use.
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ureq::unversioned::transport::LazyBuffers;

    use super::*;

    /// What the fake transport below was asked to do.
    #[derive(Debug, Default)]
    struct Seen {
        writes: Vec<Vec<u8>>,
        checks: usize,
        reads: usize,
    }

    #[derive(Debug)]
    struct Fake {
        buffers: LazyBuffers,
        seen: Arc<Mutex<Seen>>,
    }

    impl Transport for Fake {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), Error> {
            let out = self.buffers.output()[..amount].to_vec();
            self.seen.lock().unwrap().writes.push(out);
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            self.seen.lock().unwrap().reads += 1;
            Ok(true)
        }

        fn is_open(&mut self) -> bool {
            self.seen.lock().unwrap().checks += 1;
            true
        }
    }

    fn frugal(output: usize) -> (Frugal<Fake>, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let fake = Fake {
            buffers: LazyBuffers::new(1024, output),
            seen: seen.clone(),
        };
        let t = Frugal {
            inner: fake,
            step: Duration::from_millis(50),
            held: Vec::new(),
            used: false,
        };
        (t, seen)
    }

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: Remaining::Exact(Duration::from_secs(5)),
            reason: ureq::Timeout::Global,
            per_read: None,
            per_write: None,
        }
    }

    /// Writes `bytes` into the transport's output and transmits them, as ureq does.
    fn transmit(t: &mut Frugal<Fake>, bytes: &[u8]) {
        t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        t.transmit_output(bytes.len(), timeout()).unwrap();
    }

    #[test]
    fn a_request_goes_out_in_one_write_before_the_answer_is_awaited() {
        let (mut t, seen) = frugal(4096);
        transmit(&mut t, b"POST /hook HTTP/1.1\r\n\r\n");
        transmit(&mut t, b"{\"Notification\":{}}");
        assert!(
            seen.lock().unwrap().writes.is_empty(),
            "held until the answer"
        );
        t.await_input(timeout()).unwrap();
        {
            let seen = seen.lock().unwrap();
            assert_eq!(
                seen.writes,
                vec![b"POST /hook HTTP/1.1\r\n\r\n{\"Notification\":{}}".to_vec()]
            );
            assert_eq!(seen.reads, 1);
        }
        // Through maybe_await_input too, and nothing is sent twice.
        transmit(&mut t, b"next");
        t.maybe_await_input(timeout()).unwrap();
        assert_eq!(seen.lock().unwrap().writes.len(), 2);
        assert_eq!(seen.lock().unwrap().writes[1], b"next".to_vec());
    }

    #[test]
    fn a_large_output_is_sent_without_waiting_in_pieces_the_inner_buffer_holds() {
        let (mut t, seen) = frugal(HELD_OUTPUT / 4);
        let piece: Vec<u8> = (0..HELD_OUTPUT / 4).map(|i| i as u8).collect();
        for _ in 0..4 {
            transmit(&mut t, &piece);
        }
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.writes.len(),
            4,
            "sent once the held bytes reached the bound"
        );
        assert!(seen.writes.iter().all(|w| *w == piece));
        assert_eq!(seen.reads, 0);
    }

    #[test]
    fn a_connection_is_checked_once_a_reuse_when_taken_out() {
        let (mut t, seen) = frugal(4096);
        assert!(t.is_open(), "a new connection, checked");
        assert_eq!(seen.lock().unwrap().checks, 1);
        for round in 1..=3 {
            transmit(&mut t, b"x");
            t.await_input(timeout()).unwrap();
            assert!(t.is_open(), "put back after the exchange");
            assert_eq!(seen.lock().unwrap().checks, round, "not looked at then");
            assert!(t.is_open(), "taken out for the next request");
            assert_eq!(seen.lock().unwrap().checks, round + 1, "looked at then");
        }
        assert!(t.is_open(), "taken out again after idling in the pool");
        assert_eq!(seen.lock().unwrap().checks, 5);
        transmit(&mut t, b"y");
        assert!(!t.is_open(), "unsent output: not reusable");
        assert_eq!(seen.lock().unwrap().checks, 5);
    }

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
            FrugalLink::new(Duration::from_secs(5)).step,
            Duration::from_millis(50)
        );
        assert_eq!(
            FrugalLink::new(Duration::from_millis(20)).step,
            Duration::from_millis(1)
        );
    }
}
