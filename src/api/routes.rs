//! The routes: pure functions from a [`Request`] to a [`Response`] over the store.

use super::{Api, MAX_LIMIT, Request, Response, metrics};
use crate::document::render_page;
use crate::error::Error;
use crate::notification::PageCursor;

const PREFIX: &str = "/v1/notifications/";
const NOT_FOUND: &str = "the resource cannot be found";
const BAD_PAGE: &str = "invalid page format: invalid or expired pagination token";

/// Why [`Api::read_page`] read no page.
#[derive(Debug)]
pub enum PageError {
    /// No `limit` was given.
    NoLimit,
    /// `limit` is not a whole number of at least 1: the reason, such as
    /// `limit must be at least 1, got 0`.
    BadLimit(String),
    /// The page token was not made by this API's key for this notification (forged, damaged,
    /// or made under another `pagination_key`).
    BadPage,
    /// There is no notification of that name.
    NotFound,
    /// The store failed.
    Store(Error),
}

/// The value of query parameter `key` (the first one, percent-decoded), if present.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == key).then(|| percent_decode(v).unwrap_or_else(|| "\u{fffd}".into()))
    })
}

/// Decodes `%XX` escapes and `+` (a space, in a query); `None` if the result is not UTF-8.
/// A `%` not followed by two hex digits stands for itself.
fn percent_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

impl Api {
    /// Answers one request. Never panics on any input: every failure is an answer.
    pub fn handle(&self, req: &Request) -> Response {
        let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
        let method = req.method.as_str();
        if let Some(raw_name) = path.strip_prefix(PREFIX) {
            let (raw_name, log) = match raw_name.strip_suffix("/attempts") {
                Some(n) => (n, true),
                None => (raw_name, false),
            };
            if raw_name.is_empty() || raw_name.contains('/') {
                return not_a_route();
            }
            let name = percent_decode(raw_name).unwrap_or_default();
            if log {
                return match method {
                    "GET" if !self.authorized(req) => unauthorized(),
                    "GET" => self.attempts(&name),
                    _ => method_not_allowed("GET"),
                };
            }
            return match method {
                "GET" | "DELETE" if !self.authorized(req) => unauthorized(),
                "GET" => self.read_notification(
                    &name,
                    query_param(query, "limit").as_deref(),
                    query_param(query, "page").as_deref(),
                ),
                "DELETE" => self.mark_read(&name),
                _ => method_not_allowed("GET, DELETE"),
            };
        }
        match (path, method) {
            ("/health", "GET") => self.health(),
            ("/metrics", "GET") => self.metrics(),
            ("/health" | "/metrics", _) => method_not_allowed("GET"),
            _ => not_a_route(),
        }
    }

    /// One page of notification `name`, rendered as `GET /v1/notifications/{name}` answers
    /// it once authorized: `limit` and `page` are the raw query values (absent: `None`). The
    /// route and the `show` command both read pages through this.
    ///
    /// # Errors
    ///
    /// A [`PageError`] saying why no page was read.
    pub fn read_page(
        &self,
        name: &str,
        limit: Option<&str>,
        page: Option<&str>,
    ) -> Result<Vec<u8>, PageError> {
        // Clair checks the limit before looking the name up.
        let limit = limit.ok_or(PageError::NoLimit)?;
        let limit = match limit.trim().parse::<i64>() {
            Ok(n) if n >= 1 => u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            Ok(n) => {
                return Err(PageError::BadLimit(format!(
                    "limit must be at least 1, got {n}"
                )));
            }
            Err(_) => {
                return Err(PageError::BadLimit(format!(
                    "{:?} is not a whole number",
                    crate::text::truncate(limit, 40)
                )));
            }
        };
        let (cursor, echoed) = match page {
            None => (PageCursor::FIRST, None),
            Some(token) => match self.key.open(name, token) {
                Some(c) => (c, Some(token.to_string())),
                None => return Err(PageError::BadPage),
            },
        };
        let p = self
            .store
            .page(name, cursor, limit)
            .map_err(PageError::Store)?
            .ok_or(PageError::NotFound)?;
        let this = echoed.unwrap_or_else(|| self.key.seal(name, cursor));
        let next = p.next.map(|c| self.key.seal(name, c));
        Ok(render_page(&p, limit, &this, next))
    }

