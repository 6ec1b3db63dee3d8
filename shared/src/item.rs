//! Server-set fields every record carries, and validation of client-set values.

use serde::{Deserialize, Deserializer, Serialize};
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

    /// The start of a second since the epoch, in the same format (so it compares as text).
    pub fn from_epoch_seconds(seconds: u64) -> Self {
        let at = i64::try_from(seconds).ok().and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        Self(at.unwrap_or(OffsetDateTime::UNIX_EPOCH).format(FORMAT).expect("UTC timestamps always format"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whole seconds since the epoch of a timestamp in this format (None for anything else).
    pub fn epoch_seconds(text: &str) -> Option<u64> {
        let at = time::PrimitiveDateTime::parse(text, FORMAT).ok()?;
        u64::try_from(at.assume_utc().unix_timestamp()).ok()
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
    text_error(value, min, max).map_or(Ok(()), |e| Err(ApiError::bad_request(format!("{field} {e}"))))
}

/// Code points a text field refuses: control characters other than tab, newline and return
/// (the same rule as [`check_text`], as a JSON Schema pattern for the API description).
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";

/// A text field of `MIN` to `MAX` characters without control characters, checked while the
/// body is parsed (the error names the field) and described as such in the API description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Text<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text_error(&text, MIN, MAX).map_or(Ok(Self(text)), |e| Err(serde::de::Error::custom(e)))
    }
}

impl<const MIN: usize, const MAX: usize> utoipa::PartialSchema for Text<MIN, MAX> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(MIN))
            .max_length(Some(MAX))
            .pattern(Some(TEXT_PATTERN))
            .into()
    }
}

impl<const MIN: usize, const MAX: usize> utoipa::ToSchema for Text<MIN, MAX> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("Text{MIN}to{MAX}").into()
    }
}

/// Why a text is refused, if it is.
fn text_error(value: &str, min: usize, max: usize) -> Option<String> {
    let len = value.chars().count();
    if len < min || len > max {
        return Some(format!("must be {min} to {max} characters long, got {len}"));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Some("must not contain control characters".to_owned());
    }
    None
}

/// How deeply a client JSON document may nest objects and arrays. Deeper documents are refused:
/// clients that parse them recursively (browsers, serde's default limit of 128) would fail.
pub const JSON_MAX_DEPTH: usize = 64;

/// A client JSON document (a canvas, a workflow graph) to store as text: it must be a JSON
/// object, at most `max_bytes` long (else 413) and nested at most [`JSON_MAX_DEPTH`] deep.
pub fn json_document(field: &str, raw: &serde_json::value::RawValue, max_bytes: usize) -> Result<String, ApiError> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(ApiError::bad_request(format!("{field} must be a JSON object")));
    }
    if text.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!("{field} is over {max_bytes} bytes")));
    }
    if json_depth(text) > JSON_MAX_DEPTH {
        return Err(ApiError::bad_request(format!("{field} nests deeper than {JSON_MAX_DEPTH} levels")));
    }
    Ok(text.to_owned())
}

/// The deepest nesting of objects and arrays in valid JSON text (brackets inside strings do
/// not count).
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{' | b'[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
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
    fn timestamps_read_back_as_epoch_seconds() {
        assert_eq!(
            Timestamp::epoch_seconds(Timestamp::from_epoch_seconds(1_700_000_123).as_str()),
            Some(1_700_000_123)
        );
        assert_eq!(Timestamp::epoch_seconds("2026-12-07T13:05:34.999999Z"), Some(1_796_648_734));
        assert_eq!(Timestamp::epoch_seconds("yesterday"), None);
    }

    #[test]
    fn timestamps_sort_as_strings() {
        assert_eq!(Timestamp::from_epoch_seconds(86_400).as_str(), "1970-01-02T00:00:00.000000Z");
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
        assert!(check_text("name", "a\u{85}b", 1, 3).is_err());
        assert!(check_text("name", "a\nb", 1, 3).is_ok());
    }

    #[test]
    fn json_documents_have_a_depth_limit() {
        assert_eq!(json_depth(r#"{"a":[1,{"b":"[[[{{"}]}"#), 3);
        assert_eq!(json_depth(r#"{"a":"\\\"[["}"#), 1);
        let nested = |n: usize| format!("{}{}", "{\"a\":".repeat(n), "1".to_owned() + &"}".repeat(n));
        let raw = |t: String| serde_json::value::RawValue::from_string(t).unwrap();
        assert!(json_document("data", &raw(nested(JSON_MAX_DEPTH)), 1 << 20).is_ok());
        let refused = json_document("data", &raw(nested(JSON_MAX_DEPTH + 1)), 1 << 20).unwrap_err();
        assert!(matches!(refused, ApiError::BadRequest(m) if m.contains("64")));
    }

    #[test]
    fn text_fields_check_while_parsing() {
        assert_eq!(serde_json::from_str::<Text<1, 3>>("\"abc\"").unwrap().as_str(), "abc");
        assert!(serde_json::from_str::<Text<1, 3>>("\"\"").unwrap_err().to_string().contains("1 to 3"));
        assert!(serde_json::from_str::<Text<1, 3>>("\"a\\u0007\"").is_err());
    }

    #[test]
    fn the_text_pattern_is_the_text_rule() {
        // The pattern excludes exactly the control characters `check_text` refuses.
        let excluded: Vec<u32> = (0..0x100u32)
            .filter(|c| char::from_u32(*c).is_some_and(|c| text_error(&c.to_string(), 0, 1).is_some()))
            .collect();
        let expected: Vec<u32> = (0..=8).chain([0x0b, 0x0c]).chain(0x0e..=0x1f).chain(0x7f..=0x9f).collect();
        assert_eq!(excluded, expected);
        assert!(TEXT_PATTERN.contains("\\u000E-\\u001F") && TEXT_PATTERN.contains("\\u007F-\\u009F"));
    }
}
