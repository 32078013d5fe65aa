//! `[retention]`: how long what is done with is kept before the service deletes it.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[retention]`: how long read notifications (and attempt records) are kept. A duration of
/// zero, written `"0"`, keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long after it was read a notification is deleted, with its layers. Unread
    /// notifications are never deleted. Defaults to `30d`.
    #[serde(deserialize_with = "de_retention")]
    pub read: Duration,
    /// How long a row of the attempt log is kept after it was written. Defaults to `7d`.
    #[serde(deserialize_with = "de_retention")]
    pub attempts: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            read: Duration::from_secs(30 * 86_400),
            attempts: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A duration as [`parse_duration`](super::parse_duration) reads it, or `"0"`: forever.
fn de_retention<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    super::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{e}, or \"0\" to keep forever")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<RetentionConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_or_zero_for_forever_and_nothing_else() {
        assert_eq!(parse("{}").unwrap(), RetentionConfig::default());
        assert_eq!(
            RetentionConfig::default().read,
            Duration::from_secs(30 * 86_400)
        );
        let r = parse(r#"{"read":"0","attempts":"12h"}"#).unwrap();
        assert_eq!(
            (r.read, r.attempts),
            (Duration::ZERO, Duration::from_secs(12 * 3600))
        );
        for bad in [
            r#"{"read":"30"}"#,
            r#"{"read":"-1d"}"#,
            r#"{"attempts":""}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("or \"0\" to keep forever"), "{bad}: {e}");
        }
        assert!(parse(r#"{"reads":"1d"}"#).unwrap_err().contains("reads"));
        assert!(parse(r#"{"read":30}"#).is_err());
    }
}
