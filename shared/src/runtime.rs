//! What a function builds once per cold start, and the Lambda entry point every `main.rs` calls.

use std::{future::Future, sync::Arc};

use aws_lc_rs::hmac;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use lambda_http::{service_fn, Body, Request, Response};

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
    /// AWS settings from the environment; `None` when every service has a local endpoint.
    sdk_config: Option<aws_config::SdkConfig>,
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
            (Some(_), Some(_)) => None,
            _ => Some(aws_config::load_defaults(BehaviorVersion::latest()).await),
        };
        let dynamodb = match (dynamodb_endpoint, &sdk_config) {
            (Some(url), _) => local_dynamodb_client(url),
            (None, Some(sdk)) => aws_sdk_dynamodb::Client::new(sdk),
            (None, None) => unreachable!("sdk config is loaded when an endpoint is missing"),
        };
        Ok(Self { verifier, dynamodb, cursors, development_mode, sdk_config, s3_endpoint })
    }

    /// A repository of user-owned items over this platform's DynamoDB client and cursor key.
    pub fn store(&self, collection: crate::store::Collection) -> crate::store::UserStore {
        crate::store::UserStore::new(self.dynamodb.clone(), collection, self.cursors.clone())
    }

    /// A client for the API Gateway Management API of a WebSocket API (`endpoint` is
    /// `https://<api-id>.execute-api.<region>.amazonaws.com/<stage>`, or the local gateway).
    #[cfg(feature = "realtime")]
    pub fn management(&self, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        let config = match &self.sdk_config {
            Some(sdk) => aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(endpoint).build(),
            None => aws_sdk_apigatewaymanagement::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("local", "local", None, None, "local-gateway"))
                .endpoint_url(endpoint)
                .build(),
        };
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
    }

    /// The S3 client, built from the settings loaded at cold start.
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> aws_sdk_s3::Client {
        match (&self.s3_endpoint, &self.sdk_config) {
            (Some(url), _) => crate::objects::local_s3_client(url),
            (None, Some(sdk)) => aws_sdk_s3::Client::new(sdk),
            (None, None) => unreachable!("sdk config is loaded when an endpoint is missing"),
        }
    }
}

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

/// A client for DynamoDB Local: no AWS account needed, fixed region and dummy credentials,
/// and no lookup of either.
pub fn local_dynamodb_client(endpoint: String) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "dynamodb-local"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A Lambda function of this API: built once from the platform and its own settings, then
/// called for every request. The local gateway hosts the same type.
pub trait Function: Send + Sync + Sized + 'static {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError>;
    fn handle(&self, request: Request) -> impl Future<Output = Response<Body>> + Send;
}

/// A Lambda function fed by other events than HTTP requests (WebSocket routes, DynamoDB
/// Streams): built once, then called with each event's JSON.
pub trait EventFunction: Send + Sync + Sized + 'static {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError>;
    fn handle(&self, event: serde_json::Value) -> impl Future<Output = Result<serde_json::Value, String>> + Send;
}

/// The whole of an event function's `main`, like [`run`] for HTTP functions.
pub async fn run_events<F: EventFunction>() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let env = Env::process();
    let function = match Platform::from_env(&env).await.and_then(|platform| F::build(&platform, &env)) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return Err(e.into());
        }
    };
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            function.handle(event.payload).await.map_err(lambda_runtime::Error::from)
        },
    ))
    .await
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

/// The whole of a function's `main`: configuration and clients once, then the Lambda loop.
/// Configuration errors stop the cold start with a message naming the variable.
pub async fn run<F: Function>() -> Result<(), lambda_http::Error> {
    init_logging();
    let env = Env::process();
    let function = match Platform::from_env(&env).await.and_then(|platform| F::build(&platform, &env)) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return Err(e.into());
        }
    };
    let function = &function;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(function.handle(request).await)
    }))
    .await
}
