//! The shapes shared by the store, the service, the read API and the command line.
//!
//! JSON field names follow Clair v1's API (`Name`, `NamespaceName`, `LayersIntroducingVulnerability`,
//! ...); empty fields are left out when serialized.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::time::Timestamp;

/// A vulnerability as Clair v1 describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Vulnerability {
    /// The vulnerability's name, e.g. `CVE-2016-1234`. Required.
    pub name: String,
    /// The namespace it applies to, e.g. `debian:8`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A URL with details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// `Unknown`, `Negligible`, `Low`, `Medium`, `High`, `Critical` or `Defcon1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
    /// Any extra data (scores, vectors), as a JSON object.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The version that fixes it, when there is one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fixed_by: String,
    /// The features in which it is fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed_in: Vec<FixedIn>,
}

/// A feature version that fixes a vulnerability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FixedIn {
    /// The feature (package) name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_name: String,
    /// The fixing version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// One side (Old or New) of a notification: the vulnerability and the layers that introduce it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct VulnerabilityWithLayers {
    /// The vulnerability.
    pub vulnerability: Vulnerability,
    /// Names of the layers that introduce it (all of them on input; one page of them on output).
    #[serde(
        rename = "LayersIntroducingVulnerability",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub layers: Vec<String>,
}

/// A notification to be stored: an Old and/or a New vulnerability. The store gives it its name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NewNotification {
    /// The vulnerability as it was, if it existed before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<VulnerabilityWithLayers>,
    /// The vulnerability as it is now, if it still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<VulnerabilityWithLayers>,
}

impl NewNotification {
    /// Checks what the store requires: at least one side, and a vulnerability name on each.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](ErrorKind::InvalidInput), its message a sentence naming what is
    /// missing (`the New vulnerability needs a Name`).
    pub fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::new(ErrorKind::InvalidInput, why));
        if self.old.is_none() && self.new.is_none() {
            return invalid("a notification needs an Old or a New vulnerability".to_string());
        }
        for (side, v) in [("Old", &self.old), ("New", &self.new)] {
            if let Some(v) = v
                && v.vulnerability.name.trim().is_empty()
            {
                return invalid(format!("the {side} vulnerability needs a Name"));
            }
        }
        Ok(())
    }
}

/// A store's own key for a notification (not its public name).
///
/// The service only compares, hashes and hands it back to the store that made it; what the
/// number means is the store's business (a row id for SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationId(i64);

impl NotificationId {
    /// The id a store keeps as `raw`.
    pub const fn new(raw: i64) -> NotificationId {
        NotificationId(raw)
    }

    /// The number the store gave.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Where a notification stands, as `list` and `stats` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Never delivered yet, and no failed attempt in the current round.
    Pending,
    /// Delivered at least once, not read yet.
    Notified,
    /// The last attempt failed; a retry or the next round is scheduled.
    Failing,
    /// Marked read: never sent again.
    Read,
}

impl State {
    /// The state's name as the command line writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Notified => "notified",
            State::Failing => "failing",
            State::Read => "read",
        }
    }
}

/// What the store knows of a notification, without its vulnerabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationSummary {
    /// The store's identifier.
    pub id: NotificationId,
    /// The public name (a UUID v4).
    pub name: String,
    /// When it was stored (the read API's `Created`, in Unix seconds there).
    pub created: Timestamp,
    /// When a delivery round last succeeded (the read API's `Notified`); `None` before the
    /// first.
    pub notified: Option<Timestamp>,
    /// When it was marked read (the read API's `Deleted`, as Clair called it); `None` while it
    /// is unread.
    pub read: Option<Timestamp>,
    /// When it is next due: while it is leased, not before the lease expires (None once read).
    pub due: Option<Timestamp>,
    /// Failed attempts in the current round.
    pub attempts: u32,
    /// The last failure, if the current round has one.
    pub last_error: Option<String>,
}

impl NotificationSummary {
    /// The state this summary is in.
    pub fn state(&self) -> State {
        if self.read.is_some() {
            State::Read
        } else if self.last_error.is_some() {
            State::Failing
        } else if self.notified.is_some() {
            State::Notified
        } else {
            State::Pending
        }
    }
}

/// Where a page starts in each layer list: the index of its first layer, or `-1` for "no more
/// layers on this side" (Clair v1's double cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageCursor {
    /// Start in the Old vulnerability's layers.
    pub old: i64,
    /// Start in the New vulnerability's layers.
    pub new: i64,
}

impl PageCursor {
    /// The first page.
    pub const FIRST: PageCursor = PageCursor { old: 0, new: 0 };

    /// Whether this cursor points past the end of both lists.
    pub fn is_end(self) -> bool {
        self.old < 0 && self.new < 0
    }
}

/// One page of a notification: its summary, both vulnerabilities, up to `limit` layers of each,
/// and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationPage {
    /// The notification without its vulnerabilities.
    pub summary: NotificationSummary,
    /// The Old side with this page's layers.
    pub old: Option<VulnerabilityWithLayers>,
    /// The New side with this page's layers.
    pub new: Option<VulnerabilityWithLayers>,
    /// The next page, or `None` on the last one.
    pub next: Option<PageCursor>,
}
