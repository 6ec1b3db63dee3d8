//! Handler overhead per request, in process, DynamoDB excluded.
//!
//! `bench-overhead <events dir> <iterations>` builds the canvases function exactly as its
//! Lambda `main` does (`Platform::from_env`, `Canvases::build`, the `lambda_http` adapter) and
//! times, per request, what Lambda's runtime loop does with an event besides the network:
//! the API Gateway v2 event JSON → `lambda_http` request, routing, HS256 token verification,
//! query/body parsing, the handler, the problem+json or item JSON, the log line, and the
//! API Gateway response JSON. Three cases:
//!
//! - `rejected`: `GET /canvases?limit=101`, refused (400) after token verification, before
//!   any DynamoDB call: the pipeline alone;
//! - `get` / `list`: `GET /canvases/{id}` and `GET /canvases` (20 items) against a fake
//!   DynamoDB served by this process on loopback that answers at once with a canned item or
//!   page: adds the SDK's request building, SigV4 signing, HTTP on loopback and the item
//!   (de)serialisation, but no DynamoDB work.
//!
//! - `sdk-get` / `sdk-list`: the same GetItem and Query through the SDK alone, against the
//!   same fake: the share of `get` / `list` spent in the SDK and on loopback.
//!
//! Prints one JSON object: per case the status, the sample count and p50/p99/mean in µs.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use canvases::Canvases;
use lambda_http::{request::LambdaRequest, tower::Service, Adapter};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use shared::{Area, AuthConfig, Env, Platform, TokenMinter};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USER: &str = "bench-overhead-user";
const CANVAS_ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";

fn stored_canvas(i: usize, with_data: bool) -> Value {
    let mut item = json!({
        "user_id": {"S": USER},
        "id": {"S": format!("0192f0c4-6f8e-7a3c-9c1e-{i:012}")},
        "name": {"S": format!("Canvas {i}")},
        "description": {"S": "A benchmark canvas with a short description"},
        "created_at": {"S": "2026-11-25T10:00:00.000000Z"},
        "updated_at": {"S": format!("2026-11-25T10:{:02}:00.000000Z", i % 60)},
        "version": {"N": "3"},
    });
    if with_data {
        let shapes: Vec<Value> = (0..12)
            .map(|n| json!({"kind": "rect", "x": n * 10, "y": n * 7, "w": 120, "h": 80, "fill": "#3366ff"}))
            .collect();
        item["data"] = json!({"S": json!({"shapes": shapes}).to_string()});
    }
    item
}

/// A DynamoDB stand-in on loopback: answers every call at once with a canned body.
async fn fake_dynamodb(listener: TcpListener) {
    let get = json!({ "Item": stored_canvas(0, true) }).to_string();
    let items: Vec<Value> = (0..21).map(|i| stored_canvas(i, false)).collect();
    let query = json!({ "Items": items, "Count": 21, "ScannedCount": 21 }).to_string();
    let answers: HashMap<&'static str, String> = HashMap::from([("GetItem", get), ("Query", query)]);
    let answers = std::sync::Arc::new(answers);
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let answers = answers.clone();
        tokio::spawn(async move {
            let _ = serve_connection(socket, &answers).await;
        });
    }
}

async fn serve_connection(mut socket: TcpStream, answers: &HashMap<&'static str, String>) -> Result<(), BoxError> {
    socket.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    loop {
        let header_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_owned()))
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let target = header("x-amz-target").unwrap_or_default();
        while buf.len() < header_end + length {
            let mut chunk = [0u8; 8192];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..header_end + length);
        let op = target.rsplit('.').next().unwrap_or_default();
        let body = answers.iter().find(|(k, _)| k.eq_ignore_ascii_case(op)).map(|(_, v)| v.as_str()).unwrap_or("{}");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fake\r\ncontent-length: {}\r\n\r\n{}",
            body.len(),
            body
        );
        socket.write_all(response.as_bytes()).await?;
    }
}

