//! Sign-up, confirmation, sign-in, refresh and sign-out on the Cognito user pool. The handlers
//! are thin: Cognito calls, error mapping and revocation live in `shared::identity_provider`.
//! Every route but the two sign-outs is public; none reveals whether an email is registered.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use shared::{
    http::{json, no_content, JsonBody, RequestBody},
    identity_provider::{bearer_token, IdentityProvider, Tokens, PASSWORD_MAX_LENGTH},
    item::Text,
    ApiError, Area, ConfigError, Env, Identity, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The longest email address (RFC 5321).
const EMAIL_MAX: usize = shared::auth::MAX_EMAIL_LEN;
type Email = Text<3, EMAIL_MAX>;
type Password = Text<1, PASSWORD_MAX_LENGTH>;
/// The user pool's limit for the `organization` custom attribute.
type OrganizationName = Text<1, 100>;
type PersonName = Text<1, 200>;
/// Cognito's tokens are a few KiB; 16 KiB leaves room and refuses anything absurd.
type RefreshToken = Text<1, 16_384>;

pub struct Auth {
    pool: IdentityProvider,
}

impl Area for Auth {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { pool: IdentityProvider::from_env(platform, env)? })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        OpenApiRouter::new()
            .routes(routes!(sign_up))
            .routes(routes!(confirm))
            .routes(routes!(sign_in))
            .routes(routes!(refresh))
            .routes(routes!(sign_out))
            .routes(routes!(sign_out_everywhere))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "Correct-horse-1", "name": "Ada Lovelace", "organization": "Analytical Engines"}))]
pub struct SignUp {
    email: Email,
    /// At least 12 characters, with a lower-case letter, an upper-case letter and a digit.
    password: Password,
    name: PersonName,
    /// An organization to create, with the new user as its owner, once the account is confirmed.
    #[serde(default)]
    organization: Option<OrganizationName>,
}

impl RequestBody for SignUp {
    const MAX_BYTES: usize = 4 * 1024;
}

#[derive(Serialize, ToSchema)]
pub struct SignUpAccepted {
    /// The same for a new and an already registered email.
    message: &'static str,
}

/// Public. Registers an account and sends a confirmation code to the email address. Answers
/// 202 alike whether or not the address is already registered, after the same minimum time;
/// a password that breaks the policy is a 400 naming the rule.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", operation_id = "sign_up", security(()),
    request_body = SignUp,
    responses(
        (status = 202, description = "A confirmation code was sent, if the address can register", body = SignUpAccepted),
        (status = 400, description = "A field is invalid, or the password breaks the policy (the rule is named)"),
        (status = 413, description = "The body is over its size limit"),
        (status = 415, description = "The body is not JSON"),
        (status = 429, description = "Too many attempts: retry later"),
        (status = 503, description = "The user pool is unavailable: retry later"),
    ))]
async fn sign_up(State(area): State<Arc<Auth>>, JsonBody(body): JsonBody<SignUp>) -> Result<Response, ApiError> {
    let organization = body.organization.as_ref().map(Text::as_str);
    area.pool.sign_up(body.email.as_str(), body.password.as_str(), body.name.as_str(), organization).await?;
    json(
        StatusCode::ACCEPTED,
        &SignUpAccepted { message: "if this address can register, a confirmation code was sent to it" },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// The examples of confirm and login name an email the sign-up example does not, so running the
// examples in any order (the fixtures, the security suite) always answers alike.
#[schema(example = json!({"email": "grace@example.com", "code": "123456"}))]
pub struct Confirm {
    email: Email,
    /// The code from the confirmation email.
    code: Text<1, 64>,
}

impl RequestBody for Confirm {
    const MAX_BYTES: usize = 1024;
}

#[derive(Serialize, ToSchema)]
pub struct Confirmed {
    confirmed: bool,
    /// The organization named at sign-up, owned by the user (the same one on every confirmation).
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_id: Option<String>,
}

/// Public. Confirms the account with the emailed code, then creates the organization named at
/// sign-up with the user as owner (once). A wrong or expired code, an unknown email and an
/// account already confirmed all answer the same 400.
#[utoipa::path(post, path = "/auth/confirm", tag = "auth", operation_id = "confirm_sign_up", security(()),
    request_body = Confirm,
    responses(
        (status = 200, description = "The account is confirmed: sign in", body = Confirmed),
        (status = 400, description = "A field is invalid, or the code is wrong or expired (or the account already confirmed)"),
        (status = 413, description = "The body is over its size limit"),
        (status = 415, description = "The body is not JSON"),
        (status = 429, description = "Too many attempts: retry later"),
        (status = 503, description = "The user pool is unavailable: retry later"),
    ))]
