//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, and a
//! checkpoint syncs the database file: tens of milliseconds of the scanner's time. Instead,
//! the writer connection's WAL hook nudges this thread once the log holds
//! [`CHECKPOINT_PAGES`] pages, and the thread runs a PASSIVE checkpoint (which never blocks
//! writers) on a connection of its own. A PASSIVE checkpoint cannot restart the log while
//! the writer keeps appending to it, so once the log has grown to [`RESTART_PAGES`] the thread
//! runs a RESTART checkpoint instead: it waits for the current write, holds writers back
//! while it copies the log (milliseconds), and the next write starts the log afresh.

use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use rusqlite::Connection;

/// Checkpoint once the WAL holds this many pages (SQLite's default threshold, 4 MiB).
pub const CHECKPOINT_PAGES: i32 = 1000;

/// Restart the log once it holds this many pages (8 MiB).
pub const RESTART_PAGES: i32 = 2 * CHECKPOINT_PAGES;

pub(super) struct Checkpointer {
    nudge: Option<Sender<i32>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread over `conn`, and hooks `writer`'s commits to it.
    pub fn start(
        path: &str,
        writer: &mut Connection,
        conn: Connection,
    ) -> crate::Result<Checkpointer> {
        let (tx, rx) = bounded::<i32>(1);
        let hook_tx = tx.clone();
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= CHECKPOINT_PAGES {
                    let _ = hook_tx.try_send(pages);
                }
                Ok(())
            }))
            .map_err(|e| super::store_error(path, "could not open", e))?;
        let name = path.to_string();
        let thread = std::thread::Builder::new()
            .name("notify-checkpoint".to_string())
            .spawn(move || {
                for pages in rx.iter() {
                    let sql = if pages >= RESTART_PAGES {
                        "PRAGMA wal_checkpoint(RESTART)"
                    } else {
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    };
                    if let Err(e) = conn.query_row(sql, [], |_| Ok(())) {
                        log::warn!("checkpoint of {name} failed: {e}");
                    }
                }
            })
            .map_err(|e| {
                crate::Error::with_source(
                    crate::ErrorKind::Other,
                    "could not start the checkpoint thread",
                    e,
                )
            })?;
        Ok(Checkpointer {
            nudge: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The hook holds a sender too; it goes with the writer connection, which the store
        // drops before this (field order), so the thread's loop ends.
        self.nudge.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
