//! The attempt log: one record per try of one notifier for one notification, kept by the
//! store with the outcome it belongs to, shown by `show NAME --attempts` and
//! `GET /v1/notifications/{name}/attempts`.

use std::time::Duration;

use crate::time::Timestamp;

/// The most bytes of an answer's body, or of an error, that an attempt keeps.
pub const MAX_EXCERPT: usize = 1024;

/// The most attempts kept per notification: older ones are dropped in the write that adds
/// newer ones.
pub const KEPT_ATTEMPTS: u32 = 100;

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptClass {
    /// The receiver accepted it (a 2xx, for the webhook).
    Ok,
    /// The receiver answered with a status that is not success.
    Status,
    /// No answer within the timeout.
    Timeout,
    /// No connection (refused, reset, name not found, proxy failed).
    Connect,
    /// The TLS handshake failed (certificate, name, protocol).
    Tls,
    /// The notifier panicked.
    Panic,
    /// Anything else.
    Other,
}

impl AttemptClass {
    /// Every class, in the order of the docs.
    pub const ALL: [AttemptClass; 7] = [
        AttemptClass::Ok,
        AttemptClass::Status,
        AttemptClass::Timeout,
        AttemptClass::Connect,
        AttemptClass::Tls,
        AttemptClass::Panic,
        AttemptClass::Other,
    ];

    /// Its name: `ok`, `status`, `timeout`, `connect`, `tls`, `panic` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptClass::Ok => "ok",
            AttemptClass::Status => "status",
            AttemptClass::Timeout => "timeout",
            AttemptClass::Connect => "connect",
            AttemptClass::Tls => "tls",
            AttemptClass::Panic => "panic",
            AttemptClass::Other => "other",
        }
    }

    /// The class named `name` (what [`as_str`](AttemptClass::as_str) returns); `Other` for
    /// a name this version does not know.
    pub fn from_name(name: &str) -> AttemptClass {
        AttemptClass::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(AttemptClass::Other)
    }
}

/// One try of one notifier for one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The notifier's registered name.
    pub notifier: String,
    /// When the try started, by the service's clock.
    pub started: Timestamp,
    /// How long it took: from the call of [`Notifier::send`](crate::Notifier::send) to its
    /// return (or its panic).
    pub duration: Duration,
    /// What became of it.
    pub class: AttemptClass,
    /// The HTTP status of the answer, where there was one: the webhook gives it for a
    /// failed answer ([`SendError::with_status`](crate::SendError::with_status)).
    pub status: Option<u16>,
    /// The start of the answer's body, or the error, at most [`MAX_EXCERPT`] bytes.
    pub excerpt: Option<String>,
    /// When the notification was next due after this try (the next try, or the next round).
    pub next_due: Option<Timestamp>,
}

/// `text` cut to at most [`MAX_EXCERPT`] bytes, at a character boundary.
pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(MAX_EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_at_a_character_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(MAX_EXCERPT);
        let cut = excerpt(&long);
        assert!(cut.len() <= MAX_EXCERPT && cut.len() >= MAX_EXCERPT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn class_names_round_trip() {
        for c in AttemptClass::ALL {
            assert_eq!(AttemptClass::from_name(c.as_str()), c);
        }
        assert_eq!(AttemptClass::from_name("martian"), AttemptClass::Other);
    }
}
