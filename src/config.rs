//! Configuration: plain data with the documented defaults, and validation that names the key.
//!
//! Every field is optional in a configuration file; [`Config::default`] gives the defaults
//! listed in the README. Durations are written `250ms`, `5s`, `15m`, `2h` or `1d`
//! (see [`parse_duration`]). Unknown keys are rejected, so a misspelt key is an error, not a
//! silently ignored setting.
//!
//! This module holds the shapes; with the cargo feature `config-file` (part of the default
//! `cli`), `Config::load` and `Config::from_toml` read a TOML file with errors that name the
//! key and line. Library users may also build a [`Config`] in code or deserialize it from any
//! serde format.

mod breaker;
mod database;
mod duration;
#[cfg(feature = "config-file")]
mod file;
mod retention;
mod validate;

pub use breaker::BreakerConfig;
pub use database::{DatabaseConfig, NO_POSTGRES};
use duration::de_duration;
pub use duration::{format_duration, parse_duration};
pub use retention::RetentionConfig;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration: `[database]`, `[notifier]` (with `[notifier.http]` and custom
/// notifiers' sub-tables) and `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[notifier]`.
    pub notifier: NotifierConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[retention]`.
    pub retention: RetentionConfig,
}

/// `[notifier]`: how and how often notifications are delivered.
#[derive(Clone, Deserialize)]
#[serde(default, try_from = "RawNotifierConfig")]
pub struct NotifierConfig {
    /// Tries per notifier per delivery round. Defaults to `5`.
    pub attempts: u32,
    /// How long after a delivery (or a failed round) an unread notification is sent again.
    /// Defaults to `2h`.
    pub renotify_interval: Duration,
    /// The longest wait between two tries of one round. Defaults to `15m`.
    pub max_backoff: Duration,
    /// Number of worker threads sending notifications. Defaults to `4`.
    pub workers: usize,
    /// How soon rows written by another process are noticed. Defaults to `1s`.
    pub poll_interval: Duration,
    /// How long a claimed notification stays leased to this instance without renewal.
    /// Defaults to `10m`.
    pub lease: Duration,
    /// `breaker_failures` and `breaker_probe`: each notifier's circuit breaker.
    pub breaker: BreakerConfig,
    /// `[notifier.http]`: the webhook notifier.
    pub http: HttpConfig,
    /// The sub-tables of `[notifier]` other than `http`, by name: each custom notifier reads
    /// its own (as Clair's `Params` did). Empty by default.
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            attempts: 5,
            renotify_interval: Duration::from_secs(2 * 3600),
            max_backoff: Duration::from_secs(15 * 60),
            workers: 4,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(10 * 60),
            breaker: BreakerConfig::default(),
            http: HttpConfig::default(),
            params: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawNotifierConfig {
    attempts: u32,
    #[serde(deserialize_with = "de_duration")]
    renotify_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    max_backoff: Duration,
    workers: usize,
    #[serde(deserialize_with = "de_duration")]
    poll_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    lease: Duration,
    breaker_failures: u32,
    #[serde(deserialize_with = "de_duration")]
    breaker_probe: Duration,
    http: HttpConfig,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

impl Default for RawNotifierConfig {
    fn default() -> Self {
        let d = NotifierConfig::default();
        RawNotifierConfig {
            attempts: d.attempts,
            renotify_interval: d.renotify_interval,
            max_backoff: d.max_backoff,
            workers: d.workers,
            poll_interval: d.poll_interval,
            lease: d.lease,
            breaker_failures: d.breaker.failures,
            breaker_probe: d.breaker.probe,
            http: d.http,
            rest: BTreeMap::new(),
        }
    }
}

impl TryFrom<RawNotifierConfig> for NotifierConfig {
    type Error = String;

    fn try_from(raw: RawNotifierConfig) -> std::result::Result<Self, String> {
        for (key, value) in &raw.rest {
            if !value.is_object() {
                return Err(format!(
                    "unknown key `notifier.{key}` (expected attempts, renotify_interval, \
                     max_backoff, workers, poll_interval, lease, breaker_failures, breaker_probe, \
                     http or a [notifier.<name>] table)"
                ));
            }
        }
        Ok(NotifierConfig {
            attempts: raw.attempts,
            renotify_interval: raw.renotify_interval,
            max_backoff: raw.max_backoff,
            workers: raw.workers,
            poll_interval: raw.poll_interval,
            lease: raw.lease,
            breaker: BreakerConfig {
                failures: raw.breaker_failures,
                probe: raw.breaker_probe,
            },
            http: raw.http,
            params: raw.rest,
        })
    }
}

/// `[notifier.http]`: the webhook notifier, enabled when `endpoint` is set.
///
/// `Debug` shows header names but never their values, nor the signing secret.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL each notification's name is POSTed to. Empty (the default) disables the webhook.
    pub endpoint: String,
    /// Limit on one POST: connecting, sending and receiving the answer. Defaults to `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Name to verify on the server's TLS certificate, if not the endpoint's host. Empty by
    /// default.
    pub servername: String,
    /// PEM bundle of CAs to trust instead of the built-in roots. Empty by default.
    pub cafile: String,
    /// PEM client certificate chain for mutual TLS (with `keyfile`). Empty by default.
    pub certfile: String,
    /// PEM private key of the client certificate. Empty by default.
    pub keyfile: String,
    /// Proxy URL, e.g. `http://127.0.0.1:3128`. Empty (the default) means a direct connection:
    /// the environment's proxy variables are never used.
    pub proxy: String,
    /// Extra request headers. Empty by default.
    pub headers: BTreeMap<String, String>,
    /// `whsec_<base64>`: sign each POST per the Standard Webhooks spec. Empty by default.
    pub signing_secret: String,
    /// Permit connections to link-local and cloud metadata addresses. `false` by default.
    pub allow_link_local: bool,
    /// Also refuse connections to loopback and private addresses. `false` by default.
    pub deny_private: bool,
    /// Sends per second to the endpoint, from one running service (several instances each
    /// get this rate). 0 (the default): unlimited.
    pub max_rate: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: String::new(),
            timeout: Duration::from_secs(5),
            servername: String::new(),
            cafile: String::new(),
            certfile: String::new(),
            keyfile: String::new(),
            proxy: String::new(),
            headers: BTreeMap::new(),
            signing_secret: String::new(),
            allow_link_local: false,
            deny_private: false,
            max_rate: 0,
        }
    }
}

