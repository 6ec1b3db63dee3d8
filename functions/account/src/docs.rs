//! A self-contained HTML page describing the API, rendered from the OpenAPI document (no
//! scripts or assets fetched from elsewhere, so it works offline and under a strict CSP).

use serde_json::Value;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(v: &Value) -> String {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r.rsplit('/').next().unwrap_or(r).to_owned(),
        None => v.get("type").map(|t| t.to_string().replace('"', "")).unwrap_or_else(|| "object".into()),
    }
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => spec.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

pub fn render(openapi: &str) -> String {
    let spec: Value = serde_json::from_str(openapi).expect("openapi.json is valid JSON (checked by tests)");
    let title = spec["info"]["title"].as_str().unwrap_or("API");
    let mut body = String::new();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, operations) in paths {
            for (method, op) in operations.as_object().into_iter().flatten() {
                if op.get("responses").is_none() {
                    continue;
                }
                let public = op.get("security").and_then(Value::as_array).is_some_and(Vec::is_empty);
                body.push_str(&format!(
                    "<section><h2><span class=m>{}</span> <code>{}</code>{}</h2><p>{}</p>",
                    method.to_uppercase(),
                    escape(path),
                    if public { " <small>public</small>" } else { "" },
                    escape(op["summary"].as_str().or(op["description"].as_str()).unwrap_or("")),
                ));
                let params: Vec<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| resolve(&spec, p))
                    .map(|p| {
                        format!(
                            "<code>{}</code> ({})",
                            escape(p["name"].as_str().unwrap_or("?")),
                            escape(p["in"].as_str().unwrap_or("?"))
                        )
                    })
                    .collect();
                if !params.is_empty() {
                    body.push_str(&format!("<p>Parameters: {}</p>", params.join(", ")));
                }
                if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                    body.push_str(&format!("<p>Body: <code>{}</code></p>", escape(&schema_name(schema))));
                }
                let statuses: Vec<String> =
                    op["responses"].as_object().into_iter().flatten().map(|(s, _)| s.clone()).collect();
                body.push_str(&format!("<p>Responses: {}</p></section>\n", escape(&statuses.join(", "))));
            }
        }
    }
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8><title>{t}</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}\
         section{{border-top:1px solid #ddd}}h2{{font-size:1.05em}}.m{{display:inline-block;min-width:4.5em}}</style>\
         <h1>{t}</h1><p>Every route but the public ones needs <code>Authorization: Bearer &lt;JWT&gt;</code>. \
         Machine-readable description: <a href=\"openapi.json\">openapi.json</a>.</p>\n{body}</html>",
        t = escape(title)
    )
}
