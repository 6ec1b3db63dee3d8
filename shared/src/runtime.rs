//! What a function builds once per cold start, and the Lambda entry point every `main.rs` calls.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_config::SdkConfig;
use aws_lc_rs::hmac;
use aws_sdk_dynamodb::config::{retry::RetryConfig, BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use axum::Router;
use serde::{de::DeserializeOwned, Serialize};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    auth::{AuthConfig, Verifier, MIN_SECRET_BYTES},
    config::{development_mode, ConfigError, Env},
    cursor::CursorCodec,
};

/// Clients and settings shared by every handler of a function, built once at cold start.
#[derive(Clone)]
pub struct Platform {
    pub verifier: Arc<Verifier>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub cursors: CursorCodec,
    pub development_mode: bool,
    /// The profile table (`USERS_TABLE`), which every store checks a create against; only
    /// functions that create items have it.
    profiles: Option<String>,
    /// Teams' tables, for functions with project or organization routes.
    pub teams: Option<Arc<crate::teams::Teams>>,
    /// Users' standing (revocation), checked on every verified request; with `USERS_TABLE`.
    pub credentials: Option<Arc<crate::credentials::Credentials>>,
    /// API keys, accepted as bearer credentials when the function has `API_KEYS_TABLE`.
    pub api_keys: Option<Arc<crate::api_keys::ApiKeys>>,
    /// The projects table, which creates in a project check.
    projects: Option<String>,
    /// AWS settings: from the environment, or fixed local ones when every service this
    /// process uses has a local endpoint.
    #[cfg_attr(not(any(feature = "s3", feature = "realtime", feature = "cognito")), allow(dead_code))]
    sdk_config: SdkConfig,
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    s3_endpoint: Option<String>,
}

impl Platform {
    pub async fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let development_mode = development_mode(env)?;
        let auth = AuthConfig::from_env(env)?;
        let cursors = CursorCodec::new(&cursor_secret(env, &auth)?);
        let verifier = Arc::new(Verifier::new(auth)?);
        let dynamodb_endpoint = env.optional("DYNAMODB_ENDPOINT");
        let s3_endpoint = env.optional("S3_ENDPOINT");
        let sdk_config = match (&dynamodb_endpoint, &s3_endpoint) {
            (Some(_), Some(_)) => local_sdk_config(),
            _ => aws_config::load_defaults(BehaviorVersion::latest()).await,
        };
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk_config);
        dynamodb.set_endpoint_url(dynamodb_endpoint);
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb.build());
        let profiles = env.optional(crate::owned::PROFILE_TABLE.env);
        let teams = crate::teams::Teams::from_env(dynamodb.clone(), env, cursors.clone())?;
        let projects = env.optional("PROJECTS_TABLE");
        let credentials = crate::credentials::Credentials::from_env(dynamodb.clone(), env)?.map(Arc::new);
        let api_keys = crate::api_keys::ApiKeys::from_env(dynamodb.clone(), env, cursors.clone())?.map(Arc::new);
        let mut platform = Self {
            verifier,
            dynamodb,
            cursors,
            development_mode,
            profiles,
            teams: None,
            credentials,
            api_keys,
            projects,
            sdk_config,
            s3_endpoint,
        };
        #[cfg(feature = "s3")]
        let teams = teams.map(|t| {
            let objects = env.optional("FILES_BUCKET").map(|b| crate::objects::UserObjects::new(platform.s3(), b));
            t.with_objects(objects)
        });
        platform.teams = teams.map(Arc::new);
        Ok(platform)
    }

    /// Replaces the DynamoDB client everywhere this platform hands it out (the local stack adds
    /// test interceptors this way).
    pub fn set_dynamodb(&mut self, client: aws_sdk_dynamodb::Client) {
        self.teams = self.teams.as_ref().map(|t| Arc::new(t.with_client(client.clone())));
        self.credentials = self.credentials.as_ref().map(|c| Arc::new(c.with_client(client.clone())));
        self.api_keys = self.api_keys.as_ref().map(|k| Arc::new(k.with_client(client.clone())));
        self.dynamodb = client;
    }

    /// Opens the DynamoDB connection during the cold start instead of on the first request:
    /// one cheap call (`DescribeEndpoints`, no table, no data) resolves credentials and the
    /// endpoint, loads the TLS roots and leaves a connected (TLS) socket in the client's pool.
    /// Any answer will do, an error included (a missing IAM permission, DynamoDB Local's
    /// "unknown operation"): only the connection matters. A failure or a slow answer is logged
    /// and ignored after [`WARM_UP_TIMEOUT`], so the warm-up can never keep a function from
    /// starting.
    pub async fn warm_up(&self) {
        let started = Instant::now();
        // No retries: a refused connection is reported at once instead of after backoffs.
        let call = self
            .dynamodb
            .describe_endpoints()
            .customize()
            .config_override(aws_sdk_dynamodb::Config::builder().retry_config(RetryConfig::disabled()))
            .send();
        match tokio::time::timeout(WARM_UP_TIMEOUT, call).await {
            Ok(Ok(_)) => tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "dynamodb warmed up"),
            Ok(Err(e)) => {
                let answered = e.raw_response().is_some();
                tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, answered, error = %e, "dynamodb warm-up answered with an error")
            }
            Err(_) => tracing::warn!(timeout_ms = WARM_UP_TIMEOUT.as_millis() as u64, "dynamodb warm-up timed out"),
        }
    }

    /// A repository of user-owned items over this platform's DynamoDB client and cursor key.
    /// Needs `USERS_TABLE`: every create is checked against the account's deletion tombstone.
    pub fn store(&self, collection: crate::store::Collection) -> Result<crate::store::UserStore, ConfigError> {
        let profiles =
            self.profiles.clone().ok_or_else(|| ConfigError::Missing(crate::owned::PROFILE_TABLE.env.into()))?;
        Ok(crate::store::UserStore::new(
            self.dynamodb.clone(),
            collection,
            self.cursors.clone(),
            Some(profiles),
            self.projects.clone(),
        ))
    }

    /// A repository for a function that only looks items up (and may delete them), never
    /// creates: it needs no profile table, and a create through it fails.
    pub fn reader(&self, collection: crate::store::Collection) -> crate::store::UserStore {
        crate::store::UserStore::new(self.dynamodb.clone(), collection, self.cursors.clone(), None, None)
    }

    /// A client for the API Gateway Management API of a WebSocket API (`endpoint` is
    /// `https://<api-id>.execute-api.<region>.amazonaws.com/<stage>`, or the local gateway).
    #[cfg(feature = "realtime")]
    pub fn management(&self, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        aws_sdk_apigatewaymanagement::Client::from_conf(
            aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk_config).endpoint_url(endpoint).build(),
        )
    }

    /// The Cognito user pools client: `COGNITO_ENDPOINT` locally (moto), the SDK's default on AWS.
    #[cfg(feature = "cognito")]
    pub fn cognito(&self, endpoint: Option<String>) -> aws_sdk_cognitoidentityprovider::Client {
        let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(&self.sdk_config);
        config.set_endpoint_url(endpoint);
        aws_sdk_cognitoidentityprovider::Client::from_conf(config.build())
    }

    /// The S3 client (path-style addressing for a local server, which has no bucket DNS names).
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let mut config = aws_sdk_s3::config::Builder::from(&self.sdk_config);
        config.set_endpoint_url(self.s3_endpoint.clone());
        config.set_force_path_style(Some(self.s3_endpoint.is_some()));
        aws_sdk_s3::Client::from_conf(config.build())
    }
}

