//! What the store's batch operations are asked to do: claims and deletions.

use super::LeaseOwner;
use crate::time::Timestamp;

/// What [`Datastore::delete_read`](super::Datastore::delete_read) is asked to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The instance collecting: the turn it takes or keeps (see
    /// [`Datastore::delete_read`](super::Datastore::delete_read)).
    pub collector: LeaseOwner,
    /// Notifications read at or before this are deleted.
    pub read_before: Timestamp,
    /// At most this many; 0 deletes nothing.
    pub limit: usize,
    /// The time of the call.
    pub now: Timestamp,
}

/// What [`Datastore::record_and_claim`](super::Datastore::record_and_claim) is asked to claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest {
    /// At most this many notifications; 0 claims nothing (the call only records).
    pub limit: usize,
    /// The time of the call: what is due at or before it may be claimed, and outcomes are
    /// recorded at it.
    pub now: Timestamp,
    /// When the leases taken expire unless renewed.
    pub lease_until: Timestamp,
}
