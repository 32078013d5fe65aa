//! The collector: a thread that deletes read notifications `retention.read` after they were
//! read, and attempt-log rows `retention.attempts` after they were written, in small paced
//! batches, so that the scanner's claims and outcomes are never held up
//! for long behind it.
//!
//! Each batch is one short transaction of the store's
//! [`delete_read`](crate::Datastore::delete_read) (which also returns a few freed pages to the
//! file system). With several instances on one store, the store gives one of them the turn
//! to collect, and the others' batches delete nothing meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use crate::config::RetentionConfig;
use crate::store::DeleteRequest;
use crate::time::Timestamp;

/// Notifications deleted per transaction, at most.
pub const BATCH: usize = 100;

/// The pause after a full batch, before the next: room for the scanner's writes.
const PACE: Duration = Duration::from_millis(50);

/// Deletes what is past `retention` until the service stops: read notifications
/// `retention.read` after they were read, and attempt-log rows `retention.attempts` after
/// they were written (either left alone when its duration is 0), looking again every `every`
/// when nothing is (a read of an index: cheap).
pub(crate) fn run(shared: Arc<Shared>, retention: RetentionConfig, every: Duration) {
    loop {
        let now = shared.clock.now();
        let mut full = false;
        if !retention.read.is_zero() {
            full |= delete_read(&shared, now, now.minus(retention.read));
        }
        if !retention.attempts.is_zero() {
            let before = now.minus(retention.attempts);
            match shared.store.delete_attempts(before, BATCH) {
                Ok(n) => full |= n == BATCH,
                Err(e) => {
                    shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                    log::error!("{}", e.chain());
                }
            }
        }
        if !shared.stopper.sleep(if full { PACE } else { every }) {
            return;
        }
    }
}

/// One batch of read notifications past retention; whether it was full.
fn delete_read(shared: &Shared, now: Timestamp, read_before: Timestamp) -> bool {
    let request = DeleteRequest {
        collector: shared.owner,
        read_before,
        limit: BATCH,
        now,
    };
    match shared.store.delete_read(request) {
        Ok(n) => {
            shared
                .metrics
                .deleted
                .fetch_add(n as u64, Ordering::Relaxed);
            if n > 0 {
                log::debug!("deleted {n} notifications read before {read_before:?}");
            }
            n == BATCH
        }
        Err(e) => {
            shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            log::error!("{}", e.chain());
            false
        }
    }
}
