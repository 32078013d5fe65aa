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

mod signature;
mod tls;
mod transport;

use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::header::{self, HeaderName, HeaderValue};
use ureq::http::{StatusCode, Uri};

use crate::config::{HttpConfig, NotifierConfig};
use crate::error::{Error, Result};
use crate::notifier::{Delivery, Notifier, SendError};
use crate::text::{one_line, redact_url, truncate};

use self::signature::Signer;

/// The most of a response body that is read (to reuse the connection); the rest is dropped
/// with the connection.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024;

/// Idle connections the agent keeps. A connection is only pooled after it served a request,
/// and each worker uses one at a time, so this is the most workers there can be
/// (`notifier.workers` is at most 1024): every worker finds its connection again.
const IDLE_CONNECTIONS: usize = 1024;

/// Headers the notifier writes itself; `[notifier.http] headers` cannot set them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// Headers of a signed POST; reserved when `signing_secret` is set.
const SIGNATURE_HEADERS: &[&str] = &["webhook-id", "webhook-timestamp", "webhook-signature"];

/// The built-in `webhook` notifier, enabled when `[notifier.http] endpoint` is set.
///
/// `Debug` shows the endpoint, the files and the header names, never header values, the
/// proxy's credentials or the signing secrets.
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
    servername: String,
    cafile: String,
    certfile: String,
    proxy: String,
    timeout: Duration,
}

/// The JSON body of a webhook POST for the notification `name`, byte for byte what Clair v1
/// sends.
pub fn envelope(name: &str) -> String {
    const HEAD: &str = r#"{"Notification":{"Name":"#;
    let mut body = String::with_capacity(HEAD.len() + name.len() + 5);
    body.push_str(HEAD);
    // A name is a UUID; any other string is escaped as JSON all the same.
    match serde_json::to_string(name) {
        Ok(quoted) => body.push_str(&quoted),
        Err(_) => body.push_str(r#""""#),
    }
    body.push_str("}}");
    body
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
        let uri = parse_endpoint(&endpoint)?;
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
        let proxy = parse_proxy(&http.proxy)?;

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
            transport::connector(http.timeout),
            resolver.unwrap_or_else(tls::ServerNameResolver::direct),
        );
        Ok(Configured {
            agent,
            endpoint,
            target,
            host,
            headers,
            signer,
            servername: servername.to_string(),
            cafile: http.cafile.trim().to_string(),
            certfile: http.certfile.trim().to_string(),
            proxy: redact_url(http.proxy.trim()),
            timeout: http.timeout,
        })
    }

    fn post(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
        let name = delivery.name.as_str();
        let body = envelope(name);
        let mut req = self
            .agent
            .post(self.target.clone())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(host) = &self.host {
            req = req.header(header::HOST, host.clone());
        }
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        if let Some(signer) = &self.signer {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let id = signature::message_id(delivery);
            req = req
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signer.sign(&id, timestamp, &body))
                .header("webhook-id", id);
        }
        let mut resp = req.send(&body).map_err(|e| {
            let why = match e {
                ureq::Error::Timeout(_) => format!("timed out after {:?}", self.timeout),
                e => e.to_string(),
            };
            SendError::new(one_line(&format!("POST {}: {why}", self.endpoint)))
        })?;
        let status = resp.status();
        // Read a bounded amount of the body so the connection can be reused; a longer body is
        // dropped with its connection.
        let _ = resp
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE_BODY)
            .read_to_end(&mut Vec::new());
        if status.is_success() {
            return Ok(());
        }
        let mut message = format!(
            "POST {}: got status {}, expected 2xx",
            self.endpoint,
            status_text(status)
        );
        if status.is_redirection() {
            match resp
                .headers()
                .get(header::LOCATION)
                .map(HeaderValue::to_str)
            {
                Some(Ok(location)) => message.push_str(&format!(
                    " (redirect to {} not followed)",
                    truncate(location, 200)
                )),
                _ => message.push_str(" (redirects are not followed)"),
            }
        }
        let mut err = SendError::new(one_line(&message));
        if let Some(delay) = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
        {
            err = err.with_retry_after(delay);
        }
        Err(err)
    }
}

