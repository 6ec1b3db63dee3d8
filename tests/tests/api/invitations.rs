//! Invitations through the real handlers on DynamoDB Local: by user id and by email, to an
//! organization and to a project; refused when reused, expired, revoked, for someone else, or
//! for a role above the inviter's own; listed only to those who may manage members.

use integration_tests::{Harness, Reply, User};
use serde_json::{json, Value};
use shared::access::Role;

use crate::teams::Team;

/// `scope` is `/orgs/<id>` or `/projects/<id>`.
async fn invite(h: &Harness, by: &User, scope: &str, body: Value) -> Reply {
    h.call(Some(by), "POST", &format!("{scope}/invitations"), Some(body)).await
}

/// Invites and returns (invitation id, token), checking the answer shows the token once.
async fn invited(h: &Harness, by: &User, scope: &str, body: Value) -> (String, String) {
    let r = invite(h, by, scope, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let token = v["token"].as_str().expect("the creation answer has the token").to_owned();
    assert!(v.get("secret_hash").is_none() && v.get("secret").is_none(), "{v}");
    (v["id"].as_str().unwrap().to_owned(), token)
}

async fn accept(h: &Harness, user: &User, token: &str) -> Reply {
    h.call(Some(user), "POST", "/invitations/accept", Some(json!({ "token": token }))).await
}

async fn pending(h: &Harness, by: &User, scope: &str) -> Vec<Value> {
    h.list_all(by, &format!("{scope}/invitations"), 100).await.0
}

#[track_caller]
fn refused(reply: &Reply, status: u16, detail: &str) {
    let problem = reply.assert_problem(status);
    let text = problem["detail"].as_str().unwrap();
    assert!(text.contains(detail), "expected {detail:?} in {text:?}");
}

#[tokio::test]
async fn an_invitation_by_user_id_gives_exactly_its_role_on_the_next_request_and_only_once() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let (bob, carol) = (h.user("bob"), h.user("carol"));
    let org = format!("/orgs/{}", team.org);
    let (id, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "member"})).await;
    h.call(Some(&bob), "GET", &org, None).await.assert_problem(404);

    let listed = pending(&h, &team.owner, &org).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["user"], bob.id.as_str());
    assert_eq!(listed[0]["role"], "member");
    assert_eq!(listed[0]["invited_by"], team.owner.id.as_str());
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&token) && !text.contains("secret") && !text.contains("hash"), "{text}");

    refused(&accept(&h, &carol, &token).await, 403, "another user");
    let r = accept(&h, &bob, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"org_id": team.org, "role": "member"}));

    let got = h.call(Some(&bob), "GET", &org, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["role"], "member");
    // A member, not more: managing members is refused.
    refused(&h.call(Some(&bob), "GET", &format!("{org}/invitations"), None).await, 403, "role");
    let (members, _) = h.list_all(&team.owner, &format!("{org}/members"), 100).await;
    assert!(members.iter().any(|m| m["user"] == bob.id.as_str() && m["role"] == "member"), "{members:?}");

    refused(&accept(&h, &bob, &token).await, 409, "already accepted");
    assert!(pending(&h, &team.owner, &org).await.is_empty(), "an accepted invitation is no longer pending");
    refused(
        &h.call(Some(&team.owner), "DELETE", &format!("{org}/invitations/{id}"), None).await,
        409,
        "already accepted",
    );
}

