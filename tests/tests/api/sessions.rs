//! Chat sessions and messages end to end: real handlers, real DynamoDB Local.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{
    config::{
        interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextMut},
        ConfigBag, Intercept, RuntimeComponents, SharedInterceptor,
    },
    error::BoxError,
    operation::{
        query::{QueryInput, QueryOutput},
        transact_write_items::TransactWriteItemsInput,
    },
    types::AttributeValue,
};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use integration_tests::{Harness, User};
use serde_json::{json, Value};

async fn session(h: &Harness, user: &User, title: &str) -> String {
    let r = h.call(Some(user), "POST", "/sessions", Some(json!({"title": title}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn say(h: &Harness, user: &User, sid: &str, role: &str, content: &str) -> Value {
    let r = h
        .call(Some(user), "POST", &format!("/sessions/{sid}/messages"), Some(json!({"role": role, "content": content})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn contents(items: &[Value]) -> Vec<String> {
    items.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn session_lifecycle_and_rename_with_if_match() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let created = h.call(Some(&alice), "POST", "/sessions", Some(json!({}))).await;
    assert_eq!(created.status, 201);
    let s = created.json();
    assert_eq!(s["title"], "New chat");
    let sid = s["id"].as_str().unwrap();
    let path = format!("/sessions/{sid}");
    let renamed =
        h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"title": "Logo ideas"}))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["title"], "Logo ideas");
    h.call_with(&alice, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"title": "stale"})))
        .await
        .assert_problem(412);
    h.call(Some(&alice), "PATCH", &path, Some(json!({"title": ""}))).await.assert_problem(400);
    h.call(Some(&alice), "PATCH", &path, Some(json!({"name": "x"}))).await.assert_problem(400);
    let got = h.call(Some(&alice), "GET", &path, None).await;
    assert_eq!(got.json()["title"], "Logo ideas");
    assert_eq!(h.call(Some(&alice), "DELETE", &path, None).await.status, 204);
    h.call(Some(&alice), "GET", &path, None).await.assert_problem(404);
}

#[tokio::test]
async fn messages_come_back_in_creation_order_across_pages_and_bump_the_session() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let older = session(&h, &alice, "older").await;
    let sid = session(&h, &alice, "chat").await;
    let before = h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json();
    let sent: Vec<String> = (0..12).map(|i| format!("message {i:02}")).collect();
    for (i, text) in sent.iter().enumerate() {
        let role = ["user", "assistant", "tool"][i % 3];
        let m = say(&h, &alice, &sid, role, text).await;
        assert_eq!(m["session_id"], json!(sid));
        assert_eq!(m["role"], role);
        assert!(m.get("user_id").is_none() && m.get("session_order").is_none(), "internal attributes leak: {m}");
    }
    let (items, pages) = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 5).await;
    assert_eq!(pages, vec![5, 5, 2]);
    assert_eq!(contents(&items), sent, "creation order, nothing lost or repeated");
    assert_eq!(items.iter().map(|m| m["id"].clone()).collect::<HashSet<_>>().len(), 12);

    let after = h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json();
    assert!(after["updated_at"].as_str() > before["updated_at"].as_str(), "appending bumps updated_at");
    let (list, _) = h.list_all(&alice, "/sessions", 10).await;
    let order: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(order, vec![sid.as_str(), older.as_str()], "the active session comes first");
}

#[tokio::test]
async fn polling_with_after_returns_only_newer_messages() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "poll").await;
    let url = format!("/sessions/{sid}/messages");
    let empty = h.call(Some(&alice), "GET", &url, None).await.json();
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["poll_cursor"], Value::Null);
    say(&h, &alice, &sid, "user", "one").await;
    say(&h, &alice, &sid, "assistant", "two").await;
    let first = h.call(Some(&alice), "GET", &url, None).await.json();
    assert_eq!(contents(first["items"].as_array().unwrap()), vec!["one", "two"]);
    assert_eq!(first["next_cursor"], Value::Null, "no further page");
    let poll = first["poll_cursor"].as_str().unwrap().to_owned();

    let nothing = h.call(Some(&alice), "GET", &format!("{url}?after={poll}"), None).await.json();
    assert_eq!(nothing["items"], json!([]));
    assert_eq!(nothing["poll_cursor"], json!(poll), "an empty poll keeps the position");
    say(&h, &alice, &sid, "user", "three").await;
    say(&h, &alice, &sid, "assistant", "four").await;
    let newer = h.call(Some(&alice), "GET", &format!("{url}?after={poll}"), None).await.json();
    assert_eq!(contents(newer["items"].as_array().unwrap()), vec!["three", "four"]);

    // A cursor of another session of the same user is refused, as is mixing both parameters.
    let other = session(&h, &alice, "other").await;
    h.call(Some(&alice), "GET", &format!("/sessions/{other}/messages?after={poll}"), None).await.assert_problem(400);
    h.call(Some(&alice), "GET", &format!("{url}?after={poll}&cursor={poll}"), None).await.assert_problem(400);
}

