//! Writes the API's OpenAPI document to `functions/docs/openapi.json` (or to the path given).
//! Run after changing a route: `cargo run -p openapi-document`.

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../functions/docs/openapi.json").to_owned());
    std::fs::write(&path, openapi_document::committed_text(&openapi_document::api_document()))?;
    println!("wrote {path}");
    Ok(())
}
