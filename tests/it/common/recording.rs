//! A store that is another store (SQLite, PostgreSQL) and also notes what the scanner asked of
//! it: each claim (its size, its `now`, the names it got) and each `next_due`. A test that must show that
//! nothing happened waits for a claim made after the moment in question, which proves the
//! scanner looked, instead of sleeping and hoping it did. Told to, it panics on a claim, as a
//! custom datastore with a bug might.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clair_notifier::store::{ClaimRequest, Claimed, DeleteRequest, LeaseOwner, Outcome};
use clair_notifier::{Datastore, Result, Timestamp};

/// One claim as the store saw it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The most it was asked for.
    pub limit: usize,
    /// The time the scanner claimed at.
    pub now: Timestamp,
    /// The names it got.
    pub names: Vec<String>,
}

pub struct Recording {
    pub inner: Arc<dyn Datastore>,
    claims: Mutex<Vec<Claim>>,
    next_due: Mutex<usize>,
    deletes: Mutex<Vec<usize>>,
    /// Set: the next claim panics.
    pub panic_on_claim: AtomicBool,
    /// Set: the next `delete_read` panics.
    pub panic_on_delete: AtomicBool,
    /// How many more `delete_read` calls reach the store; past them, a call deletes nothing
    /// (a collector paused between two batches). Unlimited by default.
    pub deletes_let_through: AtomicUsize,
}

impl Recording {
    pub fn new(inner: impl Datastore + 'static) -> Recording {
        Recording::over(Arc::new(inner))
    }

    /// Notes what is asked of `inner`, a handle that may be shared.
    pub fn over(inner: Arc<dyn Datastore>) -> Recording {
        Recording {
            inner,
            claims: Mutex::new(Vec::new()),
            next_due: Mutex::new(0),
            deletes: Mutex::new(Vec::new()),
            panic_on_claim: AtomicBool::new(false),
            panic_on_delete: AtomicBool::new(false),
            deletes_let_through: AtomicUsize::new(usize::MAX),
        }
    }

    /// Every claim so far, in order.
    pub fn claims(&self) -> Vec<Claim> {
        self.claims.lock().unwrap().clone()
    }

    /// The size asked for by each claim so far.
    pub fn limits(&self) -> Vec<usize> {
        self.claims().iter().map(|c| c.limit).collect()
    }

    /// How many times the scanner asked when work is next due.
    pub fn next_due_calls(&self) -> usize {
        *self.next_due.lock().unwrap()
    }

    /// How many each finished call of `delete_read` deleted, in order.
    pub fn deletes(&self) -> Vec<usize> {
        self.deletes.lock().unwrap().clone()
    }

    /// Whether the scanner has looked at the store at all yet.
    pub fn looked(&self) -> bool {
        self.next_due_calls() > 0 || !self.claims().is_empty()
    }

    /// Waits (up to `timeout`, panicking with `what` past it) for a claim made at `since` or
    /// later, and returns it: proof that the scanner looked at the store at that time.
    pub fn claim_since(&self, what: &str, since: Timestamp, timeout: Duration) -> Claim {
        let mut found = None;
        super::wait_for(what, timeout, || {
            found = self.claims().into_iter().find(|c| c.now >= since);
            found.is_some()
        });
        found.unwrap()
    }
}

impl Datastore for Recording {
    fn record_and_claim(
        &self,
        owner: LeaseOwner,
        outcomes: &[Outcome],
        claim: ClaimRequest,
    ) -> Result<Vec<Claimed>> {
        if claim.limit > 0 && self.panic_on_claim.load(Ordering::SeqCst) {
            panic!("the recording store panics on a claim, as told");
        }
        let claimed = self.inner.record_and_claim(owner, outcomes, claim)?;
        if claim.limit > 0 {
            self.claims.lock().unwrap().push(Claim {
                limit: claim.limit,
                now: claim.now,
                names: claimed.iter().map(|c| c.name.clone()).collect(),
            });
        }
        Ok(claimed)
    }
    fn next_due(&self) -> Result<Option<Timestamp>> {
        *self.next_due.lock().unwrap() += 1;
        self.inner.next_due()
    }
    fn delete_read(&self, request: DeleteRequest) -> Result<usize> {
        if self.panic_on_delete.load(Ordering::SeqCst) {
            panic!("the recording store panics on a delete, as told");
        }
        let through = self
            .deletes_let_through
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let n = if through {
            self.inner.delete_read(request)?
        } else {
            0
        };
        self.deletes.lock().unwrap().push(n);
        Ok(n)
    }
    forward_to_inner!(
        insert,
        renew,
        release,
        mark_read,
        page,
        summary,
        list,
        counts,
        setting_or_insert,
        hold_owner,
        release_dead_owners,
        resend,
        resend_failing,
        set_paused,
        delete_attempts,
        end_wait,
        notifiers,
        record_sends,
        take_probe,
        attempts,
        watch
    );
}
