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
    link_item_operations(&mut doc["paths"]);
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

/// OpenAPI links, so clients and stateful testers can follow them: from each create (`POST /x`
/// answering 201) to every operation on the item it made (`/x/{id}` and below), and from every
/// operation on an item but its deletion to the operations beside it. Conditional writes are
/// given the ETag of the response they follow, when it has one.
fn link_item_operations(paths: &mut Value) {
    let Some(all) = paths.as_object() else { return };
    // (path, method, the item's operations, where the id comes from, whether an ETag comes back)
    let mut sources: Vec<(String, String, String, &str, bool)> = Vec::new();
    for (path, item) in all {
        if let Some(created) = item.pointer("/post/responses/201") {
            let etag = created.pointer("/headers/ETag").is_some();
            sources.push((path.clone(), "post".into(), format!("{path}/{{id}}"), "$response.body#/id", etag));
        }
        if let Some(at) = path.find("/{id}") {
            // The operations beside this one: all of the item's from the item itself, those of
            // the same sub-resource from deeper down (a run's transitions lead to its others).
            let item_path = &path[..at + "/{id}".len()];
            let prefix = match path.rsplit_once('/') {
                Some((parent, _)) if parent.len() > item_path.len() => parent.to_owned(),
                _ => item_path.to_owned(),
            };
            for (method, operation) in item.as_object().into_iter().flatten().filter(|(m, _)| is_method(m)) {
                let Some((_, success)) = operation["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(status, _)| status.starts_with('2'))
                else {
                    continue;
                };
                if method != "delete" {
                    let etag = success.pointer("/headers/ETag").is_some();
                    sources.push((path.clone(), method.clone(), prefix.clone(), "$request.path.id", etag));
                }
            }
        }
    }
    let mut links: Vec<(String, String, Map<String, Value>)> = Vec::new();
    for (path, method, prefix, id_from, etag) in sources {
        let mut targets = Map::new();
        let item_paths = all.iter().filter(|(p, _)| **p == prefix || p.starts_with(&format!("{prefix}/")));
        for (other, other_item) in item_paths {
            for (other_method, operation) in other_item.as_object().into_iter().flatten().filter(|(m, _)| is_method(m))
            {
                if (other.as_str(), other_method.as_str()) == (path.as_str(), method.as_str()) {
                    continue;
                }
                let Some(id) = operation["operationId"].as_str() else { continue };
                let mut parameters = json!({ "id": id_from });
                // The item lives where its source does: the same project (`{project_id}`).
                for name in path_parameters(&path).filter(|n| *n != "id") {
                    parameters[name] = json!(format!("$request.path.{name}"));
                }
                let conditional = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match" && p["in"] == "header"));
                if conditional && etag {
                    parameters["header.If-Match"] = json!("$response.header.ETag");
                }
                let name = format!("{}{}", other_method.to_uppercase(), other.replace(['/', '{', '}', '.'], "_"));
                targets.insert(name, json!({ "operationId": id, "parameters": parameters }));
            }
        }
        if !targets.is_empty() {
            links.push((path, method, targets));
        }
    }
    for (path, method, targets) in links {
        let operation = &mut paths[&path][&method];
        let status = if method == "post" && operation.pointer("/responses/201").is_some() {
            "201".to_owned()
        } else {
            operation["responses"]
                .as_object()
                .and_then(|r| r.keys().find(|s| s.starts_with('2')).cloned())
                .expect("sources have a success response")
        };
        operation["responses"][&status]["links"] = Value::Object(targets);
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

/// The names of a path template's parameters (`/projects/{project_id}/x/{id}`: project_id, id).
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn is_method(name: &str) -> bool {
    matches!(name, "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace")
}

/// Public operations say `security: [{}]` or `[]` where declared; every other one needs the
/// bearer token and may answer the pipeline's problems.
fn finish_operation(method: &str, operation: &mut Value, team: bool) {
    let public =
        operation["security"].as_array().is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
    operation["security"] = if public { json!([]) } else { json!([{ "bearer": [] }]) };
    let has_body = operation.get("requestBody").is_some();
    let writes = matches!(method, "post" | "patch" | "put" | "delete");
    let responses = operation["responses"].as_object_mut().expect("every operation has responses");
    // A public route declares its own errors (the auth routes'); the rest are about tokens.
    for (status, description) in PROBLEMS.iter().filter(|_| !public) {
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
    // A route's own error statuses (declared with a description only) are problems too.
    for (status, response) in responses.iter_mut() {
        if (status.starts_with('4') || status.starts_with('5')) && response.get("content").is_none() {
            let description = response["description"].as_str().unwrap_or_default().to_owned();
            *response = problem(&description);
        }
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
    })
}
