//! `add`: notifications from JSON lines, inserted in one transaction.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use clair_notifier::{NewNotification, Registry, Timestamp};

use crate::args::Global;
use crate::open::{load_validated, open_configured};
use crate::{CliError, count};

/// The longest line `add` reads: one notification's JSON (room for about 200 000 layer
/// names). Input is read a line at a time, so a longer line is refused after reading this
/// much of it, without holding the rest in memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

pub fn add(global: &Global, file: Option<&Path>) -> Result<(), CliError> {
    let (config, origin) = load_validated(global, &Registry::take_global())?;
    match origin {
        Some(path) => log::info!("configuration {} is valid", path.display()),
        None => log::info!("no configuration given: every setting at its default"),
    }
    let (mut input, what): (Box<dyn BufRead>, String) = match file {
        Some(path) if path != Path::new("-") => {
            let f = std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("could not read {}: {e}", path.display())))?;
            (
                Box::new(std::io::BufReader::new(f)),
                path.display().to_string(),
            )
        }
        _ => (
            Box::new(std::io::stdin().lock()),
            "standard input".to_string(),
        ),
    };
    let batch = read_lines(&mut input, &what)?;
    if batch.is_empty() {
        log::info!("no notification in {what}: nothing added");
        return Ok(());
    }
    let path = config.database.shown();
    let existed = config.database.is_postgres() || Path::new(&path).exists();
    let store = open_configured(&config)?;
    log::info!(
        "database {path} {}",
        if existed { "opened" } else { "created" }
    );
    let names = store.insert(&batch, Timestamp::now())?;
    log::info!(
        "added {} from {what}",
        count(names.len() as u64, "notification")
    );
    let mut out = std::io::stdout().lock();
    for name in names {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

/// Every notification in `input`, one JSON object a line (blank lines skipped); the first bad
/// line is an error naming it.
fn read_lines(input: &mut dyn BufRead, what: &str) -> Result<Vec<NewNotification>, CliError> {
    let mut batch = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let bad = |why: String| CliError::usage(format!("line {number}: {why}; nothing was added"));
        let n = input
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::usage(format!("could not read {what}: {e}")))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE_BYTES {
            return Err(bad(format!(
                "the line is longer than {} MiB, the most one notification may take",
                MAX_LINE_BYTES >> 20
            )));
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Err(bad("the line is not valid UTF-8".to_string()));
        };
        if text.trim().is_empty() {
            continue;
        }
        let n: NewNotification =
            serde_json::from_str(text).map_err(|e| bad(json_error(text, &e)))?;
        n.check().map_err(|e| bad(e.to_string()))?;
        batch.push(n);
    }
    Ok(batch)
}

/// What is wrong with one line of JSON, in the words of `check`: a missing `Name` or
/// `Vulnerability` names its side; other mistakes give their column in the line (serde_json
/// counts lines within the one line it was given, so its "line 1" would contradict ours).
fn json_error(text: &str, e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        for side in ["Old", "New"] {
            let Some(v) = value.get(side).filter(|v| v.is_object()) else {
                continue;
            };
            match v.get("Vulnerability") {
                None if field == "Vulnerability" => {
                    return format!("the {side} side needs a Vulnerability");
                }
                Some(vuln) if field == "Name" && vuln.get("Name").is_none() => {
                    return format!("the {side} vulnerability needs a Name");
                }
                _ => {}
            }
        }
    }
    if e.column() == 0 {
        message.to_string()
    } else {
        format!("{message} (column {})", e.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Vec<NewNotification>, CliError> {
        read_lines(&mut std::io::Cursor::new(bytes), "input")
    }

    fn notification() -> impl Strategy<Value = NewNotification> {
        let side = prop::option::of(
            (
                "[ -~]{1,20}",
                "[ -~]{0,10}",
                prop::collection::vec("[ -~]{0,30}", 0..5),
            )
                .prop_map(|(name, severity, layers)| {
                    clair_notifier::VulnerabilityWithLayers {
                        vulnerability: clair_notifier::Vulnerability {
                            name,
                            severity,
                            ..Default::default()
                        },
                        layers,
                    }
                }),
        );
        (side.clone(), side)
            .prop_map(|(old, new)| NewNotification { old, new })
            .prop_filter("a side and a name", |n| n.check().is_ok())
    }

    proptest! {
        #[test]
        fn any_input_is_notifications_or_a_usage_error_naming_a_line(
            bytes in prop::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Err(e) = parse(&bytes) {
                prop_assert_eq!(e.code, 2);
                prop_assert!(e.message.starts_with("line "), "{}", e.message);
                prop_assert!(e.message.ends_with("; nothing was added"), "{}", e.message);
            }
        }

        #[test]
        fn json_lines_of_notifications_parse_back_with_a_bad_line_named(
            batch in prop::collection::vec(notification(), 1..6),
            bad_at in any::<prop::sample::Index>(),
        ) {
            let mut text: Vec<String> =
                batch.iter().map(|n| serde_json::to_string(n).unwrap()).collect();
            prop_assert_eq!(parse(text.join("\n").as_bytes()).ok(), Some(batch.clone()));
            prop_assert_eq!(parse(text.join("\r\n\n").as_bytes()).ok(), Some(batch));
            let i = bad_at.index(text.len());
            text[i].pop();
            let e = parse(text.join("\n").as_bytes()).unwrap_err();
            prop_assert!(e.message.starts_with(&format!("line {}: ", i + 1)), "{}", e.message);
        }
    }

    #[test]
    fn a_line_over_the_limit_is_refused_before_the_rest_is_read() {
        let mut bytes = vec![b'{'; MAX_LINE_BYTES + 1];
        bytes.extend_from_slice(b"\n");
        let e = parse(&bytes).unwrap_err();
        assert!(
            e.message
                .starts_with("line 1: the line is longer than 16 MiB"),
            "{}",
            e.message
        );
        let mut ok =
            serde_json::to_vec(&serde_json::json!({"New":{"Vulnerability":{"Name":"x"}}})).unwrap();
        ok.resize(MAX_LINE_BYTES, b' ');
        assert_eq!(
            parse(&ok).unwrap().len(),
            1,
            "a line of exactly the limit is read"
        );
    }
}
