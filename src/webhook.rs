//! The webhook notifier: POSTs `{"Notification":{"Name":"<name>"}}` to an endpoint.
//!
//! One [`ureq::Agent`] serves every worker thread (it is a shared connection pool). Everything
//! is set explicitly rather than left to ureq's defaults: the timeout covers connecting and the
//! whole exchange, redirects are never followed (a 3xx is a failed attempt), non-2xx statuses
//! are answers rather than errors, and the proxy is the configured one or none (the
//! environment's proxy variables never apply).

use std::io::Read;
use std::time::Duration;

use crate::config::{HttpConfig, NotifierConfig};
use crate::error::{Error, Result};
use crate::notifier::{Delivery, Notifier, SendError};

/// The most of a response body that is read (to reuse the connection); the rest is dropped
/// with the connection.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024;

/// The built-in `webhook` notifier, enabled when `[notifier.http] endpoint` is set.
#[derive(Default)]
pub struct Webhook {
    inner: Option<Configured>,
}

struct Configured {
    agent: ureq::Agent,
    endpoint: String,
    headers: Vec<(String, String)>,
}

/// The JSON body of a webhook POST for the notification `name`, byte for byte what Clair v1
/// sends.
pub fn envelope(name: &str) -> String {
    serde_json::json!({"Notification": {"Name": name}}).to_string()
}

impl Webhook {
    /// A webhook notifier configured from `http`, or `None` when no endpoint is set.
    ///
    /// # Errors
    ///
    /// A configuration error naming the key and the file or URL at fault.
    pub fn from_config(http: &HttpConfig) -> Result<Option<Webhook>> {
        if http.endpoint.is_empty() {
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
        let uri: ureq::http::Uri = endpoint.parse().map_err(|e| {
            Error::with_source(
                crate::ErrorKind::Config,
                format!("notifier.http.endpoint \"{endpoint}\" is not a valid URL"),
                e,
            )
        })?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(Error::config(format!(
                    "notifier.http.endpoint \"{endpoint}\" must start with http:// or https://"
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(Error::config(format!(
                "notifier.http.endpoint \"{endpoint}\" has no host"
            )));
        }
        let mut headers = Vec::new();
        for (name, value) in &http.headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::config(format!(
                    "notifier.http.headers: \"{name}\" is not a valid header name"
                )));
            }
            if ureq::http::HeaderValue::from_str(value).is_err() {
                // The value may be a secret: name the header, never the value.
                return Err(Error::config(format!(
                    "notifier.http.headers: the value of \"{name}\" is not a valid header value"
                )));
            }
            headers.push((name.clone(), value.clone()));
        }
        let agent = agent(http)?;
        Ok(Configured {
            agent,
            endpoint,
            headers,
        })
    }

    fn post(&self, name: &str) -> std::result::Result<(), SendError> {
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req
            .send(envelope(name))
            .map_err(|e| SendError::new(format!("POST {}: {e}", self.endpoint)))?;
        let status = resp.status();
        // Read a bounded amount of the body so the connection can be reused.
        let mut sink = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE_BODY)
            .read_to_end(&mut sink);
        if status.is_success() {
            return Ok(());
        }
        let mut err = SendError::new(format!(
            "POST {}: got status {}, expected 2xx",
            self.endpoint,
            status.as_u16()
        ));
        if let Some(delay) = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_secs)
        {
            err = err.with_retry_after(delay);
        }
        Err(err)
    }
}

fn parse_retry_after_secs(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn agent(http: &HttpConfig) -> Result<ureq::Agent> {
    let timeout = Some(http.timeout);
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(timeout)
        .timeout_connect(timeout)
        .proxy(None)
        .user_agent(concat!("clair-notifier/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections(256)
        .max_idle_connections_per_host(256)
        .build();
    Ok(config.new_agent())
}

impl Notifier for Webhook {
    fn configure(&mut self, config: &NotifierConfig) -> Result<bool> {
        if config.http.endpoint.is_empty() {
            self.inner = None;
            return Ok(false);
        }
        self.inner = Some(Configured::new(&config.http)?);
        Ok(true)
    }

    fn send(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
        match &self.inner {
            Some(c) => c.post(&delivery.name),
            None => Err(SendError::new("the webhook notifier is not configured")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_clairs_byte_for_byte() {
        assert_eq!(
            envelope("6e4ad270-4957-4242-b5ad-dad851379573"),
            r#"{"Notification":{"Name":"6e4ad270-4957-4242-b5ad-dad851379573"}}"#
        );
    }

    #[test]
    fn bad_endpoints_are_named() {
        for bad in ["ftp://127.0.0.1/", "not a url", "http://"] {
            let http = HttpConfig {
                endpoint: bad.into(),
                ..HttpConfig::default()
            };
            let err = Webhook::from_config(&http).err().expect(bad).to_string();
            assert!(err.contains("notifier.http.endpoint"), "{err}");
        }
    }
}
