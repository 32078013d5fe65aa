//! Retention: read notifications deleted `retention.read` after they were read, never an
//! unread one (on each backend); an SQLite file that stops growing under a steady load
//! (incremental auto-vacuum); and `clair-notifier vacuum` for an SQLite database made before
//! it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clair_notifier::notification::PageCursor;
use clair_notifier::store::{DeleteRequest, LeaseOwner};
use clair_notifier::{Datastore, NotifierConfig, RetentionConfig, Service, SqliteStore, Timestamp};

use crate::common::backends::{TestDb, on_every_backend};
use crate::common::receiver::Receiver;
use crate::common::recording::Recording;
use crate::common::{OffsetClock, sample, temp_db, wait_for};

const DAY: Duration = Duration::from_secs(86_400);

/// The collector of the tests that call the store themselves.
const ME: LeaseOwner = LeaseOwner::new(1);

/// A request of `collector` for `limit` notifications read at or before `read_before`, at
/// `now`.
fn req(
    collector: LeaseOwner,
    read_before: Timestamp,
    limit: usize,
    now: Timestamp,
) -> DeleteRequest {
    DeleteRequest {
        collector,
        read_before,
        limit,
        now,
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

/// One value of an SQL query on the file, as another process would see it.
fn sql(path: &Path, query: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Nothing about a deleted notification is left behind, in any table.
fn assert_no_orphans(db: &TestDb) {
    let orphans = db.orphans();
    assert!(
        orphans.iter().any(|(t, _)| t == "content"),
        "the tables about notifications were found: {orphans:?}"
    );
    for (table, n) in orphans {
        assert_eq!(n, 0, "{table} rows left behind");
    }
}

on_every_backend!(
    delete_read_takes_the_longest_read_first_and_never_an_unread_one,
    the_service_deletes_what_was_read_past_retention_and_nothing_else,
    #[cfg(feature = "api")]
    a_get_of_a_deleted_notification_is_404,
    a_collector_killed_by_a_panicking_store_makes_the_service_unhealthy,
    collectors_take_turns,
    with_two_services_on_one_database_one_collects,
    an_outcome_or_release_for_a_deleted_notification_is_passed_over,
);

fn delete_read_takes_the_longest_read_first_and_never_an_unread_one(db: TestDb) {
    let store = db.open();
    // 100 layers a side: content rows and layer chunks to delete with each notification.
    let names = store
        .insert(
            &(0..5)
                .map(|i| sample(&format!("CVE-{i}"), 100))
                .collect::<Vec<_>>(),
            t(0),
        )
        .unwrap();
    for (i, name) in names[..3].iter().enumerate() {
        assert!(store.mark_read(name, t(1000 * (i as i64 + 1))).unwrap());
    }
    // names[3] and names[4] stay unread, though older than every cut-off below.
    assert_eq!(
        store.delete_read(req(ME, t(500), 10, t(30_000))).unwrap(),
        0,
        "none read by then"
    );
    assert_eq!(
        store.delete_read(req(ME, t(10_000), 1, t(30_000))).unwrap(),
        1,
        "a batch of one"
    );
    assert_eq!(
        store.summary(&names[0]).unwrap(),
        None,
        "the oldest read went first"
    );
    assert!(store.summary(&names[1]).unwrap().is_some());
    assert_eq!(
        store.delete_read(req(ME, t(2000), 10, t(30_000))).unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_read(req(ME, t(i64::MAX / 2), 0, t(30_000)))
            .unwrap(),
        0,
        "limit 0"
    );
    let c = store.counts(t(10_000)).unwrap();
    assert_eq!((c.read, c.total()), (1, 3), "{c:?}");
    assert_eq!(
        store
            .delete_read(req(ME, t(i64::MAX / 2), 10, t(30_000)))
            .unwrap(),
        1
    );
    for gone in &names[..3] {
        assert_eq!(store.summary(gone).unwrap(), None);
        assert_eq!(store.page(gone, PageCursor::FIRST, 10).unwrap(), None);
        assert!(
            !store.mark_read(gone, t(20_000)).unwrap(),
            "no such notification"
        );
    }
    for kept in &names[3..] {
        let p = store.page(kept, PageCursor::FIRST, 200).unwrap().unwrap();
        assert_eq!(p.new.unwrap().layers.len(), 100);
    }
    assert_no_orphans(&db);
    if let Some(path) = db.sqlite_path() {
        assert_eq!(integrity(path), "ok");
    }
}

fn config(url: &str) -> NotifierConfig {
    let mut c = NotifierConfig::default();
    c.http.endpoint = url.to_string();
    c.http.timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(50);
    c
}

/// More than one batch of read notifications past retention are deleted by the service; an
/// unread one, older than all of them, and one read too recently stay.
fn the_service_deletes_what_was_read_past_retention_and_nothing_else(db: TestDb) {
    let rx = Receiver::start(4);
    let store = db.recording();
    let clock = OffsetClock::default();
    let unread = store.insert(&[sample("CVE-U", 3)], clock.now()).unwrap()[0].clone();
    let batch: Vec<_> = (0..450).map(|i| sample(&format!("CVE-{i}"), 3)).collect();
    let names = store.insert(&batch, clock.now()).unwrap();
    let retention = RetentionConfig {
        read: DAY,
        ..RetentionConfig::default()
    };
    let handle = Service::new(config(&rx.url()), store.clone())
        .clock(clock.clock())
        .retention(retention)
        .start()
        .unwrap();
    wait_for("451 delivered", Duration::from_secs(30), || {
        store.counts(clock.now()).unwrap().notified == 451
    });
    for n in &names[..449] {
        store.mark_read(n, clock.now()).unwrap();
    }
    // Not yet: the collector looks (twice, so once after every mark) and deletes nothing.
    let looked = store.deletes().len();
    wait_for(
        "the collector to look twice",
        Duration::from_secs(10),
        || store.deletes().len() >= looked + 2,
    );
    assert_eq!(store.counts(clock.now()).unwrap().read, 449);
    clock.advance(DAY + Duration::from_secs(1));
    // The last one is read a day after the others: it is kept a day longer.
    store.mark_read(&names[449], clock.now()).unwrap();
    wait_for("449 deleted", Duration::from_secs(30), || {
        store.deletes().iter().sum::<usize>() == 449
    });
    let looked = store.deletes().len();
    wait_for(
        "the collector to look again",
        Duration::from_secs(10),
        || store.deletes().len() > looked,
    );
    let metrics = handle.metrics();
    handle.stop();
    let deletes = store.deletes();
    assert!(
        deletes.iter().all(|&n| n <= 100),
        "batches of at most 100: {deletes:?}"
    );
    assert_eq!(deletes.iter().sum::<usize>(), 449, "{deletes:?}");
    assert_eq!(metrics.deleted(), 449);
    let c = store.counts(clock.now()).unwrap();
    assert_eq!((c.read, c.notified, c.total()), (1, 1, 2), "{c:?}");
    assert!(store.summary(&unread).unwrap().is_some(), "unread is kept");
    assert!(store.summary(&names[449]).unwrap().is_some());
    assert_eq!(store.summary(&names[0]).unwrap(), None);
}

/// The read API answers 404 for a notification that retention deleted, as for one that never
/// existed.
#[cfg(feature = "api")]
fn a_get_of_a_deleted_notification_is_404(db: TestDb) {
    use clair_notifier::api::Server;
    let store = db.open();
    let name = store.insert(&[sample("CVE-1", 2)], t(0)).unwrap()[0].clone();
    let config = clair_notifier::ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let server = Server::start(&config, store.clone(), None).unwrap();
    let url = format!("http://{}/v1/notifications/{name}?limit=1", server.addr());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    assert_eq!(agent.get(&url).call().unwrap().status(), 200);
    store.mark_read(&name, t(1)).unwrap();
    assert_eq!(agent.get(&url).call().unwrap().status(), 200, "read, kept");
    assert_eq!(store.delete_read(req(ME, t(1), 10, t(30_000))).unwrap(), 1);
    let mut gone = agent.get(&url).call().unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(
        gone.body_mut().read_to_string().unwrap(),
        "{\"Error\":{\"Message\":\"the resource cannot be found\"}}\n"
    );
    let del = agent
        .delete(format!("http://{}/v1/notifications/{name}", server.addr()))
        .call()
        .unwrap();
    assert_eq!(del.status(), 404);
}

/// The database file's size once its write-ahead log is copied in (as after any checkpoint).
fn checkpointed_size(path: &Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    // A checkpoint that a running service's transaction kept from finishing says so (busy):
    // tried again until the whole log is in the file.
    wait_for("a complete checkpoint", Duration::from_secs(30), || {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        busy == 0
    });
    std::fs::metadata(path).unwrap().len()
}

/// A steady load: each cycle inserts 100 notifications with 80 layers a side, the service
/// delivers them to a loopback receiver, each is marked read, and time moves past retention.
/// The file's size after cycle 10 is within 10 % of its size after cycle 3, at the end of a
/// cycle (everything deleted) and at its peak (everything read, nothing yet deleted).
#[test]
fn under_a_steady_cycle_the_file_stops_growing() {
    const CYCLES: usize = 10;
    const PER_CYCLE: usize = 100;
    let rx = Receiver::start(4);
    let (_dir, path) = temp_db();
    let store = Arc::new(Recording::new(SqliteStore::open(&path).unwrap()));
    let clock = OffsetClock::default();
    let handle = Service::new(config(&rx.url()), store.clone())
        .clock(clock.clock())
        .retention(RetentionConfig {
            read: DAY,
            ..RetentionConfig::default()
        })
        .start()
        .unwrap();
    let (mut peaks, mut ends) = (Vec::new(), Vec::new());
    for cycle in 1..=CYCLES {
        let batch: Vec<_> = (0..PER_CYCLE)
            .map(|i| {
                let mut n = sample(&format!("CVE-{cycle}-{i}"), 80);
                n.old = n.new.clone();
                n
            })
            .collect();
        let names = store.insert(&batch, clock.now()).unwrap();
        wait_for("the cycle delivered", Duration::from_secs(30), || {
            names.iter().all(|n| rx.count_for(n) == 1)
                && store.counts(clock.now()).unwrap().notified == PER_CYCLE as u64
        });
        for n in &names {
            assert!(store.mark_read(n, clock.now()).unwrap());
        }
        peaks.push(checkpointed_size(&path));
        clock.advance(DAY + Duration::from_secs(1));
        let want = cycle * PER_CYCLE;
        wait_for("the cycle deleted", Duration::from_secs(30), || {
            store.deletes().iter().sum::<usize>() == want
        });
        assert_eq!(store.counts(clock.now()).unwrap().total(), 0);
        wait_for("the freed pages returned", Duration::from_secs(30), || {
            sql(&path, "PRAGMA freelist_count") == 0
        });
        ends.push(checkpointed_size(&path));
    }
    handle.stop();
    let kib = |v: &[u64]| v.iter().map(|b| b / 1024).collect::<Vec<_>>();
    eprintln!(
        "file size (KiB) per cycle of {PER_CYCLE} notifications: at the peak {:?}, at the end {:?}",
        kib(&peaks),
        kib(&ends)
    );
    for (what, sizes) in [("peak", &peaks), ("end", &ends)] {
        let (third, tenth) = (sizes[2] as f64, sizes[9] as f64);
        assert!(
            (tenth - third).abs() <= third * 0.10,
            "{what} size after cycle 10 ({tenth} bytes) is not within 10 % of cycle 3's ({third})"
        );
    }
    assert!(
        ends[9] < peaks[9] / 2,
        "deleting returned the space to the file system: {ends:?} after peaks {peaks:?}"
    );
    assert_eq!(integrity(&path), "ok");
}

/// Runs `clair-notifier --config c.toml vacuum` in `dir`: exit code, stdout, stderr.
#[cfg(feature = "cli")]
fn vacuum(dir: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::common::bin::BIN)
        .args(["--config", "c.toml", "vacuum"])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database made before incremental auto-vacuum keeps working (deletes leave free pages
/// for later inserts); `vacuum` refuses while another process has it open, then converts it.
#[cfg(feature = "cli")]
#[test]
fn vacuum_converts_an_older_database_and_refuses_while_it_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("n.db");
    std::fs::write(
        d.join("c.toml"),
        "[database]\npath = \"n.db\"\n[api]\naddr = \"\"\n",
    )
    .unwrap();
    let (code, _, stderr) = vacuum(d);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("there is no database at n.db"), "{stderr}");
    assert!(!path.exists(), "vacuum created nothing");

    let store = SqliteStore::open(&path).unwrap();
    let batch: Vec<_> = (0..300).map(|i| sample(&format!("CVE-{i}"), 40)).collect();
    let names = store.insert(&batch, t(0)).unwrap();
    let kept = store.insert(&[sample("CVE-KEPT", 5)], t(0)).unwrap()[0].clone();
    for n in &names {
        store.mark_read(n, t(1)).unwrap();
    }
    drop(store);
    assert_eq!(
        sql(&path, "PRAGMA auto_vacuum"),
        2,
        "new databases: incremental"
    );
    // As a database made before this version: no auto-vacuum.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    drop(conn);
    assert_eq!(sql(&path, "PRAGMA auto_vacuum"), 0);

    let store = SqliteStore::open(&path).unwrap();
    let full = checkpointed_size(&path);
    assert_eq!(
        store.delete_read(req(ME, t(1), 1000, t(30_000))).unwrap(),
        300
    );
    let after_delete = checkpointed_size(&path);
    assert_eq!(after_delete, full, "an older database keeps its pages");
    assert!(sql(&path, "PRAGMA freelist_count") > 0);

    // This process holds the database open: vacuum refuses and changes nothing.
    let (code, stdout, stderr) = vacuum(d);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("n.db is open in another process") && stderr.contains("to itself"),
        "{stderr}"
    );
    assert_eq!(sql(&path, "PRAGMA auto_vacuum"), 0);
    assert_eq!(checkpointed_size(&path), after_delete);
    drop(store);

    let (code, stdout, stderr) = vacuum(d);
    assert_eq!(code, Some(0), "{stderr}");
    eprintln!("{stderr}{stdout}");
    assert!(
        stderr.contains("needs the database to itself") && stderr.contains("of free disk"),
        "{stderr}"
    );
    assert!(stdout.contains("converted"), "{stdout}");
    assert_eq!(sql(&path, "PRAGMA auto_vacuum"), 2);
    assert_eq!(sql(&path, "PRAGMA freelist_count"), 0);
    let vacuumed = checkpointed_size(&path);
    eprintln!(
        "older database: {} KiB full, {} KiB after deleting 300 of 301, {} KiB after vacuum",
        full / 1024,
        after_delete / 1024,
        vacuumed / 1024
    );
    assert!(vacuumed < after_delete / 4, "{vacuumed} of {after_delete}");
    assert_eq!(integrity(&path), "ok");
    let store = SqliteStore::open(&path).unwrap();
    let p = store.page(&kept, PageCursor::FIRST, 10).unwrap().unwrap();
    assert_eq!(p.new.unwrap().layers.len(), 5, "the data is intact");
    drop(store);
    let (code, stdout, _) = vacuum(d);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("already"), "{stdout}");
    let help = std::process::Command::new(crate::common::bin::BIN)
        .args(["vacuum", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.starts_with("Usage: clair-notifier [--config FILE] vacuum\n")
            && help.contains("refuses, changing nothing, while another process has the database open.\nNeeds free disk about the size of the file"),
        "{help}"
    );
}

/// Bad `[retention]` values are refused by `check-config` (and so by `serve`) with the key and
/// line; good ones are described.
#[cfg(feature = "cli")]
#[test]
fn retention_keys_are_checked_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |toml: &str| {
        std::fs::write(d.join("c.toml"), toml).unwrap();
        let out = std::process::Command::new(crate::common::bin::BIN)
            .args(["--config", "c.toml", "check-config"])
            .current_dir(d)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let hook = "[notifier.http]\nendpoint = \"http://127.0.0.1:9/\"\n";
    for (toml, want) in [
        (
            "[retention]\nread = \"30\"\n",
            "c.toml: line 2: retention.read: invalid duration \"30\": write a whole number and a \
             unit, like 250ms, 5s, 15m, 2h or 1d, or \"0\" to keep forever.",
        ),
        (
            "[retention]\nattempts = 7\n",
            "c.toml: line 2: retention.attempts: expected a string, found the number 7.",
        ),
        (
            "[retention]\nread_after = \"1d\"\n",
            "c.toml: line 2: unknown key `retention.read_after` (expected read or attempts).",
        ),
    ] {
        let (code, stdout, stderr) = run(toml);
        assert_eq!(code, Some(2), "{toml}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, format!("clair-notifier: {want}\n"), "{toml}");
    }
    let (code, stdout, stderr) = run(&format!("{hook}[retention]\nread = \"12h\"\n"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("retention      read notifications deleted 12h after they were read"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&format!("{hook}[retention]\nread = \"0\"\n"));
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("retention      read notifications kept forever"),
        "{stdout}"
    );
}

/// The collector is one of the service's threads: killed by a panicking store, the service is
/// unhealthy (as `/health` then says), though it never asked to stop.
fn a_collector_killed_by_a_panicking_store_makes_the_service_unhealthy(db: TestDb) {
    use clair_notifier::service::ServiceState;
    let rx = Receiver::start(2);
    let store = db.recording();
    let handle = Service::new(config(&rx.url()), store.clone())
        .start()
        .unwrap();
    wait_for("the collector to look", Duration::from_secs(10), || {
        !store.deletes().is_empty()
    });
    assert_eq!(handle.liveness().state(), ServiceState::Running);
    store
        .panic_on_delete
        .store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for("the collector to die", Duration::from_secs(10), || {
        handle.liveness().state() == ServiceState::Failed
    });
    assert!(!handle.stopper().is_stopped(), "nobody asked for a stop");
    handle.stop();
}

/// A collector that deleted holds a turn for a minute past its last batch: meanwhile another
/// collector deletes nothing, after it the other may.
fn collectors_take_turns(db: TestDb) {
    let store = db.open();
    let other = LeaseOwner::new(2);
    let names = store
        .insert(
            &(0..4)
                .map(|i| sample(&format!("CVE-{i}"), 1))
                .collect::<Vec<_>>(),
            t(0),
        )
        .unwrap();
    for n in &names {
        store.mark_read(n, t(1)).unwrap();
    }
    let minute = 60_000;
    assert_eq!(store.delete_read(req(other, t(1), 0, t(0))).unwrap(), 0);
    assert_eq!(store.delete_read(req(ME, t(1), 1, t(10_000))).unwrap(), 1);
    assert_eq!(
        store.delete_read(req(other, t(1), 1, t(20_000))).unwrap(),
        0,
        "ME's turn"
    );
    assert_eq!(store.delete_read(req(ME, t(1), 1, t(20_000))).unwrap(), 1);
    assert_eq!(
        store
            .delete_read(req(other, t(1), 1, t(20_000 + minute - 1)))
            .unwrap(),
        0,
        "extended by ME's second batch"
    );
    assert_eq!(
        store
            .delete_read(req(other, t(1), 1, t(20_000 + minute + 1)))
            .unwrap(),
        1,
        "ME's turn is over"
    );
    assert_eq!(
        store.delete_read(req(ME, t(1), 1, t(90_000))).unwrap(),
        0,
        "other's turn"
    );
    assert_eq!(store.counts(t(90_000)).unwrap().read, 1);
}

/// Two services on one database with a backlog to delete: while the first to delete holds its
/// turn (paused between two batches), the other looks and deletes nothing; the first deletes
/// it all.
fn with_two_services_on_one_database_one_collects(db: TestDb) {
    use std::sync::atomic::Ordering;
    let rx = Receiver::start(2);
    let (a, b) = (db.recording(), db.recording());
    let long_ago = Timestamp::now().minus(40 * DAY);
    let names = a
        .insert(
            &(0..500)
                .map(|i| sample(&format!("CVE-{i}"), 1))
                .collect::<Vec<_>>(),
            long_ago,
        )
        .unwrap();
    for n in &names {
        a.mark_read(n, long_ago).unwrap();
    }
    a.deletes_let_through.store(1, Ordering::SeqCst);
    let ha = Service::new(config(&rx.url()), a.clone()).start().unwrap();
    wait_for("a's first batch", Duration::from_secs(10), || {
        a.deletes().first() == Some(&100)
    });
    let hb = Service::new(config(&rx.url()), b.clone()).start().unwrap();
    wait_for("b to look twice", Duration::from_secs(10), || {
        b.deletes().len() >= 2
    });
    assert_eq!(a.counts(Timestamp::now()).unwrap().read, 400, "a's turn");
    a.deletes_let_through.store(usize::MAX, Ordering::SeqCst);
    wait_for("a to delete the rest", Duration::from_secs(30), || {
        a.deletes().iter().sum::<usize>() == 500
    });
    ha.stop();
    hb.stop();
    let db = b.deletes();
    assert!(db.iter().all(|&n| n == 0), "b deleted: {db:?}");
    assert_eq!(a.counts(Timestamp::now()).unwrap().total(), 0);
}

/// `vacuum` refuses while `serve` runs on the database, and works once it has stopped.
#[cfg(feature = "cli")]
#[test]
fn vacuum_refuses_while_serve_runs() {
    use crate::common::bin::{log_tail, sigterm, spawn_serve, wait_exit, wait_started};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = "[database]\npath = \"n.db\"\n[notifier.http]\nendpoint = \"http://127.0.0.1:9/\"\n\
                [api]\naddr = \"\"\n";
    std::fs::write(d.join("serve.toml"), toml).unwrap();
    std::fs::write(d.join("c.toml"), toml).unwrap();
    let mut serve = spawn_serve(d);
    wait_started(d, 0);
    let before = std::fs::read(d.join("n.db")).unwrap();
    let (code, stdout, stderr) = vacuum(d);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("n.db is open in another process (stop serve"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(d.join("n.db")).unwrap(), before, "unchanged");
    sigterm(&serve);
    let status = wait_exit(&mut serve, Duration::from_secs(30), d);
    assert_eq!(status.code(), Some(0), "{}", log_tail(d, 20));
    let (code, stdout, stderr) = vacuum(d);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("already"), "{stdout}");
}

/// A notification deleted while another instance still held it (claimed, then read, then past
/// retention): the holder's outcome and release pass it over, nothing comes back, and the
/// next claim finds nothing.
fn an_outcome_or_release_for_a_deleted_notification_is_passed_over(db: TestDb) {
    use clair_notifier::store::{NotifierProgress, Outcome};
    let store = db.open();
    let names = store
        .insert(&[sample("CVE-1", 50), sample("CVE-2", 50)], t(0))
        .unwrap();
    let holder = LeaseOwner::new(7);
    let claimed = store.claim(holder, 10, t(1), t(600_000)).unwrap();
    assert_eq!(claimed.len(), 2);
    for n in &names {
        store.mark_read(n, t(2)).unwrap();
    }
    assert_eq!(store.delete_read(req(ME, t(2), 10, t(3))).unwrap(), 2);
    let failed = Outcome {
        log: Vec::new(),
        id: claimed[0].id,
        notified: false,
        next_due: t(5),
        attempts: 1,
        last_error: Some("webhook: got status 500".into()),
        progress: vec![NotifierProgress {
            notifier: "webhook".into(),
            attempts: 1,
            succeeded: false,
            last_error: Some("webhook: got status 500".into()),
        }],
    };
    store.record(holder, &[failed], t(4)).unwrap();
    store.release(holder, &[claimed[1].id], t(4)).unwrap();
    assert_eq!(store.counts(t(10)).unwrap().total(), 0);
    assert_eq!(store.next_due().unwrap(), None);
    assert!(
        store
            .claim(LeaseOwner::new(8), 10, t(10), t(20))
            .unwrap()
            .is_empty()
    );
    assert_no_orphans(&db);
}
