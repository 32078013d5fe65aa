//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod proxy;
pub mod rawhttp;
pub mod receiver;
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
