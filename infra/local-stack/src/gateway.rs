//! The local API gateway: an HTTP server on localhost that routes like API Gateway HTTP API
//! (routes from `template.yaml`), hands each function the v2 event Lambda would, serves the
//! WebSocket API at `/realtime` (see `websocket`), and, in development mode only, mints tokens
//! at `POST /dev/token`.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{to_bytes, Body as AxumBody},
    extract::{Request as AxumRequest, State},
    http::{HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response as AxumResponse},
    Router,
};
use serde_json::json;

use crate::local::{new_request_id, HttpCall, LocalStack};

/// API Gateway's payload limit for HTTP APIs.
const MAX_BODY: usize = 10 * 1024 * 1024;
const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub fn router(stack: Arc<LocalStack>) -> Router {
    Router::new().fallback(handle).with_state(stack.clone()).merge(crate::websocket::router(stack))
}

pub async fn serve(stack: Arc<LocalStack>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(stack)).await
}

fn plain_json(status: StatusCode, body: serde_json::Value) -> AxumResponse {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn handle(State(stack): State<Arc<LocalStack>>, request: AxumRequest) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return plain_json(StatusCode::PAYLOAD_TOO_LARGE, json!({"message": "Request Entity Too Large"}));
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let mut response = if stack.settings.development_mode && method == "POST" && path == "/dev/token" {
        dev_token(&stack, &body)
    } else if parts.method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        invoke(&stack, &parts, &body).await
    };
    add_cors(&stack, &mut response);
    response
}

async fn invoke(stack: &LocalStack, parts: &axum::http::request::Parts, body: &[u8]) -> AxumResponse {
    let headers =
        parts.headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect();
    let call = HttpCall {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers,
        body: Some(body),
    };
    let answer = stack.handle_http(&call, &new_request_id()).await;
    let mut response = AxumResponse::new(AxumBody::from(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

/// `POST /dev/token {"user": "alice"}`: a real HS256 token signed with the stack's secret. With
/// `"email": "alice@example.com"` it carries that address too, verified unless
/// `"email_verified": false` (as an identity provider's ID token would).
fn dev_token(stack: &LocalStack, body: &[u8]) -> AxumResponse {
    let request = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let user = request.get("user").and_then(|u| u.as_str()).map(str::to_owned);
    let email = request.get("email").map(|e| e.as_str().and_then(shared::auth::normalize_email));
    let verified = request.get("email_verified").map_or(Some(true), serde_json::Value::as_bool);
    let valid =
        |u: &str| (1..=64).contains(&u.len()) && u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    match (user, email, verified) {
        (Some(user), email, Some(verified)) if valid(&user) && !matches!(email, Some(None)) => {
            let email = email.flatten();
            let claims = email.as_deref().map(|address| (address, verified));
            let mut answer = json!({
                "token": stack.minter.mint_with_email(&user, claims, DEV_TOKEN_TTL),
                "token_type": "Bearer",
                "expires_in": DEV_TOKEN_TTL.as_secs(),
                "user": user,
            });
            if let Some(address) = email {
                answer["email"] = json!(address);
                answer["email_verified"] = json!(verified);
            }
            plain_json(StatusCode::OK, answer)
        }
        _ => plain_json(
            StatusCode::BAD_REQUEST,
            json!({"message": "send {\"user\": \"alice\"}: 1 to 64 letters, digits or . _ @ - (optionally \"email\": an address, \"email_verified\": a boolean)"}),
        ),
    }
}

/// What API Gateway adds for the template's `CorsConfiguration`.
fn add_cors(stack: &LocalStack, response: &mut AxumResponse) {
    let Some(cors) = &stack.template.cors else { return };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, values: &[String]| {
        if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
            if !values.is_empty() {
                headers.insert(name, v);
            }
        }
    };
    set("access-control-allow-origin", &cors.allow_origins);
    set("access-control-allow-headers", &cors.allow_headers);
    set("access-control-allow-methods", &cors.allow_methods);
    set("access-control-expose-headers", &cors.expose_headers);
}
