//! The API description stays true: the same routes as template.yaml (and as the functions
//! serve), the same public routes as the functions declare, and served as is.

use std::collections::BTreeSet;

use integration_tests::{documented_routes, openapi, Harness};
use serde_json::Value;

#[tokio::test]
async fn openapi_describes_exactly_the_template_routes() {
    let h = Harness::new().await;
    let documented: BTreeSet<String> = documented_routes().into_keys().collect();
    // `{proxy+}` routes serve the docs page's static files, which are not part of the API.
    let deployed: BTreeSet<String> = h.stack.template.api_route_keys().into_iter().collect();
    let undocumented: Vec<_> = deployed.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&deployed).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
    assert!(phantom.is_empty(), "openapi.json documents routes the template does not deploy: {phantom:?}");
}

#[tokio::test]
async fn public_routes_are_the_documented_public_ones() {
    let h = Harness::new().await;
    for (route, public) in documented_routes() {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{id}", "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10");
        let reply = h.send(method, &path, vec![], None).await;
        if public && method == "GET" {
            assert_eq!(reply.status, 200, "{route} is documented as public: {}", reply.text());
        } else if public {
            // Public routes that take a body refuse the missing one, never for want of a token.
            assert_eq!(reply.status, 415, "{route} is documented as public: {}", reply.text());
        } else {
            assert_eq!(reply.status, 401, "{route} is documented as needing a token");
        }
    }
}

#[tokio::test]
async fn every_operation_documents_its_errors_as_problem_json() {
    let spec = openapi();
    assert_eq!(spec["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(responses) = op.get("responses").and_then(Value::as_object) else { continue };
            let public = op.get("security").and_then(Value::as_array).is_some_and(Vec::is_empty);
            if !public {
                for status in ["400", "401", "404"] {
                    assert!(responses.contains_key(status), "{method} {path} does not document {status}");
                }
            }
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
        }
    }
}

#[tokio::test]
async fn the_api_serves_its_description_and_a_docs_page() {
    let h = Harness::new().await;
    let served = h.send("GET", "/openapi.json", vec![], None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), docs::served_document(), "served as committed, with the build's version");
    let docs = h.send("GET", "/docs", vec![], None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.header("content-type").unwrap().starts_with("text/html"));
    let page = docs.text();
    for route in h.stack.template.api_route_keys().into_iter() {
        let path = route.split_once(' ').unwrap().1;
        assert!(page.contains(path), "the docs page does not mention {path}");
    }
}
