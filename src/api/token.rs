//! Page tokens: opaque, URL-safe, tamper-evident, bound to one notification.
//!
//! A token carries a [`PageCursor`] (the start of a page in the Old and in the New layer
//! lists) and an HMAC-SHA256 tag over the cursor *and the notification's name*. So an altered or invented token, or a token of another
//! notification, is refused ([`PageKey::open`] returns `None`, the API answers 400), never
//! read as a wrong page.
//!
//! Layout before base64 (URL-safe alphabet, no padding): one version byte (`1`), the Old
//! and New positions as big-endian `i64`, the 32-byte tag: 49 bytes, 66 characters.
//!
//! The key is the configured `[api] pagination_key` (32 bytes in URL-safe base64, like
//! Clair's `paginationKey`), or one generated once and kept in the database
//! ([`PageKey::resolve`]), so tokens stay valid across restarts and are shared by every
//! instance using the same database.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD, URL_SAFE_PAD_INDIFFERENT};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::notification::PageCursor;
use crate::store::Datastore;

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
const TOKEN_LEN: usize = 1 + 8 + 8 + TAG_LEN;
/// Where a generated pagination key is kept in the store's settings.
pub(crate) const PAGINATION_KEY_SETTING: &str = "api.pagination_key";

/// The secret that signs page tokens.
#[derive(Clone)]
pub struct PageKey(hmac::Key);

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(<redacted>)")
    }
}

impl PageKey {
    /// The key written as 32 bytes in URL-safe base64 (padded or not), as in
    /// `[api] pagination_key`.
    ///
    /// # Errors
    ///
    /// A configuration error naming `api.pagination_key` (never showing its value) when the
    /// text is not base64 or does not hold exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<PageKey> {
        let bytes = URL_SAFE_PAD_INDIFFERENT
            .decode(text.trim())
            .map_err(|_| Error::config("api.pagination_key is not URL-safe base64"))?;
        if bytes.len() != 32 {
            return Err(Error::config(format!(
                "api.pagination_key must hold 32 bytes, it holds {}",
                bytes.len()
            )));
        }
        Ok(PageKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// A new random key, written as [`from_base64`](PageKey::from_base64) reads it (44
    /// characters, padded, like a Fernet key).
    ///
    /// # Errors
    ///
    /// The system's random source failed.
    pub fn generate() -> Result<String> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| {
            Error::new(
                ErrorKind::Other,
                "could not read the system's random source",
            )
        })?;
        Ok(URL_SAFE.encode(bytes))
    }

    /// The configured key, or else the one kept in `store` (generated and stored on first
    /// use, so every instance sharing the store agrees on it).
    ///
    /// # Errors
    ///
    /// A bad configured key (kind [`Config`](ErrorKind::Config)), a store failure, or a
    /// stored key that is not a valid key (the store's settings were edited by hand).
    pub fn resolve(config: &ApiConfig, store: &dyn Datastore) -> Result<PageKey> {
        if !config.pagination_key.is_empty() {
            return PageKey::from_base64(&config.pagination_key);
        }
        let stored = store.setting_or_insert(PAGINATION_KEY_SETTING, &PageKey::generate()?)?;
        PageKey::from_base64(&stored).map_err(|_| {
            Error::new(
                ErrorKind::Store,
                format!("the pagination key kept in the database ({PAGINATION_KEY_SETTING}) is not 32 bytes of base64"),
            )
        })
    }

    /// The token of the page of notification `name` that starts at `cursor`.
    pub fn seal(&self, name: &str, cursor: PageCursor) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&cursor.old.to_be_bytes());
        bytes.extend_from_slice(&cursor.new.to_be_bytes());
        let tag = hmac::sign(&self.0, &signed_data(name, &bytes));
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor in `token`, if it is a token this key made for notification `name`.
    pub fn open(&self, name: &str, token: &str) -> Option<PageCursor> {
        if token.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return None;
        }
        let (body, tag) = bytes.split_at(1 + 16);
        // Compared in constant time by ring.
        hmac::verify(&self.0, &signed_data(name, body), tag).ok()?;
        let old = i64::from_be_bytes(body[1..9].try_into().ok()?);
        let new = i64::from_be_bytes(body[9..17].try_into().ok()?);
        (old >= -1 && new >= -1).then_some(PageCursor { old, new })
    }
}

fn signed_data(name: &str, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(name.len() + body.len() + 1);
    data.extend_from_slice(body);
    data.push(0);
    data.extend_from_slice(name.as_bytes());
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageKey {
        PageKey::from_base64(&PageKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_token_opens_to_its_cursor_for_its_notification_only() {
        let k = key();
        let c = PageCursor { old: 3, new: -1 };
        let t = k.seal("a", c);
        assert_eq!(t.len(), 66);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(k.open("a", &t), Some(c));
        assert_eq!(k.open("b", &t), None, "bound to the name");
        assert_eq!(key().open("a", &t), None, "bound to the key");
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let k = key();
        let t = k.seal("n", PageCursor { old: 0, new: 100 });
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(k.open("n", &URL_SAFE_NO_PAD.encode(&bad)), None);
            }
        }
        for bad in ["", "garbage", "====", &t[..t.len() - 1], &format!("{t}A")] {
            assert_eq!(k.open("n", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_errors_never_show_them() {
        let good = PageKey::generate().unwrap();
        assert_eq!(good.len(), 44);
        PageKey::from_base64(&good).unwrap();
        PageKey::from_base64(good.trim_end_matches('=')).unwrap();
        for bad in ["not base64 !!", "c2hvcnQ="] {
            let err = PageKey::from_base64(bad).unwrap_err().to_string();
            assert!(err.contains("api.pagination_key"), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
    }
}
