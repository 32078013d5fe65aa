//! Storing new notifications with their layers.

use rusqlite::{Transaction, params};

use super::encoding::{chunk_end, first_chunk, fresh_names, vulnerability_json};
use crate::error::Result;
use crate::notification::NewNotification;
use crate::time::Timestamp;

pub fn insert(
    tx: &Transaction<'_>,
    path: &str,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<Vec<String>> {
    let err = |e| super::store_error(path, "could not insert into", e);
    let mut insert = tx
        .prepare_cached("INSERT INTO notification (name, created_at, due_at) VALUES (?1, ?2, ?2)")
        .map_err(err)?;
    let mut content = tx
        .prepare_cached(
            "INSERT INTO content (notification_id, old_vulnerability, new_vulnerability,
                 old_layers, new_layers)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(err)?;
    let mut chunk = tx
        .prepare_cached(
            "INSERT INTO layer_chunk (notification_id, side, start, names) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(err)?;
    // Names are drawn at random, then handed out in ascending order: the name index then
    // takes this batch's entries in order, which costs less than random insertion.
    let mut fresh = fresh_names(notifications.len())?;
    fresh.sort_unstable();
    let mut names = Vec::with_capacity(notifications.len());
    let (mut old_first, mut new_first, mut json) = (String::new(), String::new(), String::new());
    for (n, key) in notifications.iter().zip(fresh) {
        let old = n.old.as_ref().map(vulnerability_json);
        let new = n.new.as_ref().map(vulnerability_json);
        let id = insert
            .insert(params![&key[..], now.as_millis()])
            .map_err(err)?;
        // Each side's first chunk goes into the content row, the rest into `layer_chunk`.
        let old_end = first_chunk(n.old.as_ref(), &mut old_first);
        let new_end = first_chunk(n.new.as_ref(), &mut new_first);
        content
            .execute(params![
                id,
                old,
                new,
                (old_end > 0).then_some(&old_first),
                (new_end > 0).then_some(&new_first)
            ])
            .map_err(err)?;
        for (side, v, mut start) in [(0, &n.old, old_end), (1, &n.new, new_end)] {
            let Some(v) = v else { continue };
            while start < v.layers.len() {
                let end = chunk_end(&v.layers, start, &mut json);
                chunk
                    .execute(params![id, side, start as i64, json])
                    .map_err(err)?;
                start = end;
            }
        }
        names.push(uuid::Uuid::from_bytes(key).hyphenated().to_string());
    }
    Ok(names)
}
