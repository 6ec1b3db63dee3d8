//! Sign-up, sign-in and sign-out on the Cognito user pool: the auth area's whole logic, so its
//! handlers stay thin. Cognito holds the passwords and issues the tokens; this module maps its
//! answers to the API's errors without ever telling whether an email is registered, and joins
//! its sign-outs to our own revocation ([`crate::credentials`]).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_cognitoidentityprovider::{
    error::{ProvideErrorMetadata, SdkError},
    types::{AttributeType, AuthFlowType, AuthenticationResultType},
    Client,
};
use serde::Serialize;

use crate::{
    auth::{normalize_email, Identity, Verifier},
    config::{ConfigError, Env},
    credentials::Credentials,
    error::ApiError,
    runtime::Platform,
    teams::Teams,
};

/// The password policy of the user pool (`template.yaml`'s `UserPool` and the local stack's
/// moto pool both follow it): used to name the rule a refused password breaks.
pub const PASSWORD_MIN_LENGTH: usize = 12;
pub const PASSWORD_MAX_LENGTH: usize = 256;

/// The pool attribute holding the organization a user asked for at sign-up, until confirmed.
pub const ORGANIZATION_ATTRIBUTE: &str = "custom:organization";

/// Every sign-up, and every failed sign-in, answers no sooner than this after the request
/// arrived: an unknown email (Cognito answers at once) and a wrong password (Cognito checks it)
/// then take the same time, as do a new and an already registered email at sign-up.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(400);

/// The one answer to a refused sign-in, whatever the reason (unknown email, wrong password,
/// unconfirmed or disabled account).
pub const SIGN_IN_REFUSED: &str = "email or password is wrong";
/// The one answer to a refused refresh token (malformed, expired, revoked, another client's).
pub const REFRESH_REFUSED: &str = "the refresh token is invalid, expired or revoked";
/// The one answer to a refused confirmation: a wrong or expired code, an unknown email, an
/// account already confirmed all look alike.
pub const CONFIRMATION_REFUSED: &str =
    "the confirmation code is wrong or expired (or the account is already confirmed)";

/// Tokens of a sign-in or a refresh, as Cognito issues them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Send it as `Authorization: Bearer <access_token>` to every private route.
    pub access_token: String,
    /// Who signed in (email, name); also accepted as a bearer token.
    pub id_token: String,
    /// Present after a sign-in; a refresh returns none (keep using the one you have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the access and ID tokens expire.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: String,
}

/// The user pool and what a sign-in or sign-out changes on our side.
pub struct IdentityProvider {
    client: Client,
    pool_id: String,
    client_id: String,
    verifier: Arc<Verifier>,
    credentials: Arc<Credentials>,
    founding: Teams,
    /// moto (the local stack's Cognito) lacks `RevokeToken`, and `/dev/token`'s tokens are not
    /// the pool's: in development mode Cognito's refusal of either sign-out is tolerated (our
    /// own revocation still applies). On AWS it is an error.
    development_mode: bool,
}

impl IdentityProvider {
    /// From `COGNITO_USER_POOL_ID`, `COGNITO_CLIENT_ID` (and `COGNITO_ENDPOINT` locally), with the
    /// platform's revocation (`USERS_TABLE`) and the tables founding an organization touches.
    pub fn from_env(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let credentials =
            platform.credentials.clone().ok_or_else(|| ConfigError::Missing(crate::owned::PROFILE_TABLE.env.into()))?;
        let mut client = platform.cognito(env.optional("COGNITO_ENDPOINT"));
        if platform.development_mode {
            // moto answers RevokeToken with a 500, which the SDK would retry with backoffs.
            client = Client::from_conf(
                client
                    .config()
                    .to_builder()
                    .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
                    .build(),
            );
        }
        Ok(Self {
            client,
            pool_id: env.required("COGNITO_USER_POOL_ID")?,
            client_id: env.required("COGNITO_CLIENT_ID")?,
            verifier: platform.verifier.clone(),
            credentials,
            founding: Teams::founding(platform.dynamodb.clone(), env, platform.cursors.clone())?,
            development_mode: platform.development_mode,
        })
    }