#[tokio::test]
async fn deleting_a_session_leaves_no_message_reachable_even_when_retried() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "doomed").await;
    let keep = session(&h, &alice, "kept").await;
    for i in 0..30 {
        say(&h, &alice, &sid, "user", &format!("m{i}")).await;
    }
    say(&h, &alice, &keep, "user", "stays").await;
    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.status, 204);
    h.call(Some(&alice), "GET", &format!("/sessions/{sid}/messages"), None).await.assert_problem(404);
    h.call(
        Some(&alice),
        "POST",
        &format!("/sessions/{sid}/messages"),
        Some(json!({"role": "user", "content": "late"})),
    )
    .await
    .assert_problem(404);
    h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.assert_problem(404);
    let kept = h.list_all(&alice, &format!("/sessions/{keep}/messages"), 50).await.0;
    assert_eq!(contents(&kept), vec!["stays"], "other sessions keep their messages");
}

#[tokio::test]
async fn another_users_session_is_a_404_on_every_route() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let sid = session(&h, &alice, "private").await;
    say(&h, &alice, &sid, "user", "secret").await;
    let missing = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/sessions/{}".into(), None),
        ("PATCH", "/sessions/{}".into(), Some(json!({"title": "pwned"}))),
        ("DELETE", "/sessions/{}".into(), None),
        ("POST", "/sessions/{}/messages".into(), Some(json!({"role": "user", "content": "injected"}))),
        ("GET", "/sessions/{}/messages".into(), None),
    ];
    for (method, pattern, body) in cases {
        let theirs = h.call(Some(&bob), method, &pattern.replace("{}", &sid), body.clone()).await;
        let nobodys = h.call(Some(&bob), method, &pattern.replace("{}", missing), body).await;
        theirs.assert_problem(404);
        assert_eq!(theirs.body_without_request_id(), nobodys.body_without_request_id(), "{method} {pattern}");
    }
    let msgs = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 10).await.0;
    assert_eq!(contents(&msgs), vec!["secret"], "bob's append went nowhere");
    assert_eq!(h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json()["title"], "private");
    assert!(h.list_all(&bob, "/sessions", 10).await.0.is_empty());
}

#[tokio::test]
async fn message_input_is_validated() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "v").await;
    let url = format!("/sessions/{sid}/messages");
    for (body, status) in [
        (json!({"role": "system", "content": "x"}), 400),
        (json!({"role": "user"}), 400),
        (json!({"role": "user", "content": ""}), 400),
        (json!({"role": "user", "content": "x", "session_id": "other"}), 400),
        (json!({"role": "user", "content": "x", "user_id": "bob"}), 400),
        (json!({"role": "user", "content": "x", "created_at": "2020-01-01"}), 400),
        (json!({"role": "user", "content": "x".repeat(64 * 1024 + 1)}), 413),
    ] {
        h.call(Some(&alice), "POST", &url, Some(body)).await.assert_problem(status);
    }
    assert!(h.list_all(&alice, &url, 10).await.0.is_empty(), "nothing written");
    h.call(Some(&alice), "POST", "/sessions", Some(json!({"title": "t".repeat(201)}))).await.assert_problem(400);
}

/// What one poller received, in the order it received it.
type Received = Vec<Value>;

