//! Account: profile on first use, export of everything, deletion of everything, health.

use std::collections::BTreeMap;

use integration_tests::{Harness, User};
use serde_json::{json, Value};

/// Gives `user` something in every table and one uploaded file.
async fn populate(h: &Harness, user: &User, tag: &str) {
    assert_eq!(h.call(Some(user), "GET", "/me", None).await.status, 200);
    for i in 0..3 {
        let r = h.call(Some(user), "POST", "/canvases", Some(json!({"name": format!("{tag} canvas {i}")}))).await;
        assert_eq!(r.status, 201);
    }
    let sid = h.call(Some(user), "POST", "/sessions", Some(json!({"title": tag}))).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..4 {
        let r = h
            .call(
                Some(user),
                "POST",
                &format!("/sessions/{sid}/messages"),
                Some(json!({"role": "user", "content": format!("{tag} {i}")})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let r = h.call(Some(user), "POST", "/workflows", Some(json!({"name": tag, "graph": {"1": {}}}))).await;
    assert_eq!(r.status, 201);
    let file = h
        .call(Some(user), "POST", "/files", Some(json!({"name": "a.txt", "content_type": "text/plain", "size": 5})))
        .await
        .json();
    let upload = &file["upload"];
    let status = reqwest::Client::new()
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "text/plain")
        .body(b"hello".to_vec())
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
}

async fn export_all(h: &Harness, user: &User, limit: u32) -> (Vec<Value>, usize) {
    let (items, pages) = h.list_all(user, "/me/export", limit).await;
    (items, pages.len())
}

fn kinds(items: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for i in items {
        *counts.entry(i["kind"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn health_is_public_and_reports_the_build() {
    let h = Harness::new().await;
    let r = h.call(None, "GET", "/health", None).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert!(body["version"].as_str().unwrap().starts_with(env!("CARGO_PKG_VERSION")), "{body}");
}

#[tokio::test]
async fn profile_is_created_once_even_under_concurrent_first_requests() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let replies = futures_join(&h, &alice).await;
    let first = replies[0].clone();
    assert_eq!(first["user_id"], json!(alice.id));
    assert!(replies.iter().all(|r| *r == first), "all first requests see the same profile: {replies:?}");
    h.call(None, "GET", "/me", None).await.assert_problem(401);
}

async fn futures_join(h: &Harness, user: &User) -> Vec<Value> {
    let (a, b, c, d) = tokio::join!(
        h.call(Some(user), "GET", "/me", None),
        h.call(Some(user), "GET", "/me", None),
        h.call(Some(user), "GET", "/me", None),
        h.call(Some(user), "GET", "/me", None),
    );
    [a, b, c, d]
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        })
        .collect()
}

#[tokio::test]
async fn export_returns_everything_across_pages_and_nothing_of_others() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    populate(&h, &alice, "alice").await;
    populate(&h, &bob, "bob").await;
    let (items, pages) = export_all(&h, &alice, 3).await;
    assert!(pages >= 4, "small pages: {pages}");
    let expected: BTreeMap<String, usize> =
        [("canvas", 3), ("file", 1), ("message", 4), ("profile", 1), ("session", 1), ("workflow", 1)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
    assert_eq!(kinds(&items), expected);
    let text = serde_json::to_string(&items).unwrap();
    assert!(!text.contains("bob"), "nothing of bob's");
    assert!(!text.contains("session_order"), "no storage details");
    for limit in [1, 2, 100] {
        let (paged, _) = export_all(&h, &alice, limit).await;
        assert_eq!(paged.len(), items.len(), "page size {limit} does not change the content");
    }
}

#[tokio::test]
async fn deleting_me_removes_everything_of_mine_and_nothing_of_bobs() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    populate(&h, &alice, "alice").await;
    populate(&h, &bob, "bob").await;
    let bob_before = export_all(&h, &bob, 100).await.0;

    let r = h.call(Some(&alice), "DELETE", "/me", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deleted = r.json()["deleted"].clone();
    assert_eq!(
        deleted,
        json!({"canvas": 3, "file": 1, "message": 4, "object": 1, "profile": 1, "session": 1, "workflow": 1})
    );

    for path in ["/canvases", "/sessions", "/workflows", "/files"] {
        assert!(h.list_all(&alice, path, 50).await.0.is_empty(), "{path} still has alice's items");
    }
    // A retry finds nothing left and succeeds (resumable).
    let again = h.call(Some(&alice), "DELETE", "/me", None).await.json();
    assert!(again["deleted"].as_object().unwrap().values().all(|v| v == 0), "{again}");

    let bob_after = export_all(&h, &bob, 100).await.0;
    assert_eq!(
        serde_json::to_string(&bob_before).unwrap(),
        serde_json::to_string(&bob_after).unwrap(),
        "bob's data is byte-for-byte intact"
    );
    let bob_file = bob_after.iter().find(|i| i["kind"] == "file").unwrap()["item"]["id"].as_str().unwrap().to_owned();
    let done = h.call(Some(&bob), "POST", &format!("/files/{bob_file}/complete"), None).await;
    assert_eq!(done.status, 200, "bob's object is still in S3: {}", done.text());
}
