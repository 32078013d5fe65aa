//! What operators change through the store: a resend of notifications, the pause of a
//! notifier. The service reads the notifiers' state from the store, so that every instance
//! sharing it, and a restart, obey the same operator.

use crate::time::Timestamp;

/// What [`Datastore::resend`](super::Datastore::resend) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// The notification is due at once, with a fresh round.
    Resent,
    /// The notification is read, and `unread` was not asked for: nothing changed.
    Read,
    /// There is no notification of that name.
    Unknown,
}

/// What the store keeps of one notifier for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierState {
    /// The notifier's registered name.
    pub notifier: String,
    /// Since when it is paused; `None` when it is not.
    pub paused: Option<Timestamp>,
}
