//! TLS settings of the webhook: trusted CAs, the client certificate, and the server name.
//!
//! Everything is read and checked when the notifier is configured, so a bad file is one clear
//! configuration error rather than a failure on every POST. Certificate verification is always
//! on: there is no setting to turn it off.
//!
//! # How `servername` works
//!
//! ureq verifies the server's certificate against, and sends as SNI, the host of the request
//! URL. So when `servername` differs from the endpoint's host, requests are sent to a URL whose
//! host is `servername` (same scheme, port, path and query), and the agent's [`Resolver`]
//! maps that name and port back to the endpoint's own host, which is resolved as usual. The
//! TCP connection therefore goes to the endpoint, TLS verifies and announces `servername`,
//! and the `Host` header is set explicitly to the endpoint's host and port, as Go's
//! `tls.Config.ServerName` (Clair v1's setting) does.
//!
//! Through a proxy, the tunnel is asked for `servername:port` (the proxy resolves the name),
//! where Go would ask for the endpoint's host: ureq 3.5's way to ask for a locally resolved
//! address (`resolve_target`) writes the port twice. Certificate verification is the same
//! either way: whatever the tunnel reaches must prove it is `servername`.

use std::fmt;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::config::HttpConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::pem::{certificates, private_key, read_file};

/// The [`TlsConfig`] for `http`: the CAs of `cafile` (else the built-in Mozilla roots) and
/// the client certificate of `certfile` + `keyfile`, if set.
///
/// # Errors
///
/// A configuration error naming the key and file at fault: unreadable, not PEM, no
/// certificate or key in it, a CA that is not a usable trust anchor, a key that does not match
/// the certificate, or only one of `certfile` and `keyfile` set.
pub(crate) fn tls_config(http: &HttpConfig) -> Result<TlsConfig> {
    let mut builder = TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .disable_verification(false)
        .use_sni(true);
    let cafile = http.cafile.trim();
    if !cafile.is_empty() {
        let certs = read_certs("notifier.http.cafile", cafile)?;
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store
                .add(rustls::pki_types::CertificateDer::from(cert.der()))
                .map_err(|e| {
                    Error::with_source(
                        ErrorKind::Config,
                        format!(
                            "notifier.http.cafile \"{cafile}\": certificate #{} is not a usable \
                             CA certificate",
                            i + 1
                        ),
                        e,
                    )
                })?;
        }
        builder = builder.root_certs(RootCerts::new_with_certs(&certs));
    }
    let (certfile, keyfile) = (http.certfile.trim(), http.keyfile.trim());
    match (certfile.is_empty(), keyfile.is_empty()) {
        (true, true) => {}
        (false, true) => {
            return Err(Error::config(format!(
                "notifier.http.certfile \"{certfile}\" is set but notifier.http.keyfile is not: \
                 a client certificate needs its private key"
            )));
        }
        (true, false) => {
            return Err(Error::config(format!(
                "notifier.http.keyfile \"{keyfile}\" is set but notifier.http.certfile is not: \
                 a private key needs its client certificate"
            )));
        }
        (false, false) => {
            let chain = read_certs("notifier.http.certfile", certfile)?;
            let (key, der) = read_key("notifier.http.keyfile", keyfile)?;
            check_key_matches(&chain, der, certfile, keyfile)?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
    }
    Ok(builder.build())
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certs(key: &str, path: &str) -> Result<Vec<Certificate<'static>>> {
    let certs = certificates(key, path, &read_file(key, path)?)?;
    Ok(certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect())
}

/// The first private key in the PEM file at `path`, for ureq and for rustls (which checks
/// it). Key material never enters a message.
fn read_key(
    key: &str,
    path: &str,
) -> Result<(
    PrivateKey<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    let pem = read_file(key, path)?;
    let der = private_key(key, path, &pem)?;
    let ureq_key = PrivateKey::from_pem(&pem).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("{key} \"{path}\" is not a usable private key"),
            e,
        )
    })?;
    Ok((ureq_key, der))
}

/// Checks what rustls checks when ureq builds its client configuration (where a failure would
/// be a panic on the first POST): the key is usable and belongs to the certificate.
fn check_key_matches(
    chain: &[Certificate<'static>],
    key: rustls::pki_types::PrivateKeyDer<'static>,
    certfile: &str,
    keyfile: &str,
) -> Result<()> {
    let certs = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.der()).into_owned())
        .collect();
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(certs, key, &provider)
        .map(|_| ())
        .map_err(|e| {
            let message = format!(
                "notifier.http.keyfile \"{keyfile}\" cannot be used with notifier.http.certfile \
                 \"{certfile}\""
            );
            match e {
                // rustls's words for it name neither file: say it in ours.
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    Error::config(format!("{message}: the key is not the certificate's"))
                }
                e => Error::with_source(ErrorKind::Config, message, e),
            }
        })
}

