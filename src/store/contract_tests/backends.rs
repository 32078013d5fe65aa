//! The backends the contract runs on, and what a test needs of them beyond the trait.

use crate::store::{AttemptLog, Datastore};

/// A store under test.
pub(crate) trait TestStore: Datastore {
    /// Chooses which attempts the store logs.
    fn set_log(&self, log: AttemptLog);
    /// Another store on the same database (as after a restart, or another instance).
    fn reopen(&self) -> Box<dyn Datastore>;
}

impl TestStore for crate::SqliteStore {
    fn set_log(&self, log: AttemptLog) {
        self.set_attempt_log(log);
    }

    fn reopen(&self) -> Box<dyn Datastore> {
        Box::new(crate::SqliteStore::open(self.path()).unwrap())
    }
}

#[cfg(feature = "postgres")]
impl TestStore for crate::store::PostgresStore {
    fn set_log(&self, log: AttemptLog) {
        self.set_attempt_log(log);
    }

    fn reopen(&self) -> Box<dyn Datastore> {
        Box::new(crate::store::postgres::testing::reopen(self))
    }
}

/// Runs each named body on each backend, as `<backend>::<body>`. A body takes a
/// `&dyn Datastore`, or a `&dyn TestStore` when it needs more than the trait.
macro_rules! backends {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $body() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::SqliteStore::open(dir.path().join("contract.db")).unwrap();
                    super::$body(&store);
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $body() {
                    let Some(store) = crate::store::postgres::testing::fresh_store() else {
                        return;
                    };
                    super::$body(&store);
                }
            )*
        }
    };
}
