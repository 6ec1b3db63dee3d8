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

// Teams: DELETE /me leaves every organization and project, or refuses while the caller is the
// only owner of an organization with other members; the export includes the memberships.

use shared::access::Role;

use crate::teams::Team;

/// An organization's stored item (owner_count and project_count included), straight from
/// DynamoDB.
async fn stored_org(h: &Harness, org: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    let client = shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone());
    let out = client
        .get_item()
        .table_name("OrganizationsTable")
        .key("id", AttributeValue::S(org.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

async fn owner_count(h: &Harness, org: &str) -> Option<String> {
    stored_org(h, org).await.and_then(|o| o.get("owner_count").and_then(|n| n.as_n().ok()).cloned())
}

async fn member_ids(h: &Harness, by: &User, scope: &str) -> Vec<String> {
    let (members, _) = h.list_all(by, &format!("{scope}/members"), 100).await;
    let mut ids: Vec<String> = members.iter().map(|m| m["user"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_only_owner_of_an_organization_with_members_cannot_delete_the_account_until_they_transfer() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let team = Team::new(&h, alice.clone()).await;
    team.add(&h, &bob, Role::Member, Some(Role::Member)).await;
    assert_eq!(h.call(Some(&alice), "GET", "/me", None).await.status, 200);
    let shared_canvas = format!("/projects/{}/canvases", team.project);
    assert_eq!(h.call(Some(&alice), "POST", &shared_canvas, Some(json!({"name": "shared"}))).await.status, 201);
    assert_eq!(h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "mine"}))).await.status, 201);
    let before = stored(&h, &alice).await;

    let refused = h.call(Some(&alice), "DELETE", "/me", None).await;
    let body = refused.assert_problem(409);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&team.org) && detail.contains("Acme"), "names the organization: {detail}");
    assert!(detail.contains("/transfer") && detail.contains("DELETE /orgs/"), "says what to do: {detail}");
    // Nothing changed: no tombstone, the data and the organization are there, the token works.
    assert_eq!(stored(&h, &alice).await, before, "a refused deletion deletes nothing");
    assert!(!before.1.unwrap().contains(&"deleted_at".to_owned()));
    assert_eq!(h.call(Some(&alice), "GET", &format!("/orgs/{}", team.org), None).await.status, 200);
    assert_eq!(h.list_all(&bob, &shared_canvas, 10).await.0.len(), 1);
    assert_eq!(h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "still mine"}))).await.status, 201);

    let transfer = format!("/orgs/{}/transfer", team.org);
    let r = h.call(Some(&alice), "POST", &transfer, Some(json!({"new_owner": bob.id}))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let deleted = h.call(Some(&alice), "DELETE", "/me", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"]["membership"], 1, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"]["organization"], 0, "{}", deleted.text());

    let org = format!("/orgs/{}", team.org);
    assert_eq!(member_ids(&h, &bob, &org).await, vec![bob.id.clone()], "alice left the organization");
    assert_eq!(owner_count(&h, &team.org).await.as_deref(), Some("1"));
    let r = h.call(Some(&bob), "DELETE", &format!("{org}/members/{}", bob.id), None).await;
    r.assert_problem(409);
    assert_eq!(h.list_all(&bob, &shared_canvas, 10).await.0.len(), 1, "the project's items are the project's");
    assert_eq!(h.call(Some(&alice), "GET", &org, None).await.status, 404);
}

