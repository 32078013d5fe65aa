//! One test body, every backend: a fresh test database of one backend, on which a test opens
//! as many store handles as it needs (several services on one database, another writer as
//! another process would write, a reopen after a stop), and [`on_every_backend!`], which
//! makes a `sqlite` and a `postgres` test of each test body it is given.
//!
//! The PostgreSQL tests run on the server named by `CLAIR_NOTIFIER_TEST_PG`
//! (contrib/pg-test-cluster starts one), each on a new database of its own, so they may run
//! in parallel on one server. Without the variable they print that they were skipped and
//! pass; with it set and the server unreachable they fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clair_notifier::Datastore;

use super::recording::Recording;

/// Makes, for each test body `fn body(db: TestDb)` named, a test `sqlite::body` on a new
/// SQLite file and (with the `postgres` feature) a test `postgres::body` on a new PostgreSQL
/// database. Attributes written before a name (`#[ignore = "..."]`, `#[cfg(...)]`) are put
/// on both tests. Use it once per module.
macro_rules! on_every_backend {
    ($($(#[$attr:meta])* $body:ident),* $(,)?) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[test]
                fn $body() {
                    super::$body($crate::common::backends::TestDb::sqlite());
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                $(#[$attr])*
                #[test]
                fn $body() {
                    if let Some(db) = $crate::common::backends::TestDb::postgres() {
                        super::$body(db);
                    }
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

/// A new, empty database of one backend, for one test.
pub struct TestDb {
    kind: Kind,
}

enum Kind {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    #[cfg(feature = "postgres")]
    Postgres(pg::Database),
}

impl TestDb {
    /// A new SQLite file in a new temporary directory.
    pub fn sqlite() -> TestDb {
        let (dir, path) = super::temp_db();
        TestDb {
            kind: Kind::Sqlite { _dir: dir, path },
        }
    }

    /// A new database on the server named by `CLAIR_NOTIFIER_TEST_PG`, or `None` (with a note
    /// that the test was skipped) when the variable is not set. Panics when the server cannot
    /// be reached.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Option<TestDb> {
        Some(TestDb {
            kind: Kind::Postgres(pg::Database::create()?),
        })
    }

    /// A new handle on this database, as another instance or process would open it.
    pub fn open(&self) -> Arc<dyn Datastore> {
        match &self.kind {
            Kind::Sqlite { path, .. } => Arc::new(clair_notifier::SqliteStore::open(path).unwrap()),
            #[cfg(feature = "postgres")]
            Kind::Postgres(db) => Arc::new(db.open()),
        }
    }

    /// A new handle on this database that notes what the scanner asks of it.
    pub fn recording(&self) -> Arc<Recording> {
        Arc::new(Recording::over(self.open()))
    }

    /// The SQLite file, for the checks that read it directly; `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite { path, .. } => Some(path),
            #[cfg(feature = "postgres")]
            Kind::Postgres(_) => None,
        }
    }

    /// The `[database]` table of a configuration file for the binary on this database.
    pub fn config_table(&self) -> String {
        match &self.kind {
            Kind::Sqlite { path, .. } => {
                format!("[database]\npath = {:?}\n", path.display().to_string())
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres(db) => format!("[database]\nurl = {:?}\n", db.url()),
        }
    }

    /// Whether another handle's inserts (another process's, on SQLite) wake a running
    /// service at once. On PostgreSQL they do (`LISTEN`/`NOTIFY`); SQLite's are found by
    /// polling every `poll_interval`.
    pub fn other_writers_wake(&self) -> bool {
        !matches!(self.kind, Kind::Sqlite { .. })
    }

    /// How many notifications have a lease recorded, read from the database itself as
    /// another process would (a lease that outlived its owner's stop would show here).
    pub fn rows_with_lease(&self) -> i64 {
        match &self.kind {
            Kind::Sqlite { path, .. } => sqlite_leases(path),
            #[cfg(feature = "postgres")]
            Kind::Postgres(db) => {
                db.query_i64("SELECT count(*) FROM notification WHERE lease_owner IS NOT NULL")
            }
        }
    }

    /// The attempts counted on every notification's current round, summed, read from the
    /// database itself (waits and probes must not add to it).
    pub fn attempts_spent(&self) -> i64 {
        match &self.kind {
            Kind::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(
                    "SELECT coalesce(sum(attempts), 0) FROM notification",
                    [],
                    |r| r.get(0),
                )
                .unwrap(),
            #[cfg(feature = "postgres")]
            Kind::Postgres(db) => {
                db.query_i64("SELECT coalesce(sum(attempts), 0)::bigint FROM notification")
            }
        }
    }

    /// Each table holding rows about notifications (a `notification_id` column), with how
    /// many of its rows are about notifications that no longer exist.
    pub fn orphans(&self) -> Vec<(String, i64)> {
        match &self.kind {
            Kind::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let tables: Vec<String> = conn
                    .prepare(
                        "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c \
                         WHERE m.type = 'table' AND c.name = 'notification_id' ORDER BY 1",
                    )
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let orphans = |t: &str| -> i64 {
                    conn.query_row(&orphans_query(t), [], |r| r.get(0)).unwrap()
                };
                tables
                    .into_iter()
                    .map(|t| {
                        let n = orphans(&t);
                        (t, n)
                    })
                    .collect()
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres(db) => db.orphans(),
        }
    }
}

/// The URL of a new, empty database on the server named by `CLAIR_NOTIFIER_TEST_PG`, kept
/// after the test (for tests that give it to the binary), or `None` (with a note that the
/// test was skipped) when the variable is not set. Panics when the server cannot be reached.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> Option<String> {
    Some(pg::Database::create()?.keep())
}

/// Counts the rows of `table` about notifications that no longer exist.
fn orphans_query(table: &str) -> String {
    format!(
        "SELECT count(*) FROM {table} WHERE notification_id NOT IN (SELECT id FROM notification)"
    )
}

/// How many notifications the SQLite file at `path` holds leases on.
pub fn sqlite_leases(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(length(ids)), 0) / 8 FROM lease",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::atomic::{AtomicU32, Ordering};

    use clair_notifier::{PostgresOptions, PostgresStore, SslMode};

    /// The variable naming the test server (`postgres://user@127.0.0.1:port/db`).
    pub const VAR: &str = "CLAIR_NOTIFIER_TEST_PG";

    /// A database of its own on the test server, dropped with this value unless the test
    /// failed (then it is kept to look at).
    pub struct Database {
        admin: String,
        name: String,
        url: String,
        kept: bool,
    }

    impl Database {
        pub fn create() -> Option<Database> {
            static COUNT: AtomicU32 = AtomicU32::new(0);
            let admin = url_or_skip()?;
            let name = format!(
                "cn_it_{}_{}_{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed),
                fastrand::u32(..)
            );
            connect(&admin)
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("could not create the test database {name}: {e}"));
            let (base, _) = admin.rsplit_once('/').expect("a URL ending in /database");
            let url = format!("{base}/{name}");
            Some(Database {
                admin,
                name,
                url,
                kept: false,
            })
        }

        pub fn open(&self) -> PostgresStore {
            PostgresStore::open(&PostgresOptions {
                url: self.url.clone(),
                password: None,
                sslmode: SslMode::Prefer,
                sslrootcert: None,
            })
            .unwrap()
        }

        pub fn url(&self) -> &str {
            &self.url
        }

        /// This database's URL; the database is kept past this value.
        pub fn keep(mut self) -> String {
            self.kept = true;
            std::mem::take(&mut self.url)
        }

        /// One value of `query` on this database, through a connection of its own.
        pub fn query_i64(&self, query: &str) -> i64 {
            connect(&self.url).query_one(query, &[]).unwrap().get(0)
        }

        /// See [`TestDb::orphans`](super::TestDb::orphans).
        pub fn orphans(&self) -> Vec<(String, i64)> {
            let mut client = connect(&self.url);
            let tables: Vec<String> = client
                .query(
                    "SELECT table_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND column_name = 'notification_id' \
                     ORDER BY 1",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            tables
                .into_iter()
                .map(|t| {
                    let n = client
                        .query_one(&super::orphans_query(&t), &[])
                        .unwrap()
                        .get(0);
                    (t, n)
                })
                .collect()
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            if !self.kept && !std::thread::panicking() {
                let _ = connect(&self.admin).batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    /// The test server's URL, or `None` and a note (once per run) that the PostgreSQL tests
    /// were skipped.
    pub fn url_or_skip() -> Option<String> {
        let url = std::env::var(VAR).ok();
        if url.is_none() {
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
        }
        url
    }

    fn connect(url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{VAR} is set but its server cannot be reached: {e}"))
    }
}
