//! How values are kept in the database: a notification's name as the 16 bytes of its UUID, a
//! vulnerability as JSON, and layer names as JSON arrays in chunks of consecutive names.
//!
//! The JSON is written here by hand for speed (serde_json escapes byte by byte, which was 29 %
//! of the instructions of an insert with layers); the output is serde_json's, byte for byte
//! (property-tested below), and it is read back with serde_json.

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::notification::VulnerabilityWithLayers;

/// The stored form of a notification name: the 16 bytes of its UUID. `None` for a string
/// that is not a name this store hands out (a UUID, lowercase, with hyphens), which is then
/// simply not found.
pub fn name_key(name: &str) -> Option<[u8; 16]> {
    let uuid = uuid::Uuid::try_parse(name).ok()?;
    let mut buf = uuid::Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buf) == name).then(|| *uuid.as_bytes())
}

/// A notification name from its stored 16 bytes. (A name written as text by another program
/// is read as it is, so that one odd row cannot stop claims.)
pub fn name_text(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<String> {
    let value = row.get_ref(column)?;
    if let rusqlite::types::ValueRef::Text(t) = value {
        return Ok(String::from_utf8_lossy(t).into_owned());
    }
    // Written into a buffer on the stack, then copied once (no formatter, no regrowth).
    uuid::Uuid::from_slice(value.as_blob()?)
        .map(|u| {
            u.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned()
        })
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Blob,
                Box::new(e),
            )
        })
}

/// A chunk of layer names stays under this many bytes of JSON (about 40 digests), so that a
/// content row holding the first chunk of both sides and their vulnerabilities usually fits
/// in one 8 KiB page (see `layer_chunk`; a longer row spills into overflow pages: slower, not
/// wrong).
pub const CHUNK_BYTES: usize = 3000;

/// Fills `json` with the first chunk of `side`'s layers and returns its end (0 when there is
/// no layer).
pub fn first_chunk(side: Option<&VulnerabilityWithLayers>, json: &mut String) -> usize {
    match side {
        Some(v) if !v.layers.is_empty() => chunk_end(&v.layers, 0, json),
        _ => 0,
    }
}

/// Fills `json` with the JSON array of the names from `start` that fit in a chunk (one at
/// least), and returns the position after the last of them.
pub fn chunk_end(layers: &[String], start: usize, json: &mut String) -> usize {
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
pub fn fresh_names(n: usize) -> Result<Vec<uuid::Bytes>> {
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

/// The stored JSON of a side's vulnerability: what serde_json writes for it, byte for byte
/// (same fields, same order, empty ones left out), with its strings written by
/// `push_json_string`.
pub fn vulnerability_json(v: &VulnerabilityWithLayers) -> String {
    let v = &v.vulnerability;
    let mut out = String::with_capacity(128 + v.description.len());
    out.push_str(r#"{"Name":"#);
    push_json_string(&mut out, &v.name);
    let field = |out: &mut String, key: &str, value: &str| {
        if !value.is_empty() {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            push_json_string(out, value);
        }
    };
    field(&mut out, "NamespaceName", &v.namespace_name);
    field(&mut out, "Description", &v.description);
    field(&mut out, "Link", &v.link);
    field(&mut out, "Severity", &v.severity);
    // Serializing JSON values and plain structs of strings cannot fail.
    if !v.metadata.is_empty() {
        out.push_str(r#","Metadata":"#);
        out.push_str(&serde_json::to_string(&v.metadata).unwrap_or_default());
    }
    field(&mut out, "FixedBy", &v.fixed_by);
    if !v.fixed_in.is_empty() {
        out.push_str(r#","FixedIn":"#);
        out.push_str(&serde_json::to_string(&v.fixed_in).unwrap_or_default());
    }
    out.push('}');
    out
}

/// Reads back JSON written here (column `column` of a row): a vulnerability or a chunk of names.
pub fn from_json<T: DeserializeOwned>(json: &str, column: usize) -> rusqlite::Result<T> {
    serde_json::from_str(json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
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
    fn vulnerabilities_are_written_as_serde_json_writes_them() {
        use crate::notification::{FixedIn, Vulnerability};
        let full = Vulnerability {
            name: "CVE-2024-1 \"quoted\"".into(),
            namespace_name: "debian:12".into(),
            description: "line one\nline two \\ é".into(),
            link: "https://example.test/CVE".into(),
            severity: "High".into(),
            metadata: serde_json::json!({"NVD": {"CVSSv2": {"Score": 7.5}}})
                .as_object()
                .cloned()
                .unwrap(),
            fixed_by: "1.2-3".into(),
            fixed_in: vec![FixedIn {
                name: "openssl".into(),
                namespace_name: "debian:12".into(),
                version: "1.2-3".into(),
            }],
        };
        let only_name = Vulnerability {
            name: "CVE-2".into(),
            ..Vulnerability::default()
        };
        let some = Vulnerability {
            severity: "Low".into(),
            fixed_by: "2".into(),
            ..only_name.clone()
        };
        for v in [full, only_name, some] {
            let side = VulnerabilityWithLayers {
                vulnerability: v.clone(),
                layers: Vec::new(),
            };
            let json = vulnerability_json(&side);
            assert_eq!(json, serde_json::to_string(&v).unwrap());
            let back: Vulnerability = serde_json::from_str(&json).unwrap();
            assert_eq!(back, v);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_strings_are_written_as_serde_json_writes_them(
            name in ".{0,40}",
            namespace in "(?s).{0,20}",
            description in "(?s).{0,200}",
            severity in "[A-Za-z]{0,10}",
            layer in "(?s).{0,100}",
        ) {
            let v = crate::notification::Vulnerability {
                name,
                namespace_name: namespace,
                description,
                severity,
                ..Default::default()
            };
            let side = VulnerabilityWithLayers { vulnerability: v.clone(), layers: Vec::new() };
            proptest::prop_assert_eq!(vulnerability_json(&side), serde_json::to_string(&v).unwrap());
            let mut out = String::new();
            push_json_string(&mut out, &layer);
            proptest::prop_assert_eq!(out, serde_json::to_string(&layer).unwrap());
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
