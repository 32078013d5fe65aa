//! Store operations on real SQLite files, with time passed in: what only the SQLite store
//! does (its files, pragmas, schema, lease rows). The contract every backend keeps is tested
//! once for all of them, in `src/store/contract_tests.rs`.

use super::*;
use crate::notification::{Vulnerability, VulnerabilityWithLayers};

use crate::store::contract_tests::vuln;
pub(super) use crate::store::contract_tests::{done, new_only, t};

pub(super) fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("test.db")).unwrap();
    (dir, store)
}

pub(super) const A: LeaseOwner = LeaseOwner::new(1);
pub(super) const B: LeaseOwner = LeaseOwner::new(2);

/// The names `A` claims at `now` (up to 10, leased for a while).
fn claimed_names(store: &SqliteStore, now: Timestamp) -> Vec<String> {
    let claimed = store.claim(A, 10, now, now.plus(Duration::from_secs(100)));
    claimed.unwrap().into_iter().map(|c| c.name).collect()
}

/// A database's schema version, read on `conn`.
fn user_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// The pragmas this store sets, read back from its writer connection.
fn pragmas(store: &SqliteStore) -> std::collections::HashMap<&'static str, String> {
    let conn = store.writer();
    let names = [
        "journal_mode",
        "synchronous",
        "busy_timeout",
        "foreign_keys",
        "temp_store",
        "page_size",
    ];
    let read = |name: &str| -> String {
        let v: rusqlite::types::Value = conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap();
        match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        }
    };
    names.into_iter().map(|n| (n, read(n))).collect()
}

#[test]
fn pragmas_took_effect() {
    let (_dir, store) = open();
    let p = pragmas(&store);
    assert_eq!(p["journal_mode"], "wal");
    assert_eq!(p["synchronous"], "1", "NORMAL outside durable commits");
    assert_eq!(p["busy_timeout"], "5000");
    assert_eq!(p["foreign_keys"], "1");
    assert_eq!(p["temp_store"], "2");
    assert_eq!(p["page_size"], "8192");
    // A durable write restores NORMAL afterwards.
    store.insert(&[new_only(0)], t(0)).unwrap();
    let p = pragmas(&store);
    assert_eq!(p["synchronous"], "1");
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let names = SqliteStore::open(&path)
        .unwrap()
        .insert(&[new_only(2)], t(5))
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let s = store.summary(&names[0]).unwrap().unwrap();
    assert_eq!(s.created, t(5));
    let v: i64 = user_version(&store.writer());
    assert_eq!(v, schema::VERSION);
}

#[test]
fn foreign_and_garbage_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let bytes = b"this is not a database at all, just some text that is long enough".repeat(100);
    std::fs::write(&garbage, &bytes).unwrap();
    let err = SqliteStore::open(&garbage).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotADatabase);
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
    assert_eq!(std::fs::read(&garbage).unwrap(), bytes);

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE mine (x)")
        .unwrap();
    let before = std::fs::read(&foreign).unwrap();
    let err = SqliteStore::open(&foreign).unwrap_err();
    assert!(err.to_string().contains("another program"), "{err}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        before,
        "not switched to WAL"
    );
}

/// Leases are one row per owner: written by its claims, emptied by its outcomes and releases
/// (then deleted), and deleted by another owner's claim once expired.
#[test]
fn lease_rows_follow_their_owners() {
    let (_dir, store) = open();
    let rows = |store: &SqliteStore| -> Vec<(i64, i64, usize)> {
        let conn = store.writer();
        let mut stmt = conn
            .prepare("SELECT owner, until, length(ids) / 8 FROM lease ORDER BY owner")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as usize))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    let batch: Vec<_> = (0..4).map(|_| new_only(0)).collect();
    store.insert(&batch, t(0)).unwrap();
    let a = store.claim(A, 2, t(10), t(100)).unwrap();
    let b = store.claim(B, 1, t(10), t(500)).unwrap();
    assert_eq!(rows(&store), [(A.0, 100, 2), (B.0, 500, 1)]);
    store.record(A, &[done(a[0].id, t(9_000))], t(20)).unwrap();
    assert_eq!(rows(&store), [(A.0, 100, 1), (B.0, 500, 1)]);
    store.release(A, &[a[1].id], t(30)).unwrap();
    assert_eq!(
        rows(&store),
        [(B.0, 500, 1)],
        "an owner holding nothing has no row"
    );
    // A claims again; B's lease expires and A's next claim deletes it and takes its work.
    assert_eq!(store.claim(A, 10, t(40), t(1_000)).unwrap().len(), 2);
    assert_eq!(rows(&store), [(A.0, 1_000, 2), (B.0, 500, 1)]);
    let taken = store.claim(A, 10, t(500), t(2_000)).unwrap();
    assert_eq!(taken.iter().map(|c| c.id).collect::<Vec<_>>(), [b[0].id]);
    assert_eq!(rows(&store), [(A.0, 2_000, 3)]);
    // B's late outcome changes nothing.
    store.record(B, &[done(b[0].id, t(9_000))], t(600)).unwrap();
    let s = store.summary(&b[0].name).unwrap().unwrap();
    assert_eq!(s.notified, None);
}