/// The longest a cold start waits for the DynamoDB warm-up before going on without it.
pub const WARM_UP_TIMEOUT: Duration = Duration::from_secs(1);

/// `CURSOR_SECRET`, or, when only `JWT_SECRET` is set, a key derived from it (so an HS256
/// deployment has one secret to manage, and cursors never reuse the signing key itself).
fn cursor_secret(env: &Env, auth: &AuthConfig) -> Result<Vec<u8>, ConfigError> {
    if let Some(secret) = env.optional("CURSOR_SECRET") {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid("CURSOR_SECRET", format!("at least {MIN_SECRET_BYTES} bytes")));
        }
        return Ok(secret.into_bytes());
    }
    let jwt_secret = auth.secret.as_deref().ok_or_else(|| ConfigError::Missing("CURSOR_SECRET".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, jwt_secret);
    Ok(hmac::sign(&key, b"cursor-signing-key-v1").as_ref().to_vec())
}

/// AWS settings for local servers (DynamoDB Local, the local S3 server, the local gateway):
/// fixed region and local credentials, no lookup of either. Clients add their `endpoint_url`.
pub fn local_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            LOCAL_ACCESS_KEY,
            LOCAL_SECRET_KEY,
            None,
            None,
            "local",
        )))
        .build()
}

/// The key pair of the local servers. The local S3 server checks signatures made with it, as S3
/// does. Fixed, so servers and clients (functions, tests) agree without passing it around; not a
/// secret: it only opens localhost servers holding test data. DynamoDB Local refuses access keys
/// other than letters and digits.
pub const LOCAL_ACCESS_KEY: &str = "localaccesskey";
pub const LOCAL_SECRET_KEY: &str = "localsecretkey";

/// A client for DynamoDB Local.
pub fn local_dynamodb_client(endpoint: impl Into<String>) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&local_sdk_config()).endpoint_url(endpoint).build(),
    )
}

/// An HTTP area of this API: built once from the platform and its own settings; its routes
/// (with their OpenAPI description) are served by Lambda and hosted by the local gateway.
pub trait Area: Send + Sync + Sized + 'static {
    /// Whether a cold start opens the DynamoDB connection ahead of the first request.
    const WARM_UP_DYNAMODB: bool = true;
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError>;
    /// The area's routes, each described for OpenAPI.
    fn routes() -> OpenApiRouter<Arc<Self>>;
}

