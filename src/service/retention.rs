//! The collector: a thread that deletes read notifications `retention.read` after they were
//! read, in small paced batches, so that the scanner's claims and outcomes are never held up
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
use crate::store::DeleteRequest;

/// Notifications deleted per transaction, at most.
pub const BATCH: usize = 200;

/// The pause after a full batch, before the next: room for the scanner's writes.
const PACE: Duration = Duration::from_millis(20);

/// Deletes what is past `retention` until the service stops, looking again every `every`
/// when nothing is (a read of an index: cheap).
pub(crate) fn run(shared: Arc<Shared>, retention: Duration, every: Duration) {
    loop {
        let now = shared.clock.now();
        let read_before = now.minus(retention);
        let request = DeleteRequest {
            collector: shared.owner,
            read_before,
            limit: BATCH,
            now,
        };
        let wait = match shared.store.delete_read(request) {
            Ok(n) => {
                shared
                    .metrics
                    .deleted
                    .fetch_add(n as u64, Ordering::Relaxed);
                if n > 0 {
                    log::debug!("deleted {n} notifications read before {read_before:?}");
                }
                if n == BATCH { PACE } else { every }
            }
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{}", e.chain());
                every
            }
        };
        if !shared.stopper.sleep(wait) {
            return;
        }
    }
}
