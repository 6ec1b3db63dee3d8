//! The single-tenant migration on DynamoDB Local: legacy tables of every kind (with their own
//! unique names) seeded with a few thousand items, malformed ones included, migrated into the
//! template's tables under owners unique to each test; then read back through the real API.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use ::migrate::{cli, owner::Owners, shape::Category, Config, Kind, Migration, Mode, Summary};
use aws_sdk_dynamodb::{
    types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest, ScalarAttributeType,
        WriteRequest,
    },
    Client,
};
use integration_tests::{Harness, User};
use serde_json::{json, Value};

type Item = std::collections::HashMap<String, AttributeValue>;

fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT is set: run the tests with ./infra/test")
}

async fn client() -> Client {
    cli::client(Some(&endpoint())).await
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A random (version 4) UUID, as a seed app's `uuid4()` made them.
fn v4() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("migrate-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Legacy tables, keyed by `id` alone, named uniquely for the test.
async fn legacy_tables(client: &Client) -> BTreeMap<Kind, String> {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let mut tables = BTreeMap::new();
    for kind in Kind::ALL {
        let name = format!("legacy-{kind}-{suffix}");
        client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .unwrap();
        tables.insert(kind, name);
    }
    tables
}

async fn put_all(client: &Client, table: &str, items: &[Item]) {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(i.clone())).build().unwrap())
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let out = client.batch_write_item().request_items(table, requests).send().await.unwrap();
            requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        }
    }
}

/// The seeded legacy data and what the migration must make of it.
#[derive(Default)]
struct Seed {
    items: BTreeMap<Kind, Vec<Item>>,
    /// (owner, kind, legacy id) of every item that must arrive.
    expected: BTreeSet<(String, Kind, String)>,
    /// (kind, legacy id) -> why it cannot arrive.
    failures: BTreeMap<(Kind, String), Category>,
    /// Legacy id -> owner, for items without an owner attribute.
    mapping: BTreeMap<String, String>,
    /// Session legacy id -> its messages' contents, in creation order.
    conversations: BTreeMap<String, Vec<String>>,
    /// Canvas legacy id -> the document the API must return.
    documents: BTreeMap<String, Value>,
}

impl Seed {
    fn add(&mut self, kind: Kind, owner: Option<&str>, item: Item) {
        let id = match &item["id"] {
            AttributeValue::S(id) => id.clone(),
            other => panic!("{other:?}"),
        };
        if let Some(owner) = owner {
            self.expected.insert((owner.to_owned(), kind, id));
        }
        self.items.entry(kind).or_default().push(item);
    }

    fn fail(&mut self, kind: Kind, category: Category, item: Item) {
        let AttributeValue::S(id) = &item["id"] else { panic!() };
        self.failures.insert((kind, id.clone()), category);
        self.items.entry(kind).or_default().push(item);
    }

    fn count(&self, kind: Kind) -> usize {
        self.expected.iter().filter(|(_, k, _)| *k == kind).count()
    }

    fn total(&self) -> usize {
        self.items.values().map(Vec::len).sum()
    }
}

fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Timestamps in every legacy form: RFC 3339 text, epoch seconds (N), epoch milliseconds (S), none.
fn stamps(i: usize) -> Vec<(&'static str, AttributeValue)> {
    let t = 1_690_000_000 + i as i64 * 60;
    match i % 4 {
        0 => vec![
            ("created_at", s(format!("2023-07-{:02}T{:02}:{:02}:00+02:00", 1 + i / 1440, (i / 60) % 24, i % 60))),
            ("updated_at", n(t + 30)),
        ],
        1 => vec![("created_at", n(t)), ("updated_at", n(t + 5))],
        2 => vec![("created_at", s((t * 1000 + 250).to_string()))],
        _ => vec![],
    }
}