/// How requests reach an endpoint whose certificate is checked for another name.
struct Alias {
    /// The endpoint's URL with `servername` for host.
    target: Uri,
    /// The endpoint's host and port, for the `Host` header.
    host: HeaderValue,
    /// Maps `servername` back to the endpoint's host.
    resolver: tls::ServerNameResolver,
}

/// The aliasing `servername` needs, or `None` when it is empty or the endpoint's own host.
fn servername_alias(uri: &Uri, servername: &str, endpoint: &str) -> Result<Option<Alias>> {
    if servername.is_empty() {
        return Ok(None);
    }
    if uri.scheme_str() != Some("https") {
        return Err(Error::config(format!(
            "notifier.http.servername \"{servername}\" is set but notifier.http.endpoint \
             \"{endpoint}\" is not https://"
        )));
    }
    let alias = tls::servername_host(servername)?;
    if alias.eq_ignore_ascii_case(uri.host().unwrap_or_default()) {
        return Ok(None);
    }
    let port = uri.port_u16().unwrap_or(443);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{alias}:{port}{path}")
        .parse()
        .map_err(|e| {
            Error::with_source(
                crate::ErrorKind::Config,
                format!(
                    "notifier.http.servername \"{servername}\" cannot be used with \
                 notifier.http.endpoint \"{endpoint}\""
                ),
                e,
            )
        })?;
    // The authority has no credentials: parse_endpoint refuses them.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host = HeaderValue::from_str(authority).map_err(|_| {
        Error::config(format!(
            "notifier.http.endpoint \"{endpoint}\" has a host that cannot be sent in a Host \
             header"
        ))
    })?;
    Ok(Some(Alias {
        target,
        host,
        resolver: tls::ServerNameResolver::new(&alias, port, uri.clone()),
    }))
}

