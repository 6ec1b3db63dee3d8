//! The user's ComfyUI workflows and the state of their runs. Run transitions are conditional
//! writes on the stored state: pausing a paused run is a 409, never a silent overwrite, and one
//! user's runs live in that user's partition only.

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{
    http::{self, json, Call, Route},
    item::{check_text, json_document, new_id, nullable, stored_json, NewRecord, Timestamp},
    resource::{self, Crud, Resource},
    store::{Changes, Collection, Expect, HasId, UserStore},
    ApiError, ConfigError, Env, Function, Platform,
};

pub const NAME_MAX_CHARS: usize = 200;
/// With the largest results, a workflow stays under DynamoDB's 400 KB item limit.
pub const GRAPH_MAX_BYTES: usize = 300 * 1024;
pub const RESULTS_MAX_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Crud(Crud),
    Status,
    Results,
    Transition(Transition),
}

#[derive(Clone, Copy, Debug)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Complete,
    Reset,
}

pub const ROUTES: &[Route<Op>] = &[
    Route::private("POST /workflows", Op::Crud(Crud::Create)),
    Route::private("GET /workflows", Op::Crud(Crud::List)),
    Route::private("GET /workflows/{id}", Op::Crud(Crud::Get)),
    Route::private("PATCH /workflows/{id}", Op::Crud(Crud::Update)),
    Route::private("DELETE /workflows/{id}", Op::Crud(Crud::Delete)),
    Route::private("GET /workflows/{id}/run", Op::Status),
    Route::private("GET /workflows/{id}/run/results", Op::Results),
    Route::private("POST /workflows/{id}/run/start", Op::Transition(Transition::Start)),
    Route::private("POST /workflows/{id}/run/pause", Op::Transition(Transition::Pause)),
    Route::private("POST /workflows/{id}/run/resume", Op::Transition(Transition::Resume)),
    Route::private("POST /workflows/{id}/run/complete", Op::Transition(Transition::Complete)),
    Route::private("POST /workflows/{id}/run/reset", Op::Transition(Transition::Reset)),
];

mod state {
    pub const IDLE: &str = "idle";
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const COMPLETED: &str = "completed";
}

const RUN_STATUS: &str = "run_status";

#[derive(Serialize, Deserialize)]
pub struct Workflow {
    id: String,
    name: String,
    graph: String,
    run_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_results: Option<String>,
    created_at: String,
    updated_at: String,
    version: u64,
}

/// The state of a workflow's run, as the API shows it.
#[derive(Serialize)]
pub struct RunView {
    workflow_id: String,
    status: String,
    run_id: Option<String>,
    started_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Serialize)]
pub struct ResultsView {
    workflow_id: String,
    run_id: Option<String>,
    status: String,
    results: Box<RawValue>,
}

#[derive(Serialize)]
pub struct WorkflowView {
    id: String,
    name: String,
    graph: Box<RawValue>,
    run: RunView,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Serialize, Deserialize)]
