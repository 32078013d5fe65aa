//! PEM files named by a configuration key (the webhook's and the read API's certificates and
//! keys): read and parsed, with errors that name the key and the file. Key material never
//! enters a message.

use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, ErrorKind, Result};

/// The bytes of the file at `path`, given as `key`.
pub(crate) fn read_file(key: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("{key}: could not read \"{path}\""),
            e,
        )
    })
}

/// Every certificate in `pem` (the file at `path`, given as `key`); at least one.
pub(crate) fn certificates(
    key: &str,
    path: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| not_pem(key, path, e))?;
    if certs.is_empty() {
        return Err(no_certificate(key, path));
    }
    Ok(certs)
}

/// The first private key in `pem` (the file at `path`, given as `key`).
pub(crate) fn private_key(key: &str, path: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        PemError::NoItemsFound => Error::config(format!(
            "{key} \"{path}\" contains no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)"
        )),
        // The parser's message says what is malformed, not what the key is.
        e => not_pem(key, path, e),
    })
}

/// The error of a file that holds no certificate.
pub(crate) fn no_certificate(key: &str, path: &str) -> Error {
    Error::config(format!(
        "{key} \"{path}\" contains no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"
    ))
}

/// The error of a file at `path` (for `key`) that the PEM parser refused with `cause`.
pub(crate) fn not_pem(
    key: &str,
    path: &str,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::with_source(
        ErrorKind::Config,
        format!("{key} \"{path}\" is not a valid PEM file"),
        cause,
    )
}
