//! API keys for programs: created by a signed-in person, shown once, acting for their creator
//! within their scope (personal, or one project with a role no higher than the creator's),
//! refused once revoked, expired or their creator is gone, and never a way to manage
//! credentials, the account or organizations.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{Harness, User};
use serde_json::{json, Value};
use shared::access::Role;

use crate::teams::Team;

const TABLE: &str = "ApiKeysTable";

/// The creator's key as a caller of the harness (same user id, the key as the bearer).
fn acting_with(creator: &User, key: &str) -> User {
    User { id: creator.id.clone(), token: key.to_owned() }
}

async fn create(h: &Harness, creator: &User, body: Value) -> integration_tests::Reply {
    h.call(Some(creator), "POST", "/auth/api-keys", Some(body)).await
}

/// A new key of `creator` with this scope: (its listing, the creator acting with it).
async fn key(h: &Harness, creator: &User, scope: Value) -> (Value, User) {
    let reply = create(h, creator, json!({"name": "ci", "scope": scope})).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let body = reply.json();
    let key = body["key"].as_str().expect("the key is in the answer").to_owned();
    (body, acting_with(creator, &key))
}

async fn personal_key(h: &Harness, creator: &User) -> (Value, User) {
    key(h, creator, json!({"kind": "personal"})).await
}

fn dynamodb(h: &Harness) -> aws_sdk_dynamodb::Client {
    shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone())
}

fn table(h: &Harness) -> String {
    h.stack.template.table(TABLE).expect("the template has ApiKeysTable").logical_id.clone()
}

/// The stored item of a key, read directly.
async fn stored(h: &Harness, user: &User, id: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    dynamodb(h)
        .get_item()
        .table_name(table(h))
        .key("user_id", AttributeValue::S(user.id.clone()))
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn canvas(h: &Harness, user: &User, path: &str, name: &str) -> String {
    let reply = h.call(Some(user), "POST", path, Some(json!({"name": name}))).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().filter_map(|i| i["name"].as_str()).collect()
}

#[tokio::test]
async fn the_secret_is_shown_once_and_only_its_digest_is_stored() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let reply =
        create(&h, &alice, json!({"name": "deploys", "scope": {"kind": "personal"}, "expires_in_days": 30})).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let created = reply.json();
    let (id, prefix, key) =
        (created["id"].as_str().unwrap(), created["prefix"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!(prefix, format!("ak_{id}"));
    assert!(key.starts_with(&format!("{prefix}.")), "{key}");
    assert_eq!(reply.header("location"), Some(format!("/auth/api-keys/{id}").as_str()));
    assert_eq!(created["scope"], json!({"kind": "personal"}));
    let expires = created["expires_at"].as_u64().unwrap();
    let in_30_days = jsonwebtoken::get_current_timestamp() + 30 * 86_400;
    assert!(expires.abs_diff(in_30_days) < 60, "{expires}");

    let secret = key.rsplit('.').next().unwrap();
    let list = h.call(Some(&alice), "GET", "/auth/api-keys", None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["prefix"], prefix);
    assert_eq!(items[0]["name"], "deploys");
    assert_eq!(items[0]["last_used_at"], Value::Null);
    assert!(items[0].get("key").is_none() && items[0].get("secret_hash").is_none(), "{}", items[0]);
    assert!(!list.text().contains(secret), "the list never shows the secret");

    let item = stored(&h, &alice, id).await.expect("the key is stored under its creator");
    let digest = item["secret_hash"].as_s().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(item.values().all(|v| v.as_s().map_or(true, |s| !s.contains(secret))), "the secret is not stored");

    let bob = h.user("bob");
    let theirs = h.call(Some(&bob), "GET", "/auth/api-keys", None).await;
    assert_eq!(theirs.json()["items"], json!([]), "bob lists none of alice's keys");
}

#[tokio::test]
async fn a_personal_key_reaches_its_creators_personal_items_and_nothing_else() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let own = canvas(&h, &alice, "/canvases", "mine").await;
    let bobs = canvas(&h, &bob, "/canvases", "bob's").await;
    let team = Team::new(&h, alice.clone()).await;
    let (_, program) = personal_key(&h, &alice).await;

    let (items, _) = h.list_all(&program, "/canvases", 10).await;
    assert_eq!(names(&items), ["mine"]);
    assert_eq!(h.call(Some(&program), "GET", &format!("/canvases/{own}"), None).await.status, 200);
    assert_eq!(canvas(&h, &program, "/canvases", "written by a program").await.len(), 36);
    h.call(Some(&program), "GET", &format!("/canvases/{bobs}"), None).await.assert_problem(404);
    let project = format!("/projects/{}/canvases", team.project);
    let refused = h.call(Some(&program), "GET", &project, None).await.assert_problem(404);
    let not_a_member = h.call(Some(&bob), "GET", &project, None).await.assert_problem(404);
    assert_eq!(refused["detail"], not_a_member["detail"], "the project is as invisible as to a non-member");
    h.call(Some(&program), "GET", &format!("/projects/{}", team.project), None).await.assert_problem(404);
    h.call(Some(&program), "GET", &format!("/orgs/{}", team.org), None).await.assert_problem(403);
    assert_eq!(h.call(Some(&alice), "GET", &project, None).await.status, 200, "alice herself still reaches it");
}

#[tokio::test]
async fn a_project_viewer_key_reads_that_project_only() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let team = Team::new(&h, h.user("owner")).await;
    team.add(&h, &alice, Role::Member, Some(Role::Member)).await;
    let other = Team::new(&h, alice.clone()).await;
    let shared_canvas = canvas(&h, &team.owner, &format!("/projects/{}/canvases", team.project), "plan").await;
    canvas(&h, &alice, "/canvases", "alice's own").await;
    let (created, program) =
        key(&h, &alice, json!({"kind": "project", "project_id": team.project, "role": "viewer"})).await;
    assert_eq!(created["scope"], json!({"kind": "project", "project_id": team.project, "role": "viewer"}));

    let in_project = format!("/projects/{}/canvases", team.project);
    assert_eq!(names(&h.list_all(&program, &in_project, 10).await.0), ["plan"]);
    let item = format!("{in_project}/{shared_canvas}");
    assert_eq!(h.call(Some(&program), "GET", &item, None).await.status, 200);
    let body = h.call(Some(&program), "POST", &in_project, Some(json!({"name": "x"}))).await.assert_problem(403);
    assert_eq!(body["detail"], "your role (viewer) does not allow this");
    h.call(Some(&program), "PATCH", &item, Some(json!({"name": "y"}))).await.assert_problem(403);
    h.call(Some(&program), "DELETE", &item, None).await.assert_problem(403);
    assert_eq!(h.call(Some(&alice), "POST", &in_project, Some(json!({"name": "z"}))).await.status, 201);

    h.call(Some(&program), "GET", &format!("/projects/{}/canvases", other.project), None).await.assert_problem(404);
    let personal = h.call(Some(&program), "GET", "/canvases", None).await.assert_problem(403);
    assert!(personal["detail"].as_str().unwrap().contains("scoped to project"), "{personal}");
    h.call(Some(&program), "GET", &format!("/orgs/{}/projects", team.org), None).await.assert_problem(403);
}

