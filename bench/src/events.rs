//! Real API Gateway HTTP API (payload v2) events, from the `events/` fixtures that
//! `infra/events.py` writes for every template route: the fixture of the route, with the
//! path, path parameters, query, headers and body of the request filled in.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::BoxError;

pub struct Events {
    dir: PathBuf,
}

/// `GET /canvases/{id}` → `get-canvases-id.json`, as `infra/events.py` names them.
fn fixture_name(route_key: &str) -> String {
    let (method, path) = route_key.split_once(' ').unwrap_or(("GET", route_key));
    let path = path.replace(['{', '}'], "").replace('/', "-");
    format!("{}{path}.json", method.to_ascii_lowercase())
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Events {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn event(
        &self,
        route_key: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Vec<u8>, BoxError> {
        let file = self.dir.join(fixture_name(route_key));
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut event: Value = serde_json::from_str(&text)?;
        let pattern = route_key.split_once(' ').map_or(route_key, |(_, p)| p);
        let mut params = Map::new();
        for (want, have) in pattern.split('/').zip(path.split('/')) {
            if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                params.insert(name.to_owned(), json!(have));
            }
        }
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["requestId"] = json!(uuid::Uuid::now_v7().simple().to_string());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        event["requestContext"]["timeEpoch"] = json!(now);
        let object = event.as_object_mut().ok_or("fixture is a JSON object")?;
        if params.is_empty() {
            object.remove("pathParameters");
        } else {
            object.insert("pathParameters".into(), Value::Object(params));
        }
        object.insert(
            "rawQueryString".into(),
            json!(query.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&")),
        );
        if query.is_empty() {
            object.remove("queryStringParameters");
        } else {
            let q: Map<String, Value> = query.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            object.insert("queryStringParameters".into(), Value::Object(q));
        }
        let fixture_headers = object.entry("headers").or_insert_with(|| json!({}));
        if let Some(h) = fixture_headers.as_object_mut() {
            h.remove("authorization");
            h.remove("content-type");
            for (name, value) in headers {
                h.insert(name.to_ascii_lowercase(), json!(value));
            }
        }
        match body {
            Some(body) => {
                object.insert("body".into(), json!(body));
                object.insert("isBase64Encoded".into(), json!(false));
            }
            None => {
                object.remove("body");
                object.insert("isBase64Encoded".into(), json!(false));
            }
        }
        Ok(serde_json::to_vec(&event)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fixtures_like_events_py() {
        assert_eq!(fixture_name("GET /canvases/{id}"), "get-canvases-id.json");
        assert_eq!(fixture_name("GET /canvases"), "get-canvases.json");
        assert_eq!(fixture_name("POST /sessions/{id}/messages"), "post-sessions-id-messages.json");
    }

    #[test]
    fn fills_a_fixture() {
        let events = Events::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"));
        let bytes = events
            .event("GET /canvases/{id}", "/canvases/abc", &[("cursor", "a b")], &[("authorization", "Bearer t")], None)
            .unwrap();
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(event["pathParameters"]["id"], "abc");
        assert_eq!(event["rawQueryString"], "cursor=a%20b");
        assert_eq!(event["headers"]["authorization"], "Bearer t");
        assert_eq!(event["routeKey"], "GET /canvases/{id}");
    }
}
