//! The request pipeline every function shares: route, authenticate, parse, answer, log.
//!
//! A function declares its routes (API Gateway route keys, as in `template.yaml`) and one
//! handler; [`serve`] does the rest, so every area authenticates, errs and logs the same way.

use std::{collections::BTreeMap, future::Future, time::Instant};

use lambda_http::{
    aws_lambda_events::apigw::ApiGatewayV2httpRequestContext, http::StatusCode, request::RequestContext, Body, Request,
    RequestExt, Response,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    auth::{AuthError, Identity, Verifier},
    cursor::PageRequest,
    error::ApiError,
    store::{attr, Expect},
};

/// One route of a function: the API Gateway route key (`"GET /canvases/{id}"`) and the
/// operation it selects.
#[derive(Clone, Copy, Debug)]
pub struct Route<Op> {
    pub key: &'static str,
    pub op: Op,
    pub public: bool,
}

impl<Op> Route<Op> {
    /// A route that needs a verified token.
    pub const fn private(key: &'static str, op: Op) -> Self {
        Self { key, op, public: false }
    }

    /// A route anyone may call (health, API description).
    pub const fn public(key: &'static str, op: Op) -> Self {
        Self { key, op, public: true }
    }

    fn method_and_pattern(&self) -> (&'static str, &'static str) {
        self.key.split_once(' ').expect("route keys are \"METHOD /path\"")
    }
}

/// Matches `/canvases/{id}` against `/canvases/0193...`, returning the path parameters.
pub fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut want = pattern.trim_end_matches('/').split('/');
    let mut have = path.trim_end_matches('/').split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') && !h.is_empty() => {
                let value = percent_decode(h)?;
                params.insert(w[1..w.len() - 1].to_owned(), value);
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A request that has been routed and, for private routes, authenticated.
pub struct Call {
    pub request_id: String,
    pub route: &'static str,
    identity: Option<Identity>,
    params: BTreeMap<String, String>,
    request: Request,
}

impl Call {
    /// The caller. Private routes always have one; asking on a public route is a bug.
    pub fn identity(&self) -> Result<&Identity, ApiError> {
        self.identity.as_ref().ok_or_else(|| ApiError::Internal(format!("{} is public: no identity", self.route)))
    }

    /// A path parameter that names an item: canonical UUID, or 404 as if it did not exist.
    pub fn id(&self, name: &str, noun: &'static str) -> Result<String, ApiError> {
        crate::item::parse_id(self.params.get(name).map(String::as_str).unwrap_or_default(), noun)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.request.query_string_parameters_ref().and_then(|q| q.first(name))
    }

    /// `limit` and `cursor` from the query string.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.query("limit"), self.query("cursor"))
    }

    /// `If-Match: "<version>"` as a write condition; without it, the item need only exist.
    pub fn expect(&self) -> Result<Expect, ApiError> {
        let Some(value) = self.request.headers().get("if-match") else { return Ok(Expect::Exists) };
        let raw = value.to_str().unwrap_or_default().trim();
        if raw == "*" {
            return Ok(Expect::Exists);
        }
        let bare = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        bare.parse::<u64>()
            .map(Expect::Version)
            .map_err(|_| ApiError::bad_request("If-Match must be an ETag returned by this API, e.g. \"3\""))
    }

    fn body_bytes(&self) -> &[u8] {
        match self.request.body() {
            Body::Empty => &[],
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        }
    }

    /// Parses a JSON object body into `T` (which should `deny_unknown_fields`). Refuses bodies
    /// over `max_bytes` (413), non-JSON content types (415), invalid UTF-8 or JSON, and any
    /// field the server owns (400, naming it).
    pub fn json<T: DeserializeOwned>(&self, max_bytes: usize) -> Result<T, ApiError> {
        if let Some(ct) = self.request.headers().get("content-type") {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let bytes = self.body_bytes();
        if bytes.len() > max_bytes {
            return Err(ApiError::PayloadTooLarge(format!("request body is over {max_bytes} bytes")));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("a JSON object body is required"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
        let fields: BTreeMap<String, serde::de::IgnoredAny> = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                ApiError::bad_request("request body must be a JSON object")
            } else {
                ApiError::bad_request(format!("request body is not valid JSON: {e}"))
            }
        })?;
        if let Some(name) = fields.keys().find(|k| is_protected(k)) {
            return Err(ApiError::bad_request(format!("`{name}` is set by the server and cannot be written")));
        }
        serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// Fields no client may write: the owner, the key, and what the server maintains.
fn is_protected(name: &str) -> bool {
    [attr::USER_ID, attr::ID, attr::VERSION, attr::CREATED_AT, attr::UPDATED_AT].contains(&name)
}

fn apigw_context(request: &Request) -> Option<&ApiGatewayV2httpRequestContext> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => Some(ctx),
        _ => None,
    }
}

fn request_id(request: &Request) -> String {
    apigw_context(request)
        .and_then(|c| c.request_id.clone())
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(crate::item::new_id)
}

