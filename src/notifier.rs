//! The [`Notifier`] trait, and registration by name (Clair's `RegisterNotifier`).
//!
//! A notifier informs a receiver that a notification exists; it does not send its content.
//! Notifiers are registered by name, either in an explicit [`Registry`] value or in the
//! process-wide one with [`register`]. The service offers each registered notifier the
//! configuration; those that answer `true` from [`Notifier::configure`] are enabled.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::attempt::AttemptClass;
use crate::config::NotifierConfig;
use crate::error::Result;
use crate::store::Datastore;
use crate::time::Timestamp;

/// Anything that can tell a receiver about a notification.
///
/// `send` is called from several worker threads at once, so a notifier is `Send + Sync` and
/// keeps whatever connection pool it needs inside. A panic in `send` is caught and counted as
/// a failed attempt; the worker lives on.
///
/// # Example
///
/// ```
/// use clair_notifier::{Delivery, Notifier, NotifierConfig, SendError};
///
/// struct Stdout;
///
/// impl Notifier for Stdout {
///     fn configure(&mut self, _config: &NotifierConfig) -> clair_notifier::Result<bool> {
///         Ok(true)
///     }
///     fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
///         println!("new notification {}", delivery.name);
///         Ok(())
///     }
/// }
/// ```
pub trait Notifier: Send + Sync + 'static {
    /// Initializes the notifier from the configuration and answers whether it is enabled.
    /// A custom notifier reads its own table, `config.params["<its name>"]`.
    ///
    /// # Errors
    ///
    /// A configuration the notifier cannot use. The service logs it with the notifier's name
    /// and runs without that notifier.
    fn configure(&mut self, config: &NotifierConfig) -> Result<bool>;

    /// Informs the receiver that the notification exists.
    ///
    /// # Errors
    ///
    /// A failed attempt; the service schedules the next one (after
    /// [`SendError::retry_after`], when the receiver asked for a delay).
    fn send(&self, delivery: &Delivery) -> std::result::Result<(), SendError>;

    /// The most sends per second this notifier takes from one running service (all its
    /// workers together; several instances each get this rate); 0, the default, for no
    /// limit. The webhook answers `[notifier.http] max_rate`.
    fn max_rate(&self) -> u32 {
        0
    }

    /// Gives the notifier the datastore the service delivers from, before
    /// [`configure`](Notifier::configure). The built-in `exec` and `jsonl` notifiers read the
    /// whole notification through it; by default it is ignored.
    fn bind(&mut self, _store: &Arc<dyn Datastore>) {}
}

/// What a notifier is asked to send: the notification's name and a little context.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The notification's name (a UUID v4): the only thing the receiver needs.
    pub name: String,
    /// When the notification was stored.
    pub created: Timestamp,
    /// When a delivery round last succeeded, if ever.
    pub notified: Option<Timestamp>,
    /// Which try of the current round this is, from 1.
    pub attempt: u32,
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    message: String,
    retry_after: Option<Duration>,
    class: AttemptClass,
    status: Option<u16>,
    body: Option<String>,
}

