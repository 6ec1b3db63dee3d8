//! Files end to end: metadata in DynamoDB Local, bytes in a real local S3 server, moved with a
//! plain HTTP client through the presigned URLs, as a browser would.
//!
//! The local S3 server verifies SigV4 like S3 does (header and presigned query auth, expiry), so
//! the negative tests below prove that a presigned URL only does what it was signed for: its
//! user's key, its method, its size and type, until it expires. Against a server that checks no
//! signature (moto's) every one of them fails.

use std::time::Duration;

use integration_tests::{Harness, User};
use local_stack::s3_local::bucket_name;
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::{
    objects::{local_s3_client, UserObjects},
    store::Space,
};

const PNG: &str = "image/png";

async fn announce(h: &Harness, user: &User, name: &str, bytes: &[u8]) -> Value {
    let r = h
        .call(Some(user), "POST", "/files", Some(json!({"name": name, "content_type": PNG, "size": bytes.len()})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// The headers a client is told to send. Not `content-length`: reqwest sends the body's real
/// length, which is the point (a different length is a different signed header).
fn upload_headers(upload: &Value) -> Vec<(String, String)> {
    upload["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "content-length")
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect()
}

async fn put_to(url: &str, headers: &[(String, String)], bytes: Vec<u8>) -> StatusCode {
    let mut request = reqwest::Client::new().put(url).body(bytes);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

async fn put(upload: &Value, bytes: Vec<u8>) -> StatusCode {
    put_to(upload["url"].as_str().unwrap(), &upload_headers(upload), bytes).await
}

async fn get(url: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A file of `user`'s, uploaded and completed: its id, its upload answer and a download URL.
async fn stored(h: &Harness, user: &User, name: &str, bytes: &[u8]) -> (String, Value, String) {
    let created = announce(h, user, name, bytes).await;
    let id = created["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(put(&created["upload"], bytes.to_vec()).await, StatusCode::OK);
    let done = h.call(Some(user), "POST", &format!("/files/{id}/complete"), None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let got = h.call(Some(user), "GET", &format!("/files/{id}"), None).await.json();
    let download = got["download"]["url"].as_str().expect("a ready file has a download link").to_owned();
    (id, created["upload"].clone(), download)
}

/// `url` with the path (bucket and object key) of `other`, the rest (signature) unchanged.
fn with_path_of(url: &str, other: &str) -> String {
    let mut edited = reqwest::Url::parse(url).unwrap();
    edited.set_path(reqwest::Url::parse(other).unwrap().path());
    assert_ne!(edited.as_str(), url, "the edit changes the URL");
    edited.into()
}

/// `url` with one hex digit of its signature changed, nothing else touched.
fn with_tampered_signature(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").expect("a presigned URL has a signature") + "X-Amz-Signature=".len();
    let digit = if url.as_bytes()[at] == b'0' { "1" } else { "0" };
    format!("{}{digit}{}", &url[..at], &url[at + 1..])
}

/// The personal space the API derives from `user`'s token, to presign as the files function does
/// but with a TTL a test can wait out.
async fn personal_space(h: &Harness, user: &User) -> Space {
    Space::personal(&h.identity(user).await)
}

/// The files bucket with the local S3 client, as the files function sees it.
fn objects(h: &Harness) -> UserObjects {
    UserObjects::new(local_s3_client(&h.stack.settings.s3_endpoint), bucket_name("FilesBucket"))
}

/// A user whose id is exactly `sub` (no unique suffix).
fn user_with_id(h: &Harness, sub: &str) -> User {
    User { id: sub.to_owned(), token: h.stack.token(sub) }
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
    let response = reqwest::get(download).await.unwrap();
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(PNG));
    let fetched = response.bytes().await.unwrap();
    assert_eq!(fetched.as_ref(), bytes.as_slice(), "the same bytes come back");

    let listed = h.list_all(&alice, "/files", 10).await.0;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(id));

    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/files/{id}"), None).await.status, 204);
    h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.assert_problem(404);
    assert!(!reqwest::get(download).await.unwrap().status().is_success(), "the object is gone too");
}

/// Completing checks what S3 holds (HeadObject's size and type), not what was announced. A
/// presigned URL cannot store anything else (see `an_upload_must_match_the_signed_size_and_type`),
/// so the wrong objects are written here with the server-side client.
#[tokio::test]
async fn an_object_of_the_wrong_size_or_type_is_not_marked_ready() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let who = personal_space(&h, &alice).await;
    let client = local_s3_client(&h.stack.settings.s3_endpoint);
    for (size, content_type, complaint) in [(60, PNG, "declared"), (100, "text/plain", "is not image/png")] {
        let created = announce(&h, &alice, "short.png", &[1u8; 100]).await;
        let id = created["file"]["id"].as_str().unwrap();
        client
            .put_object()
            .bucket(bucket_name("FilesBucket"))
            .key(format!("{}{id}", UserObjects::prefix(&who)))
            .content_type(content_type)
            .body(vec![1u8; size].into())
            .send()
            .await
            .unwrap();
        let refused = h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await;
        let problem = refused.assert_problem(409);
        assert!(problem["detail"].as_str().unwrap().contains(complaint), "{problem}");
        assert_eq!(h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.json()["status"], "pending");
    }
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

#[tokio::test]
async fn a_download_url_edited_to_another_users_key_is_refused() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let secret = b"alice's secret bytes".to_vec();
    let (_, _, alices) = stored(&h, &alice, "private.png", &secret).await;
    let (_, _, bobs) = stored(&h, &bob, "mine.png", b"bob's own bytes").await;
    // Both URLs work as issued, so a refusal below is the edit being refused.
    assert_eq!(get(&alices).await, (StatusCode::OK, secret.clone()));
    assert_eq!(get(&bobs).await, (StatusCode::OK, b"bob's own bytes".to_vec()));

    let (status, body) = get(&with_path_of(&bobs, &alices)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&body));
    assert!(!contains(&body, &secret), "alice's bytes are not returned");
}

#[tokio::test]
async fn an_upload_url_edited_to_another_users_key_is_refused() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let secret = b"alice's secret bytes".to_vec();
    let (_, _, alices) = stored(&h, &alice, "private.png", &secret).await;
    let forged = vec![b'x'; secret.len()];
    let created = announce(&h, &bob, "same-size.png", &forged).await;
    let upload = &created["upload"];

    let edited = with_path_of(upload["url"].as_str().unwrap(), &alices);
    assert_eq!(put_to(&edited, &upload_headers(upload), forged.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(get(&alices).await, (StatusCode::OK, secret), "alice's object is unchanged");
    // The URL as issued still works: the edit, not the URL, was refused.
    assert_eq!(put(upload, forged).await, StatusCode::OK);
}

#[tokio::test]
async fn an_upload_must_match_the_signed_size_and_type() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let bytes = vec![7u8; 100];
    let created = announce(&h, &alice, "exact.png", &bytes).await;
    let id = created["file"]["id"].as_str().unwrap();
    let upload = &created["upload"];
    let url = upload["url"].as_str().unwrap();
    let signed = upload["url"].as_str().unwrap().split_once('?').unwrap().1.to_owned();
    assert!(signed.contains("content-length") && signed.contains("content-type"), "size and type are signed: {url}");
    let with_type = |t: Option<&str>| -> Vec<(String, String)> {
        let mut headers: Vec<_> = upload_headers(upload).into_iter().filter(|(n, _)| n != "content-type").collect();
        headers.extend(t.map(|t| ("content-type".to_owned(), t.to_owned())));
        headers
    };

    for (what, headers, body) in [
        ("fewer bytes", with_type(Some(PNG)), vec![7u8; 60]),
        ("more bytes", with_type(Some(PNG)), vec![7u8; 101]),
        ("another type", with_type(Some("text/html")), bytes.clone()),
        ("no type", with_type(None), bytes.clone()),
    ] {
        assert_eq!(put_to(url, &headers, body).await, StatusCode::FORBIDDEN, "{what}");
    }
    let refused = h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await;
    assert!(refused.assert_problem(409)["detail"].as_str().unwrap().contains("nothing was uploaded"));

    assert_eq!(put(upload, bytes).await, StatusCode::OK, "exactly what was signed is accepted");
    assert_eq!(h.call(Some(&alice), "POST", &format!("/files/{id}/complete"), None).await.status, 200);
}

#[tokio::test]
async fn an_expired_url_is_refused() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let bytes = b"short-lived".to_vec();
    let (id, _, _) = stored(&h, &alice, "brief.png", &bytes).await;
    let who = personal_space(&h, &alice).await;
    let objects = objects(&h);
    // The files function's own presigning, with a TTL short enough to wait out. X-Amz-Date is
    // whole seconds, so 3 s leaves the first use at least 2 s.
    let ttl = Duration::from_secs(3);
    let download = objects.download_url(&who, &id, ttl).await.unwrap();
    let upload = objects.upload_url(&who, &id, PNG, bytes.len() as u64, ttl).await.unwrap();
    let upload_headers: Vec<(String, String)> =
        upload.headers.iter().filter(|(n, _)| *n != "content-length").map(|(n, v)| (n.clone(), v.clone())).collect();
    assert_eq!(get(&download.url).await, (StatusCode::OK, bytes.clone()), "valid before it expires");

    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    let (status, body) = get(&download.url).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&body));
    assert!(!contains(&body, &bytes));
    assert_eq!(put_to(&upload.url, &upload_headers, b"overwritten".to_vec()).await, StatusCode::FORBIDDEN);
    let fresh = h.call(Some(&alice), "GET", &format!("/files/{id}"), None).await.json();
    assert_eq!(get(fresh["download"]["url"].as_str().unwrap()).await, (StatusCode::OK, bytes));
}

#[tokio::test]
async fn a_tampered_or_missing_signature_is_refused() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let bytes = b"signed bytes".to_vec();
    let (_, _, download) = stored(&h, &alice, "signed.png", &bytes).await;
    let created = announce(&h, &alice, "next.png", &bytes).await;
    let upload = &created["upload"];
    let upload_url = upload["url"].as_str().unwrap();
    let unsigned = |url: &str| url.split_once('?').unwrap().0.to_owned();

    for url in [with_tampered_signature(&download), unsigned(&download)] {
        let (status, body) = get(&url).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {url}");
        assert!(!contains(&body, &bytes));
    }
    for url in [with_tampered_signature(upload_url), unsigned(upload_url), download.clone()] {
        assert_eq!(put_to(&url, &upload_headers(upload), bytes.clone()).await, StatusCode::FORBIDDEN, "PUT {url}");
    }
    assert_eq!(get(&download).await, (StatusCode::OK, bytes.clone()), "the object is unchanged");
    assert_eq!(put(upload, bytes).await, StatusCode::OK, "the URL as issued works");
}

