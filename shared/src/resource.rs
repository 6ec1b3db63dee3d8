//! The create/get/list/update/delete routes every area with user-owned documents shares, with
//! their OpenAPI description. An area describes its record ([`Resource`]) and says where its
//! store is ([`Stores`]); [`routes`] does the HTTP side the same way everywhere: `Location` and
//! `ETag` headers, `If-Match`, paging, the status codes.

use std::{future::Future, sync::Arc};

use axum::{extract::State, http::StatusCode, response::Response, routing::get};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use utoipa::{
    openapi::{path::Paths, RefOr, Schema},
    ToSchema,
};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::{
    access::{Create, Delete, Read, Update},
    error::ApiError,
    http::{json, json_versioned, no_content, with_location, IfMatch, ItemId, JsonBody, Noun, Paging, RequestBody},
    item::NewRecord,
    store::{Changes, Expect, HasId, Space, UserStore},
    teams::Authorized,
};

/// A user-owned document as stored, with what its API accepts and returns.
pub trait Resource: Serialize + DeserializeOwned + HasId + Noun + Send + Sync + Sized + 'static {
    /// Collection path (`/canvases`); items live at `{PATH}/{id}`.
    const PATH: &'static str;
    type Create: RequestBody + ToSchema + Send + 'static;
    type Update: RequestBody + ToSchema + Send + 'static;
    /// A list entry: what the list index projects.
    type Summary: Serialize + DeserializeOwned + ToSchema + Send + 'static;
    /// The record as the API returns it.
    type View: Serialize + ToSchema + 'static;

    /// Validates a create body and builds the record with the server-set fields.
    fn create(body: Self::Create, new: NewRecord) -> Result<Self, ApiError>;
    /// Validates an update body into the changes to apply.
    fn changes(body: Self::Update) -> Result<Changes, ApiError>;
    fn version(&self) -> u64;
    fn view(self) -> Result<Self::View, ApiError>;
}

/// An area's state that holds the store of `R`'s collection.
pub trait Stores<R>: Send + Sync + 'static {
    fn store(&self) -> &UserStore;

    /// Deletes one item of the space. Areas whose items own others (a session's messages)
    /// cascade here.
    fn delete(&self, space: &Space, id: &str, expect: Expect) -> impl Future<Output = Result<(), ApiError>> + Send {
        async move { self.store().delete(space, id, expect).await }
    }
}

/// The five routes of `R`'s collection, described for OpenAPI.
pub fn routes<R: Resource, A: Stores<R>>() -> OpenApiRouter<Arc<A>> {
    let mut schemas = Vec::new();
    register::<R::Create>(&mut schemas);
    register::<R::Update>(&mut schemas);
    register::<R::Summary>(&mut schemas);
    register::<R::View>(&mut schemas);
    let item_path = format!("{}/{{id}}", R::PATH);
    let collection: UtoipaMethodRouter<Arc<A>> =
        (schemas, paths(collection_doc::<R>()), get(list::<R, A>).post(create::<R, A>));
    let item: UtoipaMethodRouter<Arc<A>> =
        (Vec::new(), paths(item_doc::<R>()), get(read::<R, A>).patch(update::<R, A>).delete(delete::<R, A>));
    debug_assert!(item.1.paths.contains_key(&item_path));
    OpenApiRouter::new().routes(collection).routes(item)
}

/// The path under which every workspace route also serves a project's shared items.
pub const PROJECT_PREFIX: &str = "/projects/{project_id}";

