//! Chat sessions and messages end to end: real handlers, real DynamoDB Local.

use std::collections::HashSet;

use integration_tests::{Harness, User};
use serde_json::{json, Value};

async fn session(h: &Harness, user: &User, title: &str) -> String {
    let r = h.call(Some(user), "POST", "/sessions", Some(json!({"title": title}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn say(h: &Harness, user: &User, sid: &str, role: &str, content: &str) -> Value {
    let r = h
        .call(Some(user), "POST", &format!("/sessions/{sid}/messages"), Some(json!({"role": role, "content": content})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn contents(items: &[Value]) -> Vec<String> {
    items.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn session_lifecycle_and_rename_with_if_match() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let created = h.call(Some(&alice), "POST", "/sessions", Some(json!({}))).await;
    assert_eq!(created.status, 201);
    let s = created.json();
    assert_eq!(s["title"], "New chat");
    let sid = s["id"].as_str().unwrap();
    let path = format!("/sessions/{sid}");
    let renamed =
        h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"title": "Logo ideas"}))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["title"], "Logo ideas");
    h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"title": "stale"})))
        .await
        .assert_problem(412);
    h.call(Some(&alice), "PATCH", &path, Some(json!({"title": ""}))).await.assert_problem(400);
    h.call(Some(&alice), "PATCH", &path, Some(json!({"name": "x"}))).await.assert_problem(400);
    let got = h.call(Some(&alice), "GET", &path, None).await;
    assert_eq!(got.json()["title"], "Logo ideas");
    assert_eq!(h.call(Some(&alice), "DELETE", &path, None).await.status, 204);
    h.call(Some(&alice), "GET", &path, None).await.assert_problem(404);
}

#[tokio::test]
async fn messages_come_back_in_creation_order_across_pages_and_bump_the_session() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let older = session(&h, &alice, "older").await;
    let sid = session(&h, &alice, "chat").await;
    let before = h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json();
    let sent: Vec<String> = (0..12).map(|i| format!("message {i:02}")).collect();
    for (i, text) in sent.iter().enumerate() {
        let role = ["user", "assistant", "tool"][i % 3];
        let m = say(&h, &alice, &sid, role, text).await;
        assert_eq!(m["session_id"], json!(sid));
        assert_eq!(m["role"], role);
        assert!(m.get("user_id").is_none() && m.get("session_order").is_none(), "internal attributes leak: {m}");
    }
    let (items, pages) = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 5).await;
    assert_eq!(pages, vec![5, 5, 2]);
    assert_eq!(contents(&items), sent, "creation order, nothing lost or repeated");
    assert_eq!(items.iter().map(|m| m["id"].clone()).collect::<HashSet<_>>().len(), 12);

    let after = h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json();
    assert!(after["updated_at"].as_str() > before["updated_at"].as_str(), "appending bumps updated_at");
    let (list, _) = h.list_all(&alice, "/sessions", 10).await;
    let order: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(order, vec![sid.as_str(), older.as_str()], "the active session comes first");
}

#[tokio::test]
async fn polling_with_after_returns_only_newer_messages() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "poll").await;
    let url = format!("/sessions/{sid}/messages");
    let empty = h.call(Some(&alice), "GET", &url, None).await.json();
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["poll_cursor"], Value::Null);
    say(&h, &alice, &sid, "user", "one").await;
    say(&h, &alice, &sid, "assistant", "two").await;
    let first = h.call(Some(&alice), "GET", &url, None).await.json();
    assert_eq!(contents(first["items"].as_array().unwrap()), vec!["one", "two"]);
    assert_eq!(first["next_cursor"], Value::Null, "no further page");
    let poll = first["poll_cursor"].as_str().unwrap().to_owned();

    let nothing = h.call(Some(&alice), "GET", &format!("{url}?after={poll}"), None).await.json();
    assert_eq!(nothing["items"], json!([]));
    assert_eq!(nothing["poll_cursor"], json!(poll), "an empty poll keeps the position");
    say(&h, &alice, &sid, "user", "three").await;
    say(&h, &alice, &sid, "assistant", "four").await;
    let newer = h.call(Some(&alice), "GET", &format!("{url}?after={poll}"), None).await.json();
    assert_eq!(contents(newer["items"].as_array().unwrap()), vec!["three", "four"]);

    // A cursor of another session of the same user is refused, as is mixing both parameters.
    let other = session(&h, &alice, "other").await;
    h.call(Some(&alice), "GET", &format!("/sessions/{other}/messages?after={poll}"), None).await.assert_problem(400);
    h.call(Some(&alice), "GET", &format!("{url}?after={poll}&cursor={poll}"), None).await.assert_problem(400);
}

