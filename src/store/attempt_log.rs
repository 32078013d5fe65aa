//! Which tries a store keeps in its attempt log: every failure always, and of successes
//! every one, only the last (kept in the notification's own row, which the outcome rewrites
//! anyway), or none at all.

use crate::attempt::{Attempt, AttemptClass};
use crate::time::Timestamp;

/// Which attempts a store logs (the SQLite and the PostgreSQL store alike). Failures always
/// get a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttemptLog {
    /// Every failure, and only the last success of each notification (kept in its row: no
    /// write beyond the outcome's own).
    #[default]
    LastSuccess,
    /// Every attempt, successes included: one more row written per delivery.
    EverySuccess,
    /// Nothing: the store as it was before the attempt log (for measuring its cost).
    Off,
}

impl AttemptLog {
    pub(crate) fn from_u8(v: u8) -> AttemptLog {
        match v {
            1 => AttemptLog::EverySuccess,
            2 => AttemptLog::Off,
            _ => AttemptLog::LastSuccess,
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            AttemptLog::LastSuccess => 0,
            AttemptLog::EverySuccess => 1,
            AttemptLog::Off => 2,
        }
    }

    /// The attempts of `log` that get a row, and the success kept in the notification's row.
    pub(crate) fn split(self, log: &[Attempt]) -> (Vec<&Attempt>, Option<&Attempt>) {
        match self {
            AttemptLog::Off => (Vec::new(), None),
            AttemptLog::EverySuccess => (log.iter().collect(), None),
            AttemptLog::LastSuccess => (
                log.iter().filter(|a| a.class != AttemptClass::Ok).collect(),
                log.iter().rev().find(|a| a.class == AttemptClass::Ok),
            ),
        }
    }
}

/// The success kept in a notification's row, as the four values its columns bind.
pub(crate) fn ok_columns(
    ok: Option<&Attempt>,
) -> (Option<&str>, Option<i64>, Option<i64>, Option<i64>) {
    match ok {
        None => (None, None, None, None),
        Some(a) => (
            Some(a.notifier.as_str()),
            Some(a.started.as_millis()),
            Some(a.duration.as_millis() as i64),
            a.next_due.map(Timestamp::as_millis),
        ),
    }
}
