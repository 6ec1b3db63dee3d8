//! Test harness: the real functions, configured from `template.yaml`, against the DynamoDB
//! Local that `infra/test` starts. Requests go through the same v2 event → `lambda_http`
//! conversion as in Lambda, or through the local gateway over real HTTP.

pub mod keys;

use std::{collections::BTreeMap, sync::Arc};

use lambda_http::{aws_lambda_events::apigw::ApiGatewayV2httpRequest, Body};
use local_stack::{
    local::{new_request_id, HttpCall, LocalSettings, LocalStack},
    s3_local::S3Local,
    tables,
};
use serde_json::Value;
use template::Template;

static TABLES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The local S3 server's event notifications go to the functions the template subscribes (the
/// upload cleanup) once for the whole test process, as S3 notifies each event once. On a thread
/// of its own: every test has its own runtime, whose tasks end with the test.
static S3_NOTIFICATIONS: std::sync::OnceLock<()> = std::sync::OnceLock::new();

fn deliver_s3_notifications(template: Template, dynamodb: String, s3: String) {
    S3_NOTIFICATIONS.get_or_init(|| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let stack = LocalStack::build(template, LocalSettings::development(dynamodb, s3))
                    .await
                    .expect("functions build");
                local_stack::s3_events::deliver(Arc::new(stack)).await
            })
        });
    });
}

fn endpoint(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with ./infra/test, which starts DynamoDB Local and S3")
    })
}

/// A user of the test: a unique id, so tests running in parallel never share a partition.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body with the per-request id blanked, for comparing two error answers.
    pub fn body_without_request_id(&self) -> String {
        let mut v = self.json();
        v["request_id"] = Value::Null;
        v.to_string()
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text());
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()), "problem carries the request id");
        body
    }
}

pub struct Harness {
    pub stack: Arc<LocalStack>,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A harness whose local settings `adjust` changes (e.g. to verify tokens from a JWKS URL).
    pub async fn with(adjust: impl FnOnce(&mut LocalSettings)) -> Self {
        let (dynamodb, s3) = (endpoint("DYNAMODB_ENDPOINT"), endpoint("S3_ENDPOINT"));
        let template = Template::load_default().expect("template.yaml parses");
        TABLES
            .get_or_init(|| async {
                let client = shared::runtime::local_dynamodb_client(dynamodb.clone());
                tables::ensure_all(&client, &template.tables).await.expect("tables are created");
                S3Local::ensure_buckets(&s3, &template.buckets).await.expect("buckets are created");
            })
            .await;
        deliver_s3_notifications(template.clone(), dynamodb.clone(), s3.clone());
        let mut settings = LocalSettings::development(dynamodb, s3);
        adjust(&mut settings);
        let stack = LocalStack::build(template, settings).await.expect("functions build");
        Self { stack: Arc::new(stack) }
    }

    pub fn user(&self, name: &str) -> User {
        let id = format!("{name}-{}", uuid::Uuid::now_v7().simple());
        User { token: self.stack.token(&id), id }
    }

    /// A user whose token carries `email`, verified (as the identity provider says) or not.
    pub fn user_with_email(&self, name: &str, email: &str, verified: bool) -> User {
        let id = format!("{name}-{}", uuid::Uuid::now_v7().simple());
        User { token: self.stack.token_with_email(&id, email, verified), id }
    }

    /// The identity the functions derive from `user`'s token (verified as they verify it).
    pub async fn identity(&self, user: &User) -> shared::Identity {
        let s = &self.stack.settings;
        let config = shared::AuthConfig {
            secret: Some(s.jwt_secret.clone().into_bytes()),
            jwks_url: None,
            algorithms: vec![jsonwebtoken::Algorithm::HS256],
            issuer: Some(s.issuer.clone()),
            audience: Some(s.audience.clone()),
            leeway: std::time::Duration::ZERO,
            jwks_min_refresh: std::time::Duration::ZERO,
            jwks_max_age: std::time::Duration::ZERO,
            jwks_timeout: std::time::Duration::ZERO,
        };
        shared::Verifier::new(config).unwrap().verify(&user.token).await.expect("the test user's token verifies")
    }

    /// Users' standing in the stack's profile table, as an operator's tool or the auth area
    /// changes it (no cache: every read is fresh).
    pub fn credentials(&self) -> shared::credentials::Credentials {
        let client = shared::runtime::local_dynamodb_client(self.stack.settings.dynamodb_endpoint.clone());
        let table = self.stack.template.table("UsersTable").expect("the template has UsersTable").logical_id.clone();
        shared::credentials::Credentials::new(
            client,
            table,
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(30 * 86_400),
        )
    }

    /// Waits out the local functions' revocation bound, after which every instance sees a change of
    /// standing.
    pub async fn past_the_revocation_bound() {
        let bound = std::time::Duration::from_secs(local_stack::local::LOCAL_REVOCATION_CACHE_SECONDS);
        tokio::time::sleep(bound + std::time::Duration::from_millis(100)).await;
    }

