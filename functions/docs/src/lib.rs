//! The interactive API reference, a Lambda of its own: `GET /docs` is Swagger UI, which loads the
//! OpenAPI document from `GET /openapi.json`. Swagger UI's files are embedded in the binary from
//! crates.io (utoipa-swagger-ui's `vendored` feature), so the page needs no CDN and works offline.
//!
//! The page and its files are served here rather than through utoipa-swagger-ui's axum router:
//! that router answers `/docs` with a redirect to `/docs/` (its page links its files as `./x`),
//! and API Gateway routes neither `/docs/` to `GET /docs` nor reliably to `GET /docs/{proxy+}`.

use std::{fmt::Write, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::Value;
use shared::{ApiError, Area, ConfigError, Env, Platform};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::Config;

/// The API's OpenAPI document as committed (generated from every area's routes by
/// `cargo run -p openapi-document`; a test keeps it current). Embedded rather than generated at
/// start-up, so this function links no area: a smaller binary and a faster cold start.
pub const COMMITTED_DOCUMENT: &str = include_str!("../openapi.json");

/// What `/openapi.json` serves: the committed document, with this build's version.
pub fn served_document() -> Value {
    let mut document: Value = serde_json::from_str(COMMITTED_DOCUMENT).expect("openapi.json is JSON");
    document["info"]["version"] = Value::from(shared::BUILD_VERSION);
    document
}

// The vendored files never change within a build; a day bounds how long a browser keeps an old
// Swagger UI after a deploy that upgrades it (the file names carry no version).
const ASSET_CACHE: &str = "public, max-age=86400";
// The document and the page change with every deploy of the API.
const DOC_CACHE: &str = "no-cache";
// Everything the page loads is its own; "Try it out" calls the API's servers (same origin or
// https). Swagger UI sets inline styles and shows images as data: URLs.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self' https:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The API reference: the document, the page and Swagger UI's settings, built once.
pub struct Docs {
    document: Bytes,
    page: Bytes,
    initializer: Bytes,
    /// Needed by `utoipa_swagger_ui::serve`, which only reads it for its own initializer.
    config: Arc<Config<'static>>,
}

impl Docs {
    /// The reference of `document`. "Authorize" offers the document's
    /// `components.securitySchemes` (HTTP bearer), and the token entered there is kept across
    /// reloads (`persistAuthorization`, in the browser's local storage). Links are relative
    /// (`openapi.json`, `docs/...`), so the page also works under a stage or base path.
    pub fn new(document: &Value) -> Self {
        let config = Config::new(["openapi.json"])
            // No top bar: its URL box invites loading some other document.
            .use_base_layout()
            .persist_authorization(true)
            // Swagger UI otherwise sends the document's URL to validator.swagger.io for a badge.
            .validator_url("none")
            .display_request_duration(true)
            .filter(true);
        Self {
            document: serde_json::to_vec(document).expect("a JSON value serializes").into(),
            page: page(document).into(),
            initializer: initializer(&config).into(),
            config: Arc::new(config),
        }
    }
}

impl Area for Docs {
    // Serves what it embeds: no table is read.
    const WARM_UP_DYNAMODB: bool = false;

    fn build(_: &Platform, _: &Env) -> Result<Self, ConfigError> {
        Ok(Self::new(&served_document()))
    }

    /// `GET /openapi.json` (the document), `GET /docs` (Swagger UI, loading that document) and
    /// `GET /docs/{file}` (Swagger UI's files, not part of the API's description).
    fn routes() -> OpenApiRouter<Arc<Self>> {
        OpenApiRouter::new()
            .routes(routes!(document_json))
            .routes(routes!(docs_page))
            // The page's relative links need `/docs`; this reaches it from any base path.
            .route("/docs/", get(|| async { Redirect::to("../docs") }))
            .route("/docs/swagger-initializer.js", get(initializer_js))
            .route("/docs/{*file}", get(asset))
    }
}

/// The reference's routes on their own, without the shared pipeline (for a local preview).
pub fn router(document: &Value) -> axum::Router {
    let router: axum::Router<Arc<Docs>> = Docs::routes().into();
    router.with_state(Arc::new(Docs::new(document)))
}

/// The OpenAPI document (JSON).
#[derive(ToSchema, Serialize)]
#[schema(value_type = Object)]
pub struct OpenApiDocument(Value);

/// Public: this API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "docs", operation_id = "get_openapi", security(()),
    responses((status = 200, description = "The OpenAPI document", body = OpenApiDocument)))]
async fn document_json(State(docs): State<Arc<Docs>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, DOC_CACHE)], docs.document.clone())
        .into_response()
}

/// Public: the interactive API reference (Swagger UI): authorize with a token, try a call.
#[utoipa::path(get, path = "/docs", tag = "docs", operation_id = "get_docs", security(()),
    responses((status = 200, description = "The API reference page", content_type = "text/html")))]
async fn docs_page(State(docs): State<Arc<Docs>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, DOC_CACHE),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        docs.page.clone(),
    )
        .into_response()
}

async fn initializer_js(State(docs): State<Arc<Docs>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, DOC_CACHE)],
        docs.initializer.clone(),
    )
        .into_response()
}

