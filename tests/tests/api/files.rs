//! Files end to end: metadata in DynamoDB Local, bytes in a real local S3 server, moved with a
//! plain HTTP client through the presigned URLs, as a browser would.

use integration_tests::{Harness, User};
use serde_json::{json, Value};

async fn announce(h: &Harness, user: &User, name: &str, bytes: &[u8]) -> Value {
    let r = h
        .call(
            Some(user),
            "POST",
            "/files",
            Some(json!({"name": name, "content_type": "image/png", "size": bytes.len()})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

async fn put(upload: &Value, bytes: Vec<u8>) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new().put(upload["url"].as_str().unwrap()).body(bytes);
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn upload_complete_download_list_delete() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let created = announce(&h, &alice, "fox.png", &bytes).await;
    let file = &created["file"];
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!((file["status"].as_str(), file["size"].as_u64()), (Some("pending"), Some(5000)));
    assert_eq!(created["upload"]["method"], "PUT");
    let url = created["upload"]["url"].as_str().unwrap();
    assert!(url.contains("/users/") && url.contains(&id), "object key is under the user's prefix: {url}");

    // Not uploaded yet: completing is refused, and there is no download link.
    h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await.assert_problem(409);
    assert_eq!(h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.json()["download"], Value::Null);

    assert!(put(&created["upload"], bytes.clone()).await.is_success());
    let done = h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["status"], "ready");
    h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await.assert_problem(409);

    let got = h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.json();
    let download = got["download"]["url"].as_str().expect("a ready file has a download link");
    let fetched = reqwest::get(download).await.unwrap().bytes().await.unwrap();
    assert_eq!(fetched.as_ref(), bytes.as_slice(), "the same bytes come back");

    let listed = h.list_all(&alice, "/files", 10).await.0;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(id));

    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/files/{id}"), None).await.status, 204);
    h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.assert_problem(404);
    assert!(!reqwest::get(download).await.unwrap().status().is_success(), "the object is gone too");
}

#[tokio::test]
async fn a_wrong_size_upload_is_not_marked_ready() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let created = announce(&h, &alice, "short.png", &[1u8; 100]).await;
    let id = created["file"]["id"].as_str().unwrap();
    let _ = put(&created["upload"], vec![1u8; 60]).await;
    let refused = h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await;
    let problem = refused.assert_problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("declared"), "{problem}");
    assert_eq!(h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.json()["status"], "pending");
}

#[tokio::test]
async fn file_input_is_validated_with_a_size_cap() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    for (body, status) in [
        (json!({"name": "big.bin", "content_type": "application/octet-stream", "size": 26 * 1024 * 1024}), 413),
        (json!({"name": "empty", "content_type": "text/plain", "size": 0}), 400),
        (json!({"name": "neg", "content_type": "text/plain", "size": -1}), 400),
        (json!({"name": "", "content_type": "text/plain", "size": 1}), 400),
        (json!({"name": "x", "content_type": "not a type", "size": 1}), 400),
        (json!({"name": "x", "content_type": "text/plain", "size": 1, "status": "ready"}), 400),
        (json!({"name": "x", "content_type": "text/plain", "size": 1, "user_id": "bob"}), 400),
    ] {
        h.call(Some(&alice), "POST", "/files", Some(body)).await.assert_problem(status);
    }
    assert!(h.list_all(&alice, "/files", 10).await.0.is_empty());
}

#[tokio::test]
async fn another_users_file_is_a_404_everywhere() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let created = announce(&h, &alice, "private.png", b"secret bytes").await;
    let id = created["file"]["id"].as_str().unwrap().to_owned();
    assert!(put(&created["upload"], b"secret bytes".to_vec()).await.is_success());
    let missing = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    for (method, suffix) in [("GET", ""), ("POST", "/complete"), ("DELETE", "")] {
        let theirs = h.call(Some(&bob), method, &format!("/files/{id}{suffix}"), None).await;
        let nobodys = h.call(Some(&bob), method, &format!("/files/{missing}{suffix}"), None).await;
        theirs.assert_problem(404);
        assert_eq!(theirs.body_without_request_id(), nobodys.body_without_request_id(), "{method} {suffix}");
    }
    assert!(h.list_all(&bob, "/files", 10).await.0.is_empty());
    let done = h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await;
    assert_eq!(done.status, 200, "bob's attempts changed nothing: {}", done.text());
}
