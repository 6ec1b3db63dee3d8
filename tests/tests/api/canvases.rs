//! Canvases end to end: real handlers, real DynamoDB Local.

use std::collections::HashSet;

use integration_tests::{Harness, User};
use serde_json::{json, Value};

async fn create(h: &Harness, user: &User, name: &str) -> Value {
    let reply = h.call(Some(user), "POST", "/canvases", Some(json!({"name": name, "data": {"n": name}}))).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn count(h: &Harness, user: &User) -> usize {
    h.list_all(user, "/canvases", 100).await.0.len()
}

#[tokio::test]
async fn lifecycle_create_get_update_delete() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let created = h
        .call(
            Some(&alice),
            "POST",
            "/canvases",
            Some(json!({"name": "Plan", "description": "d", "data": {"shapes": [1, 2]}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("etag"), Some("\"1\""));
    let canvas = created.json();
    let cid = id(&canvas);
    assert_eq!(created.header("location"), Some(format!("/canvases/{cid}").as_str()));
    assert_eq!(canvas["version"], 1);
    assert_eq!(canvas["data"], json!({"shapes": [1, 2]}));
    assert_eq!(canvas["created_at"], canvas["updated_at"]);
    assert!(canvas.get("user_id").is_none(), "internal attributes never leak: {canvas}");

    let got = h.call(Some(&alice), "GET", &format!("/canvases/{cid}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), canvas);

    let updated = h
        .call_with(
            &alice,
            "PATCH",
            &format!("/canvases/{cid}"),
            &[("if-match", "\"1\"")],
            Some(json!({"name": "Plan B", "description": null})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let after = updated.json();
    assert_eq!(after["name"], "Plan B");
    assert_eq!(after["description"], Value::Null, "null clears the description");
    assert_eq!(after["data"], json!({"shapes": [1, 2]}), "absent fields are kept");
    assert_eq!(after["version"], 2);
    assert_eq!(after["created_at"], canvas["created_at"]);
    assert!(after["updated_at"].as_str() > canvas["updated_at"].as_str());
    assert_eq!(updated.header("etag"), Some("\"2\""));

    let deleted = h.call(Some(&alice), "DELETE", &format!("/canvases/{cid}"), None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    h.call(Some(&alice), "GET", &format!("/canvases/{cid}"), None).await.assert_problem(404);
    h.call(Some(&alice), "DELETE", &format!("/canvases/{cid}"), None).await.assert_problem(404);
    h.call(Some(&alice), "PATCH", &format!("/canvases/{cid}"), Some(json!({"name": "x"}))).await.assert_problem(404);
}

#[tokio::test]
async fn paging_through_three_pages_loses_and_repeats_nothing() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(id(&create(&h, &alice, &format!("c{i}")).await));
    }
    let (items, pages) = h.list_all(&alice, "/canvases", 3).await;
    assert_eq!(pages, vec![3, 3, 1], "three pages, the last one short, no empty trailing page");
    let listed: Vec<String> = items.iter().map(id).collect();
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 7, "no repeats");
    ids.reverse();
    assert_eq!(listed, ids, "newest first, every item exactly once");
    assert!(items.iter().all(|i| i.get("data").is_none() && i.get("user_id").is_none()), "lists carry summaries only");

    let (_, pages) = h.list_all(&alice, "/canvases", 7).await;
    assert_eq!(pages, vec![7], "an exact fit is one page");
}

#[tokio::test]
async fn list_is_ordered_by_updated_at() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let first = id(&create(&h, &alice, "first").await);
    let second = id(&create(&h, &alice, "second").await);
    let (items, _) = h.list_all(&alice, "/canvases", 20).await;
    assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![second.clone(), first.clone()]);
    let r = h.call(Some(&alice), "PATCH", &format!("/canvases/{first}"), Some(json!({"name": "touched"}))).await;
    assert_eq!(r.status, 200);
    let (items, _) = h.list_all(&alice, "/canvases", 20).await;
    assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![first, second], "an update moves a canvas to the top");
}

#[tokio::test]
async fn optimistic_concurrency() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let cid = id(&create(&h, &alice, "c").await);
    let path = format!("/canvases/{cid}");
    let ok = h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"name": "v2"}))).await;
    assert_eq!(ok.status, 200);
    let stale = h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"name": "lost"}))).await;
    stale.assert_problem(412);
    let stale_delete = h.call_with(&alice, "DELETE", &path, &[("if-match", "\"1\"")], None).await;
    stale_delete.assert_problem(412);
    let current = h.call(Some(&alice), "GET", &path, None).await.json();
    assert_eq!(
        (current["name"].as_str(), current["version"].as_u64()),
        (Some("v2"), Some(2)),
        "the lost writes changed nothing"
    );
    // Tags that cannot name a version (weak, foreign, not an ETag list at all) never match:
    // refused as stale rather than written unconditionally.
    for never in ["W/\"2\"", "\"two\"", "not-a-version"] {
        h.call_with(&alice, "PATCH", &path, &[("if-match", never)], Some(json!({"name": "x"})))
            .await
            .assert_problem(412);
    }
    let missing = format!("/canvases/{}", uuid::Uuid::now_v7());
    h.call_with(&alice, "DELETE", &missing, &[("if-match", "\"1\"")], None).await.assert_problem(404);
    assert_eq!(h.call(Some(&alice), "GET", &path, None).await.json()["name"], "v2");

    // Two writers racing on the same version: exactly one wins.
    let (a, b) = tokio::join!(
        h.call_with(&alice, "PATCH", &path, &[("if-match", "\"2\"")], Some(json!({"name": "A"}))),
        h.call_with(&alice, "PATCH", &path, &[("if-match", "\"2\"")], Some(json!({"name": "B"}))),
    );
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, vec![200, 412]);
    assert_eq!(h.call(Some(&alice), "GET", &path, None).await.json()["version"], 3);
    // A list matches when any of its tags is the current version.
    let deleted = h.call_with(&alice, "DELETE", &path, &[("if-match", "\"9\", W/\"3\", \"3\"")], None).await;
    assert_eq!(deleted.status, 204);
}

