//! One legacy item in, one target item out: its owner, its id, its timestamps and exactly the
//! attributes the API's record types read. An item that cannot be shaped comes back as a
//! [`Problem`] with the reason, never as nothing.
//!
//! | kind | legacy attributes read | target attributes |
//! |---|---|---|
//! | canvases | `name` (S, required), `description` (S), `data` (M, or S holding a JSON object; absent: `{}`) | `name`, `description`, `data` as JSON text, `version` 1 |
//! | sessions | `title` (S; absent: `New chat`, the API's default) | `title`, `version` 1 |
//! | messages | `session_id` (S, required), `role` (`user`, `assistant` or `tool`, any case), `content` (S, required) | `session_id`, `session_order`, `role`, `content` |
//! | workflows | `name` (S, required), `graph` (M, or S holding a JSON object; required) | `name`, `graph` as JSON text, `run_status` `idle`, `version` 1 |
//! | files | `name` (S, required), `size` (N, required), `content_type` (S; absent: `application/octet-stream`), `status` (`pending`/`ready`; absent: `ready`) | the same, `version` 1 |
//!
//! Every kind also reads `id` (the legacy key), `created_at` and `updated_at` (RFC 3339 text,
//! or epoch seconds or milliseconds as N or S), and the owner attribute. Anything else is left
//! behind and counted in the summary.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use shared::{children::ChildStore, item::parse_id, resource::Resource, store::attr, store::Item};
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{owner::Owners, Kind};

/// Set on a target item whose id is not the legacy id (see [`target_id`]), so the link back
/// is never lost.
pub const LEGACY_ID: &str = "legacy_id";
/// The messages table's parent attribute and ordering-index attribute (the sessions function's
/// `ChildCollection`); the ordering value itself comes from
/// [`ChildStore::unsequenced_order_key`]: migrated messages carry no `seq`, and list, in legacy
/// order, before every message the API numbers.
pub const SESSION_ID: &str = "session_id";
pub const SESSION_ORDER: &str = "session_order";
/// DynamoDB's item size limit.
pub const ITEM_MAX_BYTES: usize = 400 * 1024;

const CREATED_AT: &str = attr::CREATED_AT;
const UPDATED_AT: &str = attr::UPDATED_AT;
const DEFAULT_SESSION_TITLE: &str = "New chat";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Why an item is not (or not correctly) in the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// No owner from the mapping, the owner attribute or the default, or an unusable one.
    NoOwner,
    /// Missing or mistyped attributes, unparseable JSON or timestamps.
    Malformed,
    /// Over an API size limit or DynamoDB's item limit.
    TooLarge,
    /// A message whose session is missing or cannot be migrated itself.
    SessionUnavailable,
    /// The target already holds a different item under this key: left untouched.
    Conflict,
    /// Verify: the item is not in the target.
    Missing,
    /// Verify: the target item differs from what the migration writes.
    Differs,
    /// DynamoDB refused the write for this item.
    WriteFailed,
}

impl Category {
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoOwner => "no owner",
            Self::Malformed => "malformed",
            Self::TooLarge => "too large",
            Self::SessionUnavailable => "session not migratable",
            Self::Conflict => "target holds a different item (left untouched)",
            Self::Missing => "missing in target",
            Self::Differs => "differs in target",
            Self::WriteFailed => "write failed",
        }
    }

    /// Whether the item could not be migrated at all (as opposed to a difference in the target).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::NoOwner | Self::Malformed | Self::TooLarge | Self::SessionUnavailable | Self::WriteFailed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub category: Category,
    pub detail: String,
}

impl Problem {
    pub fn new(category: Category, detail: impl Into<String>) -> Self {
        Self { category, detail: detail.into() }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        Self::new(Category::Malformed, detail)
    }

    fn too_large(detail: impl Into<String>) -> Self {
        Self::new(Category::TooLarge, detail)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.category.describe(), self.detail)
    }
}

/// A target item ready to write: `item` holds `user_id` and `id` already.
#[derive(Clone, Debug, PartialEq)]
pub struct Shaped {
    pub owner: String,
    pub id: String,
    pub item: Item,
}

impl Shaped {
    pub fn key(&self) -> Item {
        Item::from([
            (attr::USER_ID.to_owned(), AttributeValue::S(self.owner.clone())),
            (attr::ID.to_owned(), AttributeValue::S(self.id.clone())),
        ])
    }
}

