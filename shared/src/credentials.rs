//! Revocation that takes effect before a token expires.
//!
//! A verified signature says who issued a token, not whether its holder may still use it. The
//! caller's profile item (`USERS_TABLE`, keyed by user id) carries their *standing*:
//! - `tokens_valid_after`: signing out everywhere refuses every token issued at or before it;
//! - `deleted_at`: the account's deletion does the same (and, for API keys, refuses those
//!   created before it);
//! - `disabled_at`: an operator disabled the account: everything is refused until re-enabled;
//! - `ended_sessions`: signing out of one device ends that sign-in (`origin_jti`/`jti`) and its
//!   refresh token, each entry kept until what it names has expired.
//!
//! [`Credentials::check`] reads the standing with one strongly consistent GetItem per user and
//! caches it per Lambda instance for `REVOCATION_CACHE_SECONDS` (default 5): a revoked token is
//! refused by every instance within that bound, and a busy instance reads each user's standing
//! at most once per bound. Seconds are whole: a token issued in the same second as a sign-out
//! counts as issued before it.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{types::AttributeValue, Client};

use crate::{
    auth::{Credential, Identity},
    config::{ConfigError, Env},
    error::ApiError,
    store::{attr, dynamo_error, Item},
};

/// Profile attributes of the standing (seconds since the epoch, and a string set).
const TOKENS_VALID_AFTER: &str = "tokens_valid_after";
const DISABLED_AT: &str = "disabled_at";
const ENDED_SESSIONS: &str = "ended_sessions";

/// The default and the largest revocation bound.
const DEFAULT_CACHE: Duration = Duration::from_secs(5);
const MAX_CACHE: Duration = Duration::from_secs(60);
/// Users whose standing one instance keeps; past it the cache starts over.
const CACHE_USERS: usize = 10_000;
/// Ended sessions kept on a profile; one more signs the user out everywhere instead, so the
/// item (read on every request) stays small.
const MAX_ENDED_SESSIONS: usize = 50;
/// How long an ended refresh token is remembered when its lifetime is not configured
/// (Cognito's default refresh token validity).
const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a credential is refused although its signature is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    Disabled,
    Deleted,
    SignedOutEverywhere,
    SignedOut,
}

impl Revoked {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Disabled => "the account is disabled",
            Self::Deleted => "the token was issued before the account was deleted",
            Self::SignedOutEverywhere => "the token was issued before its user signed out everywhere",
            Self::SignedOut => "the token's sign-in was ended (signed out)",
        }
    }
}

/// A user's standing, as read from their profile item (absent: nothing revoked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    tokens_valid_after: Option<u64>,
    deleted_at: Option<u64>,
    disabled_at: Option<u64>,
    /// Ended sessions and refresh tokens, each until it expires (`<expiry>:<id>` entries).
    ended_sessions: HashMap<String, u64>,
}

impl Standing {
    fn of(profile: Option<&Item>) -> Self {
        let number = |name: &str| match profile?.get(name) {
            Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
            _ => None,
        };
        let ended_sessions = match profile.and_then(|p| p.get(ENDED_SESSIONS)) {
            Some(AttributeValue::Ss(entries)) => entries.iter().filter_map(|e| parse_entry(e)).collect(),
            _ => HashMap::new(),
        };
        Self {
            tokens_valid_after: number(TOKENS_VALID_AFTER),
            deleted_at: number(attr::DELETED_AT),
            disabled_at: number(DISABLED_AT),
            ended_sessions,
        }
    }

    /// Whether a token with this `iat` and session may be used at `now`.
    pub fn refuses_token(&self, issued_at: u64, session: Option<&str>, now: u64) -> Option<Revoked> {
        if self.disabled_at.is_some() {
            return Some(Revoked::Disabled);
        }
        if self.deleted_at.is_some_and(|d| issued_at <= d) {
            return Some(Revoked::Deleted);
        }
        if self.tokens_valid_after.is_some_and(|v| issued_at <= v) {
            return Some(Revoked::SignedOutEverywhere);
        }
        if session.is_some_and(|s| self.ended(s, now)) {
            return Some(Revoked::SignedOut);
        }
        None
    }

    /// Whether a credential created at `created_at` that outlives sign-outs (an API key) may
    /// be used: only disabling or deleting the account ends it.
    pub fn refuses_key(&self, created_at: u64) -> Option<Revoked> {
        if self.disabled_at.is_some() {
            return Some(Revoked::Disabled);
        }
        self.deleted_at.is_some_and(|d| created_at <= d).then_some(Revoked::Deleted)
    }

