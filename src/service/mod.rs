//! The notifier service: one scanner thread, a bounded job queue, a fixed pool of workers.
//!
//! ```text
//!              claim (batch, leased)            Notifier::send
//!   store ───────────► scanner ──► [job queue] ──► worker × N ──► receivers
//!     ▲                   │  ▲                        │
//!     └─ outcomes (batch) ┘  └──── [outcome queue] ◄──┘
//! ```
//!
//! The scanner is the only thread that writes delivery state; workers only send. Retries are
//! scheduled in the store (an outcome sets the next due time), never slept in a worker. A
//! collector thread deletes read notifications past their retention ([`Service::retention`]).
//! A [`Stopper`] stops everything; [`Handle::stop`] returns once the sends in flight have ended
//! (each is bounded by its notifier's timeout) and unsent work has been released.

mod backoff;
mod breaker;
mod hold;
mod liveness;
mod metrics;
mod pacing;
mod retention;
mod scanner;
mod stopper;
mod worker;

pub use liveness::{Liveness, ServiceState};
pub use metrics::{Histogram, LATENCY_BUCKETS_MS, Metrics, NotifierCounters};
pub use stopper::Stopper;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::bounded;

use crate::config::{NotifierConfig, RetentionConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::notifier::Registry;
use crate::store::{Datastore, LeaseOwner};
use crate::time::Clock;
use crate::wake::Waker;

/// The capacity of the job queue of a service with `workers` workers: claimed notifications
/// waiting for a worker. With the workers' sends, it bounds what one instance has in flight,
/// and so what a crash of it can send twice.
///
/// Not part of the API (hidden from the docs): public only for the crash test, which checks
/// that bound against the binary.
#[doc(hidden)]
pub fn queue_capacity(workers: usize) -> usize {
    (workers * 128).clamp(1024, 8192)
}

/// What every thread of one service shares.
pub(crate) struct Shared {
    pub config: NotifierConfig,
    pub store: Arc<dyn Datastore>,
    pub clock: Clock,
    pub stopper: Stopper,
    pub owner: LeaseOwner,
    pub metrics: Arc<Metrics>,
    /// The enabled notifiers that are held (paused, or their circuit open).
    pub holds: hold::Holds,
    /// Per enabled notifier, its pacer if it has a `max_rate`.
    pub pacers: Vec<Option<pacing::Pacer>>,
}

/// Builds and starts a notifier service.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use clair_notifier::{Delivery, Notifier, NotifierConfig, Registry, SendError, Service, SqliteStore};
///
/// struct Log;
/// impl Notifier for Log {
///     fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> { Ok(true) }
///     fn send(&self, d: &Delivery) -> Result<(), SendError> { println!("{}", d.name); Ok(()) }
/// }
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Arc::new(SqliteStore::open(dir.path().join("n.db"))?);
/// let mut registry = Registry::new();
/// registry.register("log", Log);
/// let handle = Service::new(NotifierConfig::default(), store).registry(registry).start()?;
/// handle.stop();
/// # Ok::<(), clair_notifier::Error>(())
/// ```
pub struct Service {
    config: NotifierConfig,
    store: Arc<dyn Datastore>,
    registry: Option<Registry>,
    clock: Clock,
    stopper: Stopper,
    retention: RetentionConfig,
}

impl Service {
    /// A service over `store` with `config`, the built-in notifiers, the system clock and a
    /// new stopper.
    pub fn new(config: NotifierConfig, store: Arc<dyn Datastore>) -> Service {
        Service {
            config,
            store,
            registry: None,
            clock: Clock::system(),
            stopper: Stopper::new(),
            retention: RetentionConfig::default(),
        }
    }

    /// How long read notifications are kept before the service deletes them (by default
    /// [`RetentionConfig::default`]: 30 days; zero keeps them). See
    /// [`Datastore::delete_read`].
    pub fn retention(mut self, retention: RetentionConfig) -> Service {
        self.retention = retention;
        self
    }

    /// The notifiers to offer the configuration to (instead of [`Registry::with_builtins`]).
    pub fn registry(mut self, registry: Registry) -> Service {
        self.registry = Some(registry);
        self
    }

    /// The clock to read the time from (tests pass one they move by hand).
    pub fn clock(mut self, clock: Clock) -> Service {
        self.clock = clock;
        self
    }

    /// The stop signal to obey (so that one signal can stop several services).
    pub fn stopper(mut self, stopper: Stopper) -> Service {
        self.stopper = stopper;
        self
    }

    /// Configures the notifiers and starts the threads. With no enabled notifier, logs that
    /// the service is disabled and returns a handle with nothing running
    /// ([`Handle::is_running`] is `false`).
    ///
    /// # Errors
    ///
    /// A configuration error (see [`NotifierConfig::validate`]), the store's proof that this
    /// instance is alive that could not be set up ([`Datastore::hold_owner`]: for SQLite, a
    /// folder of owner locks that cannot be created), or a thread that could not be spawned.
    pub fn start(self) -> Result<Handle> {
        self.config.validate()?;
        let mut registry = self.registry.unwrap_or_else(Registry::with_builtins);
        registry.bind(&self.store);
        let enabled = registry.configure(&self.config);
        let names: Vec<String> = enabled.iter().map(|(n, _)| n.clone()).collect();
        let metrics = Arc::new(Metrics::new(&names));
        let (waker, wake_rx) = Waker::new();
        if enabled.is_empty() {
            log::warn!(
                "notifier disabled: no notifier is enabled, so notifications are stored but \
                 not delivered (set [notifier.http] endpoint to enable the webhook)"
            );
            return Ok(Handle {
                liveness: Liveness::new(0, self.stopper.clone()).0,
                stopper: self.stopper,
                waker,
                scanner: None,
                metrics,
                notifiers: names,
            });
        }
        let workers = self.config.workers;
        let collects = !self.retention.read.is_zero() || !self.retention.attempts.is_zero();
        // The workers, the scanner and the collector.
        let (liveness, mut alive) =
            Liveness::new(workers + 1 + usize::from(collects), self.stopper.clone());
        let capacity = queue_capacity(workers);
        let (job_tx, job_rx) = bounded(capacity);
        let (outcome_tx, outcome_rx) = bounded(capacity + workers);
        let shared = Arc::new(Shared {
            config: self.config,
            store: self.store,
            clock: self.clock,
            stopper: self.stopper.clone(),
            owner: LeaseOwner::random(),
            metrics: Arc::clone(&metrics),
            holds: hold::Holds::new(&names),
            pacers: enabled
                .iter()
                .map(|(_, n)| pacing::Pacer::new(n.max_rate()))
                .collect(),
        });
        // Proves this instance alive to the others sharing the store until the scanner has
        // made its final writes (or died): then they may take over what it still holds.
        let owner_guard = shared.store.hold_owner(shared.owner)?;
        shared.store.watch(waker.clone());
        let notifiers: worker::Notifiers = Arc::new(enabled);
        let spawn_err = |e| Error::with_source(ErrorKind::Other, "could not start a thread", e);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (shared, notifiers, jobs, outcomes, alive) = (
                Arc::clone(&shared),
                Arc::clone(&notifiers),
                job_rx.clone(),
                outcome_tx.clone(),
                alive.pop(),
            );
            let t = std::thread::Builder::new()
                .name(format!("notify-worker-{i}"))
                .spawn(move || {
                    let _alive = alive;
                    worker::run(shared, notifiers, jobs, outcomes);
                });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.stopper.stop();
                    return Err(spawn_err(e));
                }
            }
        }
        drop((job_rx, outcome_tx));
        if collects {
            let (shared, keep, alive) = (Arc::clone(&shared), self.retention, alive.pop());
            let every = shared.config.poll_interval;
            let t = std::thread::Builder::new()
                .name("notify-retention".to_string())
                .spawn(move || {
                    let _alive = alive;
                    retention::run(shared, keep, every);
                });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.stopper.stop();
                    return Err(spawn_err(e));
                }
            }
        }
        let scanner = scanner::Scanner {
            shared: Arc::clone(&shared),
            jobs: job_tx,
            outcomes: outcome_rx,
            wake: wake_rx,
            capacity,
        };
        log::info!(
            "notifier service started: {} workers, notifiers {}, instance {}",
            workers,
            names.join(", "),
            shared.owner.get()
        );
        let scanner_alive = alive.pop();
        let scanner = std::thread::Builder::new()
            .name("notify-scanner".to_string())
            .spawn(move || {
                scanner.run();
                drop(scanner_alive);
                for t in threads {
                    let _ = t.join();
                }
                drop(owner_guard);
            });
        let scanner = match scanner {
            Ok(t) => t,
            Err(e) => {
                self.stopper.stop();
                return Err(spawn_err(e));
            }
        };
        Ok(Handle {
            liveness,
            stopper: self.stopper,
            waker,
            scanner: Some(scanner),
            metrics,
            notifiers: names,
        })
    }
}