/// Shapes legacy items. `fallback` is the creation time given to items that carry no timestamp
/// at all (per kind: by default the legacy table's creation time, fixed, so every run derives
/// the same item).
#[derive(Clone, Debug)]
pub struct Shaper {
    pub owners: Owners,
    pub fallback: BTreeMap<Kind, OffsetDateTime>,
}

/// The legacy id of an item: its `id` key, a string.
pub fn legacy_id(item: &Item) -> Result<&str, Problem> {
    match item.get(attr::ID) {
        Some(AttributeValue::S(id)) if !id.is_empty() => Ok(id),
        Some(_) => Err(Problem::malformed("id is not a non-empty string")),
        None => Err(Problem::malformed("id is missing")),
    }
}

/// The legacy attributes a kind reads (besides the owner attribute).
fn known(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Canvases => &["id", "name", "description", "data", CREATED_AT, UPDATED_AT],
        Kind::Sessions => &["id", "title", CREATED_AT, UPDATED_AT],
        Kind::Messages => &["id", SESSION_ID, "role", "content", CREATED_AT],
        Kind::Workflows => &["id", "name", "graph", CREATED_AT, UPDATED_AT],
        Kind::Files => &["id", "name", "content_type", "size", "status", CREATED_AT, UPDATED_AT],
    }
}

impl Shaper {
    /// Legacy attributes this migration does not carry over, for the summary.
    pub fn left_behind<'a>(&self, kind: Kind, item: &'a Item) -> Vec<&'a str> {
        let owner = self.owners.attribute.as_deref();
        let mut names: Vec<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|name| !known(kind).contains(name) && Some(*name) != owner)
            .collect();
        names.sort_unstable();
        names
    }

    /// The target item of a legacy item. A message needs its session, already shaped (or the
    /// reason it cannot be): its owner and target session id come from there.
    pub fn shape(&self, kind: Kind, item: &Item, session: Option<&Result<Shaped, Problem>>) -> Result<Shaped, Problem> {
        let legacy = legacy_id(item)?;
        let shaped = match kind {
            Kind::Messages => {
                let session_id = Self::message_session(item)?;
                let session = match session {
                    Some(Ok(session)) => session,
                    Some(Err(problem)) => {
                        let why = match problem.category {
                            Category::SessionUnavailable => problem.detail.clone(),
                            _ => problem.to_string(),
                        };
                        return Err(Problem::new(Category::SessionUnavailable, format!("session {session_id}: {why}")));
                    }
                    None => {
                        return Err(Problem::new(
                            Category::SessionUnavailable,
                            format!("session {session_id}: not found"),
                        ))
                    }
                };
                self.message(item, legacy, session)?
            }
            _ => {
                let owner = self.owners.resolve(legacy, item)?;
                let mut out = Item::new();
                let created = self.created_at(kind, item, legacy)?;
                let updated = match item.get(UPDATED_AT) {
                    Some(v) => timestamp(UPDATED_AT, v)?,
                    None => created,
                };
                let id = target_id(kind, legacy);
                if id != legacy {
                    out.insert(LEGACY_ID.into(), s(legacy));
                }
                out.insert(attr::USER_ID.into(), s(&owner));
                out.insert(attr::ID.into(), s(&id));
                out.insert(CREATED_AT.into(), s(&format_time(created)));
                out.insert(UPDATED_AT.into(), s(&format_time(updated)));
                out.insert(attr::VERSION.into(), AttributeValue::N("1".into()));
                match kind {
                    Kind::Canvases => canvas(item, &mut out)?,
                    Kind::Sessions => session_fields(item, &mut out)?,
                    Kind::Workflows => workflow(item, &mut out)?,
                    Kind::Files => file(item, &mut out)?,
                    Kind::Messages => unreachable!("messages are shaped above"),
                }
                Shaped { owner, id, item: out }
            }
        };
        let size = item_size(&shaped.item);
        if size > ITEM_MAX_BYTES {
            return Err(Problem::too_large(format!("the target item would be {size} bytes, over DynamoDB's 400 KB")));
        }
        readable(kind, &shaped.item)?;
        Ok(shaped)
    }

    fn message(&self, item: &Item, legacy: &str, session: &Shaped) -> Result<Shaped, Problem> {
        let created = self.created_at(Kind::Messages, item, legacy)?;
        let id = message_id(legacy, created);
        let role = match item.get("role") {
            Some(AttributeValue::S(role)) => match role.to_ascii_lowercase().as_str() {
                r @ ("user" | "assistant" | "tool") => r.to_owned(),
                _ => return Err(Problem::malformed(format!("role {role:?} is not user, assistant or tool"))),
            },
            Some(_) => return Err(Problem::malformed("role is not a string")),
            None => return Err(Problem::malformed("role is missing")),
        };
        let content = required_string(item, "content")?;
        if content.len() > sessions::CONTENT_MAX_BYTES {
            return Err(Problem::too_large(format!(
                "content is {} bytes, over the API's {} for a message",
                content.len(),
                sessions::CONTENT_MAX_BYTES
            )));
        }
        let mut out = Item::new();
        if id != legacy {
            out.insert(LEGACY_ID.into(), s(legacy));
        }
        out.insert(attr::USER_ID.into(), s(&session.owner));
        out.insert(attr::ID.into(), s(&id));
        out.insert(SESSION_ID.into(), s(&session.id));
        out.insert(SESSION_ORDER.into(), s(&ChildStore::unsequenced_order_key(&session.id, &id)));
        out.insert("role".into(), s(&role));
        out.insert("content".into(), s(content));
        out.insert(CREATED_AT.into(), s(&format_time(created)));
        Ok(Shaped { owner: session.owner.clone(), id, item: out })
    }

    /// `created_at`, else the time inside a UUIDv7 id, else `updated_at`, else the fallback.
    fn created_at(&self, kind: Kind, item: &Item, legacy: &str) -> Result<OffsetDateTime, Problem> {
        if let Some(v) = item.get(CREATED_AT) {
            return timestamp(CREATED_AT, v);
        }
        if let Some(t) = uuid_v7_time(legacy) {
            return Ok(t);
        }
        if let (Some(v), true) = (item.get(UPDATED_AT), kind != Kind::Messages) {
            return timestamp(UPDATED_AT, v);
        }
        self.fallback
            .get(&kind)
            .copied()
            .ok_or_else(|| Problem::malformed("no timestamp and no fallback time for this kind"))
    }

    /// The legacy session id a message names (to look its session up).
    pub fn message_session(item: &Item) -> Result<&str, Problem> {
        required_string(item, SESSION_ID).and_then(|id| match id.is_empty() {
            true => Err(Problem::malformed("session_id is empty")),
            false => Ok(id),
        })
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn required_string<'a>(item: &'a Item, name: &str) -> Result<&'a str, Problem> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(Problem::malformed(format!("{name} is not a string"))),
        None => Err(Problem::malformed(format!("{name} is missing"))),
    }
}

