//! [`Stopper`]: Clair's stopper, a stop flag whose sleeps are interrupted when it is raised.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select};

/// A stop signal shared by every thread of a service (and by whoever may stop it).
///
/// Cloning gives another handle on the same signal. [`stop`](Stopper::stop) raises it once
/// and for all; every [`sleep`](Stopper::sleep) in progress returns `false` at once.
#[derive(Clone, Default)]
pub struct Stopper {
    inner: Arc<Inner>,
}

struct Inner {
    stopped: AtomicBool,
    // Dropping the sender disconnects every receiver: that is the broadcast.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl Default for Inner {
    fn default() -> Inner {
        let (tx, rx) = bounded(0);
        Inner {
            stopped: AtomicBool::new(false),
            tx: Mutex::new(Some(tx)),
            rx,
        }
    }
}

impl Stopper {
    /// A stopper that has not been raised.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Raises the stop signal. Calling it again does nothing.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Whether the signal was raised.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` unless the signal is raised first. Returns `true` if the whole sleep
    /// passed, `false` if it was cut short by (or began after) a stop, like Clair's
    /// `Stopper.Sleep`.
    pub fn sleep(&self, d: Duration) -> bool {
        if self.is_stopped() {
            return false;
        }
        select! {
            recv(self.inner.rx) -> _ => false,
            default(d) => !self.is_stopped(),
        }
    }

    /// Blocks until the signal is raised (at once if it was).
    pub fn wait(&self) {
        let _ = self.inner.rx.recv();
    }

    /// A receiver that becomes ready (disconnected) when the signal is raised, for use in a
    /// `crossbeam_channel::select!` beside other channels.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.inner.rx
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn stop_cuts_a_sleep_short_and_stays_raised() {
        let s = Stopper::new();
        assert!(s.sleep(Duration::from_millis(1)));
        let s2 = s.clone();
        let (asleep, sleeping) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            asleep.send(()).unwrap();
            let full = s2.sleep(Duration::from_secs(30));
            (full, start.elapsed())
        });
        // Raised while the thread sleeps (or is about to: then its sleep ends at once too).
        sleeping.recv().unwrap();
        s.stop();
        s.stop();
        let (full, took) = t.join().unwrap();
        assert!(!full);
        assert!(
            took < Duration::from_secs(10),
            "sleep lasted {took:?} after stop"
        );
        assert!(s.is_stopped());
        assert!(!s.sleep(Duration::from_secs(30)));
        assert!(s.receiver().recv().is_err());
        s.wait();
    }

    #[test]
    fn wait_returns_once_another_thread_raises_the_signal() {
        let s = Stopper::new();
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.wait();
                s.is_stopped()
            })
        };
        s.stop();
        assert!(waiter.join().unwrap(), "wait returned before the stop");
    }
}
