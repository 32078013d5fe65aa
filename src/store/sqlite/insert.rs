//! Storing new notifications with their layers.

use rusqlite::{Transaction, params};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::{NewNotification, VulnerabilityWithLayers};
use crate::time::Timestamp;

/// Checks every notification before anything is written, so a bad one inserts nothing.
pub fn check_all(notifications: &[NewNotification]) -> Result<()> {
    for (i, n) in notifications.iter().enumerate() {
        n.check().map_err(|why| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("notification {} of {}: {why}", i + 1, notifications.len()),
            )
        })?;
    }
    Ok(())
}

pub fn insert(
    tx: &Transaction<'_>,
    path: &str,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<Vec<String>> {
    let err = |e| super::store_error(path, "could not insert into", e);
    let mut names = Vec::with_capacity(notifications.len());
    let mut insert = tx
        .prepare_cached("INSERT INTO notification (name, created_at, due_at) VALUES (?1, ?2, ?2)")
        .map_err(err)?;
    let mut content = tx
        .prepare_cached(
            "INSERT INTO content (notification_id, old_vulnerability, new_vulnerability)
             VALUES (?1, ?2, ?3)",
        )
        .map_err(err)?;
    let mut layer = tx
        .prepare_cached(
            "INSERT INTO layer (notification_id, side, seq, name)
             SELECT ?1, ?2, key, value FROM json_each(?3)",
        )
        .map_err(err)?;
    // Names are drawn at random, then handed out in ascending order: the name index then
    // takes this batch's entries in order, which costs less than random insertion.
    let mut fresh: Vec<String> = (0..notifications.len())
        .map(|_| uuid::Uuid::new_v4().hyphenated().to_string())
        .collect();
    fresh.sort_unstable();
    for (n, name) in notifications.iter().zip(fresh) {
        let old = n.old.as_ref().map(vulnerability_json);
        let new = n.new.as_ref().map(vulnerability_json);
        let id = insert.insert(params![name, now.as_millis()]).map_err(err)?;
        content.execute(params![id, old, new]).map_err(err)?;
        for (side, v) in [(0, &n.old), (1, &n.new)] {
            // One statement a side: SQLite walks the JSON array of names itself, numbering
            // them from 0, which costs far less than a statement per layer.
            if let Some(v) = v.as_ref().filter(|v| !v.layers.is_empty()) {
                let names = serde_json::to_string(&v.layers).unwrap_or_default();
                layer.execute(params![id, side, names]).map_err(err)?;
            }
        }
        names.push(name);
    }
    Ok(names)
}

fn vulnerability_json(v: &VulnerabilityWithLayers) -> String {
    // Serializing a struct of strings and JSON values cannot fail.
    serde_json::to_string(&v.vulnerability).unwrap_or_default()
}