fn optional_string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, Problem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => required_string(item, name).map(Some),
    }
}

/// A JSON document as the API stores it: the text of a JSON object. Legacy tables held either
/// a DynamoDB map or that text.
fn json_document(item: &Item, name: &str, max_bytes: usize, default: Option<&str>) -> Result<String, Problem> {
    let text = match item.get(name) {
        None | Some(AttributeValue::Null(_)) => match default {
            Some(d) => return Ok(d.to_owned()),
            None => return Err(Problem::malformed(format!("{name} is missing"))),
        },
        Some(AttributeValue::S(text)) => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| Problem::malformed(format!("{name} is not valid JSON: {e}")))?;
            if !value.is_object() {
                return Err(Problem::malformed(format!("{name} is not a JSON object")));
            }
            text.clone()
        }
        Some(v @ AttributeValue::M(_)) => {
            let value: serde_json::Value = dynamo::from_attribute_value(v.clone())
                .map_err(|e| Problem::malformed(format!("{name} does not convert to JSON: {e}")))?;
            serde_json::to_string(&value).map_err(|e| Problem::malformed(format!("{name}: {e}")))?
        }
        Some(_) => return Err(Problem::malformed(format!("{name} is neither a map nor JSON text"))),
    };
    if text.len() > max_bytes {
        return Err(Problem::too_large(format!("{name} is {} bytes, over the API's {max_bytes}", text.len())));
    }
    Ok(text)
}

fn canvas(item: &Item, out: &mut Item) -> Result<(), Problem> {
    out.insert("name".into(), s(required_string(item, "name")?));
    if let Some(d) = optional_string(item, "description")? {
        out.insert("description".into(), s(d));
    }
    out.insert("data".into(), s(&json_document(item, "data", canvases::DATA_MAX_BYTES, Some("{}"))?));
    Ok(())
}

