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

/// A chunk of layer names stays under this many bytes of JSON (about 48 digests), so that a
/// content row holding the first chunk of both sides fits in one 16 KiB page (see
/// `layer_chunk`; in a database created with 4 KiB pages it spills into overflow pages:
/// slower, not wrong).
pub const CHUNK_BYTES: usize = 3600;

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

/// Fills `json` with the first chunk of `side`'s layers and returns its end (0 when there is
/// no layer).
fn first_chunk(side: Option<&VulnerabilityWithLayers>, json: &mut String) -> usize {
    match side {
        Some(v) if !v.layers.is_empty() => chunk_end(&v.layers, 0, json),
        _ => 0,
    }
}

/// Fills `json` with the JSON array of the names from `start` that fit in a chunk (one at
/// least), and returns the position after the last of them.
fn chunk_end(layers: &[String], start: usize, json: &mut String) -> usize {
    json.clear();
    json.push('[');
    let mut end = start;
    while end < layers.len() {
        let at = json.len();
        if end > start {
            json.push(',');
        }
        push_json_string(json, &layers[end]);
        if end > start && json.len() + 1 > CHUNK_BYTES {
            json.truncate(at);
            break;
        }
        end += 1;
    }
    json.push(']');
    end
}

/// Appends `s` as a JSON string. Layer names are almost always plain (a digest): they are
/// copied as they are, and only a string with a character JSON escapes goes through
/// serde_json (whose output is the same for plain strings).
fn push_json_string(out: &mut String, s: &str) {
    // A fold, not `all`: without an early exit the check runs on whole vectors of bytes.
    let plain = !s.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a string cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// `n` random UUID v4 names, drawn from the system's generator in one call.
fn fresh_names(n: usize) -> Result<Vec<uuid::Bytes>> {
    use ring::rand::SecureRandom;
    let mut random = vec![0u8; n * 16];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| Error::new(ErrorKind::Other, "the system's random generator failed"))?;
    Ok(random
        .chunks_exact(16)
        .map(|r| {
            let bytes: uuid::Bytes = r.try_into().unwrap_or_default();
            *uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .as_bytes()
        })
        .collect())
}

fn vulnerability_json(v: &VulnerabilityWithLayers) -> String {
    // Serializing a struct of strings and JSON values cannot fail.
    serde_json::to_string(&v.vulnerability).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_name_once_in_order_and_stay_small() {
        let layers: Vec<String> = (0..100)
            .map(|i| format!("sha256:{i:064}"))
            .chain(["x".repeat(5000), "a\"quoted\\name".into(), "y".into()])
            .collect();
        let (mut start, mut json, mut seen) = (0, String::new(), Vec::new());
        while start < layers.len() {
            let end = chunk_end(&layers, start, &mut json);
            assert!(end > start, "a chunk holds a name at least");
            assert!(
                json.len() <= CHUNK_BYTES || end == start + 1,
                "{}",
                json.len()
            );
            let names: Vec<String> = serde_json::from_str(&json).unwrap();
            assert_eq!(names.len(), end - start);
            seen.extend(names);
            start = end;
        }
        assert_eq!(seen, layers);
    }

    #[test]
    fn plain_and_escaped_strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "sha256:abc",
            "é ü 日本",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "\u{7f}",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn fresh_names_are_distinct_version_4_uuids() {
        let names = fresh_names(1000).unwrap();
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), 1000);
        for n in &names {
            let u = uuid::Uuid::from_bytes(*n);
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
