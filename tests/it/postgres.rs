//! Several instances of the real binary on one PostgreSQL database (`CLAIR_NOTIFIER_TEST_PG`,
//! see contrib/pg-test-cluster; each test skips with a note when it is not set), and the
//! server's faults.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clair_notifier::{Datastore, PostgresOptions, PostgresStore, SslMode, Timestamp};

use crate::common::bin::{BIN, log_tail, sigterm, spawn_serve, wait_exit};
use crate::common::rawhttp::{RawServer, response};
use crate::common::{sample, wait_for};

const VAR: &str = "CLAIR_NOTIFIER_TEST_PG";

/// The URL of a new, empty database on the test server; `None` (with a note) when the
/// variable is not set.
pub(crate) fn fresh_db() -> Option<String> {
    crate::common::backends::postgres_url()
}

pub(crate) fn open(url: &str) -> PostgresStore {
    PostgresStore::open(&PostgresOptions {
        url: url.to_string(),
        password: None,
        sslmode: SslMode::Prefer,
        sslrootcert: None,
    })
    .unwrap()
}

/// A directory with a `serve.toml` for the database `url`, POSTing to `endpoint`.
fn instance_dir(url: &str, endpoint: &str, notifier: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("serve.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n[notifier]\n{notifier}\n\
             [notifier.http]\nendpoint = \"{endpoint}\"\n[api]\naddr = \"\"\n"
        ),
    )
    .unwrap();
    dir
}

fn insert_many(store: &PostgresStore, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for start in (0..n).step_by(1000) {
        let batch: Vec<_> = (start..n.min(start + 1000))
            .map(|i| sample(&format!("CVE-{i}"), 1))
            .collect();
        names.extend(store.insert(&batch, Timestamp::now()).unwrap());
    }
    names
}

fn stop_all(children: &mut [Child], dirs: &[tempfile::TempDir]) {
    for c in children.iter() {
        sigterm(c);
    }
    for (c, d) in children.iter_mut().zip(dirs) {
        let status = wait_exit(c, Duration::from_secs(60), d.path());
        assert!(status.success(), "{status}: {}", log_tail(d.path(), 20));
    }
}