impl SendError {
    /// A failed attempt described by `message` (one line; it is stored and shown by `list`).
    pub fn new(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retry_after: None,
            class: AttemptClass::Other,
            status: None,
            body: None,
        }
    }

    /// Says what kind of failure this is, for the attempt log (`other` unless told).
    pub fn with_class(mut self, class: AttemptClass) -> SendError {
        self.class = class;
        self
    }

    /// The receiver answered `status` (not success) with `body`: the attempt log keeps the
    /// status and the start of the body. Sets the class to [`AttemptClass::Status`].
    pub fn with_status(mut self, status: u16, body: &[u8]) -> SendError {
        self.class = AttemptClass::Status;
        self.status = Some(status);
        self.body = Some(crate::attempt::excerpt(&String::from_utf8_lossy(
            &body[..body.len().min(crate::attempt::MAX_EXCERPT)],
        )));
        self
    }

    /// What kind of failure this is.
    pub fn class(&self) -> AttemptClass {
        self.class
    }

    /// The status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The start of the answer's body, if the receiver answered.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// Asks that the next try wait at least `delay` (an HTTP `Retry-After`); the service still
    /// caps the wait at `max_backoff`.
    pub fn with_retry_after(mut self, delay: Duration) -> SendError {
        self.retry_after = Some(delay);
        self
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The delay the receiver asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

/// Notifiers by name. The service takes one when it starts.
///
/// Names are kept in order, so the notifiers of one round are called in name order.
#[derive(Default)]
pub struct Registry {
    notifiers: BTreeMap<String, Box<dyn Notifier>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Gives every notifier the datastore (see [`Notifier::bind`]).
    pub(crate) fn bind(&mut self, store: &Arc<dyn Datastore>) {
        for n in self.notifiers.values_mut() {
            n.bind(store);
        }
    }

    /// Makes `notifier` available under `name`.
    ///
    /// # Panics
    ///
    /// If `name` is empty or already registered, as Clair's `RegisterNotifier` does.
    pub fn register(&mut self, name: &str, notifier: impl Notifier) {
        self.register_boxed(name, Box::new(notifier));
    }

    /// Like [`register`](Registry::register), for a notifier already boxed.
    ///
    /// # Panics
    ///
    /// If `name` is empty or already registered.
    pub fn register_boxed(&mut self, name: &str, notifier: Box<dyn Notifier>) {
        assert!(
            !name.is_empty(),
            "notifier: could not register a notifier with an empty name"
        );
        assert!(
            !self.notifiers.contains_key(name),
            "notifier: could not register {name} twice"
        );
        self.notifiers.insert(name.to_string(), notifier);
    }

    /// The registered names, in order.
    pub fn names(&self) -> Vec<String> {
        self.notifiers.keys().cloned().collect()
    }

    /// Whether no notifier is registered.
    pub fn is_empty(&self) -> bool {
        self.notifiers.is_empty()
    }

    /// Moves every notifier of `other` into this registry.
    ///
    /// # Panics
    ///
    /// If a name is registered in both.
    pub fn extend(&mut self, other: Registry) {
        for (name, n) in other.notifiers {
            self.register_boxed(&name, n);
        }
    }

    /// Offers `config` to every notifier and keeps the enabled ones, in name order. A notifier
    /// that answers `false` is dropped; one that fails is logged with its name and dropped.
    pub fn configure(self, config: &NotifierConfig) -> Vec<(String, Box<dyn Notifier>)> {
        let mut enabled = Vec::new();
        for (name, mut n) in self.notifiers {
            match n.configure(config) {
                Ok(true) => {
                    log::info!("notifier {name} is enabled");
                    enabled.push((name, n));
                }
                Ok(false) => log::debug!("notifier {name} is not enabled"),
                Err(e) => log::error!("notifier {name} could not be configured: {}", e.chain()),
            }
        }
        enabled
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

static GLOBAL: Mutex<Option<Registry>> = Mutex::new(None);

/// Makes `notifier` available by `name` to the next service started with [`run`](crate::run)
/// or [`Registry::take_global`] (Clair's `RegisterNotifier`).
///
/// # Panics
///
/// If `name` is empty or already registered.
pub fn register(name: &str, notifier: impl Notifier) {
    let mut global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    global
        .get_or_insert_with(Registry::new)
        .register(name, notifier);
}

/// Moves what [`register`] made available out of the process-wide registry.
pub(crate) fn take_registered() -> Registry {
    GLOBAL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);
    impl Notifier for Fixed {
        fn configure(&mut self, _: &NotifierConfig) -> Result<bool> {
            if self.0 {
                Ok(true)
            } else {
                Err(crate::Error::config("broken"))
            }
        }
        fn send(&self, _: &Delivery) -> std::result::Result<(), SendError> {
            Ok(())
        }
    }

    #[test]
    #[should_panic(expected = "empty name")]
    fn empty_name_panics() {
        Registry::new().register("", Fixed(true));
    }

    #[test]
    #[should_panic(expected = "twice")]
    fn duplicate_name_panics() {
        let mut r = Registry::new();
        r.register("a", Fixed(true));
        r.register("a", Fixed(true));
    }

    #[test]
    fn configure_keeps_enabled_drops_failing_and_disabled() {
        let mut r = Registry::with_builtins();
        r.register("good", Fixed(true));
        r.register("bad", Fixed(false));
        assert_eq!(r.names(), ["bad", "exec", "good", "jsonl", "webhook"]);
        // The built-ins have no endpoint, command or path by default, so they are disabled.
        let enabled = r.configure(&NotifierConfig::default());
        let names: Vec<_> = enabled.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["good"]);
    }

    #[test]
    fn global_registrations_are_taken_once() {
        register("global-test", Fixed(true));
        assert!(
            Registry::take_global()
                .names()
                .contains(&"global-test".to_string())
        );
        assert_eq!(
            Registry::take_global().names(),
            ["exec", "jsonl", "webhook"]
        );
    }
}
