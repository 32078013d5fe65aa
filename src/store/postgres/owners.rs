//! Owner locks on PostgreSQL: each running instance holds a session-level advisory lock keyed
//! by its owner id on a connection of its own, and lists itself in `owner_lock`. The server
//! releases the lock the moment that connection ends (the process died, or its host), so a
//! listed owner whose lock can be taken is dead, and its leases are freed at once.
//!
//! A keeper thread checks the connection every second and, if it broke (a restarted server),
//! connects again and takes the lock again. Between the break and the new lock, others may
//! judge the owner dead and free its leases: its notifications may then be sent twice, never
//! lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::connect::Target;
use super::pool::Conn;
use crate::error::Result;
use crate::store::LeaseOwner;

/// How often the keeper checks its connection.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// After the server (re)starts, owners are given this long to take their locks again before
/// any is judged dead: a restart ends every session at once, live owners' too.
pub const RESTART_GRACE_SECS: i32 = 10;

/// The owners held by this process's guards (alive by definition: never judged here).
pub type HeldHere = Arc<Mutex<HashSet<i64>>>;

/// The live proof of one owner: dropping it ends the keeper and its connection.
pub struct Held {
    _stop: Sender<()>,
    owner: LeaseOwner,
    here: HeldHere,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.owner.get());
    }
}

fn lock(
    client: &mut postgres::Client,
    owner: LeaseOwner,
) -> std::result::Result<(), postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1)", &[&owner.get()])?;
    client.execute(
        "INSERT INTO owner_lock (owner) VALUES ($1) ON CONFLICT (owner) DO NOTHING",
        &[&owner.get()],
    )?;
    Ok(())
}

/// Takes `owner`'s lock on a new connection, kept by a thread of its own.
///
/// # Errors
///
/// The server cannot be reached, or the lock not taken.
pub fn hold(target: &Target, owner: LeaseOwner, here: &HeldHere) -> Result<Held> {
    let mut client = target.connect()?;
    lock(&mut client, owner).map_err(|e| {
        crate::error::Error::with_source(
            crate::error::ErrorKind::Store,
            format!(
                "could not take the owner lock of this instance in PostgreSQL at {}: {}",
                target.name,
                super::connect::short(&e)
            ),
            e,
        )
    })?;
    let (stop, stopped) = crossbeam_channel::bounded(0);
    let target = target.clone();
    thread::Builder::new()
        .name("pg-owner".into())
        .spawn(move || keep(client, &target, owner, &stopped))
        .map_err(|e| {
            crate::error::Error::with_source(
                crate::error::ErrorKind::Store,
                "could not start the thread that keeps the owner lock",
                e,
            )
        })?;
    here.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(owner.get());
    Ok(Held {
        _stop: stop,
        owner,
        here: here.clone(),
    })
}

fn keep(mut client: postgres::Client, target: &Target, owner: LeaseOwner, stopped: &Receiver<()>) {
    loop {
        match stopped.recv_timeout(CHECK_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if client.is_valid(CHECK_EVERY).is_ok() {
            continue;
        }
        log::warn!(
            "the connection holding this instance's owner lock in PostgreSQL at {} broke: \
             taking the lock again",
            target.name
        );
        match target.connect() {
            Ok(mut fresh) => match lock(&mut fresh, owner) {
                Ok(()) => client = fresh,
                Err(e) => log::warn!(
                    "could not take the owner lock again: {}",
                    super::connect::short(&e)
                ),
            },
            Err(e) => log::warn!("{e}"),
        }
    }
}

/// Frees the leases of every listed owner whose advisory lock can be taken (its session is
/// gone), in one statement: the try-locks are held until it commits, so two instances at once
/// judge each owner once. Owners of this process, and everyone in the first seconds after the
/// server started, are not judged. Returns each owner that held leases, with how many.
pub fn release_dead(
    conn: &mut Conn,
    here: &HeldHere,
) -> std::result::Result<Vec<(LeaseOwner, usize)>, postgres::Error> {
    let mine: Vec<i64> = here
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    let rows = conn.query(
        "WITH judged AS MATERIALIZED (
             SELECT owner FROM owner_lock
             WHERE owner <> ALL($1)
               AND now() - pg_postmaster_start_time() > make_interval(secs => $2)
         ), dead AS (
             DELETE FROM owner_lock o USING judged
             WHERE o.owner = judged.owner AND pg_try_advisory_xact_lock(o.owner)
             RETURNING o.owner
         ), freed AS (
             UPDATE notification n SET lease_owner = NULL, lease_until = NULL
             FROM dead WHERE n.lease_owner = dead.owner
             RETURNING dead.owner
         )
         SELECT owner, count(*) FROM freed GROUP BY owner ORDER BY owner",
        &[&mine, &f64::from(RESTART_GRACE_SECS)],
    )?;
    Ok(rows
        .iter()
        .map(|r| (LeaseOwner::new(r.get(0)), r.get::<_, i64>(1) as usize))
        .collect())
}