/// Parses and checks the endpoint URL.
fn parse_endpoint(endpoint: &str) -> Result<Uri> {
    let uri: Uri = endpoint.parse().map_err(|e| {
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
    let authority = uri.authority().map_or("", |a| a.as_str());
    if authority.contains('@') {
        // Don't echo it: the user part may hold a password.
        return Err(Error::config(
            "notifier.http.endpoint must not hold credentials (user:password@): they are not \
             sent; use notifier.http.headers (e.g. Authorization) instead",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::config(format!(
            "notifier.http.endpoint \"{endpoint}\" has no host"
        )));
    }
    Ok(uri)
}

/// Checks the extra headers; values are marked sensitive.
fn parse_headers(http: &HttpConfig, signing: bool) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let mut headers = Vec::new();
    for (name, value) in &http.headers {
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(Error::config(format!(
                "notifier.http.headers: \"{name}\" is not a valid header name"
            )));
        };
        let lower = header_name.as_str();
        if RESERVED_HEADERS.contains(&lower) || (signing && SIGNATURE_HEADERS.contains(&lower)) {
            return Err(Error::config(format!(
                "notifier.http.headers: \"{name}\" is set by the notifier and cannot be \
                 overridden"
            )));
        }
        let Ok(mut header_value) = HeaderValue::from_str(value) else {
            // The value may be a secret: name the header, never the value.
            return Err(Error::config(format!(
                "notifier.http.headers: the value of \"{name}\" is not a valid header value \
                 (visible ASCII and spaces only, no line breaks)"
            )));
        };
        header_value.set_sensitive(true);
        headers.push((header_name, header_value));
    }
    Ok(headers)
}

/// The configured proxy, or none (never the environment's).
fn parse_proxy(proxy: &str) -> Result<Option<ureq::Proxy>> {
    let raw = proxy.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let shown = redact_url(raw);
    let bad = |why: &str| {
        Error::config(format!(
            "notifier.http.proxy \"{shown}\" is not a valid proxy URL: {why}"
        ))
    };
    if !(raw.starts_with("http://") || raw.starts_with("https://")) {
        return Err(bad(
            "expected http://host:port or https://host:port (only HTTP CONNECT proxies are \
             supported)",
        ));
    }
    let parsed = ureq::Proxy::new(raw).map_err(|e| {
        Error::with_source(
            crate::ErrorKind::Config,
            format!("notifier.http.proxy \"{shown}\" could not be parsed"),
            e,
        )
    })?;
    if parsed.host().is_empty() {
        return Err(bad("it has no host"));
    }
    Ok(Some(parsed))
}

/// A `Retry-After` value as a delay from `now`: delay-seconds, or an HTTP-date (a date in the
/// past is no delay). `None` when it is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit is still "a very long time"; the service caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
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
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.inner else {
            return f.write_str("Webhook { configured: false }");
        };
        f.debug_struct("Webhook")
            .field("endpoint", &c.endpoint)
            .field("timeout", &c.timeout)
            .field("servername", &c.servername)
            .field("cafile", &c.cafile)
            .field("certfile", &c.certfile)
            .field("proxy", &c.proxy)
            .field(
                "headers",
                &c.headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("signer", &c.signer)
            .finish()
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
    fn envelope_escapes_what_json_must() {
        let body = envelope("a\"b\\c\n");
        assert_eq!(body, r#"{"Notification":{"Name":"a\"b\\c\n"}}"#);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["Notification"]["Name"], "a\"b\\c\n");
    }

    #[test]
    fn bad_endpoints_are_named() {
        for bad in ["ftp://127.0.0.1/", "not a url", "http://", "/relative"] {
            let http = HttpConfig {
                endpoint: bad.into(),
                ..HttpConfig::default()
            };
            let err = Webhook::from_config(&http).expect_err(bad).to_string();
            assert!(err.contains("notifier.http.endpoint"), "{err}");
        }
    }

    #[test]
    fn endpoint_credentials_are_refused_without_echo() {
        let http = HttpConfig {
            endpoint: "https://user:hunter2@127.0.0.1/hook".into(),
            ..HttpConfig::default()
        };
        let err = Webhook::from_config(&http).err().unwrap().to_string();
        assert!(err.contains("notifier.http.endpoint"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            parse_retry_after("Tuesday, 14-Nov-23 22:13:20 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-5", "1.5", "soon", "Tue, 99 Nov 2023 22:13:20 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn bad_proxies_are_named() {
        for bad in [
            "socks5://127.0.0.1:1080",
            "ftp://x",
            "http://",
            "http://a b:1",
        ] {
            let err = parse_proxy(bad).expect_err(bad).to_string();
            assert!(err.contains("notifier.http.proxy"), "{err}");
        }
        let err = parse_proxy("socks5://user:hunter2@127.0.0.1:1080")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_proxy("http://127.0.0.1:3128").unwrap().is_some());
        assert!(parse_proxy("  ").unwrap().is_none());
    }

    #[test]
    fn reserved_and_bad_headers_are_refused_without_the_value() {
        let with = |name: &str, value: &str, secret: &str| HttpConfig {
            endpoint: "http://127.0.0.1:1/".into(),
            headers: [(name.to_string(), value.to_string())].into(),
            signing_secret: secret.into(),
            ..HttpConfig::default()
        };
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        for http in [
            with("Content-Type", "text/plain", ""),
            with("Host", "x", ""),
            with("bad name", "v", ""),
            with("X-Token", "line\nbreak-hunter2", ""),
            with("Webhook-Signature", "v1,x", secret),
        ] {
            let err = Webhook::from_config(&http).err().unwrap().to_string();
            assert!(err.contains("notifier.http.headers"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(Webhook::from_config(&with("Webhook-Id", "x", "")).is_ok());
    }
}