#[tokio::test]
async fn an_owner_among_owners_leaves_and_the_owner_count_follows() {
    let h = Harness::new().await;
    let (alice, bob, carol) = (h.user("alice"), h.user("bob"), h.user("carol"));
    let team = Team::new(&h, alice.clone()).await;
    team.add(&h, &bob, Role::Owner, None).await;
    team.add(&h, &carol, Role::Viewer, None).await;
    assert_eq!(
        h.call(
            Some(&alice),
            "PUT",
            &format!("/projects/{}/members/{}", team.project, alice.id),
            Some(json!({"role": "admin"}))
        )
        .await
        .status,
        204
    );
    assert_eq!(owner_count(&h, &team.org).await.as_deref(), Some("2"));

    let deleted = h.call(Some(&alice), "DELETE", "/me", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"]["membership"], 2, "the organization's and the project's: {}", deleted.text());
    assert_eq!(owner_count(&h, &team.org).await.as_deref(), Some("1"));
    let org = format!("/orgs/{}", team.org);
    let mut expected = vec![bob.id.clone(), carol.id.clone()];
    expected.sort();
    assert_eq!(member_ids(&h, &bob, &org).await, expected);
    assert!(member_ids(&h, &bob, &format!("/projects/{}", team.project)).await.is_empty());
    // bob is now the last owner: he can no longer leave.
    h.call(Some(&bob), "DELETE", &format!("{org}/members/{}", bob.id), None).await.assert_problem(409);
}

#[tokio::test]
async fn an_organization_the_caller_alone_belongs_to_goes_with_the_account() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let team = Team::new(&h, alice.clone()).await;
    let shared_canvas = format!("/projects/{}/canvases", team.project);
    assert_eq!(h.call(Some(&alice), "POST", &shared_canvas, Some(json!({"name": "only mine"}))).await.status, 201);
    let bobs = Team::new(&h, bob.clone()).await;

    let deleted = h.call(Some(&alice), "DELETE", "/me", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"]["organization"], 1, "{}", deleted.text());
    assert!(stored_org(&h, &team.org).await.is_none(), "the organization is gone");
    let client = shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone());
    for (table, key, value) in [
        ("ProjectsTable", "id", team.project.clone()),
        ("CanvasesTable", "user_id", format!("project#{}", team.project)),
        ("MembershipsTable", "scope", format!("org#{}", team.org)),
    ] {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", AttributeValue::S(value.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert_eq!(out.count(), 0, "{table} still holds {value}");
    }
    assert!(stored_org(&h, &bobs.org).await.is_some(), "bob's organization is untouched");
    assert_eq!(h.call(Some(&bob), "GET", &format!("/projects/{}", bobs.project), None).await.status, 200);
    let again = signed_in_again(&h, &alice).await;
    assert!(h.list_all(&again, "/orgs", 10).await.0.is_empty());
}

#[tokio::test]
async fn the_export_has_my_memberships_and_what_i_own_and_nothing_of_organizations_i_belong_to() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let mine = Team::new(&h, alice.clone()).await;
    let projects_of_mine = format!("/orgs/{}/projects", mine.org);
    let second = h.call(Some(&alice), "POST", &projects_of_mine, Some(json!({"name": "Two"}))).await;
    let second = second.json()["id"].as_str().unwrap().to_owned();
    let bobs = Team::new(&h, bob.clone()).await;
    bobs.add(&h, &alice, Role::Member, Some(Role::Viewer)).await;
    assert_eq!(h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "c"}))).await.status, 201);

    let (items, pages) = export_all(&h, &alice, 2).await;
    assert!(pages >= 4, "{pages} pages");
    let counts = kinds(&items);
    let expected: BTreeMap<String, usize> =
        [("canvas", 1), ("membership", 3), ("organization", 1), ("profile", 1), ("project", 2)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
    assert_eq!(counts, expected, "{items:?}");
    let of =
        |kind: &str| -> Vec<Value> { items.iter().filter(|i| i["kind"] == kind).map(|i| i["item"].clone()).collect() };
    assert_eq!(of("organization")[0]["id"], json!(mine.org));
    assert_eq!(of("organization")[0]["name"], "Acme");
    assert!(of("organization")[0].get("owner_count").is_none(), "no bookkeeping");
    let mut projects: Vec<String> = of("project").iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    projects.sort();
    let mut expected = vec![mine.project.clone(), second];
    expected.sort();
    assert_eq!(projects, expected, "only the projects of the organization alice owns");
    let memberships = of("membership");
    let find = |scope: &str, id: &str| {
        memberships
            .iter()
            .find(|m| m["scope"] == scope && (m["org_id"] == id || m["project_id"] == id))
            .unwrap_or_else(|| panic!("no {scope} membership of {id}: {memberships:?}"))
            .clone()
    };
    assert_eq!(find("organization", &mine.org)["role"], "owner");
    assert_eq!(find("organization", &bobs.org)["role"], "member");
    assert_eq!(find("project", &bobs.project)["role"], "viewer");
    assert_eq!(find("project", &bobs.project)["org_id"], json!(bobs.org));
    let text = serde_json::to_string(&items).unwrap();
    assert!(!text.contains(&bob.id), "nothing of bob's: {text}");
    for limit in [1, 3, 100] {
        let (paged, _) = export_all(&h, &alice, limit).await;
        assert_eq!(kinds(&paged), counts, "page size {limit} does not change the content");
    }
    // bob's export has his own organization, not alice's.
    let (bobs_items, _) = export_all(&h, &bob, 100).await;
    let orgs: Vec<_> =
        bobs_items.iter().filter(|i| i["kind"] == "organization").map(|i| i["item"]["id"].clone()).collect();
    assert_eq!(orgs, [json!(bobs.org)]);
}

