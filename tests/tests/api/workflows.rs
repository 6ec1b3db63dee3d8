//! Workflows and their run state end to end: real handlers, real DynamoDB Local.

use integration_tests::{Harness, User};
use serde_json::{json, Value};

const GRAPH: &str = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 42}}}"#;

async fn workflow(h: &Harness, user: &User, name: &str) -> String {
    let graph: Value = serde_json::from_str(GRAPH).unwrap();
    let r = h.call(Some(user), "POST", "/workflows", Some(json!({"name": name, "graph": graph}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn run(h: &Harness, user: &User, wid: &str, action: &str) -> (u16, Value) {
    let body = (action == "complete").then(|| json!({"results": [{"image": "out.png"}]}));
    let r = h.call(Some(user), "POST", &format!("/workflows/{wid}/run/{action}"), body.or(Some(json!({})))).await;
    (r.status, r.json())
}

#[tokio::test]
async fn workflow_crud_paging_and_versions() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let ids = create_many(&h, &alice, 5).await;
    let (items, pages) = h.list_all(&alice, "/workflows", 2).await;
    assert_eq!(pages, vec![2, 2, 1]);
    let listed: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, ids.iter().rev().cloned().collect::<Vec<_>>(), "newest first");
    assert!(items.iter().all(|i| i["run_status"] == "idle" && i.get("graph").is_none()));

    let path = format!("/workflows/{}", ids[0]);
    let got = h.call(Some(&alice), "GET", &path, None).await.json();
    assert_eq!(got["graph"], serde_json::from_str::<Value>(GRAPH).unwrap());
    assert_eq!(got["run"]["status"], "idle");
    let patched = h
        .call_with(
            &alice,
            "PATCH",
            &path,
            &[("if-match", "\"1\"")],
            Some(json!({"name": "renamed", "graph": {"1": {}}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["graph"], json!({"1": {}}));
    h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"name": "stale"})))
        .await
        .assert_problem(412);
    for bad in [json!({"graph": [1]}), json!({"graph": null}), json!({"run_status": "running"}), json!({"version": 3})]
    {
        h.call(Some(&alice), "PATCH", &path, Some(bad)).await.assert_problem(400);
    }
    h.call(Some(&alice), "POST", "/workflows", Some(json!({"name": "no graph"}))).await.assert_problem(400);
    assert_eq!(h.call(Some(&alice), "DELETE", &path, None).await.status, 204);
    h.call(Some(&alice), "GET", &format!("{path}/run"), None).await.assert_problem(404);
}

async fn create_many(h: &Harness, user: &User, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(workflow(h, user, &format!("wf {i}")).await);
    }
    ids
}

#[tokio::test]
async fn run_transitions_are_conditional() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let wid = workflow(&h, &alice, "render").await;
    for action in ["pause", "resume", "complete", "reset"] {
        let (status, body) = run(&h, &alice, &wid, action).await;
        assert_eq!(status, 409, "{action} on an idle run: {body}");
    }
    let (status, started) = run(&h, &alice, &wid, "start").await;
    assert_eq!((status, started["status"].as_str()), (200, Some("running")));
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run(&h, &alice, &wid, "start").await.0, 409, "starting a running run");
    assert_eq!(run(&h, &alice, &wid, "pause").await.1["status"], "paused");
    let (status, body) = run(&h, &alice, &wid, "pause").await;
    assert_eq!(status, 409, "pausing a paused run is refused, not overwritten");
    assert!(body["detail"].as_str().unwrap().contains("not running"), "{body}");
    assert_eq!(run(&h, &alice, &wid, "resume").await.1["status"], "running");
    let status_view = h.call(Some(&alice), "GET", &format!("/workflows/{wid}/run"), None).await.json();
    assert_eq!(
        (status_view["status"].as_str(), status_view["run_id"].as_str()),
        (Some("running"), Some(run_id.as_str()))
    );
    let results = h.call(Some(&alice), "GET", &format!("/workflows/{wid}/run/results"), None).await.json();
    assert_eq!(results["results"], json!([]));
    // Results are an array of objects, as documented; anything else leaves the run running.
    for bad in [json!({"x": 1}), json!([{"ok": 1}, []]), json!([1])] {
        h.call(Some(&alice), "POST", &format!("/workflows/{wid}/run/complete"), Some(json!({ "results": bad })))
            .await
            .assert_problem(400);
    }
    assert_eq!(run(&h, &alice, &wid, "complete").await.1["status"], "completed");
    let results = h.call(Some(&alice), "GET", &format!("/workflows/{wid}/run/results"), None).await.json();
    assert_eq!(results["results"], json!([{"image": "out.png"}]));
    assert_eq!(results["run_id"], json!(run_id));
    assert_eq!(run(&h, &alice, &wid, "reset").await.1["status"], "idle");
    let after = h.call(Some(&alice), "GET", &format!("/workflows/{wid}/run/results"), None).await.json();
    assert_eq!((after["results"].clone(), after["run_id"].clone()), (json!([]), Value::Null));
}

#[tokio::test]
async fn racing_transitions_let_exactly_one_win() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let wid = workflow(&h, &alice, "race").await;
    let (a, b, c) =
        tokio::join!(run(&h, &alice, &wid, "start"), run(&h, &alice, &wid, "start"), run(&h, &alice, &wid, "start"));
    let mut statuses = vec![a.0, b.0, c.0];
    statuses.sort();
    assert_eq!(statuses, vec![200, 409, 409]);
}

#[tokio::test]
async fn runs_are_independent_between_users() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let a = workflow(&h, &alice, "a").await;
    let b = workflow(&h, &bob, "b").await;
    run(&h, &alice, &a, "start").await;
    run(&h, &alice, &a, "pause").await;
    assert_eq!(h.call(Some(&bob), "GET", &format!("/workflows/{b}/run"), None).await.json()["status"], "idle");
    assert_eq!(run(&h, &bob, &b, "start").await.1["status"], "running", "alice's paused run does not block bob");
    let missing = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    for action in ["start", "pause", "resume", "complete", "reset"] {
        let theirs =
            h.call(Some(&bob), "POST", &format!("/workflows/{a}/run/{action}"), Some(json!({"results": []}))).await;
        let nobodys = h
            .call(Some(&bob), "POST", &format!("/workflows/{missing}/run/{action}"), Some(json!({"results": []})))
            .await;
        theirs.assert_problem(404);
        assert_eq!(theirs.body_without_request_id(), nobodys.body_without_request_id());
    }
    for path in ["", "/run", "/run/results"] {
        h.call(Some(&bob), "GET", &format!("/workflows/{a}{path}"), None).await.assert_problem(404);
    }
    assert_eq!(h.call(Some(&alice), "GET", &format!("/workflows/{a}/run"), None).await.json()["status"], "paused");
}
