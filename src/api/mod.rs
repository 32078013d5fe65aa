//! The read API (cargo feature `api`): Clair v1's notification endpoints over HTTP, plus
//! `/health` and `/metrics`.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/notifications/{name}?limit=N[&page=TOKEN]` | 200, one page of the notification in Clair v1's JSON |
//! | `GET /v1/notifications/{name}/attempts` | 200, the notification's attempt log as JSON (see `Api::read_attempts`) |
//! | `DELETE /v1/notifications/{name}` | 200, empty body: the notification is read (repeatable) |
//! | `GET /health` | 200 while the service runs or is disabled (503 if it stopped, a thread of it died, or the store fails) |
//! | `GET /metrics` | Prometheus text (see [`metrics`]) |
//!
//! Errors are `{"Error":{"Message":"..."}}` and a newline, with 400 (bad `limit`, bad
//! `page`), 401 (missing or wrong bearer token, when `[api] token` is set), 404 (unknown
//! notification or route), 405, 413/414/431 (request too large) or 500; the server itself
//! answers 400/505 (malformed request), 408 (too slow), 411 (unsupported body framing) and 503
//! (too many connections).
//!
//! The routes are plain functions from a [`Request`] to a [`Response`] ([`Api::handle`]),
//! testable without sockets; [`Server`] serves them over HTTP with bounded connections, sizes
//! and times (see its module for the limits), over TLS when `[api] certfile` and `keyfile`
//! are set (with client certificates required when `cafile` is), and `/health` and
//! `/metrics` on a second, plain listener when `health_addr` is.

mod attempts;
mod http1;
pub mod metrics;
mod routes;
mod server;
mod tls;
mod tls_stream;
mod token;

use std::sync::Arc;

use ring::hmac;
use ring::rand::SystemRandom;
use serde::Serialize;

pub use http1::{IDLE_TIMEOUT, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES, REQUEST_TIMEOUT};
pub use routes::PageError;
pub use server::{MAX_CONNECTIONS, RunningServer, Server, THREADS, WRITE_TIMEOUT};
pub use token::PageKey;

use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::service::{Handle, Liveness, Metrics, ServiceState};
use crate::store::Datastore;
use crate::time::Clock;

/// The largest `limit` served: a larger one is served as this many (and `Limit` says so).
pub const MAX_LIMIT: u32 = 1000;

/// The `Content-Type` of every JSON answer, as Clair v1 writes it.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// One HTTP request, as the routes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `DELETE`, ...
    pub method: String,
    /// Path and query, as sent (`/v1/notifications/x?limit=10`).
    pub url: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// A request without an `Authorization` header.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            authorization: None,
        }
    }

    /// The same request with `Authorization: Bearer <token>`.
    pub fn bearer(mut self, token: &str) -> Request {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }
}

/// One HTTP answer, as the routes produce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if there is a body.
    pub content_type: Option<&'static str>,
    /// Extra headers (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer: `value` serialized, then a newline (as Clair's `json.Encoder` writes).
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Response {
            status,
            content_type: Some(JSON_CONTENT_TYPE),
            headers: Vec::new(),
            body,
        }
    }

    /// An error answer: `{"Error":{"Message":"<message>"}}` and a newline.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({"Error": {"Message": message}}))
    }

    /// An answer with no body (a successful DELETE).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The message of an error answer, if this is one.
    pub fn error_message(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v["Error"]["Message"].as_str().map(str::to_string)
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the API shows of a running notifier service: its counters and whether it runs.
#[derive(Clone, Debug)]
pub struct ServiceView {
    metrics: Arc<Metrics>,
    liveness: Liveness,
}

impl ServiceView {
    /// A view of the service behind `handle`.
    pub fn of(handle: &Handle) -> ServiceView {
        ServiceView {
            metrics: handle.metrics(),
            liveness: handle.liveness(),
        }
    }
}

/// What `/health` says of the notifier service, and whether that is healthy: the one meaning
/// of "up", shared by `/health` (200 or 503) and `/metrics` (`clair_notifier_up`). A disabled
/// service (no endpoint set) is healthy: it has nothing to deliver.
fn notifier_health(service: Option<&ServiceView>) -> (&'static str, bool) {
    match service.map(|s| s.liveness.state()) {
        None => ("not started", true),
        Some(ServiceState::Disabled) => ("disabled", true),
        Some(ServiceState::Running) => ("running", true),
        Some(ServiceState::Stopped) => ("stopped", false),
        Some(ServiceState::Failed) => ("failed", false),
    }
}

/// The read API's routes over a store: [`handle`](Api::handle) answers one request.
pub struct Api {
    store: Arc<dyn Datastore>,
    key: PageKey,
    /// The bearer token's HMAC under a random key: compared in constant time, whatever the
    /// length of what is sent.
    token: Option<(hmac::Key, hmac::Tag)>,
    service: Option<ServiceView>,
    clock: Clock,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("token", &self.token.is_some())
            .field("service", &self.service)
            .finish()
    }
}

impl Api {
    /// The routes over `store`, with the page key and bearer token of `config` (the key is
    /// generated and kept in the store when the configuration has none).
    ///
    /// # Errors
    ///
    /// A bad `api.pagination_key` (kind [`Config`](ErrorKind::Config)), or a store failure
    /// while reading or keeping the generated key.
    pub fn new(config: &ApiConfig, store: Arc<dyn Datastore>) -> Result<Api> {
        let key = PageKey::resolve(config, store.as_ref())?;
        let token = if config.token.is_empty() {
            None
        } else {
            let k = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map_err(|_| {
                Error::new(
                    ErrorKind::Other,
                    "could not read the system's random source",
                )
            })?;
            let tag = hmac::sign(&k, config.token.as_bytes());
            Some((k, tag))
        };
        Ok(Api {
            store,
            key,
            token,
            service: None,
            clock: Clock::system(),
        })
    }

    /// Reads the time from `clock` (when a DELETE marks a notification read).
    pub fn clock(mut self, clock: Clock) -> Api {
        self.clock = clock;
        self
    }

    /// The key that signs this API's page tokens.
    pub fn page_key(&self) -> &PageKey {
        &self.key
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some((key, tag)) = &self.token else {
            return true;
        };
        let Some(value) = req.authorization.as_deref() else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && hmac::verify(key, token.trim().as_bytes(), tag.as_ref()).is_ok()
    }
}

/// Checks `[api]` without starting anything: the addresses, the pagination key, the token,
/// and every TLS file (read and checked as the server would: the certificate and key belong
/// together, the certificate has not expired, the CA can be used).
///
/// # Errors
///
/// A configuration error naming the key at fault.
pub fn validate_config(config: &ApiConfig) -> Result<()> {
    if !config.addr.is_empty() {
        server::parse_addr("api.addr", &config.addr)?;
    }
    if !config.health_addr.is_empty() {
        server::parse_addr("api.health_addr", &config.health_addr)?;
    }
    tls::server_config(config)?;
    if !config.pagination_key.is_empty() {
        PageKey::from_base64(&config.pagination_key)?;
    }
    if config.token.trim() != config.token || config.token.contains(char::is_control) {
        return Err(Error::config(
            "api.token must not hold spaces at either end nor control characters",
        ));
    }
    Ok(())
}
