//! Hosts every function of the template in one process, configured from its template
//! environment, and turns HTTP requests into the API Gateway HTTP API (payload v2) events that
//! Lambda would deliver: the handler code path is the one that runs in AWS.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::{ConfigError, Env, EventFunction, Function, Platform, TokenMinter};

use template::{EnvValue, FunctionSpec, HttpRoute, Template};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type Handler = Arc<dyn Fn(Request) -> HandlerFuture + Send + Sync>;
pub type EventFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
pub type EventHandler = Arc<dyn Fn(Value) -> EventFuture + Send + Sync>;
type Builder = fn(&Platform, &Env) -> Result<Hosted, ConfigError>;

/// A function as the local stack runs it: fed HTTP requests, or other events' JSON.
#[derive(Clone)]
pub enum Hosted {
    Http(Handler),
    Events(EventHandler),
}

fn hosted<F: Function>(platform: &Platform, env: &Env) -> Result<Hosted, ConfigError> {
    let function = Arc::new(F::build(platform, env)?);
    Ok(Hosted::Http(Arc::new(move |request| {
        let function = function.clone();
        Box::pin(async move { function.handle(request).await })
    })))
}

fn hosted_events<F: EventFunction>(platform: &Platform, env: &Env) -> Result<Hosted, ConfigError> {
    let function = Arc::new(F::build(platform, env)?);
    Ok(Hosted::Events(Arc::new(move |event| {
        let function = function.clone();
        Box::pin(async move { function.handle(event).await })
    })))
}

/// The function crate behind each template binary. A template function missing here makes the
/// local stack refuse to start, so the gateway can never silently drop a route.
fn builder(binary: &str) -> Option<Builder> {
    match binary {
        "canvases" => Some(hosted::<canvases::Canvases>),
        "sessions" => Some(hosted::<sessions::Sessions>),
        "workflows" => Some(hosted::<workflows::Workflows>),
        "files" => Some(hosted::<files::Files>),
        "account" => Some(hosted::<account::Account>),
        "realtime" => Some(hosted_events::<realtime::Realtime>),
        _ => None,
    }
}

/// Local values for what AWS would provide: the DynamoDB endpoint and the token settings.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    pub dynamodb_endpoint: String,
    pub s3_endpoint: String,
    /// The local gateway's URL, where functions reach the WebSocket Management API.
    pub gateway_url: Option<String>,
    pub jwt_secret: String,
    /// When set, functions verify RS256/ES256 tokens from this JWKS URL instead of HS256
    /// tokens signed with `jwt_secret` (which then only signs cursors).
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: String,
    pub development_mode: bool,
}

impl LocalSettings {
    /// Settings with a fresh random signing secret: tokens are only ever minted locally.
    pub fn development(dynamodb_endpoint: String, s3_endpoint: String) -> Self {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("system randomness");
        Self {
            dynamodb_endpoint,
            s3_endpoint,
            gateway_url: None,
            jwt_secret: secret.iter().map(|b| format!("{b:02x}")).collect(),
            jwks_url: None,
            issuer: "http://localhost/dev".into(),
            audience: "local-api".into(),
            development_mode: true,
        }
    }
}

pub struct HostedFunction {
    pub spec: FunctionSpec,
    pub hosted: Hosted,
}

impl HostedFunction {
    /// Calls an HTTP function with a request, as API Gateway's Lambda integration does.
    pub async fn call(&self, request: Request) -> Response<Body> {
        match &self.hosted {
            Hosted::Http(handler) => handler(request).await,
            Hosted::Events(_) => panic!("{} is not an HTTP function", self.spec.logical_id),
        }
    }

    /// Calls an event function with an event's JSON.
    pub async fn call_event(&self, event: Value) -> Result<Value, String> {
        match &self.hosted {
            Hosted::Events(handler) => handler(event).await,
            Hosted::Http(_) => panic!("{} is not an event function", self.spec.logical_id),
        }
    }
}

pub struct LocalStack {
    pub template: Template,
    pub functions: Vec<HostedFunction>,
    pub minter: TokenMinter,
    pub settings: LocalSettings,
}

