//! Certificates made for the test (rcgen): a CA, a server certificate, a client certificate,
//! and an unrelated CA, written as PEM files; and the rustls configuration of a server that
//! uses them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A little PKI in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that issued the server and client certificates.
    pub ca: PathBuf,
    /// A CA that issued nothing here: trusting it alone must fail.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for `server_names` (DNS names or IP addresses), and a
    /// client certificate.
    pub fn new(server_names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (ca, ca_pem) = issuer("clair-notifier test CA");
        let (_, other_pem) = issuer("an unrelated CA");

        let server_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(
            server_names
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "webhook receiver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "clair-notifier");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = params.signed_by(&client_key, &ca).unwrap();

        let write = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &other_pem),
            server_cert: write("server.pem", &server_cert.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_cert: write("client.pem", &client_cert.pem()),
            client_key: write("client.key", &client_key.serialize_pem()),
            dir,
        }
    }

    /// A rustls server configuration presenting the server certificate; when
    /// `require_client_cert`, a client certificate issued by the CA is required.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(&self.ca) {
                roots.add(c).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_file(&self.server_key).unwrap();
        Arc::new(
            builder
                .with_single_cert(certs(&self.server_cert), key)
                .unwrap(),
        )
    }
}

/// A path as the configuration holds it.
pub fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A self-signed CA named `name`, and its certificate as PEM.
pub fn issuer(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = ca.pem();
    (ca, pem)
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
