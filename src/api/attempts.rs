//! `GET /v1/notifications/{name}/attempts`: the attempt log of one notification as JSON.
//!
//! `{"Name":"…","Attempts":[{"Notifier":"webhook","Started":1764496000123,"DurationMs":12,
//! "Outcome":"status","Status":503,"Excerpt":"…","NextDue":1764496060000}]}`, oldest first;
//! times are unix milliseconds; `Status`, `Excerpt` and `NextDue` are left out when empty.

use serde::Serialize;

use super::Api;
use super::routes::PageError;
use crate::attempt::Attempt;
use crate::time::Timestamp;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Log<'a> {
    name: &'a str,
    attempts: Vec<Row<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row<'a> {
    notifier: &'a str,
    started: i64,
    duration_ms: u128,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    excerpt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_due: Option<i64>,
}

/// The JSON document of `log`, the attempts of the notification `name`, and a newline.
pub fn render(name: &str, log: &[Attempt]) -> Vec<u8> {
    let doc = Log {
        name,
        attempts: log
            .iter()
            .map(|a| Row {
                notifier: &a.notifier,
                started: a.started.as_millis(),
                duration_ms: a.duration.as_millis(),
                outcome: a.class.as_str(),
                status: a.status,
                excerpt: a.excerpt.as_deref(),
                next_due: a.next_due.map(Timestamp::as_millis),
            })
            .collect(),
    };
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    body.push(b'\n');
    body
}

impl Api {
    /// The attempt log of notification `name` as `GET /v1/notifications/{name}/attempts`
    /// answers it once authorized (the `show --attempts --json` command prints the same).
    ///
    /// # Errors
    ///
    /// [`PageError::NotFound`] for an unknown name, [`PageError::Store`] if the store failed.
    pub fn read_attempts(&self, name: &str) -> Result<Vec<u8>, PageError> {
        let log = self
            .store
            .attempts(name)
            .map_err(PageError::Store)?
            .ok_or(PageError::NotFound)?;
        Ok(render(name, &log))
    }
}