/// A function's environment as CloudFormation would resolve it, with local values:
/// tables are named by their logical id, parameters take local settings or their defaults.
pub fn local_environment(
    spec: &FunctionSpec,
    template: &Template,
    settings: &LocalSettings,
) -> BTreeMap<String, String> {
    let mut parameters = template.parameters.clone();
    parameters.insert("JwtIssuer".into(), settings.issuer.clone());
    parameters.insert("JwtAudience".into(), settings.audience.clone());
    let (secret, jwks, algorithms) = match &settings.jwks_url {
        None => (settings.jwt_secret.clone(), String::new(), "HS256"),
        Some(url) => (String::new(), url.clone(), "RS256,ES256"),
    };
    parameters.insert("JwtSecret".into(), secret);
    parameters.insert("JwksUrl".into(), jwks);
    parameters.insert("JwtAlgorithms".into(), algorithms.into());
    let resolve_ref = |name: &str| -> Option<String> {
        template
            .table(name)
            .map(|t| t.logical_id.clone())
            .or_else(|| template.buckets.iter().find(|b| *b == name).map(|b| crate::s3_local::bucket_name(b)))
            .or_else(|| parameters.get(name).cloned())
    };
    let mut env = BTreeMap::new();
    for (key, value) in &spec.environment {
        let resolved = match value {
            EnvValue::Literal(s) => Some(s.clone()),
            EnvValue::Ref(name) => resolve_ref(name),
            // Secrets Manager does not exist locally: the function derives what it needs.
            EnvValue::Sub(s) if s.contains("{{resolve:") => None,
            // The WebSocket API's Management endpoint is the local gateway.
            EnvValue::Sub(s)
                if template.websocket.as_ref().is_some_and(|ws| s.contains(&format!("${{{}}}", ws.api_logical_id))) =>
            {
                Some(settings.gateway_url.clone().unwrap_or_else(|| "http://127.0.0.1:3000".into()))
            }
            EnvValue::Sub(s) => Some(substitute(s, &resolve_ref)),
            EnvValue::Unsupported(raw) => {
                tracing::warn!(function = %spec.logical_id, key, raw, "environment value not resolvable locally");
                None
            }
        };
        if let Some(v) = resolved {
            env.insert(key.clone(), v);
        }
    }
    if settings.jwks_url.is_some() {
        // What Secrets Manager provides in AWS.
        env.insert("CURSOR_SECRET".into(), settings.jwt_secret.clone());
    }
    env.insert("DYNAMODB_ENDPOINT".into(), settings.dynamodb_endpoint.clone());
    env.insert("S3_ENDPOINT".into(), settings.s3_endpoint.clone());
    env.insert("DEVELOPMENT_MODE".into(), settings.development_mode.to_string());
    env
}

fn substitute(template: &str, resolve: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else { break };
        let name = &rest[start + 2..start + end];
        out.push_str(&resolve(name).unwrap_or_default());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

impl LocalStack {
    pub async fn build(template: Template, settings: LocalSettings) -> Result<Self, BoxError> {
        let mut functions = Vec::new();
        for spec in &template.functions {
            let build = builder(&spec.binary).ok_or_else(|| {
                format!(
                    "template function {} (binary {}) has no handler in infra/src/local.rs",
                    spec.logical_id, spec.binary
                )
            })?;
            let env = Env::from_map(local_environment(spec, &template, &settings).into_iter().collect());
            let platform = Platform::from_env(&env).await.map_err(|e| format!("{}: {e}", spec.logical_id))?;
            let hosted = build(&platform, &env).map_err(|e| format!("{}: {e}", spec.logical_id))?;
            functions.push(HostedFunction { spec: spec.clone(), hosted });
        }
        let auth = shared::AuthConfig {
            secret: Some(settings.jwt_secret.clone().into_bytes()),
            jwks_url: None,
            algorithms: vec![],
            issuer: Some(settings.issuer.clone()),
            audience: Some(settings.audience.clone()),
            leeway: Duration::ZERO,
            jwks_min_refresh: Duration::ZERO,
            jwks_max_age: Duration::ZERO,
            jwks_timeout: Duration::ZERO,
        };
        let minter = TokenMinter::from_config(&auth).expect("local settings always have a secret");
        Ok(Self { template, functions, minter, settings })
    }

    pub fn function(&self, binary: &str) -> Option<&HostedFunction> {
        self.functions.iter().find(|f| f.spec.binary == binary)
    }

    /// The function and route that serve `method path`, with the path parameters.
    pub fn route(&self, method: &str, path: &str) -> Option<(&HostedFunction, &HttpRoute, BTreeMap<String, String>)> {
        self.functions.iter().find_map(|f| {
            f.spec.routes.iter().find_map(|r| {
                if r.method != method {
                    return None;
                }
                shared::http::match_path(&r.path, path).map(|params| (f, r, params))
            })
        })
    }

    /// A signed token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.minter.mint(user, Duration::from_secs(3600))
    }
}

/// An HTTP request as API Gateway hands it to Lambda with payload format 2.0.
pub struct HttpCall<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Option<&'a [u8]>,
}

/// Builds the API Gateway HTTP API v2 event JSON for a matched route.
pub fn apigw_v2_event(
    call: &HttpCall<'_>,
    route: &HttpRoute,
    params: &BTreeMap<String, String>,
    request_id: &str,
) -> Value {
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &call.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| json!(c.trim())));
            continue;
        }
        // API Gateway joins repeated headers with commas.
        match headers.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                headers.insert(name, json!(value));
            }
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let (body, is_base64) = match call.body {
        None | Some([]) => (Value::Null, false),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (json!(text), false),
            Err(_) => {
                use base64::Engine;
                (json!(base64::engine::general_purpose::STANDARD.encode(bytes)), true)
            }
        },
    };
    let host = headers.get("host").and_then(Value::as_str).unwrap_or("localhost").to_owned();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": call.raw_path,
        "rawQueryString": call.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": call.method,
                "path": call.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").cloned().unwrap_or(json!("")),
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": now.format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000")).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        },
        "isBase64Encoded": is_base64,
    });
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The `lambda_http` request Lambda would build from this event.
pub fn request_from_event(event: &Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

/// A request id in API Gateway's style.
pub fn new_request_id() -> String {
    shared::item::new_id()
}