    fn ended(&self, id: &str, now: u64) -> bool {
        self.ended_sessions.get(id).is_some_and(|expiry| *expiry >= now)
    }
}

/// `<expiry>:<id>` of an ended session.
fn parse_entry(entry: &str) -> Option<(String, u64)> {
    let (expiry, id) = entry.split_once(':')?;
    Some((id.to_owned(), expiry.parse().ok()?))
}

fn entry(id: &str, expiry: u64) -> String {
    format!("{expiry}:{id}")
}

/// A refresh token as remembered once ended: a digest, never the token.
fn refresh_token_id(refresh_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, refresh_token.as_bytes());
    let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("refresh-{hex}")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `REVOCATION_CACHE_SECONDS`: how long an instance may act on a cached standing or verified
/// API key, i.e. how long a revocation may take to reach every instance.
pub(crate) fn revocation_bound(env: &Env) -> Result<Duration, ConfigError> {
    let bound = Duration::from_secs(env.parse_or("REVOCATION_CACHE_SECONDS", DEFAULT_CACHE.as_secs())?);
    if bound > MAX_CACHE {
        return Err(ConfigError::invalid("REVOCATION_CACHE_SECONDS", format!("at most {}", MAX_CACHE.as_secs())));
    }
    Ok(bound)
}

/// Reads and changes users' standing. Built once per cold start when the function has
/// `USERS_TABLE`; every request's identity is checked by it ([`crate::http`]).
pub struct Credentials {
    client: Client,
    profiles: String,
    cache_for: Duration,
    refresh_lifetime: Duration,
    cache: Mutex<HashMap<String, (Instant, Standing)>>,
}

impl Credentials {
    pub fn from_env(client: Client, env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(profiles) = env.optional(crate::owned::PROFILE_TABLE.env) else { return Ok(None) };
        let cache_for = revocation_bound(env)?;
        let refresh_days = env.parse_or("REFRESH_TOKEN_VALIDITY_DAYS", DEFAULT_REFRESH_LIFETIME.as_secs() / 86_400)?;
        Ok(Some(Self::new(client, profiles, cache_for, Duration::from_secs(refresh_days * 86_400))))
    }

    pub fn new(client: Client, profiles: String, cache_for: Duration, refresh_lifetime: Duration) -> Self {
        Self { client, profiles, cache_for, refresh_lifetime, cache: Mutex::new(HashMap::new()) }
    }

    /// The same table through another DynamoDB client (an empty cache).
    pub fn with_client(&self, client: Client) -> Self {
        Self::new(client, self.profiles.clone(), self.cache_for, self.refresh_lifetime)
    }

    /// The revocation bound: how long a change of standing may take to reach every instance.
    pub fn bound(&self) -> Duration {
        self.cache_for
    }

    /// Refuses a verified token whose user signed out, was disabled or deleted their account,
    /// and an API key whose creator was disabled or deleted their account since its creation
    /// (signing out does not end keys: they are revoked one by one).
    pub async fn check(&self, who: &Identity) -> Result<(), ApiError> {
        let standing = self.standing(who.user_id()).await?;
        let refused = match who.credential() {
            Credential::Token => standing.refuses_token(who.issued_at(), who.session(), now()),
            Credential::ApiKey { .. } => standing.refuses_key(who.issued_at()),
        };
        match refused {
            // The answer a deleted account's tokens have always had.
            Some(Revoked::Deleted) => Err(ApiError::AccountDeleted),
            Some(revoked) => Err(ApiError::Revoked(revoked.reason())),
            None => Ok(()),
        }
    }

    /// The user's standing, from this instance's cache when it is fresh enough.
    pub async fn standing(&self, user_id: &str) -> Result<Standing, ApiError> {
        if let Some((read_at, standing)) = self.cache.lock().expect("standing cache lock").get(user_id) {
            if read_at.elapsed() < self.cache_for {
                return Ok(standing.clone());
            }
        }
        let read_at = Instant::now();
        let standing = self.read(user_id).await?;
        if !self.cache_for.is_zero() {
            let mut cache = self.cache.lock().expect("standing cache lock");
            if cache.len() >= CACHE_USERS {
                cache.clear();
            }
            cache.insert(user_id.to_owned(), (read_at, standing.clone()));
        }
        Ok(standing)
    }

