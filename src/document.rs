//! Clair v1's notification document: what `GET /v1/notifications/{name}` answers, and, whole
//! (every layer, no paging fields), what the `exec` and `jsonl` notifiers deliver.

use std::sync::Arc;

use serde::Serialize;

use crate::notification::{NotificationPage, PageCursor, VulnerabilityWithLayers};
use crate::notifier::SendError;
use crate::store::Datastore;
use crate::time::Timestamp;

/// Clair v1's notification JSON, fields in Clair's order, empty ones left out.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "Notification")]
    notification: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Created")]
    created: String,
    #[serde(rename = "Notified", skip_serializing_if = "Option::is_none")]
    notified: Option<String>,
    #[serde(rename = "Deleted", skip_serializing_if = "Option::is_none")]
    deleted: Option<String>,
    #[serde(rename = "Limit", skip_serializing_if = "is_zero")]
    limit: u32,
    #[serde(rename = "Page", skip_serializing_if = "str::is_empty")]
    page: &'a str,
    #[serde(rename = "NextPage", skip_serializing_if = "Option::is_none")]
    next_page: Option<String>,
    #[serde(rename = "Old", skip_serializing_if = "Option::is_none")]
    old: Option<&'a VulnerabilityWithLayers>,
    #[serde(rename = "New", skip_serializing_if = "Option::is_none")]
    new: Option<&'a VulnerabilityWithLayers>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn secs(t: Timestamp) -> String {
    t.as_secs().to_string()
}

/// Renders one page as the body of `GET /v1/notifications/{name}`, byte for byte: Clair
/// v1's shape, then a newline. `page_token` is the token of this page (echoed as `Page`),
/// `next_token` that of the next one (`NextPage`, absent on the last page).
pub(crate) fn render_page(
    page: &NotificationPage,
    limit: u32,
    page_token: &str,
    next_token: Option<String>,
) -> Vec<u8> {
    let s = &page.summary;
    let envelope = Envelope {
        notification: Body {
            name: &s.name,
            created: secs(s.created),
            notified: s.notified.map(secs),
            deleted: s.read.map(secs),
            limit,
            page: page_token,
            next_page: next_token,
            old: page.old.as_ref(),
            new: page.new.as_ref(),
        },
    };
    let mut body = serde_json::to_vec(&envelope).unwrap_or_default();
    body.push(b'\n');
    body
}

/// The whole notification of `page` (read with no limit), as one line: Clair v1's document
/// without `Limit`, `Page` and `NextPage`, then a newline.
pub(crate) fn render_whole(page: &NotificationPage) -> Vec<u8> {
    render_page(page, 0, "", None)
}

/// Where a notifier that delivers the content reads it: the datastore the service binds.
#[derive(Default)]
pub(crate) struct Source {
    store: Option<Arc<dyn Datastore>>,
}

impl Source {
    pub(crate) fn bind(&mut self, store: &Arc<dyn Datastore>) {
        self.store = Some(store.clone());
    }

    /// The whole notification `name`, rendered by [`render_whole`].
    ///
    /// # Errors
    ///
    /// A failed attempt when no store is bound, the store fails, or it no longer holds the
    /// notification.
    pub(crate) fn read(&self, name: &str) -> std::result::Result<Vec<u8>, SendError> {
        let Some(store) = &self.store else {
            return Err(SendError::new("no datastore was given to this notifier"));
        };
        match store.page(name, PageCursor::FIRST, u32::MAX) {
            Ok(Some(page)) => Ok(render_whole(&page)),
            Ok(None) => Err(SendError::new(format!(
                "notification {name} is no longer in the store"
            ))),
            Err(e) => Err(SendError::new(format!(
                "could not read notification {name}: {}",
                e.chain()
            ))),
        }
    }
}