    /// Registers a user (unconfirmed until [`Self::confirm`]). An email that is already
    /// registered answers exactly like a new one.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
        organization: Option<&str>,
    ) -> Result<(), ApiError> {
        let started = Instant::now();
        let result = self.try_sign_up(email, password, name, organization).await;
        answer_no_sooner(started).await;
        result
    }

    async fn try_sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
        organization: Option<&str>,
    ) -> Result<(), ApiError> {
        let email = valid_email(email)?;
        let mut attributes = vec![attribute("name", name)?];
        if let Some(org) = organization {
            attributes.push(attribute(ORGANIZATION_ATTRIBUTE, org)?);
        }
        let result = self
            .client
            .sign_up()
            .client_id(&self.client_id)
            .username(&email)
            .password(password)
            .set_user_attributes(Some(attributes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.code() {
                // Never reveal that the email is registered.
                Some("UsernameExistsException") => Ok(()),
                Some("InvalidPasswordException") => Err(ApiError::bad_request(password_problem(password, e.message()))),
                _ => Err(cognito_error("SignUp", e)),
            },
        }
    }

    /// Confirms a sign-up with the emailed code, then founds the organization the user named
    /// at sign-up with them as owner (once, however often this is repeated). Returns its id.
    pub async fn confirm(&self, email: &str, code: &str) -> Result<Option<String>, ApiError> {
        let email = valid_email(email)?;
        let confirmed = self
            .client
            .confirm_sign_up()
            .client_id(&self.client_id)
            .username(&email)
            .confirmation_code(code)
            .send()
            .await;
        if let Err(e) = confirmed {
            return Err(match e.code() {
                Some(
                    "CodeMismatchException"
                    | "ExpiredCodeException"
                    | "UserNotFoundException"
                    | "NotAuthorizedException"
                    | "AliasExistsException",
                ) => ApiError::bad_request(CONFIRMATION_REFUSED),
                _ => cognito_error("ConfirmSignUp", e),
            });
        }
        self.found_pending_org(&email).await
    }

    /// Founds the organization the user named at sign-up, if it is still pending, and clears
    /// the pending name. Runs after confirmation and again after every sign-in, so an account
    /// confirmed while founding failed (a throttled table, a timeout) gets its organization at
    /// its next sign-in instead of never: confirming twice is refused by Cognito. Founding is
    /// idempotent (the id derives from the user's `sub`).
    async fn found_pending_org(&self, email: &str) -> Result<Option<String>, ApiError> {
        // Only now is the user's id known for certain: read it from the pool, which vouches for it.
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&self.pool_id)
            .username(email)
            .send()
            .await
            .map_err(|e| cognito_error("AdminGetUser", e))?;
        let attributes = user.user_attributes();
        let value = |name: &str| attributes.iter().find(|a| a.name() == name).and_then(|a| a.value());
        let Some(organization) = value(ORGANIZATION_ATTRIBUTE).filter(|o| !o.trim().is_empty()) else {
            return Ok(None);
        };
        let sub = value("sub").ok_or_else(|| ApiError::Internal("the user pool's user has no sub".into()))?;
        let founder = Identity::from_verified_source(sub);
        let org = self.founding.found_signup_org(&founder, organization.to_owned()).await?;
        let cleared = self
            .client
            .admin_delete_user_attributes()
            .user_pool_id(&self.pool_id)
            .username(email)
            .user_attribute_names(ORGANIZATION_ATTRIBUTE)
            .send()
            .await;
        if let Err(e) = cleared {
            // Harmless: the next sign-in finds the organization founded and clears it then.
            tracing::warn!(error = %describe(&e), "could not clear the pending organization name");
        }
        Ok(Some(org))
    }

    /// Signs in with email and password. Every refusal is the same 401 after [`ANSWER_FLOOR`].
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Tokens, ApiError> {
        let started = Instant::now();
        let result = self.try_sign_in(email, password).await;
        if result.is_err() {
            answer_no_sooner(started).await;
        }
        result
    }

    async fn try_sign_in(&self, email: &str, password: &str) -> Result<Tokens, ApiError> {
        let Some(email) = normalize_email(email) else {
            return Err(ApiError::CredentialsRefused(SIGN_IN_REFUSED));
        };
        let result = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", &email)
            .auth_parameters("PASSWORD", password)
            .send()
            .await;
        match result {
            Ok(out) => match out.authentication_result {
                Some(tokens) => {
                    if let Err(e) = self.found_pending_org(&email).await {
                        // The sign-in stands; the next one retries.
                        tracing::warn!(error = %e, "could not found the organization named at sign-up");
                    }
                    tokens_of(tokens)
                }
                // A challenge (a new password, MFA) this API does not offer yet; only a caller
                // who knows the password gets here, so saying so reveals nothing.
                None => Err(ApiError::Forbidden(format!(
                    "this account must complete a sign-in challenge ({}) that this API does not offer",
                    out.challenge_name.map(|c| c.as_str().to_owned()).unwrap_or_default()
                ))),
            },
            Err(e) => Err(match e.code() {
                Some(
                    "NotAuthorizedException"
                    | "UserNotFoundException"
                    | "UserNotConfirmedException"
                    | "PasswordResetRequiredException"
                    | "InvalidParameterException",
                ) => ApiError::CredentialsRefused(SIGN_IN_REFUSED),
                _ => cognito_error("InitiateAuth", e),
            }),
        }
    }

    /// New access and ID tokens for a refresh token that Cognito still honours and that we did
    /// not end (signed out on its device, or the account disabled).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let result = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await;
        let tokens = match result {
            Ok(out) => out.authentication_result.ok_or(ApiError::CredentialsRefused(REFRESH_REFUSED))?,
            Err(e) => {
                return Err(match e.code() {
                    Some(
                        "NotAuthorizedException"
                        | "UserNotFoundException"
                        | "UserNotConfirmedException"
                        | "InvalidParameterException"
                        | "ResourceNotFoundException",
                    ) => ApiError::CredentialsRefused(REFRESH_REFUSED),
                    _ => cognito_error("InitiateAuth", e),
                })
            }
        };
        let tokens = tokens_of(tokens)?;
        // Whose token this is, as the verifier proves it (the same check every route makes).
        let who = self.verifier.verify(&tokens.access_token).await.map_err(|e| {
            ApiError::Internal(format!("the user pool's new access token does not verify (configuration?): {e}"))
        })?;
        if !self.credentials.refresh_allowed(&who, refresh_token).await? {
            return Err(ApiError::CredentialsRefused(REFRESH_REFUSED));
        }
        Ok(tokens)
    }

    /// Signs this device out: Cognito revokes the refresh token (and the tokens it issued), and
    /// our revocation ends the sign-in at once on every instance.
    pub async fn sign_out(&self, who: &Identity, refresh_token: &str) -> Result<(), ApiError> {
        let revoked = self.client.revoke_token().client_id(&self.client_id).token(refresh_token).send().await;
        if let Err(e) = revoked {
            match e.code() {
                Some("UnsupportedTokenTypeException" | "InvalidParameterException") => {
                    return Err(ApiError::bad_request("refresh_token is not a refresh token of this app"))
                }
                _ if self.development_mode => {
                    tracing::warn!(error = %describe(&e), "RevokeToken failed; tolerated in development mode (moto lacks it)")
                }
                _ => return Err(cognito_error("RevokeToken", e)),
            }
        }
        self.credentials.end_session(who, Some(refresh_token)).await
    }

    /// Signs the user out everywhere: Cognito invalidates every refresh token of theirs, and
    /// our revocation refuses every token issued until now. `access_token` is the bearer token
    /// the request was authorized with.
    pub async fn sign_out_everywhere(&self, who: &Identity, access_token: &str) -> Result<(), ApiError> {
        let result = self.client.global_sign_out().access_token(access_token).send().await;
        if let Err(e) = result {
            match e.code() {
                // `/dev/token`'s tokens are not the pool's.
                Some("NotAuthorizedException") if self.development_mode => {
                    tracing::info!(
                        "GlobalSignOut refused a token that is not the pool's; tolerated in development mode"
                    )
                }
                Some("NotAuthorizedException") => {
                    return Err(ApiError::CredentialsRefused(
                        "signing out everywhere needs the access token of a sign-in (not the ID token)",
                    ))
                }
                _ => return Err(cognito_error("GlobalSignOut", e)),
            }
        }
        self.credentials.end_all_sessions(who).await
    }
}

