//! The HTTP side every area shares. An area is an `axum` router whose handlers take what they
//! need as extractors defined here once: the verified caller ([`Identity`]), a JSON body that
//! refuses protected and unknown fields ([`JsonBody`]), `If-Match` ([`IfMatch`]), paging
//! ([`Paging`]) and item ids ([`ItemId`]). [`app`] wraps an area's router with the pipeline
//! that gives every request an id, answers every error as problem+json with that id, and logs
//! one line per request.

use std::{
    collections::BTreeMap,
    marker::PhantomData,
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, FromRequestParts, MatchedPath, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use lambda_http::{aws_lambda_events::apigw::ApiGatewayV2httpRequestContext, request::RequestContext, RequestExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    api_keys::ApiKeys,
    auth::{AuthError, Identity, Verifier},
    credentials::Credentials,
    cursor::PageRequest,
    error::ApiError,
    store::{attr, Expect},
};

/// Wraps an area's router with the shared pipeline: request ids, problem+json for every error
/// (the router's own 404 and 405 included), the verifier for [`Identity`], one log line per
/// request. What Lambda runs and what the local gateway hosts.
pub fn app(
    router: Router,
    verifier: Arc<Verifier>,
    credentials: Option<Arc<Credentials>>,
    api_keys: Option<Arc<ApiKeys>>,
) -> Router {
    router
        .fallback(|method: Method, uri: Uri| async move { ApiError::RouteNotFound(format!("{method} {}", uri.path())) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(Gate { verifier, credentials, api_keys }, pipeline))
}

/// What proves a caller: the token verifier, the API keys (when the function has their
/// table) and, when the function has the profile table, the users' standing (revocation).
#[derive(Clone)]
struct Gate {
    verifier: Arc<Verifier>,
    credentials: Option<Arc<Credentials>>,
    api_keys: Option<Arc<ApiKeys>>,
}

/// What the pipeline hands the extractors of one request.
#[derive(Clone)]
struct RequestScope {
    gate: Gate,
    /// Set once the caller is verified, so the log line names them.
    caller: Arc<OnceLock<String>>,
}

async fn pipeline(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(request.extensions());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| format!("{} {}", request.method(), p.as_str()))
        .unwrap_or_else(|| "-".to_owned());
    let caller = Arc::new(OnceLock::new());
    request.extensions_mut().insert(RequestScope { gate, caller: caller.clone() });
    let mut response = next.run(request).await;
    let user_id = caller.get().map(String::as_str).unwrap_or("-");
    let latency_us = started.elapsed().as_micros() as u64;
    match response.extensions_mut().remove::<ApiError>() {
        None => {
            tracing::info!(request_id, route, status = response.status().as_u16(), latency_us, user_id, "request")
        }
        Some(error) => {
            let status = error.status().as_u16();
            if error.status().is_server_error() {
                tracing::error!(request_id, route, status, latency_us, user_id, error = %error, "request failed");
            } else {
                tracing::info!(request_id, route, status, latency_us, user_id, error = %error, "request refused");
            }
            response = error.to_response(&request_id);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn apigw_context(extensions: &axum::http::Extensions) -> Option<&ApiGatewayV2httpRequestContext> {
    match extensions.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => Some(ctx),
        _ => None,
    }
}

/// API Gateway's request id, else Lambda's, else a fresh one (a request without either is a
/// local tool's).
fn request_id(extensions: &axum::http::Extensions) -> String {
    apigw_context(extensions)
        .and_then(|c| c.request_id.clone())
        .or_else(|| extensions.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(crate::item::new_id)
}

/// Cross-checks API Gateway's JWT authorizer claims, when present, with our own verification.
fn authorizer_agrees(extensions: &axum::http::Extensions, identity: &Identity) -> bool {
    apigw_context(extensions)
        .and_then(|c| c.authorizer.as_ref())
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .is_none_or(|sub| sub == identity.user_id())
}

/// The caller, from a verified `Authorization: Bearer` token and nothing else; 401 otherwise,
/// and 401 for a token that was revoked since it was issued ([`Credentials::check`]).
/// A handler that takes an `Identity` is a private route; one that does not is public.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let scope = parts
            .extensions
            .get::<RequestScope>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("router not wrapped by shared::http::app".into()))?;
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let identity = match bearer_api_key(header) {
            Some(key) => match &scope.gate.api_keys {
                Some(keys) => keys.verify(key).await?,
                None => return Err(ApiError::Unauthorized("this function accepts no API keys".into())),
            },
            None => {
                scope.gate.verifier.verify_bearer(header).await.map_err(|e| ApiError::Unauthorized(e.to_string()))?
            }
        };
        if !authorizer_agrees(&parts.extensions, &identity) {
            return Err(ApiError::Unauthorized(AuthError::AuthorizerMismatch.to_string()));
        }
        if let Some(credentials) = &scope.gate.credentials {
            credentials.check(&identity).await?;
        }
        let _ = scope.caller.set(identity.user_id().to_owned());
        Ok(identity)
    }
}

/// The API key of an `Authorization: Bearer ak_...` header; None for anything else (a JWT
/// or no credential, which the token verifier answers).
fn bearer_api_key(authorization: Option<&str>) -> Option<&str> {
    let (scheme, credential) = authorization?.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && crate::api_keys::is_api_key(credential)).then_some(credential)
}