#[tokio::test]
async fn another_users_canvas_is_invisible_and_untouchable() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let canvas = create(&h, &alice, "secret plans").await;
    let path = format!("/canvases/{}", id(&canvas));
    let missing = format!("/canvases/{}", uuid::Uuid::now_v7());

    for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "pwned"}))), ("DELETE", None)] {
        let theirs = h.call(Some(&bob), method, &path, body.clone()).await;
        let nobodys = h.call(Some(&bob), method, &missing, body).await;
        theirs.assert_problem(404);
        nobodys.assert_problem(404);
        assert_eq!(theirs.body_without_request_id(), nobodys.body_without_request_id(), "{method}: 404s must not tell");
        assert!(!theirs.text().contains("secret"));
    }
    let still = h.call(Some(&alice), "GET", &path, None).await;
    assert_eq!(still.json(), canvas, "bob's attempts changed nothing");

    create(&h, &bob, "bob's own").await;
    let (bobs, _) = h.list_all(&bob, "/canvases", 100).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["name"], "bob's own");

    // A cursor minted for alice is refused for bob.
    for i in 0..2 {
        create(&h, &alice, &format!("more {i}")).await;
    }
    let page = h.call(Some(&alice), "GET", "/canvases?limit=1", None).await.json();
    let cursor = page["next_cursor"].as_str().expect("alice has more pages").to_owned();
    let foreign = h.call(Some(&bob), "GET", &format!("/canvases?limit=1&cursor={cursor}"), None).await;
    foreign.assert_problem(400);
    let own = h.call(Some(&alice), "GET", &format!("/canvases?limit=1&cursor={cursor}"), None).await;
    assert_eq!(own.status, 200);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "name"),
        (json!({"name": ""}), 400, "name"),
        (json!({"name": "x".repeat(201)}), 400, "name"),
        (json!({"name": 5}), 400, "invalid type"),
        (json!({"name": "ok", "user_id": "bob"}), 400, "user_id"),
        (json!({"name": "ok", "id": "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10"}), 400, "`id`"),
        (json!({"name": "ok", "version": 9}), 400, "version"),
        (json!({"name": "ok", "created_at": "2020-01-01T00:00:00Z"}), 400, "created_at"),
        (json!({"name": "ok", "updated_at": "2020-01-01T00:00:00Z"}), 400, "updated_at"),
        (json!({"name": "ok", "colour": "red"}), 400, "unknown field"),
        (json!({"name": "ok", "data": [1, 2]}), 400, "data must be a JSON object"),
        (json!({"name": "ok", "data": {"blob": "x".repeat(360 * 1024)}}), 413, ""),
        (json!(["name"]), 400, "JSON object"),
    ];
    for (body, status, needle) in cases {
        let reply = h.call(Some(&alice), "POST", "/canvases", Some(body.clone())).await;
        let problem = reply.assert_problem(status);
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{body}: {problem}");
    }
    let raw_cases: Vec<(&[u8], u16)> =
        vec![(b"{\"name\": ", 400), (b"", 400), (b"   ", 400), (b"{\"name\": \"\xff\xfe\"}", 400), (b"null", 400)];
    for (bytes, status) in raw_cases {
        let headers = vec![Harness::auth(&alice), ("content-type".into(), "application/json".into())];
        h.send("POST", "/canvases", headers, Some(bytes)).await.assert_problem(status);
    }
    let huge = vec![b' '; 400 * 1024];
    let headers = vec![Harness::auth(&alice), ("content-type".into(), "application/json".into())];
    h.send("POST", "/canvases", headers, Some(&huge)).await.assert_problem(413);
    let form = vec![Harness::auth(&alice), ("content-type".into(), "application/x-www-form-urlencoded".into())];
    h.send("POST", "/canvases", form, Some(b"name=x")).await.assert_problem(415);
    assert_eq!(count(&h, &alice).await, 0, "no refused request wrote anything");

    let cid = id(&create(&h, &alice, "c").await);
    let path = format!("/canvases/{cid}");
    for body in
        [json!({}), json!({"name": null}), json!({"data": null}), json!({"version": 7}), json!({"user_id": "bob"})]
    {
        h.call(Some(&alice), "PATCH", &path, Some(body)).await.assert_problem(400);
    }
    assert_eq!(h.call(Some(&alice), "GET", &path, None).await.json()["version"], 1, "refused patches wrote nothing");

    for query in ["limit=0", "limit=101", "limit=abc", "cursor=garbage", "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        h.call(Some(&alice), "GET", &format!("/canvases?{query}"), None).await.assert_problem(400);
    }
    h.call(Some(&alice), "GET", "/canvases/not-a-uuid", None).await.assert_problem(404);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_write_nothing() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let forged = User { id: alice.id.clone(), token: format!("{}x", alice.token) };
    let garbage = User { id: alice.id.clone(), token: "not.a.jwt".into() };
    for who in [None, Some(&forged), Some(&garbage)] {
        h.call(who, "POST", "/canvases", Some(json!({"name": "x"}))).await.assert_problem(401);
        h.call(who, "GET", "/canvases", None).await.assert_problem(401);
    }
    let basic = vec![("authorization".to_owned(), "Basic YWxpY2U6cHc=".to_owned())];
    h.send("GET", "/canvases", basic, None).await.assert_problem(401);
    assert_eq!(count(&h, &alice).await, 0);
}