#[tokio::test]
async fn an_invitation_by_email_needs_that_verified_email() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let org = format!("/orgs/{}", team.org);
    let (_, token) = invited(&h, &team.owner, &org, json!({"email": " Dana@Example.com", "role": "viewer"})).await;
    assert_eq!(pending(&h, &team.owner, &org).await[0]["email"], "dana@example.com");

    let no_email = h.user("dana");
    refused(&accept(&h, &no_email, &token).await, 403, "another email address");
    let wrong = h.user_with_email("dana", "dana@example.org", true);
    refused(&accept(&h, &wrong, &token).await, 403, "another email address");
    let unverified = h.user_with_email("dana", "dana@example.com", false);
    refused(&accept(&h, &unverified, &token).await, 403, "not verified");
    for user in [&no_email, &wrong, &unverified] {
        h.call(Some(user), "GET", &org, None).await.assert_problem(404);
    }

    let dana = h.user_with_email("dana", "  DANA@example.COM ", true);
    let r = accept(&h, &dana, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "viewer");
    let got = h.call(Some(&dana), "GET", &org, None).await;
    assert_eq!(got.json()["role"], "viewer", "{}", got.text());
    // The one who accepted is the member, whatever other account carries the same address.
    let same_address = h.user_with_email("dana-again", "dana@example.com", true);
    refused(&accept(&h, &same_address, &token).await, 409, "already accepted");
    h.call(Some(&same_address), "GET", &org, None).await.assert_problem(404);
}

#[tokio::test]
async fn an_expired_invitation_is_refused_and_lifetimes_are_bounded() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    let org = format!("/orgs/{}", team.org);
    for expires_in in [json!(0), json!(604_801), json!(-1), json!("soon")] {
        let r =
            invite(&h, &team.owner, &org, json!({"user": bob.id, "role": "member", "expires_in": expires_in})).await;
        r.assert_problem(400);
    }
    let r = invite(&h, &team.owner, &org, json!({"user": bob.id, "role": "member"})).await;
    let created = r.json();
    // Timestamps are fixed-width UTC, so string order is time order.
    let in_a_week = |slack: i64| {
        let at = jsonwebtoken::get_current_timestamp() as i64 + 7 * 24 * 3600 + slack;
        shared::item::Timestamp::from_epoch_seconds(at as u64).into_string()
    };
    let expires_at = created["expires_at"].as_str().unwrap().to_owned();
    assert!(in_a_week(-60) <= expires_at && expires_at <= in_a_week(60), "default lifetime is 7 days: {expires_at}");

    let (_, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "member", "expires_in": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(&accept(&h, &bob, &token).await, 410, "expired");
    h.call(Some(&bob), "GET", &org, None).await.assert_problem(404);
    let listed = pending(&h, &team.owner, &org).await;
    assert_eq!(listed.len(), 1, "the expired one is not pending: {listed:?}");
    assert_eq!(listed[0]["id"], created["id"]);
}

#[tokio::test]
async fn a_revoked_invitation_is_refused() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    let org = format!("/orgs/{}", team.org);
    let (id, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "member"})).await;
    for _ in 0..2 {
        let r = h.call(Some(&team.owner), "DELETE", &format!("{org}/invitations/{id}"), None).await;
        assert_eq!(r.status, 204, "revoking (again) succeeds: {}", r.text());
    }
    assert!(pending(&h, &team.owner, &org).await.is_empty());
    refused(&accept(&h, &bob, &token).await, 410, "revoked");
    h.call(Some(&bob), "GET", &org, None).await.assert_problem(404);
    let missing = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    h.call(Some(&team.owner), "DELETE", &format!("{org}/invitations/{missing}"), None).await.assert_problem(404);
}

#[tokio::test]
async fn tokens_that_are_not_an_invitations_are_refused() {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    let org = format!("/orgs/{}", team.org);
    let (_, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "member"})).await;
    let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    refused(&accept(&h, &bob, &URL_SAFE_NO_PAD.encode(&bytes)).await, 404, "invitation not found");
    // The same id and secret under another scope.
    bytes[0] = 2;
    *bytes.last_mut().unwrap() ^= 1;
    refused(&accept(&h, &bob, &URL_SAFE_NO_PAD.encode(&bytes)).await, 404, "invitation not found");
    for garbage in ["", "not a token", &token[..20], &format!("{token}AAAA")] {
        refused(&accept(&h, &bob, garbage).await, 400, "malformed");
    }
    h.call(Some(&bob), "GET", &org, None).await.assert_problem(404);
    let r = accept(&h, &bob, &token).await;
    assert_eq!(r.status, 200, "the real token still works: {}", r.text());
}

