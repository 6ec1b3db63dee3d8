//! Property test: random interleavings of several users' operations across every area, run
//! against the real handlers on DynamoDB Local and against an in-memory model of what each
//! user owns. Every answer must match the model (an attempt on another user's item is a 404
//! that changes nothing), and at the end every user's lists hold exactly the model's items.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use integration_tests::{Harness, User};
use proptest::prelude::*;
use serde_json::{json, Value};

const USERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    CreateCanvas(usize),
    RenameCanvas(usize, usize),
    DeleteCanvas(usize, usize),
    CreateSession(usize),
    Append(usize, usize),
    DeleteSession(usize, usize),
    CreateWorkflow(usize),
    StartRun(usize, usize),
    PauseRun(usize, usize),
    ReadCanvas(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let pick = 0..64usize;
    prop_oneof![
        3 => user.clone().prop_map(Op::CreateCanvas),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::RenameCanvas(u, p)),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::DeleteCanvas(u, p)),
        2 => user.clone().prop_map(Op::CreateSession),
        3 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::Append(u, p)),
        1 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::DeleteSession(u, p)),
        2 => user.clone().prop_map(Op::CreateWorkflow),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::StartRun(u, p)),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::PauseRun(u, p)),
        2 => (user, pick).prop_map(|(u, p)| Op::ReadCanvas(u, p)),
    ]
}

/// What every user owns, by the model.
#[derive(Default)]
struct Model {
    /// Canvas id → (owner, name).
    canvases: BTreeMap<String, (usize, String)>,
    /// Session id → (owner, messages in order).
    sessions: BTreeMap<String, (usize, Vec<String>)>,
    /// Workflow id → (owner, run status).
    workflows: BTreeMap<String, (usize, String)>,
}

/// The `pick`-th key of a map (of any owner: picking another user's item is the point).
fn nth<V>(map: &BTreeMap<String, V>, pick: usize) -> Option<String> {
    (!map.is_empty()).then(|| map.keys().nth(pick % map.len()).unwrap().clone())
}

static OPERATIONS: AtomicUsize = AtomicUsize::new(0);

