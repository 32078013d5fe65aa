//! Helpers shared by the integration tests.

#![allow(dead_code)]

#[macro_use]
#[path = "../../support/forward.rs"]
mod forward;

pub mod backends;
#[cfg(feature = "cli")]
pub mod bin;
pub mod faulty;
pub mod proxy;
pub mod rawhttp;
pub mod receiver;
pub mod recording;
pub mod tls;

use std::time::{Duration, Instant};

/// Waits until `cond` holds, checking every few milliseconds; panics with `what` after
/// `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A new temporary directory and a database path inside it.
pub fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("notifier.db");
    (dir, path)
}

/// The configuration error of a configuration with `notifier` (checked against the built-in
/// notifiers).
pub fn validate(notifier: clair_notifier::NotifierConfig) -> clair_notifier::Error {
    let c = clair_notifier::Config {
        notifier,
        ..Default::default()
    };
    let err = c
        .validate(&clair_notifier::Registry::with_builtins())
        .expect_err("a configuration error");
    assert_eq!(err.kind(), clair_notifier::ErrorKind::Config, "{err}");
    err
}

/// A notification with a New vulnerability `name` introduced by `layers` layers.
pub fn sample(name: &str, layers: usize) -> clair_notifier::NewNotification {
    clair_notifier::NewNotification {
        old: None,
        new: Some(clair_notifier::VulnerabilityWithLayers {
            vulnerability: clair_notifier::Vulnerability {
                name: name.to_string(),
                namespace_name: "debian:12".into(),
                severity: "High".into(),
                ..Default::default()
            },
            layers: (0..layers).map(|i| format!("sha256:{i:064x}")).collect(),
        }),
    }
}

/// A clock that runs with real time plus an offset the test moves forward.
#[derive(Clone, Default)]
pub struct OffsetClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl OffsetClock {
    pub fn clock(&self) -> clair_notifier::Clock {
        let offset = self.0.clone();
        clair_notifier::Clock::from_fn(move || {
            let now = clair_notifier::Timestamp::now().as_millis();
            clair_notifier::Timestamp::from_millis(
                now + offset.load(std::sync::atomic::Ordering::SeqCst),
            )
        })
    }

    /// Moves this clock `d` forward.
    pub fn advance(&self, d: Duration) {
        self.0
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn now(&self) -> clair_notifier::Timestamp {
        self.clock().now()
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections and never answers; it keeps them
/// open until dropped.
pub struct Silent {
    pub addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        held.push(c);
                    }
                    Err(_) => return,
                }
            }
        });
        Silent {
            addr,
            accepted,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}
