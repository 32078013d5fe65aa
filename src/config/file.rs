//! Reading a configuration file (TOML; cargo feature `config-file`, part of `cli`).

use std::path::Path;

use super::Config;
use crate::error::{Error, ErrorKind, Result};

impl Config {
    /// Reads the TOML configuration file at `path` (see [`Config::from_toml`]).
    ///
    /// # Errors
    ///
    /// A configuration error naming the file and why it could not be read or used.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!("could not read the configuration file {}", path.display()),
                e,
            )
        })?;
        Config::from_toml(&text).map_err(|e| Error::config(format!("{}: {}", path.display(), e)))
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
    /// assert_eq!(err.to_string(), "line 2: unknown key `api.paginationKey` (expected addr, pagination_key or token)");
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

/// One sentence from a toml error: its line, the key path, the message without toml's
/// multi-line excerpt.
fn one_line(text: &str, e: &toml::de::Error, path: &str) -> Error {
    let line = e.span().map(|s| {
        // Bytes, not a str slice: a span inside a character must not panic.
        let before = &text.as_bytes()[..s.start.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    });
    let message = e.message().trim().replace('\n', " ");
    let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
    // serde says "unknown field `x`, expected one of `a`, `b`": say it with the whole key.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
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
    }
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
            "line 2: notifier.http.timeout: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            err("[database]\npath = \"x\"\nfile = \"y\"\n"),
            "line 3: unknown key `database.file` (expected path)"
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
    fn an_empty_file_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.api.addr, "127.0.0.1:6060");
        assert_eq!(c.notifier.attempts, 5);
    }
}