/// An area's workspace routes twice: as they are (the caller's personal items) and nested under
/// [`PROJECT_PREFIX`] (a project's items). The same handlers serve both: their
/// [`Authorized`] extractor picks the space from the path and checks the caller's role there.
pub fn personal_and_project<S: Clone + Send + Sync + 'static>(
    routes: impl Fn() -> OpenApiRouter<S>,
) -> OpenApiRouter<S> {
    let mut project = OpenApiRouter::new().nest(PROJECT_PREFIX, routes());
    for (path, item) in project.get_openapi_mut().paths.paths.iter_mut() {
        debug_assert!(path.starts_with(PROJECT_PREFIX));
        let parameter: utoipa::openapi::path::Parameter = serde_json::from_value(json!({
            "name": "project_id", "in": "path", "required": true,
            "description": "The project's id", "schema": { "type": "string", "format": "uuid" },
        }))
        .expect("a valid parameter");
        item.parameters.get_or_insert_with(Vec::new).insert(0, parameter);
        for operation in operations(item) {
            operation.operation_id = operation.operation_id.take().map(|id| format!("{id}_in_project"));
            for tag in operation.tags.iter_mut().flatten() {
                *tag = "projects".to_owned();
            }
        }
    }
    routes().merge(project)
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Adds `T`'s schema and those it refers to.
pub fn register<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// OpenAPI paths from their JSON form (what the spec reads like, and easy to check by eye).
pub fn paths(document: Value) -> Paths {
    serde_json::from_value(json!({ "paths": document }))
        .map(|d: PathsDocument| d.paths)
        .expect("resource paths are valid OpenAPI")
}

#[derive(serde::Deserialize)]
struct PathsDocument {
    paths: Paths,
}

fn schema_ref<T: ToSchema>() -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
}

/// A JSON body of this schema.
pub fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The `{id}` path parameter of an item route.
pub fn id_parameter(noun: &str) -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": format!("The {noun}'s id"),
        "schema": { "type": "string", "format": "uuid" },
    })
}

/// `limit` and `cursor` query parameters of a list route.
pub fn paging_parameters() -> Value {
    json!([
        { "name": "limit", "in": "query", "required": false,
          "description": "Page size (1-100, default 20)",
          "schema": { "type": "integer", "minimum": 1, "maximum": 100 } },
        { "name": "cursor", "in": "query", "required": false,
          "description": "`next_cursor` of the previous page",
          "schema": { "type": "string" } },
    ])
}

/// A page of `items` with the cursor of the next page.
pub fn page_schema(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": items },
            "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last" },
        },
    })
}

/// `If-Match` on a conditional write.
pub fn if_match_parameter() -> Value {
    json!({
        "name": "If-Match", "in": "header", "required": false,
        "description": "`*`, or the ETags of the versions this write accepts (412 if none is current)",
        "schema": { "type": "string" },
    })
}

fn etag_header() -> Value {
    json!({ "ETag": { "description": "The item's version, for If-Match", "schema": { "type": "string" } } })
}

fn operation_id(verb: &str, noun: &str) -> String {
    format!("{verb}_{}", noun.replace(' ', "_"))
}

fn collection_doc<R: Resource>() -> Value {
    let noun = R::NOUN;
    let tag = R::PATH.trim_start_matches('/');
    json!({ R::PATH: {
        "post": {
            "operationId": operation_id("create", noun), "tags": [tag],
            "summary": format!("Create a {noun}"),
            "requestBody": { "required": true, "content": json_content(schema_ref::<R::Create>()) },
            "responses": { "201": {
                "description": format!("The new {noun}"),
                "headers": { "Location": { "schema": { "type": "string" } }, "ETag": etag_header()["ETag"] },
                "content": json_content(schema_ref::<R::View>()),
            }},
        },
        "get": {
            "operationId": operation_id("list", noun), "tags": [tag],
            "summary": format!("List the caller's {tag}, most recent first"),
            "parameters": paging_parameters(),
            "responses": { "200": {
                "description": "One page",
                "content": json_content(page_schema(schema_ref::<R::Summary>())),
            }},
        },
    }})
}