/// Appends `writers * per_writer` messages to one session from `writers` concurrent tasks while
/// `pollers` clients poll `?after=` in a loop, each until it has them all or `settle` has passed
/// since the last append. Returns what each writer was answered and what each poller got.
async fn poll_while_appending(
    h: Arc<Harness>,
    user: &User,
    sid: &str,
    writers: usize,
    per_writer: usize,
    pollers: usize,
    settle: Duration,
) -> (Vec<Vec<Value>>, Vec<Received>) {
    let total = writers * per_writer;
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = format!("/sessions/{sid}/messages");
    let poller_tasks: Vec<_> = (0..pollers)
        .map(|p| {
            let (h, user, url, finished) = (h.clone(), user.clone(), url.clone(), finished.clone());
            tokio::spawn(async move {
                let (mut got, mut cursor, mut settled_at) = (Vec::new(), None::<String>, None::<Instant>);
                while got.len() < total && settled_at.is_none_or(|t| t.elapsed() < settle) {
                    if settled_at.is_none() && finished.load(std::sync::atomic::Ordering::SeqCst) {
                        settled_at = Some(Instant::now());
                    }
                    // Small pages, so a poll also crosses page boundaries while writes land.
                    let query = match &cursor {
                        Some(c) => format!("{url}?limit=7&after={c}"),
                        None => format!("{url}?limit=7"),
                    };
                    let reply = h.call(Some(&user), "GET", &query, None).await;
                    assert_eq!(reply.status, 200, "poller {p}: {}", reply.text());
                    let body = reply.json();
                    got.extend(body["items"].as_array().unwrap().iter().cloned());
                    if let Some(c) = body["poll_cursor"].as_str() {
                        cursor = Some(c.to_owned());
                    }
                    if body["next_cursor"].is_null() {
                        tokio::time::sleep(Duration::from_millis(5 + p as u64 * 3)).await;
                    }
                }
                got
            })
        })
        .collect();
    let writer_tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (h, user, url) = (h.clone(), user.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..per_writer {
                    let body = json!({"role": "user", "content": format!("w{w}-{i}")});
                    let r = h.call(Some(&user), "POST", &url, Some(body)).await;
                    assert_eq!(r.status, 201, "writer {w}: {}", r.text());
                    answers.push(r.json());
                }
                answers
            })
        })
        .collect();
    let mut written = Vec::new();
    for task in writer_tasks {
        written.push(task.await.expect("writer"));
    }
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut received = Vec::new();
    for task in poller_tasks {
        received.push(task.await.expect("poller"));
    }
    (written, received)
}

