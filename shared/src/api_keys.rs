//! API keys: programs call the API as a key's creator, within the key's scope.
//!
//! A key is `ak_<key id>.<base64url(user id)>.<secret>`. The `ak_` prefix tells it from a JWT
//! (which starts with `eyJ`); the user id inside lets verification read the key's item by its
//! full primary key (`user_id`, `id`: one strongly consistent GetItem, no index lag). Only the
//! SHA-256 of the secret is stored: the secret is 256 random bits, so nobody can guess it from
//! its digest and a slow password hash would buy nothing.
//!
//! Verified keys are cached per Lambda instance for `REVOCATION_CACHE_SECONDS` (as users'
//! standing is, [`crate::credentials`]): a revoked (deleted) key is refused by every instance
//! within that bound. Expiry is checked on every use (DynamoDB's TTL deletes expired keys only
//! eventually). `last_used_at` is written at most once per [`LAST_USED_EVERY`] per key, by a
//! conditional UpdateItem, never on every request.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_lc_rs::{constant_time, digest, rand::SecureRandom};
use aws_sdk_dynamodb::{
    types::{AttributeValue, Put, TransactWriteItem},
    Client,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};

use crate::{
    access::Role,
    auth::{Identity, KeyScope},
    config::{ConfigError, Env},
    cursor::{CursorCodec, CursorKey, Page, PageRequest},
    error::ApiError,
    item::{self, Timestamp},
    store::{account_guard, attr, cancellation_reasons, dynamo_error, ConditionFailure, Item},
    teams::Teams,
};

/// What every key starts with.
pub const KEY_PREFIX: &str = "ak_";
/// The environment variable naming the keys table.
pub const API_KEYS_TABLE: &str = "API_KEYS_TABLE";
/// How often a key's `last_used_at` is written at most.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(15 * 60);
/// The longest a key can live.
pub const MAX_EXPIRY_DAYS: u32 = 365;
const SECRET_BYTES: usize = 32;
/// base64url without padding of [`SECRET_BYTES`].
const SECRET_CHARS: usize = 43;
const MAX_USER_ID_LEN: usize = 256;
/// Keys one instance keeps verified; past it the cache starts over.
const CACHE_KEYS: usize = 10_000;
const LIST_SCOPE: &str = "api-keys";

const NAME: &str = "name";
const PREFIX: &str = "prefix";
const SECRET_HASH: &str = "secret_hash";
const SCOPE: &str = "scope";
const PROJECT_ID: &str = "project_id";
const ROLE: &str = "role";
const EXPIRES_AT: &str = "expires_at";
const LAST_USED_AT: &str = "last_used_at";

/// Whether a bearer credential is an API key (rather than a JWT).
pub fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(KEY_PREFIX)
}

/// A key as presented, split into its parts.
#[derive(Debug, PartialEq, Eq)]
struct Presented<'a> {
    key_id: String,
    user_id: String,
    secret: &'a str,
}

fn parse(key: &str) -> Option<Presented<'_>> {
    let mut parts = key.strip_prefix(KEY_PREFIX)?.split('.');
    let (id, user, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // Only the canonical spelling of the id, so one key has one string.
    let key_id = item::parse_id(id, "API key").ok().filter(|canonical| canonical == id)?;
    let user_id = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
    let user_ok = !user_id.is_empty() && user_id.len() <= MAX_USER_ID_LEN && !user_id.chars().any(char::is_control);
    let secret_ok =
        secret.len() == SECRET_CHARS && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (user_ok && secret_ok).then_some(Presented { key_id, user_id, secret })
}

/// The hex SHA-256 of a secret: what is stored and compared.
fn secret_hash(secret: &str) -> String {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn scope_of(item: &Item) -> Option<KeyScope> {
    match text(item, SCOPE)? {
        "personal" => Some(KeyScope::Personal),
        "project" => Some(KeyScope::Project {
            project_id: text(item, PROJECT_ID)?.to_owned(),
            role: Role::parse(text(item, ROLE)?)?,
        }),
        _ => None,
    }
}

/// A key as the API lists it: never its secret nor its digest.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `ak_<id>`: how the key is recognized in a list (the key starts with it).
    pub prefix: String,
    pub scope: KeyScope,
    pub created_at: String,
    /// Seconds since the epoch after which the key is refused; none: it never expires.
    pub expires_at: Option<u64>,
    /// When the key was last used, to within [`LAST_USED_EVERY`].
    pub last_used_at: Option<String>,
}

