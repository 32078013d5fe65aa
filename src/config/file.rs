//! Reading a configuration file (TOML; cargo feature `config-file`, part of `cli`).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::notifier::Registry;

impl Config {
    /// Reads the TOML configuration file at `path` (see [`Config::from_toml`]).
    ///
    /// # Errors
    ///
    /// A configuration error naming the file and why it could not be read or used.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = read(path)?;
        Config::from_toml(&text).map_err(|e| e.prefixed(&format!("{}: ", path.display())))
    }

    /// Reads the file at `path` as [`Config::load`] does, then checks it as
    /// [`Config::validate`] does. A mistake the check finds names the file and, where the key
    /// at fault (or, for two keys, either of them) is written in the file, its line.
    ///
    /// # Errors
    ///
    /// A configuration error: `<file>: line N: <key> …`.
    pub fn load_validated(path: impl AsRef<Path>, registry: &Registry) -> Result<Config> {
        let path = path.as_ref();
        let text = read(path)?;
        let at_file = |e: Error| e.prefixed(&format!("{}: ", path.display()));
        let config = Config::from_toml(&text).map_err(at_file)?;
        config.validate(registry).map_err(|e| {
            let line = key_line(&text, &e.to_string());
            at_file(e.prefixed(&line.map(|l| format!("line {l}: ")).unwrap_or_default()))
        })?;
        Ok(config)
    }

    /// Parses a configuration written in TOML. Every key is optional; an unknown key, a value
    /// of the wrong type or a bad duration is an error that names the key and its line.
    ///
    /// # Errors
    ///
    /// A configuration error of one line: `line N: <key>: <what is wrong>`.
    ///
    /// # Example
    ///
    /// ```
    /// use clair_notifier::Config;
    ///
    /// let c = Config::from_toml("[notifier]\nrenotify_interval = \"30m\"\n[notifier.mine]\nurl = \"x\"\n")?;
    /// assert_eq!(c.notifier.renotify_interval.as_secs(), 1800);
    /// assert_eq!(c.notifier.params["mine"]["url"], "x");
    ///
    /// let err = Config::from_toml("[api]\npaginationKey = \"k\"\n").unwrap_err();
    /// assert_eq!(err.to_string(), "line 2: unknown key `api.paginationKey` (expected addr, pagination_key, token, certfile, keyfile, cafile or health_addr)");
    /// # Ok::<(), clair_notifier::Error>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Config> {
        let de = toml::Deserializer::parse(text).map_err(|e| one_line(text, &e, ""))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            one_line(text, e.inner(), if path == "." { "" } else { &path })
        })
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("could not read the configuration file {}", path.display()),
            e,
        )
    })
}

/// The line of the first key named in `message` (`notifier.lease`, `[notifier.slack]`) that is
/// written in `text`.
fn key_line(text: &str, message: &str) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| {
            ["database.", "notifier.", "api."]
                .iter()
                .any(|p| word.starts_with(p))
        })
        .find_map(|key| key_start(table.get_ref(), key))
        .map(|start| line_at(text, start))
}

/// Where the dotted `key` is written in `table`, as a byte offset.
fn key_start(table: &DeTable<'_>, key: &str) -> Option<usize> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == first)?;
    match (rest, v.get_ref()) {
        (None, _) => Some(k.span().start),
        (Some(rest), DeValue::Table(inner)) => key_start(inner, rest),
        _ => None,
    }
}

/// The line (from 1) holding byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    // Bytes, not a str slice: an offset inside a character must not panic.
    let before = &text.as_bytes()[..offset.min(text.len())];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// serde's `invalid type: string "five", expected u32` in the words of the other errors:
/// `expected a whole number, found the string "five"`.
fn plain_type_error(message: &str, path: &str) -> Option<String> {
    let (rest, invalid_value) = match message.strip_prefix("invalid type: ") {
        Some(rest) => (rest, false),
        None => (message.strip_prefix("invalid value: ")?, true),
    };
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let key = path.rsplit('.').next().unwrap_or(path);
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" if invalid_value => "a whole number of 0 or more",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i64" => "a whole number",
        "a string" if DURATION_KEYS.contains(&key) => "a duration in quotes, like \"5s\"",
        "a map" | "map" => "a table",
        "a sequence" => "a list",
        "a boolean" => "true or false",
        e if e.starts_with("struct ") => "a table",
        e => e,
    };
    let unquoted = |s: &str| s.trim_matches('`').to_string();
    let found = if let Some(s) = found.strip_prefix("string ") {
        format!("the string {s}")
    } else if let Some(n) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
    {
        format!("the number {}", unquoted(n))
    } else if let Some(b) = found.strip_prefix("boolean ") {
        unquoted(b)
    } else {
        match found {
            "sequence" => "a list".to_string(),
            "map" => "a table".to_string(),
            other => other.to_string(),
        }
    };
    Some(format!("expected {expected}, found {found}"))
}

/// The keys whose values are durations written as strings.
const DURATION_KEYS: &[&str] = &[
    "renotify_interval",
    "max_backoff",
    "poll_interval",
    "lease",
    "timeout",
];

