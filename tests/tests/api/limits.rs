//! Every answer fits Lambda's response limit whatever the stored data: the local gateway refuses
//! an answer over 6 MB as Lambda does (a 500 from API Gateway), so these fail if a page does not
//! stop at its size budget.

use integration_tests::Harness;
use serde_json::json;

/// A canvas document just under the 350 KiB limit.
fn big_data(i: usize) -> serde_json::Value {
    json!({ "blob": format!("{i}:{}", "x".repeat(340 * 1024)) })
}

#[tokio::test]
async fn export_pages_stop_at_lambdas_response_limit() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    for i in 0..20 {
        let created = h
            .call(Some(&alice), "POST", "/canvases", Some(json!({"name": format!("c{i}"), "data": big_data(i)})))
            .await;
        assert_eq!(created.status, 201, "{}", created.text());
    }
    // At the default page size, 20 such canvases would be a 7 MB answer.
    let first = h.call(Some(&alice), "GET", "/me/export", None).await;
    assert_eq!(first.status, 200, "{}", &first.text()[..first.text().len().min(300)]);
    assert!(first.body.len() < 6_000_000, "{} bytes", first.body.len());
    assert!(first.json()["next_cursor"].is_string(), "a full page says where to go on");
    // Following the cursors gives every canvas exactly once.
    let (items, pages) = h.list_all(&alice, "/me/export", 100).await;
    let mut names: Vec<String> = items
        .iter()
        .filter(|e| e["kind"] == "canvas")
        .map(|e| e["item"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(pages.len() >= 2, "{pages:?}");
}

#[tokio::test]
async fn list_pages_stop_at_lambdas_response_limit() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let session =
        h.call(Some(&alice), "POST", "/sessions", Some(json!({}))).await.json()["id"].as_str().unwrap().to_owned();
    // 100 messages of 64 KiB: a 6.6 MB page at limit=100.
    let content = "y".repeat(64 * 1024 - 16);
    for i in 0..100 {
        let path = format!("/sessions/{session}/messages");
        let reply = h
            .call(Some(&alice), "POST", &path, Some(json!({"role": "user", "content": format!("{i:03}{content}")})))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    let page = h.call(Some(&alice), "GET", &format!("/sessions/{session}/messages?limit=100"), None).await;
    assert_eq!(page.status, 200, "{}", &page.text()[..page.text().len().min(300)]);
    assert!(page.body.len() < 6_000_000);
    let (items, _) = h.list_all(&alice, &format!("/sessions/{session}/messages"), 100).await;
    let order: Vec<String> = items.iter().map(|m| m["content"].as_str().unwrap()[..3].to_owned()).collect();
    assert_eq!(order, (0..100).map(|i| format!("{i:03}")).collect::<Vec<_>>(), "every message once, in order");
}