/// `per_owner` sessions (6 messages each), canvases, workflows and files for each owner, plus
/// malformed items of every kind.
fn seed(owners: &[&str], per_owner: usize) -> Seed {
    let mut seed = Seed::default();
    for (o, owner) in owners.iter().enumerate() {
        for i in 0..per_owner {
            // Sessions: random UUIDs, some text ids; messages with random, text or UUIDv7 ids.
            let sid = if i % 5 == 0 { format!("session-{o}-{i}") } else { v4() };
            let mut session = item(vec![("id", s(&sid)), ("owner", s(*owner)), ("title", s(format!("chat {i}")))]);
            session.extend(item(stamps(i)));
            seed.add(Kind::Sessions, Some(owner), session);
            let mut contents = Vec::new();
            for j in 0..6 {
                let mid = match i % 3 {
                    0 => v4(),
                    1 => format!("msg-{o}-{i}-{j}"),
                    _ => uuid::Uuid::now_v7().hyphenated().to_string(),
                };
                let at = 1_700_000_000_000i64 + (i * 100 + j) as i64 * 1000;
                let created = if j % 2 == 0 { n(at) } else { s(format!("{}.{:03}", at / 1000, at % 1000)) };
                let content = format!("message {j} of {sid}");
                let mut message = item(vec![
                    ("id", s(&mid)),
                    ("session_id", s(&sid)),
                    ("role", s(if j % 2 == 0 { "user" } else { "assistant" })),
                    ("content", s(&content)),
                    ("created_at", created),
                ]);
                if j == 1 {
                    // Written by the assistant: an owner attribute of its own, which a message ignores.
                    message.insert("owner".into(), s("assistant-bot"));
                }
                seed.add(Kind::Messages, Some(owner), message);
                contents.push(content);
            }
            seed.conversations.insert(sid, contents);
        }
        for i in 0..per_owner * 4 {
            let id = match i % 50 {
                7 => v4().to_uppercase(),
                9 => format!("canvas-{o}-{i}"),
                _ => v4(),
            };
            let (data, document) = match i % 3 {
                0 => (
                    Some(AttributeValue::M(
                        [("shapes".to_owned(), AttributeValue::L(vec![n(i)])), ("title".to_owned(), s("t"))].into(),
                    )),
                    json!({"shapes": [i], "title": "t"}),
                ),
                1 => (Some(s(format!(r#"{{"layers":[{i}]}}"#))), json!({"layers": [i]})),
                _ => (None, json!({})),
            };
            let mut canvas = item(vec![("id", s(&id)), ("name", s(format!("canvas {i}")))]);
            canvas.extend(item(stamps(i)));
            if let Some(data) = data {
                canvas.insert("data".into(), data);
            }
            if i % 7 == 0 {
                canvas.insert("description".into(), s("from the old app"));
            }
            if i % 15 == 0 {
                seed.mapping.insert(id.clone(), (*owner).to_owned()); // no owner attribute: the mapping says
            } else {
                canvas.insert("owner".into(), s(*owner));
            }
            seed.documents.insert(id, document);
            seed.add(Kind::Canvases, Some(owner), canvas);
        }
        for i in 0..per_owner + per_owner / 4 {
            let id = if i % 10 == 3 { format!("wf-{o}-{i}") } else { v4() };
            let graph = match i % 2 {
                0 => s(format!(r#"{{"nodes":{{"{i}":{{"class_type":"KSampler"}}}}}}"#)),
                _ => AttributeValue::M([("nodes".to_owned(), AttributeValue::M(Default::default()))].into()),
            };
            let mut workflow = item(vec![
                ("id", s(&id)),
                ("owner", s(*owner)),
                ("name", s(format!("workflow {i}"))),
                ("graph", graph),
            ]);
            workflow.extend(item(stamps(i)));
            seed.add(Kind::Workflows, Some(owner), workflow);
        }
        for i in 0..per_owner + per_owner / 4 {
            let mut file = item(vec![
                ("id", s(v4())),
                ("owner", s(*owner)),
                ("name", s(format!("file-{i}.png"))),
                ("size", n(1000 + i)),
                ("legacy_bucket_key", s(format!("uploads/{i}.png"))),
            ]);
            if i % 2 == 0 {
                file.insert("content_type".into(), s("image/png"));
            }
            file.extend(item(stamps(i)));
            seed.add(Kind::Files, Some(owner), file);
        }
    }

    // What cannot be migrated, of every kind, reported and never written.
    let owner = owners[0];
    let named = |id: String, extra: Vec<(&str, AttributeValue)>| {
        let mut i = item(vec![("id", s(id)), ("name", s("broken"))]);
        i.extend(item(extra));
        i
    };
    for k in 0..5 {
        seed.fail(Kind::Canvases, Category::NoOwner, named(v4(), vec![("data", s("{}")), ("note", n(k))]));
    }
    for bad in ["{oops", "[1, 2]", "\"text\""] {
        seed.fail(Kind::Canvases, Category::Malformed, named(v4(), vec![("owner", s(owner)), ("data", s(bad))]));
    }
    seed.fail(Kind::Canvases, Category::Malformed, item(vec![("id", s(v4())), ("owner", s(owner))]));
    seed.fail(
        Kind::Canvases,
        Category::Malformed,
        named(v4(), vec![("owner", s(owner)), ("created_at", s("yesterday"))]),
    );
    // Over the API's limits (canvas data 350 KiB, workflow graph 300 KiB, message 64 KiB), under
    // DynamoDB's 400 KB: the legacy table holds them, the API could never serve them.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(360 * 1024));
    for _ in 0..2 {
        seed.fail(Kind::Canvases, Category::TooLarge, named(v4(), vec![("owner", s(owner)), ("data", s(&big))]));
    }
    seed.fail(Kind::Workflows, Category::Malformed, named(v4(), vec![("owner", s(owner))]));
    let big_graph = format!(r#"{{"nodes":"{}"}}"#, "x".repeat(310 * 1024));
    seed.fail(Kind::Workflows, Category::TooLarge, named(v4(), vec![("owner", s(owner)), ("graph", s(big_graph))]));
    seed.fail(Kind::Files, Category::Malformed, named(v4(), vec![("owner", s(owner)), ("size", s("12"))]));
    seed.fail(
        Kind::Files,
        Category::Malformed,
        named(v4(), vec![("owner", s(owner)), ("size", n(5)), ("status", s("deleted"))]),
    );
    // Sessions nobody owns, and their messages, which cannot go anywhere either.
    for k in 0..3 {
        let sid = v4();
        seed.fail(Kind::Sessions, Category::NoOwner, item(vec![("id", s(&sid)), ("title", s("orphaned"))]));
        for j in 0..2 {
            let m = item(vec![
                ("id", s(format!("orphan-{k}-{j}"))),
                ("session_id", s(&sid)),
                ("role", s("user")),
                ("content", s("hello?")),
                ("owner", s(owner)),
            ]);
            seed.fail(Kind::Messages, Category::SessionUnavailable, m);
        }
    }
    let some_session = seed.items[&Kind::Sessions][0]["id"].clone();
    let message = |id: &str, extra: Vec<(&str, AttributeValue)>| {
        let mut m = item(vec![("id", s(id)), ("role", s("user")), ("content", s("hi"))]);
        m.extend(item(extra));
        m
    };
    for k in 0..3 {
        let m = message(&format!("lost-{k}"), vec![("session_id", s(format!("no-such-session-{k}")))]);
        seed.fail(Kind::Messages, Category::SessionUnavailable, m);
    }
    for k in 0..2 {
        let m = message(&format!("system-{k}"), vec![("session_id", some_session.clone()), ("role", s("system"))]);
        seed.fail(Kind::Messages, Category::Malformed, m);
    }
    seed.fail(Kind::Messages, Category::Malformed, message("no-session", vec![]));
    let huge = "y".repeat(64 * 1024 + 1);
    seed.fail(
        Kind::Messages,
        Category::TooLarge,
        message("huge", vec![("session_id", some_session), ("content", s(huge))]),
    );
    seed
}

async fn load(client: &Client, tables: &BTreeMap<Kind, String>, seed: &Seed) {
    for (kind, items) in &seed.items {
        put_all(client, &tables[kind], items).await;
    }
}

fn config(mode: Mode, legacy: &BTreeMap<Kind, String>, seed: &Seed) -> Config {
    let target = Kind::ALL.iter().map(|k| (*k, k.logical_table().to_owned())).collect();
    let owners = Owners {
        attribute: Some("owner".into()),
        mapping: seed.mapping.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        default: None,
    };
    let mut config = Config::new(mode, legacy.clone(), target, owners);
    config.page_size = 50;
    config.max_read_units = None;
    config.max_write_units = None;
    config
}

/// Everything the target tables hold for `owners`, by (owner, kind, legacy id).
async fn target_content(client: &Client, owners: &[&str]) -> BTreeMap<(String, Kind, String), Item> {
    let mut content = BTreeMap::new();
    for owner in owners {
        for kind in Kind::ALL {
            let mut start = None;
            loop {
                let out = client
                    .query()
                    .table_name(kind.logical_table())
                    .key_condition_expression("user_id = :u")
                    .expression_attribute_values(":u", s(*owner))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .unwrap();
                for item in out.items.unwrap_or_default() {
                    let legacy = match item.get("legacy_id").or(item.get("id")) {
                        Some(AttributeValue::S(id)) => id.clone(),
                        other => panic!("{other:?}"),
                    };
                    let previous = content.insert(((*owner).to_owned(), kind, legacy.clone()), item);
                    assert!(previous.is_none(), "{kind} {legacy} is in the target twice");
                }
                match out.last_evaluated_key {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
    }
    content
}

fn failures(summary: &Summary) -> BTreeMap<(Kind, String), Category> {
    summary
        .issues
        .iter()
        .filter(|i| i.category.is_failure())
        .map(|i| ((i.kind, i.legacy_id.clone()), i.category))
        .collect()
}

fn assert_counts(summary: &Summary, seed: &Seed, written: usize, present: usize) {
    let total = summary.total();
    assert_eq!(total.read as usize, seed.total(), "{summary}");
    assert_eq!(total.written as usize, written, "{summary}");
    assert_eq!(total.present as usize, present, "{summary}");
    assert_eq!(total.failed as usize, seed.failures.len(), "{summary}");
    assert_eq!((total.conflicts, total.missing), (0, 0), "{summary}");
    for kind in Kind::ALL {
        let c = summary.counts[&kind];
        assert_eq!((c.written + c.present) as usize, seed.count(kind), "{kind}: {summary}");
    }
}

#[tokio::test]
async fn migrates_thousands_of_items_resumably_idempotently_and_only_to_their_owners() {
    let h = Harness::new().await;
    let client = client().await;
    let (alice, bob, carol) = (h.user("alice"), h.user("bob"), h.user("carol"));
    let owners = [alice.id.as_str(), bob.id.as_str(), carol.id.as_str()];
    let legacy = legacy_tables(&client).await;
    let seed = seed(&owners, 80);
    load(&client, &legacy, &seed).await;
    let expected = seed.expected.len();
    assert!(seed.total() > 3000, "a few thousand legacy items: {}", seed.total());

    // Dry run: reports everything a run would do, writes nothing.
    let mut dry = config(Mode::DryRun, &legacy, &seed);
    dry.report = Some(scratch("dry-report.jsonl"));
    let summary = Migration::new(client.clone(), dry.clone()).run().await.unwrap();
    assert_counts(&summary, &seed, expected, 0);
    assert_eq!(failures(&summary), seed.failures, "every unmigratable item is reported with its reason");
    assert!(target_content(&client, &owners).await.is_empty(), "a dry run writes nothing");
    let report = std::fs::read_to_string(dry.report.as_ref().unwrap()).unwrap();
    assert_eq!(report.lines().count(), seed.failures.len(), "the report file lists every failed item");

    // A real run, interrupted a third of the way through.
    let checkpoint = scratch("checkpoint.json");
    let mut run = config(Mode::Run, &legacy, &seed);
    run.checkpoint = Some(checkpoint.clone());
    run.report = Some(scratch("report.jsonl"));
    run.stop_after = Some(seed.total() as u64 / 3);
    let first = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    assert!(!first.complete, "{first}");
    assert!(checkpoint.exists(), "the checkpoint records where it stopped");
    let partial = target_content(&client, &owners).await.len();
    assert!(partial > 0 && partial < expected, "stopped midway: {partial} of {expected}");
    assert!(first.to_string().contains("STOPPED before the end"), "{first}");

    // Resumed from the checkpoint: ends with exactly the expected content.
    run.stop_after = None;
    let resumed = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    println!("{resumed}");
    assert!(resumed.complete && resumed.run_number == 2, "{resumed}");
    assert_counts(&resumed, &seed, expected, 0);
    assert!(resumed.read_this_run < seed.total() as u64, "the resumed run did not start over");
    let content = target_content(&client, &owners).await;
    assert_eq!(content.keys().cloned().collect::<BTreeSet<_>>(), seed.expected, "exactly the expected items");
    let failed_now: BTreeMap<_, _> = failures(&first).into_iter().chain(failures(&resumed)).collect::<BTreeMap<_, _>>();
    assert_eq!(failed_now, seed.failures, "the two runs together reported every failure");

    // The same command again: the checkpoint says it is done, nothing happens.
    let again = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    assert!(again.already_complete && again.read_this_run == 0, "{again}");
    assert!(again.to_string().contains("nothing to do"), "{again}");

    // A new pass (new checkpoint) re-checks every item and writes nothing.
    run.checkpoint = Some(scratch("second-pass.json"));
    let second = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    println!("{second}");
    assert_counts(&second, &seed, 0, expected);
    assert!(second.to_string().contains(&format!("nothing written: all {expected} migratable items")), "{second}");
    assert_eq!(target_content(&client, &owners).await, content, "the second pass changed nothing");

    // Verify: zero differences.
    let verify = Migration::new(client.clone(), config(Mode::Verify, &legacy, &seed)).run().await.unwrap();
    println!("{verify}");
    assert_eq!(verify.differences(), 0, "{verify}");
    assert_eq!(verify.total().present as usize, expected, "{verify}");
    assert!(verify.to_string().contains("0 differences"), "{verify}");

    check_through_the_api(&h, &seed, &content, &[&alice, &bob, &carol]).await;
}

/// The migrated data as the API shows it: each owner sees exactly theirs, nobody else any.
async fn check_through_the_api(
    h: &Harness,
    seed: &Seed,
    content: &BTreeMap<(String, Kind, String), Item>,
    owners: &[&User],
) {
    let target_id =
        |owner: &User, kind: Kind, legacy: &str| match &content[&(owner.id.clone(), kind, legacy.to_owned())]["id"] {
            AttributeValue::S(id) => id.clone(),
            other => panic!("{other:?}"),
        };
    let mine = |owner: &User, kind: Kind| -> BTreeSet<String> {
        seed.expected
            .iter()
            .filter(|(o, k, _)| *o == owner.id && *k == kind)
            .map(|(_, _, l)| target_id(owner, kind, l))
            .collect()
    };
    for owner in owners {
        for (kind, path) in [
            (Kind::Canvases, "/canvases"),
            (Kind::Sessions, "/sessions"),
            (Kind::Workflows, "/workflows"),
            (Kind::Files, "/files"),
        ] {
            let (items, _) = h.list_all(owner, path, 100).await;
            let listed: BTreeSet<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
            assert_eq!(listed.len(), items.len(), "{path}: no repeats");
            assert_eq!(listed, mine(owner, kind), "{path} lists exactly the owner's migrated items");
            let stamps: Vec<&str> = items
                .iter()
                .map(|i| i[if kind == Kind::Files { "created_at" } else { "updated_at" }].as_str().unwrap())
                .collect();
            assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{path} is ordered newest first");
        }
    }
    let alice = owners[0];

    // Documents come back as the JSON they were, whatever form the legacy table kept them in.
    for (legacy, document) in seed
        .documents
        .iter()
        .filter(|(l, _)| seed.expected.contains(&(alice.id.clone(), Kind::Canvases, (*l).clone())))
        .take(12)
    {
        let id = target_id(alice, Kind::Canvases, legacy);
        let got = h.call(Some(alice), "GET", &format!("/canvases/{id}"), None).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(&got.json()["data"], document, "canvas {legacy}");
        assert_eq!(got.header("etag"), Some("\"1\""));
    }

    // Conversations: every message under its session, in the order it was written.
    let alices: Vec<&String> = seed
        .conversations
        .keys()
        .filter(|l| seed.expected.contains(&(alice.id.clone(), Kind::Sessions, (*l).clone())))
        .collect();
    let (text_ids, uuids): (Vec<&String>, Vec<&String>) = alices.into_iter().partition(|l| l.starts_with("session-"));
    for legacy in text_ids.into_iter().take(6).chain(uuids.into_iter().take(6)) {
        let sid = target_id(alice, Kind::Sessions, legacy);
        let (messages, _) = h.list_all(alice, &format!("/sessions/{sid}/messages"), 4).await;
        let contents: Vec<&str> = messages.iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, seed.conversations[legacy], "session {legacy}: all its messages, in order");
        assert!(messages.iter().all(|m| m["session_id"] == json!(sid)));
    }

    // Workflows are idle at version 1; their graph is the legacy one.
    let (workflows, _) = h.list_all(alice, "/workflows", 100).await;
    let wf = workflows[0]["id"].as_str().unwrap();
    let got = h.call(Some(alice), "GET", &format!("/workflows/{wf}"), None).await.json();
    assert_eq!((got["run"]["status"].as_str(), got["version"].as_u64()), (Some("idle"), Some(1)), "{got}");
    assert!(got["graph"]["nodes"].is_object(), "{got}");
    let started = h.call(Some(alice), "POST", &format!("/workflows/{wf}/run/start"), None).await;
    assert_eq!(started.status, 200, "a migrated workflow runs: {}", started.text());

    // Nobody else sees any of it, or can reach it by id.
    let mallory = h.user("mallory");
    for path in ["/canvases", "/sessions", "/workflows", "/files"] {
        assert!(h.list_all(&mallory, path, 100).await.0.is_empty(), "{path}");
    }
    let canvas = mine(alice, Kind::Canvases).into_iter().next().unwrap();
    h.call(Some(owners[1]), "GET", &format!("/canvases/{canvas}"), None).await.assert_problem(404);
    let export = h.call(Some(&mallory), "GET", "/me/export?limit=100", None).await.json();
    assert!(export["items"].as_array().unwrap().iter().all(|i| i["kind"] == "profile"), "{export}");
}

#[tokio::test]
async fn an_aborted_run_resumes_and_verify_finds_what_changed_since() {
    let h = Harness::new().await;
    let client = client().await;
    let (dana, erin) = (h.user("dana"), h.user("erin"));
    let owners = [dana.id.as_str(), erin.id.as_str()];
    let legacy = legacy_tables(&client).await;
    let seed = seed(&owners, 20);
    load(&client, &legacy, &seed).await;

    // Killed mid-page, at whatever await it had reached.
    let checkpoint = scratch("checkpoint.json");
    let mut run = config(Mode::Run, &legacy, &seed);
    run.checkpoint = Some(checkpoint.clone());
    run.page_size = 10;
    run.segments = 2;
    let task = tokio::spawn({
        let (client, run) = (client.clone(), run.clone());
        async move { Migration::new(client, run).run().await }
    });
    while !checkpoint.exists() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    let partial = target_content(&client, &owners).await.len();
    assert!(partial < seed.expected.len(), "aborted before the end: {partial}");

    let resumed = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    assert!(resumed.complete, "{resumed}");
    let content = target_content(&client, &owners).await;
    assert_eq!(content.keys().cloned().collect::<BTreeSet<_>>(), seed.expected);
    let verify = Migration::new(client.clone(), config(Mode::Verify, &legacy, &seed)).run().await.unwrap();
    assert_eq!(verify.differences(), 0, "{verify}");

    // The owner changes one canvas and deletes another: verify reports both.
    let (canvases, _) = h.list_all(&dana, "/canvases", 100).await;
    let (changed, deleted) = (canvases[0]["id"].as_str().unwrap(), canvases[1]["id"].as_str().unwrap());
    let r = h.call(Some(&dana), "PATCH", &format!("/canvases/{changed}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.call(Some(&dana), "DELETE", &format!("/canvases/{deleted}"), None).await.status, 204);
    let verify = Migration::new(client.clone(), config(Mode::Verify, &legacy, &seed)).run().await.unwrap();
    assert_eq!((verify.differences(), verify.total().missing, verify.total().conflicts), (2, 1, 1), "{verify}");
    let differs = verify.issues.iter().find(|i| i.category == Category::Differs).unwrap();
    assert_eq!(differs.target_id.as_deref(), Some(changed));
    assert!(differs.detail.contains("name") && differs.detail.contains("version 2"), "{}", differs.detail);

    // The finished migration's checkpoint keeps a rerun from bringing the deleted canvas back.
    let again = Migration::new(client.clone(), run.clone()).run().await.unwrap();
    assert!(again.already_complete, "{again}");
    h.call(Some(&dana), "GET", &format!("/canvases/{deleted}"), None).await.assert_problem(404);

    // A deliberate new pass never overwrites: the renamed canvas is a conflict, left as it is.
    run.checkpoint = Some(scratch("new-pass.json"));
    let pass = Migration::new(client.clone(), run).run().await.unwrap();
    assert_eq!((pass.total().written, pass.total().conflicts), (1, 1), "{pass}");
    let kept = h.call(Some(&dana), "GET", &format!("/canvases/{changed}"), None).await.json();
    assert_eq!(kept["name"], "renamed", "never overwritten");
    assert_eq!(cli::exit_status(&pass), cli::EXIT_ISSUES);
}

#[tokio::test]
async fn default_owner_mapping_file_capacity_bound_and_the_command_line() {
    let h = Harness::new().await;
    let client = client().await;
    let (frank, grace) = (h.user("frank"), h.user("grace"));
    let legacy = legacy_tables(&client).await;
    // Legacy items with no owner attribute at all: a mapping file names frank for some, the
    // default owner (grace) takes the rest; messages follow their session.
    let mut mapped = Vec::new();
    let (mut canvases, mut sessions, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..60 {
        let id = v4();
        if i % 3 == 0 {
            mapped.push(format!("{id},{}", frank.id));
        }
        canvases.push(item(vec![("id", s(&id)), ("name", s(format!("c{i}"))), ("created_by", s("ignored"))]));
    }
    let sid = v4();
    mapped.push(format!("{sid}\t{}", frank.id));
    sessions.push(item(vec![("id", s(&sid)), ("title", s("mapped chat"))]));
    for j in 0..5 {
        messages.push(item(vec![
            ("id", s(format!("m{j}"))),
            ("session_id", s(&sid)),
            ("role", s("user")),
            ("content", s(format!("line {j}"))),
            ("created_at", n(1_700_000_000 + j)),
        ]));
    }
    put_all(&client, &legacy[&Kind::Canvases], &canvases).await;
    put_all(&client, &legacy[&Kind::Sessions], &sessions).await;
    put_all(&client, &legacy[&Kind::Messages], &messages).await;
    let map = scratch("owners.csv");
    std::fs::write(&map, format!("# legacy id,user id\n{}\n", mapped.join("\n"))).unwrap();

    // The command line, as the binary runs it (its main is this one call).
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "migrate",
            "--endpoint",
            &endpoint(),
            "--legacy-canvases",
            &legacy[&Kind::Canvases],
            "--legacy-sessions",
            &legacy[&Kind::Sessions],
            "--legacy-messages",
            &legacy[&Kind::Messages],
            "--owner-map",
            map.to_str().unwrap(),
            "--default-owner",
            &grace.id,
            "--no-progress",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let checkpoint = scratch("checkpoint.json");
    let report = scratch("report.jsonl");
    let files = ["--checkpoint", checkpoint.to_str().unwrap(), "--report", report.to_str().unwrap()];
    assert_eq!(cli::main(args(&[&["--dry-run"], &files[..]].concat())).await, std::process::ExitCode::SUCCESS);
    assert!(h.list_all(&frank, "/canvases", 100).await.0.is_empty(), "dry run wrote nothing");
    // Bounded: 66 items at 2 write units each (table and list index), at most 20 units/s with a
    // 20-unit burst: over 5 s (2 s even if DynamoDB charged 1 unit each).
    let started = std::time::Instant::now();
    let code = cli::main(args(&[&["--max-write-units", "20", "--max-read-units", "0"], &files[..]].concat())).await;
    let took = started.elapsed();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(
        took >= Duration::from_millis(2000),
        "132 write units (66 items, table + index) at ≤ 20/s took only {took:?}"
    );
    assert!(checkpoint.exists(), "the finished migration's checkpoint stays");
    assert_eq!(cli::main(args(&[&["--verify"], &files[..]].concat())).await, std::process::ExitCode::SUCCESS);
    let bad = cli::main([
        "migrate",
        "--endpoint",
        &endpoint(),
        "--legacy-messages",
        &legacy[&Kind::Messages],
        "--default-owner",
        "x",
    ])
    .await;
    assert_eq!(bad, std::process::ExitCode::from(1), "messages without the sessions table are refused");

    let (franks, _) = h.list_all(&frank, "/canvases", 100).await;
    let (graces, _) = h.list_all(&grace, "/canvases", 100).await;
    assert_eq!((franks.len(), graces.len()), (20, 40));
    let (chats, _) = h.list_all(&frank, "/sessions", 100).await;
    assert_eq!(chats.len(), 1);
    let chat = chats[0]["id"].as_str().unwrap();
    assert_eq!(chat, sid, "a UUID id is kept, so messages still point at their session");
    let (lines, _) = h.list_all(&frank, &format!("/sessions/{chat}/messages"), 100).await;
    let lines: Vec<&str> = lines.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2", "line 3", "line 4"], "the session's owner gets its messages");
    assert!(h.list_all(&grace, "/sessions", 100).await.0.is_empty());
}