#[tokio::test]
async fn deleting_a_session_leaves_no_message_reachable_even_when_retried() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "doomed").await;
    let keep = session(&h, &alice, "kept").await;
    for i in 0..30 {
        say(&h, &alice, &sid, "user", &format!("m{i}")).await;
    }
    say(&h, &alice, &keep, "user", "stays").await;
    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.status, 204);
    h.call(Some(&alice), "GET", &format!("/sessions/{sid}/messages"), None).await.assert_problem(404);
    h.call(
        Some(&alice),
        "POST",
        &format!("/sessions/{sid}/messages"),
        Some(json!({"role": "user", "content": "late"})),
    )
    .await
    .assert_problem(404);
    h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.assert_problem(404);
    let kept = h.list_all(&alice, &format!("/sessions/{keep}/messages"), 50).await.0;
    assert_eq!(contents(&kept), vec!["stays"], "other sessions keep their messages");
}

#[tokio::test]
async fn another_users_session_is_a_404_on_every_route() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let sid = session(&h, &alice, "private").await;
    say(&h, &alice, &sid, "user", "secret").await;
    let missing = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/sessions/{}".into(), None),
        ("PATCH", "/sessions/{}".into(), Some(json!({"title": "pwned"}))),
        ("DELETE", "/sessions/{}".into(), None),
        ("POST", "/sessions/{}/messages".into(), Some(json!({"role": "user", "content": "injected"}))),
        ("GET", "/sessions/{}/messages".into(), None),
    ];
    for (method, pattern, body) in cases {
        let theirs = h.call(Some(&bob), method, &pattern.replace("{}", &sid), body.clone()).await;
        let nobodys = h.call(Some(&bob), method, &pattern.replace("{}", missing), body).await;
        theirs.assert_problem(404);
        assert_eq!(theirs.body_without_request_id(), nobodys.body_without_request_id(), "{method} {pattern}");
    }
    let msgs = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 10).await.0;
    assert_eq!(contents(&msgs), vec!["secret"], "bob's append went nowhere");
    assert_eq!(h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json()["title"], "private");
    assert!(h.list_all(&bob, "/sessions", 10).await.0.is_empty());
}

#[tokio::test]
async fn message_input_is_validated() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "v").await;
    let url = format!("/sessions/{sid}/messages");
    for (body, status) in [
        (json!({"role": "system", "content": "x"}), 400),
        (json!({"role": "user"}), 400),
        (json!({"role": "user", "content": ""}), 400),
        (json!({"role": "user", "content": "x", "session_id": "other"}), 400),
        (json!({"role": "user", "content": "x", "user_id": "bob"}), 400),
        (json!({"role": "user", "content": "x", "created_at": "2020-01-01"}), 400),
        (json!({"role": "user", "content": "x".repeat(64 * 1024 + 1)}), 413),
    ] {
        h.call(Some(&alice), "POST", &url, Some(body)).await.assert_problem(status);
    }
    assert!(h.list_all(&alice, &url, 10).await.0.is_empty(), "nothing written");
    h.call(Some(&alice), "POST", "/sessions", Some(json!({"title": "t".repeat(201)}))).await.assert_problem(400);
}
