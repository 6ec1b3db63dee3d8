//! Canvases: a user's design documents. The area only describes its record; the shared
//! pipeline, store and resource handlers do the rest.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::{
    http::{Noun, RequestBody},
    item::{json_document, nullable, NewRecord, Text},
    resource::{self, Resource, Stores},
    store::{Changes, Collection, HasId, UserStore},
    ApiError, Area, ConfigError, Env, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// The canvas document. With name and description it stays under DynamoDB's 400 KB item limit.
pub const DATA_MAX_BYTES: usize = 350 * 1024;

type Name = Text<1, NAME_MAX_CHARS>;
type Description = Text<0, DESCRIPTION_MAX_CHARS>;

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
#[derive(Serialize, ToSchema)]
pub struct CanvasView {
    id: String,
    name: String,
    description: Option<String>,
    /// The canvas document, as stored.
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    created_at: String,
    updated_at: String,
    version: u64,
}

/// A list entry: what the list index projects (no `data`, so pages stay small).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CanvasSummary {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Landing page", "description": "Hero and pricing", "data": {"elements": [{"type": "rect", "x": 10, "y": 20}]}}))]
pub struct CreateCanvas {
    name: Name,
    #[serde(default)]
    description: Option<Description>,
    /// Any JSON object (at most 350 KiB).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Box<RawValue>>,
}

impl RequestBody for CreateCanvas {
    const MAX_BYTES: usize = DATA_MAX_BYTES + 16 * 1024;
}

/// PATCH body: absent fields are kept, `description: null` clears the description.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Landing page v2"}))]
pub struct UpdateCanvas {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Name, required = false)]
    name: Option<Option<Name>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Description>, nullable)]
    description: Option<Option<Description>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Object, required = false)]
    data: Option<Option<Box<RawValue>>>,
}

impl RequestBody for UpdateCanvas {
    const MAX_BYTES: usize = CreateCanvas::MAX_BYTES;
}

impl HasId for Canvas {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Noun for Canvas {
    const NOUN: &'static str = "canvas";
}

impl Resource for Canvas {
    const PATH: &'static str = "/canvases";
    type Create = CreateCanvas;
    type Summary = CanvasSummary;
    type Update = UpdateCanvas;
    type View = CanvasView;

    fn create(body: CreateCanvas, new: NewRecord) -> Result<Self, ApiError> {
        let data = match &body.data {
            Some(raw) => json_document("data", raw, DATA_MAX_BYTES)?,
            None => "{}".to_owned(),
        };
        Ok(Self {
            id: new.id,
            name: body.name.into_string(),
            description: body.description.map(Text::into_string),
            data,
            created_at: new.created_at,
            updated_at: new.updated_at,
            version: new.version,
        })
    }

    fn changes(body: UpdateCanvas) -> Result<Changes, ApiError> {
        Changes::default()
            .patch_required("name", body.name, |name| Ok(name.into_string()))?
            .patch_optional("description", body.description, |d| Ok(d.into_string()))?
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
    store: UserStore,
}

impl Stores<Canvas> for Canvases {
    fn store(&self) -> &UserStore {
        &self.store
    }
}

impl Area for Canvases {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection::by_updated_at(env.required("CANVASES_TABLE")?, Canvas::NOUN, "canvases");
        Ok(Self { store: platform.store(collection)? })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        resource::personal_and_project(resource::routes::<Canvas, Self>)
    }
}