impl ApiKey {
    fn of(item: &Item) -> Result<Self, ApiError> {
        let field =
            |name: &str| text(item, name).map(str::to_owned).ok_or_else(|| internal(format!("key without {name}")));
        Ok(Self {
            id: field(attr::ID)?,
            name: field(NAME)?,
            prefix: field(PREFIX)?,
            scope: scope_of(item).ok_or_else(|| internal("key without a valid scope"))?,
            created_at: field(attr::CREATED_AT)?,
            expires_at: number(item, EXPIRES_AT),
            last_used_at: text(item, LAST_USED_AT).map(str::to_owned),
        })
    }
}

/// A new key: its listing and, this once, the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub listing: ApiKey,
    /// The key, to send as `Authorization: Bearer <key>`. Shown only in this answer: only its
    /// digest is stored.
    pub key: String,
}

/// What a new key may do.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestedScope {
    Personal,
    /// `role`: `admin`, `member` or `viewer`, at most the creator's own role in the project.
    Project {
        project_id: String,
        role: Role,
    },
}

/// A stored key as verification needs it.
#[derive(Clone, Debug)]
struct StoredKey {
    secret_hash: String,
    scope: KeyScope,
    created_at: u64,
    expires_at: Option<u64>,
    last_used_at: Option<String>,
}

impl StoredKey {
    fn of(item: &Item) -> Option<Self> {
        Some(Self {
            secret_hash: text(item, SECRET_HASH)?.to_owned(),
            scope: scope_of(item)?,
            created_at: Timestamp::epoch_seconds(text(item, attr::CREATED_AT)?)?,
            expires_at: number(item, EXPIRES_AT),
            last_used_at: text(item, LAST_USED_AT).map(str::to_owned),
        })
    }

    /// Whether the last recorded use is older than [`LAST_USED_EVERY`] (or there is none).
    fn use_is_stale(&self, threshold: &str) -> bool {
        self.last_used_at.as_deref().is_none_or(|at| at < threshold)
    }
}

/// The keys table, the verified-key cache and the profile table creates are guarded by.
/// Built once per cold start when the function has `API_KEYS_TABLE`.
pub struct ApiKeys {
    client: Client,
    table: String,
    profiles: Option<String>,
    cursors: CursorCodec,
    cache_for: Duration,
    cache: Mutex<HashMap<(String, String), (Instant, StoredKey)>>,
}

impl ApiKeys {
    pub fn from_env(client: Client, env: &Env, cursors: CursorCodec) -> Result<Option<Self>, ConfigError> {
        let Some(table) = env.optional(API_KEYS_TABLE) else { return Ok(None) };
        let cache_for = crate::credentials::revocation_bound(env)?;
        Ok(Some(Self::new(client, table, env.optional(crate::owned::PROFILE_TABLE.env), cursors, cache_for)))
    }

    pub fn new(
        client: Client,
        table: String,
        profiles: Option<String>,
        cursors: CursorCodec,
        cache_for: Duration,
    ) -> Self {
        Self { client, table, profiles, cursors, cache_for, cache: Mutex::new(HashMap::new()) }
    }

    /// The same table through another DynamoDB client (an empty cache).
    pub fn with_client(&self, client: Client) -> Self {
        Self::new(client, self.table.clone(), self.profiles.clone(), self.cursors.clone(), self.cache_for)
    }

    /// The identity an API key proves: its creator, acting within its scope. Unknown, revoked,
    /// tampered and expired keys are 401 (the reason is logged, never sent). The creator's
    /// standing (disabled, deleted) is checked afterwards by [`crate::credentials::Credentials`].
    pub async fn verify(&self, key: &str) -> Result<Identity, ApiError> {
        let refused = |why: &str| ApiError::Unauthorized(format!("API key refused: {why}"));
        let presented = parse(key).ok_or_else(|| refused("malformed"))?;
        let stored = self.stored(&presented).await?.ok_or_else(|| refused("unknown or revoked"))?;
        constant_time::verify_slices_are_equal(secret_hash(presented.secret).as_bytes(), stored.secret_hash.as_bytes())
            .map_err(|_| refused("wrong secret"))?;
        if stored.expires_at.is_some_and(|at| at <= now()) {
            return Err(refused("expired"));
        }
        self.record_use(&presented, &stored).await;
        Ok(Identity::from_api_key(&presented.user_id, stored.created_at, presented.key_id, stored.scope))
    }

    /// The stored key, from this instance's cache while it is fresh enough.
    async fn stored(&self, presented: &Presented<'_>) -> Result<Option<StoredKey>, ApiError> {
        let cache_key = (presented.user_id.clone(), presented.key_id.clone());
        if let Some((read_at, stored)) = self.cache.lock().expect("key cache lock").get(&cache_key) {
            if read_at.elapsed() < self.cache_for {
                return Ok(Some(stored.clone()));
            }
        }
        let read_at = Instant::now();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&presented.user_id, &presented.key_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        let Some(stored) = out.item.as_ref().and_then(StoredKey::of) else {
            self.cache.lock().expect("key cache lock").remove(&cache_key);
            return Ok(None);
        };
        if !self.cache_for.is_zero() {
            let mut cache = self.cache.lock().expect("key cache lock");
            if cache.len() >= CACHE_KEYS {
                cache.clear();
            }
            cache.insert(cache_key, (read_at, stored.clone()));
        }
        Ok(Some(stored))
    }