fn item_doc<R: Resource>() -> Value {
    let noun = R::NOUN;
    let tag = R::PATH.trim_start_matches('/');
    let versioned = |description: String| json!({ "200": { "description": description, "headers": etag_header(), "content": json_content(schema_ref::<R::View>()) } });
    json!({ format!("{}/{{id}}", R::PATH): {
        "parameters": [id_parameter(noun)],
        "get": {
            "operationId": operation_id("get", noun), "tags": [tag],
            "summary": format!("Get a {noun}"),
            "responses": versioned(format!("The {noun}")),
        },
        "patch": {
            "operationId": operation_id("update", noun), "tags": [tag],
            "summary": format!("Update a {noun}: absent fields are kept"),
            "parameters": [if_match_parameter()],
            "requestBody": { "required": true, "content": json_content(schema_ref::<R::Update>()) },
            "responses": versioned(format!("The updated {noun}")),
        },
        "delete": {
            "operationId": operation_id("delete", noun), "tags": [tag],
            "summary": format!("Delete a {noun}"),
            "parameters": [if_match_parameter()],
            "responses": { "204": { "description": "Deleted" } },
        },
    }})
}

fn versioned<R: Resource>(status: StatusCode, record: R) -> Result<Response, ApiError> {
    let version = record.version();
    json_versioned(status, &record.view()?, version)
}

async fn create<R: Resource, A: Stores<R>>(
    State(area): State<Arc<A>>,
    space: Authorized<Create>,
    JsonBody(body): JsonBody<R::Create>,
) -> Result<Response, ApiError> {
    let record = R::create(body, NewRecord::now())?;
    area.store().create(&space, &record).await?;
    let location = match space.project_id() {
        None => format!("{}/{}", R::PATH, record.id()),
        Some(project) => format!("/projects/{project}{}/{}", R::PATH, record.id()),
    };
    with_location(versioned(StatusCode::CREATED, record)?, &location)
}

async fn read<R: Resource, A: Stores<R>>(
    State(area): State<Arc<A>>,
    space: Authorized<Read>,
    id: ItemId<R>,
) -> Result<Response, ApiError> {
    let record: R = area.store().get(&space, &id).await?;
    versioned(StatusCode::OK, record)
}

async fn list<R: Resource, A: Stores<R>>(
    State(area): State<Arc<A>>,
    space: Authorized<Read>,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.store().list::<R::Summary>(&space, &page).await?)
}

async fn update<R: Resource, A: Stores<R>>(
    State(area): State<Arc<A>>,
    space: Authorized<Update>,
    id: ItemId<R>,
    IfMatch(expect): IfMatch,
    JsonBody(body): JsonBody<R::Update>,
) -> Result<Response, ApiError> {
    let changes = R::changes(body)?;
    if changes.is_empty() {
        return Err(ApiError::bad_request("nothing to update"));
    }
    apply::<R>(area.store(), &space, &id, expect, changes).await
}

/// Applies changes to a record of the space and answers with it (also for state transitions).
pub async fn apply<R: Resource>(
    store: &UserStore,
    space: &Space,
    id: &str,
    expect: Expect,
    changes: Changes,
) -> Result<Response, ApiError> {
    let record: R = store.update(space, id, expect, changes).await?;
    versioned(StatusCode::OK, record)
}

async fn delete<R: Resource, A: Stores<R>>(
    State(area): State<Arc<A>>,
    space: Authorized<Delete>,
    id: ItemId<R>,
    IfMatch(expect): IfMatch,
) -> Result<Response, ApiError> {
    area.delete(&space, &id, expect).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_from_json() {
        let p = paths(json!({ "/x/{id}": { "parameters": [id_parameter("x")], "get": {
            "operationId": "get_x", "responses": { "200": { "description": "ok" } } } } }));
        assert!(p.paths.contains_key("/x/{id}"));
    }

    #[test]
    fn page_schema_names_its_items() {
        let schema = page_schema(json!({"$ref": "#/components/schemas/A"}));
        assert_eq!(schema["properties"]["items"]["items"]["$ref"], "#/components/schemas/A");
    }
}
