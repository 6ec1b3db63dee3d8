//! `events/`: one API Gateway HTTP API (payload 2.0) event per template route, built by the same
//! code the local gateway uses, with the request body the API description gives as the
//! operation's example. For `sam local invoke -e`, and run through their functions by the tests.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;
use template::{HttpRoute, Template};

use crate::local::{apigw_v2_event, HttpCall};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The id every fixture's path uses.
pub const FIXTURE_ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";

/// `events/<method>-<path words>.json`, e.g. `patch-canvases-id.json`.
pub fn file_name(route: &HttpRoute) -> String {
    let words: Vec<&str> =
        route.path.trim_matches('/').split('/').map(|w| w.trim_matches(|c| c == '{' || c == '}' || c == '+')).collect();
    format!("{}-{}.json", route.method.to_ascii_lowercase(), words.join("-"))
}

/// The example request body of an operation, from its request body schema's `example`.
fn example_body(document: &Value, route: &HttpRoute) -> Option<Value> {
    let operation = &document["paths"][&route.path][route.method.to_ascii_lowercase()];
    let schema = operation.pointer("/requestBody/content/application~1json/schema")?;
    let schema = match schema["$ref"].as_str() {
        Some(reference) => document.pointer(reference.strip_prefix('#')?)?,
        None => schema,
    };
    schema.get("example").or_else(|| schema.get("examples").and_then(|e| e.get(0))).cloned()
}

/// Whether an operation takes `If-Match` (its fixture then names version 1).
fn takes_if_match(document: &Value, route: &HttpRoute) -> bool {
    let operation = &document["paths"][&route.path][route.method.to_ascii_lowercase()];
    operation["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"))
}

/// The fixture event of one route.
pub fn event(document: &Value, route: &HttpRoute) -> Value {
    let raw_path =
        route.path.split('/').map(|w| if w.starts_with('{') { FIXTURE_ID } else { w }).collect::<Vec<_>>().join("/");
    let params: BTreeMap<String, String> = route
        .path
        .split('/')
        .filter(|w| w.starts_with('{'))
        .map(|w| (w.trim_matches(|c| c == '{' || c == '}' || c == '+').to_owned(), FIXTURE_ID.to_owned()))
        .collect();
    let body = example_body(document, route).map(|b| b.to_string());
    let mut headers: Vec<(String, String)> = [
        ("accept", "application/json"),
        ("authorization", "Bearer <token from POST /dev/token or your identity provider>"),
        ("host", "abc123.execute-api.us-east-1.amazonaws.com"),
        ("user-agent", "curl/8.5.0"),
        ("x-forwarded-for", "203.0.113.10"),
        ("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    if takes_if_match(document, route) && route.method == "PATCH" {
        headers.push(("if-match".into(), "\"1\"".into()));
    }
    let call = HttpCall {
        method: &route.method,
        raw_path: &raw_path,
        raw_query: "",
        headers,
        body: body.as_deref().map(str::as_bytes),
    };
    let mut event =
        serde_json::to_value(apigw_v2_event(&call, route, &params, "CZ3yJh2oIAMEbRg=")).expect("events serialize");
    // What API Gateway sends has no v1 authorizer fields (null or defaulted by the serializer).
    if let Some(fields) = event.as_object_mut() {
        fields.retain(|k, v| {
            !v.is_null() && k != "httpMethod" && !(k == "stageVariables" && v == &serde_json::json!({}))
        });
    }
    // Fixed values, so regenerating the fixtures changes nothing unless the routes did.
    event["requestContext"]["accountId"] = "123456789012".into();
    event["requestContext"]["apiId"] = "abc123".into();
    event["requestContext"]["time"] = "25/Nov/2026:10:00:00 +0000".into();
    event["requestContext"]["timeEpoch"] = 1_795_600_800_000u64.into();
    event
}

/// Writes every route's fixture into `out`, bodies from the API's description.
pub fn write_all(out: &Path) -> Result<usize, BoxError> {
    write_all_with(out, &openapi_document::api_document())
}

/// Writes every route's fixture into `out`; returns how many.
pub fn write_all_with(out: &Path, document: &Value) -> Result<usize, BoxError> {
    let template = Template::load_default()?;
    std::fs::create_dir_all(out)?;
    let mut count = 0;
    for function in &template.functions {
        for route in function.routes.iter().filter(|r| r.is_api()) {
            let text = serde_json::to_string_pretty(&event(document, route))? + "\n";
            std::fs::write(out.join(file_name(route)), text)?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_route() {
        let route = |m: &str, p: &str| HttpRoute { method: m.into(), path: p.into() };
        assert_eq!(file_name(&route("PATCH", "/canvases/{id}")), "patch-canvases-id.json");
        assert_eq!(file_name(&route("GET", "/docs/{proxy+}")), "get-docs-proxy.json");
    }

    #[test]
    fn bodies_come_from_the_schema_example() {
        let document = serde_json::json!({
            "paths": { "/x": { "post": { "requestBody": { "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/X" } } } } } } },
            "components": { "schemas": { "X": { "example": { "name": "n" } } } },
        });
        let route = HttpRoute { method: "POST".into(), path: "/x".into() };
        let event = event(&document, &route);
        assert_eq!(event["body"], "{\"name\":\"n\"}");
        assert_eq!(event["headers"]["content-type"], "application/json");
    }
}