/// Picks the route: API Gateway's `routeKey` when it names one of ours (robust to stage
/// prefixes), else the method and path (for tools that send no route key).
fn find_route<'r, Op>(routes: &'r [Route<Op>], request: &Request) -> Option<(&'r Route<Op>, BTreeMap<String, String>)> {
    let route_key = apigw_context(request).and_then(|c| c.route_key.as_deref());
    let given_params = || -> BTreeMap<String, String> {
        request
            .path_parameters_ref()
            .map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
            .unwrap_or_default()
    };
    if let Some(route) = routes.iter().find(|r| Some(r.key) == route_key) {
        let params = given_params();
        if !params.is_empty() || !route.key.contains('{') {
            return Some((route, params));
        }
    }
    let path = request.raw_http_path();
    routes.iter().find_map(|route| {
        let (method, pattern) = route.method_and_pattern();
        if method != request.method().as_str() {
            return None;
        }
        match_path(pattern, path).map(|params| (route, params))
    })
}

/// Cross-checks API Gateway's JWT authorizer claims, when present, with our own verification.
fn authorizer_agrees(request: &Request, identity: &Identity) -> bool {
    apigw_context(request)
        .and_then(|c| c.authorizer.as_ref())
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .is_none_or(|sub| sub == identity.user_id())
}

/// Runs one request through routing, authentication and the handler, and always answers:
/// errors become problem+json here, never a runtime error.
pub async fn serve<Op, F, Fut>(
    verifier: &Verifier,
    routes: &[Route<Op>],
    request: Request,
    handler: F,
) -> Response<Body>
where
    Op: Copy,
    F: FnOnce(Op, Call) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let started = Instant::now();
    let request_id = request_id(&request);
    let method = request.method().clone();
    let path = request.raw_http_path().to_owned();
    let Some((route, params)) = find_route(routes, &request) else {
        let err = ApiError::RouteNotFound(format!("{method} {path}"));
        log_outcome(&request_id, "-", None, Err(&err), started);
        return err.to_response(&request_id);
    };
    let identity = if route.public {
        None
    } else {
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        match verifier.verify_bearer(header).await {
            Ok(identity) if authorizer_agrees(&request, &identity) => Some(identity),
            Ok(_) => return unauthorized(&request_id, route.key, AuthError::AuthorizerMismatch, started),
            Err(e) => return unauthorized(&request_id, route.key, e, started),
        }
    };
    let user_id = identity.as_ref().map(|i| i.user_id().to_owned());
    let call = Call { request_id: request_id.clone(), route: route.key, identity, params, request };
    let result = handler(route.op, call).await;
    log_outcome(&request_id, route.key, user_id.as_deref(), result.as_ref().map(Response::status), started);
    match result {
        Ok(mut response) => {
            response.headers_mut().insert("x-request-id", request_id.parse().expect("request ids are header-safe"));
            response
        }
        Err(e) => e.to_response(&request_id),
    }
}

fn unauthorized(request_id: &str, route: &str, reason: AuthError, started: Instant) -> Response<Body> {
    let err = ApiError::Unauthorized(reason.to_string());
    log_outcome(request_id, route, None, Err(&err), started);
    err.to_response(request_id)
}

fn log_outcome(
    request_id: &str,
    route: &str,
    user_id: Option<&str>,
    outcome: Result<StatusCode, &ApiError>,
    started: Instant,
) {
    let latency_us = started.elapsed().as_micros() as u64;
    let user_id = user_id.unwrap_or("-");
    match outcome {
        Ok(status) => tracing::info!(request_id, route, status = status.as_u16(), latency_us, user_id, "request"),
        Err(e) if e.status().is_server_error() => {
            tracing::error!(request_id, route, status = e.status().as_u16(), latency_us, user_id, error = %e, "request failed")
        }
        Err(e) => {
            tracing::info!(request_id, route, status = e.status().as_u16(), latency_us, user_id, error = %e, "request refused")
        }
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A JSON response for one versioned item, with its version as a strong ETag for `If-Match`.
pub fn json_versioned<T: Serialize>(status: StatusCode, value: &T, version: u64) -> Result<Response<Body>, ApiError> {
    let mut response = json(status, value)?;
    response.headers_mut().insert("etag", format!("\"{version}\"").parse().expect("digits are header-safe"));
    Ok(response)
}

pub fn no_content() -> Response<Body> {
    Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matching() {
        let p = match_path("/canvases/{id}", "/canvases/abc").unwrap();
        assert_eq!(p["id"], "abc");
        assert!(match_path("/canvases/{id}", "/canvases").is_none());
        assert!(match_path("/canvases/{id}", "/canvases/").is_none());
        assert!(match_path("/canvases/{id}", "/canvases/a/b").is_none());
        assert!(match_path("/canvases", "/canvases/").is_some());
        assert_eq!(match_path("/c/{id}", "/c/a%20b").unwrap()["id"], "a b");
        assert!(match_path("/c/{id}", "/c/%zz").is_none());
    }
}
