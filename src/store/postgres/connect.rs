//! Where the PostgreSQL server is and how to reach it: the URL, the password (never shown),
//! TLS, and the session settings every connection gets.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::{Host, SslMode as DriverSslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, ErrorKind, Result};

/// How long one statement may run before the server cancels it, so that a stuck query holds
/// neither a worker nor the scanner for ever; the service retries what fails.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS to the server (libpq's `sslmode` names). Certificates are always verified when TLS is
/// used: against `sslrootcert`, else the built-in Mozilla roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (its certificate chain verified), plain text when it
    /// does not.
    #[default]
    Prefer,
    /// TLS always, the certificate chain verified (not the host name: libpq's `verify-ca`).
    Require,
    /// TLS always, the certificate chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The mode named `s` (`disable`, `prefer`, `require`, `verify-full`).
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// What [`PostgresStore::open`](super::PostgresStore::open) connects with. Its `Debug` output
/// shows no password.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user[:password]@host[:port]/database` (or libpq's `key=value` form).
    pub url: String,
    /// The password, when the URL has none (from `password_file` or `PGPASSWORD`).
    pub password: Option<String>,
    /// TLS to the server.
    pub sslmode: SslMode,
    /// A PEM file of the CA certificates to trust instead of the built-in roots.
    pub sslrootcert: Option<PathBuf>,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redacted(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

/// `url` with any password replaced by `***` (for logs and `Debug`).
pub fn redacted(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let host = where_of(&c);
            let user = c.get_user().unwrap_or("");
            let hidden = if c.get_password().is_some() {
                ":***"
            } else {
                ""
            };
            format!("postgres://{user}{hidden}@{host}")
        }
        Err(_) => "<a URL that does not parse>".to_string(),
    }
}

/// `host:port/database` of a parsed configuration: how errors name the server.
pub fn where_of(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().or(c.get_user()).unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// A parsed, ready-to-use connection recipe.
#[derive(Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// `host:port/database`, for messages.
    pub name: String,
}

impl Target {
    /// Parses `options`.
    ///
    /// # Errors
    ///
    /// A configuration error naming `database.url` (a URL that does not parse, which is
    /// never quoted: it may hold a password) or `database.sslrootcert`.
    pub fn new(options: &PostgresOptions) -> Result<Target> {
        let mut config: postgres::Config = options.url.parse().map_err(|_| {
            Error::config(
                "database.url is not a PostgreSQL URL (postgres://user@host:port/database)",
            )
        })?;
        if config.get_password().is_none() {
            if let Some(p) = &options.password {
                config.password(p.trim_end_matches(['\r', '\n']));
            } else if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_dbname().is_none() && config.get_user().is_none() {
            config.user("postgres");
        }
        // Generic plans: each statement is prepared once per connection and planned once,
        // without looking at its parameters, so a plan does not change with the statistics of
        // the moment (a claim planned as a scan of the whole table whenever a batch's size
        // and a freshly analyzed table made that look cheaper), and no batch pays for planning.
        let options_line = format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout=60000 \
             -c plan_cache_mode=force_generic_plan",
            STATEMENT_TIMEOUT.as_millis()
        );
        config
            .options(&options_line)
            .application_name("clair-notifier")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match options.sslmode {
                SslMode::Disable => DriverSslMode::Disable,
                SslMode::Prefer => DriverSslMode::Prefer,
                SslMode::Require | SslMode::VerifyFull => DriverSslMode::Require,
            });
        let tls = tls_connector(options)?;
        let name = where_of(&config);
        Ok(Target { config, tls, name })
    }

    /// A new connection.
    ///
    /// # Errors
    ///
    /// A [`Store`](ErrorKind::Store) error naming the server (never the password).
    pub fn connect(&self) -> Result<postgres::Client> {
        self.config.connect(self.tls.clone()).map_err(|e| {
            Error::with_source(
                ErrorKind::Store,
                format!(
                    "could not connect to PostgreSQL at {}: {}",
                    self.name,
                    short(&e)
                ),
                e,
            )
        })
    }
}

/// The driver's message in one line (it never holds the password).
pub fn short(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

fn tls_connector(options: &PostgresOptions) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.sslrootcert {
        Some(path) => {
            let bad = |why: &str| {
                Error::config(format!(
                    "database.sslrootcert \"{}\": {why}",
                    path.display()
                ))
            };
            let pem = std::fs::read(path).map_err(|e| bad(&format!("cannot be read ({e})")))?;
            let certs: Vec<CertificateDer<'static>> = {
                use rustls::pki_types::pem::PemObject;
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad("is not a PEM file of certificates"))?
            };
            if certs.is_empty() {
                return Err(bad("holds no certificate"));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|_| bad("holds a certificate that is not a usable CA"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::config(format!("database.sslrootcert: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if options.sslmode == SslMode::VerifyFull {
        verifier
    } else {
        Arc::new(ChainOnly(verifier))
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("database.sslmode: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What a handshake signature check answers.
type Signature = std::result::Result<HandshakeSignatureValid, rustls::Error>;
type Cert<'a> = CertificateDer<'a>;
type Dss = DigitallySignedStruct;

/// Verifies the chain and the signatures as usual, only not the host name (`require`).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Signature {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Signature {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let o = PostgresOptions {
            url: "postgres://alice:s3cret@db.example:6543/queue".into(),
            password: Some("other-s3cret".into()),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
        };
        let shown = format!("{o:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://alice:***@db.example:6543/queue"),
            "{shown}"
        );
        let t = Target::new(&o).unwrap();
        assert_eq!(t.name, "db.example:6543/queue");
        assert_eq!(
            t.config.get_password(),
            Some(&b"s3cret"[..]),
            "the URL's wins"
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut o = PostgresOptions {
            url: "postgres://alice:s3cret@db.example:notaport/queue".into(),
            password: None,
            sslmode: SslMode::Require,
            sslrootcert: None,
        };
        let e = Target::new(&o).err().unwrap().to_string();
        assert!(e.starts_with("database.url is not a PostgreSQL URL"), "{e}");
        assert!(!e.contains("s3cret"));
        o.url = "postgres://alice@db.example/queue".into();
        o.sslrootcert = Some("/no/such/ca.pem".into());
        let e = Target::new(&o).err().unwrap().to_string();
        assert!(
            e.starts_with("database.sslrootcert \"/no/such/ca.pem\": cannot be read"),
            "{e}"
        );
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("allow"), None);
    }
}
