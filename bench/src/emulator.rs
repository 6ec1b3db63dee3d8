//! A local Lambda Runtime API (the 2018-06-01 interface a custom runtime polls), one per
//! process under test, and the process itself: a "sandbox".
//!
//! - `GET /2018-06-01/runtime/invocation/next` long-polls for the next event; its first call
//!   marks the end of init;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `/error` complete an invocation;
//! - `POST /2018-06-01/runtime/init/error` reports a failed init.
//!
//! An invocation's duration runs from the moment the event is handed to the waiting `next`
//! call to the moment its response arrives, as Lambda measures it.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::BoxError;

type Outcome = Result<(Instant, Vec<u8>), String>;

struct Runtime {
    function_name: String,
    events: tokio::sync::Mutex<mpsc::Receiver<(String, Vec<u8>)>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// The first `next` call (the end of init), or the init error.
    ready: watch::Sender<Option<Result<Instant, String>>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    let now = Instant::now();
    rt.ready.send_if_modified(|ready| {
        if ready.is_none() {
            *ready = Some(Ok(now));
            true
        } else {
            false
        }
    });
    let Some((id, body)) = rt.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Vec::new());
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header-safe value"));
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.as_millis().to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:us-east-1:123456789012:function:{}", rt.function_name),
    );
    set("lambda-runtime-trace-id", "Root=1-6744c1a2-3f0c2b1d4e5f60718293a4b5;Parent=53995c3f42cd8ad8;Sampled=0".into());
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, body)
}

async fn response(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    if let Some(tx) = rt.pending.lock().expect("not poisoned").remove(&id) {
        let _ = tx.send(Ok((now, body.to_vec())));
    }
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    if let Some(tx) = rt.pending.lock().expect("not poisoned").remove(&id) {
        let _ = tx.send(Err(String::from_utf8_lossy(&body).into_owned()));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    let message = String::from_utf8_lossy(&body).into_owned();
    rt.ready.send_modify(|ready| *ready = Some(Err(message)));
    StatusCode::ACCEPTED
}

/// What a sandbox runs: a program, its arguments and its configuration.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `AWS_EXECUTION_ENV` as Lambda sets it for this runtime.
    pub execution_env: &'static str,
}

/// One process under test with its own Runtime API.
pub struct Sandbox {
    child: tokio::process::Child,
    runtime: Arc<Runtime>,
    events: mpsc::Sender<(String, Vec<u8>)>,
    server: tokio::task::JoinHandle<()>,
    pub init: Duration,
    name: String,
}

const INIT_TIMEOUT: Duration = Duration::from_secs(60);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment Lambda gives every function, besides the function's own variables.
pub fn lambda_environment(spec: &Spec, api: &str, task_root: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("TZ", ":UTC"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        // Lambda hands the execution role's session credentials in the environment.
        ("AWS_ACCESS_KEY_ID", "ASIABENCHMARKLOCAL00"),
        ("AWS_SECRET_ACCESS_KEY", "benchmark/local/secret/key/0000000000000"),
        ("AWS_SESSION_TOKEN", "benchmark-local-session-token"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]0123456789abcdef"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    env.insert("AWS_EXECUTION_ENV".into(), spec.execution_env.into());
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), spec.name.clone());
    env.insert("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{}", spec.name));
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.to_owned());
    env.insert("LAMBDA_TASK_ROOT".into(), task_root.to_owned());
    env.insert("_HANDLER".into(), "bootstrap".into());
    env.extend(spec.env.clone());
    env
}

impl Sandbox {
    /// Starts the Runtime API, then the process, and waits for its first `next` call.
    pub async fn start(spec: &Spec) -> Result<Self, BoxError> {
        let (events, rx) = mpsc::channel(1);
        let runtime = Arc::new(Runtime {
            function_name: spec.name.clone(),
            events: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(HashMap::new()),
            ready: watch::channel(None).0,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let task_root = Path::new(&spec.program).parent().map(|p| p.display().to_string()).unwrap_or_default();
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .envs(lambda_environment(spec, &api, &task_root))
            // Logs go where Lambda's log collector would read them; here, nowhere.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut ready = runtime.ready.subscribe();
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", spec.program))?;
        let outcome = tokio::select! {
            changed = tokio::time::timeout(INIT_TIMEOUT, ready.wait_for(Option::is_some)) => match changed {
                Ok(Ok(value)) => value.clone().expect("waited for some"),
                _ => Err(format!("no first `next` call within {INIT_TIMEOUT:?}")),
            },
            status = child.wait() => Err(format!("exited during init ({status:?})")),
        };
        let init = match outcome {
            Ok(at) => at.duration_since(spawned),
            Err(e) => {
                let _ = child.start_kill();
                let stderr = match child.stderr.take() {
                    Some(mut s) => {
                        let mut text = String::new();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut text),
                        )
                        .await;
                        text
                    }
                    None => String::new(),
                };
                server.abort();
                return Err(format!("{}: init failed: {e}\n{}", spec.name, stderr.trim()).into());
            }
        };
        if let Some(mut stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            });
        }
        Ok(Self { child, runtime, events, server, init, name: spec.name.clone() })
    }

    /// Delivers one event and waits for its response: (duration, response payload).
    pub async fn invoke(&self, event: &[u8]) -> Result<(Duration, Vec<u8>), BoxError> {
        let id = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = oneshot::channel();
        self.runtime.pending.lock().expect("not poisoned").insert(id.clone(), tx);
        let sent = Instant::now();
        self.events.send((id, event.to_vec())).await.map_err(|_| format!("{}: runtime API closed", self.name))?;
        match tokio::time::timeout(INVOKE_TIMEOUT, rx).await {
            Ok(Ok(Ok((at, body)))) => Ok((at.duration_since(sent), body)),
            Ok(Ok(Err(error))) => Err(format!("{}: invocation error: {error}", self.name).into()),
            Ok(Err(_)) => Err(format!("{}: invocation dropped", self.name).into()),
            Err(_) => Err(format!("{}: no response within {INVOKE_TIMEOUT:?}", self.name).into()),
        }
    }

    /// Ends the process (as Lambda ends an idle sandbox) and its Runtime API.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.server.abort();
    }
}
