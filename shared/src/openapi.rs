//! The API's OpenAPI document, assembled from the areas' routers (each route is described where
//! it is declared) plus what every operation shares: bearer authentication, and the
//! problem+json answers the pipeline gives.

use serde_json::{json, Map, Value};
use utoipa::openapi::OpenApi;

/// The statuses of problem+json answers, with what they mean.
const PROBLEMS: &[(&str, &str)] = &[
    ("400", "Bad input: malformed JSON, unknown or protected fields, invalid values, paging or cursor"),
    ("401", "No valid bearer token"),
    ("403", "The caller's role in the organization or project does not allow this"),
    ("404", "Not found, or not the caller's"),
    ("409", "Conflicts with the current state"),
    ("412", "If-Match names a version that is not current"),
    ("413", "Too large"),
    ("415", "The body is not application/json"),
    ("503", "DynamoDB is throttling or unavailable: retry"),
];

/// The whole API's document from the areas' descriptions.
pub fn document(areas: impl IntoIterator<Item = OpenApi>) -> Value {
    let mut merged = OpenApi::default();
    for area in areas {
        // Merging keeps the first of two schemas of one name: two types must not share one.
        if let (Some(have), Some(new)) = (&merged.components, &area.components) {
            for (name, schema) in &new.schemas {
                let same = have
                    .schemas
                    .get(name)
                    .is_none_or(|s| serde_json::to_value(s).ok() == serde_json::to_value(schema).ok());
                assert!(same, "two different schemas are named {name}: rename one (`#[schema(as = ...)]`)");
            }
        }
        merged.merge(area);
    }
    let mut doc = serde_json::to_value(merged).expect("an OpenAPI document serializes");
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "Multi-tenant AI design and chat API",
        "version": crate::BUILD_VERSION,
        "description": "Every route but the public ones needs `Authorization: Bearer <JWT>`; each caller sees and \
                        changes only their own data. Errors are application/problem+json with the request id.",
    });
    let components = doc["components"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut components = Value::Object(components);
    components["securitySchemes"] = json!({ "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } });
    components["schemas"]["Problem"] = json!({
        "type": "object",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "request_id": { "type": "string" },
        },
    });
    doc["components"] = components;
    link_created_items(&mut doc["paths"]);
    require_a_change_in_patches(&mut doc);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            let team = path.starts_with("/orgs") || path.starts_with("/projects/");
            for (method, operation) in item.iter_mut() {
                if is_method(method) {
                    finish_operation(method, operation, team);
                }
            }
        }
    }
    doc
}

/// OpenAPI links from each create operation (`POST /x` answering 201) to every operation on the
/// item it made (`/x/{id}` and below), so clients and stateful testers can follow them.
fn link_created_items(paths: &mut Value) {
    let Some(all) = paths.as_object() else { return };
    let mut links: Vec<(String, Map<String, Value>)> = Vec::new();
    for (path, item) in all {
        if item.pointer("/post/responses/201").is_none() {
            continue;
        }
        let prefix = format!("{path}/{{id}}");
        let mut targets = Map::new();
        for (other, other_item) in all.iter().filter(|(p, _)| **p == prefix || p.starts_with(&format!("{prefix}/"))) {
            for (method, operation) in other_item.as_object().into_iter().flatten().filter(|(m, _)| is_method(m)) {
                let Some(id) = operation["operationId"].as_str() else { continue };
                let name = format!("{}{}", method.to_uppercase(), other.replace(['/', '{', '}', '.'], "_"));
                targets.insert(name, json!({ "operationId": id, "parameters": { "id": "$response.body#/id" } }));
            }
        }
        if !targets.is_empty() {
            links.push((path.clone(), targets));
        }
    }
    for (path, targets) in links {
        paths[&path]["post"]["responses"]["201"]["links"] = Value::Object(targets);
    }
}

/// A PATCH body must name something to change (`{}` is a 400, "nothing to update").
fn require_a_change_in_patches(doc: &mut Value) {
    let patched: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.pointer("/patch/requestBody/content/application~1json/schema/$ref")?.as_str())
        .filter_map(|r| r.strip_prefix("#/components/schemas/").map(str::to_owned))
        .collect();
    for name in patched {
        if let Some(schema) = doc["components"]["schemas"].get_mut(&name) {
            schema["minProperties"] = json!(1);
        }
    }
}

fn is_method(name: &str) -> bool {
    matches!(name, "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace")
}

/// Public operations say `security: [{}]` or `[]` where declared; every other one needs the
/// bearer token and may answer the pipeline's problems.
fn finish_operation(method: &str, operation: &mut Value, team: bool) {
    let public =
        operation["security"].as_array().is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
    if public {
        operation["security"] = json!([]);
        return;
    }
    operation["security"] = json!([{ "bearer": [] }]);
    let has_body = operation.get("requestBody").is_some();
    let writes = matches!(method, "post" | "patch" | "put" | "delete");
    let responses = operation["responses"].as_object_mut().expect("every operation has responses");
    for (status, description) in PROBLEMS {
        let applies = match *status {
            "409" | "412" => writes,
            "413" | "415" => has_body,
            // Only a role can refuse: routes of organizations and projects.
            "403" => team,
            _ => true,
        };
        if applies && !responses.contains_key(*status) {
            responses.insert((*status).to_owned(), problem(description));
        }
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
    })
}