/// What an operator changes about a user in the pool (the `admin` tool): a disabled user cannot
/// sign in or refresh, a global sign-out invalidates every refresh token. Users are named by
/// our user id, which is the pool's `sub`; the pool's own username is looked up from it, since
/// it differs from the `sub` in some pools (and in moto).
pub struct PoolAdmin {
    client: Client,
    pool_id: String,
}

impl PoolAdmin {
    pub fn new(client: Client, pool_id: impl Into<String>) -> Self {
        Self { client, pool_id: pool_id.into() }
    }

    pub async fn disable(&self, user_id: &str) -> Result<(), ApiError> {
        let username = self.username(user_id).await?;
        let result = self.client.admin_disable_user().user_pool_id(&self.pool_id).username(username).send().await;
        result.map(drop).map_err(|e| cognito_error("AdminDisableUser", e))
    }

    pub async fn enable(&self, user_id: &str) -> Result<(), ApiError> {
        let username = self.username(user_id).await?;
        let result = self.client.admin_enable_user().user_pool_id(&self.pool_id).username(username).send().await;
        result.map(drop).map_err(|e| cognito_error("AdminEnableUser", e))
    }

    pub async fn sign_out_everywhere(&self, user_id: &str) -> Result<(), ApiError> {
        let username = self.username(user_id).await?;
        let result =
            self.client.admin_user_global_sign_out().user_pool_id(&self.pool_id).username(username).send().await;
        result.map(drop).map_err(|e| cognito_error("AdminUserGlobalSignOut", e))
    }