/// A running service. Dropping it stops the service and waits for it.
pub struct Handle {
    liveness: Liveness,
    stopper: Stopper,
    waker: Waker,
    scanner: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    notifiers: Vec<String>,
}

impl Handle {
    /// A waker for the scanner (the store's inserts already wake it).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// The service's stop signal.
    pub fn stopper(&self) -> &Stopper {
        &self.stopper
    }

    /// The service's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The enabled notifiers' names.
    pub fn notifiers(&self) -> &[String] {
        &self.notifiers
    }

    /// Whether every thread runs and no stop was asked for (false for a disabled service,
    /// once stopped, or once a thread has died): [`ServiceState::Running`].
    pub fn is_running(&self) -> bool {
        self.liveness.state() == ServiceState::Running
    }

    /// A view of the service's threads, which stays true after this handle is gone (the read
    /// API's `/health` keeps one).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// Raises the stop signal and waits until every thread has finished: sends in flight end
    /// (bounded by their timeouts), their outcomes are written and unsent work is released.
    pub fn stop(mut self) {
        self.stopper.stop();
        self.join_threads();
    }

    /// Waits until the service stops (someone raised its stopper).
    pub fn join(mut self) {
        self.join_threads();
    }

    fn join_threads(&mut self) {
        if let Some(t) = self.scanner.take()
            && t.join().is_err()
        {
            log::error!("the scanner thread panicked");
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stopper.stop();
        self.join_threads();
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("notifiers", &self.notifiers)
            .field("running", &self.is_running())
            .finish()
    }
}

/// Runs the notifier service over `store` until `stopper` is raised (Clair's `notifier.Run`),
/// with the built-in notifiers and those registered with [`register`](crate::register).
/// Returns at once if no notifier is enabled or the configuration is invalid (logged).
pub fn run(config: &NotifierConfig, store: Arc<dyn Datastore>, stopper: &Stopper) {
    let service = Service::new(config.clone(), store)
        .registry(Registry::take_global())
        .stopper(stopper.clone());
    match service.start() {
        Ok(handle) => handle.join(),
        Err(e) => log::error!("notifier service could not start: {}", e.chain()),
    }
}
