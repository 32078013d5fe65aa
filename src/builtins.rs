//! The notifiers built into the crate, and the registries that offer them. This is the one
//! place that knows every built-in, so that the [`Notifier`](crate::Notifier) trait and its
//! registry know none of their implementations.

use crate::notifier::{Registry, take_registered};

impl Registry {
    /// A registry holding the built-in notifiers: `webhook`, and on Unix `exec` and `jsonl`.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        r.register("webhook", crate::webhook::Webhook::default());
        #[cfg(unix)]
        {
            r.register("exec", crate::exec::Exec::default());
            r.register("jsonl", crate::jsonl::Jsonl::default());
        }
        r
    }

    /// The built-in notifiers plus everything registered with [`register`](crate::register),
    /// which is moved out of the process-wide registry (a notifier instance serves one
    /// service).
    ///
    /// # Panics
    ///
    /// If a notifier was registered globally under a built-in's name (`webhook`, `exec`,
    /// `jsonl`).
    pub fn take_global() -> Registry {
        let mut r = Registry::with_builtins();
        r.extend(take_registered());
        r
    }
}
