//! Server-set fields every record carries, and validation of client-set values.

use serde::{Deserialize, Deserializer};
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};
use uuid::Uuid;

use crate::error::ApiError;

/// Fixed-width UTC timestamps, so string order is time order in DynamoDB sort keys.
const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(String);

impl Timestamp {
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc().format(FORMAT).expect("UTC timestamps always format"))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A new, time-ordered item id (UUIDv7).
pub fn new_id() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

/// The canonical form of an id from a path. Anything that is not a UUID cannot name an item,
/// so it is answered exactly like an id that does not exist.
pub fn parse_id(raw: &str, noun: &'static str) -> Result<String, ApiError> {
    Uuid::try_parse(raw).map(|u| u.hyphenated().to_string()).map_err(|_| ApiError::NotFound(noun))
}

/// The fields the server sets on creation: id, timestamps, version 1.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

impl NewRecord {
    pub fn now() -> Self {
        let now = Timestamp::now().into_string();
        Self { id: new_id(), created_at: now.clone(), updated_at: now, version: 1 }
    }
}

/// Checks a text field's length in characters (not bytes) and refuses control characters
/// other than newline and tab.
pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::bad_request(format!("{field} must be {min} to {max} characters long, got {len}")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ApiError::bad_request(format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// A client JSON document (a canvas, a workflow graph) to store as text: it must be a JSON
/// object and at most `max_bytes` long (else 413).
pub fn json_document(field: &str, raw: &serde_json::value::RawValue, max_bytes: usize) -> Result<String, ApiError> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(ApiError::bad_request(format!("{field} must be a JSON object")));
    }
    if text.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!("{field} is over {max_bytes} bytes")));
    }
    Ok(text.to_owned())
}

/// A stored JSON document, returned as is.
pub fn stored_json(field: &str, text: String) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    serde_json::value::RawValue::from_string(text).map_err(|e| ApiError::Internal(format!("stored {field}: {e}")))
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_strings() {
        let a = Timestamp::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Timestamp::now();
        assert!(a < b);
        assert_eq!(a.0.len(), "2026-01-01T00:00:00.000000Z".len());
    }

    #[test]
    fn ids_are_time_ordered_and_canonical() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b);
        assert_eq!(parse_id(&a.to_uppercase(), "canvas").unwrap(), a);
        assert_eq!(parse_id("nope", "canvas"), Err(ApiError::NotFound("canvas")));
    }

    #[test]
    fn text_bounds_count_characters() {
        assert!(check_text("name", "ééé", 1, 3).is_ok());
        assert!(check_text("name", "", 1, 3).is_err());
        assert!(check_text("name", "abcd", 1, 3).is_err());
        assert!(check_text("name", "a\u{0}b", 1, 3).is_err());
    }
}
