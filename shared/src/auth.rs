//! Identity comes from a verified JWT and from nowhere else.
//!
//! [`Identity`] has no public constructor: the only way to obtain one is [`Verifier::verify`].
//! Everything that touches user data takes an `&Identity`, so a handler cannot address a
//! partition the token did not prove.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    jwk::{JwkSet, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Env};

/// The caller, as proven by a verified token. `user_id` is the token's `sub` and is the
/// partition key of every table; `issued_at` is its verified `iat` (0 without one), which
/// tells tokens issued before the account's deletion from those issued after; `email` is its
/// `email` claim and `email_verified` whether the identity provider says it checked it;
/// `session` is the sign-in the token belongs to (Cognito's `origin_jti`, else its `jti`),
/// which signing out of one device ends ([`crate::credentials`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    user_id: String,
    issued_at: u64,
    expires_at: u64,
    session: Option<String>,
    email: Option<String>,
    email_verified: bool,
    credential: Credential,
}

/// What the caller presented: a token from the identity provider (a person signed in), or an
/// API key (a program acting for the key's creator within the key's scope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    Token,
    ApiKey { key_id: String, scope: KeyScope },
}

/// How far an API key reaches: its creator's personal space, or one project with a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyScope {
    /// The creator's personal items, nothing of any organization or project.
    Personal,
    /// One project, with at most this role (and never more than the creator's own).
    Project { project_id: String, role: crate::access::Role },
}

impl Identity {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// When the token was issued (seconds since the epoch), 0 if it does not say.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// When the token expires (seconds since the epoch), 0 if not known.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The sign-in this token belongs to, if the token names one (`origin_jti` or `jti`).
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The token's email address, only if the identity provider verified it (`email_verified`
    /// true): an unverified address proves nothing about who holds the token.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }

    /// The token names an email address its identity provider did not verify.
    pub fn has_unverified_email(&self) -> bool {
        self.email.is_some() && !self.email_verified
    }

    /// How the caller authenticated.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The scope of the caller's API key; None for a signed-in person.
    pub fn key_scope(&self) -> Option<&KeyScope> {
        match &self.credential {
            Credential::Token => None,
            Credential::ApiKey { scope, .. } => Some(scope),
        }
    }

    /// Refuses an API key (403) where a person must act: managing keys, the account,
    /// organizations. `what` completes "API keys cannot ...".
    pub fn require_signed_in(&self, what: &str) -> Result<(), crate::ApiError> {
        match self.credential {
            Credential::Token => Ok(()),
            Credential::ApiKey { .. } => {
                Err(crate::ApiError::Forbidden(format!("API keys cannot {what}: sign in with a token")))
            }
        }
    }

    /// The creator of a verified API key, acting with its scope. `created_at` (seconds since
    /// the epoch) stands for a token's `iat`, so an account deletion refuses the keys created
    /// before it exactly as it refuses older tokens.
    pub(crate) fn from_api_key(user_id: &str, created_at: u64, key_id: String, scope: KeyScope) -> Self {
        Self {
            user_id: user_id.to_owned(),
            issued_at: created_at,
            expires_at: 0,
            session: None,
            email: None,
            email_verified: false,
            credential: Credential::ApiKey { key_id, scope },
        }
    }