async fn run(h: &Harness, users: &[User], ops: Vec<Op>) {
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::CreateCanvas(u) => {
                let name = format!("canvas {step}");
                let r = h.call(Some(&users[u]), "POST", "/canvases", Some(json!({"name": name}))).await;
                assert_eq!(r.status, 201);
                m.canvases.insert(r.json()["id"].as_str().unwrap().to_owned(), (u, name));
            }
            Op::RenameCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let name = format!("renamed {step}");
                let r = h.call(Some(&users[u]), "PATCH", &format!("/canvases/{id}"), Some(json!({"name": name}))).await;
                let entry = m.canvases.get_mut(&id).unwrap();
                if entry.0 == u {
                    assert_eq!(r.status, 200);
                    entry.1 = name;
                } else {
                    assert_eq!(r.status, 404, "user {u} renamed user {}'s canvas", entry.0);
                }
            }
            Op::DeleteCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let r = h.call(Some(&users[u]), "DELETE", &format!("/canvases/{id}"), None).await;
                if m.canvases[&id].0 == u {
                    assert_eq!(r.status, 204);
                    m.canvases.remove(&id);
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::ReadCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let r = h.call(Some(&users[u]), "GET", &format!("/canvases/{id}"), None).await;
                let (owner, name) = &m.canvases[&id];
                if *owner == u {
                    assert_eq!(r.json()["name"], json!(name));
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::CreateSession(u) => {
                let r = h.call(Some(&users[u]), "POST", "/sessions", Some(json!({}))).await;
                assert_eq!(r.status, 201);
                m.sessions.insert(r.json()["id"].as_str().unwrap().to_owned(), (u, Vec::new()));
            }
            Op::Append(u, p) => {
                let Some(id) = nth(&m.sessions, p) else { continue };
                let text = format!("message {step}");
                let body = json!({"role": "user", "content": text});
                let r = h.call(Some(&users[u]), "POST", &format!("/sessions/{id}/messages"), Some(body)).await;
                let entry = m.sessions.get_mut(&id).unwrap();
                if entry.0 == u {
                    assert_eq!(r.status, 201);
                    entry.1.push(text);
                } else {
                    assert_eq!(r.status, 404, "user {u} wrote into user {}'s session", entry.0);
                }
            }
            Op::DeleteSession(u, p) => {
                let Some(id) = nth(&m.sessions, p) else { continue };
                let r = h.call(Some(&users[u]), "DELETE", &format!("/sessions/{id}"), None).await;
                if m.sessions[&id].0 == u {
                    assert_eq!(r.status, 204);
                    m.sessions.remove(&id);
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::CreateWorkflow(u) => {
                let body = json!({"name": format!("wf {step}"), "graph": {"1": {}}});
                let r = h.call(Some(&users[u]), "POST", "/workflows", Some(body)).await;
                assert_eq!(r.status, 201);
                m.workflows.insert(r.json()["id"].as_str().unwrap().to_owned(), (u, "idle".into()));
            }
            Op::StartRun(u, p) | Op::PauseRun(u, p) => {
                let Some(id) = nth(&m.workflows, p) else { continue };
                let (action, from, to) = if matches!(op, Op::StartRun(..)) {
                    ("start", "idle", "running")
                } else {
                    ("pause", "running", "paused")
                };
                let r = h.call(Some(&users[u]), "POST", &format!("/workflows/{id}/run/{action}"), None).await;
                let entry = m.workflows.get_mut(&id).unwrap();
                match (entry.0 == u, entry.1 == from) {
                    (false, _) => assert_eq!(r.status, 404),
                    (true, false) => assert_eq!(r.status, 409, "{action} from {}", entry.1),
                    (true, true) => {
                        assert_eq!(r.status, 200);
                        entry.1 = to.into();
                    }
                }
            }
        }
    }
    for (u, user) in users.iter().enumerate() {
        let names = |items: Vec<Value>| -> BTreeMap<String, Value> {
            items.into_iter().map(|i| (i["id"].as_str().unwrap().to_owned(), i)).collect()
        };
        let canvases = names(h.list_all(user, "/canvases", 7).await.0);
        let expected: BTreeMap<&String, &String> =
            m.canvases.iter().filter(|(_, (o, _))| *o == u).map(|(id, (_, n))| (id, n)).collect();
        assert_eq!(canvases.len(), expected.len(), "user {u}'s canvas count");
        for (id, name) in expected {
            assert_eq!(canvases[id]["name"], json!(name));
        }
        let sessions = names(h.list_all(user, "/sessions", 7).await.0);
        let own_sessions: Vec<_> = m.sessions.iter().filter(|(_, (o, _))| *o == u).collect();
        assert_eq!(sessions.len(), own_sessions.len(), "user {u}'s session count");
        for (id, (_, messages)) in own_sessions {
            assert!(sessions.contains_key(id));
            let listed = h.list_all(user, &format!("/sessions/{id}/messages"), 5).await.0;
            let texts: Vec<&str> = listed.iter().map(|x| x["content"].as_str().unwrap()).collect();
            assert_eq!(texts, messages.iter().map(String::as_str).collect::<Vec<_>>(), "messages of {id}");
        }
        let workflows = names(h.list_all(user, "/workflows", 7).await.0);
        let own_workflows: Vec<_> = m.workflows.iter().filter(|(_, (o, _))| *o == u).collect();
        assert_eq!(workflows.len(), own_workflows.len(), "user {u}'s workflow count");
        for (id, (_, status)) in own_workflows {
            assert_eq!(workflows[id]["run_status"], json!(status));
        }
    }
}

#[test]
fn random_interleavings_of_users_match_the_model() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..60))| {
        runtime.block_on(async {
            let h = Harness::new().await;
            let users: Vec<User> = (0..USERS).map(|i| h.user(&format!("p{i}"))).collect();
            run(&h, &users, ops).await;
        });
    });
    println!("property test: {cases} cases, {} operations", OPERATIONS.load(Ordering::Relaxed));
}