/// Sends connections for `alias` (the `servername`, with the endpoint's port) to the
/// endpoint's own host; resolves every other name as usual.
///
/// A host written as an IP address is "resolved" on the calling thread: with a timeout set,
/// ureq's resolver spawns a thread per request to bound the DNS lookup, and for an address
/// literal there is no lookup to bound (what that thread cost: BENCHMARKS.md).
pub(crate) struct ServerNameResolver {
    alias: Option<(String, u16, Uri)>,
    inner: DefaultResolver,
}

impl ServerNameResolver {
    /// Maps `alias_host:alias_port` to `endpoint`'s host and port.
    pub(crate) fn new(alias_host: &str, alias_port: u16, endpoint: Uri) -> ServerNameResolver {
        ServerNameResolver {
            alias: Some((alias_host.to_string(), alias_port, endpoint)),
            inner: DefaultResolver::default(),
        }
    }

    /// Resolves every name as usual (address literals without a thread).
    pub(crate) fn direct() -> ServerNameResolver {
        ServerNameResolver {
            alias: None,
            inner: DefaultResolver::default(),
        }
    }
}

impl Resolver for ServerNameResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().unwrap_or(443);
        let uri = match &self.alias {
            Some((host, alias_port, endpoint))
                if uri.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
                    && port == *alias_port =>
            {
                endpoint
            }
            _ => uri,
        };
        let literal = uri.host().and_then(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .ok()
        });
        // An address literal is its own answer: no lookup, no thread, no formatting of
        // `host:port` to parse it back (this runs once a request).
        if let (Some(ip), Some(port)) = (
            literal,
            uri.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            }),
        ) {
            let addr = std::net::SocketAddr::new(ip, port);
            if config
                .ip_family()
                .keep_wanted(std::iter::once(addr))
                .next()
                .is_some()
            {
                let mut addrs = self.inner.empty();
                addrs.push(addr);
                return Ok(addrs);
            }
        }
        let timeout = if literal.is_some() {
            NextTimeout::default()
        } else {
            timeout
        };
        self.inner.resolve(uri, config, timeout)
    }
}

impl fmt::Debug for ServerNameResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerNameResolver");
        if let Some((host, port, endpoint)) = &self.alias {
            d.field("alias", &format_args!("{host}:{port}"))
                .field("endpoint", endpoint);
        }
        d.finish()
    }
}

/// Checks `servername` as a name TLS can verify (a DNS name or an IP address) and returns it
/// as it goes in a URL's host (IPv6 in brackets).
///
/// # Errors
///
/// A configuration error naming `notifier.http.servername`.
pub(crate) fn servername_host(servername: &str) -> Result<String> {
    let name = rustls::pki_types::ServerName::try_from(servername).map_err(|_| {
        Error::config(format!(
            "notifier.http.servername \"{servername}\" is not a valid DNS name or IP address"
        ))
    })?;
    Ok(match name {
        rustls::pki_types::ServerName::IpAddress(rustls::pki_types::IpAddr::V6(_)) => {
            format!("[{servername}]")
        }
        _ => servername.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::refused_naming;

    #[test]
    fn servernames_become_url_hosts() {
        assert_eq!(servername_host("Notifier.Test").unwrap(), "notifier.test");
        assert_eq!(servername_host("10.0.0.5").unwrap(), "10.0.0.5");
        assert_eq!(servername_host("::1").unwrap(), "[::1]");
        let bad = ["not a name", "", "a..b", "[::1]"];
        refused_naming("notifier.http.servername", &bad, servername_host);
    }

    #[test]
    fn certfile_and_keyfile_go_together() {
        let only_cert = HttpConfig {
            certfile: "/nonexistent/client.pem".into(),
            ..HttpConfig::default()
        };
        let err = tls_config(&only_cert).expect_err("no keyfile").to_string();
        assert!(err.contains("notifier.http.keyfile is not"), "{err}");
        let only_key = HttpConfig {
            keyfile: "/nonexistent/client.key".into(),
            ..HttpConfig::default()
        };
        let err = tls_config(&only_key).expect_err("no certfile").to_string();
        assert!(err.contains("notifier.http.certfile is not"), "{err}");
    }
}