    pub fn auth(user: &User) -> (String, String) {
        ("authorization".into(), format!("Bearer {}", user.token))
    }

    /// Calls the function serving `method path?query` as Lambda would be called.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: Vec<(String, String)>,
        body: Option<&[u8]>,
    ) -> Reply {
        self.send_as(&new_request_id(), method, path_and_query, headers, body).await
    }

    /// [`Harness::send`] with a chosen API Gateway request id (to compare answers byte for byte).
    pub async fn send_as(
        &self,
        request_id: &str,
        method: &str,
        path_and_query: &str,
        headers: Vec<(String, String)>,
        body: Option<&[u8]>,
    ) -> Reply {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let call = HttpCall { method, raw_path: path, raw_query: query, headers, body };
        let answer = self.stack.handle_http(&call, request_id).await;
        Reply { status: answer.status.as_u16(), headers: answer.headers, body: answer.body }
    }

    /// Invokes one function with an API Gateway v2 event (e.g. from an `events/` fixture).
    pub async fn invoke(&self, binary: &str, event: &ApiGatewayV2httpRequest) -> Reply {
        let function = self.stack.function(binary).unwrap_or_else(|| panic!("no function {binary}"));
        let answer = function.invoke(event).await.unwrap_or_else(|e| panic!("{binary} failed: {e}"));
        let body = match answer.body {
            Some(Body::Text(t)) => t.into_bytes(),
            Some(Body::Binary(b)) => b,
            _ => Vec::new(),
        };
        Reply { status: answer.status_code as u16, headers: answer.headers, body }
    }

    /// A JSON request as `user` (or anonymous).
    pub async fn call(&self, user: Option<&User>, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![];
        if let Some(u) = user {
            headers.push(Self::auth(u));
        }
        let bytes = body.map(|b| {
            headers.push(("content-type".into(), "application/json".into()));
            b.to_string().into_bytes()
        });
        self.send(method, path, headers, bytes.as_deref()).await
    }

    pub async fn call_with(
        &self,
        user: &User,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut headers = vec![Self::auth(user), ("content-type".into(), "application/json".into())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.send(method, path, headers, bytes.as_deref()).await
    }

    /// Every item of a list, following `next_cursor`, with the page sizes seen.
    pub async fn list_all(&self, user: &User, path: &str, limit: u32) -> (Vec<Value>, Vec<usize>) {
        let (mut items, mut pages, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit={limit}&cursor={c}"),
                None => format!("{path}?limit={limit}"),
            };
            let reply = self.call(Some(user), "GET", &url, None).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let body = reply.json();
            let page = body["items"].as_array().unwrap().clone();
            pages.push(page.len());
            items.extend(page);
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return (items, pages),
            }
            assert!(pages.len() < 1000, "paging does not end");
        }
    }
}

/// The JSON body of an `events/` fixture, if it has one.
pub fn fixture_body(name: &str) -> Option<Value> {
    let path = local_stack::workspace_root().join("events").join(name);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    event["body"].as_str().map(|b| serde_json::from_str(b).expect("fixture body is JSON"))
}

/// Reads an `events/` fixture, applying `edit` to the JSON before it becomes an event.
pub fn fixture(name: &str, edit: impl FnOnce(&mut Value)) -> ApiGatewayV2httpRequest {
    let path = local_stack::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    edit(&mut event);
    serde_json::from_value(event).expect("fixture is an API Gateway v2 event")
}

/// All fixtures in `events/` with their route keys.
pub fn fixtures() -> BTreeMap<String, String> {
    let dir = local_stack::workspace_root().join("events");
    std::fs::read_dir(dir)
        .expect("events/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), v["routeKey"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// The API description, as the functions generate it.
pub fn openapi() -> Value {
    openapi_document::api_document()
}

/// Every operation of the API description as a route key (`GET /canvases/{id}`), with whether
/// it is public (`security: []`).
pub fn documented_routes() -> BTreeMap<String, bool> {
    let spec = openapi();
    let mut routes = BTreeMap::new();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for (method, op) in operations.as_object().expect("operations") {
            if op.get("responses").is_some() {
                let public = op.get("security").and_then(Value::as_array).is_some_and(Vec::is_empty);
                routes.insert(format!("{} {path}", method.to_uppercase()), public);
            }
        }
    }
    routes
}

/// What a public route answers to its documented example, with or without any token: 200, but
/// for the auth routes, whose examples name no account that can confirm or sign in (and whose
/// sign-up says 202 for every email).
pub fn public_example_status(route: &str) -> u16 {
    match route {
        "POST /auth/signup" => 202,
        "POST /auth/confirm" => 400,
        "POST /auth/login" | "POST /auth/refresh" => 401,
        _ => 200,
    }
}

/// The routes anyone may call, as the API description declares them.
pub fn public_routes() -> Vec<String> {
    documented_routes().into_iter().filter(|(_, public)| *public).map(|(route, _)| route).collect()
}
