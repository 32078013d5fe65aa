//! Everything a service and its read API would refuse in a configuration, checked without
//! starting anything (what `clair-notifier check-config` runs).

use std::path::Path;

use super::Config;
use crate::error::{Error, Result};
use crate::notifier::Registry;
use crate::webhook::Webhook;

impl Config {
    /// Checks the whole configuration as starting would, without starting anything: a
    /// `database.path` that can be created (not empty, in a directory that exists), the
    /// `[notifier]` limits ([`NotifierConfig::validate`](super::NotifierConfig::validate)),
    /// the webhook (URLs, files, certificates, headers, signing secret), on Unix the `exec`
    /// and `jsonl` tables (the program, the file's directory), `[api]` (with the
    /// cargo feature `api`: the address, the pagination key, the token), and that every
    /// `[notifier.<name>]` table names a notifier of `registry`.
    ///
    /// The database itself is not opened: [`SqliteStore::check`](crate::SqliteStore::check)
    /// checks it without writing to it.
    ///
    /// # Errors
    ///
    /// A configuration error whose sentence starts with the key at fault (`notifier.lease`,
    /// `[notifier.slack]`, ...).
    ///
    /// # Example
    ///
    /// ```
    /// use clair_notifier::{Config, Registry};
    ///
    /// let mut config = Config::default();
    /// config.validate(&Registry::with_builtins())?;
    /// config.notifier.http.endpoint = "ftp://receiver.example/".into();
    /// let err = config.validate(&Registry::with_builtins()).unwrap_err();
    /// assert!(err.to_string().starts_with("notifier.http.endpoint"));
    /// # Ok::<(), clair_notifier::Error>(())
    /// ```
    pub fn validate(&self, registry: &Registry) -> Result<()> {
        let db = &self.database.path;
        if self.database.is_postgres() {
            self.database.validate_postgres()?;
        } else if db.trim().is_empty() {
            return Err(Error::config("database.path must not be empty"));
        }
        let parent = Path::new(db).parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|dir| !dir.is_dir() && !self.database.is_postgres()) {
            return Err(Error::config(format!(
                "database.path: the directory {} does not exist",
                dir.display()
            )));
        }
        self.notifier.validate()?;
        #[cfg(feature = "api")]
        crate::api::validate_config(&self.api)?;
        Webhook::from_config(&self.notifier.http)?;
        #[cfg(unix)]
        {
            crate::exec::Exec::check(&self.notifier)?;
            crate::jsonl::Jsonl::check(&self.notifier)?;
        }
        let known = registry.names();
        for name in self.notifier.params.keys() {
            if name == "webhook" {
                return Err(Error::config(
                    "[notifier.webhook]: the webhook notifier is configured in [notifier.http]",
                ));
            }
            if !known.contains(name) {
                return Err(Error::config(format!(
                    "[notifier.{name}]: no notifier named \"{name}\" is built into this program \
                     (the webhook is configured in [notifier.http])"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(config: &Config) -> String {
        config
            .validate(&Registry::with_builtins())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_section_is_checked_and_named() {
        let mut c = Config::default();
        c.validate(&Registry::with_builtins()).unwrap();
        c.database.path = " ".into();
        assert_eq!(err(&c), "database.path must not be empty");
        c.database.path = "no/such/dir/n.db".into();
        assert_eq!(
            err(&c),
            "database.path: the directory no/such/dir does not exist"
        );
        c.database.path = "n.db".into();
        c.notifier.workers = 0;
        assert!(err(&c).starts_with("notifier.workers"), "{}", err(&c));
        c.notifier.workers = 4;
        c.notifier.http.endpoint = "ftp://x/".into();
        assert!(err(&c).starts_with("notifier.http.endpoint"), "{}", err(&c));
        c.notifier.http.endpoint = String::new();
        c.notifier
            .params
            .insert("slack".into(), serde_json::json!({}));
        assert!(err(&c).starts_with("[notifier.slack]: no notifier named"));
        let mut registry = Registry::with_builtins();
        registry.register("slack", crate::webhook::Webhook::default());
        c.validate(&registry).unwrap();
    }
}
