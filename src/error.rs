//! The crate's error type: one opaque [`Error`] with a [`kind`](Error::kind).

use std::fmt;

/// What sort of failure an [`Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid: a bad value, a missing file, an unreadable certificate.
    Config,
    /// The datastore failed: I/O, a full disk, a lock held too long, a database of another
    /// program or of a newer version.
    Store,
    /// The database file is not one a store can use: not an SQLite database at all, or one
    /// whose pages are corrupt. Found when the store opens it (before anything is written to
    /// it), or later when a damaged page is read: usually a wrong path rather than a failure
    /// of a running system.
    NotADatabase,
    /// Input given to the library was rejected (a notification without a vulnerability name, ...).
    InvalidInput,
    /// Anything else: a thread could not be spawned, a socket could not be bound.
    Other,
}

/// The error of every fallible operation in this crate.
///
/// `Display` says what failed at this layer in one sentence; the underlying cause, if any, is
/// available through [`std::error::Error::source`].
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Creates an error of `kind` with a one-sentence `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Creates an error of `kind` with a `message` and the underlying `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    /// The same error with `prefix` before its message (a file and line, say), keeping its
    /// kind and cause.
    #[cfg_attr(not(feature = "config-file"), allow(dead_code))]
    pub(crate) fn prefixed(mut self, prefix: &str) -> Error {
        self.message.insert_str(0, prefix);
        self
    }

    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message and every cause, joined with `": "`: one line for a log or a terminal.
    ///
    /// Every cause is shown as it is: a message never repeats its cause's text, so nothing
    /// needs to be left out.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_every_cause_in_order() {
        let io = std::io::Error::other("disk on fire");
        let inner = Error::with_source(ErrorKind::Store, "could not write the row", io);
        let outer = Error::with_source(ErrorKind::Other, "the claim failed", inner);
        assert_eq!(outer.to_string(), "the claim failed");
        assert_eq!(
            outer.chain(),
            "the claim failed: could not write the row: disk on fire"
        );
        assert_eq!(Error::config("bad").chain(), "bad");
    }

    #[test]
    fn chain_hides_no_cause_whose_text_the_message_holds() {
        let cause = std::io::Error::other("no such file");
        let e = Error::with_source(ErrorKind::Config, "no such file or directory", cause);
        assert_eq!(e.chain(), "no such file or directory: no such file");
    }
}