/// Every poller got every written message exactly once, in `seq` order 1..=total.
#[track_caller]
fn assert_each_poller_got_everything_once_in_order(written: &[Vec<Value>], received: &[Received]) {
    let ids = |items: &[Value]| items.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let sent: HashSet<String> = written.iter().flat_map(|w| ids(w)).collect();
    let total = sent.len();
    for (p, got) in received.iter().enumerate() {
        let got_ids = ids(got);
        let unique: HashSet<String> = got_ids.iter().cloned().collect();
        let missed = sent.difference(&unique).count();
        assert_eq!(missed, 0, "poller {p} never received {missed} of {total} messages");
        assert_eq!(got_ids.len(), total, "poller {p} received some messages more than once");
        let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().expect("seq")).collect();
        assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>(), "poller {p}: in seq order, no gap");
    }
    // What writers were answered is what pollers see, and one writer's messages keep its order.
    let by_id: HashMap<&str, &Value> = received[0].iter().map(|m| (m["id"].as_str().unwrap(), m)).collect();
    for answers in written {
        for m in answers {
            assert_eq!(&m["seq"], &by_id[m["id"].as_str().unwrap()]["seq"]);
        }
        let seqs: Vec<u64> = answers.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "a writer's messages are ordered: {seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pollers_get_every_message_once_in_order_while_ten_clients_append() {
    let h = Arc::new(Harness::new().await);
    let alice = h.user("alice");
    let sid = session(&h, &alice, "busy").await;
    let started = Instant::now();
    let (written, received) =
        poll_while_appending(h.clone(), &alice, &sid, 10, 10, 2, Duration::from_millis(500)).await;
    assert_each_poller_got_everything_once_in_order(&written, &received);
    let (all, _) = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 100).await;
    assert_eq!(all.len(), 100);
    let session = h.call(Some(&alice), "GET", &format!("/sessions/{sid}"), None).await.json();
    assert!(session.get("message_seq").is_none(), "internal attributes stay internal: {session}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// DynamoDB updates a global secondary index asynchronously, item by item with no order
/// between items, and a Query on it cannot be consistent; DynamoDB Local updates it at once.
/// This test-only interceptor models AWS: each message is hidden from index Query results for a
/// random time (up to `lag`) after it is written. Queries of the base table see every committed
/// item, as a strongly consistent read does on AWS.
#[derive(Clone, Debug)]
struct LaggingIndex {
    lag: Duration,
    visible_at: Arc<Mutex<HashMap<(String, String), Instant>>>,
    hidden: Arc<AtomicUsize>,
}

impl LaggingIndex {
    fn new(lag: Duration) -> Self {
        Self { lag, visible_at: Arc::default(), hidden: Arc::default() }
    }

    fn key(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
        match (item.get("user_id"), item.get("id")) {
            (Some(AttributeValue::S(u)), Some(AttributeValue::S(i))) => Some((u.clone(), i.clone())),
            _ => None,
        }
    }
}

/// Marks a Query made on an index: set when the request starts, read when its answer comes (the
/// input is gone by then).
#[derive(Clone, Debug)]
struct OnIndex;

impl Storable for OnIndex {
    type Storer = StoreReplace<Self>;
}

impl Intercept for LaggingIndex {
    fn name(&self) -> &'static str {
        "LaggingIndex"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(query) = context.input().downcast_ref::<QueryInput>() {
            if query.index_name().is_some() {
                cfg.interceptor_state().store_put(OnIndex);
            }
            return Ok(());
        }
        let Some(input) = context.input().downcast_ref::<TransactWriteItemsInput>() else { return Ok(()) };
        let mut visible_at = self.visible_at.lock().unwrap();
        for put in input.transact_items().iter().filter_map(|t| t.put()) {
            if !put.item().contains_key("session_order") {
                continue;
            }
            let mut random = [0u8; 4];
            aws_lc_rs::rand::fill(&mut random).unwrap();
            let delay = self.lag.mul_f64(f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX));
            if let Some(key) = Self::key(put.item()) {
                visible_at.entry(key).or_insert_with(|| Instant::now() + delay);
            }
        }
        Ok(())
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<OnIndex>().is_none() {
            return Ok(());
        }
        let Some(Ok(output)) = context.output_or_error_mut() else { return Ok(()) };
        let Some(query) = output.downcast_mut::<QueryOutput>() else { return Ok(()) };
        let Some(items) = query.items.as_mut() else { return Ok(()) };
        let visible_at = self.visible_at.lock().unwrap();
        let now = Instant::now();
        let before = items.len();
        items.retain(|item| Self::key(item).and_then(|k| visible_at.get(&k)).is_none_or(|t| *t <= now));
        self.hidden.fetch_add(before - items.len(), Ordering::Relaxed);
        query.count = items.len() as i32;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pollers_get_every_message_once_in_order_when_the_index_lags_as_on_aws() {
    let lag = LaggingIndex::new(Duration::from_millis(300));
    let hook = lag.clone();
    let h = Arc::new(
        Harness::with(move |settings| settings.test_dynamodb_interceptors.push(SharedInterceptor::new(hook))).await,
    );
    let alice = h.user("alice");
    let sid = session(&h, &alice, "lagging").await;
    let (written, received) =
        poll_while_appending(h.clone(), &alice, &sid, 10, 10, 2, Duration::from_millis(1500)).await;
    assert!(lag.hidden.load(Ordering::Relaxed) > 0, "the index lagged behind the writes at least once");
    assert_each_poller_got_everything_once_in_order(&written, &received);
}

/// The cascade under AWS's index model: a session deleted right after messages were appended
/// leaves none of them behind, though the index does not show them yet. (Purging through the
/// index alone left every message it hid.)
#[tokio::test]
async fn deleting_a_session_leaves_no_message_behind_when_the_index_lags_as_on_aws() {
    // Long enough that most messages are still hidden when the session is deleted.
    let lag = LaggingIndex::new(Duration::from_secs(30));
    let hook = lag.clone();
    let h = Harness::with(move |settings| settings.test_dynamodb_interceptors.push(SharedInterceptor::new(hook))).await;
    let alice = h.user("alice");
    let sid = session(&h, &alice, "short-lived").await;
    let other = session(&h, &alice, "kept").await;
    for i in 0..20 {
        say(&h, &alice, &sid, "user", &format!("m{i}")).await;
    }
    say(&h, &alice, &other, "user", "stays").await;
    // The index does not show them all yet: a purge through it alone would leave the rest.
    let listed = h.call(Some(&alice), "GET", &format!("/sessions/{sid}/messages?limit=100"), None).await.json();
    let shown = listed["items"].as_array().unwrap().len();
    assert!(shown < 20 && lag.hidden.load(Ordering::Relaxed) > 0, "the index shows {shown} of 20 messages");

    assert_eq!(h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.status, 204);

    // What the table holds, read consistently, outside the functions (no lag applies here).
    let client = shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone());
    let left = |session: String| {
        let client = client.clone();
        let user = alice.id.clone();
        async move {
            client
                .query()
                .table_name("MessagesTable")
                .consistent_read(true)
                .key_condition_expression("user_id = :u")
                .filter_expression("session_id = :s")
                .expression_attribute_values(":u", AttributeValue::S(user))
                .expression_attribute_values(":s", AttributeValue::S(session))
                .send()
                .await
                .unwrap()
                .count()
        }
    };
    assert_eq!(left(sid.clone()).await, 0, "messages of the deleted session were left behind");
    assert_eq!(left(other.clone()).await, 1, "another session's message is untouched");
    h.call(Some(&alice), "DELETE", &format!("/sessions/{sid}"), None).await.assert_problem(404);
}
