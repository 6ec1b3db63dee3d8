//! The benchmark behind `infra/bench`: measures, in one run, what the issue's targets are about
//! and prints one table (Markdown). Run by `infra/bench` under `local-stack exec` (DynamoDB
//! Local + S3 with the template's tables), after the release build of the functions and of
//! `bench-probes`.
//!
//! 1. sizes of the release binaries the template declares, stripped and zipped as `bootstrap`;
//! 2. DynamoDB calls and consumed capacity per request type, through a counting proxy;
//! 3. init, first and warm invocations through a local Runtime API ([`emulator`]), in rounds
//!    that interleave our functions, the hello-world floor and the Python peer;
//! 4. handler overhead in process (`bench-overhead`);
//! 5. throughput of the local gateway (`local-stack up`) under wrk.

mod emulator;
mod events;
mod load;
mod proxy;
mod report;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use emulator::{Sandbox, Spec};
use events::Events;
use serde_json::{json, Value};
use shared::{AuthConfig, Env, TokenMinter};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Settings, from `infra/bench`'s flags.
struct Args {
    runs: usize,
    warm: usize,
    overhead_iterations: usize,
    load_seconds: u64,
    connections: u32,
    python: String,
    wrk: String,
    local_stack: String,
    release_dir: PathBuf,
    out_dir: PathBuf,
    write: Option<PathBuf>,
    chart: Option<PathBuf>,
    command: String,
}

impl Args {
    fn parse() -> Result<Self, BoxError> {
        let mut args = Self {
            runs: 20,
            warm: 5,
            overhead_iterations: 5000,
            load_seconds: 10,
            connections: 8,
            python: ".venv/bin/python".into(),
            wrk: "wrk".into(),
            local_stack: "target/debug/local-stack".into(),
            release_dir: "target/release".into(),
            out_dir: "target/bench".into(),
            write: None,
            chart: None,
            command: "./infra/bench".into(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--runs" => args.runs = value()?.parse()?,
                "--warm" => args.warm = value()?.parse()?,
                "--overhead-iterations" => args.overhead_iterations = value()?.parse()?,
                "--load-seconds" => args.load_seconds = value()?.parse()?,
                "--connections" => args.connections = value()?.parse()?,
                "--python" => args.python = value()?,
                "--wrk" => args.wrk = value()?,
                "--local-stack" => args.local_stack = value()?,
                "--release-dir" => args.release_dir = value()?.into(),
                "--out-dir" => args.out_dir = value()?.into(),
                "--write" => args.write = Some(value()?.into()),
                "--chart" => args.chart = Some(value()?.into()),
                "--command" => args.command = value()?,
                other => return Err(format!("unknown flag {other}").into()),
            }
        }
        if args.runs < 1 || args.warm < 1 {
            return Err("--runs and --warm must be at least 1".into());
        }
        Ok(args)
    }
}

