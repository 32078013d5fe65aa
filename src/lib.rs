//! clair-notifier keeps vulnerability-change notifications in SQLite and delivers them,
//! reliably and fast, to the programs that must hear about them. It re-creates the notifier
//! of Clair v1: a webhook tells the receiver only a notification's *name*; the receiver reads
//! the notification through the read API, page by page, and marks it read. Until it is read,
//! it is sent again every `renotify_interval`.
//!
//! The crate is a library first, for synchronous Rust programs (no async runtime):
//!
//! - [`SqliteStore`] stores notifications durably (behind the [`Datastore`] trait);
//! - [`Service`] runs one scanner thread that claims due notifications into a bounded queue,
//!   and a fixed pool of worker threads that call [`Notifier::send`];
//! - [`Notifier`] is what a notification is sent through; [`Webhook`] is the built-in one,
//!   and programs register their own in a [`Registry`] or with [`register`];
//! - a [`Stopper`] stops everything promptly;
//! - with the cargo feature `api` (on by default), `api::Server` serves Clair v1's read API
//!   (`GET`/`DELETE /v1/notifications/{name}`, `/health`, `/metrics`) on a fixed pool of threads,
//!   over TLS with client certificates when `[api] certfile`, `keyfile` and `cafile` say so.
//!
//! # Embedding
//!
//! ```
//! use std::sync::Arc;
//! use clair_notifier::{
//!     Datastore, Delivery, NewNotification, Notifier, NotifierConfig, Registry, SendError,
//!     Service, SqliteStore, Timestamp, Vulnerability, VulnerabilityWithLayers,
//! };
//!
//! struct Print;
//!
//! impl Notifier for Print {
//!     fn configure(&mut self, _: &NotifierConfig) -> clair_notifier::Result<bool> {
//!         Ok(true) // enabled
//!     }
//!     fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
//!         println!("notification {} is ready to be read", delivery.name);
//!         Ok(())
//!     }
//! }
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(SqliteStore::open(dir.path().join("notifications.db"))?);
//! let mut registry = Registry::with_builtins(); // the webhook, enabled by [notifier.http]
//! registry.register("print", Print);
//! let service = Service::new(NotifierConfig::default(), store.clone())
//!     .registry(registry)
//!     .start()?;
//!
//! let vulnerability = Vulnerability { name: "CVE-2016-1234".into(), ..Default::default() };
//! let names = store.insert(
//!     &[NewNotification {
//!         old: None,
//!         new: Some(VulnerabilityWithLayers { vulnerability, layers: vec!["layer-1".into()] }),
//!     }],
//!     Timestamp::now(),
//! )?; // wakes the service at once
//! # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
//! # while store.summary(&names[0])?.unwrap().notified.is_none() {
//! #     assert!(std::time::Instant::now() < deadline);
//! #     std::thread::sleep(std::time::Duration::from_millis(5));
//! # }
//! service.stop();
//! # Ok::<(), clair_notifier::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "api")]
pub mod api;
pub mod attempt;
mod builtins;
pub mod config;
mod document;
mod error;
#[cfg(unix)]
pub mod exec;
#[cfg(unix)]
pub mod jsonl;
pub mod notification;
mod notifier;
mod params;
mod pem;
pub mod service;
pub mod store;
mod text;
mod time;
mod wake;
pub mod webhook;

pub use config::{ApiConfig, Config, DatabaseConfig, HttpConfig, NotifierConfig, RetentionConfig};
pub use error::{Error, ErrorKind, Result};
pub use notification::{
    FixedIn, NewNotification, NotificationId, NotificationPage, NotificationSummary, PageCursor,
    State, Vulnerability, VulnerabilityWithLayers,
};
pub use notifier::{Delivery, Notifier, Registry, SendError, register};
pub use service::{Handle, Service, Stopper, run};
pub use store::{Datastore, SqliteStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresOptions, PostgresStore, SslMode};
pub use time::{Clock, Timestamp};
pub use wake::Waker;
pub use webhook::Webhook;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
