//! The one error type of the API and its single mapping to HTTP (RFC 9457 problem details).

use axum::{
    body::Body,
    http::{header, StatusCode},
    response::Response,
};
use serde::Serialize;

/// Every way a request can fail. Handlers return it; only [`ApiError::to_response`] turns it
/// into HTTP, so status codes and bodies are the same in every area.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// The request is malformed: bad JSON, unknown or protected fields, out-of-range values.
    #[error("{0}")]
    BadRequest(String),
    /// No valid bearer token. The reason is logged, never sent to the client.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token was issued before its account was deleted: it may no longer create anything
    /// (nor re-create the profile). Unlike [`ApiError::Unauthorized`], the reason is public,
    /// since it tells the client what to do.
    #[error("the account was deleted; sign in again")]
    AccountDeleted,
    /// The token's signature is good but it was revoked (signed out, account disabled or
    /// deleted). The reason is public: it is about the caller's own sign-in.
    #[error("{0}; sign in again")]
    Revoked(&'static str),
    /// Credentials sent in the body (an email and password, a refresh token) were refused. The
    /// reason is public and fixed per route, so it cannot tell why (an unknown email and a
    /// wrong password answer alike).
    #[error("{0}")]
    CredentialsRefused(&'static str),
    /// The caller is a member, but their role does not allow this action.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist *for this caller*. Another user's item answers the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write conflicts with the current state (e.g. the item already exists).
    #[error("{0}")]
    Conflict(String),
    /// The resource existed but is no longer usable (an expired or revoked invitation).
    #[error("{0}")]
    Gone(String),
    /// `If-Match` named a version that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body or a field of it is over its size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON.
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// No route of this function matches the request.
    #[error("no route matches {0}")]
    RouteNotFound(String),
    /// The path exists, but not with this method.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// The caller sent too many requests of this kind (the identity provider's limits); retry later.
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency (DynamoDB) is throttling or unreachable; the client may retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug. The detail is logged; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::AccountDeleted | Self::Revoked(_) | Self::CredentialsRefused(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told. Internal details (auth failure reasons, SDK errors) stay in logs.
    fn public_detail(&self) -> String {
        match self {
            Self::Unauthorized(_) => "a valid bearer token is required".to_owned(),
            Self::Unavailable(_) => "the service is temporarily unavailable, retry later".to_owned(),
            Self::Internal(_) => "an unexpected error occurred".to_owned(),
            other => other.to_string(),
        }
    }

    /// The single place an error becomes an HTTP response.
    pub fn to_response(&self, request_id: &str) -> Response {
        let status = self.status();
        let detail = self.public_detail();
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &detail,
            request_id,
        };
        let body = serde_json::to_string(&problem).expect("problem details always serialize");
        let mut builder = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .header("x-request-id", request_id);
        builder = match self {
            Self::Unauthorized(_) => builder.header("www-authenticate", "Bearer"),
            Self::AccountDeleted => builder.header(
                "www-authenticate",
                r#"Bearer error="invalid_token", error_description="the account was deleted""#,
            ),
            Self::Revoked(_) => builder.header("www-authenticate", r#"Bearer error="invalid_token""#),
            Self::Unavailable(_) => builder.header("retry-after", "1"),
            Self::TooManyRequests(_) => builder.header("retry-after", "5"),
            _ => builder,
        };
        builder.body(Body::from(body)).unwrap_or_else(|_| {
            // Only a request id that is not header-safe can fail; answer without it.
            let mut plain = Response::new(Body::from(self.public_detail()));
            *plain.status_mut() = status;
            plain
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(resp: Response) -> serde_json::Value {
        let bytes = futures_executor_block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn problem_json_carries_status_and_request_id() {
        let resp = ApiError::NotFound("canvas").to_response("req-1");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body = body_json(resp);
        assert_eq!(body["status"], 404);
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["detail"], "canvas not found");
    }

    #[test]
    fn internal_details_are_not_leaked() {
        let resp = ApiError::Internal("table xyz missing attr".into()).to_response("r");
        assert_eq!(resp.status(), 500);
        assert!(!body_json(resp)["detail"].as_str().unwrap().contains("xyz"));
        let resp = ApiError::Unauthorized("kid abc unknown".into()).to_response("r");
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert!(!body_json(resp)["detail"].as_str().unwrap().contains("abc"));
    }

    #[test]
    fn a_deleted_account_is_a_401_that_says_why() {
        let resp = ApiError::AccountDeleted.to_response("r");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
        assert_eq!(body_json(resp)["detail"], "the account was deleted; sign in again");
    }
}