/// Every figure of one run.
#[derive(Default, serde::Serialize)]
pub struct Results {
    /// (binary, stripped bytes, zipped bytes)
    pub sizes: Vec<(String, u64, u64)>,
    /// Init samples (ms) per process kind: functions, `hello (floor)`, `python peer`.
    pub init: BTreeMap<String, Vec<f64>>,
    /// First and warm invocation samples (ms) per "who / request".
    pub first: BTreeMap<String, Vec<f64>>,
    pub warm: BTreeMap<String, Vec<f64>>,
    /// DynamoDB Local's own round trip (ms) for the get and the list read, raw HTTP.
    pub dynamodb_round_trip: BTreeMap<String, Vec<f64>>,
    pub overhead: Value,
    /// `first_us` / `warm_us` per fresh process, from `bench-overhead --first-call`.
    pub first_call: BTreeMap<String, Vec<f64>>,
    /// The canvases cold start phase by phase (µs per run), from `bench-overhead --init-phases`.
    pub init_phases: BTreeMap<String, Vec<f64>>,
    pub dynamodb: Vec<DynamoRow>,
    /// DynamoDB calls a cold start makes before its first `next` (the warm-up).
    pub init_calls: Vec<String>,
    pub load: Vec<load::LoadResult>,
    pub runs: usize,
    pub warm_per_process: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DynamoRow {
    pub request: String,
    pub status: u16,
    pub calls: Vec<String>,
    pub capacity: f64,
    pub min_calls: usize,
    /// Largest call count over repetitions of the same request (the 25 creates).
    pub max_calls_seen: usize,
}

pub const HELLO: &str = "hello (floor)";
pub const PEER: &str = "python peer";
pub const INSTANT: &str = "canvases, instant DynamoDB";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status_of(payload: &[u8]) -> Result<(u16, Value), BoxError> {
    let response: Value = serde_json::from_slice(payload)?;
    let status = response["statusCode"].as_u64().ok_or("response has no statusCode")? as u16;
    let body = match response["body"].as_str() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Ok((status, body))
}

fn check(what: &str, payload: &[u8], expected: u16) -> Result<Value, BoxError> {
    let (status, body) = status_of(payload)?;
    if status != expected {
        return Err(format!("{what}: expected {expected}, got {status}: {body}").into());
    }
    Ok(body)
}

fn canvas_body(i: usize) -> String {
    let shapes: Vec<Value> = (0..12)
        .map(|n| json!({"kind": "rect", "x": n * 10 + i, "y": n * 7, "w": 120, "h": 80, "fill": "#3366ff"}))
        .collect();
    json!({
        "name": format!("Benchmark canvas {i}"),
        "description": "A benchmark canvas with a short description",
        "data": {"shapes": shapes},
    })
    .to_string()
}

struct Setup {
    template: template::Template,
    /// Per template binary: its environment (without `S3_ENDPOINT`, see `function_env`).
    envs: BTreeMap<String, BTreeMap<String, String>>,
    token: String,
    user: String,
    events: Events,
}

/// A function's environment as the template declares it, with local values; like in Lambda,
/// only DynamoDB is redirected (to DynamoDB Local): the rest of the AWS configuration is
/// loaded from the Lambda environment, on the same code path as in AWS.
fn function_env(
    spec: &template::FunctionSpec,
    template: &template::Template,
    settings: &local_stack::local::LocalSettings,
) -> BTreeMap<String, String> {
    let mut env = local_stack::local::local_environment(spec, template, settings);
    env.remove("S3_ENDPOINT");
    env.remove("DEVELOPMENT_MODE");
    env
}

impl Setup {
    fn new(dynamodb: &str, s3: &str) -> Result<Self, BoxError> {
        let template = template::Template::load_default()?;
        // A fresh random HS256 secret, the benchmark's own issuer and audience.
        let mut settings = local_stack::local::LocalSettings::development(dynamodb.to_owned(), s3.to_owned());
        settings.issuer = "http://localhost/bench".into();
        settings.audience = "bench-api".into();
        settings.development_mode = false;
        let envs: BTreeMap<String, BTreeMap<String, String>> = template
            .functions
            .iter()
            .map(|spec| (spec.binary.clone(), function_env(spec, &template, &settings)))
            .collect();
        let canvases = envs.get("canvases").ok_or("template.yaml has no canvases function")?;
        let auth = AuthConfig::from_env(&Env::from_map(canvases.clone().into_iter().collect()))?;
        let minter = TokenMinter::from_config(&auth).ok_or("the benchmark configures an HS256 secret")?;
        let user = format!("bench-{}", uuid::Uuid::now_v7().simple());
        let token = minter.mint(&user, Duration::from_secs(4 * 3600));
        Ok(Self { template, envs, token, user, events: Events::new("events") })
    }

    fn spec(&self, args: &Args, binary: &str, dynamodb: Option<&str>) -> Spec {
        let mut env = self.envs.get(binary).cloned().unwrap_or_default();
        if let Some(endpoint) = dynamodb {
            env.insert("DYNAMODB_ENDPOINT".into(), endpoint.to_owned());
        }
        Spec {
            name: binary.to_owned(),
            program: args.release_dir.join(binary).display().to_string(),
            args: vec![],
            env,
            execution_env: "AWS_Lambda_provided.al2023",
        }
    }

