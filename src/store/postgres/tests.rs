//! What only the PostgreSQL store does, on a real server (`CLAIR_NOTIFIER_TEST_PG`; skipped
//! when it is not set). The contract itself is tested in `src/store/contract_tests.rs`.

use std::collections::HashSet;
use std::time::Duration;

use super::testing::{fresh_store, fresh_url, options};
use super::*;
use crate::notification::{Vulnerability, VulnerabilityWithLayers};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn one() -> NewNotification {
    NewNotification {
        old: None,
        new: Some(VulnerabilityWithLayers {
            vulnerability: Vulnerability {
                name: "CVE-1".into(),
                ..Vulnerability::default()
            },
            layers: vec!["l".into()],
        }),
    }
}

const A: LeaseOwner = LeaseOwner::new(1);

/// A claim is fenced by its own token: once an owner's lease lapsed and the same owner claimed
/// the notification again, the first claim can neither renew nor record.
#[test]
fn each_claim_is_fenced_by_its_own_token() {
    let Some(s) = fresh_store() else { return };
    let name = s.insert(&[one()], t(0)).unwrap().remove(0);
    let first = s.claim(A, 1, t(0), t(100)).unwrap().remove(0);
    let second = s.claim(A, 1, t(100), t(200)).unwrap().remove(0);
    assert_eq!(first.name, second.name);
    assert_ne!(first.id, second.id);
    assert_eq!(s.renew(A, &[first.id], t(1_000)).unwrap(), 0);
    let late = Outcome {
        log: Vec::new(),
        id: first.id,
        notified: true,
        next_due: t(9_000),
        attempts: 0,
        last_error: None,
        progress: Vec::new(),
    };
    s.record(A, std::slice::from_ref(&late), t(150)).unwrap();
    assert_eq!(s.summary(&name).unwrap().unwrap().notified, None);
    s.record(
        A,
        &[Outcome {
            log: Vec::new(),
            id: second.id,
            ..late
        }],
        t(160),
    )
    .unwrap();
    assert_eq!(s.summary(&name).unwrap().unwrap().notified, Some(t(160)));
}

/// Several instances claiming at once never get the same notification.
#[test]
fn concurrent_claims_never_overlap() {
    let Some(url) = fresh_url() else { return };
    let stores: Vec<PostgresStore> = (0..4)
        .map(|_| PostgresStore::open(&options(url.clone())).unwrap())
        .collect();
    let batch: Vec<_> = (0..400).map(|_| one()).collect();
    stores[0].insert(&batch, t(0)).unwrap();
    let claimed: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                scope.spawn(move || {
                    let owner = LeaseOwner::new(10 + i as i64);
                    let mut mine = Vec::new();
                    loop {
                        let got = s.claim(owner, 7, t(1), t(60_000)).unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|c| c.name));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 400, "every one claimed once");
    assert_eq!(distinct.len(), 400, "none twice");
}

/// An insert through one instance wakes the watchers of another at once (LISTEN/NOTIFY).
#[test]
fn inserts_by_another_instance_wake_watchers() {
    let Some(url) = fresh_url() else { return };
    let watching = PostgresStore::open(&options(url.clone())).unwrap();
    let inserting = PostgresStore::open(&options(url)).unwrap();
    let (waker, woken) = crate::wake::Waker::new();
    watching.watch(waker);
    // The listener connects on its own thread and wakes the watchers once it listens (what
    // was inserted before that was heard by nobody); from then on, each insert wakes them.
    woken
        .recv_timeout(Duration::from_secs(10))
        .expect("a wake-up once the listener listens");
    inserting.insert(&[one()], t(0)).unwrap();
    woken
        .recv_timeout(Duration::from_secs(10))
        .expect("a wake-up from another instance's insert");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = options(format!("postgres://alice:s3cret@127.0.0.1:{port}/q"));
    let e = PostgresStore::open(&o).unwrap_err();
    let text = format!("{e} {e:?}");
    assert_eq!(e.kind(), ErrorKind::Store);
    assert!(
        e.to_string().starts_with(&format!(
            "could not connect to PostgreSQL at 127.0.0.1:{port}/q"
        )),
        "{e}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

/// Instances opening one new database at once take turns creating the schema.
#[test]
fn instances_opening_at_once_create_the_schema_once() {
    let Some(url) = fresh_url() else { return };
    let opened: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PostgresStore::open(&options(url.clone())).map(drop)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    let s = PostgresStore::open(&options(url)).unwrap();
    let version = s
        .pool
        .with("reading", |c| {
            c.query(
                "SELECT count(*), max(version) FROM clair_notifier_schema",
                &[],
            )
        })
        .unwrap();
    assert_eq!(version[0].get::<_, i64>(0), 1);
    assert_eq!(version[0].get::<_, Option<i32>>(1), Some(schema::VERSION));
}

/// A database written before names had a table of their own (schema 4) keeps every name:
/// found, paged and marked read by name after the migration, and new names stay unique.
#[test]
fn names_written_before_their_table_existed_are_found_after_the_migration() {
    let Some(url) = fresh_url() else { return };
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("CREATE TABLE clair_notifier_schema (version integer NOT NULL)")
        .unwrap();
    for sql in &schema::MIGRATIONS[..4] {
        tx.batch_execute(sql).unwrap();
    }
    let name = "5b8c4e0c-5a1e-4c5e-9d62-6a0c7e6a3f10";
    tx.batch_execute(&format!(
        "INSERT INTO clair_notifier_schema (version) VALUES (4);
         INSERT INTO notification (name, created_at, due_at) VALUES ('{name}', 0, 0);
         INSERT INTO content (notification_id, new_vulnerability)
             SELECT id, '{{\"Name\":\"CVE-0\"}}' FROM notification;
         INSERT INTO layer (notification_id, side, seq, name)
             SELECT id, 1, 0, 'sha256:0' FROM notification;"
    ))
    .unwrap();
    tx.commit().unwrap();
    drop(client);

    let s = PostgresStore::open(&options(url)).unwrap();
    assert_eq!(s.summary(name).unwrap().unwrap().name, name);
    let page = s.page(name, PageCursor::FIRST, 10).unwrap().unwrap();
    assert_eq!(page.new.unwrap().layers, vec!["sha256:0".to_string()]);
    let added = s.insert(&[one()], t(1)).unwrap().remove(0);
    assert_eq!(s.summary(&added).unwrap().unwrap().name, added);
    assert!(s.mark_read(name, t(2)).unwrap());
    assert!(
        !s.mark_read("5b8c4e0c-5a1e-4c5e-9d62-6a0c7e6a3f11", t(2))
            .unwrap()
    );
    let names = s
        .pool
        .with("reading", |c| {
            c.query("SELECT count(*) FROM notification_name", &[])
        })
        .unwrap();
    assert_eq!(names[0].get::<_, i64>(0), 2);
}