fn session_fields(item: &Item, out: &mut Item) -> Result<(), Problem> {
    let title = optional_string(item, "title")?.unwrap_or(DEFAULT_SESSION_TITLE);
    out.insert("title".into(), s(title));
    Ok(())
}

fn workflow(item: &Item, out: &mut Item) -> Result<(), Problem> {
    out.insert("name".into(), s(required_string(item, "name")?));
    out.insert("graph".into(), s(&json_document(item, "graph", workflows::GRAPH_MAX_BYTES, None)?));
    out.insert("run_status".into(), s("idle"));
    Ok(())
}

fn file(item: &Item, out: &mut Item) -> Result<(), Problem> {
    out.insert("name".into(), s(required_string(item, "name")?));
    let content_type = optional_string(item, "content_type")?.unwrap_or(DEFAULT_CONTENT_TYPE);
    out.insert("content_type".into(), s(content_type));
    let size = match item.get("size") {
        Some(AttributeValue::N(n)) => {
            n.parse::<u64>().map_err(|_| Problem::malformed(format!("size {n} is not a whole number of bytes")))?
        }
        Some(_) => return Err(Problem::malformed("size is not a number")),
        None => return Err(Problem::malformed("size is missing")),
    };
    out.insert("size".into(), AttributeValue::N(size.to_string()));
    let status = match optional_string(item, "status")? {
        None => "ready",
        Some(s @ ("pending" | "ready")) => s,
        Some(other) => return Err(Problem::malformed(format!("status {other:?} is not pending or ready"))),
    };
    out.insert("status".into(), s(status));
    Ok(())
}

/// Proof that the API reads the item: it deserializes into the function's own record type,
/// and documents kept as text parse as JSON (as `GET` renders them).
fn readable(kind: Kind, item: &Item) -> Result<(), Problem> {
    fn read<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, Problem> {
        let mut item = item.clone();
        item.remove(attr::USER_ID);
        dynamo::from_item(item).map_err(|e| Problem::malformed(format!("the API could not read the target item: {e}")))
    }
    let unreadable = |e: shared::ApiError| Problem::malformed(format!("the API could not render the target item: {e}"));
    match kind {
        Kind::Canvases => read::<canvases::Canvas>(item)?.view().map(drop).map_err(unreadable),
        Kind::Sessions => read::<sessions::Session>(item).map(drop),
        Kind::Messages => read::<sessions::Message>(item).map(drop),
        Kind::Workflows => read::<workflows::Workflow>(item)?.view().map(drop).map_err(unreadable),
        Kind::Files => read::<files::File>(item).map(drop),
    }
}

/// Roughly DynamoDB's size of an item: names plus values (numbers counted as their text).
pub fn item_size(item: &Item) -> usize {
    fn value_size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + 1 + value_size(v)).sum::<usize>(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The target id of a document: the legacy id when it is a UUID (in canonical form, as the
/// API's routes accept ids), else a UUID derived from kind and legacy id, the same on every run.
pub fn target_id(kind: Kind, legacy: &str) -> String {
    match parse_id(legacy, kind.noun()) {
        Ok(id) => id,
        Err(_) => {
            let h = digest(kind, legacy);
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&h[..16]);
            bytes[6] = (bytes[6] & 0x0F) | 0x80; // version 8: custom (a name hash)
            bytes[8] = (bytes[8] & 0x3F) | 0x80; // RFC 9562 variant
            Uuid::from_bytes(bytes).hyphenated().to_string()
        }
    }
}

/// The target id of a message. Migrated messages are ordered by id inside their session (the
/// ordering index holds `<session id>#<message id>`), so the id must be time-ordered like the UUIDv7 the
/// API gives new messages: a legacy UUIDv7 is kept, any other id becomes a UUIDv7 made of the
/// message's `created_at` (to the microsecond) and a hash of its legacy id.
pub fn message_id(legacy: &str, created: OffsetDateTime) -> String {
    if let Ok(uuid) = Uuid::try_parse(legacy) {
        if uuid.get_version_num() == 7 {
            return uuid.hyphenated().to_string();
        }
    }
    let h = digest(Kind::Messages, legacy);
    let nanos = created.unix_timestamp_nanos().max(0) as u128;
    let millis = (nanos / 1_000_000) as u64;
    let micros = ((nanos / 1_000) % 1_000) as u16;
    let rand_a = (micros << 2) | u16::from(h[0] & 0b11); // 12 bits: sub-millisecond order first
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70 | ((rand_a >> 8) as u8 & 0x0F);
    bytes[7] = rand_a as u8;
    bytes[8] = 0x80 | (h[1] & 0x3F);
    bytes[9..].copy_from_slice(&h[2..9]);
    Uuid::from_bytes(bytes).hyphenated().to_string()
}

fn digest(kind: Kind, legacy: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{}:{legacy}", kind.noun()).as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn uuid_v7_time(id: &str) -> Option<OffsetDateTime> {
    let uuid = Uuid::try_parse(id).ok().filter(|u| u.get_version_num() == 7)?;
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos)).ok()
}