    fn read_notification(&self, name: &str, limit: Option<&str>, page: Option<&str>) -> Response {
        match self.read_page(name, limit, page) {
            Ok(body) => {
                let mut r = Response::empty(200);
                r.content_type = Some(super::JSON_CONTENT_TYPE);
                r.body = body;
                r
            }
            Err(PageError::NoLimit) => Response::error(400, "must provide limit query parameter"),
            Err(PageError::BadLimit(why)) => {
                Response::error(400, &format!("invalid limit format: {why}"))
            }
            Err(PageError::BadPage) => Response::error(400, BAD_PAGE),
            Err(PageError::NotFound) => Response::error(404, NOT_FOUND),
            Err(PageError::Store(e)) => {
                log::error!("GET notification {name}: {}", e.chain());
                Response::error(
                    500,
                    "internal error: the store failed; see the server's log",
                )
            }
        }
    }

    fn attempts(&self, name: &str) -> Response {
        match self.read_attempts(name) {
            Ok(body) => {
                let mut r = Response::empty(200);
                r.content_type = Some(super::JSON_CONTENT_TYPE);
                r.body = body;
                r
            }
            Err(PageError::Store(e)) => {
                log::error!("GET attempts of {name}: {}", e.chain());
                Response::error(
                    500,
                    "internal error: the store failed; see the server's log",
                )
            }
            Err(_) => Response::error(404, NOT_FOUND),
        }
    }

    fn mark_read(&self, name: &str) -> Response {
        match self.store.mark_read(name, self.clock.now()) {
            Ok(true) => Response::empty(200),
            Ok(false) => Response::error(404, NOT_FOUND),
            Err(e) => {
                log::error!("DELETE notification {name}: {}", e.chain());
                Response::error(
                    500,
                    "internal error: the store failed; see the server's log",
                )
            }
        }
    }

    fn health(&self) -> Response {
        let store_ok = match self.store.summary("") {
            Ok(_) => true,
            Err(e) => {
                log::error!("health check: {}", e.chain());
                false
            }
        };
        let (notifier, notifier_ok) = super::notifier_health(self.service.as_ref());
        let ok = store_ok && notifier_ok;
        // A struct, not a map: the fields go out in the order the README shows.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Health {
            status: &'static str,
            notifier: &'static str,
            store: &'static str,
        }
        let health = Health {
            status: if ok { "ok" } else { "unavailable" },
            notifier,
            store: if store_ok { "ok" } else { "failing" },
        };
        Response::json(if ok { 200 } else { 503 }, &health)
    }

    fn metrics(&self) -> Response {
        let now = self.clock.now();
        let read = self
            .store
            .counts(now)
            .and_then(|c| Ok((c, self.store.notifiers(now)?)));
        match read {
            Ok((counts, states)) => {
                let mut text = metrics::render(&counts, now, self.service.as_ref());
                text += &metrics::render_notifiers(&states, &counts, self.service.as_ref());
                Response {
                    status: 200,
                    content_type: Some(metrics::CONTENT_TYPE),
                    headers: Vec::new(),
                    body: text.into_bytes(),
                }
            }
            Err(e) => {
                log::error!("GET /metrics: {}", e.chain());
                Response::error(
                    500,
                    "internal error: the store failed; see the server's log",
                )
            }
        }
    }
}

fn not_a_route() -> Response {
    Response::error(404, "page not found")
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method not allowed").header("Allow", allow)
}

fn unauthorized() -> Response {
    Response::error(401, "missing or invalid bearer token")
        .header("WWW-Authenticate", "Bearer realm=\"clair-notifier\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_and_decoded() {
        assert_eq!(
            query_param("limit=2&page=a%2Db", "page").as_deref(),
            Some("a-b")
        );
        assert_eq!(
            query_param("limit=2&limit=3", "limit").as_deref(),
            Some("2")
        );
        assert_eq!(query_param("limit", "limit").as_deref(), Some(""));
        assert_eq!(query_param("page=x", "limit"), None);
        assert_eq!(query_param("", "limit"), None);
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("a+b%2B%41").as_deref(), Some("a b+A"));
    }
}