/// `[api]`: the read API.
///
/// `Debug` never shows the pagination key or the token.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the read API listens on. Defaults to `127.0.0.1:6060`; empty turns it off.
    pub addr: String,
    /// 32 bytes in URL-safe base64 that key the page tokens, so they stay valid across
    /// restarts and instances. Empty (the default): generated and kept in the database.
    pub pagination_key: String,
    /// When set, GET and DELETE need `Authorization: Bearer <token>`. Empty by default.
    pub token: String,
    /// With `keyfile`, the PEM certificate chain the read API is served with over TLS.
    pub certfile: String,
    /// With `certfile`, its PEM private key.
    pub keyfile: String,
    /// A PEM bundle of CAs: with TLS on, every client must present a certificate that chains
    /// to one of them.
    pub cafile: String,
    /// A second, plain-HTTP listener for `/health` and `/metrics` only. Empty: none.
    pub health_addr: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            addr: "127.0.0.1:6060".to_string(),
            pagination_key: String::new(),
            token: String::new(),
            certfile: String::new(),
            keyfile: String::new(),
            cafile: String::new(),
            health_addr: String::new(),
        }
    }
}

/// `Debug` for a configuration struct: each field as it is, or through a function that hides
/// what must not be shown (secrets, and custom notifiers' tables, which may hold some).
macro_rules! debug_config {
    ($ty:ident { $($field:ident $(=> $show:path)?),* $(,)? }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &debug_config!(@show self.$field $(, $show)?)))*
                    .finish()
            }
        }
    };
    (@show $value:expr) => { &$value };
    (@show $value:expr, $show:path) => { $show(&$value) };
}

debug_config!(NotifierConfig {
    attempts, renotify_interval, max_backoff, workers, poll_interval, lease, breaker, http,
    params => names,
});
debug_config!(HttpConfig {
    endpoint, timeout, servername, cafile, certfile, keyfile,
    proxy => crate::text::redact_url, headers => names, signing_secret => redacted,
    allow_link_local, deny_private, max_rate,
});
debug_config!(ApiConfig {
    addr, pagination_key => redacted, token => redacted, certfile, keyfile, cafile, health_addr,
});

