//! Local dev server for the API reference: `cargo run -p docs --example serve`, then open
//! http://127.0.0.1:3000/docs (another address: `DOCS_ADDR=127.0.0.1:8080`).
//!
//! Serves the API reference of the real document. Every other route stands in for the API
//! so that "Try it out" can be checked without it: 200 with what it received when the request
//! carries a bearer token, 401 otherwise.

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};

async fn stand_in(method: Method, uri: Uri, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > "Bearer ".len());
    let status = if bearer { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    let body = json!({
        "stand_in": "docs example server: not the real API",
        "method": method.as_str(),
        "uri": uri.to_string(),
        "bearer_token_received": bearer,
    });
    (status, Json(body))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("DOCS_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let app = docs::router(&docs::served_document()).fallback(stand_in);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("API reference on http://{}/docs", listener.local_addr()?);
    axum::serve(listener, app).await
}
