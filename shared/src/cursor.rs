//! Opaque page cursors, bound to the user and the list they were minted for.
//!
//! A cursor is `base64url(tag || json(key))` where `tag` is an HMAC over the list's scope, the
//! caller's user id and the key. Editing a cursor, or presenting one minted for another user or
//! another list, fails the tag check and is a 400. The key never holds `user_id`: the store
//! always queries the caller's own partition, the cursor only says where to resume inside it.

use std::collections::BTreeMap;

use aws_lc_rs::{constant_time, hmac};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::{auth::Identity, error::ApiError};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
const TAG_LEN: usize = 16;
/// Longer than any cursor we mint; anything bigger is refused before decoding.
const MAX_CURSOR_LEN: usize = 2048;

/// The resume point of a list: the key attributes (other than `user_id`) of the last item.
pub type CursorKey = BTreeMap<String, String>;

#[derive(Clone)]
pub struct CursorCodec {
    key: hmac::Key,
}

impl CursorCodec {
    /// `secret` is the configured cursor secret (or a key derived from the JWT secret).
    pub fn new(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn tag(&self, scope: &str, who: &Identity, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [scope.as_bytes(), b"\0", who.user_id().as_bytes(), b"\0", payload] {
            ctx.update(part);
        }
        ctx.sign()
    }

    pub fn encode(&self, scope: &str, who: &Identity, key: &CursorKey) -> String {
        let payload = serde_json::to_vec(key).expect("a string map always serializes");
        let mut bytes = self.tag(scope, who, &payload).as_ref()[..TAG_LEN].to_vec();
        bytes.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(&self, scope: &str, who: &Identity, cursor: &str) -> Result<CursorKey, ApiError> {
        let invalid =
            || ApiError::bad_request("cursor is invalid: pass back the `next_cursor` of a previous page unchanged");
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        if bytes.len() <= TAG_LEN {
            return Err(invalid());
        }
        let (tag, payload) = bytes.split_at(TAG_LEN);
        let expected = self.tag(scope, who, payload);
        constant_time::verify_slices_are_equal(tag, &expected.as_ref()[..TAG_LEN]).map_err(|_| invalid())?;
        serde_json::from_slice(payload).map_err(|_| invalid())
    }
}

/// `limit` and `cursor` of a list request, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::bad_request(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
        };
        let cursor = cursor.filter(|c| !c.is_empty()).map(str::to_owned);
        Ok(Self { limit, cursor })
    }
}

/// One page of a list, as the API returns it.
#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn identity(user: &str) -> Identity {
        Identity::for_tests(user)
    }

    fn key() -> CursorKey {
        [("id".to_owned(), "0193".to_owned()), ("updated_at".to_owned(), "2026-01-01T00:00:00.000000Z".to_owned())]
            .into_iter()
            .collect()
    }

    #[test]
    fn round_trips_for_the_same_user_and_scope() {
        let codec = CursorCodec::new(b"k");
        let c = codec.encode("canvases", &identity("alice"), &key());
        assert_eq!(codec.decode("canvases", &identity("alice"), &c).unwrap(), key());
        assert!(!c.contains("alice"), "cursor is opaque");
    }

    #[test]
    fn refuses_another_users_or_another_lists_cursor() {
        let codec = CursorCodec::new(b"k");
        let c = codec.encode("canvases", &identity("alice"), &key());
        assert!(matches!(codec.decode("canvases", &identity("bob"), &c), Err(ApiError::BadRequest(_))));
        assert!(matches!(codec.decode("sessions", &identity("alice"), &c), Err(ApiError::BadRequest(_))));
        assert!(CursorCodec::new(b"other").decode("canvases", &identity("alice"), &c).is_err());
    }

    #[test]
    fn refuses_tampering_and_garbage() {
        let codec = CursorCodec::new(b"k");
        let who = identity("alice");
        let c = codec.encode("canvases", &who, &key());
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        assert!(codec.decode("canvases", &who, &URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        for garbage in ["", "!!!", "AAAA", "eyJpZCI6IjEifQ", &"A".repeat(5000)] {
            assert!(codec.decode("canvases", &who, garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "abc", "1.5", ""] {
            assert!(PageRequest::parse(Some(bad), None).is_err(), "{bad}");
        }
        assert_eq!(PageRequest::parse(None, Some("")).unwrap().cursor, None);
    }
}
