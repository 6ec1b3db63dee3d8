//! The local WebSocket API: what API Gateway does for the template's WebSocket API. It runs the
//! `$connect` authorizer and routes through the realtime function with the events API Gateway
//! sends, keeps the sockets, and serves the Management API (`POST /@connections/{id}`) that
//! the function pushes through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::local::{new_request_id, HostedFunction, LocalStack};

/// Where the local gateway serves the WebSocket API.
pub const PATH: &str = "/realtime";

struct Gateway {
    stack: Arc<LocalStack>,
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
}

impl Gateway {
    fn function(&self) -> Option<&HostedFunction> {
        let spec = self.stack.template.websocket.as_ref()?;
        self.stack.functions.iter().find(|f| f.spec.logical_id == spec.function)
    }
}

pub fn router(stack: Arc<LocalStack>) -> Router {
    let gateway = Arc::new(Gateway { stack, sockets: Mutex::new(HashMap::new()) });
    Router::new()
        .route(PATH, get(connect))
        .route("/@connections/{id}", get(connection_info).post(post_to_connection).delete(close_connection))
        .with_state(gateway)
}

fn new_connection_id() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    STANDARD.encode(bytes)
}

fn headers_json(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn request_context(route: &str, event_type: &str, connection_id: &str, authorizer: &Value) -> Value {
    let mut context = json!({
        "routeKey": route,
        "eventType": event_type,
        "connectionId": connection_id,
        "requestId": new_request_id(),
        "apiId": "local",
        "stage": "live",
        "domainName": "localhost",
        "messageDirection": "IN",
        "connectedAt": now_ms(),
    });
    if !authorizer.is_null() {
        context["authorizer"] = authorizer.clone();
    }
    context
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// `GET /realtime` with an upgrade: authorizer, then `$connect`, then the socket.
async fn connect(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(function) = gateway.function() else { return StatusCode::NOT_FOUND.into_response() };
    let connection_id = new_connection_id();
    let request = |authorizer: &Value| {
        json!({
            "headers": headers_json(&headers),
            "queryStringParameters": query,
            "requestContext": request_context("$connect", "CONNECT", &connection_id, authorizer),
            "isBase64Encoded": false,
        })
    };
    // The REQUEST authorizer: an Allow policy, or API Gateway answers 401 / 403.
    let mut authorizer_event = request(&Value::Null);
    authorizer_event["type"] = json!("REQUEST");
    authorizer_event["methodArn"] = json!("arn:aws:execute-api:us-east-1:000000000000:local/live/$connect");
    let policy = match function.call_event(authorizer_event).await {
        Ok(policy) => policy,
        Err(_) => return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
    };
    if policy.pointer("/policyDocument/Statement/0/Effect").and_then(Value::as_str) != Some("Allow") {
        return (StatusCode::FORBIDDEN, "Forbidden").into_response();
    }
    let mut authorizer = policy["context"].clone();
    authorizer["principalId"] = policy["principalId"].clone();

    let answer = function.call_event(request(&authorizer)).await;
    let status = answer.as_ref().ok().and_then(|a| a["statusCode"].as_u64()).unwrap_or(500);
    if status != 200 {
        return StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    }
    let echoed = answer
        .ok()
        .and_then(|a| a.pointer("/headers/Sec-WebSocket-Protocol").and_then(Value::as_str).map(str::to_owned));
    let upgrade = match echoed {
        Some(protocol) => upgrade.protocols([protocol]),
        None => upgrade,
    };
    upgrade.on_upgrade(move |socket| run_socket(gateway, socket, connection_id, authorizer))
}

/// Forwards pushes to the socket and client messages to `$default`; `$disconnect` at the end.
async fn run_socket(gateway: Arc<Gateway>, mut socket: WebSocket, connection_id: String, authorizer: Value) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    gateway.sockets.lock().expect("sockets lock").insert(connection_id.clone(), tx);
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Some(text) => if socket.send(Message::Text(text.into())).await.is_err() { break },
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(function) = gateway.function() {
                        let event = json!({
                            "requestContext": request_context("$default", "MESSAGE", &connection_id, &authorizer),
                            "body": text.as_str(),
                            "isBase64Encoded": false,
                        });
                        let _ = function.call_event(event).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    gateway.sockets.lock().expect("sockets lock").remove(&connection_id);
    if let Some(function) = gateway.function() {
        let event =
            json!({ "requestContext": request_context("$disconnect", "DISCONNECT", &connection_id, &authorizer) });
        let _ = function.call_event(event).await;
    }
}

/// The Management API's answer for a connection that is not open.
fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException"), ("content-type", "application/json")],
        r#"{"message":"Gone"}"#,
    )
        .into_response()
}

async fn post_to_connection(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>, body: Bytes) -> Response {
    let sender = gateway.sockets.lock().expect("sockets lock").get(&id).cloned();
    match sender {
        Some(tx) if tx.send(String::from_utf8_lossy(&body).into_owned()).is_ok() => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

async fn connection_info(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gateway.sockets.lock().expect("sockets lock").contains_key(&id) {
        true => (StatusCode::OK, [("content-type", "application/json")], json!({"connectionId": id}).to_string())
            .into_response(),
        false => gone(),
    }
}

async fn close_connection(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    // Dropping the sender ends the socket's task, which runs `$disconnect`.
    match gateway.sockets.lock().expect("sockets lock").remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => gone(),
    }
}
