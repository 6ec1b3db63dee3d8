//! Account: profile on first use, export of everything, deletion of everything, health.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{Harness, User};
use serde_json::{json, Value};
use shared::owned::{OWNED_TABLES, PROFILE_TABLE};

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
    // Every kind is counted; those alice had none of (a newer area's, say) count 0.
    let mut deleted = r.json()["deleted"].as_object().cloned().expect("counts by kind");
    deleted.retain(|_, count| count != 0);
    assert_eq!(
        Value::Object(deleted),
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

/// Items of `user` in each owned table, read straight from DynamoDB (tables are named by their
/// logical ids locally), and the attributes of their profile item.
async fn stored(h: &Harness, user: &User) -> (BTreeMap<&'static str, usize>, Option<Vec<String>>) {
    let client = shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone());
    let mut counts = BTreeMap::new();
    for table in OWNED_TABLES {
        let out = client
            .query()
            .table_name(table.logical_id)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user.id.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        counts.insert(table.kind, out.count() as usize);
    }
    let profile = client
        .get_item()
        .table_name(PROFILE_TABLE.logical_id)
        .key("user_id", AttributeValue::S(user.id.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .map(|item| {
            let mut names: Vec<String> = item.into_keys().collect();
            names.sort();
            names
        });
    (counts, profile)
}

/// A token for the same person, issued after the deletion. Token times are whole seconds and a
/// token of the deletion's own second counts as issued before it, hence the wait.
async fn signed_in_again(h: &Harness, user: &User) -> User {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    User { id: user.id.clone(), token: h.stack.token(&user.id) }
}

#[track_caller]
fn assert_account_deleted(reply: &integration_tests::Reply) {
    let body = reply.assert_problem(401);
    assert_eq!(body["detail"], "the account was deleted; sign in again", "{body}");
}

/// One create of each kind (a canvas, a session, a message in the task's session), with the
/// statuses seen and whether the request began after `deleted` was set.
async fn create_round(h: &Harness, user: &User, session: &str, i: usize, deleted: &AtomicBool) -> Vec<(u16, bool)> {
    let mut seen = Vec::new();
    for (path, body) in [
        ("/canvases".to_owned(), json!({"name": format!("racing {i}")})),
        ("/sessions".to_owned(), json!({"title": format!("racing {i}")})),
        (format!("/sessions/{session}/messages"), json!({"role": "user", "content": format!("racing {i}")})),
    ] {
        let after = deleted.load(Ordering::SeqCst);
        let reply = h.call(Some(user), "POST", &path, Some(body)).await;
        if reply.status == 401 {
            assert_account_deleted(&reply);
        }
        seen.push((reply.status, after));
    }
    seen
}

/// Six clients create as fast as they can with alice's token while `DELETE /me` runs, and go on
/// after it answered. Nothing created survives the deletion, and every create that began after
/// the answer is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_me_while_clients_create_leaves_nothing_and_refuses_the_old_token() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    populate(&h, &bob, "bob").await;
    let bob_before = stored(&h, &bob).await;
    assert_eq!(h.call(Some(&alice), "GET", "/me", None).await.status, 200);
    let deleted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (h, alice, deleted, stop) =
            (Harness { stack: h.stack.clone() }, alice.clone(), deleted.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let session = h.call(Some(&alice), "POST", "/sessions", Some(json!({"title": "racing"}))).await;
            assert_eq!(session.status, 201, "{}", session.text());
            let session = session.json()["id"].as_str().unwrap().to_owned();
            let mut seen = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                seen.extend(create_round(&h, &alice, &session, i, &deleted).await);
                i += 1;
            }
            seen
        }));
    }
    // Let the clients fill the partition a little, so the sweep has something to race with.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Bounded: a sweep that racing creates keep refilling never ends (the bug this guards).
    let r = tokio::time::timeout(Duration::from_secs(30), h.call(Some(&alice), "DELETE", "/me", None)).await;
    stop.store(r.is_err(), Ordering::SeqCst);
    let r = r.expect("DELETE /me answers within 30 s while clients create");
    assert_eq!(r.status, 200, "{}", r.text());
    deleted.store(true, Ordering::SeqCst);
    // The clients go on with the old token for a while after the answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }

    let created = seen.iter().filter(|(status, _)| *status == 201).count();
    assert!(created > 0, "the clients created items before the deletion: {seen:?}");
    let late: Vec<_> = seen.iter().filter(|(_, after)| *after).collect();
    assert!(!late.is_empty(), "some creates began after DELETE /me answered");
    // Refused: 401 (the account is deleted), or 404 for a message whose session the deletion
    // removed (the append finds no session before its transaction would meet the tombstone).
    assert!(
        late.iter().all(|(status, _)| [401, 404].contains(status)),
        "creates with the old token after the deletion: {late:?}"
    );
    assert!(late.iter().any(|(status, _)| *status == 401), "new items are refused as the deleted account's: {late:?}");
    // Racing the deletion, a create lands (201), is refused (401), or finds its session gone
    // (404) or busy (409); never a server error.
    assert!(seen.iter().all(|(status, _)| [201, 401, 404, 409].contains(status)), "{seen:?}");

    let (counts, profile) = stored(&h, &alice).await;
    assert!(counts.values().all(|n| *n == 0), "items of alice survived the deletion: {counts:?}");
    assert_eq!(
        profile.as_deref(),
        Some(&["deleted_at".to_owned(), "expires_at".to_owned(), "user_id".to_owned()][..]),
        "only the tombstone is left of the profile"
    );
    assert_account_deleted(&h.call(Some(&alice), "GET", "/me", None).await);
    assert_account_deleted(&h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "late"}))).await);
    assert_eq!(stored(&h, &alice).await.1, profile, "a refused GET /me re-created nothing");

    let again = signed_in_again(&h, &alice).await;
    let (items, _) = export_all(&h, &again, 100).await;
    assert_eq!(kinds(&items), BTreeMap::from([("profile".to_owned(), 1)]), "only the new profile: {items:?}");
    assert_eq!(stored(&h, &bob).await, bob_before, "bob's data is untouched");
}

