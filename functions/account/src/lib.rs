//! The caller's account: profile, export of everything they own, deletion of everything they
//! own (their memberships included). Also the public health check.

use std::{collections::BTreeMap, sync::Arc};

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Serialize;
use shared::{
    http::{json, Paging},
    objects::UserObjects,
    partition::{Exported, Partition, Profile},
    ApiError, Area, ConfigError, Env, Identity, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub struct Account {
    partition: Partition,
    objects: UserObjects,
}

impl Area for Account {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let teams = platform
            .teams
            .clone()
            .ok_or_else(|| ConfigError::Missing("MEMBERSHIPS_TABLE and PROJECTS_TABLE".into()))?;
        env.required("ORGANIZATIONS_TABLE")?;
        Ok(Self {
            partition: Partition::from_env(platform.dynamodb.clone(), env, platform.cursors.clone())?.with_teams(teams),
            objects: UserObjects::new(platform.s3(), env.required("FILES_BUCKET")?),
        })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        OpenApiRouter::new().routes(routes!(health)).routes(routes!(me, delete)).routes(routes!(export))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    /// Crate version and git commit of this build.
    version: &'static str,
}

/// Public: the function answers, and which build it runs.
#[utoipa::path(get, path = "/health", tag = "account", operation_id = "health", security(()),
    responses((status = 200, description = "Healthy", body = Health)))]
async fn health() -> Result<Response, ApiError> {
    json(StatusCode::OK, &Health { status: "ok", version: shared::BUILD_VERSION })
}

/// The caller's profile, created on first use. A token issued before the account was deleted
/// gets 401 ("the account was deleted; sign in again") and re-creates nothing.
#[utoipa::path(get, path = "/me", tag = "account", operation_id = "get_me",
    responses((status = 200, description = "The caller's profile", body = Profile)))]
async fn me(State(area): State<Arc<Account>>, who: Identity) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.partition.profile(&who).await?)
}

/// A page of export.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ExportPage {
    items: Vec<Exported>,
    next_cursor: Option<String>,
}

/// Everything the caller owns, a page at a time (follow `next_cursor` to the end).
///
/// The profile, the items of every kind, the caller's memberships (with their role), and the
/// organizations they own with those organizations' projects (not the organizations they merely
/// belong to).
#[utoipa::path(get, path = "/me/export", tag = "account", operation_id = "export_me",
    params(
        Paging,
    ),
    responses((status = 200, description = "One page of the caller's data", body = ExportPage)))]
async fn export(State(area): State<Arc<Account>>, who: Identity, Paging(page): Paging) -> Result<Response, ApiError> {
    area.partition.profile(&who).await?;
    json(StatusCode::OK, &area.partition.export(&who, &page).await?)
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// How many items of each kind were deleted (`object` for S3 objects, `membership` for the
    /// memberships left, `organization` for the organizations deleted with the account).
    deleted: BTreeMap<&'static str, usize>,
}

/// Deletes every item the caller owns in every table and every object under their prefix.
/// Safe to repeat: if interrupted, calling it again finishes the job. From its first step on,
/// tokens issued until then can no longer create anything.
///
/// The caller leaves every organization and project; the organizations they are the only
/// member of are deleted with their projects and everything in them. Refused (409, nothing
/// deleted) while the caller is the only owner of an organization that has other members:
/// transfer the ownership (`POST /orgs/{org_id}/transfer`) or delete the organization first.
#[utoipa::path(delete, path = "/me", tag = "account", operation_id = "delete_me",
    responses((status = 200, description = "What was deleted", body = Deleted)))]
async fn delete(State(area): State<Arc<Account>>, who: Identity) -> Result<Response, ApiError> {
    // The tombstone first: creates racing the deletion are refused from here on, so the sweeps
    // below cannot be outrun.
    let tombstone = area.partition.begin_deletion(&who).await?;
    let mut deleted = area.partition.delete_all(&who, tombstone).await?;
    // The objects after the file records: an upload still arriving through a URL issued before
    // is either deleted here or, its record gone, by the upload cleanup (files-upload-cleanup).
    // The other way round, one landing between the two would find its record and stay.
    let objects = area.objects.delete_all(&shared::store::Space::personal(&who)).await?;
    deleted.insert("object", objects);
    json(StatusCode::OK, &Deleted { deleted })
}
