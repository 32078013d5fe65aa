//! The read API's TLS settings, as Clair v1 served its API: `[api] certfile` and `keyfile`
//! (PEM) turn TLS on, `cafile` (a PEM bundle) makes every client present a certificate that
//! chains to it. TLS 1.2 and 1.3 only.
//!
//! Every file is read and checked before the server starts ([`server_config`], which
//! `check-config` runs too), so a bad one is one error naming its key. The certificate and key
//! files are read again for each new connection: when either changed, the pair is loaded
//! again and new connections use it; a pair that fails to load (a half written file, a key
//! that is not the certificate's, an expired certificate) is logged and the pair in use kept.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::pem::{certificates, private_key, read_file};

/// The rustls configuration `api` asks for: `None` when TLS is off (no `certfile` nor
/// `keyfile`).
///
/// # Errors
///
/// A configuration error naming the key at fault: only one of `certfile` and `keyfile`, or
/// `cafile` without them; a file that cannot be read, is not PEM or holds no certificate
/// (or key); a key that is not the certificate's; an expired certificate; a CA that is not
/// a usable trust anchor.
pub(crate) fn server_config(api: &ApiConfig) -> Result<Option<Arc<ServerConfig>>> {
    let (certfile, keyfile, cafile) = (api.certfile.trim(), api.keyfile.trim(), api.cafile.trim());
    match (certfile.is_empty(), keyfile.is_empty()) {
        (true, true) if cafile.is_empty() => return Ok(None),
        (true, true) => {
            return Err(Error::config(
                "api.cafile is set but api.certfile and api.keyfile are not: client \
                 certificates are checked only when the read API is served over TLS",
            ));
        }
        (false, true) => {
            return Err(Error::config(
                "api.certfile is set but api.keyfile is not: TLS needs both",
            ));
        }
        (true, false) => {
            return Err(Error::config(
                "api.keyfile is set but api.certfile is not: TLS needs both",
            ));
        }
        (false, false) => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::with_source(ErrorKind::Other, "TLS cannot be set up", e))?;
    let builder = if cafile.is_empty() {
        builder.with_no_client_auth()
    } else {
        let roots = read_roots(cafile)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.into(), Arc::clone(&provider))
                .build()
                .map_err(|e| {
                    Error::with_source(
                        ErrorKind::Config,
                        format!(
                            "api.cafile \"{cafile}\" cannot be used to check client certificates"
                        ),
                        e,
                    )
                })?;
        builder.with_client_cert_verifier(verifier)
    };
    let pair = RotatingPair::load(certfile, keyfile, provider)?;
    Ok(Some(Arc::new(builder.with_cert_resolver(Arc::new(pair)))))
}

/// The certificate and key files, loaded again when they change on disk.
struct RotatingPair {
    certfile: String,
    keyfile: String,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    /// A digest of the files as they were when last read, loaded or not. They are read again
    /// for each new connection (a few kilobytes: nothing next to a handshake's cost, and exact
    /// where modification times are coarse); the digest keeps no key material around.
    seen: Vec<u8>,
}

/// The certificate file's bytes and the key file's.
type Files = (Vec<u8>, Vec<u8>);

fn digest(files: &Files) -> Vec<u8> {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    for file in [&files.0, &files.1] {
        d.update(&(file.len() as u64).to_le_bytes());
        d.update(file);
    }
    d.finish().as_ref().to_vec()
}

impl std::fmt::Debug for RotatingPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingPair")
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .finish_non_exhaustive()
    }
}

fn read_both(certfile: &str, keyfile: &str) -> Result<Files> {
    Ok((
        read_file("api.certfile", certfile)?,
        read_file("api.keyfile", keyfile)?,
    ))
}

impl RotatingPair {
    fn load(certfile: &str, keyfile: &str, provider: Arc<CryptoProvider>) -> Result<RotatingPair> {
        let files = read_both(certfile, keyfile)?;
        let key = load_pair(certfile, keyfile, &files, &provider)?;
        Ok(RotatingPair {
            certfile: certfile.to_string(),
            keyfile: keyfile.to_string(),
            provider,
            current: Mutex::new(Loaded {
                key: Arc::new(key),
                seen: digest(&files),
            }),
        })
    }

    /// The pair to present: loaded again first if a file changed since it was last read.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        // A file missing for a moment (replaced by a rename, say) is not a change.
        if let Ok(files) = read_both(&self.certfile, &self.keyfile)
            && digest(&files) != current.seen
        {
            match load_pair(&self.certfile, &self.keyfile, &files, &self.provider) {
                Ok(key) => {
                    log::info!(
                        "read API: serving the certificate in {} from now on",
                        self.certfile
                    );
                    current.key = Arc::new(key);
                }
                Err(e) => {
                    log::error!("read API: keeping the certificate in use: {}", e.chain())
                }
            }
            current.seen = digest(&files);
        }
        Arc::clone(&current.key)
    }
}

impl ResolvesServerCert for RotatingPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The certificate chain and key in `files` (read from `certfile` and `keyfile`), checked to
/// belong together and to be valid now.
fn load_pair(
    certfile: &str,
    keyfile: &str,
    files: &Files,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let chain = certificates("api.certfile", certfile, &files.0)?;
    check_not_expired(certfile, &chain[0])?;
    let key = private_key("api.keyfile", keyfile, &files.1)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let message =
            format!("api.keyfile \"{keyfile}\" cannot be used with api.certfile \"{certfile}\"");
        match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                Error::config(format!("{message}: the key is not the certificate's"))
            }
            e => Error::with_source(ErrorKind::Config, message, e),
        }
    })
}

fn check_not_expired(certfile: &str, cert: &CertificateDer<'_>) -> Result<()> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("api.certfile \"{certfile}\": its first certificate cannot be read"),
            e,
        )
    })?;
    let not_after = parsed.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if not_after < i64::try_from(now).unwrap_or(i64::MAX) {
        let when = u64::try_from(not_after)
            .map(|s| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s)))
            .unwrap_or_else(|_| "before 1970".to_string());
        return Err(Error::config(format!(
            "api.certfile \"{certfile}\": the certificate expired ({when})"
        )));
    }
    Ok(())
}

fn read_roots(cafile: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in read_certs("api.cafile", cafile)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!(
                    "api.cafile \"{cafile}\": certificate #{} is not a usable CA certificate",
                    i + 1
                ),
                e,
            )
        })?;
    }
    Ok(roots)
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certs(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    certificates(key, path, &read_file(key, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_never_shows_the_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let key_pem = key.serialize_pem();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        let api = ApiConfig {
            certfile: write("c.pem", &cert.pem()),
            keyfile: write("k.pem", &key_pem),
            ..ApiConfig::default()
        };
        let config = server_config(&api).unwrap().expect("TLS on");
        let shown = format!("{config:?}");
        assert!(shown.contains("k.pem"), "{shown}");
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!shown.contains(line), "{shown}");
        }
        let der = format!("{:?}", key.serialize_der());
        assert!(!shown.contains(&der[1..40]), "{shown}");
    }
}