/// The router of a built area, wrapped by the shared pipeline: what Lambda runs.
pub fn router<A: Area>(area: A, platform: &Platform) -> Router {
    let router: Router<Arc<A>> = A::routes().into();
    crate::http::app(
        router.with_state(Arc::new(area)),
        platform.verifier.clone(),
        platform.credentials.clone(),
        platform.api_keys.clone(),
    )
    .layer(axum::Extension(platform.teams.clone()))
}

/// The OpenAPI description of an area's routes (no clients needed).
pub fn openapi<A: Area>() -> utoipa::openapi::OpenApi {
    A::routes().into_openapi()
}

/// A Lambda function fed by other events than HTTP requests (WebSocket routes, the `$connect`
/// authorizer, DynamoDB Streams): built once, then called with each typed event.
pub trait EventFunction: Send + Sync + Sized + 'static {
    /// Whether a cold start opens the DynamoDB connection ahead of the first event.
    const WARM_UP_DYNAMODB: bool = true;
    type Event: DeserializeOwned + Send;
    type Output: Serialize;
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError>;
    fn handle(&self, event: Self::Event) -> impl Future<Output = Result<Self::Output, lambda_runtime::Error>> + Send;
}

/// The whole of an event function's `main`, like [`run`] for HTTP areas.
pub async fn run_events<F: EventFunction>() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let env = Env::process();
    let function = match cold_start(&env, F::WARM_UP_DYNAMODB, F::build).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return Err(e.into());
        }
    };
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<F::Event>| async move {
        function.handle(event.payload).await
    }))
    .await
}

/// Configuration, clients and the function, then the DynamoDB warm-up (for functions that use
/// DynamoDB): what a cold start does before it asks the Runtime API for the first event.
async fn cold_start<F>(
    env: &Env,
    warm_up_dynamodb: bool,
    build: impl FnOnce(&Platform, &Env) -> Result<F, ConfigError>,
) -> Result<F, ConfigError> {
    prefer_ca_bundle_file();
    let platform = Platform::from_env(env).await?;
    let function = build(&platform, env)?;
    if warm_up_dynamodb {
        platform.warm_up().await;
    }
    Ok(function)
}

/// The system's CA bundles, in the order `openssl-probe` (which the SDK's TLS roots come from)
/// looks for them: Debian/Ubuntu, RHEL 7+, Amazon Linux (`provided.al2023`)/Fedora.
const CA_BUNDLE_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The SDK loads its TLS roots when it builds its first HTTPS connector (in
/// `aws_config::load_defaults` or the warm-up) from the system bundle file *and* every
/// certificate directory (`/etc/ssl/certs`, `/etc/pki/tls/certs`), parsing the same roots
/// several times over: about 2 ms of a cold start on Debian (hundreds of files). The bundle
/// holds every root the directories do (both are generated from the same store), so point
/// `SSL_CERT_FILE` at it and skip the directories, unless the environment already chose
/// (`SSL_CERT_FILE` or `SSL_CERT_DIR` set: left alone). Called before any client exists and
/// before any other task runs, so no thread reads the environment meanwhile.
fn prefer_ca_bundle_file() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if let Some(bundle) = CA_BUNDLE_FILES.iter().find(|f| std::path::Path::new(f).is_file()) {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}

/// JSON logs on stdout (CloudWatch), level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The whole of an HTTP function's `main`: configuration and clients once, then the Lambda
/// loop over the area's router. Configuration errors stop the cold start naming the variable.
pub async fn run<A: Area>() -> Result<(), lambda_http::Error> {
    init_logging();
    let env = Env::process();
    let router =
        match cold_start(&env, A::WARM_UP_DYNAMODB, |platform, env| Ok(router(A::build(platform, env)?, platform)))
            .await
        {
            Ok(router) => router,
            Err(e) => {
                tracing::error!(error = %e, "configuration error");
                return Err(e.into());
            }
        };
    lambda_http::run(router).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    async fn platform(endpoint: &str) -> Platform {
        let env = Env::from_map(HashMap::from([
            ("JWT_SECRET".to_owned(), "warm-up-test-secret-0123456789abcdef0123".to_owned()),
            ("DYNAMODB_ENDPOINT".to_owned(), endpoint.to_owned()),
            ("S3_ENDPOINT".to_owned(), endpoint.to_owned()),
        ]));
        Platform::from_env(&env).await.expect("platform builds")
    }

    #[tokio::test]
    async fn warm_up_against_a_closed_port_gives_up_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let platform = platform(&format!("http://127.0.0.1:{port}")).await;
        let started = Instant::now();
        platform.warm_up().await;
        assert!(started.elapsed() < WARM_UP_TIMEOUT, "no retries: took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn warm_up_against_a_silent_endpoint_stops_waiting_at_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        // Accepts connections and never answers.
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let platform = platform(&endpoint).await;
        let started = Instant::now();
        platform.warm_up().await;
        let took = started.elapsed();
        server.abort();
        assert!(took >= WARM_UP_TIMEOUT && took < WARM_UP_TIMEOUT * 3, "took {took:?}");
    }
}