#[tokio::test]
async fn a_key_cannot_reach_further_than_its_creator() {
    let h = Harness::new().await;
    let (alice, stranger) = (h.user("alice"), h.user("stranger"));
    let team = Team::new(&h, h.user("owner")).await;
    team.add(&h, &alice, Role::Member, Some(Role::Viewer)).await;
    let scope =
        |role: &str| json!({"name": "k", "scope": {"kind": "project", "project_id": team.project, "role": role}});

    let body = create(&h, &alice, scope("member")).await.assert_problem(403);
    assert!(body["detail"].as_str().unwrap().contains("higher role"), "{body}");
    create(&h, &alice, scope("admin")).await.assert_problem(403);
    create(&h, &alice, scope("owner")).await.assert_problem(400);
    create(&h, &stranger, scope("viewer")).await.assert_problem(404);
    assert_eq!(create(&h, &alice, scope("viewer")).await.status, 201);
    assert_eq!(create(&h, &team.owner, scope("admin")).await.status, 201, "an org owner acts as project admin");
    for bad in [
        json!({"name": "", "scope": {"kind": "personal"}}),
        json!({"name": "k", "scope": {"kind": "personal"}, "expires_in_days": 0}),
        json!({"name": "k", "scope": {"kind": "personal"}, "expires_in_days": 366}),
        json!({"name": "k", "scope": {"kind": "everything"}}),
        json!({"name": "k", "scope": {"kind": "project", "project_id": team.project}}),
    ] {
        create(&h, &alice, bad).await.assert_problem(400);
    }
    let (items, _) = h.list_all(&alice, "/auth/api-keys", 10).await;
    assert_eq!(items.len(), 1, "nothing refused was created: {items:?}");
}