/// `.` and `..` are legal JWT `sub`s. Their object keys must not hold dot segments, which URL
/// parsers (reqwest's, browsers') remove: the URL would then point at another key than the one
/// signed, outside the user's prefix.
#[tokio::test]
async fn users_named_dot_and_dot_dot_keep_their_files_under_their_own_prefix() {
    let h = Harness::new().await;
    for sub in [".", ".."] {
        // Fixed ids: start from nothing, whatever an earlier run left. Then a token issued after
        // that deletion (in a later second), since older ones can no longer create.
        assert_eq!(h.call(Some(&user_with_id(&h, sub)), "DELETE", "/me", None).await.status, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let user = user_with_id(&h, sub);
        let bytes = format!("the bytes of {sub:?}").into_bytes();
        let (id, upload, download) = stored(&h, &user, "dots.png", &bytes).await;
        for url in [upload["url"].as_str().unwrap(), &download] {
            assert_eq!(reqwest::Url::parse(url).unwrap().as_str(), url, "URL parsing leaves {url} as signed");
        }
        assert_eq!(get(&download).await, (StatusCode::OK, bytes.clone()));
        let who = personal_space(&h, &user).await;
        assert!(objects(&h).stat(&who, &id).await.unwrap().is_some(), "the object is under {sub:?}'s prefix");

        let deleted = h.call(Some(&user), "DELETE", "/me", None).await;
        assert_eq!(deleted.status, 200, "{}", deleted.text());
        assert_eq!(deleted.json()["deleted"]["object"], 1, "{}", deleted.text());
        assert_eq!(objects(&h).stat(&who, &id).await.unwrap(), None);
        assert!(!get(&download).await.0.is_success(), "the object is gone");
    }
}

/// Whether `who`'s object `name` is gone within `bound` (the upload cleanup runs on S3's
/// notification, after the PUT has answered).
async fn gone_within(objects: &UserObjects, who: &Space, name: &str, bound: Duration) -> bool {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if objects.stat(who, name).await.unwrap().is_none() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An upload URL cannot be revoked: S3 accepts a PUT through one until it expires, also after
/// its file was deleted. The bytes must not stay: S3's ObjectCreated notification (raised
/// locally by the local S3 server, as the template subscribes it) runs the upload cleanup, which
/// deletes objects without a file record. Uploads with a record, completed at once or still
/// pending, stay.
#[tokio::test]
async fn bytes_uploaded_after_their_file_was_deleted_do_not_stay() {
    let h = Harness::new().await;
    let objects = objects(&h);
    // Characters the key encodes (`%2E`, `%20`, `%7C`, `%C3%A9`), which S3's notification
    // encodes once more: the cleanup must still find the owner, or it would delete what stays.
    let alice = h.user("alice. |é");
    let alice_is = personal_space(&h, &alice).await;
    assert!(UserObjects::prefix(&alice_is).contains("%2E%20%7C%C3%A9"));

    // Uploads that have their record: one completed at once, one still pending.
    let (ready, _, download) = stored(&h, &alice, "ready.png", b"ready bytes").await;
    let pending = announce(&h, &alice, "pending.png", b"pending bytes").await;
    let pending_id = pending["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(put(&pending["upload"], b"pending bytes".to_vec()).await, StatusCode::OK);

    // DELETE /files/{id}, then a PUT through the upload URL issued for it.
    let bytes = b"bytes that come too late".to_vec();
    let created = announce(&h, &alice, "late.png", &bytes).await;
    let late = created["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/files/{late}"), None).await.status, 204);
    assert_eq!(put(&created["upload"], bytes).await, StatusCode::OK, "S3 takes it: the URL is still valid");
    assert!(
        gone_within(&objects, &alice_is, &late, Duration::from_secs(10)).await,
        "the bytes of a deleted file stayed"
    );

    // Notifications are handled in the order the objects were created: the two uploads before
    // were handled too, and stayed.
    assert_eq!(get(&download).await, (StatusCode::OK, b"ready bytes".to_vec()), "a completed upload stays");
    assert!(objects.stat(&alice_is, &pending_id).await.unwrap().is_some(), "a pending upload stays");
    let done = h.call(Some(&alice), "POST", &format!("/files/{pending_id}/complete"), None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(h.call(Some(&alice), "GET", &format!("/files/{ready}"), None).await.json()["status"], "ready");
}

/// The same after `DELETE /me`: a deleted user's bytes do not come back into the bucket through
/// an upload URL issued before the deletion.
#[tokio::test]
async fn bytes_uploaded_after_the_account_was_deleted_do_not_stay() {
    let h = Harness::new().await;
    let bob = h.user("bob");
    let bob_is = personal_space(&h, &bob).await;
    let bytes = b"bytes that come too late".to_vec();
    let created = announce(&h, &bob, "after-me.png", &bytes).await;
    let orphan = created["file"]["id"].as_str().unwrap().to_owned();
    let deleted = h.call(Some(&bob), "DELETE", "/me", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(put(&created["upload"], bytes).await, StatusCode::OK, "S3 takes it: the URL is still valid");
    let gone = gone_within(&objects(&h), &bob_is, &orphan, Duration::from_secs(10)).await;
    assert!(gone, "a deleted user's bytes are back in the bucket");
}
