//! The whole API's OpenAPI document, generated from every HTTP area's routes. The docs function
//! serves the committed copy (`functions/docs/openapi.json`) rather than linking every area
//! into its binary; a test fails when that copy differs from what the code describes.

use serde_json::Value;
use shared::runtime::openapi;

/// The document the code describes, with the version that goes into the committed copy.
pub fn api_document() -> Value {
    let mut document = shared::openapi::document([
        openapi::<canvases::Canvases>(),
        openapi::<sessions::Sessions>(),
        openapi::<workflows::Workflows>(),
        openapi::<files::Files>(),
        openapi::<account::Account>(),
        openapi::<orgs::Orgs>(),
        openapi::<auth::Auth>(),
        openapi::<docs::Docs>(),
    ]);
    // The served document carries the build's commit; the committed one must not change with it.
    document["info"]["version"] = Value::from(env!("CARGO_PKG_VERSION"));
    document
}

/// The committed copy's text: pretty JSON with a final newline.
pub fn committed_text(document: &Value) -> String {
    serde_json::to_string_pretty(document).expect("a JSON value serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_is_what_the_code_describes() {
        let generated = committed_text(&api_document());
        assert!(
            generated == docs::COMMITTED_DOCUMENT,
            "functions/docs/openapi.json differs from the routes' descriptions: run `cargo run -p openapi-document`"
        );
    }
}
