//! Canvases: a user's design documents. Thin handlers over the shared pipeline and store.

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{
    http::{self, json, json_versioned, no_content, Call, Route},
    item::{check_text, nullable, NewRecord},
    store::{Changes, Collection, HasId, UserStore},
    ApiError, ConfigError, Env, Function, Platform,
};

pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// The canvas document. With name and description it stays under DynamoDB's 400 KB item limit.
pub const DATA_MAX_BYTES: usize = 350 * 1024;
pub const BODY_MAX_BYTES: usize = DATA_MAX_BYTES + 16 * 1024;

const NOUN: &str = "canvas";

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    List,
    Get,
    Update,
    Delete,
}

/// The routes this function serves, exactly as `template.yaml` declares them.
pub const ROUTES: &[Route<Op>] = &[
    Route::private("POST /canvases", Op::Create),
    Route::private("GET /canvases", Op::List),
    Route::private("GET /canvases/{id}", Op::Get),
    Route::private("PATCH /canvases/{id}", Op::Update),
    Route::private("DELETE /canvases/{id}", Op::Delete),
];

/// A canvas as stored. `data` is kept as JSON text: no nesting-depth or number-precision
/// limits of DynamoDB maps apply to the client's document.
#[derive(Serialize, Deserialize)]
struct CanvasRecord {
    id: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    data: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

impl HasId for CanvasRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

/// A canvas as the API returns it.
#[derive(Serialize)]
struct CanvasView {
    id: String,
    name: String,
    description: Option<String>,
    data: Box<RawValue>,
    created_at: String,
    updated_at: String,
    version: u64,
}

impl TryFrom<CanvasRecord> for CanvasView {
    type Error = ApiError;

    fn try_from(r: CanvasRecord) -> Result<Self, ApiError> {
        let data = RawValue::from_string(r.data).map_err(|e| ApiError::Internal(format!("stored canvas data: {e}")))?;
        Ok(Self {
            id: r.id,
            name: r.name,
            description: r.description,
            data,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

/// A list entry: what the list index projects (no `data`, so pages stay small).
#[derive(Serialize, Deserialize)]
struct CanvasSummary {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCanvas {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// PATCH body: absent fields are kept, `description: null` clears the description.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateCanvas {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    data: Option<Option<Box<RawValue>>>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    check_text("name", name, 1, NAME_MAX_CHARS)
}

fn check_description(description: &str) -> Result<(), ApiError> {
    check_text("description", description, 0, DESCRIPTION_MAX_CHARS)
}

fn check_data(data: &RawValue) -> Result<String, ApiError> {
    let text = data.get();
    if !text.starts_with('{') {
        return Err(ApiError::bad_request("data must be a JSON object"));
    }
    if text.len() > DATA_MAX_BYTES {
        return Err(ApiError::PayloadTooLarge(format!("data is over {DATA_MAX_BYTES} bytes")));
    }
    Ok(text.to_owned())
}

pub struct Canvases {
    platform: Platform,
    store: UserStore,
}

impl Function for Canvases {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection {
            table: env.required("CANVASES_TABLE")?,
            noun: NOUN,
            scope: "canvases",
            list_index: "user_id-updated_at-index",
            list_sort_key: "updated_at",
        };
        let store = UserStore::new(platform.dynamodb.clone(), collection, platform.cursors.clone());
        Ok(Self { platform: platform.clone(), store })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Create => self.create(call).await,
                Op::List => self.list(call).await,
                Op::Get => self.get(call).await,
                Op::Update => self.update(call).await,
                Op::Delete => self.delete(call).await,
            }
        })
        .await
    }
}

impl Canvases {
    async fn create(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let body: CreateCanvas = call.json(BODY_MAX_BYTES)?;
        check_name(&body.name)?;
        if let Some(d) = &body.description {
            check_description(d)?;
        }
        let data = match &body.data {
            Some(raw) => check_data(raw)?,
            None => "{}".to_owned(),
        };
        let new = NewRecord::now();
        let record = CanvasRecord {
            id: new.id,
            name: body.name,
            description: body.description,
            data,
            created_at: new.created_at,
            updated_at: new.updated_at,
            version: new.version,
        };
        self.store.create(call.identity()?, &record).await?;
        let location = format!("/canvases/{}", record.id);
        let version = record.version;
        let mut response = json_versioned(StatusCode::CREATED, &CanvasView::try_from(record)?, version)?;
        response.headers_mut().insert("location", location.parse().map_err(|_| ApiError::Internal("location".into()))?);
        Ok(response)
    }

    async fn list(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let page = self.store.list::<CanvasSummary>(call.identity()?, &call.page()?).await?;
        json(StatusCode::OK, &page)
    }

    async fn get(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let id = call.id("id", NOUN)?;
        let record: CanvasRecord = self.store.get(call.identity()?, &id).await?;
        let version = record.version;
        json_versioned(StatusCode::OK, &CanvasView::try_from(record)?, version)
    }

    async fn update(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let id = call.id("id", NOUN)?;
        let expect = call.expect()?;
        let body: UpdateCanvas = call.json(BODY_MAX_BYTES)?;
        let mut changes = Changes::default();
        match body.name {
            Some(None) => return Err(ApiError::bad_request("name cannot be null")),
            Some(Some(name)) => {
                check_name(&name)?;
                changes = changes.set("name", &name)?;
            }
            None => {}
        }
        match body.description {
            Some(None) => changes = changes.remove("description"),
            Some(Some(description)) => {
                check_description(&description)?;
                changes = changes.set("description", &description)?;
            }
            None => {}
        }
        match body.data {
            Some(None) => return Err(ApiError::bad_request("data cannot be null")),
            Some(Some(raw)) => changes = changes.set("data", &check_data(&raw)?)?,
            None => {}
        }
        if changes.is_empty() {
            return Err(ApiError::bad_request("nothing to update: send name, description or data"));
        }
        let record: CanvasRecord = self.store.update(call.identity()?, &id, expect, changes).await?;
        let version = record.version;
        json_versioned(StatusCode::OK, &CanvasView::try_from(record)?, version)
    }

    async fn delete(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let id = call.id("id", NOUN)?;
        self.store.delete(call.identity()?, &id, call.expect()?).await?;
        Ok(no_content())
    }
}