fn names<V>(map: &BTreeMap<String, V>) -> Vec<&String> {
    map.keys().collect()
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl NotifierConfig {
    /// Checks the values that have limits: `attempts` and `workers` at least 1, intervals
    /// not zero.
    ///
    /// # Errors
    ///
    /// An error of kind [`Config`](crate::ErrorKind::Config) naming the first key at fault.
    pub fn validate(&self) -> Result<()> {
        if self.attempts == 0 {
            return Err(Error::config("notifier.attempts must be at least 1, got 0"));
        }
        if self.workers == 0 || self.workers > 1024 {
            return Err(Error::config(format!(
                "notifier.workers must be between 1 and 1024, got {}",
                self.workers
            )));
        }
        for (key, value) in [
            ("notifier.renotify_interval", self.renotify_interval),
            ("notifier.max_backoff", self.max_backoff),
            ("notifier.poll_interval", self.poll_interval),
            ("notifier.lease", self.lease),
            ("notifier.http.timeout", self.http.timeout),
        ] {
            if value.is_zero() {
                return Err(Error::config(format!("{key} must be longer than 0")));
            }
        }
        self.breaker.validate()?;
        if self.lease < self.http.timeout.saturating_mul(2) {
            return Err(Error::config(format!(
                "notifier.lease ({}) must be at least twice notifier.http.timeout ({}), so a \
                 send in flight keeps its lease",
                format_duration(self.lease),
                format_duration(self.http.timeout)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.database.path, "clair-notifier.db");
        assert_eq!(c.notifier.attempts, 5);
        assert_eq!(c.notifier.renotify_interval, Duration::from_secs(7200));
        assert_eq!(c.notifier.max_backoff, Duration::from_secs(900));
        assert_eq!(c.notifier.workers, 4);
        assert_eq!(c.notifier.poll_interval, Duration::from_secs(1));
        assert_eq!(c.notifier.lease, Duration::from_secs(600));
        assert_eq!(c.notifier.http.timeout, Duration::from_secs(5));
        assert_eq!(c.api.addr, "127.0.0.1:6060");
        c.notifier.validate().unwrap();
    }

    #[test]
    fn custom_tables_are_params_and_stray_keys_are_rejected() {
        let c: Config = serde_json::from_str(
            r#"{"notifier":{"workers":8,"renotify_interval":"1m","mine":{"x":1},"http":{"endpoint":"http://127.0.0.1:1/"}}}"#,
        )
        .unwrap();
        assert_eq!(c.notifier.workers, 8);
        assert_eq!(c.notifier.renotify_interval, Duration::from_secs(60));
        assert_eq!(c.notifier.params["mine"]["x"], 1);
        let err = serde_json::from_str::<Config>(r#"{"notifier":{"renotifyInterval":"1m"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("notifier.renotifyInterval"), "{err}");
        let err = serde_json::from_str::<Config>(r#"{"api":{"paginationKey":"x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("paginationKey"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut n = NotifierConfig {
            attempts: 0,
            ..NotifierConfig::default()
        };
        assert!(
            n.validate()
                .unwrap_err()
                .to_string()
                .contains("notifier.attempts")
        );
        n.attempts = 1;
        n.poll_interval = Duration::ZERO;
        assert!(
            n.validate()
                .unwrap_err()
                .to_string()
                .contains("notifier.poll_interval")
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut c = Config::default();
        c.notifier.http.signing_secret = "whsec_c2VjcmV0c2VjcmV0".into();
        c.notifier
            .http
            .headers
            .insert("X-Api-Key".into(), "hunter2".into());
        c.notifier.http.proxy = "http://user:pw-secret@127.0.0.1:3128".into();
        c.notifier
            .params
            .insert("mine".into(), serde_json::json!({"password": "pw2"}));
        c.api.token = "tok-secret".into();
        c.api.pagination_key = "key-secret".into();
        let text = format!("{c:?}");
        for secret in [
            "c2VjcmV0",
            "hunter2",
            "pw-secret",
            "pw2",
            "tok-secret",
            "key-secret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("X-Api-Key"));
    }
}