/// The caller, signed in as a person with a token: routes that manage credentials or the
/// account (API keys, `DELETE /me`, the export) refuse API keys with 403.
pub struct SignedIn(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let who = Identity::from_request_parts(parts, state).await?;
        who.require_signed_in("call this route")?;
        Ok(Self(who))
    }
}

/// What a path's `{id}` names: gives the noun for "not found".
pub trait Noun {
    const NOUN: &'static str;
}

/// The `{id}` of the path as a canonical item id; anything else is a 404, as if the item did
/// not exist (path parameters are percent-decoded by the router).
pub struct ItemId<N>(pub String, PhantomData<N>);

impl<N> ItemId<N> {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<N> std::ops::Deref for ItemId<N> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync, N: Noun> FromRequestParts<S> for ItemId<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound(N::NOUN))?;
        let raw = params.iter().find(|(name, _)| *name == "id").map(|(_, v)| v).unwrap_or_default();
        crate::item::parse_id(raw, N::NOUN).map(|id| Self(id, PhantomData))
    }
}

/// The query string as name → value (the first of repeated names), percent-decoded.
pub struct QueryParams(pub BTreeMap<String, String>);

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut params = BTreeMap::new();
        for (name, value) in form_urlencoded_pairs(parts.uri.query().unwrap_or_default())? {
            params.entry(name).or_insert(value);
        }
        Ok(Self(params))
    }
}

/// `a=1&b=x%20y` as pairs; `+` is a space, as in HTML forms. Malformed UTF-8 is a 400.
fn form_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| -> Result<String, ApiError> {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| ApiError::bad_request("the query string is not valid UTF-8 once decoded"))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// `limit` (1-100, default 20) and `cursor` from the query string; `params(Paging)` in a
/// handler's `#[utoipa::path]` documents them.
pub struct Paging(pub PageRequest);

impl utoipa::IntoParams for Paging {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        serde_json::from_value(crate::resource::paging_parameters()).expect("the paging parameters are OpenAPI")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let query = QueryParams::from_request_parts(parts, state).await?;
        PageRequest::parse(query.get("limit"), query.get("cursor")).map(Self)
    }
}

/// `If-Match` as a write condition (RFC 9110 13.1.1): without it, or with `*`, the item need
/// only exist; otherwise its version must be one of the listed strong ETags. Weak tags, foreign
/// tags and values that are no ETag list at all can never match: the write is refused as 412
/// (404 when nothing is there), never carried out unconditionally.
pub struct IfMatch(pub Expect);

/// More tags than any client needs; bounds the condition sent to DynamoDB.
const IF_MATCH_MAX_TAGS: usize = 16;

impl IfMatch {
    pub fn parse(headers: &HeaderMap) -> Result<Expect, ApiError> {
        let Some(value) = headers.get(header::IF_MATCH) else { return Ok(Expect::Exists) };
        let raw = value.to_str().unwrap_or_default().trim();
        if raw == "*" {
            return Ok(Expect::Exists);
        }
        let tags = entity_tags(raw).unwrap_or_default();
        if tags.len() > IF_MATCH_MAX_TAGS {
            return Err(ApiError::bad_request(format!("If-Match lists more than {IF_MATCH_MAX_TAGS} ETags")));
        }
        let mut versions: Vec<u64> =
            tags.into_iter().filter(|tag| !tag.weak).filter_map(|tag| tag.opaque.parse().ok()).collect();
        versions.sort_unstable();
        versions.dedup();
        Ok(Expect::OneOf(versions))
    }
}

struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// `#entity-tag` of RFC 9110: a comma-separated list of `[W/]"<etagc>*"`; None if malformed.
fn entity_tags(list: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = quoted.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &body[..end];
        if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
            return None;
        }
        tags.push(EntityTag { weak, opaque });
        rest = &body[end + 1..];
        // Tags are separated by commas, never run together.
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return None;
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::parse(&parts.headers).map(Self)
    }
}

/// A request body type and its size limit.
pub trait RequestBody: DeserializeOwned {
    /// Largest accepted body, in bytes (413 above).
    const MAX_BYTES: usize;
}

