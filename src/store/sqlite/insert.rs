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
            "INSERT INTO layer (notification_id, side, seq, name) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(err)?;
    for n in notifications {
        let name = uuid::Uuid::new_v4().hyphenated().to_string();
        let old = n.old.as_ref().map(vulnerability_json);
        let new = n.new.as_ref().map(vulnerability_json);
        let id = insert.insert(params![name, now.as_millis()]).map_err(err)?;
        content.execute(params![id, old, new]).map_err(err)?;
        for (side, v) in [(0, &n.old), (1, &n.new)] {
            if let Some(v) = v {
                for (seq, l) in v.layers.iter().enumerate() {
                    layer
                        .execute(params![id, side, seq as i64, l])
                        .map_err(err)?;
                }
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