/// Three `serve` processes on one database deliver 20,000 notifications to one receiver: every
/// one is POSTed exactly once (the receiver always answers 200, so any extra POST would be a
/// double delivery), and every outcome is recorded.
#[test]
fn three_instances_deliver_20000_none_lost_none_doubled() {
    const N: usize = 20_000;
    let Some(url) = fresh_db() else { return };
    let store = open(&url);
    let rx = RawServer::http(|_| response(200, &[], b""));
    let names = insert_many(&store, N);
    let dirs: Vec<_> = (0..3)
        .map(|_| instance_dir(&url, &rx.http_url("/hook"), "workers = 8"))
        .collect();
    let start = Instant::now();
    let mut children: Vec<Child> = dirs.iter().map(|d| spawn_serve(d.path())).collect();
    wait_for("20,000 outcomes recorded", Duration::from_secs(600), || {
        store.counts(Timestamp::now()).unwrap().notified == N as u64
    });
    let took = start.elapsed();
    stop_all(&mut children, &dirs);
    let (by_name, total) = rx.names_seen();
    eprintln!(
        "three instances: {N} delivered in {:.1} s ({:.0}/s, debug build), {total} POSTs",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
    assert_eq!(by_name.len(), N, "none lost");
    // None doubled in the happy path: a POST beyond the first is allowed only for a try the
    // notification's attempt log holds as failed (a send that timed out under load may
    // still have reached the receiver).
    let mut extra = 0;
    for name in &names {
        let seen = by_name.get(name).copied().unwrap_or(0);
        if seen > 1 {
            let failed = store
                .attempts(name)
                .unwrap()
                .unwrap()
                .iter()
                .filter(|a| a.class != clair_notifier::attempt::AttemptClass::Ok)
                .count();
            assert!(
                seen - 1 <= failed,
                "{name}: {seen} POSTs, {failed} failed tries logged"
            );
            extra += seen - 1;
        }
    }
    assert_eq!(total, N + extra, "no POST of a name that was not inserted");
    let c = store.counts(Timestamp::now()).unwrap();
    assert_eq!((c.notified, c.leased, c.due), (N as u64, 0, 0));
}

/// One of three instances is killed with SIGKILL mid-run (default 10-minute lease): the others
/// take its leased work over (its owner lock is gone with its connection) and nothing is lost.
#[test]
fn an_instance_killed_mid_run_loses_nothing() {
    const N: usize = 6_000;
    let Some(url) = fresh_db() else { return };
    let store = open(&url);
    let rx = RawServer::http(|_| {
        std::thread::sleep(Duration::from_millis(2));
        response(200, &[], b"")
    });
    let names = insert_many(&store, N);
    let dirs: Vec<_> = (0..3)
        .map(|_| instance_dir(&url, &rx.http_url("/hook"), "workers = 8"))
        .collect();
    let mut children: Vec<Child> = dirs.iter().map(|d| spawn_serve(d.path())).collect();
    wait_for("1,500 sends", Duration::from_secs(300), || {
        rx.requests().len() >= 1500
    });
    let mut killed = children.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let at_kill = rx.requests().len();
    let after = Instant::now();
    wait_for(
        "every notification delivered",
        Duration::from_secs(300),
        || store.counts(Timestamp::now()).unwrap().notified == N as u64,
    );
    let took = after.elapsed();
    stop_all(&mut children, &dirs[1..]);
    let (by_name, total) = rx.names_seen();
    eprintln!(
        "killed one of three at {at_kill} POSTs: the rest delivered {:.1} s later; {} POSTs \
         for {N} ({} sent twice)",
        took.as_secs_f64(),
        total,
        total - by_name.len()
    );
    assert!(names.iter().all(|n| by_name.contains_key(n)), "none lost");
    let c = store.counts(Timestamp::now()).unwrap();
    assert_eq!((c.notified, c.leased), (N as u64, 0));
}

/// Runs `clair-notifier --config serve.toml ARGS` in `dir`; its exit code and stderr.
fn run(dir: &Path, args: &[&str], stdin: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["--config", "serve.toml"])
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With the server unreachable, `serve` and `add` exit 1 with one sentence naming host and
/// port (never the password), and nothing is stored.
#[test]
fn an_unreachable_server_stops_serve_and_add_with_one_sentence() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://alice:s3cret@127.0.0.1:{port}/q");
    let dir = instance_dir(&url, "", "");
    let (code, err) = run(dir.path(), &["serve"], "");
    assert_eq!(code, 1, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "clair-notifier: could not connect to PostgreSQL at 127.0.0.1:{port}/q"
        )),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let (code, err) = run(
        dir.path(),
        &["add"],
        "{\"New\":{\"Vulnerability\":{\"Name\":\"CVE-1\"}}}\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// A PostgreSQL cluster of the test's own (it is stopped and started under a running
/// service), removed when dropped.
struct OwnCluster(tempfile::TempDir);

impl OwnCluster {
    fn script(&self, command: &str) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/pg-test-cluster");
        let out = Command::new(script)
            .args([command, &self.0.path().join("pg").display().to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg-test-cluster {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.script("stop");
    }
}

/// The server stopped and started again under a running `serve`: the service logs, retries
/// with backoff, keeps the outcomes it holds and resumes; `add` during the outage exits 1 and
/// stores nothing; every notification is delivered, none lost.
#[test]
fn a_server_restart_under_a_running_service_loses_nothing() {
    const N: usize = 2_000;
    if std::env::var(VAR).is_err() {
        let _ = fresh_db();
        return;
    }
    let cluster = OwnCluster(tempfile::tempdir().unwrap());
    let url = cluster.script("start");
    let store = open(&url);
    let rx = RawServer::http(|_| {
        std::thread::sleep(Duration::from_millis(5));
        response(200, &[], b"")
    });
    let names = insert_many(&store, N);
    let dir = instance_dir(&url, &rx.http_url("/hook"), "workers = 4");
    let mut serve = spawn_serve(dir.path());
    wait_for("300 sends", Duration::from_secs(120), || {
        rx.requests().len() >= 300
    });
    cluster.script("pause");
    let (code, err) = run(
        dir.path(),
        &["add"],
        "{\"New\":{\"Vulnerability\":{\"Name\":\"CVE-during\"}}}\n",
    );
    assert_eq!(code, 1, "add during the outage: {err}");
    wait_for(
        "serve to log a failed write",
        Duration::from_secs(60),
        || crate::common::bin::log_count(dir.path(), "retrying in") > 0,
    );
    cluster.script("resume");
    wait_for(
        "every notification delivered",
        Duration::from_secs(300),
        || open(&url).counts(Timestamp::now()).unwrap().notified == N as u64,
    );
    sigterm(&serve);
    let status = wait_exit(&mut serve, Duration::from_secs(60), dir.path());
    assert!(status.success(), "{status}: {}", log_tail(dir.path(), 20));
    let (by_name, total) = rx.names_seen();
    eprintln!(
        "server restarted under serve: {N} delivered, {total} POSTs ({} twice)",
        total - by_name.len()
    );
    assert!(names.iter().all(|n| by_name.contains_key(n)), "none lost");
    let c = open(&url).counts(Timestamp::now()).unwrap();
    assert_eq!(
        c.total(),
        N as u64,
        "the add during the outage stored nothing"
    );
}

/// `migrate --to` copies an SQLite database of 10,000 notifications with layers (some read,
/// some delivered, some failing with their round's progress) into an empty PostgreSQL
/// database: the same counts, the same pages, and a page token handed out by the SQLite
/// instance reads the same next page from PostgreSQL. A second run is refused, changing
/// nothing.
#[test]
fn migrate_copies_a_sqlite_database_and_refuses_a_used_target() {
    use clair_notifier::api::Api;
    use clair_notifier::attempt::{Attempt, AttemptClass};
    use clair_notifier::store::{Breaker, LeaseOwner, NotifierProgress, Outcome, Sends};
    use clair_notifier::{ApiConfig, PageCursor, SqliteStore};
    use std::sync::Arc;

    const N: usize = 10_000;
    let Some(url) = fresh_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let sqlite = Arc::new(SqliteStore::open(&db).unwrap());
    let batch: Vec<_> = (0..N)
        .map(|i| sample(&format!("CVE-{i}"), if i % 500 == 0 { 150 } else { 3 }))
        .collect();
    let names = sqlite.insert(&batch, Timestamp::now()).unwrap();
    for name in names.iter().step_by(100) {
        sqlite.mark_read(name, Timestamp::now()).unwrap();
    }
    let owner = LeaseOwner::new(7);
    let now = Timestamp::now();
    let claimed = sqlite
        .claim(owner, 300, now, now.plus(Duration::from_secs(60)))
        .unwrap();
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| Outcome {
            // A failed try gets a row; a success is kept in the notification's row.
            log: vec![Attempt {
                notifier: "webhook".into(),
                started: now,
                duration: Duration::from_millis(i as u64),
                class: if i % 2 == 0 {
                    AttemptClass::Ok
                } else {
                    AttemptClass::Status
                },
                status: (i % 2 == 1).then_some(503),
                excerpt: (i % 2 == 1).then(|| format!("busy {i}")),
                next_due: Some(now.plus(Duration::from_secs(3600))),
            }],
            id: c.id,
            notified: i % 2 == 0,
            next_due: now.plus(Duration::from_secs(3600)),
            attempts: (i % 2) as u32,
            last_error: (i % 2 == 1).then(|| "HTTP 503".to_string()),
            progress: if i % 2 == 1 {
                vec![NotifierProgress {
                    notifier: "webhook".into(),
                    attempts: 1,
                    succeeded: false,
                    last_error: Some("HTTP 503".into()),
                }]
            } else {
                Vec::new()
            },
        })
        .collect();
    sqlite.record(owner, &outcomes, now).unwrap();
    // A paused notifier and an open circuit.
    sqlite.set_paused("webhook", true, now).unwrap();
    let sends = Sends {
        notifier: "other".into(),
        results: vec![false; 3],
        breaker: Breaker {
            failures: 3,
            probe: Duration::from_secs(30),
        },
    };
    sqlite.record_sends(&sends, now).unwrap();
    // A page token handed out before the move.
    let api = Api::new(&ApiConfig::default(), sqlite.clone()).unwrap();
    let big = &names[500];
    let first: serde_json::Value =
        serde_json::from_slice(&api.read_page(big, Some("40"), None).unwrap()).unwrap();
    let token = first["Notification"]["NextPage"]
        .as_str()
        .unwrap()
        .to_string();
    let second_sqlite = api.read_page(big, Some("40"), Some(&token)).unwrap();

    std::fs::write(
        dir.path().join("serve.toml"),
        format!("[database]\npath = \"{}\"\n", db.display()),
    )
    .unwrap();
    let migrate = |dir: &Path| {
        Command::new(BIN)
            .args(["--config", "serve.toml", "migrate", "--to", &url])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let out = migrate(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "copied {N} notifications (100 read, {} layer names, 300 attempts), 1 settings and \
             2 notifier states",
            20 * 150 + (N - 20) * 3
        )),
        "{stdout}"
    );

    let pg = Arc::new(open(&url));
    let now = Timestamp::now();
    let (a, b) = (sqlite.counts(now).unwrap(), pg.counts(now).unwrap());
    assert_eq!(
        (a.pending, a.notified, a.failing, a.read),
        (b.pending, b.notified, b.failing, b.read)
    );
    assert_eq!((b.notified, b.failing, b.read), (150, 150, 100));
    for name in names.iter().step_by(97).chain([big]) {
        let (x, y) = (
            sqlite.page(name, PageCursor::FIRST, 1000).unwrap().unwrap(),
            pg.page(name, PageCursor::FIRST, 1000).unwrap().unwrap(),
        );
        assert_eq!((&x.old, &x.new, x.next), (&y.old, &y.new, y.next), "{name}");
        let (xs, ys) = (x.summary, y.summary);
        assert_eq!(
            (
                xs.name,
                xs.created,
                xs.notified,
                xs.read,
                xs.attempts,
                xs.last_error
            ),
            (
                ys.name,
                ys.created,
                ys.notified,
                ys.read,
                ys.attempts,
                ys.last_error
            )
        );
    }
    let api_pg = Api::new(&ApiConfig::default(), pg.clone()).unwrap();
    let second_pg = api_pg.read_page(big, Some("40"), Some(&token)).unwrap();
    assert_eq!(
        second_sqlite, second_pg,
        "a token handed out before the move still works"
    );
    // The attempt log came along, and the notifiers' states.
    for c in &claimed {
        let log = pg.attempts(&c.name).unwrap().unwrap();
        assert_eq!(log.len(), 1, "{}", c.name);
        assert_eq!(
            log,
            sqlite.attempts(&c.name).unwrap().unwrap(),
            "{}",
            c.name
        );
    }
    let later = now.plus(Duration::from_secs(1));
    let states = pg.notifiers(later).unwrap();
    assert_eq!(states, sqlite.notifiers(later).unwrap());
    assert_eq!(states.len(), 2);
    assert!(states[0].open_since.is_some() && states[1].paused.is_some());
    assert_eq!(states[1].waiting, 150, "the failing ones wait for webhook");
    // The round's progress came along: the failing ones are claimed with it.
    let retry = pg
        .claim(
            owner,
            2 * N,
            now.plus(Duration::from_secs(7200)),
            now.plus(Duration::from_secs(7300)),
        )
        .unwrap();
    assert_eq!(retry.iter().filter(|c| !c.progress.is_empty()).count(), 150);

    let again = migrate(dir.path());
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already holds notifications"), "{err}");
    assert_eq!(pg.counts(Timestamp::now()).unwrap().total(), N as u64);
}

/// TLS to the server, with certificates always verified: on a cluster of the test's own that
/// accepts TLS connections only (`hostssl`), `verify-full` with the CA connects by the name in
/// the certificate and refuses another name; `require` verifies the chain, not the name;
/// `prefer` and `require` refuse a certificate the CA did not sign; `disable` is refused by
/// the server. Every error is one sentence naming host and port.
#[test]
fn tls_to_the_server_is_verified_in_every_mode() {
    use crate::common::tls::Pki;
    use std::os::unix::fs::{PermissionsExt, chown};

    if std::env::var(VAR).is_err() {
        let _ = fresh_db();
        return;
    }
    let cluster = OwnCluster(tempfile::tempdir().unwrap());
    let url = cluster.script("start");
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let pki = Pki::new(&["localhost"]);
    let data = cluster.0.path().join("pg/data");
    let pg_uid = std::fs::metadata(&data).unwrap().uid_gid();
    for (from, to) in [
        (&pki.server_cert, "server.pem"),
        (&pki.server_key, "server.key"),
    ] {
        let dest = data.join(to);
        std::fs::copy(from, &dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown(&dest, Some(pg_uid.0), Some(pg_uid.1)).unwrap();
    }
    std::fs::write(
        data.join("pg_hba.conf"),
        "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for sql in [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.pem'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    drop(admin);
    let attempt = |host: &str, mode: SslMode, ca: &Path| {
        PostgresStore::open(&PostgresOptions {
            url: format!("postgres://postgres:s3cret@{host}:{port}/postgres"),
            password: None,
            sslmode: mode,
            sslrootcert: Some(ca.to_path_buf()),
        })
    };
    wait_for("the server to require TLS", Duration::from_secs(30), || {
        attempt("127.0.0.1", SslMode::Disable, &pki.ca).is_err()
    });
    attempt("localhost", SslMode::VerifyFull, &pki.ca)
        .expect("verify-full by the certificate's name");
    attempt("127.0.0.1", SslMode::Require, &pki.ca).expect("require: the chain is verified");
    for (host, mode, ca, why) in [
        (
            "127.0.0.1",
            SslMode::VerifyFull,
            &pki.ca,
            "another name than the certificate's",
        ),
        (
            "127.0.0.1",
            SslMode::Require,
            &pki.other_ca,
            "a CA that did not sign it",
        ),
        (
            "127.0.0.1",
            SslMode::Prefer,
            &pki.other_ca,
            "prefer verifies too",
        ),
        (
            "127.0.0.1",
            SslMode::Disable,
            &pki.ca,
            "the server accepts TLS only",
        ),
    ] {
        let e = attempt(host, mode, ca)
            .err()
            .unwrap_or_else(|| panic!("{why}: connected"));
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "could not connect to PostgreSQL at {host}:{port}/postgres"
            )),
            "{why}: {text}"
        );
        assert!(!format!("{text} {e:?}").contains("s3cret"), "{why}: {text}");
    }
}

trait UidGid {
    fn uid_gid(&self) -> (u32, u32);
}

impl UidGid for std::fs::Metadata {
    fn uid_gid(&self) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        (self.uid(), self.gid())
    }
}
