//! The local WebSocket API: what API Gateway does for the template's WebSocket API. It calls
//! the `$connect` authorizer's function and the routes' function with the typed events API
//! Gateway sends, keeps the sockets, and serves the Management API (`POST /@connections/{id}`)
//! that the functions push through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use aws_lambda_events::{
    apigw::{
        ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerRequestTypeRequestContext,
        ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
        ApiGatewayWebsocketProxyRequestContext,
    },
    iam::IamPolicyEffect,
};
use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path, Query, State,
    },
    http::{header::SEC_WEBSOCKET_PROTOCOL, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::local::{new_request_id, HostedFunction, LocalStack};

/// Where the local gateway serves the WebSocket API.
pub const PATH: &str = "/realtime";
const API_ID: &str = "local";

struct Gateway {
    stack: Arc<LocalStack>,
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
}

/// An open connection, as API Gateway remembers it for its events.
struct Connection {
    id: String,
    connected_at: i64,
    /// What the authorizer answered (its context and `principalId`): every route event carries it.
    authorizer: HashMap<String, Value>,
}

impl Gateway {
    fn hosted(&self, logical_id: &str) -> Option<&HostedFunction> {
        self.stack.functions.iter().find(|f| f.spec.logical_id == logical_id)
    }

    fn routes(&self) -> Option<&HostedFunction> {
        self.hosted(&self.stack.template.websocket.as_ref()?.function)
    }

    fn authorizer(&self) -> Option<&HostedFunction> {
        self.hosted(self.stack.template.websocket.as_ref()?.authorizer.as_deref()?)
    }

    fn stage(&self) -> String {
        self.stack.template.websocket.as_ref().map(|ws| ws.stage.clone()).unwrap_or_default()
    }

    /// The REQUEST authorizer's verdict: its context for the connection's events, or the answer
    /// API Gateway gives the client (401 for the error `Unauthorized`, 403 for a Deny, else 500).
    /// Without an authorizer every connection is let in, with an empty context.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        query: HashMap<String, String>,
    ) -> Result<HashMap<String, Value>, Response> {
        let Some(function) = self.authorizer() else { return Ok(HashMap::new()) };
        let mut context = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
        context.apiid = Some(API_ID.to_owned());
        context.stage = Some(self.stage());
        context.request_id = Some(new_request_id());
        let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        event.type_ = Some("REQUEST".to_owned());
        event.method_arn =
            Some(format!("arn:aws:execute-api:us-east-1:000000000000:{API_ID}/{}/$connect", self.stage()));
        event.headers = headers.clone();
        event.query_string_parameters = query.into();
        event.request_context = context;
        let response: ApiGatewayCustomAuthorizerResponse = match call(function, &event).await {
            Ok(response) => response,
            Err(e) if e == "Unauthorized" => return Err((StatusCode::UNAUTHORIZED, "Unauthorized").into_response()),
            Err(e) => {
                tracing::warn!(error = %e, "websocket authorizer failed");
                return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        };
        let statements = &response.policy_document.statement;
        let allowed = statements.iter().any(|s| s.effect == IamPolicyEffect::Allow)
            && !statements.iter().any(|s| s.effect == IamPolicyEffect::Deny);
        if !allowed {
            return Err((StatusCode::FORBIDDEN, "Forbidden").into_response());
        }
        let mut fields: HashMap<String, Value> = match response.context {
            Value::Object(context) => context.into_iter().collect(),
            _ => HashMap::new(),
        };
        if let Some(principal) = response.principal_id {
            fields.insert("principalId".to_owned(), json!(principal));
        }
        Ok(fields)
    }

    /// A route event of `connection`, as API Gateway sends it to the integration.
    fn route_event(&self, connection: &Connection, route: &str, event_type: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut context = ApiGatewayWebsocketProxyRequestContext::default();
        context.route_key = Some(route.to_owned());
        context.event_type = Some(event_type.to_owned());
        context.connection_id = Some(connection.id.clone());
        context.request_id = Some(new_request_id());
        context.apiid = Some(API_ID.to_owned());
        context.stage = Some(self.stage());
        context.domain_name = Some("localhost".to_owned());
        context.message_direction = Some("IN".to_owned());
        context.connected_at = connection.connected_at;
        context.request_time_epoch = now_ms();
        context.authorizer.fields = connection.authorizer.clone();
        let mut event = ApiGatewayWebsocketProxyRequest::default();
        event.request_context = context;
        event
    }

    /// Calls the routes' function, as the integration does.
    async fn route(&self, event: ApiGatewayWebsocketProxyRequest) -> Result<ApiGatewayProxyResponse, String> {
        let function = self.routes().ok_or("the WebSocket API has no routes function")?;
        call(function, &event).await
    }
}

/// Calls an event function as Lambda does: the typed event as JSON in, the typed answer out.
async fn call<R: DeserializeOwned>(function: &HostedFunction, event: &impl Serialize) -> Result<R, String> {
    let answer = function.call_event(serde_json::to_value(event).map_err(|e| e.to_string())?).await?;
    serde_json::from_value(answer).map_err(|e| format!("{}: answer does not parse: {e}", function.spec.logical_id))
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

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// `GET /realtime` with an upgrade: authorizer, then `$connect`, then the socket.
async fn connect(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if gateway.routes().is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let authorizer = match gateway.authorize(&headers, query.clone()).await {
        Ok(fields) => fields,
        Err(refused) => return refused,
    };
    let connection = Connection { id: new_connection_id(), connected_at: now_ms(), authorizer };
    let mut event = gateway.route_event(&connection, "$connect", "CONNECT");
    event.headers = headers;
    event.query_string_parameters = query.into();
    let answer = match gateway.route(event).await {
        Ok(answer) if answer.status_code == 200 => answer,
        Ok(answer) => {
            let status = u16::try_from(answer.status_code).ok().and_then(|s| StatusCode::from_u16(s).ok());
            return status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "$connect failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let echoed = answer.headers.get(SEC_WEBSOCKET_PROTOCOL).and_then(|p| p.to_str().ok()).map(str::to_owned);
    let upgrade = match echoed {
        Some(protocol) => upgrade.protocols([protocol]),
        None => upgrade,
    };
    upgrade.on_upgrade(move |socket| run_socket(gateway, socket, connection))
}

/// Forwards pushes to the socket and client messages to `$default`; `$disconnect` at the end.
async fn run_socket(gateway: Arc<Gateway>, mut socket: WebSocket, connection: Connection) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    gateway.sockets.lock().expect("sockets lock").insert(connection.id.clone(), tx);
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Some(text) => if socket.send(Message::Text(text.into())).await.is_err() { break },
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let mut event = gateway.route_event(&connection, "$default", "MESSAGE");
                    event.body = Some(text.as_str().to_owned());
                    if let Err(e) = gateway.route(event).await {
                        tracing::warn!(error = %e, "$default failed");
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    gateway.sockets.lock().expect("sockets lock").remove(&connection.id);
    if let Err(e) = gateway.route(gateway.route_event(&connection, "$disconnect", "DISCONNECT")).await {
        tracing::warn!(error = %e, "$disconnect failed");
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