#[tokio::test]
async fn a_creator_who_loses_the_membership_takes_the_keys_reach_with_them() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let team = Team::new(&h, h.user("owner")).await;
    team.add(&h, &alice, Role::Member, Some(Role::Admin)).await;
    let (_, program) = key(&h, &alice, json!({"kind": "project", "project_id": team.project, "role": "member"})).await;
    let in_project = format!("/projects/{}/canvases", team.project);
    assert_eq!(h.call(Some(&program), "POST", &in_project, Some(json!({"name": "a"}))).await.status, 201);

    // Demoted to viewer: the key acts as a viewer at once, although it says member.
    let r = team.put_member(&h, &team.owner, &format!("/projects/{}", team.project), &alice, Role::Viewer).await;
    assert_eq!(r.status, 204, "{}", r.text());
    h.call(Some(&program), "POST", &in_project, Some(json!({"name": "b"}))).await.assert_problem(403);
    assert_eq!(h.call(Some(&program), "GET", &in_project, None).await.status, 200);

    let removed =
        h.call(Some(&team.owner), "DELETE", &format!("/projects/{}/members/{}", team.project, alice.id), None).await;
    assert_eq!(removed.status, 204, "{}", removed.text());
    h.call(Some(&program), "GET", &in_project, None).await.assert_problem(404);
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_the_revocation_bound() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let (created, program) = personal_key(&h, &alice).await;
    let (_, other) = personal_key(&h, &alice).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200, "cached by the function now");

    let path = format!("/auth/api-keys/{id}");
    h.call(Some(&bob), "DELETE", &path, None).await.assert_problem(404);
    assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200, "bob revoked nothing");
    assert_eq!(h.call(Some(&alice), "DELETE", &path, None).await.status, 204);
    h.call(Some(&alice), "DELETE", &path, None).await.assert_problem(404);
    Harness::past_the_revocation_bound().await;
    for route in ["/canvases", "/sessions", "/me", "/files"] {
        let body = h.call(Some(&program), "GET", route, None).await.assert_problem(401);
        assert_eq!(body["detail"], "a valid bearer token is required");
    }
    assert_eq!(h.call(Some(&other), "GET", "/canvases", None).await.status, 200, "her other key still works");
    assert!(stored(&h, &alice, id).await.is_none(), "a use after the revocation re-created nothing");
}

#[tokio::test]
async fn tampered_expired_and_foreign_keys_are_refused() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let (_, program) = personal_key(&h, &alice).await;
    let presented = program.token.clone();
    let mut flipped = presented.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let (user_part, secret) = {
        let mut parts = presented.splitn(3, '.').skip(1);
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    };
    use base64::Engine;
    let bobs_user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bob.id);
    for forged in [
        String::from_utf8(flipped).unwrap(),
        presented.replace(&user_part, &bobs_user),
        format!("ak_{}.{user_part}.{secret}", uuid::Uuid::now_v7()),
        "ak_garbage".to_owned(),
        format!("{presented}.extra"),
    ] {
        let reply = h.call(Some(&acting_with(&alice, &forged)), "GET", "/canvases", None).await;
        reply.assert_problem(401);
    }

    // Expired (TTL deletes it only eventually): refused at once, by the expiry it carries. A
    // key of its own, never presented, so no function has it cached with its old expiry.
    let (created, program) = key(&h, &alice, json!({"kind": "personal"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    dynamodb(&h)
        .update_item()
        .table_name(table(&h))
        .key("user_id", AttributeValue::S(alice.id.clone()))
        .key("id", AttributeValue::S(id.clone()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::N((jsonwebtoken::get_current_timestamp() - 5).to_string()),
        )
        .send()
        .await
        .unwrap();
    h.call(Some(&program), "GET", "/canvases", None).await.assert_problem(401);
    h.call(Some(&program), "GET", "/me", None).await.assert_problem(401);
}

#[tokio::test]
async fn a_key_cannot_manage_keys_the_account_or_organizations() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let team = Team::new(&h, alice.clone()).await;
    let (created, program) = personal_key(&h, &alice).await;
    let (_, project_key) =
        key(&h, &alice, json!({"kind": "project", "project_id": team.project, "role": "admin"})).await;
    let id = created["id"].as_str().unwrap();
    for caller in [&program, &project_key] {
        for (method, path, body) in [
            ("POST", "/auth/api-keys".to_owned(), Some(json!({"name": "k", "scope": {"kind": "personal"}}))),
            ("GET", "/auth/api-keys".to_owned(), None),
            ("DELETE", format!("/auth/api-keys/{id}"), None),
            ("DELETE", "/me".to_owned(), None),
            ("GET", "/me/export".to_owned(), None),
            ("POST", "/orgs".to_owned(), Some(json!({"name": "Program Inc"}))),
            ("GET", "/orgs".to_owned(), None),
            ("GET", format!("/orgs/{}", team.org), None),
            ("POST", "/invitations/accept".to_owned(), Some(json!({"token": "whatever"}))),
        ] {
            let body = h.call(Some(caller), method, &path, body).await.assert_problem(403);
            assert!(body["detail"].as_str().unwrap().starts_with("API keys cannot"), "{method} {path}: {body}");
        }
    }
    let (items, _) = h.list_all(&alice, "/auth/api-keys", 10).await;
    assert_eq!(items.len(), 2, "no key made a key, none was revoked");
    assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200, "the account is still there");
}

#[tokio::test]
async fn deleting_the_account_deletes_its_keys() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let (created, program) = personal_key(&h, &alice).await;
    personal_key(&h, &alice).await;
    assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200);
    let deleted = h.call(Some(&alice), "DELETE", "/me", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"].get("api_key"), None, "keys are bookkeeping, not counted as content");
    assert!(stored(&h, &alice, created["id"].as_str().unwrap()).await.is_none());
    Harness::past_the_revocation_bound().await;
    h.call(Some(&program), "GET", "/canvases", None).await.assert_problem(401);
}