/// One sentence from a toml error: its line, the key path, the message without toml's
/// multi-line excerpt.
fn one_line(text: &str, e: &toml::de::Error, path: &str) -> Error {
    let message = e.message().trim().replace('\n', " ");
    // An unknown key found after parsing (inside [notifier], whose sub-tables are custom
    // notifiers') is reported at its table: find the key's own line.
    let own_line = message
        .strip_prefix("unknown key `")
        .and_then(|rest| rest.split_once('`'))
        .and_then(|(key, _)| key_line(text, key));
    let line = own_line.or_else(|| e.span().map(|s| line_at(text, s.start)));
    let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
    // serde says "unknown field `x`, expected one of `a`, `b`": say it with the whole key.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        // serde_path_to_error's path already ends with the unknown field.
        let key = if path.is_empty() {
            field.to_string()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path.to_string()
        } else {
            format!("{path}.{field}")
        };
        let expected = expected
            .trim_start_matches(", expected ")
            .trim_start_matches("one of ")
            .replace('`', "");
        let expected = match expected.rsplit_once(", ") {
            Some((a, b)) => format!("{a} or {b}"),
            None => expected,
        };
        return Error::config(format!("{at}unknown key `{key}` (expected {expected})"));
    }
    let message = plain_type_error(&message, path).unwrap_or(message);
    if path.is_empty() || message.contains(&format!("`{path}")) {
        Error::config(format!("{at}{message}"))
    } else {
        Error::config(format!("{at}{path}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn every_mistake_names_its_key_and_line() {
        assert_eq!(
            err("[notifier]\nattempts = 3\nrenotify_interval = \"5x\"\n"),
            "line 3: notifier.renotify_interval: invalid duration \"5x\": write a whole number and a unit, like 250ms, 5s, 15m, 2h or 1d"
        );
        assert_eq!(
            err("[notifier.http]\ntimeout = 5\n"),
            "line 2: notifier.http.timeout: expected a duration in quotes, like \"5s\", found the number 5"
        );
        assert_eq!(
            err("[database]\npath = \"x\"\nfile = \"y\"\n"),
            "line 3: unknown key `database.file` (expected path, url, password_file, sslmode or sslrootcert)"
        );
        assert_eq!(
            err("[databse]\n"),
            "line 1: unknown key `databse` (expected database, notifier, api or retention)"
        );
        let e = err("[notifier]\nrenotifyInterval = \"1m\"\n");
        assert!(e.contains("notifier.renotifyInterval"), "{e}");
        let e = err("[api\naddr = 1");
        assert!(e.starts_with("line 1: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn an_unknown_key_inside_notifier_is_named_at_its_own_line() {
        assert_eq!(
            err("# c\n\n[notifier]\nattempts = 3\n\nrenotifyInterval = \"2h\"\n"),
            "line 6: unknown key `notifier.renotifyInterval` (expected attempts, \
             renotify_interval, max_backoff, workers, poll_interval, lease, breaker_failures, \
             breaker_probe, http or a [notifier.<name>] table)"
        );
    }

    #[test]
    fn a_mistake_found_by_validation_names_the_file_and_line_of_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, text).unwrap();
            Config::load_validated(&path, &Registry::with_builtins())
                .unwrap_err()
                .to_string()
                .replace(&path.display().to_string(), "c.toml")
        };
        assert_eq!(
            load("[notifier]\nattempts = 2\nworkers = 0\n"),
            "c.toml: line 3: notifier.workers must be between 1 and 1024, got 0"
        );
        // Two keys: the line of the first one written in the file.
        assert_eq!(
            load("[notifier.http]\ntimeout = \"10m\"\n"),
            "c.toml: line 2: notifier.lease (10m) must be at least twice \
             notifier.http.timeout (10m), so a send in flight keeps its lease"
        );
        assert_eq!(
            load("[api]\n\n[notifier.slack]\nurl = \"x\"\n"),
            "c.toml: line 3: [notifier.slack]: no notifier named \"slack\" is built into \
             this program (the webhook is configured in [notifier.http])"
        );
        // A path shown in full, the file still named first.
        let path = dir.path().join("d.toml");
        std::fs::write(&path, "[database]\npath = \"no/such/dir/x.db\"\n").unwrap();
        let e = Config::load_validated(&path, &Registry::with_builtins()).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "d.toml: line 2: database.path: the directory no/such/dir does not exist"
            )
        );
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.api.addr, "127.0.0.1:6060");
        assert_eq!(c.notifier.attempts, 5);
    }
}

/// The README's configuration reference is a file the program reads, and it says the
/// defaults: loaded, it validates and describes the same configuration as no file at all.
#[cfg(test)]
mod readme {
    use super::*;

    #[test]
    fn the_readme_reference_block_is_the_defaults() {
        let readme = include_str!("../../README.md");
        let from = readme.find("## Configuration reference").unwrap();
        let block = &readme[from..];
        let start = block.find("```toml\n").unwrap() + "```toml\n".len();
        let text = &block[start..start + block[start..].find("```").unwrap()];
        let mut config = Config::from_toml(text).unwrap();
        config.validate(&Registry::with_builtins()).unwrap();
        // The exec and jsonl tables are written out, empty (their notifiers off).
        let tables: Vec<&String> = config.notifier.params.keys().collect();
        assert_eq!(tables, ["exec", "jsonl"]);
        config.notifier.params.clear();
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::default()));
    }
}