    async fn read(&self, user_id: &str) -> Result<Standing, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.profiles)
            .set_key(Some(profile_key(user_id)))
            .consistent_read(true)
            .projection_expression("#valid, #deleted, #disabled, #ended")
            .expression_attribute_names("#valid", TOKENS_VALID_AFTER)
            .expression_attribute_names("#deleted", attr::DELETED_AT)
            .expression_attribute_names("#disabled", DISABLED_AT)
            .expression_attribute_names("#ended", ENDED_SESSIONS)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(Standing::of(out.item.as_ref()))
    }

    fn forget(&self, user_id: &str) {
        self.cache.lock().expect("standing cache lock").remove(user_id);
    }

    /// Signs the user out everywhere: every token issued until now is refused.
    pub async fn end_all_sessions(&self, who: &Identity) -> Result<(), ApiError> {
        self.set_valid_after(who.user_id(), now()).await
    }

    /// An operator signs a user out everywhere (a stolen device, a compromised password).
    pub async fn sign_out_user(&self, user_id: &str) -> Result<(), ApiError> {
        self.set_valid_after(user_id, now()).await
    }

    async fn set_valid_after(&self, user_id: &str, at: u64) -> Result<(), ApiError> {
        // Only ever forward: a late or repeated call cannot re-admit tokens.
        let result = self
            .client
            .update_item()
            .table_name(&self.profiles)
            .set_key(Some(profile_key(user_id)))
            .update_expression("SET #valid = :at")
            .condition_expression("attribute_not_exists(#valid) OR #valid < :at")
            .expression_attribute_names("#valid", TOKENS_VALID_AFTER)
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .send()
            .await;
        self.forget(user_id);
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error(e)),
        }
    }

    /// Signs this device out: the caller's sign-in (the token's session) and, when given, its
    /// refresh token are refused from now on. Past [`MAX_ENDED_SESSIONS`] ended sessions the
    /// user is signed out everywhere instead.
    pub async fn end_session(&self, who: &Identity, refresh_token: Option<&str>) -> Result<(), ApiError> {
        let now = now();
        let session_expiry = who.expires_at().max(now) + self.refresh_lifetime.as_secs();
        let mut ended: Vec<String> = who.session().map(|s| entry(s, session_expiry)).into_iter().collect();
        if let Some(token) = refresh_token {
            ended.push(entry(&refresh_token_id(token), now + self.refresh_lifetime.as_secs()));
        }
        if ended.is_empty() {
            // A token that names no session can only be ended with all the others.
            return self.end_all_sessions(who).await;
        }
        let current = self.read(who.user_id()).await?;
        if current.ended_sessions.len() + ended.len() > MAX_ENDED_SESSIONS {
            self.set_valid_after(who.user_id(), now).await?;
            return self.prune(who.user_id(), &current, now, true).await;
        }
        self.client
            .update_item()
            .table_name(&self.profiles)
            .set_key(Some(profile_key(who.user_id())))
            .update_expression("ADD #ended :ended")
            .expression_attribute_names("#ended", ENDED_SESSIONS)
            .expression_attribute_values(":ended", AttributeValue::Ss(ended))
            .send()
            .await
            .map_err(dynamo_error)?;
        self.forget(who.user_id());
        self.prune(who.user_id(), &current, now, false).await
    }

    /// Removes the entries that have expired (all of them with `all`); losing a race with
    /// another removal is harmless, since each entry is removed by value.
    async fn prune(&self, user_id: &str, standing: &Standing, now: u64, all: bool) -> Result<(), ApiError> {
        let stale: Vec<String> = standing
            .ended_sessions
            .iter()
            .filter(|(_, expiry)| all || **expiry < now)
            .map(|(id, expiry)| entry(id, *expiry))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.profiles)
            .set_key(Some(profile_key(user_id)))
            .update_expression("DELETE #ended :stale")
            .expression_attribute_names("#ended", ENDED_SESSIONS)
            .expression_attribute_values(":stale", AttributeValue::Ss(stale))
            .send()
            .await
            .map_err(dynamo_error)?;
        self.forget(user_id);
        Ok(())
    }

    /// Whether a refresh token may still mint tokens for `who` (the identity of the access
    /// token it just returned): refused once its device signed out, or the user was disabled.
    pub async fn refresh_allowed(&self, who: &Identity, refresh_token: &str) -> Result<bool, ApiError> {
        let standing = self.read(who.user_id()).await?;
        let now = now();
        Ok(standing.disabled_at.is_none() && !standing.ended(&refresh_token_id(refresh_token), now))
    }

    /// An operator disables (`true`) or re-enables a user. While disabled, every credential of
    /// theirs is refused, whenever it was issued.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), ApiError> {
        let update = self.client.update_item().table_name(&self.profiles).set_key(Some(profile_key(user_id)));
        let update = if disabled {
            update
                .update_expression("SET #disabled = if_not_exists(#disabled, :now)")
                .expression_attribute_values(":now", AttributeValue::N(now().to_string()))
        } else {
            update.update_expression("REMOVE #disabled")
        };
        update.expression_attribute_names("#disabled", DISABLED_AT).send().await.map_err(dynamo_error)?;
        self.forget(user_id);
        Ok(())
    }
}

