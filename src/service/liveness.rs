//! [`Liveness`]: whether every thread of a service is still there.
//!
//! Each thread holds an [`Alive`] guard for as long as it runs; the guard counts the thread
//! out when it is dropped, on a return or while a panic unwinds, so a thread that died says so
//! itself and nobody has to ask it. The stop flag alone cannot tell: a scanner killed by a
//! panic in a custom [`Datastore`](crate::Datastore) never raises it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Stopper;

/// What a service is doing, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// No notifier is enabled: nothing was started, and nothing is wrong.
    Disabled,
    /// Every thread runs and no stop was asked for.
    Running,
    /// A stop was asked for (its threads are ending or have ended).
    Stopped,
    /// A thread ended without a stop (a panic, say): the service no longer delivers, or
    /// delivers with fewer workers, and the process should be restarted.
    Failed,
}

/// A view of a service's threads: cheap to clone, and it never blocks.
#[derive(Clone, Debug)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    threads: usize,
    alive: AtomicUsize,
    stopper: Stopper,
}

/// Held by one thread while it runs; dropping it counts the thread out.
pub(crate) struct Alive(Arc<Inner>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Liveness {
    /// A service of `threads` threads obeying `stopper`, and one guard per thread (counted
    /// alive from now on, so that a thread not yet scheduled is not taken for dead).
    pub(crate) fn new(threads: usize, stopper: Stopper) -> (Liveness, Vec<Alive>) {
        let inner = Arc::new(Inner {
            threads,
            alive: AtomicUsize::new(threads),
            stopper,
        });
        let guards = (0..threads).map(|_| Alive(Arc::clone(&inner))).collect();
        (Liveness { inner }, guards)
    }

    /// What the service is doing now.
    pub fn state(&self) -> ServiceState {
        let i = &self.inner;
        if i.threads == 0 {
            ServiceState::Disabled
        } else if i.stopper.is_stopped() {
            ServiceState::Stopped
        } else if i.alive.load(Ordering::SeqCst) < i.threads {
            ServiceState::Failed
        } else {
            ServiceState::Running
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_dies_without_a_stop_is_a_failure() {
        let stopper = Stopper::new();
        let (live, mut guards) = Liveness::new(3, stopper.clone());
        assert_eq!(live.state(), ServiceState::Running);
        let worker = guards.pop().unwrap();
        let died = std::thread::spawn(move || {
            let _alive = worker;
            panic!("a store that panics");
        })
        .join();
        assert!(died.is_err());
        assert_eq!(live.state(), ServiceState::Failed);
        stopper.stop();
        assert_eq!(live.state(), ServiceState::Stopped);
    }

    #[test]
    fn a_stop_is_not_a_failure_and_nothing_started_is_disabled() {
        let stopper = Stopper::new();
        let (live, guards) = Liveness::new(2, stopper.clone());
        stopper.stop();
        drop(guards);
        assert_eq!(live.state(), ServiceState::Stopped);
        let (live, guards) = Liveness::new(0, Stopper::new());
        assert!(guards.is_empty());
        assert_eq!(live.state(), ServiceState::Disabled);
    }
}
