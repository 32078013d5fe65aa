//! What every store checks of a batch before it writes any of it.

use crate::error::{Error, ErrorKind, Result};
use crate::notification::NewNotification;

/// Checks every notification of a batch before anything is written, so that a bad one
/// inserts nothing: [`InvalidInput`](ErrorKind::InvalidInput) naming its index.
pub(super) fn check_all(notifications: &[NewNotification]) -> Result<()> {
    for (i, n) in notifications.iter().enumerate() {
        n.check().map_err(|why| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("notification {} of {}: {why}", i + 1, notifications.len()),
            )
        })?;
    }
    Ok(())
}