async fn asset(State(docs): State<Arc<Docs>>, Path(file): Path<String>) -> Response {
    match utoipa_swagger_ui::serve(&file, docs.config.clone()) {
        // Emptied at build time (see .cargo/config.toml): the page never loads them.
        Ok(Some(found)) if found.bytes.is_empty() => ApiError::RouteNotFound(file).into_response(),
        Ok(Some(found)) => (
            [
                (header::CONTENT_TYPE, found.content_type),
                (header::CACHE_CONTROL, ASSET_CACHE.to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            found.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::RouteNotFound(file).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// Swagger UI's start-up script: its settings from `config`, with the API preset only (the
/// standalone preset draws the top bar this page leaves out).
fn initializer(config: &Config) -> String {
    let settings = serde_json::to_string(config).expect("Swagger UI settings serialize to JSON");
    format!(
        "window.ui = SwaggerUIBundle(Object.assign({settings}, {{\n  \
         presets: [SwaggerUIBundle.presets.apis],\n  \
         plugins: [SwaggerUIBundle.plugins.DownloadUrl],\n}}));\n"
    )
}

/// The page Swagger UI draws into, with a plain list of the operations for readers without
/// JavaScript (and for a search in the page's source).
fn page(document: &Value) -> String {
    let title = escape(document["info"]["title"].as_str().unwrap_or("API"));
    let mut operations = String::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(summary) = op.get("summary").map(|s| s.as_str().unwrap_or_default()) else { continue };
            let method = method.to_uppercase();
            let _ = writeln!(operations, "<li><code>{method} {}</code> {}</li>", escape(path), escape(summary));
        }
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API reference</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>
<h1>{title}</h1>
<p>The interactive reference needs JavaScript. The description itself: <a href="openapi.json">openapi.json</a>.</p>
<ul>
{operations}</ul>
</noscript>
<script src="docs/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="docs/swagger-initializer.js" charset="utf-8"></script>
</body>
</html>
"#
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// The docs area behind the shared pipeline, as Lambda runs it.
    fn app() -> axum::Router {
        let env = Env::from_map(std::collections::HashMap::from([(
            "JWT_SECRET".to_owned(),
            "docs-test-secret-0123456789abcdef0123456789".to_owned(),
        )]));
        let verifier = Arc::new(shared::Verifier::new(shared::AuthConfig::from_env(&env).unwrap()).unwrap());
        let router: axum::Router<Arc<Docs>> = Docs::routes().into();
        shared::http::app(router.with_state(Arc::new(Docs::new(&served_document()))), verifier, None, None)
    }

    async fn get(path: &str) -> (StatusCode, Option<String>, Bytes) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let location = response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type.or(location), body)
    }

    #[tokio::test]
    async fn serves_the_document() {
        let (status, content_type, body) = get("/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, served_document());
        let scheme = &served["components"]["securitySchemes"]["bearer"];
        assert_eq!(
            (scheme["type"].as_str(), scheme["scheme"].as_str()),
            (Some("http"), Some("bearer")),
            "Authorize needs it"
        );
    }

    #[tokio::test]
    async fn serves_the_page_with_every_path() {
        let (status, content_type, body) = get("/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
        let page = String::from_utf8(body.to_vec()).unwrap();
        for script in ["docs/swagger-ui-bundle.js", "docs/swagger-initializer.js"] {
            assert!(page.contains(&format!(r#"<script src="{script}""#)), "{script}");
        }
        for path in served_document()["paths"].as_object().unwrap().keys() {
            assert!(page.contains(path), "the page does not mention {path}");
        }
    }

    #[tokio::test]
    async fn configures_swagger_ui() {
        let (status, _, body) = get("/docs/swagger-initializer.js").await;
        assert_eq!(status, StatusCode::OK);
        let script = String::from_utf8(body.to_vec()).unwrap();
        for setting in [
            r#""url":"openapi.json""#,
            r#""persistAuthorization":true"#,
            r#""validatorUrl":"none""#,
            r#""layout":"BaseLayout""#,
        ] {
            assert!(script.contains(setting), "{setting} missing from {script}");
        }
    }

    #[tokio::test]
    async fn serves_swagger_ui_files() {
        for (file, kind) in
            [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css"), ("favicon-32x32.png", "image/png")]
        {
            let (status, content_type, body) = get(&format!("/docs/{file}")).await;
            assert_eq!(status, StatusCode::OK, "{file}");
            assert!(content_type.unwrap().contains(kind), "{file}");
            assert!(!body.is_empty(), "{file}");
        }
        assert_eq!(get("/docs/nothing.js").await.0, StatusCode::NOT_FOUND);
        // Left out of the binary (functions/docs/swagger-ui-blank).
        assert_eq!(get("/docs/swagger-ui-bundle.js.map").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/docs/../Cargo.toml").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn trailing_slash_leads_to_the_page() {
        let (status, location, _) = get("/docs/").await;
        assert!(status.is_redirection());
        assert_eq!(location.as_deref(), Some("../docs"));
    }

    #[test]
    fn escapes_html() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
