//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Each POST carries three headers:
//!
//! - `webhook-id`: the message id, `<name>.<round>` (see [`message_id`]): the same on every
//!   try of one delivery round, so a receiver can recognise a repeat, and new for each round,
//!   so a receiver that drops repeats still hears every renotification;
//! - `webhook-timestamp`: when this try was signed, in Unix seconds;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per
//!   secret, separated by spaces (several secrets during a rotation).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use ring::hmac;

use crate::error::{Error, Result};

/// The Standard Webhooks message id of a delivery: the notification's name and the round it
/// belongs to, named by when the previous round succeeded (in Unix milliseconds; `0` before
/// the first success), e.g. `6e4ad270-4957-4242-b5ad-dad851379573.0`.
pub fn message_id(delivery: &crate::notifier::Delivery) -> String {
    let round = delivery.notified.map_or(0, |t| t.as_millis());
    format!("{}.{round}", delivery.name)
}

/// The prefix of a Standard Webhooks secret.
const PREFIX: &str = "whsec_";

/// Signs webhook messages with one or more secrets. `Debug` shows only how many.
pub(crate) struct Signer {
    keys: Vec<hmac::Key>,
}

impl Signer {
    /// Parses `signing_secret`: one or more `whsec_<base64>` secrets separated by whitespace.
    ///
    /// # Errors
    ///
    /// A configuration error naming `notifier.http.signing_secret` and which secret is at
    /// fault (by position), never the secret itself.
    pub(crate) fn parse(secrets: &str) -> Result<Signer> {
        let mut keys = Vec::new();
        for (i, secret) in secrets.split_whitespace().enumerate() {
            let which = i + 1;
            let Some(encoded) = secret.strip_prefix(PREFIX) else {
                return Err(Error::config(format!(
                    "notifier.http.signing_secret: secret #{which} does not start with \
                     \"{PREFIX}\" (expected \"{PREFIX}<base64>\")"
                )));
            };
            let key = STANDARD_PAD_INDIFFERENT.decode(encoded).map_err(|_| {
                Error::config(format!(
                    "notifier.http.signing_secret: secret #{which} is not valid base64 after \
                     \"{PREFIX}\""
                ))
            })?;
            if key.is_empty() {
                return Err(Error::config(format!(
                    "notifier.http.signing_secret: secret #{which} is empty after \"{PREFIX}\""
                )));
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, &key));
        }
        if keys.is_empty() {
            return Err(Error::config(
                "notifier.http.signing_secret holds no secret (expected \"whsec_<base64>\")",
            ));
        }
        Ok(Signer { keys })
    }

    /// The `webhook-signature` value for message `id` signed at `timestamp` (Unix seconds)
    /// with body `body`: `v1,<base64>` for each secret, separated by single spaces.
    pub(crate) fn sign(&self, id: &str, timestamp: u64, body: &str) -> String {
        let content = format!("{id}.{timestamp}.{body}");
        let mut out = String::new();
        for key in &self.keys {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            STANDARD.encode_string(hmac::sign(key, content.as_bytes()), &mut out);
        }
        out
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("secrets", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::refused_naming;

    #[test]
    fn message_ids_stay_within_a_round_and_change_with_the_next() {
        use crate::{Delivery, Timestamp};
        let first = Delivery {
            name: "n".into(),
            created: Timestamp::from_millis(1),
            notified: None,
            attempt: 1,
        };
        let retry = Delivery {
            attempt: 3,
            ..first.clone()
        };
        let renotify = Delivery {
            notified: Some(Timestamp::from_millis(7_200_000)),
            attempt: 1,
            ..first.clone()
        };
        assert_eq!(message_id(&first), "n.0");
        assert_eq!(message_id(&retry), message_id(&first));
        assert_eq!(message_id(&renotify), "n.7200000");
    }

    // The example of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_reference_signature() {
        let s = Signer::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TIMESTAMP, BODY), EXPECTED);
    }

    #[test]
    fn several_secrets_give_several_signatures() {
        let other = format!("{PREFIX}{}", STANDARD.encode(b"another secret, 24 bytes"));
        let s = Signer::parse(&format!("  {SECRET}   {other} ")).unwrap();
        let sig = s.sign(ID, TIMESTAMP, BODY);
        let parts: Vec<_> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], EXPECTED);
        assert!(parts[1].starts_with("v1,") && parts[1] != EXPECTED);
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let padded = format!("{PREFIX}{}", STANDARD.encode(b"twenty-five bytes secret!"));
        assert!(padded.ends_with('='));
        let a = Signer::parse(&padded).unwrap().sign(ID, TIMESTAMP, BODY);
        let b = Signer::parse(padded.trim_end_matches('='))
            .unwrap()
            .sign(ID, TIMESTAMP, BODY);
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_secrets_are_named_but_never_shown() {
        let good_then_bad = format!("{SECRET} whsec_%%%%");
        let unprefixed = &SECRET[PREFIX.len()..];
        let bad = [
            unprefixed,
            "whsec_not*base64!",
            "whsec_",
            "   ",
            &good_then_bad,
        ];
        for err in refused_naming("notifier.http.signing_secret", &bad, Signer::parse) {
            assert!(!err.contains("MfKQ9r8G"), "{err}");
            assert!(
                !err.contains("%%%%") && !err.contains("not*base64"),
                "{err}"
            );
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let s = Signer::parse(SECRET).unwrap();
        assert_eq!(format!("{s:?}"), "Signer { secrets: 1 }");
    }
}