fn profile_key(user_id: &str) -> Item {
    Item::from([(attr::USER_ID.to_owned(), AttributeValue::S(user_id.to_owned()))])
}

fn is_condition_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> bool {
    e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception())
}

/// Entries of ended sessions that are still in force (for tests of the pruning).
#[cfg(test)]
fn live(standing: &Standing, now: u64) -> std::collections::HashSet<&str> {
    standing.ended_sessions.iter().filter(|(_, e)| **e >= now).map(|(id, _)| id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(entries: &[(&str, AttributeValue)]) -> Item {
        entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    #[test]
    fn nothing_is_refused_without_a_profile_or_standing() {
        let standing = Standing::of(None);
        assert_eq!(standing.refuses_token(0, Some("s"), 100), None);
        assert_eq!(standing.refuses_key(0), None);
        let bare = Standing::of(Some(&profile(&[("name", AttributeValue::S("x".into()))])));
        assert_eq!(bare, Standing::default());
    }

    #[test]
    fn signing_out_everywhere_refuses_tokens_issued_until_that_second() {
        let standing = Standing::of(Some(&profile(&[(TOKENS_VALID_AFTER, n(1_000))])));
        assert_eq!(standing.refuses_token(999, None, 2_000), Some(Revoked::SignedOutEverywhere));
        assert_eq!(standing.refuses_token(1_000, None, 2_000), Some(Revoked::SignedOutEverywhere));
        assert_eq!(standing.refuses_token(1_001, None, 2_000), None);
        // API keys outlive sign-outs.
        assert_eq!(standing.refuses_key(10), None);
    }

    #[test]
    fn deletion_refuses_older_tokens_and_keys_and_disabling_refuses_everything() {
        let deleted = Standing::of(Some(&profile(&[(attr::DELETED_AT, n(500))])));
        assert_eq!(deleted.refuses_token(500, None, 600), Some(Revoked::Deleted));
        assert_eq!(deleted.refuses_token(501, None, 600), None);
        assert_eq!(deleted.refuses_key(499), Some(Revoked::Deleted));
        assert_eq!(deleted.refuses_key(501), None);
        let disabled = Standing::of(Some(&profile(&[(DISABLED_AT, n(500))])));
        assert_eq!(disabled.refuses_token(9_999, None, 600), Some(Revoked::Disabled));
        assert_eq!(disabled.refuses_key(9_999), Some(Revoked::Disabled));
    }

    #[test]
    fn an_ended_session_is_refused_until_its_entry_expires() {
        let ended = AttributeValue::Ss(vec![entry("s1", 2_000), entry("s2", 100), "garbage".into()]);
        let standing = Standing::of(Some(&profile(&[(ENDED_SESSIONS, ended)])));
        assert_eq!(standing.refuses_token(50, Some("s1"), 1_000), Some(Revoked::SignedOut));
        assert_eq!(standing.refuses_token(50, Some("s3"), 1_000), None);
        assert_eq!(standing.refuses_token(50, None, 1_000), None);
        assert_eq!(standing.refuses_token(50, Some("s2"), 1_000), None, "expired entries end nothing");
        assert_eq!(live(&standing, 1_000), std::collections::HashSet::from(["s1"]));
    }

    #[test]
    fn refresh_tokens_are_remembered_as_digests() {
        let id = refresh_token_id("secret-refresh-token");
        assert!(id.starts_with("refresh-") && id.len() == "refresh-".len() + 32);
        assert!(!id.contains("secret"));
        assert_ne!(id, refresh_token_id("secret-refresh-tokeN"));
    }
}
