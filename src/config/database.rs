//! `[database]`: an SQLite file (`path`, the default) or a PostgreSQL server (`url`, with the
//! cargo feature `postgres`).

use std::fmt;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The SQLite file used when neither `path` nor `url` is set.
const DEFAULT_PATH: &str = "clair-notifier.db";

/// What a binary built without the feature says of a `url`.
pub const NO_POSTGRES: &str = "database.url names a PostgreSQL server, but this clair-notifier \
     was built without PostgreSQL: build it with `cargo install clair-notifier --features \
     postgres` (or `cargo build --release --features postgres`)";

/// `[database]`: where notifications are stored. Its `Debug` output shows no password.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields, try_from = "RawDatabaseConfig")]
pub struct DatabaseConfig {
    /// Path of the SQLite database file, created with its schema if missing.
    /// Defaults to `clair-notifier.db` (unused when `url` is set).
    pub path: String,
    /// `postgres://user@host:port/database`: the PostgreSQL datastore (cargo feature
    /// `postgres`); exclusive with `path`. Empty (the default): SQLite.
    pub url: String,
    /// A file holding the PostgreSQL password, when the URL has none (else `PGPASSWORD`).
    pub password_file: String,
    /// TLS to PostgreSQL: `disable`, `prefer` (the default), `require` or `verify-full`.
    pub sslmode: String,
    /// A PEM file of the CAs that sign the PostgreSQL server's certificate (else the
    /// built-in Mozilla roots).
    pub sslrootcert: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: DEFAULT_PATH.to_string(),
            url: String::new(),
            password_file: String::new(),
            sslmode: "prefer".to_string(),
            sslrootcert: String::new(),
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("path", &self.path)
            .field("url", &without_password(&self.url))
            .field("password_file", &self.password_file)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

/// `url` with the password of its user part, if any, replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains("password") {
            "<a URL that is not postgres://...>".to_string()
        } else {
            url.to_string()
        };
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let shown = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    // A password in the query string (`?password=...`) is hidden too.
    let tail = match tail.find("password=") {
        Some(at) => {
            let end = tail[at..].find('&').map_or(tail.len(), |e| at + e);
            format!("{}password=***{}", &tail[..at], &tail[end..])
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{shown}{tail}")
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawDatabaseConfig {
    path: Option<String>,
    url: String,
    password_file: String,
    sslmode: String,
    sslrootcert: String,
}

impl Default for RawDatabaseConfig {
    fn default() -> Self {
        let d = DatabaseConfig::default();
        RawDatabaseConfig {
            path: None,
            url: d.url,
            password_file: d.password_file,
            sslmode: d.sslmode,
            sslrootcert: d.sslrootcert,
        }
    }
}

impl TryFrom<RawDatabaseConfig> for DatabaseConfig {
    type Error = String;

    fn try_from(raw: RawDatabaseConfig) -> std::result::Result<Self, String> {
        if raw.path.is_some() && !raw.url.is_empty() {
            return Err(
                "set path (SQLite) or url (PostgreSQL), not both: database.path and \
                        database.url are exclusive"
                    .to_string(),
            );
        }
        Ok(DatabaseConfig {
            path: raw.path.unwrap_or_else(|| DEFAULT_PATH.to_string()),
            url: raw.url,
            password_file: raw.password_file,
            sslmode: raw.sslmode,
            sslrootcert: raw.sslrootcert,
        })
    }
}

impl DatabaseConfig {
    /// Whether this names a PostgreSQL server (`url` is set).
    pub fn is_postgres(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Where notifications are stored, as logs and `check-config` show it (never a password).
    pub fn shown(&self) -> String {
        if self.is_postgres() {
            format!("PostgreSQL {}", without_password(&self.url))
        } else {
            self.path.clone()
        }
    }

    /// Checks the PostgreSQL keys without connecting.
    ///
    /// # Errors
    ///
    /// A configuration error naming the key at fault; without the cargo feature `postgres`,
    /// any `url` ([`NO_POSTGRES`]).
    pub fn validate_postgres(&self) -> Result<()> {
        #[cfg(not(feature = "postgres"))]
        {
            Err(Error::config(NO_POSTGRES))
        }
        #[cfg(feature = "postgres")]
        {
            let options = self.postgres_options()?;
            crate::store::PostgresStore::check_options(&options)
        }
    }

    /// The options [`PostgresStore::open`](crate::PostgresStore::open) takes, the password
    /// read from `password_file` if it is set.
    ///
    /// # Errors
    ///
    /// A configuration error naming `database.sslmode` or `database.password_file`.
    #[cfg(feature = "postgres")]
    pub fn postgres_options(&self) -> Result<crate::store::PostgresOptions> {
        use crate::store::SslMode;
        let sslmode = SslMode::parse(self.sslmode.trim()).ok_or_else(|| {
            Error::config(format!(
                "database.sslmode \"{}\" is not one of disable, prefer, require, verify-full",
                self.sslmode
            ))
        })?;
        let password = match self.password_file.trim() {
            "" => None,
            file => Some(std::fs::read_to_string(file).map_err(|e| {
                Error::config(format!(
                    "database.password_file \"{file}\" cannot be read ({e})"
                ))
            })?),
        };
        Ok(crate::store::PostgresOptions {
            url: self.url.trim().to_string(),
            password,
            sslmode,
            sslrootcert: match self.sslrootcert.trim() {
                "" => None,
                f => Some(f.into()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_the_url_shows() {
        let mut c = DatabaseConfig {
            url: "postgres://alice:s3cret@db:5432/q?sslmode=disable&password=s3cret2".into(),
            ..DatabaseConfig::default()
        };
        for shown in [format!("{c:?}"), c.shown()] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("alice:***@db:5432/q"), "{shown}");
        }
        c.url = "host=db password=s3cret".into();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            without_password("postgres://bob@db/q"),
            "postgres://bob@db/q"
        );
    }

    #[test]
    fn path_and_url_are_exclusive() {
        let raw = RawDatabaseConfig {
            path: Some("n.db".into()),
            url: "postgres://a@b/c".into(),
            ..RawDatabaseConfig::default()
        };
        let e = DatabaseConfig::try_from(raw).err().unwrap();
        assert!(
            e.contains("database.path") && e.contains("database.url"),
            "{e}"
        );
        let only_url = RawDatabaseConfig {
            url: "postgres://a@b/c".into(),
            ..RawDatabaseConfig::default()
        };
        assert!(DatabaseConfig::try_from(only_url).unwrap().is_postgres());
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_build_without_postgres_refuses_a_url_saying_how_to_build() {
        let c = DatabaseConfig {
            url: "postgres://a@b/c".into(),
            ..DatabaseConfig::default()
        };
        let e = c.validate_postgres().unwrap_err().to_string();
        assert!(e.contains("--features postgres"), "{e}");
    }
}
