//! Revocation that takes effect: tokens of a user who signed out everywhere, of one ended
//! sign-in, of a disabled user and of a deleted account are refused (401) on every route within
//! the revocation bound, although their signatures are good and they have not expired.

use integration_tests::{Harness, User};
use serde_json::json;

/// Routes of different functions that a valid token may call.
const ROUTES: &[&str] = &["/me", "/canvases", "/sessions", "/workflows", "/files", "/orgs"];

async fn statuses(h: &Harness, user: &User) -> Vec<(&'static str, u16)> {
    let mut seen = Vec::new();
    for route in ROUTES {
        seen.push((*route, h.call(Some(user), "GET", route, None).await.status));
    }
    seen
}

fn all(status: u16) -> Vec<(&'static str, u16)> {
    ROUTES.iter().map(|r| (*r, status)).collect()
}

/// A new token for the same user, issued in a later second than anything before it.
async fn signed_in_again(h: &Harness, user: &User) -> User {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    User { id: user.id.clone(), token: h.stack.token(&user.id) }
}

#[track_caller]
fn assert_revoked(reply: &integration_tests::Reply, reason: &str) {
    let body = reply.assert_problem(401);
    assert_eq!(body["detail"], format!("{reason}; sign in again"), "{body}");
    assert_eq!(reply.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
}

#[tokio::test]
async fn signing_out_everywhere_refuses_every_older_token_on_every_route() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let other_device = User { id: alice.id.clone(), token: h.stack.token(&alice.id) };
    // Every function has read (and cached) the standing before the sign-out.
    assert_eq!(statuses(&h, &alice).await, all(200));
    assert_eq!(statuses(&h, &bob).await, all(200));

    h.credentials().end_all_sessions(&h.identity(&alice).await).await.unwrap();
    Harness::past_the_revocation_bound().await;
    assert_eq!(statuses(&h, &alice).await, all(401));
    assert_eq!(statuses(&h, &other_device).await, all(401), "every device is signed out");
    assert_revoked(
        &h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "late"}))).await,
        "the token was issued before its user signed out everywhere",
    );
    assert_eq!(statuses(&h, &bob).await, all(200), "nobody else is signed out");

    let again = signed_in_again(&h, &alice).await;
    assert_eq!(statuses(&h, &again).await, all(200), "a token issued after the sign-out works");
    assert_eq!(statuses(&h, &alice).await, all(401), "the old token stays refused after the new sign-in");
}

#[tokio::test]
async fn ending_one_sign_in_refuses_its_token_only() {
    let h = Harness::new().await;
    let laptop = h.user("alice");
    let phone = User { id: laptop.id.clone(), token: h.stack.token(&laptop.id) };
    assert_eq!(statuses(&h, &laptop).await, all(200));

    let laptop_is = h.identity(&laptop).await;
    assert!(laptop_is.session().is_some(), "minted tokens carry a jti");
    h.credentials().end_session(&laptop_is, Some("the-laptop-refresh-token")).await.unwrap();
    Harness::past_the_revocation_bound().await;
    for route in ROUTES {
        assert_revoked(&h.call(Some(&laptop), "GET", route, None).await, "the token's sign-in was ended (signed out)");
    }
    assert_eq!(statuses(&h, &phone).await, all(200), "the other device stays signed in");

    let credentials = h.credentials();
    let phone_is = h.identity(&phone).await;
    assert!(!credentials.refresh_allowed(&phone_is, "the-laptop-refresh-token").await.unwrap());
    assert!(credentials.refresh_allowed(&phone_is, "the-phone-refresh-token").await.unwrap());
}

#[tokio::test]
async fn a_disabled_user_is_refused_everything_until_enabled_again() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let canvas = h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "kept"}))).await;
    assert_eq!(canvas.status, 201, "{}", canvas.text());

    h.credentials().set_disabled(&alice.id, true).await.unwrap();
    Harness::past_the_revocation_bound().await;
    assert_eq!(statuses(&h, &alice).await, all(401));
    let fresh = signed_in_again(&h, &alice).await;
    assert_revoked(&h.call(Some(&fresh), "GET", "/canvases", None).await, "the account is disabled");
    assert_eq!(statuses(&h, &bob).await, all(200));

    h.credentials().set_disabled(&alice.id, false).await.unwrap();
    Harness::past_the_revocation_bound().await;
    assert_eq!(statuses(&h, &fresh).await, all(200));
    let names: Vec<_> = h.list_all(&fresh, "/canvases", 10).await.0.into_iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("kept")], "disabling loses nothing");
}

#[tokio::test]
async fn after_deleting_the_account_its_older_tokens_read_nothing() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    assert_eq!(statuses(&h, &alice).await, all(200));
    assert_eq!(h.call(Some(&alice), "DELETE", "/me", None).await.status, 200);
    Harness::past_the_revocation_bound().await;
    for route in ROUTES {
        let body = h.call(Some(&alice), "GET", route, None).await.assert_problem(401);
        assert_eq!(body["detail"], "the account was deleted; sign in again");
    }
    let again = signed_in_again(&h, &alice).await;
    assert_eq!(statuses(&h, &again).await, all(200));
}

#[tokio::test]
async fn a_revoked_token_opens_no_websocket_connection() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let event = |token: &str| {
        json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:1:api/live/$connect",
            "queryStringParameters": {"token": token},
            "requestContext": {"routeKey": "$connect", "connectionId": "c1"},
        })
    };
    let authorizer = h.stack.function("realtime-authorizer").expect("the template has the authorizer");
    assert!(authorizer.call_event(event(&alice.token)).await.is_ok());
    h.credentials().end_all_sessions(&h.identity(&alice).await).await.unwrap();
    Harness::past_the_revocation_bound().await;
    let refused = authorizer.call_event(event(&alice.token)).await.unwrap_err();
    assert_eq!(refused, "Unauthorized");
}
