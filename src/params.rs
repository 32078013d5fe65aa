//! Reading a built-in notifier's own table, `[notifier.<name>]` (`exec`, `jsonl`): each key
//! checked, each mistake one sentence naming the key.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{NotifierConfig, parse_duration};
use crate::error::{Error, Result};

/// The table `[notifier.<name>]`, whose keys are all among `keys`.
pub(crate) struct Table<'a> {
    name: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Table<'a> {
    /// The table of `name` in `config`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// A configuration error when it is not a table or holds a key not in `keys`.
    pub(crate) fn of(
        config: &'a NotifierConfig,
        name: &'static str,
        keys: &[&str],
    ) -> Result<Option<Table<'a>>> {
        let Some(value) = config.params.get(name) else {
            return Ok(None);
        };
        let Value::Object(map) = value else {
            return Err(Error::config(format!(
                "notifier.{name} must be a table ([notifier.{name}])"
            )));
        };
        if let Some(stray) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(Error::config(format!(
                "unknown key `notifier.{name}.{stray}` (expected {})",
                keys.join(" or ")
            )));
        }
        Ok(Some(Table { name, map }))
    }

    fn wrong(&self, key: &str, expected: &str) -> Error {
        Error::config(format!("notifier.{}.{key} must be {expected}", self.name))
    }

    /// The string at `key`, or `""` when it is absent.
    pub(crate) fn string(&self, key: &str) -> Result<&'a str> {
        match self.map.get(key) {
            None => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// The list of strings at `key`, or an empty list when it is absent.
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>> {
        let expected = "a list of strings, like [\"/path/prog\", \"arg\"]";
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.wrong(key, expected)),
            Some(_) => Err(self.wrong(key, expected)),
        }
    }

    /// The duration at `key` (more than zero), or `default` when it is absent.
    pub(crate) fn duration(&self, key: &str, default: Duration) -> Result<Duration> {
        let text = match self.map.get(key) {
            None => return Ok(default),
            Some(Value::String(s)) => s,
            Some(_) => return Err(self.wrong(key, "a duration such as \"30s\"")),
        };
        let d = parse_duration(text)
            .map_err(|why| Error::config(format!("notifier.{}.{key}: {why}", self.name)))?;
        if d.is_zero() {
            return Err(self.wrong(key, "more than 0"));
        }
        Ok(d)
    }
}

/// A configuration whose only notifier table is `[notifier.<name>]` = `table`.
#[cfg(test)]
pub(crate) fn with_table(name: &str, table: Value) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.params.insert(name.into(), table);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: Value) -> NotifierConfig {
        with_table("exec", table)
    }

    #[test]
    fn values_are_read_and_mistakes_name_the_key() {
        let c = config(serde_json::json!({"command": ["a", "b"], "timeout": "2s"}));
        let t = Table::of(&c, "exec", &["command", "timeout"])
            .unwrap()
            .unwrap();
        assert_eq!(t.strings("command").unwrap(), ["a", "b"]);
        assert_eq!(
            t.duration("timeout", Duration::ZERO).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(t.string("path").unwrap(), "");
        assert!(
            Table::of(&NotifierConfig::default(), "exec", &[])
                .unwrap()
                .is_none()
        );

        let err = |v: Value| {
            let c = config(v);
            let t = Table::of(&c, "exec", &["command", "timeout"]);
            let e = match t {
                Err(e) => e,
                Ok(t) => {
                    let t = t.unwrap();
                    match (t.strings("command"), t.duration("timeout", Duration::ZERO)) {
                        (Err(e), _) | (_, Err(e)) => e,
                        _ => panic!("accepted"),
                    }
                }
            };
            e.to_string()
        };
        assert_eq!(
            err(serde_json::json!({"comand": []})),
            "unknown key `notifier.exec.comand` (expected command or timeout)"
        );
        assert!(err(serde_json::json!({"command": "prog"})).starts_with("notifier.exec.command"));
        assert!(err(serde_json::json!({"command": [1]})).starts_with("notifier.exec.command"));
        assert!(err(serde_json::json!({"timeout": 5})).starts_with("notifier.exec.timeout"));
        assert!(err(serde_json::json!({"timeout": "5 s"})).starts_with("notifier.exec.timeout"));
        assert!(err(serde_json::json!({"timeout": "0s"})).starts_with("notifier.exec.timeout"));
        assert!(err(serde_json::json!(3)).starts_with("notifier.exec must be a table"));
    }
}
