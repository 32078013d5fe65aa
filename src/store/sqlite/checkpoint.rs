//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, and a
//! checkpoint syncs the database file: tens of milliseconds of the scanner's time. Instead,
//! the writer connection's WAL hook nudges this thread once the log holds
//! [`CHECKPOINT_BYTES`], and the thread runs a PASSIVE checkpoint (which never blocks
//! writers) on a connection of its own. Such a checkpoint cannot let the log start afresh
//! while the writer keeps appending to it, so once the log has grown to [`WRITER_BYTES`] the
//! writer checkpoints it itself, right after its commit, as SQLite's automatic checkpoint
//! would (also PASSIVE: it never waits for readers); the next write then starts the log
//! afresh. That happens only when a steady stream of writes outruns the thread, and by then
//! the thread has copied most of the log, so the writer's own checkpoint is short.

use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use rusqlite::Connection;

/// Checkpoint once the WAL holds this many bytes of pages (SQLite's default threshold with
/// 4 KiB pages).
pub const CHECKPOINT_BYTES: i64 = 4 << 20;

/// The writer checkpoints the log itself once it holds this many bytes of pages. Until then
/// the thread's checkpoints run beside the writer's work: a bulk load that writes several MiB
/// per commit keeps both cores busy instead of waiting for the copy after every commit.
pub const WRITER_BYTES: i64 = 32 << 20;

pub(super) struct Checkpointer {
    nudge: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread over `conn`, and hooks `writer`'s commits to it.
    pub fn start(
        path: &str,
        writer: &mut Connection,
        conn: Connection,
    ) -> crate::Result<Checkpointer> {
        let (tx, rx) = bounded::<()>(1);
        let hook_tx = tx.clone();
        // The hook counts pages; the thresholds are sizes.
        let page_size: i64 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| super::store_error(path, "could not open", e))?;
        let pages = |bytes: i64| i32::try_from(bytes / page_size.max(512)).unwrap_or(i32::MAX);
        let (checkpoint_pages, writer_pages) = (pages(CHECKPOINT_BYTES), pages(WRITER_BYTES));
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= writer_pages {
                    // A failure here only leaves the log longer; the commit stands.
                    let _ = wal.checkpoint();
                } else if pages >= checkpoint_pages {
                    let _ = hook_tx.try_send(());
                }
                Ok(())
            }))
            .map_err(|e| super::store_error(path, "could not open", e))?;
        let name = path.to_string();
        let thread = std::thread::Builder::new()
            .name("notify-checkpoint".to_string())
            .spawn(move || {
                for () in rx.iter() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
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
