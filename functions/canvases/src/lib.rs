//! Canvases: a user's design documents. The area only describes its record; the shared
//! pipeline, store and resource handlers do the rest.

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{
    http::{self, Route},
    item::{check_text, json_document, nullable, NewRecord},
    resource::{self, Crud, Resource},
    store::{Changes, Collection, HasId, UserStore},
    ApiError, ConfigError, Env, Function, Platform,
};

pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// The canvas document. With name and description it stays under DynamoDB's 400 KB item limit.
pub const DATA_MAX_BYTES: usize = 350 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Crud(Crud),
}

/// The routes this function serves, exactly as `template.yaml` declares them.
pub const ROUTES: &[Route<Op>] = &[
    Route::private("POST /canvases", Op::Crud(Crud::Create)),
    Route::private("GET /canvases", Op::Crud(Crud::List)),
    Route::private("GET /canvases/{id}", Op::Crud(Crud::Get)),
    Route::private("PATCH /canvases/{id}", Op::Crud(Crud::Update)),
    Route::private("DELETE /canvases/{id}", Op::Crud(Crud::Delete)),
];

/// A canvas as stored. `data` is kept as JSON text: no nesting-depth or number-precision
/// limits of DynamoDB maps apply to the client's document.
#[derive(Serialize, Deserialize)]
pub struct Canvas {
    id: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    data: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

/// A canvas as the API returns it.
#[derive(Serialize)]
pub struct CanvasView {
    id: String,
    name: String,
    description: Option<String>,
    data: Box<RawValue>,
    created_at: String,
    updated_at: String,
    version: u64,
}

/// A list entry: what the list index projects (no `data`, so pages stay small).
#[derive(Serialize, Deserialize)]
pub struct CanvasSummary {
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
pub struct CreateCanvas {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// PATCH body: absent fields are kept, `description: null` clears the description.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCanvas {
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

impl HasId for Canvas {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Resource for Canvas {
    const NOUN: &'static str = "canvas";
    const PATH: &'static str = "/canvases";
    const BODY_MAX_BYTES: usize = DATA_MAX_BYTES + 16 * 1024;
    type Create = CreateCanvas;
    type Summary = CanvasSummary;
    type Update = UpdateCanvas;
    type View = CanvasView;

    fn create(body: CreateCanvas, new: NewRecord) -> Result<Self, ApiError> {
        check_name(&body.name)?;
        if let Some(d) = &body.description {
            check_description(d)?;
        }
        let data = match &body.data {
            Some(raw) => json_document("data", raw, DATA_MAX_BYTES)?,
            None => "{}".to_owned(),
        };
        Ok(Self {
            id: new.id,
            name: body.name,
            description: body.description,
            data,
            created_at: new.created_at,
            updated_at: new.updated_at,
            version: new.version,
        })
    }

    fn changes(body: UpdateCanvas) -> Result<Changes, ApiError> {
        Changes::default()
            .patch_required("name", body.name, |name| check_name(&name).map(|()| name))?
            .patch_optional("description", body.description, |d| check_description(&d).map(|()| d))?
            .patch_required("data", body.data, |raw| json_document("data", &raw, DATA_MAX_BYTES))
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn view(self) -> Result<CanvasView, ApiError> {
        Ok(CanvasView {
            data: shared::item::stored_json("data", self.data)?,
            id: self.id,
            name: self.name,
            description: self.description,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

pub struct Canvases {
    platform: Platform,
    store: UserStore,
}

impl Function for Canvases {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection::by_updated_at(env.required("CANVASES_TABLE")?, Canvas::NOUN, "canvases");
        Ok(Self { platform: platform.clone(), store: platform.store(collection) })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Crud(op) => resource::crud::<Canvas>(&self.store, op, call).await,
            }
        })
        .await
    }
}