/// A JSON object body parsed into `T` (which should `deny_unknown_fields`). Refuses a missing or
/// non-JSON content type (415), bodies over `T::MAX_BYTES` (413), empty bodies, invalid UTF-8
/// or JSON, and any field the server owns (400, naming it).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(request.headers())?;
        let limit = T::MAX_BYTES;
        let bytes = Bytes::from_request(request, state).await.map_err(|e| ApiError::bad_request(e.body_text()))?;
        parse_json_object(&bytes, limit).map(Self)
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).ok_or(ApiError::UnsupportedMediaType)?;
    let content_type = content_type.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// The body rules of [`JsonBody`], on bytes.
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, ApiError> {
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
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        match field.as_str() {
            "." => ApiError::bad_request(format!("invalid request body: {}", e.inner())),
            _ => ApiError::bad_request(format!("invalid `{field}`: {}", e.inner())),
        }
    })
}

/// Fields no client may write: the owner, the key, and what the server maintains.
fn is_protected(name: &str) -> bool {
    [attr::USER_ID, attr::ID, attr::VERSION, attr::CREATED_AT, attr::UPDATED_AT].contains(&name)
}

impl IntoResponse for ApiError {
    /// Marks the response as this error; [`app`]'s pipeline renders it as problem+json with the
    /// request id (the only place errors become HTTP bodies).
    fn into_response(self) -> Response {
        let mut response = self.to_response("");
        response.extensions_mut().insert(self);
        response
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// A JSON response for one versioned item, with its version as a strong ETag for `If-Match`.
pub fn json_versioned<T: Serialize>(status: StatusCode, value: &T, version: u64) -> Result<Response, ApiError> {
    let mut response = json(status, value)?;
    let etag = HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are header-safe");
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// Adds `Location: <path>` to a created item's response.
pub fn with_location(mut response: Response, path: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(path).map_err(|_| ApiError::Internal(format!("location {path}")))?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A fixed public document (API description, health).
pub fn static_body(content_type: &'static str, body: impl Into<Body>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn if_match_is_strong() {
        let parse = |value: &'static str| IfMatch::parse(&headers(&[("if-match", value)]));
        assert_eq!(IfMatch::parse(&headers(&[])).unwrap(), Expect::Exists);
        assert_eq!(parse("*").unwrap(), Expect::Exists);
        assert_eq!(parse("\"3\"").unwrap(), Expect::version(3));
        assert_eq!(parse("\"5\", W/\"4\",\"3\" ,\"5\"").unwrap(), Expect::OneOf(vec![3, 5]));
        // Valid tags that can never name one of our versions: nothing matches.
        assert_eq!(parse("W/\"3\"").unwrap(), Expect::OneOf(vec![]));
        assert_eq!(parse("\"x,y\"").unwrap(), Expect::OneOf(vec![]));
        assert_eq!(parse("\"\"").unwrap(), Expect::OneOf(vec![]));
        for malformed in ["3", "\"3", "\"3\"\"4\"", "*, \"3\"", "W/3", "\"a b\"", "null"] {
            assert_eq!(parse(malformed).unwrap(), Expect::OneOf(vec![]), "{malformed}");
        }
        let many = (0..17).map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(",");
        let many = HeaderValue::from_str(&many).unwrap();
        assert!(matches!(
            IfMatch::parse(&HeaderMap::from_iter([(header::IF_MATCH, many)])),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_json_content_type(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(check_json_content_type(&headers(&[("content-type", "Application/JSON; charset=utf-8")])).is_ok());
        assert!(check_json_content_type(&headers(&[("content-type", "application/merge-patch+json")])).is_ok());
        assert_eq!(check_json_content_type(&headers(&[])), Err(ApiError::UnsupportedMediaType));
        assert_eq!(
            check_json_content_type(&headers(&[("content-type", "text/plain")])),
            Err(ApiError::UnsupportedMediaType)
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn json_bodies_refuse_what_clients_cannot_write() {
        assert!(parse_json_object::<Named>(br#"{"name":"a"}"#, 100).is_ok());
        let refused = |body: &[u8], max| parse_json_object::<Named>(body, max).unwrap_err();
        assert!(
            matches!(refused(br#"{"name":"a","user_id":"b"}"#, 100), ApiError::BadRequest(m) if m.contains("user_id"))
        );
        assert!(matches!(refused(br#"{"name":"a","extra":1}"#, 100), ApiError::BadRequest(m) if m.contains("extra")));
        assert!(matches!(refused(br#"[1]"#, 100), ApiError::BadRequest(m) if m.contains("object")));
        assert!(matches!(refused(b"  ", 100), ApiError::BadRequest(_)));
        assert!(matches!(refused(b"\xff", 100), ApiError::BadRequest(_)));
        assert!(matches!(refused(br#"{"name":"aaaaaaaa"}"#, 5), ApiError::PayloadTooLarge(_)));
    }

    #[test]
    fn query_strings_decode() {
        let pairs = form_urlencoded_pairs("a=1&b=x%20y+z&c&a=2").unwrap();
        assert_eq!(pairs[1], ("b".to_owned(), "x y z".to_owned()));
        assert_eq!(pairs[2], ("c".to_owned(), String::new()));
        assert!(form_urlencoded_pairs("a=%ff").is_err());
    }
}
