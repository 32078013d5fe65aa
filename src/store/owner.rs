//! Who holds leases: a running instance's [`LeaseOwner`] id, and the [`OwnerGuard`] that
//! proves it alive to the other users of a store.

/// Identifies one running service instance as the holder of leases.
///
/// Each service draws a random one when it starts; a store keeps it beside what the instance
/// holds. It is a positive 63-bit number, so that any store can keep it as a signed 64-bit
/// integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseOwner(pub(super) i64);

impl LeaseOwner {
    /// A fresh random owner id.
    pub fn random() -> LeaseOwner {
        LeaseOwner((uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX)
    }

    /// The owner a store kept as `raw` (a value [`get`](LeaseOwner::get) returned).
    pub const fn new(raw: i64) -> LeaseOwner {
        LeaseOwner(raw)
    }

    /// The number to keep in a store.
    pub const fn get(self) -> i64 {
        self.0
    }
}

/// Keeps an owner provably alive to the other users of a store while it lives (see
/// [`Datastore::hold_owner`](super::Datastore::hold_owner)); dropping it ends the proof.
pub struct OwnerGuard(Option<Box<dyn std::any::Any + Send + Sync>>);

impl OwnerGuard {
    /// A guard that keeps `proof` (a lock, a connection) until it is dropped.
    pub fn new(proof: impl std::any::Any + Send + Sync) -> OwnerGuard {
        OwnerGuard(Some(Box::new(proof)))
    }

    /// A guard that proves nothing, for stores that cannot tell whether an owner is alive.
    pub fn none() -> OwnerGuard {
        OwnerGuard(None)
    }

    /// Whether this guard holds a proof.
    pub fn proves(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for OwnerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerGuard")
            .field("proves", &self.proves())
            .finish()
    }
}
