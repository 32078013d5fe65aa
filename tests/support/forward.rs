//! `forward_to_inner!`: `Datastore` methods that only pass the call on to `self.inner`, named
//! one by one, for the test stores that wrap another store and watch a few calls (the
//! integration tests' `Recording`, the benches' `Counted`). Each signature is written here
//! once; a wrapper writes by hand only the methods it watches. Shared by both crates through
//! `#[path]`.

macro_rules! forward_to_inner {
    ($($method:ident),* $(,)?) => { $(forward_to_inner!(@ $method);)* };
    (@ insert) => {
        fn insert(
            &self,
            n: &[clair_notifier::notification::NewNotification],
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<Vec<String>> {
            self.inner.insert(n, now)
        }
    };
    (@ record_and_claim) => {
        fn record_and_claim(
            &self,
            owner: clair_notifier::store::LeaseOwner,
            outcomes: &[clair_notifier::store::Outcome],
            claim: clair_notifier::store::ClaimRequest,
        ) -> clair_notifier::Result<Vec<clair_notifier::store::Claimed>> {
            self.inner.record_and_claim(owner, outcomes, claim)
        }
    };
    (@ renew) => {
        fn renew(
            &self,
            owner: clair_notifier::store::LeaseOwner,
            ids: &[clair_notifier::notification::NotificationId],
            until: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<usize> {
            self.inner.renew(owner, ids, until)
        }
    };
    (@ release) => {
        fn release(
            &self,
            owner: clair_notifier::store::LeaseOwner,
            ids: &[clair_notifier::notification::NotificationId],
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<()> {
            self.inner.release(owner, ids, now)
        }
    };
    (@ hold_owner) => {
        fn hold_owner(
            &self,
            owner: clair_notifier::store::LeaseOwner,
        ) -> clair_notifier::Result<clair_notifier::store::OwnerGuard> {
            self.inner.hold_owner(owner)
        }
    };
    (@ release_dead_owners) => {
        fn release_dead_owners(
            &self,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<Vec<(clair_notifier::store::LeaseOwner, usize)>> {
            self.inner.release_dead_owners(now)
        }
    };
    (@ next_due) => {
        fn next_due(&self) -> clair_notifier::Result<Option<clair_notifier::Timestamp>> {
            self.inner.next_due()
        }
    };
    (@ mark_read) => {
        fn mark_read(&self, name: &str, now: clair_notifier::Timestamp) -> clair_notifier::Result<bool> {
            self.inner.mark_read(name, now)
        }
    };
    (@ delete_read) => {
        fn delete_read(
            &self,
            request: clair_notifier::store::DeleteRequest,
        ) -> clair_notifier::Result<usize> {
            self.inner.delete_read(request)
        }
    };
    (@ delete_attempts) => {
        fn delete_attempts(
            &self,
            before: clair_notifier::Timestamp,
            limit: usize,
        ) -> clair_notifier::Result<usize> {
            self.inner.delete_attempts(before, limit)
        }
    };
    (@ page) => {
        fn page(
            &self,
            name: &str,
            cursor: clair_notifier::notification::PageCursor,
            limit: u32,
        ) -> clair_notifier::Result<Option<clair_notifier::notification::NotificationPage>> {
            self.inner.page(name, cursor, limit)
        }
    };
    (@ summary) => {
        fn summary(
            &self,
            name: &str,
        ) -> clair_notifier::Result<Option<clair_notifier::notification::NotificationSummary>> {
            self.inner.summary(name)
        }
    };
    (@ list) => {
        fn list(
            &self,
            filter: clair_notifier::store::ListFilter,
        ) -> clair_notifier::Result<Vec<clair_notifier::notification::NotificationSummary>> {
            self.inner.list(filter)
        }
    };
    (@ counts) => {
        fn counts(
            &self,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<clair_notifier::store::Counts> {
            self.inner.counts(now)
        }
    };
    (@ setting_or_insert) => {
        fn setting_or_insert(&self, key: &str, value: &str) -> clair_notifier::Result<String> {
            self.inner.setting_or_insert(key, value)
        }
    };
    (@ resend) => {
        fn resend(
            &self,
            name: &str,
            unread: bool,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<clair_notifier::store::Resend> {
            self.inner.resend(name, unread, now)
        }
    };
    (@ resend_failing) => {
        fn resend_failing(&self, now: clair_notifier::Timestamp) -> clair_notifier::Result<u64> {
            self.inner.resend_failing(now)
        }
    };
    (@ set_paused) => {
        fn set_paused(
            &self,
            notifier: &str,
            paused: bool,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<bool> {
            self.inner.set_paused(notifier, paused, now)
        }
    };
    (@ end_wait) => {
        fn end_wait(&self, notifier: &str, now: clair_notifier::Timestamp) -> clair_notifier::Result<usize> {
            self.inner.end_wait(notifier, now)
        }
    };
    (@ notifiers) => {
        fn notifiers(
            &self,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<Vec<clair_notifier::store::NotifierState>> {
            self.inner.notifiers(now)
        }
    };
    (@ record_sends) => {
        fn record_sends(
            &self,
            sends: &clair_notifier::store::Sends,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<clair_notifier::store::CircuitChange> {
            self.inner.record_sends(sends, now)
        }
    };
    (@ take_probe) => {
        fn take_probe(
            &self,
            notifier: &str,
            probe: std::time::Duration,
            now: clair_notifier::Timestamp,
        ) -> clair_notifier::Result<bool> {
            self.inner.take_probe(notifier, probe, now)
        }
    };
    (@ attempts) => {
        fn attempts(
            &self,
            name: &str,
        ) -> clair_notifier::Result<Option<Vec<clair_notifier::attempt::Attempt>>> {
            self.inner.attempts(name)
        }
    };
    (@ watch) => {
        fn watch(&self, waker: clair_notifier::Waker) {
            self.inner.watch(waker)
        }
    };
}