/// A lease row this program did not write: ids that are not bytes make claims fail with one
/// sentence naming the file (nothing is claimed, nothing panics); a trailing partial id is
/// ignored.
#[test]
fn lease_rows_written_by_hand_are_refused_or_read_safely() {
    let (_dir, store) = open();
    let names = store.insert(&[new_only(0), new_only(0)], t(0)).unwrap();
    store
        .writer()
        .execute("INSERT INTO lease VALUES (9, 1000, 'not bytes')", [])
        .unwrap();
    let err = store.claim(A, 10, t(10), t(100)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    let message = err.to_string();
    assert!(
        message.contains("could not read the leases in"),
        "{message}"
    );
    assert!(message.contains("test.db"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    let owners: i64 = store
        .writer()
        .query_row("SELECT count(*) FROM lease", [], |r| r.get(0))
        .unwrap();
    assert_eq!(owners, 1, "nothing claimed: A has no lease row");
    let counted = store.counts(t(10)).unwrap_err().to_string();
    assert!(
        counted.contains("could not count notifications in"),
        "{counted}"
    );
    // Id 1 and three stray bytes: id 1 is leased, id 2 is not.
    let mut blob = 1_i64.to_le_bytes().to_vec();
    blob.extend([7, 7, 7]);
    store
        .writer()
        .execute(
            "UPDATE lease SET ids = ?1 WHERE owner = 9",
            rusqlite::params![blob],
        )
        .unwrap();
    assert_eq!(claimed_names(&store, t(10)), [names[1].clone()]);
}

#[test]
fn due_query_uses_the_partial_index() {
    let (_dir, store) = open();
    let plan = |sql: &str| -> Vec<String> {
        let conn = store.writer();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map([0], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let uses_index = |p: &[String]| p.iter().any(|l| l.contains("notification_due"));
    assert!(uses_index(&plan(claim::DUE)), "{:?}", plan(claim::DUE));
    // With statistics saying every row is due, the claim still walks the index (an
    // unnamed index would be dropped for a scan and sort of the whole table).
    let batch: Vec<_> = (0..2000).map(|_| new_only(0)).collect();
    store.insert(&batch, t(0)).unwrap();
    store.writer().execute_batch("ANALYZE").unwrap();
    let claim_plan = plan(claim::DUE);
    assert!(uses_index(&claim_plan), "{claim_plan:?}");
    let sorts = claim_plan.iter().any(|l| l.contains("TEMP B-TREE"));
    assert!(!sorts, "{claim_plan:?}");
}

#[test]
fn the_wal_is_checkpointed_off_the_writer_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = SqliteStore::open(&path).unwrap();
    // 2 MB a batch, 120 MB in all: several times the writer's threshold.
    let long = |i: usize| format!("{i:0>200}");
    let batch: Vec<_> = (0..200)
        .map(|_| NewNotification {
            old: None,
            new: Some(VulnerabilityWithLayers {
                layers: (0..50).map(long).collect(),
                ..vuln("CVE-1", 0)
            }),
        })
        .collect();
    for _ in 0..60 {
        store.insert(&batch, t(0)).unwrap();
    }
    let db = std::fs::metadata(&path).unwrap().len();
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    // Data reaches the database file only through checkpoints.
    assert!(
        db > 100 << 20,
        "nothing was checkpointed: database of {db} bytes"
    );
    // The log restarts once it reaches 32 MiB, plus what a few 2 MB writes add while the
    // thread's own checkpoint holds the log (on a loaded machine: 37 MB seen); far below the
    // 120 MB written.
    assert!(
        wal < 48 << 20,
        "WAL of {wal} bytes was not kept small (db {db} bytes)"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any lists of layer names (short and long, any characters), paged at any limit and from
    /// any position: the pages hold exactly the names from that position on, in order, and
    /// following the cursors reads each list exactly once.
    #[test]
    fn chunked_layers_page_exactly(
        old in proptest::collection::vec(".{0,300}", 0..120),
        new in proptest::collection::vec("[a-z0-9:]{1,80}", 0..120),
        limit in 1u32..40,
        from in 0i64..130,
    ) {
        let (_dir, store) = open();
        let side = |layers: &Vec<String>| Some(VulnerabilityWithLayers {
            vulnerability: Vulnerability { name: "CVE-P".into(), ..Vulnerability::default() },
            layers: layers.clone(),
        });
        let name = store
            .insert(&[NewNotification { old: side(&old), new: side(&new) }], t(0))
            .unwrap()
            .remove(0);
        let (mut got_old, mut got_new, mut cursor) = (Vec::new(), Vec::new(), PageCursor::FIRST);
        loop {
            let p = store.page(&name, cursor, limit).unwrap().unwrap();
            let (o, n) = (p.old.unwrap().layers, p.new.unwrap().layers);
            proptest::prop_assert!(o.len() <= limit as usize && n.len() <= limit as usize);
            got_old.extend(o);
            got_new.extend(n);
            match p.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        proptest::prop_assert_eq!(&got_old, &old);
        proptest::prop_assert_eq!(&got_new, &new);
        let p = store.page(&name, PageCursor { old: from, new: -1 }, limit).unwrap().unwrap();
        let start = (from as usize).min(old.len());
        let end = (start + limit as usize).min(old.len());
        proptest::prop_assert_eq!(&p.old.unwrap().layers, &old[start..end].to_vec());
        proptest::prop_assert!(p.new.unwrap().layers.is_empty());
        let expected_next = if end < old.len() { end as i64 } else { -1 };
        proptest::prop_assert_eq!(p.next.map_or(-1, |c| c.old), expected_next);
    }
}

#[test]
fn names_are_found_only_in_the_form_handed_out() {
    let (_dir, store) = open();
    let name = store.insert(&[new_only(1)], t(0)).unwrap().remove(0);
    assert_eq!(name.len(), 36);
    assert_eq!(name, name.to_lowercase());
    assert_eq!(store.summary(&name).unwrap().unwrap().name, name);
    let upper = name.to_uppercase();
    let simple = name.replace('-', "");
    for other in [
        upper.as_str(),
        simple.as_str(),
        "",
        "not-a-uuid",
        &name[..35],
    ] {
        assert!(store.summary(other).unwrap().is_none(), "{other}");
        assert!(store.page(other, PageCursor::FIRST, 10).unwrap().is_none());
        assert!(!store.mark_read(other, t(1)).unwrap());
    }
    assert!(store.mark_read(&name, t(1)).unwrap());
}

/// A database written by the first schema (names as text, one row a layer) opens under the
/// current one with the same names, states and layers.
#[test]
fn a_first_schema_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let layers: Vec<String> = (0..40).map(|i| format!("sha256:{i:064}")).collect();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute(
            "INSERT INTO notification (id, name, created_at, notified_at, due_at, attempts,
                 last_error)
             VALUES (1, '6e4ad270-4957-4242-b5ad-dad851379573', 1000, 2000, 3000, 2, 'boom'),
                    (2, '0b0e2b7c-1f0a-4c3e-9d6b-2a1b3c4d5e6f', 1500, NULL, 1500, 0, NULL)",
            [],
        )
        .unwrap();
        // Leased by a running instance of the first schema: its due_at is the lease's expiry.
        conn.execute(
            "INSERT INTO notification (id, name, created_at, due_at, lease_owner)
             VALUES (3, '3c1f5a2e-8b4d-4e6f-a1b2-c3d4e5f60718', 1200, 5000, 7)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO content VALUES (1, '{\"Name\":\"CVE-OLD\"}', '{\"Name\":\"CVE-NEW\"}'),
                                        (2, NULL, '{\"Name\":\"CVE-2\"}')",
            [],
        )
        .unwrap();
        for (seq, l) in layers.iter().enumerate() {
            conn.execute(
                "INSERT INTO layer VALUES (1, 0, ?1, ?2), (1, 1, ?1, ?2 || '-new')",
                rusqlite::params![seq as i64, l],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = user_version(&store.writer());
    assert_eq!(version, schema::VERSION);
    let s = store
        .summary("6e4ad270-4957-4242-b5ad-dad851379573")
        .unwrap()
        .unwrap();
    assert_eq!(s.id, NotificationId::new(1));
    assert_eq!(s.notified, Some(t(2000)));
    assert_eq!(s.due, Some(t(3000)));
    assert_eq!(s.attempts, 2);
    assert_eq!(s.last_error.as_deref(), Some("boom"));
    let (mut old, mut new, mut cursor) = (Vec::new(), Vec::new(), PageCursor::FIRST);
    loop {
        let p = store
            .page("6e4ad270-4957-4242-b5ad-dad851379573", cursor, 7)
            .unwrap()
            .unwrap();
        assert_eq!(p.old.as_ref().unwrap().vulnerability.name, "CVE-OLD");
        old.extend(p.old.unwrap().layers);
        new.extend(p.new.unwrap().layers);
        match p.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(old, layers);
    let renamed: Vec<String> = layers.iter().map(|l| format!("{l}-new")).collect();
    assert_eq!(new, renamed);
    // The second notification is due and claimable under its name; the one leased under the
    // first schema is due when its lease would have expired (its owner, an older version,
    // holds no lease under this schema).
    let leased = store
        .summary("3c1f5a2e-8b4d-4e6f-a1b2-c3d4e5f60718")
        .unwrap()
        .unwrap();
    assert_eq!(leased.due, Some(t(5000)));
    assert_eq!(store.counts(t(1600)).unwrap().leased, 0);
    let claimed = store.claim(A, 10, t(1600), t(9000)).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].name, "0b0e2b7c-1f0a-4c3e-9d6b-2a1b3c4d5e6f");
    assert_eq!(store.next_due().unwrap(), Some(t(3000)));
    assert!(store.claim(B, 10, t(2999), t(9000)).unwrap().is_empty());
    let expired = store.claim(B, 10, t(5000), t(9000)).unwrap();
    assert_eq!(
        expired.len(),
        2,
        "the notified one at 3000, the lease at 5000"
    );
    assert!(
        expired
            .iter()
            .any(|c| c.name == "3c1f5a2e-8b4d-4e6f-a1b2-c3d4e5f60718")
    );
    let tables: Vec<String> = store
        .writer()
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        tables,
        [
            "attempt",
            "content",
            "layer_chunk",
            "lease",
            "notification",
            "notifier",
            "progress",
            "setting"
        ]
    );
}

/// A first-schema database holding a name that is not a UUID (written by hand) cannot be
/// migrated: opening it fails with one sentence naming the file, and the database is left as it
/// was, at version 1 with its rows.
#[test]
fn a_first_schema_database_that_cannot_be_migrated_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO notification (id, name, created_at, due_at) VALUES (1, 'not-a-uuid', 0, 0);
             INSERT INTO layer VALUES (1, 1, 0, 'layer-0');",
        )
        .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    let message = err.to_string();
    let expected = "could not set up the schema of";
    assert!(message.contains(expected), "{message}");
    assert!(message.contains("v1.db"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    let conn = Connection::open(&path).unwrap();
    let version: i64 = user_version(&conn);
    assert_eq!(version, 1);
    let (name, layers): (String, i64) = conn
        .query_row(
            "SELECT name, (SELECT count(*) FROM layer) FROM notification",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((name.as_str(), layers), ("not-a-uuid", 1));
}

/// A database of a schema this program does not know, newer or negative (no version ever
/// wrote one), is refused with one sentence naming the file and its version, and left as it
/// was.
#[test]
fn unknown_schema_versions_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for version in [schema::VERSION + 1, 99, -1, i64::from(i32::MIN)] {
        let path = dir.path().join(format!("v{version}.db"));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE keep (x)").unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed");
        assert_eq!(e.kind(), ErrorKind::Store);
        assert_eq!(
            e.to_string(),
            format!(
                "{} has schema version {version}, which this program (schema {}) cannot read: \
                 upgrade clair-notifier",
                path.display(),
                schema::VERSION
            )
        );
        let conn = Connection::open(&path).unwrap();
        let kept: i64 = user_version(&conn);
        assert_eq!(kept, version, "the version is left as it was");
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "nothing was created in it");
    }
}
