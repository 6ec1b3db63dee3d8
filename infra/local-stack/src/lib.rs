//! The local stack: DynamoDB Local, the template's tables, and a local API gateway that serves
//! every function's routes through the same handler code Lambda runs.

pub mod dynamodb_local;
pub mod fixtures;
pub mod gateway;
pub mod local;
pub mod s3_local;
pub mod streams;
pub mod tables;
pub mod websocket;

pub use template::workspace_root;

/// The whole API's OpenAPI document, from every HTTP area's routes.
pub fn api_document() -> serde_json::Value {
    use shared::runtime::openapi;
    shared::openapi::document([
        openapi::<canvases::Canvases>(),
        openapi::<sessions::Sessions>(),
        openapi::<workflows::Workflows>(),
        openapi::<files::Files>(),
        openapi::<account::Account>(),
    ])
}
