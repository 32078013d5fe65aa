//! Test support: a fresh database on the server named by `CLAIR_NOTIFIER_TEST_PG`.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{PostgresOptions, PostgresStore, SslMode};

/// The variable naming the test server (`postgres://user@127.0.0.1:port/db`).
pub const VAR: &str = "CLAIR_NOTIFIER_TEST_PG";

/// The URL of a new, empty database on the test server, or `None` (and a line saying the
/// test was skipped) when `CLAIR_NOTIFIER_TEST_PG` is not set. Panics when the server cannot
/// be reached: a test that was asked to run on it must fail then.
pub fn fresh_url() -> Option<String> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let Ok(admin) = std::env::var(VAR) else {
        // Written past the test harness's capture, once, so that a run shows it.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: the PostgreSQL tests were skipped: {VAR} is not set \
                 (contrib/pg-test-cluster starts a server)"
            );
        });
        return None;
    };
    let mut client = postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{VAR} is set but its server cannot be reached: {e}"));
    let db = format!(
        "cn_test_{}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    );
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap_or_else(|e| panic!("could not create the test database {db}: {e}"));
    let (base, _) = admin.rsplit_once('/').expect("a URL ending in /database");
    Some(format!("{base}/{db}"))
}

/// Options for `url` as tests use them.
pub fn options(url: String) -> PostgresOptions {
    PostgresOptions {
        url,
        password: None,
        sslmode: SslMode::Prefer,
        sslrootcert: None,
    }
}

/// A store on a new, empty database (see [`fresh_url`]).
pub fn fresh_store() -> Option<PostgresStore> {
    let url = fresh_url()?;
    Some(PostgresStore::open(&options(url)).expect("the test database opens"))
}

/// Another store on the database of `store` (as after a restart, or another instance).
pub fn reopen(store: &PostgresStore) -> PostgresStore {
    PostgresStore::on(super::pool::Pool::new(store.pool.target.clone()))
}
