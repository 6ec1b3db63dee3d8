//! A counting proxy in front of DynamoDB Local: it forwards every call unchanged except that
//! it asks for `ReturnConsumedCapacity: INDEXES` (table and index capacity), and records each
//! call's operation and the capacity DynamoDB reports. The functions are unchanged: only their
//! `DYNAMODB_ENDPOINT` points here. (DynamoDB Local does not check request signatures, so the
//! added field does not break the SigV4 signature.)

use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde_json::Value;

use crate::BoxError;

#[derive(Clone, Debug)]
pub struct Call {
    pub operation: String,
    pub status: u16,
    /// Capacity units DynamoDB reports consumed (table and indexes), if any.
    pub capacity: f64,
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<Call>>,
}

/// Operations that accept `ReturnConsumedCapacity`.
const CAPACITY_OPERATIONS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

fn capacity_units(consumed: &Value) -> f64 {
    match consumed {
        Value::Array(all) => all.iter().map(capacity_units).sum(),
        Value::Object(one) => one.get("CapacityUnits").and_then(Value::as_f64).unwrap_or(0.0),
        _ => 0.0,
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let mut body = body.to_vec();
    if CAPACITY_OPERATIONS.contains(&operation.as_str()) {
        if let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) {
            request.insert("ReturnConsumedCapacity".into(), Value::String("INDEXES".into()));
            body = serde_json::to_vec(&request).expect("JSON object serialises");
        }
    }
    let mut upstream = proxy.client.post(&proxy.upstream).body(body);
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding" | "date" | "server") {
            out_headers.insert(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    let capacity = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("ConsumedCapacity").map(capacity_units))
        .unwrap_or(0.0);
    proxy.calls.lock().expect("not poisoned").push(Call { operation, status: status.as_u16(), capacity });
    (StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY), out_headers, bytes).into_response()
}

pub struct CountingProxy {
    pub endpoint: String,
    proxy: Arc<Proxy>,
    server: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Result<Self, BoxError> {
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new().route("/", post(forward)).with_state(proxy.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { endpoint, proxy, server })
    }

    /// The calls recorded since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.proxy.calls.lock().expect("not poisoned"))
    }

    pub fn stop(self) {
        self.server.abort();
    }
}
