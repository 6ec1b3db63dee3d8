//! Hosts every function of the template in one process, configured from its template
//! environment, and turns HTTP requests into the API Gateway HTTP API (payload v2) events that
//! Lambda would deliver: the handler code path is the one that runs in AWS.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use axum::Router;
use lambda_http::{
    aws_lambda_events::apigw::{
        ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
        ApiGatewayV2httpResponse,
    },
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    Body, IntoResponse as _, Request,
};
use serde_json::Value;
use shared::{Area, ConfigError, Env, EventFunction, Platform, TokenMinter};
use template::{EnvValue, FunctionSpec, HttpRoute, Template};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type EventFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
pub type EventHandler = Arc<dyn Fn(Value) -> EventFuture + Send + Sync>;
type Builder = fn(&Platform, &Env) -> Result<Hosted, ConfigError>;

use shared::budget::LAMBDA_RESPONSE_MAX_BYTES;

/// The revocation bound of the local stack's functions (AWS: the `RevocationCacheSeconds`
/// parameter).
pub const LOCAL_REVOCATION_CACHE_SECONDS: u64 = 1;

/// A function as the local stack runs it: an HTTP area's router, or an event function fed
/// JSON as Lambda feeds it.
#[derive(Clone)]
pub enum Hosted {
    Http(Router),
    Events(EventHandler),
}

fn hosted<A: Area>(platform: &Platform, env: &Env) -> Result<Hosted, ConfigError> {
    Ok(Hosted::Http(shared::runtime::router(A::build(platform, env)?, platform)))
}

