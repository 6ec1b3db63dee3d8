//! The create/get/list/update/delete handlers every area with user-owned documents shares.
//! An area describes its record ([`Resource`]); these functions do the HTTP side the same way
//! everywhere: `Location` and `ETag` headers, `If-Match`, paging, the status codes.

use lambda_http::{http::StatusCode, Body, Response};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    error::ApiError,
    http::{json, json_versioned, no_content, Call},
    item::NewRecord,
    store::{Changes, HasId, UserStore},
};

/// A user-owned document as stored, with what its API accepts and returns.
pub trait Resource: Serialize + DeserializeOwned + HasId + Sized {
    /// Singular noun, for messages ("canvas not found").
    const NOUN: &'static str;
    /// Collection path, for `Location` (`/canvases`).
    const PATH: &'static str;
    /// Largest accepted request body.
    const BODY_MAX_BYTES: usize;
    type Create: DeserializeOwned;
    type Update: DeserializeOwned;
    /// A list entry: what the list index projects.
    type Summary: Serialize + DeserializeOwned;
    /// The record as the API returns it.
    type View: Serialize;

    /// Validates a create body and builds the record with the server-set fields.
    fn create(body: Self::Create, new: NewRecord) -> Result<Self, ApiError>;
    /// Validates an update body into the changes to apply.
    fn changes(body: Self::Update) -> Result<Changes, ApiError>;
    fn version(&self) -> u64;
    fn view(self) -> Result<Self::View, ApiError>;
}

/// The five routes of a collection of documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crud {
    Create,
    List,
    Get,
    Update,
    Delete,
}

/// Serves one of the five document routes for `R`.
pub async fn crud<R: Resource>(store: &UserStore, op: Crud, call: Call) -> Result<Response<Body>, ApiError> {
    match op {
        Crud::Create => create::<R>(store, call).await,
        Crud::List => list::<R::Summary>(store, call).await,
        Crud::Get => get::<R>(store, call).await,
        Crud::Update => update::<R>(store, call).await,
        Crud::Delete => delete::<R>(store, call).await,
    }
}

fn versioned<R: Resource>(status: StatusCode, record: R) -> Result<Response<Body>, ApiError> {
    let version = record.version();
    json_versioned(status, &record.view()?, version)
}

pub async fn create<R: Resource>(store: &UserStore, call: Call) -> Result<Response<Body>, ApiError> {
    let body: R::Create = call.json(R::BODY_MAX_BYTES)?;
    let record = R::create(body, NewRecord::now())?;
    store.create(call.identity()?, &record).await?;
    let location = format!("{}/{}", R::PATH, record.id());
    let mut response = versioned(StatusCode::CREATED, record)?;
    response.headers_mut().insert("location", location.parse().map_err(|_| ApiError::Internal("location".into()))?);
    Ok(response)
}

pub async fn get<R: Resource>(store: &UserStore, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.id("id", R::NOUN)?;
    let record: R = store.get(call.identity()?, &id).await?;
    versioned(StatusCode::OK, record)
}

/// One page of the caller's list; `S` is the list entry (what the list index projects).
pub async fn list<S: Serialize + DeserializeOwned>(store: &UserStore, call: Call) -> Result<Response<Body>, ApiError> {
    let page = store.list::<S>(call.identity()?, &call.page()?).await?;
    json(StatusCode::OK, &page)
}

pub async fn update<R: Resource>(store: &UserStore, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.id("id", R::NOUN)?;
    let expect = call.expect()?;
    let changes = R::changes(call.json(R::BODY_MAX_BYTES)?)?;
    if changes.is_empty() {
        return Err(ApiError::bad_request("nothing to update"));
    }
    apply::<R>(store, &call, &id, expect, changes).await
}

/// Applies changes to the caller's record and answers with it (also for state transitions).
pub async fn apply<R: Resource>(
    store: &UserStore,
    call: &Call,
    id: &str,
    expect: crate::store::Expect,
    changes: Changes,
) -> Result<Response<Body>, ApiError> {
    let record: R = store.update(call.identity()?, id, expect, changes).await?;
    versioned(StatusCode::OK, record)
}

pub async fn delete<R: Resource>(store: &UserStore, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.id("id", R::NOUN)?;
    store.delete(call.identity()?, &id, call.expect()?).await?;
    Ok(no_content())
}
