//! The webhook notifier: POSTs `{"Notification":{"Name":"<name>"}}` to an endpoint.
//!
//! One [`ureq::Agent`] serves every worker thread (it is a shared connection pool). Everything
//! is set explicitly rather than left to ureq's defaults:
//!
//! - the timeout (`[notifier.http] timeout`, default `5s`) bounds connecting and, separately,
//!   the whole exchange from name lookup to the end of the response body (socket timeouts in
//!   steps of a hundredth of it, see `transport`);
//! - redirects are never followed: a 3xx, like any status outside 2xx, is a failed attempt;
//! - at most [`MAX_RESPONSE_BODY`] bytes of an answer are read, so the connection goes back to
//!   the pool; a longer answer is dropped with its connection;
//! - the proxy is the configured one or none: the environment's `HTTP_PROXY`, `HTTPS_PROXY`,
//!   `ALL_PROXY` (any case) never apply;
//! - TLS trusts the CAs of `cafile` (else the built-in Mozilla roots), verifies the server's
//!   certificate always, presents `certfile` + `keyfile` when set, and verifies `servername`
//!   when set (see the `tls` submodule for how);
//! - `headers` are added to each POST, and with `signing_secret` each POST is signed per the
//!   Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//!
//! Header values and secrets never appear in an error, a log line or a `Debug` output.

mod guard;
mod post;
mod settings;
mod signature;
mod tls;
mod transport;

use std::fmt;

use ureq::http::Uri;
use ureq::http::header::{HeaderName, HeaderValue};

use crate::config::{HttpConfig, NotifierConfig};
use crate::error::{Error, Result};
use crate::notifier::{Delivery, Notifier, SendError};

use self::settings::{parse_endpoint, parse_headers, parse_proxy, servername_alias};
use self::signature::Signer;

/// The most of a response body that is read (to reuse the connection); the rest is dropped
/// with the connection.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024;

/// Idle connections the agent keeps. A connection is only pooled after it served a request,
/// and each worker uses one at a time, so this is the most workers there can be
/// (`notifier.workers` is at most 1024): every worker finds its connection again.
const IDLE_CONNECTIONS: usize = 1024;

/// The built-in `webhook` notifier, enabled when `[notifier.http] endpoint` is set.
///
/// `Debug` shows the settings: the endpoint, the files and the header names, never header
/// values, the proxy's credentials or the signing secrets.
#[derive(Default)]
pub struct Webhook {
    inner: Option<Configured>,
}

struct Configured {
    agent: ureq::Agent,
    /// The endpoint as configured, for messages.
    endpoint: String,
    /// Where the POST goes: the endpoint, with its host replaced by `servername` when that
    /// differs (the agent's resolver maps it back).
    target: Uri,
    /// The `Host` header when `target` is not the endpoint.
    host: Option<HeaderValue>,
    /// Marked sensitive, so even `HeaderValue`'s own `Debug` hides them.
    headers: Vec<(HeaderName, HeaderValue)>,
    signer: Option<Signer>,
    /// The settings, for `Debug` (which hides the secrets) and the timeout.
    http: HttpConfig,
}

impl Webhook {
    /// A webhook notifier configured from `http`, or `None` when no endpoint is set.
    ///
    /// # Errors
    ///
    /// A configuration error naming the key and the file or URL at fault: a bad endpoint or
    /// proxy URL, an unreadable or empty `cafile`, `certfile` or `keyfile`, only one of
    /// `certfile` and `keyfile`, a bad `servername`, a bad header name or value, a malformed
    /// `signing_secret`, a zero `timeout`.
    pub fn from_config(http: &HttpConfig) -> Result<Option<Webhook>> {
        if http.endpoint.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(Webhook {
            inner: Some(Configured::new(http)?),
        }))
    }
}

impl Configured {
    fn new(http: &HttpConfig) -> Result<Configured> {
        let endpoint = http.endpoint.trim().to_string();
        let policy = guard::Policy::of(http);
        let uri = parse_endpoint(&endpoint, policy)?;
        if http.timeout.is_zero() {
            return Err(Error::config(
                "notifier.http.timeout must be more than 0 (e.g. \"5s\")",
            ));
        }
        let signer = match http.signing_secret.trim() {
            "" => None,
            s => Some(Signer::parse(s)?),
        };
        let headers = parse_headers(http, signer.is_some())?;
        let tls_config = tls::tls_config(http)?;

        let servername = http.servername.trim();
        let (target, host, resolver) = match servername_alias(&uri, servername, &endpoint)? {
            Some(a) => (a.target, Some(a.host), Some(a.resolver)),
            None => (uri, None, None),
        };
        // Through a proxy, the tunnel is asked for the request URL's host and port, that is
        // `servername` when set (the proxy resolves it). Asking for the endpoint's resolved
        // address instead (ureq's `resolve_target`) is broken in ureq 3.5.2: it writes the
        // port twice (`CONNECT 10.0.0.5:443:443`).
        let proxy = parse_proxy(&http.proxy, policy)?;

        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(http.timeout))
            .timeout_connect(Some(http.timeout))
            .proxy(proxy)
            .tls_config(tls_config)
            .https_only(false)
            .user_agent(concat!("clair-notifier/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            transport::connector(http.timeout, policy),
            resolver.unwrap_or_else(tls::ServerNameResolver::direct),
        );
        Ok(Configured {
            agent,
            endpoint,
            target,
            host,
            headers,
            signer,
            http: http.clone(),
        })
    }
}

impl Notifier for Webhook {
    fn configure(&mut self, config: &NotifierConfig) -> Result<bool> {
        if config.http.endpoint.trim().is_empty() {
            self.inner = None;
            return Ok(false);
        }
        self.inner = Some(Configured::new(&config.http)?);
        Ok(true)
    }

    fn send(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
        match &self.inner {
            Some(c) => c.post(delivery),
            None => Err(SendError::new("the webhook notifier is not configured")),
        }
    }

    fn max_rate(&self) -> u32 {
        self.inner.as_ref().map_or(0, |c| c.http.max_rate)
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.inner else {
            return f.write_str("Webhook { configured: false }");
        };
        // HttpConfig's own `Debug` hides the header values, the secrets and the proxy's
        // credentials.
        f.debug_tuple("Webhook").field(&c.http).finish()
    }
}

/// Each of `bad` given to `parse` is refused with an error naming `key`: the messages, for
/// further checks.
#[cfg(test)]
fn refused_naming<T>(key: &str, bad: &[&str], parse: impl Fn(&str) -> Result<T>) -> Vec<String> {
    bad.iter()
        .map(|b| {
            let err = parse(b).err().unwrap_or_else(|| panic!("{b:?} accepted"));
            let err = err.to_string();
            assert!(err.contains(key), "{b:?}: {err}");
            err
        })
        .collect()
}