#[tokio::test]
async fn a_project_invitation_is_for_members_of_its_organization() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let (bob, outsider) = (h.user("bob"), h.user("outsider"));
    team.add(&h, &bob, Role::Viewer, None).await;
    let project = format!("/projects/{}", team.project);
    h.call(Some(&bob), "GET", &format!("{project}/canvases"), None).await.assert_problem(404);
    let (_, token) = invited(&h, &team.owner, &project, json!({"user": bob.id, "role": "member"})).await;
    let r = accept(&h, &bob, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"org_id": team.org, "project_id": team.project, "role": "member"}));
    let made = h.call(Some(&bob), "POST", &format!("{project}/canvases"), Some(json!({"name": "Bob's"}))).await;
    assert_eq!(made.status, 201, "a project member creates items: {}", made.text());
    refused(&h.call(Some(&bob), "GET", &format!("{project}/invitations"), None).await, 403, "role");

    let (_, token) = invited(&h, &team.owner, &project, json!({"user": outsider.id, "role": "viewer"})).await;
    refused(&accept(&h, &outsider, &token).await, 409, "organization first");
    h.call(Some(&outsider), "GET", &project, None).await.assert_problem(404);
    // Once in the organization, the same invitation (still pending) works.
    team.add(&h, &outsider, Role::Viewer, None).await;
    assert_eq!(accept(&h, &outsider, &token).await.status, 200);
    assert_eq!(h.call(Some(&outsider), "GET", &project, None).await.json()["role"], "viewer");

    // Projects have no owners.
    invite(&h, &team.owner, &project, json!({"user": outsider.id, "role": "owner"})).await.assert_problem(400);
}

#[tokio::test]
async fn an_existing_member_cannot_accept_and_the_invitation_stays_pending() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    team.add(&h, &bob, Role::Admin, None).await;
    let org = format!("/orgs/{}", team.org);
    let (id, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "viewer"})).await;
    refused(&accept(&h, &bob, &token).await, 409, "already a member");
    assert_eq!(h.call(Some(&bob), "GET", &org, None).await.json()["role"], "admin", "not demoted");
    assert_eq!(pending(&h, &team.owner, &org).await[0]["id"], id.as_str());
}

#[tokio::test]
async fn only_those_who_manage_members_see_invitations_and_nobody_invites_above_their_role() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let org = format!("/orgs/{}", team.org);
    let project = format!("/projects/{}", team.project);
    let (admin, member, viewer, project_admin, stranger) =
        (h.user("admin"), h.user("member"), h.user("viewer"), h.user("padmin"), h.user("stranger"));
    team.add(&h, &admin, Role::Admin, None).await;
    team.add(&h, &member, Role::Member, Some(Role::Member)).await;
    team.add(&h, &viewer, Role::Viewer, Some(Role::Viewer)).await;
    team.add(&h, &project_admin, Role::Viewer, Some(Role::Admin)).await;
    let (owners_id, _) =
        invited(&h, &team.owner, &org, json!({"email": "co-owner@example.com", "role": "owner"})).await;
    invited(&h, &team.owner, &project, json!({"email": "p@example.com", "role": "admin"})).await;

    for (scope, allowed) in [(&org, vec![&team.owner, &admin]), (&project, vec![&team.owner, &admin, &project_admin])] {
        for user in [&team.owner, &admin, &member, &viewer, &project_admin, &stranger] {
            let list = h.call(Some(user), "GET", &format!("{scope}/invitations"), None).await;
            let create = invite(&h, user, scope, json!({"email": "x@example.com", "role": "viewer"})).await;
            if allowed.iter().any(|a| a.id == user.id) {
                assert_eq!(list.status, 200, "{scope} {}: {}", user.id, list.text());
                assert_eq!(create.status, 201, "{scope} {}: {}", user.id, create.text());
            } else if user.id == stranger.id {
                list.assert_problem(404);
                create.assert_problem(404);
            } else {
                refused(&list, 403, "role");
                refused(&create, 403, "role");
            }
        }
    }

    // Nobody invites above their own role, nor revokes an invitation for one.
    refused(&invite(&h, &admin, &org, json!({"user": "someone", "role": "owner"})).await, 403, "above your own");
    assert_eq!(invite(&h, &admin, &org, json!({"user": "someone", "role": "admin"})).await.status, 201);
    let r = h.call(Some(&admin), "DELETE", &format!("{org}/invitations/{owners_id}"), None).await;
    refused(&r, 403, "above your own");
    assert!(pending(&h, &team.owner, &org).await.iter().any(|i| i["id"] == owners_id.as_str()), "still pending");
    // In the project the organization's admins and owners act as admins: no owner to invite.
    invite(&h, &project_admin, &project, json!({"user": "someone", "role": "owner"})).await.assert_problem(400);
    assert_eq!(invite(&h, &project_admin, &project, json!({"user": "someone", "role": "admin"})).await.status, 201);
}