async fn confirm(State(area): State<Arc<Auth>>, JsonBody(body): JsonBody<Confirm>) -> Result<Response, ApiError> {
    let organization_id = area.pool.confirm(body.email.as_str(), body.code.as_str()).await?;
    json(StatusCode::OK, &Confirmed { confirmed: true, organization_id })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "grace@example.com", "password": "Correct-horse-1"}))]
pub struct SignIn {
    email: Email,
    password: Password,
}

impl RequestBody for SignIn {
    const MAX_BYTES: usize = 1024;
}

/// Public. Signs in with email and password. An unknown email, a wrong password, an
/// unconfirmed or disabled account: the same 401 ("email or password is wrong"), after the
/// same minimum time.
#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "sign_in", security(()),
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in", body = Tokens),
        (status = 400, description = "A field is invalid"),
        (status = 401, description = "Email or password is wrong (whatever the reason)"),
        (status = 403, description = "The account must complete a sign-in challenge this API does not offer"),
        (status = 413, description = "The body is over its size limit"),
        (status = 415, description = "The body is not JSON"),
        (status = 429, description = "Too many attempts: retry later"),
        (status = 503, description = "The user pool is unavailable: retry later"),
    ))]
async fn sign_in(State(area): State<Arc<Auth>>, JsonBody(body): JsonBody<SignIn>) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.pool.sign_in(body.email.as_str(), body.password.as_str()).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ.example"}))]
pub struct RefreshBody {
    /// The refresh token of the sign-in.
    refresh_token: RefreshToken,
}

impl RequestBody for RefreshBody {
    const MAX_BYTES: usize = 20 * 1024;
}

/// Public. New access and ID tokens for a refresh token; 401 once it expired, its device
/// signed out, its user signed out everywhere or was disabled.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh_tokens", security(()),
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New access and ID tokens", body = Tokens),
        (status = 400, description = "A field is invalid"),
        (status = 401, description = "The refresh token is invalid, expired or revoked"),
        (status = 413, description = "The body is over its size limit"),
        (status = 415, description = "The body is not JSON"),
        (status = 429, description = "Too many attempts: retry later"),
        (status = 503, description = "The user pool is unavailable: retry later"),
    ))]
async fn refresh(State(area): State<Arc<Auth>>, JsonBody(body): JsonBody<RefreshBody>) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.pool.refresh(body.refresh_token.as_str()).await?)
}

/// Signs this device out: its refresh token and the tokens of its sign-in are refused from now
/// on (within the revocation bound on other instances); other devices stay signed in.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "sign_out",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "Signed out"),
        (status = 429, description = "Too many attempts: retry later"),
    ))]
async fn sign_out(
    State(area): State<Arc<Auth>>,
    who: Identity,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, ApiError> {
    area.pool.sign_out(&who, body.refresh_token.as_str()).await?;
    Ok(no_content())
}

/// Signs the caller out on every device: every refresh token of theirs and every token issued
/// until now are refused. Send the access token (not the ID token).
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", operation_id = "sign_out_everywhere",
    responses(
        (status = 204, description = "Signed out everywhere"),
        (status = 429, description = "Too many attempts: retry later"),
    ))]
async fn sign_out_everywhere(
    State(area): State<Arc<Auth>>,
    who: Identity,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The Identity extractor verified this very header.
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = bearer_token(authorization).ok_or_else(|| ApiError::Unauthorized("no bearer token".into()))?;
    area.pool.sign_out_everywhere(&who, token).await?;
    Ok(no_content())
}