/// While on, Queries of the memberships' user index show nothing: a membership written a moment
/// before that the index does not show yet, as on AWS.
#[derive(Clone, Debug, Default)]
struct MembershipsNotIndexedYet(Arc<AtomicBool>);

/// Marks a Query of the user index (set when the request starts; the input is gone by the answer).
#[derive(Clone, Debug)]
struct OnUserIndex;

impl aws_smithy_types::config_bag::Storable for OnUserIndex {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_dynamodb::config::Intercept for MembershipsNotIndexedYet {
    fn name(&self) -> &'static str {
        "MembershipsNotIndexedYet"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let input = context.input().downcast_ref::<aws_sdk_dynamodb::operation::query::QueryInput>();
        if input.and_then(|q| q.index_name()) == Some("user_id-scope-index") {
            cfg.interceptor_state().store_put(OnUserIndex);
        }
        Ok(())
    }

    fn modify_before_completion(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if !self.0.load(Ordering::SeqCst) || cfg.load::<OnUserIndex>().is_none() {
            return Ok(());
        }
        let Some(Ok(output)) = context.output_or_error_mut() else { return Ok(()) };
        if let Some(query) = output.downcast_mut::<aws_sdk_dynamodb::operation::query::QueryOutput>() {
            query.items = Some(Vec::new());
            query.count = 0;
            query.last_evaluated_key = None;
        }
        Ok(())
    }
}

/// The deletion lists memberships on the eventually consistent user index: one granted a moment
/// before may be missed and stay. It grants nothing: not to the old token (revoked, as
/// everywhere), and not to a new one (created before the deletion). A membership granted after
/// the deletion belongs to the account as it is now.
#[tokio::test]
async fn a_membership_the_deletion_did_not_see_grants_nothing() {
    let hidden = MembershipsNotIndexedYet::default();
    let hook = hidden.clone();
    let h = Harness::with(move |s| {
        s.test_dynamodb_interceptors.push(aws_sdk_dynamodb::config::SharedInterceptor::new(hook))
    })
    .await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let team = Team::new(&h, bob.clone()).await;
    assert_eq!(h.call(Some(&alice), "GET", "/me", None).await.status, 200);
    team.add(&h, &alice, Role::Admin, None).await;
    let (org, project) = (format!("/orgs/{}", team.org), format!("/projects/{}", team.project));
    assert_eq!(h.call(Some(&alice), "GET", &project, None).await.status, 200, "alice is an admin");

    hidden.0.store(true, Ordering::SeqCst);
    let deleted = h.call(Some(&alice), "DELETE", "/me", None).await;
    hidden.0.store(false, Ordering::SeqCst);
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"]["membership"], 0, "the deletion did not see it");
    assert!(member_ids(&h, &bob, &org).await.contains(&alice.id), "the membership was left behind");

    let again = signed_in_again(&h, &alice).await;
    // The old token is refused everywhere (its account was deleted); the new one is no member.
    for path in [&org, &project, &format!("{project}/canvases"), &"/orgs".to_owned()] {
        assert_account_deleted(&h.call(Some(&alice), "GET", path, None).await);
        let expected = if path == "/orgs" { 200 } else { 404 };
        assert_eq!(h.call(Some(&again), "GET", path, None).await.status, expected, "{path}");
    }
    let r = h.call(Some(&again), "POST", &format!("{project}/canvases"), Some(json!({"name": "x"}))).await;
    r.assert_problem(404);
    assert!(h.list_all(&again, "/orgs", 10).await.0.is_empty(), "no organization listed");

    // Granted again after the deletion: the signed-in-again account is a member, the old token
    // still nothing.
    assert_eq!(team.put_member(&h, &bob, &org, &again, Role::Member).await.status, 204);
    assert_eq!(h.call(Some(&again), "GET", &project, None).await.status, 404, "a member, not in the project");
    assert_eq!(h.call(Some(&again), "GET", &org, None).await.status, 200);
    assert_eq!(h.list_all(&again, "/orgs", 10).await.0.len(), 1);
    assert_account_deleted(&h.call(Some(&alice), "GET", &org, None).await);
}
