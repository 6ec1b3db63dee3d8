//! The user's ComfyUI workflows and the state of their runs. Run transitions are conditional
//! writes on the stored state: pausing a paused run is a 409, never a silent overwrite, and one
//! user's runs live in that user's partition only.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{
    access::{Read, Update},
    http::{json, ItemId, JsonBody, Noun, RequestBody},
    item::{json_document, new_id, nullable, stored_json, NewRecord, Text, Timestamp},
    resource::{self, Resource, Stores},
    store::{Changes, Collection, Expect, HasId, UserStore},
    teams::Authorized,
    ApiError, Area, ConfigError, Env, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub const NAME_MAX_CHARS: usize = 200;
/// With the largest results, a workflow stays under DynamoDB's 400 KB item limit.
pub const GRAPH_MAX_BYTES: usize = 300 * 1024;
pub const RESULTS_MAX_BYTES: usize = 64 * 1024;

type Name = Text<1, NAME_MAX_CHARS>;

#[derive(Clone, Copy, Debug)]
enum Transition {
    Start,
    Pause,
    Resume,
    Complete,
    Reset,
}

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
#[derive(Serialize, ToSchema)]
pub struct RunView {
    workflow_id: String,
    /// idle, running, paused or completed
    status: String,
    run_id: Option<String>,
    started_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResultsView {
    workflow_id: String,
    run_id: Option<String>,
    status: String,
    #[schema(value_type = Vec<Object>)]
    results: Box<RawValue>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowView {
    id: String,
    name: String,
    /// The ComfyUI graph, as stored.
    #[schema(value_type = Object)]
    graph: Box<RawValue>,
    run: RunView,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WorkflowSummary {
    id: String,
    name: String,
    run_status: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "txt2img", "graph": {"3": {"class_type": "KSampler", "inputs": {"seed": 42}}}}))]
pub struct CreateWorkflow {
    name: Name,
    /// The ComfyUI graph: a JSON object of at most 300 KiB.
    #[schema(value_type = Object)]
    graph: Box<RawValue>,
}

impl RequestBody for CreateWorkflow {
    const MAX_BYTES: usize = GRAPH_MAX_BYTES + 16 * 1024;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "txt2img (sdxl)"}))]
pub struct UpdateWorkflow {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Name, required = false)]
    name: Option<Option<Name>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Object, required = false)]
    graph: Option<Option<Box<RawValue>>>,
}

impl RequestBody for UpdateWorkflow {
    const MAX_BYTES: usize = CreateWorkflow::MAX_BYTES;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"results": [{"filename": "fox.png"}]}))]
pub struct CompleteRun {
    /// The run's outputs: a JSON array of objects, at most 64 KiB.
    #[schema(value_type = Vec<Object>)]
    results: Box<RawValue>,
}

impl RequestBody for CompleteRun {
    const MAX_BYTES: usize = RESULTS_MAX_BYTES + 1024;
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

impl Noun for Workflow {
    const NOUN: &'static str = "workflow";
}

impl Resource for Workflow {
    const PATH: &'static str = "/workflows";
    type Create = CreateWorkflow;
    type Summary = WorkflowSummary;
    type Update = UpdateWorkflow;
    type View = WorkflowView;

