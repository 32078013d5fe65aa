//! Copying an SQLite database into an empty PostgreSQL database, in one transaction:
//! notifications with their layers, delivery state, read marks, round progress and attempt
//! log, the settings (the pagination key among them, so that page tokens handed out stay
//! valid), and the notifiers' pauses and circuits.

use std::path::Path;

use super::PostgresStore;
use super::attempts::Tries;
use super::claim::progress_json;
use crate::error::{Error, ErrorKind, Result};
use crate::store::SqliteStore;
use crate::store::sqlite::Exported;
use crate::store::{AttemptLog, NotifierState};
use crate::time::Timestamp;

/// Rows written per statement.
const BATCH: usize = 1000;

/// What [`PostgresStore::import_sqlite`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Notifications.
    pub notifications: u64,
    /// Of which marked read.
    pub read: u64,
    /// Layer names, both sides.
    pub layers: u64,
    /// Settings (the read API's pagination key among them).
    pub settings: u64,
    /// Rows of the attempt log, and last successes kept with their notification.
    pub attempts: u64,
    /// Notifiers' states (a pause, a circuit).
    pub notifiers: u64,
}

const COPY: &str = super::insert::insert_rows!(
    "INSERT INTO notification (name, created_at, notified_at, read_at, due_at, attempts,
                               last_error, progress, logged, ok_notifier, ok_at, ok_ms,
                               ok_next_due)
     SELECT * FROM unnest($1::uuid[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                          $12::integer[], $13::text[], $14::text[], $15::bigint[], $16::text[],
                          $17::bigint[], $18::bigint[], $19::bigint[])",
    "SELECT count(*) FROM n"
);

impl PostgresStore {
    /// Copies the SQLite database at `source` into this database, which must hold no
    /// notification and no setting, in one transaction (all or nothing). Leases are not copied:
    /// what was in flight is due in the copy.
    ///
    /// # Errors
    ///
    /// A [`Store`](ErrorKind::Store) error when the source cannot be read, when this database
    /// is not empty (nothing is written then), or when the copy fails (nothing is kept).
    pub fn import_sqlite(&self, source: &Path) -> Result<Copied> {
        if !source.is_file() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("there is no SQLite database at {}", source.display()),
            ));
        }
        let sqlite = SqliteStore::open(source)?;
        let target = self.server().to_string();
        let doing = "could not copy into";
        self.pool.with_result(doing, |conn| {
            let mut tx = conn
                .client
                .transaction()
                .map_err(|e| self.pool.error(doing, e))?;
            let q = |tx: &mut postgres::Transaction<'_>, sql: &str| {
                tx.batch_execute(sql).map_err(|e| self.pool.error(doing, e))
            };
            q(
                &mut tx,
                "LOCK TABLE notification, setting, notifier IN EXCLUSIVE MODE",
            )?;
            let used: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM notification) OR EXISTS (SELECT 1 FROM setting)
                         OR EXISTS (SELECT 1 FROM notifier)",
                    &[],
                )
                .map_err(|e| self.pool.error(doing, e))?
                .get(0);
            if used {
                return Err(Error::new(
                    ErrorKind::Store,
                    format!(
                        "PostgreSQL at {target} already holds notifications, settings or \
                         notifier states: migrate copies only into an empty database (nothing \
                         was written)"
                    ),
                ));
            }
            let mut copied = Copied::default();
            let rest = sqlite.export(BATCH, |batch| {
                copy_batch(&mut tx, batch, &mut copied).map_err(|e| self.pool.error(doing, e))
            })?;
            for n in &rest.notifiers {
                copy_notifier(&mut tx, n).map_err(|e| self.pool.error(doing, e))?;
                copied.notifiers += 1;
            }
            for (key, value) in &rest.settings {
                tx.execute(
                    "INSERT INTO setting (key, value) VALUES ($1, $2)",
                    &[key, value],
                )
                .map_err(|e| self.pool.error(doing, e))?;
                copied.settings += 1;
            }
            tx.commit().map_err(|e| self.pool.error(doing, e))?;
            Ok(copied)
        })
    }
}

fn copy_batch(
    tx: &mut postgres::Transaction<'_>,
    batch: &[Exported],
    copied: &mut Copied,
) -> std::result::Result<(), postgres::Error> {
    let ms = |t: Option<crate::time::Timestamp>| t.map(|t| t.as_millis());
    let mut rows = super::insert::Rows::default();
    let (mut created, mut notified, mut read, mut due) = (vec![], vec![], vec![], vec![]);
    let (mut attempts, mut errors, mut progress) = (vec![], vec![], vec![]);
    let (mut logged, mut log) = (vec![], super::attempts::Log::default());
    let mut tries = Tries::default();
    for e in batch {
        let s = &e.page.summary;
        let name = uuid::Uuid::try_parse(&s.name).unwrap_or_else(|_| uuid::Uuid::new_v4());
        rows.push(name, e.page.old.as_ref(), e.page.new.as_ref());
        created.push(s.created.as_millis());
        notified.push(ms(s.notified));
        read.push(ms(s.read));
        due.push(ms(e.due));
        attempts.push(i32::try_from(s.attempts).unwrap_or(i32::MAX));
        errors.push(s.last_error.clone());
        progress.push((!e.progress.is_empty()).then(|| progress_json(&e.progress)));
        copied.read += u64::from(s.read.is_some());
        logged.push(e.logged);
        // The last success as kept in the row (no rows: those are copied with their numbers).
        log.push(AttemptLog::LastSuccess, e.last_ok.as_slice());
        copied.attempts += u64::from(e.last_ok.is_some()) + e.attempts.len() as u64;
        for (seq, a) in &e.attempts {
            tries.push(name, *seq, a);
        }
    }
    let ok = log.params();
    rows.run(
        tx,
        COPY,
        &[
            &created, &notified, &read, &due, &attempts, &errors, &progress, &logged, ok[1], ok[2],
            ok[3], ok[4],
        ],
    )?;
    copy_tries(tx, &tries)?;
    copied.notifications += batch.len() as u64;
    copied.layers += rows.layers() as u64;
    Ok(())
}

/// Writes `rows`, each keyed by its notification's name.
fn copy_tries(
    tx: &mut postgres::Transaction<'_>,
    rows: &Tries<uuid::Uuid>,
) -> std::result::Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO attempt (notification_id, seq, notifier, started_at, duration_ms, class,
                              status, excerpt, next_due)
         SELECT n.notification_id, a.seq, a.notifier, a.started, a.ms, a.class, a.status,
                a.excerpt, a.next_due
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                     $6::text[], $7::integer[], $8::text[], $9::bigint[])
             AS a(name, seq, notifier, started, ms, class, status, excerpt, next_due)
         JOIN notification_name n ON n.name = a.name",
        &rows.params(),
    )?;
    Ok(())
}

fn copy_notifier(
    tx: &mut postgres::Transaction<'_>,
    n: &NotifierState,
) -> std::result::Result<(), postgres::Error> {
    let ms = |t: Option<Timestamp>| t.map(Timestamp::as_millis);
    tx.execute(
        "INSERT INTO notifier (name, paused_at, failures, open_since, next_probe)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &n.notifier,
            &ms(n.paused),
            &i32::try_from(n.failures).unwrap_or(i32::MAX),
            &ms(n.open_since),
            &ms(n.next_probe),
        ],
    )?;
    Ok(())
}
