//! The read commands: `list`, `show`, `mark-read` and `stats`, over an existing database.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clair_notifier::api::{Api, PageError};
use clair_notifier::config::format_duration;
use clair_notifier::store::ListFilter;
use clair_notifier::{Datastore, State, Timestamp};

use crate::args::Global;
use crate::open::{load, open_existing};
use crate::{CliError, count, rfc3339};

/// `list`: one line a notification, tab-separated.
pub fn list(global: &Global, state: Option<State>, limit: usize) -> Result<(), CliError> {
    let config = load(global)?;
    let store = open_existing(&config)?;
    let listed = store.list(ListFilter { state, limit })?;
    log::info!(
        "listed {} ({}, at most {limit})",
        count(listed.len() as u64, "notification"),
        state.map_or("every state", State::as_str)
    );
    for note in crate::operate::paused_notes(&*store)? {
        eprintln!("clair-notifier: {note}.");
    }
    let mut out = std::io::stdout().lock();
    for s in listed {
        let when = |t: Option<Timestamp>| t.map_or("-".to_string(), |t| rfc3339(t, false));
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.name,
            s.state().as_str(),
            rfc3339(s.created, false),
            when(s.notified),
            when(s.read),
            s.attempts,
            s.last_error
                .as_deref()
                .unwrap_or("-")
                .replace(['\t', '\n'], " ")
        )?;
    }
    Ok(())
}

/// `show`: one page, exactly as the read API serves it.
pub fn show(global: &Global, name: &str, limit: &str, page: Option<&str>) -> Result<(), CliError> {
    let config = load(global)?;
    let store: Arc<dyn Datastore> = open_existing(&config)?;
    let api = Api::new(&config.api, store)?;
    match api.read_page(name, Some(limit), page) {
        Ok(body) => {
            log::info!("read a page of {name}");
            std::io::stdout().lock().write_all(&body)?;
            Ok(())
        }
        Err(PageError::NotFound) => Err(no_such(name)),
        Err(PageError::NoLimit) => Err(CliError::usage("--limit is needed")),
        Err(PageError::BadLimit(why)) => Err(CliError::usage(format!("invalid --limit: {why}"))),
        Err(PageError::BadPage) => Err(CliError::usage(
            "invalid --page: invalid or expired pagination token",
        )),
        Err(PageError::Store(e)) => Err(e.into()),
    }
}

/// `mark-read`: as `DELETE /v1/notifications/NAME` does.
pub fn mark_read(global: &Global, name: &str) -> Result<(), CliError> {
    let config = load(global)?;
    let store = open_existing(&config)?;
    if store.mark_read(name, Timestamp::now())? {
        log::info!("marked {name} read");
        Ok(())
    } else {
        Err(no_such(name))
    }
}

fn no_such(name: &str) -> CliError {
    CliError::runtime(format!("there is no notification named \"{name}\""))
}

pub fn stats(global: &Global, json: bool) -> Result<(), CliError> {
    let config = load(global)?;
    let store = open_existing(&config)?;
    let now = Timestamp::now();
    let c = store.counts(now)?;
    log::info!("counted {}", count(c.total(), "notification"));
    let oldest = c.oldest_due.map(|t| now.since(t).as_secs());
    let (notifiers, notifiers_json) = crate::operate::notifier_stats(&*store, now)?;
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "pending": c.pending, "notified": c.notified, "failing": c.failing, "read": c.read,
            "total": c.total(), "due": c.due, "leased": c.leased, "oldest_due_age_secs": oldest,
            "notifiers": notifiers_json,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    for (k, v) in [
        ("pending", c.pending.to_string()),
        ("notified", c.notified.to_string()),
        ("failing", c.failing.to_string()),
        ("read", c.read.to_string()),
        ("total", c.total().to_string()),
        ("due", c.due.to_string()),
        ("leased", c.leased.to_string()),
        (
            "oldest_due_age",
            oldest.map_or("-".into(), |s| format_duration(Duration::from_secs(s))),
        ),
    ] {
        writeln!(out, "{k:<15}{v}")?;
    }
    for (k, v) in notifiers {
        writeln!(out, "{k:<15}{v}")?;
    }
    Ok(())
}