    fn create(body: CreateWorkflow, new: NewRecord) -> Result<Self, ApiError> {
        Ok(Self {
            id: new.id,
            name: body.name.into_string(),
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
        Changes::default().patch_required("name", body.name, |name| Ok(name.into_string()))?.patch_required(
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
    store: UserStore,
}

impl Stores<Workflow> for Workflows {
    fn store(&self) -> &UserStore {
        &self.store
    }
}

impl Area for Workflows {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection::by_updated_at(env.required("WORKFLOWS_TABLE")?, Workflow::NOUN, "workflows");
        Ok(Self { store: platform.store(collection)? })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        resource::personal_and_project(|| {
            resource::routes::<Workflow, Self>()
                .routes(routes!(status))
                .routes(routes!(results))
                .routes(routes!(start))
                .routes(routes!(pause))
                .routes(routes!(resume))
                .routes(routes!(complete))
                .routes(routes!(reset))
        })
    }
}

type Caller = (State<Arc<Workflows>>, Authorized<Update>, ItemId<Workflow>);

/// The state of the workflow's run.
#[utoipa::path(get, path = "/workflows/{id}/run", tag = "workflows", operation_id = "get_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's state", body = RunView)))]
async fn status(
    State(area): State<Arc<Workflows>>,
    who: Authorized<Read>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    let workflow: Workflow = area.store.get(&who, &id).await?;
    json(StatusCode::OK, &workflow.run_view())
}

/// The results of the last completed run (an empty array before).
#[utoipa::path(get, path = "/workflows/{id}/run/results", tag = "workflows", operation_id = "get_run_results",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's results", body = ResultsView)))]
async fn results(
    State(area): State<Arc<Workflows>>,
    who: Authorized<Read>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    let workflow: Workflow = area.store.get(&who, &id).await?;
    let results = stored_json("results", workflow.run_results.clone().unwrap_or_else(|| "[]".to_owned()))?;
    json(
        StatusCode::OK,
        &ResultsView { workflow_id: workflow.id, run_id: workflow.run_id, status: workflow.run_status, results },
    )
}

/// Starts a run (from idle or completed).
#[utoipa::path(post, path = "/workflows/{id}/run/start", tag = "workflows", operation_id = "start_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's new state", body = RunView)))]
async fn start(
    area: State<Arc<Workflows>>,
    who: Authorized<Update>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    transition((area, who, id), Transition::Start, None).await
}

/// Pauses a running run.
#[utoipa::path(post, path = "/workflows/{id}/run/pause", tag = "workflows", operation_id = "pause_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's new state", body = RunView)))]
async fn pause(
    area: State<Arc<Workflows>>,
    who: Authorized<Update>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    transition((area, who, id), Transition::Pause, None).await
}

/// Resumes a paused run.
#[utoipa::path(post, path = "/workflows/{id}/run/resume", tag = "workflows", operation_id = "resume_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's new state", body = RunView)))]
async fn resume(
    area: State<Arc<Workflows>>,
    who: Authorized<Update>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    transition((area, who, id), Transition::Resume, None).await
}

/// Completes a running run with its results.
#[utoipa::path(post, path = "/workflows/{id}/run/complete", tag = "workflows", operation_id = "complete_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    request_body = CompleteRun,
    responses((status = 200, description = "The run's new state", body = RunView)))]
async fn complete(
    area: State<Arc<Workflows>>,
    who: Authorized<Update>,
    id: ItemId<Workflow>,
    JsonBody(body): JsonBody<CompleteRun>,
) -> Result<Response, ApiError> {
    transition((area, who, id), Transition::Complete, Some(body)).await
}

/// Resets the run to idle, dropping its results.
#[utoipa::path(post, path = "/workflows/{id}/run/reset", tag = "workflows", operation_id = "reset_run",
    params(("id" = Uuid, Path, description = "The workflow's id")),
    responses((status = 200, description = "The run's new state", body = RunView)))]
async fn reset(
    area: State<Arc<Workflows>>,
    who: Authorized<Update>,
    id: ItemId<Workflow>,
) -> Result<Response, ApiError> {
    transition((area, who, id), Transition::Reset, None).await
}

/// One conditional write: the transition applies only from the states that allow it.
async fn transition(
    (State(area), who, id): Caller,
    transition: Transition,
    completion: Option<CompleteRun>,
) -> Result<Response, ApiError> {
    use state::*;
    let now = Timestamp::now().into_string();
    let (from, to, verb): (&[&str], &str, &str) = match transition {
        Transition::Start => (&[IDLE, COMPLETED], RUNNING, "start"),
        Transition::Pause => (&[RUNNING], PAUSED, "pause"),
        Transition::Resume => (&[PAUSED], RUNNING, "resume"),
        Transition::Complete => (&[RUNNING], COMPLETED, "complete"),
        Transition::Reset => (&[RUNNING, PAUSED, COMPLETED], IDLE, "reset"),
    };
    let mut changes = Changes::default().set(RUN_STATUS, &to)?.set("run_updated_at", &now)?;
    changes = match (transition, completion) {
        (Transition::Start, _) => changes.set("run_id", &new_id())?.set("run_started_at", &now)?.remove("run_results"),
        (Transition::Complete, Some(body)) => {
            let results = body.results.get();
            let items: Vec<&RawValue> = serde_json::from_str(results)
                .map_err(|_| ApiError::bad_request("results must be a JSON array of objects"))?;
            if let Some(at) = items.iter().position(|item| !item.get().starts_with('{')) {
                return Err(ApiError::bad_request(format!("results[{at}] must be a JSON object")));
            }
            if results.len() > RESULTS_MAX_BYTES {
                return Err(ApiError::PayloadTooLarge(format!("results are over {RESULTS_MAX_BYTES} bytes")));
            }
            changes.set("run_results", &results)?
        }
        (Transition::Reset, _) => changes.remove("run_id").remove("run_started_at").remove("run_results"),
        _ => changes,
    };
    let changes = changes.only_if(RUN_STATUS, from, format!("cannot {verb} the run: it is not {}", from.join(" or ")));
    let workflow: Workflow = area.store.update(&who, &id, Expect::Exists, changes).await?;
    json(StatusCode::OK, &workflow.run_view())
}