#[tokio::test]
async fn a_disabled_creator_ends_their_keys_and_signing_out_does_not() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let (_, program) = personal_key(&h, &alice).await;
    h.credentials().end_all_sessions(&h.identity(&alice).await).await.unwrap();
    Harness::past_the_revocation_bound().await;
    h.call(Some(&alice), "GET", "/canvases", None).await.assert_problem(401);
    assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200, "keys outlive sign-outs");
    h.credentials().set_disabled(&alice.id, true).await.unwrap();
    Harness::past_the_revocation_bound().await;
    let body = h.call(Some(&program), "GET", "/canvases", None).await.assert_problem(401);
    assert_eq!(body["detail"], "the account is disabled; sign in again");
}

#[tokio::test]
async fn get_me_shows_how_the_caller_authenticated() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let team = Team::new(&h, alice.clone()).await;
    let me = h.call(Some(&alice), "GET", "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["authentication"], json!({"kind": "token"}));
    let (personal, program) = personal_key(&h, &alice).await;
    let me = h.call(Some(&program), "GET", "/me", None).await.json();
    assert_eq!(
        me["authentication"],
        json!({"kind": "api_key", "key_id": personal["id"], "scope": {"kind": "personal"}})
    );
    assert_eq!(me["user_id"], alice.id.as_str());
    let scope = json!({"kind": "project", "project_id": team.project, "role": "member"});
    let (project, program) = key(&h, &alice, scope.clone()).await;
    let me = h.call(Some(&program), "GET", "/me", None).await.json();
    assert_eq!(me["authentication"], json!({"kind": "api_key", "key_id": project["id"], "scope": scope}));
}

#[tokio::test]
async fn last_used_is_recorded_once_per_interval_not_on_every_request() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let (created, program) = personal_key(&h, &alice).await;
    let id = created["id"].as_str().unwrap();
    let last_used =
        || async { stored(&h, &alice, id).await.unwrap().get("last_used_at").and_then(|v| v.as_s().ok()).cloned() };
    assert_eq!(last_used().await, None);
    for _ in 0..2 {
        assert_eq!(h.call(Some(&program), "GET", "/canvases", None).await.status, 200);
    }
    let first = last_used().await.expect("a use is recorded");
    Harness::past_the_revocation_bound().await;
    for route in ["/canvases", "/sessions"] {
        assert_eq!(h.call(Some(&program), "GET", route, None).await.status, 200);
    }
    assert_eq!(last_used().await, Some(first.clone()), "no second write within the interval");
    let (items, _) = h.list_all(&alice, "/auth/api-keys", 10).await;
    assert_eq!(items[0]["last_used_at"], first.as_str(), "the list shows it");
}