    /// The pool's username of the user whose `sub` is `user_id` (404 when the pool has none).
    async fn username(&self, user_id: &str) -> Result<String, ApiError> {
        // The id goes into a filter expression: only the characters a `sub` has.
        if user_id.is_empty() || !user_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ApiError::bad_request("a user id is letters, digits and dashes"));
        }
        let found = self
            .client
            .list_users()
            .user_pool_id(&self.pool_id)
            .filter(format!("sub = \"{user_id}\""))
            .limit(1)
            .send()
            .await
            .map_err(|e| cognito_error("ListUsers", e))?;
        found
            .users()
            .first()
            .and_then(|user| user.username())
            .map(str::to_owned)
            .ok_or(ApiError::NotFound("user in the user pool"))
    }
}

/// An operator's change to a user: our standing (what every function checks) and, when the
/// stack trusts its user pool, the pool. The standing goes first, so the refusal takes effect
/// even if the pool's call fails; the error says so, and repeating the command is safe.
pub struct UserAdmin {
    pub credentials: Credentials,
    pub pool: Option<PoolAdmin>,
}

impl UserAdmin {
    /// Refuses every credential of the user, whenever issued, and sign-ins and refreshes.
    pub async fn disable(&self, user_id: &str) -> Result<(), ApiError> {
        self.credentials.set_disabled(user_id, true).await?;
        Self::in_pool(self.pool.as_ref().map(|p| p.disable(user_id))).await
    }

    /// Lifts a disable; tokens refused by other revocations stay refused.
    pub async fn enable(&self, user_id: &str) -> Result<(), ApiError> {
        self.credentials.set_disabled(user_id, false).await?;
        Self::in_pool(self.pool.as_ref().map(|p| p.enable(user_id))).await
    }

    /// Refuses every token the user holds now and invalidates their refresh tokens.
    pub async fn sign_out_everywhere(&self, user_id: &str) -> Result<(), ApiError> {
        self.credentials.sign_out_user(user_id).await?;
        Self::in_pool(self.pool.as_ref().map(|p| p.sign_out_everywhere(user_id))).await
    }

    async fn in_pool(change: Option<impl std::future::Future<Output = Result<(), ApiError>>>) -> Result<(), ApiError> {
        match change {
            None => Ok(()),
            Some(change) => change
                .await
                .map_err(|e| ApiError::Internal(format!("done in the users table, but the user pool refused: {e}"))),
        }
    }
}

