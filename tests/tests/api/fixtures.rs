//! Every route of template.yaml has an API Gateway v2 event in events/, and each one runs
//! through its function's handler.

use std::collections::{BTreeMap, HashSet};

use integration_tests::{fixture, fixtures, public_example_status, public_routes, Harness};
use serde_json::{json, Value};
use shared::access::Role;

use crate::teams::Team;

/// Puts the token and real path parameters into a fixture event.
fn fill(event: &mut Value, bearer: &Value, path: &str, params: &BTreeMap<&str, String>) {
    event["headers"]["authorization"] = bearer.clone();
    let mut raw = path.to_owned();
    for (name, value) in params {
        if raw.contains(&format!("{{{name}}}")) {
            event["pathParameters"][name] = json!(value);
            raw = raw.replace(&format!("{{{name}}}"), value);
        }
    }
    event["rawPath"] = json!(raw);
    event["requestContext"]["http"]["path"] = json!(raw);
}

/// The status each fixture gets on a freshly created item (default: 2xx).
fn expected_status(route: &str) -> Option<u16> {
    match route {
        // A new workflow's run is idle: only `start` applies.
        r if r.contains("/workflows/{id}/run/") && r.starts_with("POST") && !r.ends_with("/start") => Some(409),
        // Nothing was uploaded to the new file.
        r if r.ends_with("/files/{id}/complete") => Some(409),
        // The fixture names a user who is not a member.
        "POST /orgs/{org_id}/transfer" => Some(409),
        // The fixture's token is well formed but names no invitation.
        "POST /invitations/accept" => Some(404),
        // The examples name no account that can confirm or sign in.
        r if r.starts_with("POST /auth/") && public_example_status(r) != 200 => Some(public_example_status(r)),
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
    let by_route: BTreeMap<String, String> = fixtures().into_iter().map(|(file, route)| (route, file)).collect();
    for (file, route) in fixtures() {
        // A user per fixture: `DELETE /me` refuses later creates with the token it ran with.
        let alice = h.user("alice");
        let bearer = json!(format!("Bearer {}", alice.token));
        let (method, path) = route.split_once(' ').unwrap();
        let binary = h
            .stack
            .route(method, &path.replace('{', "x").replace('}', ""))
            .map(|(f, _, _)| f.spec.binary.clone())
            .unwrap();

        // As committed, a fixture carries a placeholder token: refused.
        let as_committed = h.invoke(&binary, &fixture(&file, |_| {})).await;
        if public_routes().contains(&route) {
            assert_eq!(as_committed.status, public_example_status(&route), "{file}: {}", as_committed.text());
        } else {
            as_committed.assert_problem(401);
        }

        // With a real token; teams routes in alice's own organization and project (a helper
        // member for member routes); item routes on a real item made by its collection's POST
        // fixture.
        let mut params = BTreeMap::new();
        if path.contains("{org_id}") || path.contains("{project_id}") {
            let team = Team::new(&h, alice.clone()).await;
            if path.contains("{user_id}") {
                let helper = h.user("helper");
                team.add(&h, &helper, Role::Member, Some(Role::Member)).await;
                params.insert("user_id", helper.id);
            }
            params.insert("org_id", team.org);
            params.insert("project_id", team.project);
        }
        if let Some(end) = path.find("/{id}") {
            let collection = &path[..end];
            let create = by_route[&format!("POST {collection}")].clone();
            let created = h.invoke(&binary, &fixture(&create, |e| fill(e, &bearer, collection, &params))).await;
            assert_eq!(created.status, 201, "{file}: {}", created.text());
            let body = created.json();
            let item = if body.get("file").is_some() { &body["file"] } else { &body };
            params.insert("id", item["id"].as_str().unwrap().to_owned());
        }
        let request = fixture(&file, |e: &mut Value| fill(e, &bearer, path, &params));
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