    /// Writes `last_used_at` when the recorded use is older than [`LAST_USED_EVERY`]: at most
    /// one write per key per interval across instances (the condition), none on most requests.
    /// Best effort: a failure is logged, the request goes on.
    async fn record_use(&self, presented: &Presented<'_>, stored: &StoredKey) {
        let threshold = Timestamp::from_epoch_seconds(now().saturating_sub(LAST_USED_EVERY.as_secs()));
        if !stored.use_is_stale(threshold.as_str()) {
            return;
        }
        let used_at = Timestamp::now().into_string();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&presented.user_id, &presented.key_id)))
            .update_expression("SET #used = :now")
            // attribute_exists: never re-create a key revoked meanwhile.
            .condition_expression("attribute_exists(#id) AND (attribute_not_exists(#used) OR #used < :threshold)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#used", LAST_USED_AT)
            .expression_attribute_values(":now", s(used_at.clone()))
            .expression_attribute_values(":threshold", s(threshold.into_string()))
            .send()
            .await;
        match result {
            Ok(_) => {}
            // Another instance recorded a use within the interval (or the key is gone).
            Err(e) if e.as_service_error().and_then(ConditionFailure::condition_failure).is_some() => {}
            Err(e) => tracing::warn!(error = %dynamo_error(e), key_id = presented.key_id, "last_used_at not recorded"),
        }
        // Either way this instance need not try again for this key before its entry expires.
        let cache_key = (presented.user_id.clone(), presented.key_id.clone());
        if let Some((_, cached)) = self.cache.lock().expect("key cache lock").get_mut(&cache_key) {
            cached.last_used_at = Some(used_at);
        }
    }

    /// Creates a key for the signed-in caller. A project key needs the caller to be a member
    /// of that project (else 404, as for any project they cannot see) with a role at least
    /// the key's (else 403): a key never reaches further than its creator.
    pub async fn create(
        &self,
        teams: &Teams,
        who: &Identity,
        name: String,
        scope: RequestedScope,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedApiKey, ApiError> {
        who.require_signed_in("create API keys")?;
        item::check_text("name", &name, 1, 100)?;
        if expires_in_days.is_some_and(|d| !(1..=MAX_EXPIRY_DAYS).contains(&d)) {
            return Err(ApiError::bad_request(format!("expires_in_days must be from 1 to {MAX_EXPIRY_DAYS}")));
        }
        let scope = match scope {
            RequestedScope::Personal => KeyScope::Personal,
            RequestedScope::Project { project_id, role } => {
                if role == Role::Owner {
                    return Err(ApiError::bad_request("a key's role is admin, member or viewer"));
                }
                let access = teams.project_access(who, &project_id).await?;
                if role > access.role() {
                    return Err(ApiError::Forbidden(format!(
                        "a key cannot have a higher role ({}) than yours in the project ({})",
                        role.as_str(),
                        access.role().as_str()
                    )));
                }
                KeyScope::Project { project_id: access.project_id().to_owned(), role }
            }
        };
        let id = item::new_id();
        let mut secret = [0u8; SECRET_BYTES];
        aws_lc_rs::rand::SystemRandom::new().fill(&mut secret).map_err(|_| internal("no randomness"))?;
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let prefix = format!("{KEY_PREFIX}{id}");
        let key = format!("{prefix}.{}.{secret}", URL_SAFE_NO_PAD.encode(who.user_id()));
        let created_at = Timestamp::now().into_string();
        let expires_at = expires_in_days.map(|d| now() + u64::from(d) * 86_400);

        let mut stored = key_of(who.user_id(), &id);
        stored.insert(NAME.into(), s(name.clone()));
        stored.insert(PREFIX.into(), s(prefix.clone()));
        stored.insert(SECRET_HASH.into(), s(secret_hash(&secret)));
        stored.insert(attr::CREATED_AT.into(), s(created_at.clone()));
        match &scope {
            KeyScope::Personal => {
                stored.insert(SCOPE.into(), s("personal"));
            }
            KeyScope::Project { project_id, role } => {
                stored.insert(SCOPE.into(), s("project"));
                stored.insert(PROJECT_ID.into(), s(project_id.clone()));
                stored.insert(ROLE.into(), s(role.as_str()));
            }
        }
        if let Some(at) = expires_at {
            stored.insert(EXPIRES_AT.into(), AttributeValue::N(at.to_string()));
        }
        self.put_guarded(who, stored).await?;
        let listing = ApiKey { id, name, prefix, scope, created_at, expires_at, last_used_at: None };
        Ok(CreatedApiKey { listing, key })
    }

    /// Writes a new key in one transaction with the account guard, so no key is created behind
    /// the sweep of `DELETE /me` (as every other create).
    async fn put_guarded(&self, who: &Identity, stored: Item) -> Result<(), ApiError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(stored))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(internal)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if let Some(profiles) = &self.profiles {
            items.push(account_guard(profiles, who)?);
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if cancellation_reasons(&e).failed(1) => Err(ApiError::AccountDeleted),
            Err(e) => Err(dynamo_error(e)),
        }
    }

    /// A page of the caller's keys, newest first.
    pub async fn list(&self, who: &Identity, page: &PageRequest) -> Result<Page<ApiKey>, ApiError> {
        who.require_signed_in("list API keys")?;
        let start = match &page.cursor {
            None => None,
            Some(cursor) => {
                let key = self.cursors.decode(LIST_SCOPE, who, cursor)?;
                let id = key
                    .get(attr::ID)
                    .filter(|_| key.len() == 1)
                    .ok_or_else(|| ApiError::bad_request("cursor is invalid"))?;
                Some(key_of(who.user_id(), id))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#uid = :uid")
            .expression_attribute_names("#uid", attr::USER_ID)
            .expression_attribute_values(":uid", s(who.user_id()))
            .scan_index_forward(false)
            .limit(page.limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let items = out.items.unwrap_or_default().iter().map(ApiKey::of).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match (out.last_evaluated_key, items.last()) {
            (Some(_), Some(last)) => {
                Some(self.cursors.encode(LIST_SCOPE, who, &CursorKey::from([(attr::ID.to_owned(), last.id.clone())])))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Revokes one of the caller's keys: refused by every instance within the revocation
    /// bound. Another user's key id (or none) is a 404.
    pub async fn revoke(&self, who: &Identity, id: &str) -> Result<(), ApiError> {
        who.require_signed_in("revoke API keys")?;
        let id = item::parse_id(id, "API key")?;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(who.user_id(), &id)))
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .send()
            .await;
        self.cache.lock().expect("key cache lock").remove(&(who.user_id().to_owned(), id));
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(ConditionFailure::condition_failure).is_some() => {
                Err(ApiError::NotFound("API key"))
            }
            Err(e) => Err(dynamo_error(e)),
        }
    }
}

fn key_of(user_id: &str, id: &str) -> Item {
    Item::from([(attr::USER_ID.to_owned(), s(user_id)), (attr::ID.to_owned(), s(id))])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";

    fn key(id: &str, user: &str, secret: &str) -> String {
        format!("{KEY_PREFIX}{id}.{}.{secret}", URL_SAFE_NO_PAD.encode(user))
    }

    fn secret() -> String {
        URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES])
    }

    #[test]
    fn a_key_names_its_id_user_and_secret() {
        let secret = secret();
        let presented = key(ID, "alice@example.com", &secret);
        assert!(is_api_key(&presented));
        assert_eq!(
            parse(&presented),
            Some(Presented { key_id: ID.into(), user_id: "alice@example.com".into(), secret: &secret })
        );
    }

    #[test]
    fn malformed_keys_are_not_parsed() {
        let secret = secret();
        for bad in [
            format!("ak_{ID}.{secret}"),
            key("not-a-uuid", "alice", &secret),
            key(&ID.to_uppercase(), "alice", &secret),
            key(ID, "", &secret),
            key(ID, "al\nice", &secret),
            key(ID, "alice", &secret[1..]),
            key(ID, "alice", &format!("{}!", &secret[1..])),
            format!("{}.extra", key(ID, "alice", &secret)),
            format!("ak_{ID}.%%%.{secret}"),
            "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_digest_is_stored_and_it_tells_secrets_apart() {
        let secret = secret();
        let hash = secret_hash(&secret);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&secret));
        assert_ne!(hash, secret_hash(&URL_SAFE_NO_PAD.encode([8u8; SECRET_BYTES])));
    }

    #[test]
    fn a_use_is_recorded_only_when_the_last_is_older_than_the_interval() {
        let stored = |last: Option<&str>| StoredKey {
            secret_hash: String::new(),
            scope: KeyScope::Personal,
            created_at: 0,
            expires_at: None,
            last_used_at: last.map(str::to_owned),
        };
        let threshold = Timestamp::from_epoch_seconds(1_000);
        assert!(stored(None).use_is_stale(threshold.as_str()));
        assert!(stored(Some(Timestamp::from_epoch_seconds(999).as_str())).use_is_stale(threshold.as_str()));
        assert!(!stored(Some(Timestamp::from_epoch_seconds(1_000).as_str())).use_is_stale(threshold.as_str()));
    }
}
