//! Every route of template.yaml has an API Gateway v2 event in events/, and each one runs
//! through its function's handler.

use std::collections::HashSet;

use integration_tests::{fixture, fixtures, public_routes, Harness};
use serde_json::{json, Value};

/// The status each fixture gets on a freshly created item (default: 2xx).
fn expected_status(route: &str) -> Option<u16> {
    match route {
        // A new workflow's run is idle: only `start` applies.
        "POST /workflows/{id}/run/pause"
        | "POST /workflows/{id}/run/resume"
        | "POST /workflows/{id}/run/complete"
        | "POST /workflows/{id}/run/reset" => Some(409),
        // Nothing was uploaded to the new file.
        "POST /files/{id}/complete" => Some(409),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_has_a_fixture() {
    let h = Harness::new().await;
    let covered: HashSet<String> = fixtures().into_values().collect();
    for route in h.stack.template.api_route_keys() {
        assert!(
            covered.contains(&route),
            "no fixture in events/ for {route}: run `cargo run -p local-stack -- events`"
        );
    }
}

#[tokio::test]
async fn each_fixture_runs_through_its_handler() {
    let h = Harness::new().await;
    let mut ran = 0;
    for (file, route) in fixtures() {
        // A user per fixture: `DELETE /me` refuses later creates with the token it ran with.
        let alice = h.user("alice");
        let bearer = json!(format!("Bearer {}", alice.token));
        let (method, path) = route.split_once(' ').unwrap();
        let binary = h.stack.route(method, &path.replace("{id}", "x")).map(|(f, _, _)| f.spec.binary.clone()).unwrap();

        // As committed, a fixture carries a placeholder token: refused.
        let as_committed = h.invoke(&binary, &fixture(&file, |_| {})).await;
        if public_routes().contains(&route) {
            assert_eq!(as_committed.status, 200, "{file}");
        } else {
            as_committed.assert_problem(401);
        }

        // With a real token, and for item routes a real item created by its collection's POST fixture.
        let collection = path.split('/').nth(1).unwrap();
        let id = if path.contains("{id}") {
            let created = h
                .invoke(
                    &binary,
                    &fixture(&format!("post-{collection}.json"), |e| e["headers"]["authorization"] = bearer.clone()),
                )
                .await;
            assert_eq!(created.status, 201, "{file}: {}", created.text());
            let body = created.json();
            let item = if body.get("file").is_some() { &body["file"] } else { &body };
            Some(item["id"].as_str().unwrap().to_owned())
        } else {
            None
        };
        let request = fixture(&file, |e: &mut Value| {
            e["headers"]["authorization"] = bearer.clone();
            if let Some(id) = &id {
                e["pathParameters"]["id"] = json!(id);
                let raw = path.replace("{id}", id);
                e["rawPath"] = json!(raw);
                e["requestContext"]["http"]["path"] = json!(raw);
            }
        });
        let reply = h.invoke(&binary, &request).await;
        match expected_status(&route) {
            Some(status) => assert_eq!(reply.status, status, "{file}: {}", reply.text()),
            None => assert!((200..300).contains(&reply.status), "{file}: {} {}", reply.status, reply.text()),
        }
        ran += 1;
    }
    assert_eq!(ran, h.stack.template.api_route_keys().len());
    println!("{ran} fixtures ran through their handlers");
}