fn event(events_dir: &str, fixture: &str, token: &str, query: &str) -> Result<Vec<u8>, BoxError> {
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(format!("{events_dir}/{fixture}"))?)?;
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event["rawQueryString"] = json!(query);
    if !query.is_empty() {
        let params: serde_json::Map<String, Value> =
            query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), json!(v))).collect();
        event["queryStringParameters"] = Value::Object(params);
    }
    if fixture.contains("-id") {
        event["rawPath"] = json!(format!("/canvases/{CANVAS_ID}"));
        event["requestContext"]["http"]["path"] = event["rawPath"].clone();
        event["pathParameters"] = json!({ "id": CANVAS_ID });
    }
    Ok(serde_json::to_vec(&event)?)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Percentiles of the measured samples; `first` is the very first call of the case in this
/// process (before the discarded warm-up tenth): code run for the first time.
fn summary(mut samples: Vec<Duration>, first: Duration, status: u64) -> Value {
    samples.sort();
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e6;
    json!({
        "status": status,
        "n": samples.len(),
        "p50_us": percentile(&samples, 0.50),
        "p99_us": percentile(&samples, 0.99),
        "mean_us": mean,
        "first_us": first.as_secs_f64() * 1e6,
    })
}

/// `bench-overhead --init-phases`: one cold start of the canvases function as
/// `shared::runtime::run` does it, configured from the process environment, timed phase by
/// phase (µs): the JSON logger, the AWS configuration from the environment
/// (`aws_config::load_defaults`, which a deployed function runs), the platform (verifier,
/// cursor key, DynamoDB client), the function, the DynamoDB warm-up. Prints one JSON object.
async fn init_phases() -> Result<(), BoxError> {
    let mut phases = serde_json::Map::new();
    let mut at = Instant::now();
    let mut lap = |name: &str, phases: &mut serde_json::Map<String, Value>| {
        phases.insert(name.to_owned(), json!(at.elapsed().as_secs_f64() * 1e6));
        at = Instant::now();
    };
    shared::runtime::init_logging();
    lap("logging", &mut phases);
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    std::hint::black_box(sdk);
    lap("aws_config", &mut phases);
    // The rest without a second `load_defaults`: S3 gets a local endpoint here.
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.entry("S3_ENDPOINT".into()).or_insert_with(|| "http://127.0.0.1:9".into());
    let env = Env::from_map(vars);
    let platform = Platform::from_env(&env).await?;
    lap("platform", &mut phases);
    let router = shared::runtime::router(Canvases::build(&platform, &env)?, &platform);
    std::hint::black_box(&router);
    lap("function", &mut phases);
    platform.warm_up().await;
    lap("warm_up", &mut phases);
    eprintln!("{}", Value::Object(phases));
    Ok(())
}

/// `bench-overhead --first-call <events dir>`: in a fresh process, the function built and its
/// DynamoDB client warmed up as a cold start does it, against the instant fake DynamoDB; then
/// `GET /canvases/{id}` once (the first call: code run for the first time) and 20 more. Prints
/// `{"first_us", "warm_us"}` (warm: the median of the 20).
async fn first_call(events_dir: &str) -> Result<(), BoxError> {
    shared::runtime::init_logging();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(fake_dynamodb(listener));
    let env = fake_env(&endpoint);
    let token = TokenMinter::from_config(&AuthConfig::from_env(&env)?)
        .ok_or("HS256 secret is set")?
        .mint(USER, Duration::from_secs(3600));
    let platform = Platform::from_env(&env).await?;
    let router = shared::runtime::router(Canvases::build(&platform, &env)?, &platform);
    platform.warm_up().await;
    let mut adapter = Adapter::from(router);
    let bytes = event(events_dir, "get-canvases-id.json", &token, "")?;
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let payload: LambdaRequest = serde_json::from_slice(&bytes)?;
        let response = adapter.call(LambdaEvent::new(payload, Context::default())).await?;
        std::hint::black_box(serde_json::to_vec(&response)?);
        times.push(started.elapsed());
    }
    let first = times.remove(0);
    times.sort();
    eprintln!("{}", json!({"first_us": first.as_secs_f64() * 1e6, "warm_us": percentile(&times, 0.5)}));
    Ok(())
}