/// An event function behind Lambda's JSON interface: the event is deserialized into the
/// function's event type and its answer serialized, as the runtime does.
fn hosted_events<F: EventFunction>(platform: &Platform, env: &Env) -> Result<Hosted, ConfigError> {
    let function = Arc::new(F::build(platform, env)?);
    Ok(Hosted::Events(Arc::new(move |event| {
        let function = function.clone();
        Box::pin(async move {
            let event: F::Event = serde_json::from_value(event).map_err(|e| format!("event does not parse: {e}"))?;
            let output = function.handle(event).await.map_err(|e| e.to_string())?;
            serde_json::to_value(output).map_err(|e| e.to_string())
        })
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
        "files-upload-cleanup" => Some(hosted_events::<files::UploadCleanup>),
        "account" => Some(hosted::<account::Account>),
        "orgs" => Some(hosted::<orgs::Orgs>),
        "auth" => Some(hosted::<auth::Auth>),
        "docs" => Some(hosted::<docs::Docs>),
        "realtime-authorizer" => Some(hosted_events::<realtime::Authorizer>),
        "realtime" => Some(hosted_events::<realtime::Routes>),
        "realtime-push" => Some(hosted_events::<realtime::Push>),
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
    /// moto's user pool: the functions verify its RS256 tokens (through its JWKS) as well as the
    /// HS256 ones minted here, both with the pool's issuer and audience; the auth area calls it.
    pub cognito: Option<crate::cognito_local::LocalPool>,
    pub development_mode: bool,
    /// Test hook: interceptors added to every function's DynamoDB client (e.g. to model what
    /// DynamoDB Local does not, like a lagging index). Lambda never sets them.
    pub test_dynamodb_interceptors: Vec<aws_sdk_dynamodb::config::SharedInterceptor>,
}

impl LocalSettings {
    /// Settings with a fresh random signing secret, and the user pool `local-stack exec` started
    /// when this process runs under it (`COGNITO_*`).
    pub fn development(dynamodb_endpoint: String, s3_endpoint: String) -> Self {
        let settings = Self::without_pool(dynamodb_endpoint, s3_endpoint);
        match crate::cognito_local::LocalPool::from_env() {
            Some(pool) => settings.with_pool(pool),
            None => settings,
        }
    }

    /// The functions trust this pool's tokens, and tokens minted here carry its issuer and
    /// audience (the app client's id).
    pub fn with_pool(mut self, pool: crate::cognito_local::LocalPool) -> Self {
        self.issuer = pool.issuer();
        self.audience = pool.client_id.clone();
        self.cognito = Some(pool);
        self
    }

    fn without_pool(dynamodb_endpoint: String, s3_endpoint: String) -> Self {
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
            cognito: None,
            development_mode: true,
            test_dynamodb_interceptors: Vec::new(),
        }
    }
}

pub struct HostedFunction {
    pub spec: FunctionSpec,
    pub hosted: Hosted,
}

impl HostedFunction {
    /// Invokes an HTTP function with an API Gateway v2 event, as Lambda does: the event is
    /// turned into the request `lambda_http` builds, and the answer into the JSON response
    /// Lambda returns (refused, as by Lambda, when over its payload limit).
    pub async fn invoke(&self, event: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, String> {
        let Hosted::Http(router) = &self.hosted else {
            return Err(format!("{} is not an HTTP function", self.spec.logical_id));
        };
        let request: Request =
            lambda_http::request::from_str(&serde_json::to_string(event).map_err(|e| e.to_string())?)
                .map_err(|e| format!("not an API Gateway v2 event: {e}"))?;
        let response = router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_response().await.into_parts();
        let mut answer = ApiGatewayV2httpResponse::default();
        answer.status_code = i64::from(parts.status.as_u16());
        answer.cookies =
            parts.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
        answer.headers = parts.headers;
        answer.headers.remove("set-cookie");
        (answer.is_base64_encoded, answer.body) = match body {
            Body::Empty => (false, None),
            text @ Body::Text(_) => (false, Some(text)),
            binary => (true, Some(binary)),
        };
        let size = serde_json::to_vec(&answer).map_err(|e| e.to_string())?.len();
        if size > LAMBDA_RESPONSE_MAX_BYTES {
            return Err(format!(
                "Response payload size exceeded maximum allowed payload size ({LAMBDA_RESPONSE_MAX_BYTES} bytes): {size}"
            ));
        }
        Ok(answer)
    }

    /// Calls an event function with an event's JSON.
    pub async fn call_event(&self, event: Value) -> Result<Value, String> {
        match &self.hosted {
            Hosted::Events(handler) => handler(event).await,
            Hosted::Http(_) => Err(format!("{} is not an event function", self.spec.logical_id)),
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
    // Revocation reaches other instances within this bound: short locally, so tests need not wait.
    parameters.insert("RevocationCacheSeconds".into(), LOCAL_REVOCATION_CACHE_SECONDS.to_string());
    let (secret, jwks, algorithms) = match (&settings.jwks_url, &settings.cognito) {
        (Some(url), _) => (String::new(), url.clone(), "RS256,ES256"),
        // The pool's tokens (RS256) and `/dev/token`'s (HS256) at once.
        (None, Some(pool)) => (settings.jwt_secret.clone(), pool.jwks_url(), "HS256,RS256"),
        (None, None) => (settings.jwt_secret.clone(), String::new(), "HS256"),
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
        if let Some(v) = resolve_value(value, template, settings, &resolve_ref, &spec.logical_id, key) {
            env.insert(key.clone(), v);
        }
    }
    if settings.jwks_url.is_some() {
        // What Secrets Manager provides in AWS.
        env.insert("CURSOR_SECRET".into(), settings.jwt_secret.clone());
    }
    if let Some(pool) = &settings.cognito {
        // `!Ref UserPool` and `!Ref UserPoolClient` name moto's pool and client locally.
        for (name, value) in pool.vars() {
            if name == crate::cognito_local::LocalPool::ENDPOINT_VAR || spec.environment.contains_key(name) {
                env.insert(name.into(), value.to_owned());
            }
        }
    }
    env.insert("DYNAMODB_ENDPOINT".into(), settings.dynamodb_endpoint.clone());
    env.insert("S3_ENDPOINT".into(), settings.s3_endpoint.clone());
    env.insert("DEVELOPMENT_MODE".into(), settings.development_mode.to_string());
    env
}

/// One environment value as CloudFormation would resolve it, or `None` when it has no local
/// equivalent (logged, so a missing variable is easy to trace).
fn resolve_value(
    value: &EnvValue,
    template: &Template,
    settings: &LocalSettings,
    resolve_ref: &dyn Fn(&str) -> Option<String>,
    function: &str,
    key: &str,
) -> Option<String> {
    let resolve = |v: &EnvValue| resolve_value(v, template, settings, resolve_ref, function, key);
    match value {
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
        EnvValue::Sub(s) => Some(substitute(s, resolve_ref)),
        EnvValue::If { condition, then, otherwise } => match template.holds(condition, &resolve) {
            Ok(true) => resolve(then),
            Ok(false) => resolve(otherwise),
            Err(error) => {
                tracing::warn!(function, key, %error, "condition not resolvable locally");
                None
            }
        },
        EnvValue::Unsupported(raw) => {
            tracing::warn!(function, key, raw, "environment value not resolvable locally");
            None
        }
    }
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
            let mut platform = Platform::from_env(&env).await.map_err(|e| format!("{}: {e}", spec.logical_id))?;
            if !settings.test_dynamodb_interceptors.is_empty() {
                let mut config = platform.dynamodb.config().to_builder();
                for interceptor in &settings.test_dynamodb_interceptors {
                    config.push_interceptor(interceptor.clone());
                }
                platform.set_dynamodb(aws_sdk_dynamodb::Client::from_conf(config.build()));
            }
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

    /// The function and route that serve `method path`, with the path parameters, as API
    /// Gateway routes: exact segments, `{name}` for one segment, `{name+}` for the rest.
    /// Without a match, the `$default` route's function gets the request, as in API Gateway.
    pub fn route(&self, method: &str, path: &str) -> Option<(&HostedFunction, &HttpRoute, BTreeMap<String, String>)> {
        let matched = self.functions.iter().find_map(|f| {
            f.spec.routes.iter().filter(|r| !r.is_default()).find_map(|r| {
                if r.method != method && r.method != "ANY" {
                    return None;
                }
                match_path(&r.path, path).map(|params| (f, r, params))
            })
        });
        matched.or_else(|| {
            self.functions
                .iter()
                .find_map(|f| f.spec.routes.iter().find(|r| r.is_default()).map(|r| (f, r, BTreeMap::new())))
        })
    }

    /// What API Gateway answers to one HTTP request: the route's function invoked with the v2
    /// event, or API Gateway's own answers (no route: 404; a failed invocation: 500).
    pub async fn handle_http(&self, call: &HttpCall<'_>, request_id: &str) -> GatewayAnswer {
        let Some((function, route, params)) = self.route(call.method, call.raw_path) else {
            return GatewayAnswer::gateway(StatusCode::NOT_FOUND, "Not Found");
        };
        let event = apigw_v2_event(call, route, &params, request_id);
        match function.invoke(&event).await {
            Ok(answer) => GatewayAnswer::from_lambda(answer),
            Err(e) => {
                tracing::error!(function = %function.spec.logical_id, error = %e, "invocation failed");
                GatewayAnswer::gateway(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }

    /// A signed token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.minter.mint(user, Duration::from_secs(3600))
    }

    /// A signed token for `user` carrying an email address, verified or not, for an hour.
    pub fn token_with_email(&self, user: &str, email: &str, verified: bool) -> String {
        self.minter.mint_with_email(user, Some((email, verified)), Duration::from_secs(3600))
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

/// An HTTP answer as API Gateway sends it to the client.
#[derive(Debug)]
pub struct GatewayAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl GatewayAnswer {
    /// API Gateway's own answer, e.g. `{"message":"Not Found"}`.
    fn gateway(status: StatusCode, message: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Self { status, headers, body: serde_json::json!({ "message": message }).to_string().into_bytes() }
    }

    fn from_lambda(answer: ApiGatewayV2httpResponse) -> Self {
        let status = StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = answer.headers;
        for cookie in &answer.cookies {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append("set-cookie", v);
            }
        }
        let body = match answer.body {
            Some(Body::Text(text)) => text.into_bytes(),
            Some(Body::Binary(bytes)) => bytes,
            _ => Vec::new(),
        };
        Self { status, headers, body }
    }
}

/// Matches a template route path against a request path, percent-decoding the parameters.
pub fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|c| c.into_owned());
    let mut params = BTreeMap::new();
    let mut want = pattern.trim_end_matches('/').split('/');
    let mut have = path.trim_end_matches('/').split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with("+}") && !h.is_empty() => {
                let rest: Vec<&str> = std::iter::once(h).chain(have.by_ref()).collect();
                params.insert(w[1..w.len() - 2].to_owned(), decode(&rest.join("/"))?);
                return want.next().is_none().then_some(params);
            }
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') && !h.is_empty() => {
                params.insert(w[1..w.len() - 1].to_owned(), decode(h)?);
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

/// Builds the API Gateway HTTP API v2 event for a matched route.
pub fn apigw_v2_event(
    call: &HttpCall<'_>,
    route: &HttpRoute,
    params: &BTreeMap<String, String>,
    request_id: &str,
) -> ApiGatewayV2httpRequest {
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &call.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
            continue;
        };
        // API Gateway joins repeated headers with commas.
        let joined = match headers.get(&name) {
            Some(existing) => HeaderValue::from_bytes(&[existing.as_bytes(), b",", value.as_bytes()].concat()).ok(),
            None => Some(value),
        };
        if let Some(v) = joined {
            headers.insert(name, v);
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let (body, is_base64) = match call.body {
        None | Some([]) => (None, false),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (Some(text.to_owned()), false),
            Err(_) => {
                use base64::Engine;
                (Some(base64::engine::general_purpose::STANDARD.encode(bytes)), true)
            }
        },
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::GET);
    http.path = Some(call.raw_path.to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some("127.0.0.1".into());
    http.user_agent = headers.get("user-agent").and_then(|h| h.to_str().ok()).map(str::to_owned);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route.key());
    context.account_id = Some("000000000000".into());
    context.stage = Some("$default".into());
    context.request_id = Some(request_id.to_owned());
    context.apiid = Some("local".into());
    context.domain_prefix = Some(host.split('.').next().unwrap_or("localhost").to_owned());
    context.domain_name = Some(host);
    context.time = now
        .format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"))
        .ok();
    context.time_epoch = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    context.http = http;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route.key());
    event.raw_path = Some(call.raw_path.to_owned());
    event.raw_query_string = Some(call.raw_query.to_owned());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = query_map(call.raw_query);
    event.path_parameters = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64;
    event
}

/// The query string as API Gateway passes it in `queryStringParameters` (decoded; repeated
/// names joined by commas).
fn query_map(raw: &str) -> lambda_http::aws_lambda_events::query_map::QueryMap {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        joined.entry(decode(name)).and_modify(|v| v.push_str(&format!(",{}", decode(value)))).or_insert(decode(value));
    }
    joined.into_iter().map(|(k, v)| (k, vec![v])).collect::<std::collections::HashMap<_, _>>().into()
}

/// A request id in API Gateway's style.
pub fn new_request_id() -> String {
    shared::item::new_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_api_gateway() {
        let p = match_path("/canvases/{id}", "/canvases/abc").unwrap();
        assert_eq!(p["id"], "abc");
        assert!(match_path("/canvases/{id}", "/canvases").is_none());
        assert!(match_path("/canvases/{id}", "/canvases/").is_none());
        assert!(match_path("/canvases/{id}", "/canvases/a/b").is_none());
        assert!(match_path("/canvases", "/canvases/").is_some());
        assert_eq!(match_path("/c/{id}", "/c/a%20b").unwrap()["id"], "a b");
        assert!(match_path("/c/{id}", "/c/%ff").is_none());
        assert_eq!(match_path("/docs/{proxy+}", "/docs/a/b.css").unwrap()["proxy"], "a/b.css");
        assert!(match_path("/docs/{proxy+}", "/docs").is_none());
    }
}