/// The bearer token of an `Authorization` header (already verified by the `Identity` extractor).
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn answer_no_sooner(started: Instant) {
    if let Some(rest) = ANSWER_FLOOR.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

fn valid_email(raw: &str) -> Result<String, ApiError> {
    normalize_email(raw).ok_or_else(|| ApiError::bad_request("email is not a valid email address"))
}

fn attribute(name: &str, value: &str) -> Result<AttributeType, ApiError> {
    AttributeType::builder().name(name).value(value).build().map_err(|e| ApiError::Internal(e.to_string()))
}

fn tokens_of(result: AuthenticationResultType) -> Result<Tokens, ApiError> {
    let (Some(access_token), Some(id_token)) = (result.access_token, result.id_token) else {
        return Err(ApiError::Unavailable("the user pool answered without tokens".into()));
    };
    Ok(Tokens {
        access_token,
        id_token,
        refresh_token: result.refresh_token,
        expires_in: i64::from(result.expires_in),
        token_type: result.token_type.unwrap_or_else(|| "Bearer".into()),
    })
}

/// The rule of the pool's policy that `password` breaks, for a 400 that names it; Cognito's
/// own message when the policy is not the one stated here.
fn password_problem(password: &str, cognito_message: Option<&str>) -> String {
    let chars = password.chars().count();
    let broken = if chars < PASSWORD_MIN_LENGTH {
        Some(format!("at least {PASSWORD_MIN_LENGTH} characters"))
    } else if chars > PASSWORD_MAX_LENGTH {
        Some(format!("at most {PASSWORD_MAX_LENGTH} characters"))
    } else if !password.chars().any(|c| c.is_ascii_lowercase()) {
        Some("a lower-case letter".into())
    } else if !password.chars().any(|c| c.is_ascii_uppercase()) {
        Some("an upper-case letter".into())
    } else if !password.chars().any(|c| c.is_ascii_digit()) {
        Some("a digit".into())
    } else {
        None
    };
    match broken {
        Some(rule) => format!("password must have {rule}"),
        None => format!("password does not meet the password policy: {}", cognito_message.unwrap_or("refused")),
    }
}

fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    format!("{}: {}", e.code().unwrap_or("no error code"), e.message().unwrap_or("no message"))
}

/// Cognito's other errors: the caller's fault is a 4xx, never a 500; the rest is Cognito
/// being unavailable (503) or a configuration error (500, logged).
fn cognito_error<E: ProvideErrorMetadata, R>(operation: &'static str, e: SdkError<E, R>) -> ApiError {
    let detail = describe(&e);
    match e.code() {
        Some("TooManyRequestsException" | "LimitExceededException" | "TooManyFailedAttemptsException") => {
            ApiError::TooManyRequests("too many attempts, retry later".into())
        }
        Some("InvalidParameterException") => {
            ApiError::bad_request(e.message().unwrap_or("a field is not valid").to_owned())
        }
        Some("CodeMismatchException" | "ExpiredCodeException") => ApiError::bad_request(CONFIRMATION_REFUSED),
        Some("NotAuthorizedException") => ApiError::CredentialsRefused("the user pool refused these credentials"),
        Some(
            "ResourceNotFoundException" | "InvalidUserPoolConfigurationException" | "InvalidLambdaResponseException",
        ) => {
            tracing::error!(operation, error = %detail, "user pool configuration error");
            ApiError::Internal(format!("{operation}: {detail}"))
        }
        _ => {
            tracing::warn!(operation, error = %detail, "user pool call failed");
            ApiError::Unavailable(format!("{operation}: {detail}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_password_is_told_the_rule_it_breaks() {
        assert_eq!(password_problem("Abcdefghij1", None), "password must have at least 12 characters");
        assert_eq!(password_problem("ABCDEFGHIJK1", None), "password must have a lower-case letter");
        assert_eq!(password_problem("abcdefghijk1", None), "password must have an upper-case letter");
        assert_eq!(password_problem("Abcdefghijkl", None), "password must have a digit");
        assert!(password_problem("Abcdefghijk1", Some("Password did not conform with policy: x")).ends_with(": x"));
    }

    #[test]
    fn only_a_bearer_header_gives_a_token() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(None), None);
    }
}
