//! `add`: notifications from JSON lines, inserted in one transaction.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use clair_notifier::{Datastore, NewNotification, Registry, Timestamp};

use crate::CliError;
use crate::args::Global;
use crate::open::{load_validated, open_store};

/// The longest line `add` reads: one notification's JSON (room for about 200 000 layer
/// names). Input is read a line at a time, so a longer line is refused after reading this
/// much of it, without holding the rest in memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

pub fn add(global: &Global, file: Option<&Path>) -> Result<(), CliError> {
    let (config, _) = load_validated(global, &Registry::take_global())?;
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
        return Ok(());
    }
    let store = open_store(&config.database.path)?;
    let names = store.insert(&batch, Timestamp::now())?;
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
        let n: NewNotification = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        n.check().map_err(|e| bad(e.to_string()))?;
        batch.push(n);
    }
    Ok(batch)
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