/// The canvases configuration against a fake DynamoDB at `endpoint`.
fn fake_env(endpoint: &str) -> Env {
    Env::from_map(HashMap::from([
        ("JWT_SECRET".into(), "bench-overhead-secret-0123456789abcdef0123456789".into()),
        ("CANVASES_TABLE".into(), "CanvasesTable".into()),
        ("USERS_TABLE".into(), "UsersTable".into()),
        ("DYNAMODB_ENDPOINT".into(), endpoint.to_owned()),
        ("S3_ENDPOINT".into(), endpoint.to_owned()),
    ]))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() == Some("--init-phases") {
        return init_phases().await;
    }
    if std::env::args().nth(1).as_deref() == Some("--first-call") {
        return first_call(std::env::args().nth(2).as_deref().unwrap_or("events")).await;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events_dir = args.first().map(String::as_str).unwrap_or("events");
    let iterations: usize = args.get(1).map(|n| n.parse()).transpose()?.unwrap_or(5000);

    shared::runtime::init_logging();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(fake_dynamodb(listener));

    let env = fake_env(&endpoint);
    let token = TokenMinter::from_config(&AuthConfig::from_env(&env)?)
        .ok_or("HS256 secret is set")?
        .mint(USER, Duration::from_secs(3600));
    let platform = Platform::from_env(&env).await?;
    let mut adapter = Adapter::from(shared::runtime::router(Canvases::build(&platform, &env)?, &platform));

    let cases = [
        ("rejected", event(events_dir, "get-canvases.json", &token, "limit=101")?, 400),
        ("get", event(events_dir, "get-canvases-id.json", &token, "")?, 200),
        ("list", event(events_dir, "get-canvases.json", &token, "limit=20")?, 200),
    ];
    // The SDK call alone, on the function's own client, as the handler makes it, against the
    // same fake DynamoDB: what `get` and `list` spend in the SDK and on loopback rather than in
    // the handler. Every case runs once per round, so all see the same machine.
    let client = platform.dynamodb.clone();
    let key = HashMap::from([
        ("user_id".to_owned(), AttributeValue::S(USER.to_owned())),
        ("id".to_owned(), AttributeValue::S(CANVAS_ID.to_owned())),
    ]);
    let names = ["rejected", "get", "list", "sdk-get", "sdk-list"];
    let mut samples: Vec<Vec<Duration>> = names.iter().map(|_| Vec::with_capacity(iterations)).collect();
    let mut firsts = [Duration::ZERO; 5];
    for i in 0..iterations + iterations / 10 {
        for (n, name) in names.iter().enumerate() {
            let started = Instant::now();
            match *name {
                "sdk-get" => {
                    let out = client
                        .get_item()
                        .table_name("CanvasesTable")
                        .set_key(Some(key.clone()))
                        .consistent_read(true)
                        .send()
                        .await?;
                    std::hint::black_box(out);
                }
                "sdk-list" => {
                    let out = client
                        .query()
                        .table_name("CanvasesTable")
                        .index_name("user_id-updated_at-index")
                        .key_condition_expression("#uid = :uid")
                        .expression_attribute_names("#uid", "user_id")
                        .expression_attribute_values(":uid", AttributeValue::S(USER.to_owned()))
                        .scan_index_forward(false)
                        .limit(21)
                        .send()
                        .await?;
                    std::hint::black_box(out);
                }
                _ => {
                    let (_, bytes, expected) = &cases[n];
                    let payload: LambdaRequest = serde_json::from_slice(bytes)?;
                    let response = adapter.call(LambdaEvent::new(payload, Context::default())).await?;
                    let out = serde_json::to_vec(&response)?;
                    if i == 0 {
                        let status = serde_json::from_slice::<Value>(&out)?["statusCode"].as_u64();
                        if status != Some(*expected) {
                            let body = String::from_utf8_lossy(&out);
                            return Err(format!("{name}: expected {expected}, got {status:?}: {body}").into());
                        }
                    }
                }
            }
            let elapsed = started.elapsed();
            if i == 0 {
                firsts[n] = elapsed;
            }
            // The first tenth warms caches and the connection pool.
            if i >= iterations / 10 {
                samples[n].push(elapsed);
            }
        }
    }
    let mut results = serde_json::Map::new();
    for (n, (name, taken)) in names.iter().zip(samples).enumerate() {
        let status = cases.get(n).map_or(200, |c| c.2);
        results.insert((*name).to_owned(), summary(taken, firsts[n], status));
    }
    eprintln!("{}", Value::Object(results));
    Ok(())
}
