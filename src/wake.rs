//! [`Waker`]: how a store tells a running service that new work was stored.
//!
//! A leaf module, so that storage can wake the service without knowing anything of it: a
//! store keeps the wakers it was given ([`Datastore::watch`](crate::Datastore::watch)) and
//! calls [`Waker::wake`] after each insert.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// Wakes a service's scanner so that it looks for due work at once. Cheap to clone; waking a
/// stopped service does nothing.
#[derive(Clone, Debug)]
pub struct Waker(Sender<()>);

impl Waker {
    /// A waker and the receiver its wake-ups arrive on (at most one is kept pending, so any
    /// number of wake-ups between two looks cost one look).
    pub(crate) fn new() -> (Waker, Receiver<()>) {
        let (tx, rx) = bounded(1);
        (Waker(tx), rx)
    }

    /// Asks for a look at due work. Never blocks.
    pub fn wake(&self) {
        let _ = self.0.try_send(());
    }

    /// Whether the service this waker belongs to has gone (a store drops such wakers).
    pub fn is_closed(&self) -> bool {
        // A disconnected channel refuses even when it has room.
        matches!(self.0.try_send(()), Err(TrySendError::Disconnected(())))
    }
}

/// Wakes every waker of a store, dropping those whose service has gone.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    wakers.retain(|w| {
        w.wake();
        !w.is_closed()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeups_coalesce_and_a_dropped_receiver_closes_the_waker() {
        let (waker, rx) = Waker::new();
        assert!(!waker.is_closed());
        waker.wake();
        waker.clone().wake();
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "two wake-ups are kept as one");
        drop(rx);
        assert!(waker.is_closed());
        waker.wake(); // does nothing, never blocks
    }
}
