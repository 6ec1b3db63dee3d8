//! The caller's account: profile, export of everything they own, deletion of everything they
//! own (their memberships included). Also the public health check.

use std::{collections::BTreeMap, sync::Arc};

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use shared::{
    api_keys::{ApiKey, ApiKeys, CreatedApiKey, RequestedScope},
    auth::Credential,
    http::{json, no_content, with_location, ItemId, JsonBody, Noun, Paging, RequestBody, SignedIn},
    objects::UserObjects,
    partition::{Exported, Partition, Profile},
    teams::Teams,
    ApiError, Area, ConfigError, Env, Identity, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub struct Account {
    partition: Partition,
    objects: UserObjects,
    teams: Arc<Teams>,
    api_keys: Arc<ApiKeys>,
}

impl Area for Account {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let teams = platform
            .teams
            .clone()
            .ok_or_else(|| ConfigError::Missing("MEMBERSHIPS_TABLE and PROJECTS_TABLE".into()))?;
        env.required("ORGANIZATIONS_TABLE")?;
        let api_keys =
            platform.api_keys.clone().ok_or_else(|| ConfigError::Missing(shared::api_keys::API_KEYS_TABLE.into()))?;
        Ok(Self {
            partition: Partition::from_env(platform.dynamodb.clone(), env, platform.cursors.clone())?
                .with_teams(teams.clone()),
            objects: UserObjects::new(platform.s3(), env.required("FILES_BUCKET")?),
            teams,
            api_keys,
        })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        OpenApiRouter::new()
            .routes(routes!(health))
            .routes(routes!(me, delete))
            .routes(routes!(export))
            .routes(routes!(create_key, list_keys))
            .routes(routes!(revoke_key))
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

/// The caller's profile and how they authenticated.
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    profile: Profile,
    /// `token` (a signed-in person) or `api_key` (with the key's id and scope).
    authentication: Credential,
}

/// The caller's profile, created on first use, and how the caller authenticated (a token, or
/// an API key and its scope). A token issued before the account was deleted gets 401 ("the
/// account was deleted; sign in again") and re-creates nothing.
#[utoipa::path(get, path = "/me", tag = "account", operation_id = "get_me",
    responses((status = 200, description = "The caller's profile", body = Me)))]
async fn me(State(area): State<Arc<Account>>, who: Identity) -> Result<Response, ApiError> {
    let profile = area.partition.profile(&who).await?;
    json(StatusCode::OK, &Me { profile, authentication: who.credential().clone() })
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
/// belong to). API keys cannot call this route (403).
#[utoipa::path(get, path = "/me/export", tag = "account", operation_id = "export_me",
    params(
        Paging,
    ),
    responses((status = 200, description = "One page of the caller's data", body = ExportPage)))]
async fn export(
    State(area): State<Arc<Account>>,
    SignedIn(who): SignedIn,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
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
/// The caller's API keys go with the account. API keys cannot call this route (403).
#[utoipa::path(delete, path = "/me", tag = "account", operation_id = "delete_me",
    responses(
        (status = 200, description = "What was deleted", body = Deleted),
        (status = 403, description = "Called with an API key: only a signed-in person deletes their account"),
    ))]
async fn delete(State(area): State<Arc<Account>>, SignedIn(who): SignedIn) -> Result<Response, ApiError> {
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

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI deploys", "scope": {"kind": "personal"}, "expires_in_days": 90}))]
pub struct CreateApiKey {
    /// 1-100 characters, to recognize the key in the list.
    name: String,
    /// `{"kind": "personal"}`: the caller's personal items; `{"kind": "project", "project_id",
    /// "role"}`: one project, with a role no higher than the caller's own there.
    scope: RequestedScope,
    /// 1-365; without it the key never expires (revoke it to end it).
    #[serde(default)]
    expires_in_days: Option<u32>,
}

impl RequestBody for CreateApiKey {
    const MAX_BYTES: usize = 4 * 1024;
}

/// A page of API keys.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyPage {
    items: Vec<ApiKey>,
    next_cursor: Option<String>,
}

struct KeyNoun;

impl Noun for KeyNoun {
    const NOUN: &'static str = "API key";
}

/// Creates an API key for programs, acting for the caller within its scope. The key is in this
/// answer only (only its digest is stored): keep it. Needs a signed-in person (an API key gets
/// 403); a project key needs the caller's membership (404 otherwise) with at least its role.
#[utoipa::path(post, path = "/auth/api-keys", tag = "account", operation_id = "create_api_key",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The key, shown this once", body = CreatedApiKey),
        (status = 403, description = "Called with an API key, or the key's role is above the caller's"),
        (status = 404, description = "No such project for the caller"),
    ))]
async fn create_key(
    State(area): State<Arc<Account>>,
    SignedIn(who): SignedIn,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<Response, ApiError> {
    let created = area.api_keys.create(&area.teams, &who, body.name, body.scope, body.expires_in_days).await?;
    let location = format!("/auth/api-keys/{}", created.listing.id);
    with_location(json(StatusCode::CREATED, &created)?, &location)
}

/// The caller's API keys, newest first: name, prefix, scope, created, expires, last used
/// (never the key or its digest).
#[utoipa::path(get, path = "/auth/api-keys", tag = "account", operation_id = "list_api_keys",
    params(Paging),
    responses((status = 200, description = "One page", body = ApiKeyPage)))]
async fn list_keys(
    State(area): State<Arc<Account>>,
    SignedIn(who): SignedIn,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.api_keys.list(&who, &page).await?)
}

/// Revokes one of the caller's API keys: refused everywhere within the revocation bound
/// (`RevocationCacheSeconds`).
#[utoipa::path(delete, path = "/auth/api-keys/{id}", tag = "account", operation_id = "revoke_api_key",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of the caller's"),
    ))]
async fn revoke_key(
    State(area): State<Arc<Account>>,
    SignedIn(who): SignedIn,
    id: ItemId<KeyNoun>,
) -> Result<Response, ApiError> {
    area.api_keys.revoke(&who, &id).await?;
    Ok(no_content())
}