/// Deletion refuses the tokens issued before it, not the person: a token issued after it
/// creates again (the same person signing up again), while the old one stays refused.
#[tokio::test]
async fn a_token_issued_after_the_deletion_creates_again() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let before = h.call(Some(&alice), "GET", "/me", None).await.json();
    assert_eq!(h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "old"}))).await.status, 201);
    assert_eq!(h.call(Some(&alice), "DELETE", "/me", None).await.status, 200);

    let again = signed_in_again(&h, &alice).await;
    let me = h.call(Some(&again), "GET", "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_ne!(me.json()["created_at"], before["created_at"], "a new profile");
    let canvas = h.call(Some(&again), "POST", "/canvases", Some(json!({"name": "new"}))).await;
    assert_eq!(canvas.status, 201, "{}", canvas.text());
    let session = h.call(Some(&again), "POST", "/sessions", Some(json!({"title": "new"}))).await.json();
    let message = h
        .call(
            Some(&again),
            "POST",
            &format!("/sessions/{}/messages", session["id"].as_str().unwrap()),
            Some(json!({"role": "user", "content": "hi"})),
        )
        .await;
    assert_eq!(message.status, 201, "{}", message.text());
    let names: Vec<_> = h.list_all(&again, "/canvases", 10).await.0.into_iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("new")]);
    let (_, profile) = stored(&h, &alice).await;
    assert!(!profile.unwrap().contains(&"expires_at".to_owned()), "the new profile does not expire");

    // The old token stays refused, also by the re-created account.
    assert_account_deleted(&h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "old"}))).await);
    assert_account_deleted(&h.call(Some(&alice), "GET", "/me", None).await);
}