    fn hello(&self, args: &Args) -> Spec {
        Spec {
            name: "bench-hello".into(),
            program: args.release_dir.join("bench-hello").display().to_string(),
            args: vec![],
            env: BTreeMap::new(),
            execution_env: "AWS_Lambda_provided.al2023",
        }
    }

    fn peer(&self, args: &Args) -> Spec {
        let mut env = self.envs.get("canvases").cloned().unwrap_or_default();
        env.retain(|k, _| k != "RUST_LOG");
        // Lambda's task root is read-only: the handler module is compiled at every cold start.
        env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        Spec {
            name: "canvases-python".into(),
            program: args.python.clone(),
            args: vec!["bench/peer/bootstrap.py".into()],
            env,
            execution_env: "AWS_Lambda_python3.11",
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// Step 1: stripped and zipped size of every function the template declares.
fn sizes(args: &Args, setup: &Setup) -> Result<Vec<(String, u64, u64)>, BoxError> {
    std::fs::create_dir_all(&args.out_dir)?;
    let mut out = Vec::new();
    for spec in &setup.template.functions {
        let binary = args.release_dir.join(&spec.binary);
        let stripped =
            std::fs::metadata(&binary).map_err(|e| format!("{}: {e} (build it first)", binary.display()))?.len();
        let zip = args.out_dir.join(format!("{}.zip", spec.binary));
        // A Lambda deployment package: the binary as `bootstrap`, deflated (cargo lambda's format).
        let status = std::process::Command::new(&args.python)
            .args([
                "-c",
                "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[1], 'bootstrap')",
            ])
            .arg(&binary)
            .arg(&zip)
            .status()?;
        if !status.success() {
            return Err(format!("zipping {} failed", binary.display()).into());
        }
        out.push((spec.binary.clone(), stripped, std::fs::metadata(&zip)?.len()));
    }
    Ok(out)
}

/// Step 2: DynamoDB calls and capacity per canvases request, through the counting proxy.
async fn dynamodb_calls(
    args: &Args,
    setup: &Setup,
    dynamodb: &str,
) -> Result<(Vec<DynamoRow>, Vec<String>, Vec<String>), BoxError> {
    let proxy = proxy::CountingProxy::start(dynamodb).await?;
    let sandbox = Sandbox::start(&setup.spec(args, "canvases", Some(&proxy.endpoint))).await?;
    let init_calls: Vec<String> = proxy.take().into_iter().map(|c| format!("{} ({})", c.operation, c.status)).collect();
    let auth = setup.auth();
    let ev = &setup.events;
    let mut rows = Vec::new();
    let mut record = |request: &str, status: u16, calls: Vec<proxy::Call>, max_calls_seen: usize| {
        rows.push(DynamoRow {
            request: request.to_owned(),
            status,
            capacity: calls.iter().map(|c| c.capacity).sum(),
            calls: calls.iter().map(|c| c.operation.clone()).collect(),
            min_calls: 1,
            max_calls_seen: max_calls_seen.max(calls.len()),
        });
    };
    let json_headers = [("authorization", auth.as_str()), ("content-type", "application/json")];

    // Seeds: 25 canvases (a full page of 20 and a second page), each created through the function.
    let mut ids = Vec::new();
    let (mut first_create, mut max_create) = (Vec::new(), 0);
    for i in 0..25 {
        let event = ev.event("POST /canvases", "/canvases", &[], &json_headers, Some(&canvas_body(i)))?;
        let (_, payload) = sandbox.invoke(&event).await?;
        let body = check("create canvas", &payload, 201)?;
        ids.push(body["id"].as_str().ok_or("created canvas has an id")?.to_owned());
        let calls = proxy.take();
        max_create = max_create.max(calls.len());
        if i == 0 {
            first_create = calls;
        }
    }
    record("create canvas (POST /canvases, ~1 KB)", 201, first_create, max_create);

    let auth_only = [("authorization", auth.as_str())];
    let get_path = format!("/canvases/{}", ids[1]);
    let missing_path = format!("/canvases/{}", uuid::Uuid::now_v7());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("get canvas (GET /canvases/{id})", ev.event("GET /canvases/{id}", &get_path, &[], &auth_only, None)?, 200),
        ("get missing canvas (404)", ev.event("GET /canvases/{id}", &missing_path, &[], &auth_only, None)?, 404),
        (
            "list page 1 (GET /canvases, 20 items)",
            ev.event("GET /canvases", "/canvases", &[("limit", "20")], &auth_only, None)?,
            200,
        ),
    ];
    let mut cursor = None;
    for (label, event, expected) in cases {
        let (_, payload) = sandbox.invoke(&event).await?;
        let body = check(label, &payload, expected)?;
        if label.starts_with("list page 1") {
            cursor = body["next_cursor"].as_str().map(str::to_owned);
            let n = body["items"].as_array().map_or(0, Vec::len);
            if n != 20 || cursor.is_none() {
                return Err(format!("list page 1: expected 20 items and a cursor, got {n}").into());
            }
        }
        record(label, expected, proxy.take(), 0);
    }
    let cursor = cursor.ok_or("page 1 has a cursor")?;
    let event = ev.event("GET /canvases", "/canvases", &[("limit", "20"), ("cursor", &cursor)], &auth_only, None)?;
    let (_, payload) = sandbox.invoke(&event).await?;
    check("list page 2", &payload, 200)?;
    record("list page 2 (cursor, 5 items)", 200, proxy.take(), 0);

    let if_match_1 = [("authorization", auth.as_str()), ("content-type", "application/json"), ("if-match", "\"1\"")];
    let patch = json!({"name": "Renamed canvas"}).to_string();
    let writes: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "update canvas (PATCH, If-Match)",
            ev.event("PATCH /canvases/{id}", &get_path, &[], &if_match_1, Some(&patch))?,
            200,
        ),
        (
            "update with stale If-Match (412)",
            ev.event("PATCH /canvases/{id}", &get_path, &[], &if_match_1, Some(&patch))?,
            412,
        ),
        (
            "delete canvas (DELETE)",
            ev.event("DELETE /canvases/{id}", &format!("/canvases/{}", ids[0]), &[], &auth_only, None)?,
            204,
        ),
        (
            "delete missing canvas (404)",
            ev.event("DELETE /canvases/{id}", &format!("/canvases/{}", ids[0]), &[], &auth_only, None)?,
            404,
        ),
    ];
    for (label, event, expected) in writes {
        let (_, payload) = sandbox.invoke(&event).await?;
        check(label, &payload, expected)?;
        record(label, expected, proxy.take(), 0);
    }
    sandbox.stop().await;
    proxy.stop();
    // ids[0] is deleted; the rest stay for the latency rounds.
    Ok((rows, init_calls, ids[1..].to_vec()))
}

/// The round trip of DynamoDB Local itself for the benchmark's two reads (raw HTTP on a
/// keep-alive connection, no SDK): the part of an invocation neither runtime can shave. The
/// first `warm_up` calls also warm DynamoDB Local's JIT for the rounds that follow.
async fn dynamodb_round_trip(
    dynamodb: &str,
    user: &str,
    id: &str,
    warm_up: usize,
    samples: usize,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>), BoxError> {
    const AUTHORIZATION: &str =
        "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0";
    let client = reqwest::Client::new();
    let get = json!({
        "TableName": "CanvasesTable",
        "Key": {"user_id": {"S": user}, "id": {"S": id}},
        "ConsistentRead": true,
    });
    let query = json!({
        "TableName": "CanvasesTable",
        "IndexName": "user_id-updated_at-index",
        "KeyConditionExpression": "#uid = :uid",
        "ExpressionAttributeNames": {"#uid": "user_id"},
        "ExpressionAttributeValues": {":uid": {"S": user}},
        "ScanIndexForward": false,
        "Limit": 21,
    });
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warm_up + samples {
        for (operation, body) in [("GetItem", &get), ("Query", &query)] {
            let started = std::time::Instant::now();
            let answer = client
                .post(dynamodb)
                .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
                .header("content-type", "application/x-amz-json-1.0")
                .header("authorization", AUTHORIZATION)
                .body(body.to_string())
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            let took = ms(started.elapsed());
            if answer.is_empty() {
                return Err(format!("{operation}: empty answer").into());
            }
            if i >= warm_up {
                if operation == "GetItem" {
                    out.0.push(took)
                } else {
                    out.1.push(took)
                }
            }
        }
    }
    // A new connection as a cold start leaves it: `DescribeEndpoints` first (the warm-up), then
    // the first real request, timed.
    for _ in 0..20 {
        let fresh = reqwest::Client::new();
        let mut first_get = 0.0;
        for (operation, body) in [("DescribeEndpoints", json!({})), ("GetItem", get.clone())] {
            let started = std::time::Instant::now();
            fresh
                .post(dynamodb)
                .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
                .header("content-type", "application/x-amz-json-1.0")
                .header("authorization", AUTHORIZATION)
                .body(body.to_string())
                .send()
                .await?
                .bytes()
                .await?;
            first_get = ms(started.elapsed());
        }
        out.2.push(first_get);
    }
    Ok(out)
}

/// A DynamoDB endpoint that answers every call at once (`{"Endpoints": []}`, which is what the
/// warm-up's `DescribeEndpoints` asks for).
async fn instant_dynamodb() -> Result<String, BoxError> {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|| async { ([("content-type", "application/x-amz-json-1.0")], r#"{"Endpoints":[]}"#) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(endpoint)
}

/// What one round does with one kind of process.
enum Kind {
    /// Start, invoke `event` once (first) and `warm` more times, expecting `status`; record
    /// under `key`.
    Invoke { spec: Spec, init_key: String, key: String, event: Vec<u8>, status: Option<u16> },
    /// Start and stop: init only.
    InitOnly { spec: Spec, init_key: String },
}

/// Step 3: init, first and warm invocations, interleaved round by round so that a change
/// of background load touches every kind alike.
async fn latency_rounds(args: &Args, setup: &Setup, ids: &[String], results: &mut Results) -> Result<(), BoxError> {
    let auth = setup.auth();
    let auth_only = [("authorization", auth.as_str())];
    let ev = &setup.events;
    let get = ev.event("GET /canvases/{id}", &format!("/canvases/{}", ids[2]), &[], &auth_only, None)?;
    let list = ev.event("GET /canvases", "/canvases", &[("limit", "20")], &auth_only, None)?;
    let mut kinds = vec![Kind::Invoke {
        spec: setup.hello(args),
        init_key: HELLO.into(),
        key: HELLO.into(),
        event: get.clone(),
        status: None,
    }];
    for (label, event) in [("get", &get), ("list", &list)] {
        kinds.push(Kind::Invoke {
            spec: setup.spec(args, "canvases", None),
            init_key: "canvases".into(),
            key: format!("canvases / {label}"),
            event: event.clone(),
            status: Some(200),
        });
        kinds.push(Kind::Invoke {
            spec: setup.peer(args),
            init_key: PEER.into(),
            key: format!("{PEER} / {label}"),
            event: event.clone(),
            status: Some(200),
        });
    }
    // The same canvases binary against a stub DynamoDB that answers at once: the init it
    // would have with a DynamoDB round trip of ~0 (its own cost, without DynamoDB Local's).
    let stub = instant_dynamodb().await?;
    kinds.push(Kind::InitOnly { spec: setup.spec(args, "canvases", Some(&stub)), init_key: INSTANT.into() });
    for spec in &setup.template.functions {
        if spec.binary != "canvases" {
            kinds.push(Kind::InitOnly { spec: setup.spec(args, &spec.binary, None), init_key: spec.binary.clone() });
        }
    }
    for round in 0..args.runs {
        eprint!("\r  round {}/{}", round + 1, args.runs);
        for kind in &kinds {
            match kind {
                Kind::InitOnly { spec, init_key } => {
                    let sandbox = Sandbox::start(spec).await?;
                    results.init.entry(init_key.clone()).or_default().push(ms(sandbox.init));
                    sandbox.stop().await;
                }
                Kind::Invoke { spec, init_key, key, event, status } => {
                    let sandbox = Sandbox::start(spec).await?;
                    results.init.entry(init_key.clone()).or_default().push(ms(sandbox.init));
                    for i in 0..=args.warm {
                        let (took, payload) = sandbox.invoke(event).await?;
                        if let Some(expected) = status {
                            check(key, &payload, *expected)?;
                        }
                        let samples = if i == 0 { &mut results.first } else { &mut results.warm };
                        samples.entry(key.clone()).or_default().push(ms(took));
                    }
                    sandbox.stop().await;
                }
            }
        }
    }
    eprintln!();
    Ok(())
}

/// Step 4: handler overhead, in process, from the release probe.
async fn overhead(args: &Args) -> Result<Value, BoxError> {
    let out = tokio::process::Command::new(args.release_dir.join("bench-overhead"))
        .arg("events")
        .arg(args.overhead_iterations.to_string())
        .stdout(std::process::Stdio::null())
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("bench-overhead failed: {stderr}").into());
    }
    let last = stderr.lines().last().ok_or("bench-overhead printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

/// The canvases cold start phase by phase (`bench-overhead --init-phases`), in fresh processes
/// with the function's Lambda environment: µs per phase, per run.
async fn init_phases(args: &Args, setup: &Setup) -> Result<BTreeMap<String, Vec<f64>>, BoxError> {
    let spec = setup.spec(args, "canvases", None);
    let mut env = emulator::lambda_environment(&spec, "127.0.0.1:9", "");
    // What `shared::runtime` does first at a cold start (`prefer_ca_bundle_file`), which the
    // probe, calling the pieces one by one, does not.
    if let Some(bundle) = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .into_iter()
    .find(|f| Path::new(f).is_file())
    {
        env.insert("SSL_CERT_FILE".into(), bundle.into());
    }
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..args.runs {
        let out = tokio::process::Command::new(args.release_dir.join("bench-overhead"))
            .arg("--init-phases")
            .env_clear()
            .envs(&env)
            .stdout(std::process::Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: Value = serde_json::from_str(stderr.lines().last().ok_or("--init-phases printed nothing")?)?;
        for (phase, us) in last.as_object().ok_or("--init-phases prints an object")? {
            phases.entry(phase.clone()).or_default().push(us.as_f64().unwrap_or(f64::NAN));
        }
    }
    Ok(phases)
}

/// The first `GET /canvases/{id}` of a fresh, warmed-up process against an instant fake
/// DynamoDB, and the warm ones after it (`bench-overhead --first-call`), in µs per process.
async fn first_call(args: &Args) -> Result<BTreeMap<String, Vec<f64>>, BoxError> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..args.runs {
        let run = tokio::process::Command::new(args.release_dir.join("bench-overhead"))
            .args(["--first-call", "events"])
            .stdout(std::process::Stdio::null())
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last: Value = serde_json::from_str(stderr.lines().last().ok_or("--first-call printed nothing")?)?;
        for key in ["first_us", "warm_us"] {
            out.entry(key.into()).or_default().push(last[key].as_f64().unwrap_or(f64::NAN));
        }
    }
    Ok(out)
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Step 5: the local gateway (`local-stack up`, as `infra/run` builds it) under wrk: list and get.
async fn throughput(args: &Args) -> Result<Vec<load::LoadResult>, BoxError> {
    let port = free_port()?;
    let dynamodb_port = free_port()?;
    let mut child = tokio::process::Command::new(&args.local_stack)
        .args(["up", "--port", &port.to_string(), "--dynamodb-port", &dynamodb_port.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.local_stack))?;
    let result = async {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err::<_, BoxError>("the local gateway did not answer /health within 180 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let user = format!("bench-load-{}", uuid::Uuid::now_v7().simple());
        let token: Value =
            client.post(format!("{base}/dev/token")).json(&json!({"user": user})).send().await?.json().await?;
        let token = token["token"].as_str().ok_or("POST /dev/token answered no token")?.to_owned();
        let mut id = String::new();
        for i in 0..25 {
            let created: Value = client
                .post(format!("{base}/canvases"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(canvas_body(i))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            id = created["id"].as_str().unwrap_or_default().to_owned();
        }
        let list = format!("{base}/canvases?limit=20");
        let get = format!("{base}/canvases/{id}");
        // Warms the JIT of DynamoDB Local and the gateway's connection pool.
        load::wrk(&args.wrk, "warm-up", &list, &token, args.connections, Duration::from_secs(3)).await?;
        let secs = Duration::from_secs(args.load_seconds);
        Ok(vec![
            load::wrk(&args.wrk, "GET /canvases?limit=20", &list, &token, args.connections, secs).await?,
            load::wrk(&args.wrk, "GET /canvases/{id}", &get, &token, args.connections, secs).await?,
        ])
    }
    .await;
    // SIGTERM lets local-stack stop DynamoDB Local and the S3 server it started.
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
    result
}

async fn run() -> Result<(), BoxError> {
    let args = Args::parse()?;
    let dynamodb = std::env::var("DYNAMODB_ENDPOINT")
        .map_err(|_| "DYNAMODB_ENDPOINT is not set: run ./infra/bench (it starts DynamoDB Local)")?;
    let s3 = std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let setup = Setup::new(&dynamodb, &s3)?;
    let mut results = Results { runs: args.runs, warm_per_process: args.warm, ..Default::default() };

    eprintln!("==> sizes");
    results.sizes = sizes(&args, &setup)?;
    eprintln!("==> DynamoDB calls and capacity per request (user {})", setup.user);
    let (rows, init_calls, ids) = dynamodb_calls(&args, &setup, &dynamodb).await?;
    results.dynamodb = rows;
    results.init_calls = init_calls;
    eprintln!("==> DynamoDB Local round trip (and JIT warm-up)");
    let (get_rtt, query_rtt, fresh_get) = dynamodb_round_trip(&dynamodb, &setup.user, &ids[2], 500, 200).await?;
    results.dynamodb_round_trip.insert("get".into(), get_rtt);
    results.dynamodb_round_trip.insert("list".into(), query_rtt);
    results.dynamodb_round_trip.insert("get, first on a new connection".into(), fresh_get);
    eprintln!("==> init, first and warm invocations: {} rounds", args.runs);
    latency_rounds(&args, &setup, &ids, &mut results).await?;
    eprintln!("==> canvases init, phase by phase ({} processes)", args.runs);
    results.init_phases = init_phases(&args, &setup).await?;
    eprintln!("==> first call in process ({} processes)", args.runs);
    results.first_call = first_call(&args).await?;
    eprintln!("==> handler overhead ({} requests per case)", args.overhead_iterations);
    results.overhead = overhead(&args).await?;
    eprintln!("==> local gateway throughput ({} s per route, {} connections)", args.load_seconds, args.connections);
    results.load = throughput(&args).await?;

    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(args.out_dir.join("results.json"), serde_json::to_vec_pretty(&results)?)?;
    let report = report::Report::new(&results);
    println!("{}", report.table());
    println!("{}", report.notes());
    if let Some(chart) = &args.chart {
        std::fs::write(chart, report.chart_svg())?;
        eprintln!("chart: {}", chart.display());
    }
    if let Some(path) = &args.write {
        let chart_name = args.chart.as_deref().map(|c| relative(c, path));
        std::fs::write(path, report.markdown(&args.command, chart_name.as_deref()))?;
        eprintln!("written: {}", path.display());
    }
    Ok(())
}

/// `chart` as a link from the document at `doc` (both relative to the repository root).
fn relative(chart: &Path, doc: &Path) -> String {
    match doc.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => chart.strip_prefix(dir).unwrap_or(chart).display().to_string(),
        None => chart.display().to_string(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