pub struct WorkflowSummary {
    id: String,
    name: String,
    run_status: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    name: String,
    graph: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkflow {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    graph: Option<Option<Box<RawValue>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRun {
    results: Box<RawValue>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    check_text("name", name, 1, NAME_MAX_CHARS)
}

impl Workflow {
    fn run_view(&self) -> RunView {
        RunView {
            workflow_id: self.id.clone(),
            status: self.run_status.clone(),
            run_id: self.run_id.clone(),
            started_at: self.run_started_at.clone(),
            updated_at: self.run_updated_at.clone(),
        }
    }
}

impl HasId for Workflow {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Resource for Workflow {
    const NOUN: &'static str = "workflow";
    const PATH: &'static str = "/workflows";
    const BODY_MAX_BYTES: usize = GRAPH_MAX_BYTES + 16 * 1024;
    type Create = CreateWorkflow;
    type Summary = WorkflowSummary;
    type Update = UpdateWorkflow;
    type View = WorkflowView;

    fn create(body: CreateWorkflow, new: NewRecord) -> Result<Self, ApiError> {
        check_name(&body.name)?;
        Ok(Self {
            id: new.id,
            name: body.name,
            graph: json_document("graph", &body.graph, GRAPH_MAX_BYTES)?,
            run_status: state::IDLE.to_owned(),
            run_id: None,
            run_started_at: None,
            run_updated_at: None,
            run_results: None,
            created_at: new.created_at,
            updated_at: new.updated_at,
            version: new.version,
        })
    }

    fn changes(body: UpdateWorkflow) -> Result<Changes, ApiError> {
        Changes::default().patch_required("name", body.name, |name| check_name(&name).map(|()| name))?.patch_required(
            "graph",
            body.graph,
            |raw| json_document("graph", &raw, GRAPH_MAX_BYTES),
        )
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn view(self) -> Result<WorkflowView, ApiError> {
        Ok(WorkflowView {
            run: self.run_view(),
            graph: stored_json("graph", self.graph)?,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

pub struct Workflows {
    platform: Platform,
    store: UserStore,
}

impl Function for Workflows {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection::by_updated_at(env.required("WORKFLOWS_TABLE")?, Workflow::NOUN, "workflows");
        Ok(Self { platform: platform.clone(), store: platform.store(collection) })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Crud(op) => resource::crud::<Workflow>(&self.store, op, call).await,
                Op::Status => self.status(call).await,
                Op::Results => self.results(call).await,
                Op::Transition(t) => self.transition(call, t).await,
            }
        })
        .await
    }
}

impl Workflows {
    async fn load(&self, call: &Call) -> Result<Workflow, ApiError> {
        let id = call.id("id", Workflow::NOUN)?;
        self.store.get(call.identity()?, &id).await
    }

    async fn status(&self, call: Call) -> Result<Response<Body>, ApiError> {
        json(StatusCode::OK, &self.load(&call).await?.run_view())
    }

    async fn results(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let workflow = self.load(&call).await?;
        let results = stored_json("results", workflow.run_results.clone().unwrap_or_else(|| "[]".to_owned()))?;
        json(
            StatusCode::OK,
            &ResultsView { workflow_id: workflow.id, run_id: workflow.run_id, status: workflow.run_status, results },
        )
    }

    /// One conditional write: the transition applies only from the states that allow it.
    async fn transition(&self, call: Call, transition: Transition) -> Result<Response<Body>, ApiError> {
        use state::*;
        let id = call.id("id", Workflow::NOUN)?;
        let now = Timestamp::now().into_string();
        let (from, to, verb): (&[&str], &str, &str) = match transition {
            Transition::Start => (&[IDLE, COMPLETED], RUNNING, "start"),
            Transition::Pause => (&[RUNNING], PAUSED, "pause"),
            Transition::Resume => (&[PAUSED], RUNNING, "resume"),
            Transition::Complete => (&[RUNNING], COMPLETED, "complete"),
            Transition::Reset => (&[RUNNING, PAUSED, COMPLETED], IDLE, "reset"),
        };
        let mut changes = Changes::default().set(RUN_STATUS, &to)?.set("run_updated_at", &now)?;
        changes = match transition {
            Transition::Start => changes.set("run_id", &new_id())?.set("run_started_at", &now)?.remove("run_results"),
            Transition::Complete => {
                let body: CompleteRun = call.json(RESULTS_MAX_BYTES + 1024)?;
                let results = body.results.get();
                if !results.starts_with('[') {
                    return Err(ApiError::bad_request("results must be a JSON array"));
                }
                if results.len() > RESULTS_MAX_BYTES {
                    return Err(ApiError::PayloadTooLarge(format!("results are over {RESULTS_MAX_BYTES} bytes")));
                }
                changes.set("run_results", &results)?
            }
            Transition::Reset => changes.remove("run_id").remove("run_started_at").remove("run_results"),
            Transition::Pause | Transition::Resume => changes,
        };
        let changes =
            changes.only_if(RUN_STATUS, from, format!("cannot {verb} the run: it is not {}", from.join(" or ")));
        let workflow: Workflow = self.store.update(call.identity()?, &id, Expect::Exists, changes).await?;
        json(StatusCode::OK, &workflow.run_view())
    }
}
