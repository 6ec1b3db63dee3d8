//! The docs Lambda: the API reference behind API Gateway (`GET /docs`, `GET /docs/{proxy+}`,
//! `GET /openapi.json`). Needs no AWS access and no configuration.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    // Placeholder until the document generated from code (utoipa) is passed here instead.
    let openapi = docs::placeholder_openapi();
    lambda_http::run(docs::router(openapi)).await
}