    /// An identity established by a verified source other than a token in hand: the context
    /// our own authorizer set from a verified token, the partition key of a stored item, or the
    /// user prefix of an object key (S3 stored it through a URL signed for that prefix), the
    /// user pool's answer about a user whose sign-up it just confirmed.
    /// Crate-private, so only the tenancy core can vouch for one.
    #[cfg_attr(not(any(feature = "realtime", feature = "s3", feature = "cognito")), allow(dead_code))]
    pub(crate) fn from_verified_source(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            issued_at: 0,
            expires_at: 0,
            session: None,
            email: None,
            email_verified: false,
            credential: Credential::Token,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(user: &str) -> Self {
        Self::from_verified_source(user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("authorization header is not a bearer token")]
    NotBearer,
    #[error("token header is malformed: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("token header {0} is refused: keys are never taken from the token")]
    ForbiddenHeader(&'static str),
    #[error("token has no kid")]
    MissingKid,
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    #[error("key {0:?} does not match algorithm {1:?}")]
    KeyMismatch(String, Algorithm),
    #[error("token rejected: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("sub claim is empty, too long, has control characters or a reserved prefix")]
    BadSubject,
    #[error("authorizer claims disagree with the token")]
    AuthorizerMismatch,
    #[error("token is not for this API: aud (or a Cognito access token's client_id) does not match")]
    WrongAudience,
    #[error("token_use {0:?} is refused: only Cognito access and ID tokens are accepted")]
    WrongTokenUse(String),
}

/// The settings the verifier takes, read once at cold start.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub secret: Option<Vec<u8>>,
    pub jwks_url: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    /// Least time between two JWKS fetches triggered by unknown `kid`s.
    pub jwks_min_refresh: Duration,
    /// After this age, cached keys are refetched (so revoked keys drop out).
    pub jwks_max_age: Duration,
    pub jwks_timeout: Duration,
}

/// HS256 secrets shorter than this are refused (RFC 7518 3.2: key at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
const MAX_SUB_LEN: usize = 256;

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = env.optional("JWT_SECRET").map(String::into_bytes);
        let jwks_url = env.optional("JWKS_URL");
        if secret.is_none() && jwks_url.is_none() {
            return Err(ConfigError::Missing("JWT_SECRET or JWKS_URL".into()));
        }
        let default_algs = if jwks_url.is_some() { "RS256" } else { "HS256" };
        let algorithms = env
            .optional("JWT_ALGORITHMS")
            .unwrap_or_else(|| default_algs.to_owned())
            .split(',')
            .map(|a| a.trim().parse::<Algorithm>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::invalid("JWT_ALGORITHMS", e.to_string()))?;
        let config = Self {
            secret,
            jwks_url,
            algorithms,
            issuer: env.optional("JWT_ISSUER"),
            audience: env.optional("JWT_AUDIENCE"),
            leeway: Duration::from_secs(env.parse_or("JWT_LEEWAY_SECONDS", 30u64)?),
            jwks_min_refresh: Duration::from_secs(env.parse_or("JWKS_MIN_REFRESH_SECONDS", 30u64)?),
            jwks_max_age: Duration::from_secs(env.parse_or("JWKS_MAX_AGE_SECONDS", 3600u64)?),
            jwks_timeout: Duration::from_millis(env.parse_or("JWKS_TIMEOUT_MS", 3000u64)?),
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid("JWT_LEEWAY_SECONDS", "at most 300"));
        }
        if let Some(secret) = &self.secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::invalid("JWT_SECRET", format!("at least {MIN_SECRET_BYTES} bytes")));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid("JWT_ALGORITHMS", "empty"));
        }
        for alg in &self.algorithms {
            let usable = match alg {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.secret.is_some(),
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::ES256 | Algorithm::ES384 => {
                    self.jwks_url.is_some()
                }
                _ => false,
            };
            if !usable {
                return Err(ConfigError::invalid(
                    "JWT_ALGORITHMS",
                    format!(
                        "{alg:?} needs {}",
                        if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac { "JWT_SECRET" } else { "JWKS_URL" }
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// A NumericDate may have a fraction (RFC 7519 2); only whole seconds matter here.
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    exp: Option<f64>,
    /// The token's id, and (Cognito) the id of the sign-in that all its refreshed tokens share.
    #[serde(default)]
    jti: Option<serde_json::Value>,
    #[serde(default)]
    origin_jti: Option<serde_json::Value>,
    /// Read leniently: an odd `email` or `email_verified` makes the token carry no verified
    /// address, never refuses it (the claims are optional; only invitations look at them).
    #[serde(default)]
    email: Option<serde_json::Value>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    /// `aud`: a string or a list of strings (RFC 7519 4.1.3); checked by [`Claims::audience_ok`].
    #[serde(default)]
    aud: Option<serde_json::Value>,
    /// Cognito's `token_use` (`access` or `id`) and an access token's `client_id`: Cognito
    /// access tokens carry no `aud`, so for them the app client is checked in `client_id`.
    #[serde(default)]
    token_use: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<serde_json::Value>,
}

impl Claims {
    /// Cognito's `token_use`: `access`, `id`, or none (other providers). Anything else (a
    /// refresh token's claims, a made-up use) is refused.
    fn token_use(&self) -> Result<Option<&str>, AuthError> {
        match &self.token_use {
            None => Ok(None),
            Some(serde_json::Value::String(u)) if u == "access" || u == "id" => Ok(Some(u.as_str())),
            Some(other) => Err(AuthError::WrongTokenUse(other.to_string())),
        }
    }

    /// The audience check, as AWS documents it for Cognito ("Verifying a JSON web token"): an
    /// access token (`token_use` `access`) must name the app client in `client_id`; any other
    /// token (an ID token, or one from a provider without `token_use`) in `aud`.
    fn audience_ok(&self, audience: &str, token_use: Option<&str>) -> Result<(), AuthError> {
        let matches = match token_use {
            Some("access") => self.client_id.as_ref().and_then(serde_json::Value::as_str) == Some(audience),
            _ => match &self.aud {
                Some(serde_json::Value::String(a)) => a == audience,
                Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            },
        };
        matches.then_some(()).ok_or(AuthError::WrongAudience)
    }
}

/// The longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address as compared: trimmed and lowercased (providers keep the case users typed),
/// if it is a plausible one (`local@domain`, at most [`MAX_EMAIL_LEN`] bytes, no spaces).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let plausible = (3..=MAX_EMAIL_LEN).contains(&email.len())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_control() || c.is_whitespace());
    plausible.then_some(email)
}

/// The token's email claim, normalized; absent when it is not a plausible address.
fn email_claim(value: Option<&serde_json::Value>) -> Option<String> {
    normalize_email(value?.as_str()?)
}

/// The longest session id kept: Cognito's and most providers' `jti` are UUIDs.
const MAX_SESSION_LEN: usize = 128;

/// A `jti`/`origin_jti` usable as a session id: a short string without control characters.
fn session_claim(value: Option<&serde_json::Value>) -> Option<String> {
    let id = value?.as_str()?;
    (!id.is_empty() && id.len() <= MAX_SESSION_LEN && !id.chars().any(char::is_control)).then(|| id.to_owned())
}

/// `email_verified`: `true` (Auth0, Cognito ID tokens), or `"true"` (as some Cognito flows
/// send it); anything else is unverified.
fn verified_claim(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

/// Verifies bearer tokens. Built once per cold start, shared by every request.
pub struct Verifier {
    config: AuthConfig,
    validation: Validation,
    shared_key: Option<DecodingKey>,
    jwks: Option<JwksCache>,
}

impl Verifier {
    pub fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        config.check()?;
        let mut validation = Validation::new(config.algorithms[0]);
        validation.algorithms = config.algorithms.clone();
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        // The audience is checked after decoding (Cognito access tokens carry it in
        // `client_id`, not `aud`): see `Claims::audience_ok`.
        validation.validate_aud = false;
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let shared_key = config.secret.as_deref().map(DecodingKey::from_secret);
        let jwks = match &config.jwks_url {
            Some(url) => Some(JwksCache::new(url.clone(), &config)?),
            None => None,
        };
        Ok(Self { config, validation, shared_key, jwks })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Verifies an `Authorization` header value (`Bearer <jwt>`).
    pub async fn verify_bearer(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let value = authorization.ok_or(AuthError::MissingToken)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim()).await
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        // The algorithm allow-list comes from configuration; the header only picks among it.
        if !self.config.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed(header.alg));
        }
        refuse_key_bearing_headers(&header)?;
        let jwks_key;
        let key = if header.alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            self.shared_key.as_ref().ok_or(AuthError::AlgorithmNotAllowed(header.alg))?
        } else {
            let jwks = self.jwks.as_ref().ok_or(AuthError::AlgorithmNotAllowed(header.alg))?;
            let kid = header.kid.as_deref().ok_or(AuthError::MissingKid)?;
            jwks_key = jwks.key_for(kid, header.alg).await?;
            &*jwks_key
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(AuthError::Invalid)?;
        let token_use = data.claims.token_use()?;
        if let Some(audience) = &self.config.audience {
            data.claims.audience_ok(audience, token_use)?;
        }
        let sub = data.claims.sub;
        // A subject that looks like a project's partition could address that project's items.
        if sub.is_empty()
            || sub.len() > MAX_SUB_LEN
            || sub.chars().any(char::is_control)
            || sub.starts_with(crate::store::PROJECT_PARTITION_PREFIX)
        {
            return Err(AuthError::BadSubject);
        }
        // Negative, NaN or absent: issued at 0, i.e. before any deletion (the safe side).
        let issued_at = data.claims.iat.filter(|t| t.is_finite() && *t > 0.0).map_or(0, |t| t as u64);
        let expires_at = data.claims.exp.filter(|t| t.is_finite() && *t > 0.0).map_or(0, |t| t as u64);
        let session =
            session_claim(data.claims.origin_jti.as_ref()).or_else(|| session_claim(data.claims.jti.as_ref()));
        let email = email_claim(data.claims.email.as_ref());
        let email_verified = verified_claim(data.claims.email_verified.as_ref());
        Ok(Identity {
            user_id: sub,
            issued_at,
            expires_at,
            session,
            email,
            email_verified,
            credential: Credential::Token,
        })
    }
}

fn refuse_key_bearing_headers(header: &Header) -> Result<(), AuthError> {
    let present = [
        ("jku", header.jku.is_some()),
        ("jwk", header.jwk.is_some()),
        ("x5u", header.x5u.is_some()),
        ("x5c", header.x5c.is_some()),
        ("crit", header.crit.is_some()),
    ];
    match present.iter().find(|(_, is_set)| *is_set) {
        Some((name, _)) => Err(AuthError::ForbiddenHeader(name)),
        None => Ok(()),
    }
}

/// A verification key and the algorithm its JWK declares, if any.
type CachedKey = (Option<KeyAlgorithm>, Arc<DecodingKey>);

struct CachedKeys {
    keys: HashMap<String, CachedKey>,
    fetched_at: Option<Instant>,
}

/// Public keys from a JWKS URL, cached by `kid`. An unknown `kid` triggers a refetch, at most
/// once per `min_refresh`, so a flood of made-up kids cannot turn into a flood of fetches.
struct JwksCache {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    max_age: Duration,
    cached: RwLock<CachedKeys>,
    refreshing: tokio::sync::Mutex<()>,
}

impl JwksCache {
    fn new(url: String, config: &AuthConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.jwks_timeout)
            .connect_timeout(config.jwks_timeout)
            .build()
            .map_err(|e| ConfigError::invalid("JWKS_URL", e.to_string()))?;
        Ok(Self {
            url,
            http,
            min_refresh: config.jwks_min_refresh,
            max_age: config.jwks_max_age,
            cached: RwLock::new(CachedKeys { keys: HashMap::new(), fetched_at: None }),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn lookup(&self, kid: &str) -> (Option<CachedKey>, bool) {
        let cached = self.cached.read().expect("jwks lock poisoned");
        let stale = cached.fetched_at.is_none_or(|t| t.elapsed() > self.max_age);
        (cached.keys.get(kid).cloned(), stale)
    }

    async fn key_for(&self, kid: &str, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthError> {
        let (mut found, stale) = self.lookup(kid);
        if found.is_none() || stale {
            let _one_fetch_at_a_time = self.refreshing.lock().await;
            let (again, stale) = self.lookup(kid);
            found = again;
            let may_fetch = self
                .cached
                .read()
                .expect("jwks lock poisoned")
                .fetched_at
                .is_none_or(|t| t.elapsed() >= self.min_refresh);
            if (found.is_none() || stale) && may_fetch {
                self.refresh().await;
                found = self.lookup(kid).0;
            }
        }
        let (key_alg, key) = found.ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))?;
        let alg_matches = key_alg.is_none_or(|k| format!("{k:?}") == format!("{alg:?}"));
        if !alg_matches || key.family() != alg.family() {
            return Err(AuthError::KeyMismatch(kid.to_owned(), alg));
        }
        Ok(key)
    }

    /// Replaces the cache with the keys at the URL. A failed fetch keeps the old keys but still
    /// counts as an attempt, so the rate bound holds while the IdP is down.
    async fn refresh(&self) {
        let fetched = self.fetch().await;
        let mut cached = self.cached.write().expect("jwks lock poisoned");
        cached.fetched_at = Some(Instant::now());
        match fetched {
            Ok(keys) => cached.keys = keys,
            Err(e) => tracing::warn!(error = %e, url = %self.url, "jwks fetch failed"),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, CachedKey>, String> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    keys.insert(kid, (jwk.common.key_algorithm, Arc::new(key)));
                }
                Err(e) => tracing::warn!(kid, error = %e, "skipping unusable jwk"),
            }
        }
        Ok(keys)
    }
}

/// Claims of a token minted by [`TokenMinter`].
#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    /// A fresh id per token, so signing out of one device can name it.
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// Signs real HS256 tokens with the configured secret: the local gateway's development mode
/// (`POST /dev/token`) and the tests use it. It cannot mint anything the secret could not.
pub struct TokenMinter {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenMinter {
    pub fn from_config(config: &AuthConfig) -> Option<Self> {
        let secret = config.secret.as_deref()?;
        Some(Self {
            key: EncodingKey::from_secret(secret),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn mint(&self, user: &str, ttl: Duration) -> String {
        self.mint_with_email(user, None, ttl)
    }

    /// A token that also carries `email` and `email_verified`, as an identity provider's ID
    /// token does (`(address, verified)`).
    pub fn mint_with_email(&self, user: &str, email: Option<(&str, bool)>, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = MintedClaims {
            sub: user,
            iat: now,
            exp: now + ttl.as_secs(),
            jti: crate::item::new_id(),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
            email: email.map(|(address, _)| address),
            email_verified: email.map(|(_, verified)| verified),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing with a byte secret cannot fail")
    }
}

#[cfg(test)]
mod tests;
