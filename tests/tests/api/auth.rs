//! The auth area end to end against moto's Cognito (started by `local-stack exec`): sign-up,
//! confirmation (moto accepts any code), sign-in, refresh and both sign-outs, with the pool's
//! RS256 tokens verified through its JWKS by every function.

use std::time::Instant;

use integration_tests::{Harness, Reply, User};
use local_stack::cognito_local::LocalPool;
use serde_json::{json, Value};
use shared::identity_provider::{
    PoolAdmin, UserAdmin, ANSWER_FLOOR, PASSWORD_MIN_LENGTH, REFRESH_REFUSED, SIGN_IN_REFUSED,
};

const PASSWORD: &str = "Correct-horse-1";

fn pool() -> LocalPool {
    LocalPool::from_env().expect("COGNITO_* not set: run the tests with ./infra/test (local-stack exec)")
}

fn new_email(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple())
}

async fn post(h: &Harness, path: &str, body: Value) -> Reply {
    h.call(None, "POST", path, Some(body)).await
}

async fn sign_up(h: &Harness, email: &str, organization: Option<&str>) -> Reply {
    let mut body = json!({"email": email, "password": PASSWORD, "name": "Ada"});
    if let Some(org) = organization {
        body["organization"] = json!(org);
    }
    post(h, "/auth/signup", body).await
}

async fn confirm(h: &Harness, email: &str) -> Reply {
    // moto's ConfirmSignUp accepts any code (so a wrong code cannot be tested here).
    post(h, "/auth/confirm", json!({"email": email, "code": "123456"})).await
}

async fn sign_in(h: &Harness, email: &str, password: &str) -> Reply {
    post(h, "/auth/login", json!({"email": email, "password": password})).await
}

/// The caller behind an access (or ID) token: `user_id` as `GET /me` reports it.
async fn me(h: &Harness, token: &str) -> Reply {
    h.call(Some(&as_user(token)), "GET", "/me", None).await
}

fn as_user(token: &str) -> User {
    User { id: String::new(), token: token.to_owned() }
}

/// A confirmed account, signed in: its tokens.
async fn signed_in(h: &Harness, name: &str) -> (String, Value) {
    let email = new_email(name);
    assert_eq!(sign_up(h, &email, None).await.status, 202);
    assert_eq!(confirm(h, &email).await.status, 200);
    let reply = sign_in(h, &email, PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    (email, reply.json())
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[tokio::test]
async fn sign_up_confirm_sign_in_call_refresh_and_call_again() {
    let h = Harness::new().await;
    let (_, tokens) = signed_in(&h, "ada").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().is_some_and(|s| s > 0), "{tokens}");

    let profile = me(&h, text(&tokens, "access_token")).await;
    assert_eq!(profile.status, 200, "{}", profile.text());
    let sub = profile.json()["user_id"].as_str().expect("the profile names its user").to_owned();

    let refreshed = post(&h, "/auth/refresh", json!({"refresh_token": text(&tokens, "refresh_token")})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let refreshed = refreshed.json();
    assert_ne!(refreshed["access_token"], tokens["access_token"], "a new access token");
    let again = me(&h, text(&refreshed, "access_token")).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["user_id"], sub.as_str(), "the same user");
}

#[tokio::test]
async fn the_pools_id_token_and_access_token_both_verify_and_another_clients_does_not() {
    let h = Harness::new().await;
    let (email, tokens) = signed_in(&h, "tokens").await;
    for kind in ["access_token", "id_token"] {
        let reply = me(&h, text(&tokens, kind)).await;
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text());
    }
    let pool = pool();
    let other_client = pool.create_app_client("another-app").await.expect("moto creates a client");
    let (access, id) = pool.sign_in_with(&other_client, &email, PASSWORD).await.expect("signs in through it");
    for (kind, token) in [("access", access), ("id", id)] {
        let reply = me(&h, &token).await;
        reply.assert_problem(401);
        assert!(!reply.text().contains(&email), "{kind}: {}", reply.text());
    }
}

