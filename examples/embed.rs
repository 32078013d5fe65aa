//! Embedding clair-notifier in a synchronous program with a notifier of its own.
//!
//! `cargo run --example embed` stores three notifications in a temporary database and lets the
//! service tell a custom notifier about each; then it stops the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clair_notifier::{
    Datastore, Delivery, NewNotification, Notifier, NotifierConfig, Registry, SendError, Service,
    SqliteStore, Timestamp, Vulnerability, VulnerabilityWithLayers,
};

/// Prints each notification's name; a real one would page someone or post to a chat room.
struct Console;

impl Notifier for Console {
    fn configure(&mut self, _config: &NotifierConfig) -> clair_notifier::Result<bool> {
        Ok(true)
    }

    fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        println!(
            "notification {} (attempt {})",
            delivery.name, delivery.attempt
        );
        Ok(())
    }
}

fn main() -> clair_notifier::Result<()> {
    let dir = std::env::temp_dir().join(format!("clair-notifier-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.join("notifications.db"))?);

    let mut registry = Registry::with_builtins();
    registry.register("console", Console);
    let service = Service::new(NotifierConfig::default(), store.clone())
        .registry(registry)
        .start()?;

    let batch: Vec<NewNotification> = ["CVE-2016-0001", "CVE-2016-0002", "CVE-2016-0003"]
        .iter()
        .map(|name| NewNotification {
            old: None,
            new: Some(VulnerabilityWithLayers {
                vulnerability: Vulnerability {
                    name: name.to_string(),
                    severity: "High".into(),
                    ..Vulnerability::default()
                },
                layers: vec!["sha256:0ff1ce".into()],
            }),
        })
        .collect();
    let names = store.insert(&batch, Timestamp::now())?; // wakes the service at once

    let deadline = Instant::now() + Duration::from_secs(10);
    while store.counts(Timestamp::now())?.notified < names.len() as u64 {
        assert!(Instant::now() < deadline, "not delivered in 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    service.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
