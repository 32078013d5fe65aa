//! The endpoint, proxy, headers and `servername` of `[notifier.http]`, checked when the
//! webhook is configured.

use ureq::http::Uri;
use ureq::http::header::{HeaderName, HeaderValue};

use super::guard::Policy;
use super::tls::{ServerNameResolver, servername_host};
use crate::config::HttpConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::text::redact_url;

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

/// How requests reach an endpoint whose certificate is checked for another name.
pub(super) struct Alias {
    /// The endpoint's URL with `servername` for host.
    pub(super) target: Uri,
    /// The endpoint's host and port, for the `Host` header.
    pub(super) host: HeaderValue,
    /// Maps `servername` back to the endpoint's host.
    pub(super) resolver: ServerNameResolver,
}

/// The aliasing `servername` needs, or `None` when it is empty or the endpoint's own host.
pub(super) fn servername_alias(
    uri: &Uri,
    servername: &str,
    endpoint: &str,
) -> Result<Option<Alias>> {
    if servername.is_empty() {
        return Ok(None);
    }
    if uri.scheme_str() != Some("https") {
        return Err(Error::config(format!(
            "notifier.http.servername \"{servername}\" is set but notifier.http.endpoint \
             \"{endpoint}\" is not https://"
        )));
    }
    let alias = servername_host(servername)?;
    if alias.eq_ignore_ascii_case(uri.host().unwrap_or_default()) {
        return Ok(None);
    }
    let port = uri.port_u16().unwrap_or(443);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{alias}:{port}{path}")
        .parse()
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
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
        resolver: ServerNameResolver::new(&alias, port, uri.clone()),
    }))
}

/// Parses and checks the endpoint URL.
pub(super) fn parse_endpoint(endpoint: &str, policy: Policy) -> Result<Uri> {
    let uri: Uri = endpoint.parse().map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
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
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(Error::config(format!(
            "notifier.http.endpoint \"{endpoint}\" has no host"
        )));
    }
    if let Some(class) = policy.refuses_literal(host) {
        return Err(Error::config(format!(
            "notifier.http.endpoint \"{endpoint}\" is {} ({})",
            class.describe(),
            class.rule()
        )));
    }
    Ok(uri)
}

/// Checks the extra headers; values are marked sensitive.
pub(super) fn parse_headers(
    http: &HttpConfig,
    signing: bool,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
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
pub(super) fn parse_proxy(proxy: &str, policy: Policy) -> Result<Option<ureq::Proxy>> {
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
            ErrorKind::Config,
            format!("notifier.http.proxy \"{shown}\" could not be parsed"),
            e,
        )
    })?;
    if parsed.host().is_empty() {
        return Err(bad("it has no host"));
    }
    if let Some(class) = policy.refuses_literal(parsed.host()) {
        return Err(Error::config(format!(
            "notifier.http.proxy \"{shown}\" is {} ({}; the guard judges the proxy's \
             address when a proxy is set)",
            class.describe(),
            class.rule()
        )));
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Webhook;
    use crate::webhook::refused_naming;

    #[test]
    fn bad_endpoints_are_named() {
        let bad = ["ftp://127.0.0.1/", "not a url", "http://", "/relative"];
        refused_naming("notifier.http.endpoint", &bad, |endpoint| {
            Webhook::from_config(&HttpConfig {
                endpoint: endpoint.into(),
                ..HttpConfig::default()
            })
        });
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
    fn bad_proxies_are_named() {
        let bad = [
            "socks5://127.0.0.1:1080",
            "ftp://x",
            "http://",
            "http://a b:1",
            "socks5://user:hunter2@127.0.0.1:1080",
            "http://user:hunter2@a b:1",
        ];
        let parse = |p: &str| parse_proxy(p, Policy::default());
        for err in refused_naming("notifier.http.proxy", &bad, parse) {
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(parse("http://127.0.0.1:3128").unwrap().is_some());
        assert!(parse("  ").unwrap().is_none());
    }

    #[test]
    fn address_literals_the_guard_refuses_are_configuration_errors() {
        let deny_private = Policy {
            deny_private: true,
            ..Policy::default()
        };
        let allow_link_local = Policy {
            allow_link_local: true,
            ..Policy::default()
        };
        let metadata = [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "https://[::ffff:169.254.169.254]:8443/",
            "http://[fe80::1]:8080/",
        ];
        for err in refused_naming("notifier.http.endpoint", &metadata, |e| {
            parse_endpoint(e, Policy::default())
        }) {
            assert!(err.contains("allow_link_local = true permits it"), "{err}");
        }
        for e in metadata {
            assert!(parse_endpoint(e, allow_link_local).is_ok(), "{e}");
        }
        let private = [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.0.0.5/",
        ];
        for err in refused_naming("notifier.http.endpoint", &private, |e| {
            parse_endpoint(e, deny_private)
        }) {
            assert!(err.contains("deny_private = true refuses it"), "{err}");
        }
        for e in private {
            assert!(parse_endpoint(e, Policy::default()).is_ok(), "{e}");
        }
        // A name is judged when it is connected to, not here.
        assert!(parse_endpoint("http://localhost:8080/", deny_private).is_ok());

        let proxies = ["http://u:hunter2@169.254.1.1:3128", "http://[fe80::9]:3128"];
        for err in refused_naming("notifier.http.proxy", &proxies, |p| {
            parse_proxy(p, Policy::default())
        }) {
            assert!(err.contains("allow_link_local"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse_proxy("http://127.0.0.1:3128", deny_private).unwrap_err();
        assert!(
            err.to_string().contains("notifier.http.deny_private"),
            "{err}"
        );
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