#[tokio::test]
async fn an_organization_named_at_sign_up_is_founded_once_with_the_user_as_owner() {
    let h = Harness::new().await;
    let email = new_email("founder");
    assert_eq!(sign_up(&h, &email, Some("Analytical Engines")).await.status, 202);
    let first = confirm(&h, &email).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let org_id = text(&first.json(), "organization_id").to_owned();
    // moto confirms twice (Cognito refuses the second): nothing is pending any more.
    let second = confirm(&h, &email).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(second.json().get("organization_id").is_none_or(Value::is_null), "{}", second.text());

    let tokens = sign_in(&h, &email, PASSWORD).await.json();
    let orgs = h.call(Some(&as_user(text(&tokens, "access_token"))), "GET", "/orgs", None).await;
    assert_eq!(orgs.status, 200, "{}", orgs.text());
    let items = orgs.json()["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one organization: {items:?}");
    assert_eq!(items[0]["id"], org_id.as_str());
    assert_eq!(items[0]["name"], "Analytical Engines");
    assert_eq!(items[0]["role"], "owner");
}

#[tokio::test]
async fn wrong_password_unknown_email_and_unconfirmed_account_get_the_same_answer() {
    let h = Harness::new().await;
    let (email, _) = signed_in(&h, "known").await;
    let unconfirmed = new_email("unconfirmed");
    assert_eq!(sign_up(&h, &unconfirmed, None).await.status, 202);

    let mut answers = Vec::new();
    for (what, email, password) in [
        ("wrong password", email.as_str(), "Wrong-horse-1"),
        ("unknown email", "nobody-at-all@example.com", PASSWORD),
        ("unconfirmed account", unconfirmed.as_str(), PASSWORD),
    ] {
        let started = Instant::now();
        let reply = sign_in(&h, email, password).await;
        let took = started.elapsed();
        let body = reply.assert_problem(401);
        assert_eq!(body["detail"], SIGN_IN_REFUSED, "{what}");
        assert!(took >= ANSWER_FLOOR, "{what} answered after {took:?}, before the floor");
        answers.push(reply.body_without_request_id());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

#[tokio::test]
async fn signing_up_a_registered_email_answers_like_a_new_one_and_changes_nothing() {
    let h = Harness::new().await;
    let email = new_email("twice");
    let new = sign_up(&h, &email, None).await;
    let again = post(&h, "/auth/signup", json!({"email": email, "password": "Another-horse-2", "name": "Eve"})).await;
    assert_eq!((new.status, again.status), (202, 202), "{}", again.text());
    assert_eq!(new.body, again.body);
    assert_eq!(confirm(&h, &email).await.status, 200);
    assert_eq!(sign_in(&h, &email, PASSWORD).await.status, 200, "the first password still holds");
    sign_in(&h, &email, "Another-horse-2").await.assert_problem(401);
}

#[tokio::test]
async fn a_password_that_breaks_the_policy_is_a_400_naming_the_rule() {
    let h = Harness::new().await;
    let reply =
        post(&h, "/auth/signup", json!({"email": new_email("weak"), "password": "alllowercase1", "name": "W"})).await;
    let body = reply.assert_problem(400);
    assert_eq!(body["detail"], "password must have an upper-case letter", "{body}");
    let reply = post(&h, "/auth/signup", json!({"email": new_email("short"), "password": "Ab1", "name": "S"})).await;
    assert_eq!(reply.assert_problem(400)["detail"], "password must have at least 12 characters");
}

#[tokio::test]
async fn signing_out_everywhere_refuses_the_old_refresh_token_and_access_token() {
    let h = Harness::new().await;
    let (_, tokens) = signed_in(&h, "everywhere").await;
    let access = text(&tokens, "access_token");
    let reply = h.call(Some(&as_user(access)), "POST", "/auth/logout-all", None).await;
    assert_eq!(reply.status, 204, "{}", reply.text());

    // Cognito's GlobalSignOut invalidated the refresh token.
    let refreshed = post(&h, "/auth/refresh", json!({"refresh_token": text(&tokens, "refresh_token")})).await;
    assert_eq!(refreshed.assert_problem(401)["detail"], REFRESH_REFUSED);
    Harness::past_the_revocation_bound().await;
    me(&h, access).await.assert_problem(401);
}

#[tokio::test]
async fn signing_out_one_device_ends_its_sign_in_and_leaves_the_other() {
    let h = Harness::new().await;
    let (email, phone) = signed_in(&h, "devices").await;
    let laptop = sign_in(&h, &email, PASSWORD).await.json();
    let reply = h
        .call(
            Some(&as_user(text(&phone, "access_token"))),
            "POST",
            "/auth/logout",
            Some(json!({"refresh_token": text(&phone, "refresh_token")})),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text());

    let refreshed = post(&h, "/auth/refresh", json!({"refresh_token": text(&phone, "refresh_token")})).await;
    assert_eq!(refreshed.assert_problem(401)["detail"], REFRESH_REFUSED);
    let other = post(&h, "/auth/refresh", json!({"refresh_token": text(&laptop, "refresh_token")})).await;
    assert_eq!(other.status, 200, "the laptop stays signed in: {}", other.text());
    Harness::past_the_revocation_bound().await;
    me(&h, text(&phone, "access_token")).await.assert_problem(401);
    assert_eq!(me(&h, text(&laptop, "access_token")).await.status, 200);
}

#[tokio::test]
async fn the_development_tokens_still_work_and_can_sign_out_everywhere() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    assert_eq!(h.call(Some(&alice), "GET", "/me", None).await.status, 200);
    let reply = h.call(Some(&alice), "POST", "/auth/logout-all", None).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    Harness::past_the_revocation_bound().await;
    h.call(Some(&alice), "GET", "/me", None).await.assert_problem(401);
}

#[tokio::test]
async fn an_administrator_disabling_a_user_refuses_their_tokens_sign_in_and_refresh_until_enabled() {
    let h = Harness::new().await;
    let (email, tokens) = signed_in(&h, "disabled").await;
    let access = text(&tokens, "access_token");
    let user_id = text(&me(&h, access).await.json(), "user_id").to_owned();
    let pool = pool();
    // What `admin --user-pool-id <pool> disable-user <id>` runs.
    let admin = UserAdmin { credentials: h.credentials(), pool: Some(PoolAdmin::new(pool.client(), &pool.pool_id)) };

    admin.disable(&user_id).await.unwrap();
    Harness::past_the_revocation_bound().await;
    assert_eq!(me(&h, access).await.status, 401, "the disabled user's access token still works");
    let again = sign_in(&h, &email, PASSWORD).await;
    assert_eq!(again.assert_problem(401)["detail"], SIGN_IN_REFUSED, "the pool let a disabled user sign in");
    let refreshed = post(&h, "/auth/refresh", json!({"refresh_token": text(&tokens, "refresh_token")})).await;
    assert_eq!(refreshed.assert_problem(401)["detail"], REFRESH_REFUSED);

    admin.enable(&user_id).await.unwrap();
    Harness::past_the_revocation_bound().await;
    let back = sign_in(&h, &email, PASSWORD).await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(text(&me(&h, text(&back.json(), "access_token")).await.json(), "user_id"), user_id);
    assert_eq!(me(&h, access).await.status, 200, "enabling lifts the disable for tokens not otherwise revoked");

    let nobody = admin.disable("0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10").await;
    assert!(nobody.is_err(), "a user id the pool does not know is an error, not a silent success");
}

#[tokio::test]
async fn an_account_confirmed_while_founding_failed_gets_its_organization_at_sign_in() {
    let h = Harness::new().await;
    let email = new_email("late");
    assert_eq!(sign_up(&h, &email, Some("Difference Engines")).await.status, 202);
    // Confirmed in the pool but no organization founded: what a failure right after
    // ConfirmSignUp leaves (and confirming again is refused by Cognito).
    let pool = pool();
    pool.client().admin_confirm_sign_up().user_pool_id(&pool.pool_id).username(&email).send().await.unwrap();

    for attempt in ["first", "second"] {
        let tokens = sign_in(&h, &email, PASSWORD).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text());
        let orgs = h.call(Some(&as_user(text(&tokens.json(), "access_token"))), "GET", "/orgs", None).await;
        let items = orgs.json()["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "after the {attempt} sign-in, one organization: {items:?}");
        assert_eq!(items[0]["name"], "Difference Engines");
        assert_eq!(items[0]["role"], "owner");
    }
}

/// The rules named in a refused password's 400 (and given to moto's pool) are the template
/// pool's: the policy is written in two places, and this keeps them one.
#[test]
fn the_password_rules_named_in_errors_are_the_template_pools() {
    let text = std::fs::read_to_string(template::workspace_root().join("template.yaml")).unwrap();
    let policy: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .skip_while(|l| l.trim() != "PasswordPolicy:")
        .skip(1)
        .take_while(|l| l.trim().contains(": "))
        .filter_map(|l| l.trim().split_once(": "))
        .collect();
    assert_eq!(policy.get("MinimumLength"), Some(&PASSWORD_MIN_LENGTH.to_string().as_str()), "{policy:?}");
    for (rule, required) in [
        ("RequireLowercase", "true"),
        ("RequireUppercase", "true"),
        ("RequireNumbers", "true"),
        ("RequireSymbols", "false"),
    ] {
        assert_eq!(
            policy.get(rule),
            Some(&required),
            "{rule}: password_problem names only lower, upper and digit rules"
        );
    }
}
