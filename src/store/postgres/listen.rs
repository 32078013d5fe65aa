//! Wakes the service when any instance inserts: a thread of its own `LISTEN`s on the insert
//! channel and wakes every watcher on each notification, and each time its `LISTEN` starts
//! (inserts made before it, after the watcher's last look, were heard by nobody). Polling
//! stays as the fallback.

use std::sync::{Mutex, Weak};
use std::thread;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::connect::Target;
use super::insert::CHANNEL;
use crate::wake::Waker;

/// How often the thread checks whether its store is gone.
const TICK: Duration = Duration::from_secs(1);

/// Starts the listener for the watchers of a store; it ends soon after they are dropped.
pub fn start(target: Target, watchers: Weak<Mutex<Vec<Waker>>>) {
    let spawned = thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || run(&target, &watchers));
    if let Err(e) = spawned {
        log::warn!(
            "could not start the PostgreSQL listener ({e}): inserts by other instances are found by polling"
        );
    }
}

fn wake_all(watchers: &Weak<Mutex<Vec<Waker>>>) -> bool {
    let Some(watchers) = watchers.upgrade() else {
        return false;
    };
    crate::wake::wake_all(&mut watchers.lock().unwrap_or_else(|e| e.into_inner()));
    true
}

fn run(target: &Target, watchers: &Weak<Mutex<Vec<Waker>>>) {
    let mut backoff = TICK;
    while watchers.strong_count() > 0 {
        let mut client = match target.connect().and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))
                .map(|()| c)
                .map_err(|e| {
                    crate::error::Error::new(
                        crate::error::ErrorKind::Store,
                        super::connect::short(&e),
                    )
                })
        }) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("listening for inserts: {e} (retrying in {backoff:?})");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = TICK;
        if !wake_all(watchers) {
            return;
        }
        loop {
            let got = client.notifications().timeout_iter(TICK).next();
            match got {
                Ok(Some(_)) => {
                    // Several inserts in a burst: one wake-up for all that are queued.
                    let _ = client.notifications().iter().count();
                    if !wake_all(watchers) {
                        return;
                    }
                }
                Ok(None) if watchers.strong_count() == 0 => return,
                Ok(None) if client.is_closed() => break,
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}