#[tokio::test]
async fn the_local_gateway_serves_the_api_over_http() {
    let h = Harness::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(local_stack::gateway::serve(h.stack.clone(), listener));
    let http = reqwest::Client::new();

    let minted: Value = http
        .post(format!("{base}/dev/token"))
        .body(r#"{"user":"gw-alice"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap();
    let created = http
        .post(format!("{base}/canvases"))
        .bearer_auth(token)
        .json(&json!({"name": "over http"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let cid = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let list: Value =
        http.get(format!("{base}/canvases?limit=5")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert!(list["items"].as_array().unwrap().iter().any(|i| i["id"] == json!(cid)));
    let bad = http.post(format!("{base}/dev/token")).body(r#"{"user":"a b"}"#).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let cleanup = http.delete(format!("{base}/canvases/{cid}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(cleanup.status(), 204);
}

#[tokio::test]
async fn dynamodb_unavailable_is_a_503_with_retry_after() {
    let h = Harness::with(|s| s.dynamodb_endpoint = "http://127.0.0.1:9".into()).await;
    let alice = h.user("alice");
    for (method, path, body) in [("GET", "/canvases", None), ("POST", "/canvases", Some(json!({"name": "x"})))] {
        let reply = h.call(Some(&alice), method, path, body).await;
        let problem = reply.assert_problem(503);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(!problem["detail"].as_str().unwrap().contains("127.0.0.1"), "no internals leak: {problem}");
    }
}