/// A legacy timestamp: RFC 3339 text, or epoch seconds (milliseconds when above 10^11) as a
/// number or numeric text.
pub fn timestamp(name: &str, value: &AttributeValue) -> Result<OffsetDateTime, Problem> {
    let bad = |what: &str| Problem::malformed(format!("{name} {what} is not an RFC 3339 time or an epoch number"));
    let parsed = match value {
        AttributeValue::N(n) => epoch(n),
        AttributeValue::S(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') => epoch(t),
        AttributeValue::S(t) => OffsetDateTime::parse(t, &Rfc3339).ok(),
        _ => return Err(bad("(not a string or number)")),
    };
    let time = parsed.ok_or_else(|| bad(&format!("{:?}", as_text(value))))?;
    if time.year() < 1970 || time.year() > 9999 {
        return Err(Problem::malformed(format!("{name} {} is out of range", as_text(value))));
    }
    Ok(time.to_offset(UtcOffset::UTC))
}

fn as_text(value: &AttributeValue) -> &str {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s,
        _ => "",
    }
}

fn epoch(text: &str) -> Option<OffsetDateTime> {
    // Decimal arithmetic, not floats: 1709288430.123 must stay .123000, not .122999.
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 15 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let mut ninths: String = fraction.chars().take(9).collect();
    while ninths.len() < 9 {
        ninths.push('0');
    }
    let whole: i128 = whole.parse().ok()?;
    let scaled = whole * 1_000_000_000 + ninths.parse::<i128>().ok()?; // in 10^-9 of the unit
    let nanos = if whole >= 100_000_000_000 { scaled / 1_000 } else { scaled };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// The API's timestamp format (`shared::item::Timestamp`): fixed width, UTC, microseconds, so
/// string order is time order in the list indexes.
pub fn format_time(time: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time.to_offset(UtcOffset::UTC).format(format).expect("a UTC time in years 1970-9999 formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaper() -> Shaper {
        let fallback =
            Kind::ALL.iter().map(|k| (*k, OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000))).collect();
        Shaper {
            owners: Owners { attribute: Some("owner".into()), mapping: Default::default(), default: None },
            fallback,
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn timestamps_match_the_api_format_and_parse_every_legacy_form() {
        let now = shared::item::Timestamp::now().into_string();
        let ours = format_time(OffsetDateTime::now_utc());
        assert_eq!(ours.len(), now.len());
        let shape = |t: &str| t.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect::<String>();
        assert_eq!(shape(&ours), shape(&now), "same separators at the same places as Timestamp::now");
        let expect = "2024-03-01T10:20:30.123000Z";
        for legacy in [
            AttributeValue::S("2024-03-01T10:20:30.123Z".into()),
            AttributeValue::S("2024-03-01T11:20:30.123+01:00".into()),
            AttributeValue::N("1709288430.123".into()),
            AttributeValue::N("1709288430123".into()),
            AttributeValue::S("1709288430123".into()),
        ] {
            assert_eq!(format_time(timestamp("created_at", &legacy).unwrap()), expect, "{legacy:?}");
        }
        assert!(timestamp("created_at", &AttributeValue::S("yesterday".into())).is_err());
        assert!(timestamp("created_at", &AttributeValue::Bool(true)).is_err());
    }

    #[test]
    fn ids_are_kept_when_they_are_uuids_and_derived_the_same_way_otherwise() {
        let t = OffsetDateTime::now_utc();
        let v4 = "9F1C2E5A-0B7D-4C1E-9A3B-2D4E6F8A0B1C";
        assert_eq!(target_id(Kind::Canvases, v4), v4.to_lowercase());
        let derived = target_id(Kind::Canvases, "canvas-17");
        assert_eq!(derived, target_id(Kind::Canvases, "canvas-17"));
        assert_ne!(derived, target_id(Kind::Sessions, "canvas-17"), "kinds do not collide");
        assert!(parse_id(&derived, "canvas").is_ok(), "the API's routes accept derived ids");

        let v7 = shared::item::new_id();
        assert_eq!(message_id(&v7, t), v7, "time-ordered ids are kept");
        let early = message_id(v4, t);
        let late = message_id("m-0", t + time::Duration::microseconds(1));
        assert_eq!(Uuid::try_parse(&early).unwrap().get_version_num(), 7);
        assert!(early < late, "derived message ids follow created_at to the microsecond");
        assert_eq!(message_id(v4, t), early, "and are the same on every run");
    }

    #[test]
    fn shapes_every_kind_into_what_the_api_reads() {
        let sh = shaper();
        let owner = AttributeValue::S("alice".into());
        let canvas = item(&[
            ("id", AttributeValue::S("c-1".into())),
            ("owner", owner.clone()),
            ("name", AttributeValue::S("Plan".into())),
            ("data", AttributeValue::M([("n".to_owned(), AttributeValue::N("1".into()))].into())),
            ("colour", AttributeValue::S("red".into())),
        ]);
        let shaped = sh.shape(Kind::Canvases, &canvas, None).unwrap();
        assert_eq!(shaped.owner, "alice");
        assert_eq!(shaped.item["data"], AttributeValue::S(r#"{"n":1}"#.into()));
        assert_eq!(shaped.item[LEGACY_ID], AttributeValue::S("c-1".into()));
        assert_eq!(shaped.item[CREATED_AT], shaped.item[UPDATED_AT]);
        assert_eq!(sh.left_behind(Kind::Canvases, &canvas), vec!["colour"]);

        let session = item(&[("id", AttributeValue::S("s-1".into())), ("owner", owner.clone())]);
        let session = sh.shape(Kind::Sessions, &session, None);
        let message = item(&[
            ("id", AttributeValue::S("m-1".into())),
            ("session_id", AttributeValue::S("s-1".into())),
            ("role", AttributeValue::S("Assistant".into())),
            ("content", AttributeValue::S("hi".into())),
            ("owner", AttributeValue::S("someone else".into())),
        ]);
        let m = sh.shape(Kind::Messages, &message, Some(&session)).unwrap();
        let session = session.unwrap();
        assert_eq!(m.owner, "alice", "a message follows its session's owner");
        assert_eq!(m.item[SESSION_ORDER], AttributeValue::S(format!("{}#{}", session.id, m.id)));
        assert_eq!(m.item["role"], AttributeValue::S("assistant".into()));

        let broken = Err(Problem::new(Category::NoOwner, "nobody"));
        assert_eq!(
            sh.shape(Kind::Messages, &message, Some(&broken)).unwrap_err().category,
            Category::SessionUnavailable
        );
    }

    #[test]
    fn refuses_what_the_api_could_not_serve() {
        let sh = shaper();
        let base = |extra: &[(&str, AttributeValue)]| {
            let mut i = item(&[("id", AttributeValue::S("x".into())), ("owner", AttributeValue::S("alice".into()))]);
            i.extend(item(extra));
            i
        };
        let cat = |kind, i: &Item| sh.shape(kind, i, None).unwrap_err().category;
        let name = ("name", AttributeValue::S("n".into()));
        assert_eq!(
            cat(Kind::Canvases, &base(&[name.clone(), ("data", AttributeValue::S("{oops".into()))])),
            Category::Malformed
        );
        assert_eq!(
            cat(Kind::Canvases, &base(&[name.clone(), ("data", AttributeValue::S("[1]".into()))])),
            Category::Malformed
        );
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(canvases::DATA_MAX_BYTES));
        assert_eq!(cat(Kind::Canvases, &base(&[name.clone(), ("data", AttributeValue::S(huge))])), Category::TooLarge);
        assert_eq!(
            cat(Kind::Workflows, &base(std::slice::from_ref(&name))),
            Category::Malformed,
            "a workflow needs its graph"
        );
        assert_eq!(
            cat(Kind::Files, &base(&[name.clone(), ("size", AttributeValue::S("12".into()))])),
            Category::Malformed
        );
        let orphan = item(&[("id", AttributeValue::S("y".into())), ("name", AttributeValue::S("n".into()))]);
        assert_eq!(cat(Kind::Canvases, &orphan), Category::NoOwner);
    }
}