#[tokio::test]
async fn accepting_an_owner_invitation_counts_the_owner_and_two_accepts_at_once_make_one_member() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    let org = format!("/orgs/{}", team.org);
    let (_, token) = invited(&h, &team.owner, &org, json!({"user": bob.id, "role": "owner"})).await;
    let (a, b) = tokio::join!(accept(&h, &bob, &token), accept(&h, &bob, &token));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text(), b.text());
    let (members, _) = h.list_all(&team.owner, &format!("{org}/members"), 100).await;
    assert_eq!(members.iter().filter(|m| m["user"] == bob.id.as_str()).count(), 1);
    // Two owners now: the first may leave, as the owner count says.
    let r = h.call(Some(&team.owner), "DELETE", &format!("{org}/members/{}", team.owner.id), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = h.call(Some(&bob), "DELETE", &format!("{org}/members/{}", bob.id), None).await;
    refused(&r, 409, "last owner");

    // Two different users racing for one email invitation: one member.
    let (_, token) = invited(&h, &bob, &org, json!({"email": "eve@example.com", "role": "member"})).await;
    let (eve, eve2) =
        (h.user_with_email("eve", "eve@example.com", true), h.user_with_email("eve2", "eve@example.com", true));
    let (a, b) = tokio::join!(accept(&h, &eve, &token), accept(&h, &eve2, &token));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text(), b.text());
    let (members, _) = h.list_all(&bob, &format!("{org}/members"), 100).await;
    let joined = members.iter().filter(|m| m["user"] == eve.id.as_str() || m["user"] == eve2.id.as_str()).count();
    assert_eq!(joined, 1, "{members:?}");
}

#[tokio::test]
async fn deleting_an_organization_or_a_project_removes_its_invitations() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let bob = h.user("bob");
    team.add(&h, &bob, Role::Viewer, None).await;
    let (org, project) = (format!("/orgs/{}", team.org), format!("/projects/{}", team.project));
    let (_, to_project) = invited(&h, &team.owner, &project, json!({"user": bob.id, "role": "member"})).await;
    let r = h.call(Some(&team.owner), "DELETE", &project, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    // Gone, not merely refused (a kept invitation of a deleted project would answer 410).
    refused(&accept(&h, &bob, &to_project).await, 404, "invitation not found");

    let second = h.call(Some(&team.owner), "POST", &format!("{org}/projects"), Some(json!({"name": "Two"}))).await;
    let second = format!("/projects/{}", second.json()["id"].as_str().unwrap());
    let (_, to_second) = invited(&h, &team.owner, &second, json!({"user": bob.id, "role": "member"})).await;
    let carol = h.user("carol");
    let (_, to_org) = invited(&h, &team.owner, &org, json!({"user": carol.id, "role": "member"})).await;
    let r = h.call(Some(&team.owner), "DELETE", &org, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    refused(&accept(&h, &carol, &to_org).await, 404, "invitation not found");
    refused(&accept(&h, &bob, &to_second).await, 404, "invitation not found");
    h.call(Some(&carol), "GET", &org, None).await.assert_problem(404);
}
