//! One POST of the webhook and what its answer means.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::StatusCode;
use ureq::http::header::{self, HeaderValue};

use super::guard::Refused;
use super::{Configured, MAX_RESPONSE_BODY, signature};
use crate::attempt::AttemptClass;
use crate::notifier::{Delivery, SendError};
use crate::text::{one_line, truncate};

/// The JSON body of a webhook POST for the notification `name`, byte for byte what Clair v1
/// sends.
pub(super) fn envelope(name: &str) -> String {
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

impl Configured {
    pub(super) fn post(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
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
            let class = failure_class(&e);
            let why = match (&e, Refused::find(&e)) {
                (ureq::Error::Timeout(_), _) => {
                    format!("timed out after {:?}", self.http.timeout)
                }
                (_, Some(refused)) => refused.to_string(),
                _ => e.to_string(),
            };
            SendError::new(one_line(&format!("POST {}: {why}", self.endpoint))).with_class(class)
        })?;
        let status = resp.status();
        // Read a bounded amount of the body so the connection can be reused; a longer body is
        // dropped with its connection.
        let mut answer = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE_BODY)
            .read_to_end(&mut answer);
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
        let mut err = SendError::new(one_line(&message)).with_status(status.as_u16(), &answer);
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

/// The attempt log's class of a request that got no answer.
fn failure_class(e: &ureq::Error) -> AttemptClass {
    use std::io::ErrorKind as Io;
    match e {
        ureq::Error::Timeout(_) => AttemptClass::Timeout,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => AttemptClass::Tls,
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_) => AttemptClass::Connect,
        // rustls reports a failed handshake through the socket's reader.
        ureq::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            AttemptClass::Tls
        }
        ureq::Error::Io(io) => match io.kind() {
            Io::TimedOut | Io::WouldBlock => AttemptClass::Timeout,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::BrokenPipe
            | Io::UnexpectedEof => AttemptClass::Connect,
            _ => AttemptClass::Other,
        },
        _ => AttemptClass::Other,
    }
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
}
