//! Teams: organizations, projects and memberships, and the access decision made from them.
//!
//! Tables (every key is built here):
//! - organizations: `id`; `owner_count` and `project_count` keep "the last owner" and "every
//!   project is gone" exact under concurrency (changed in the same transactions).
//! - projects: `id`, with `org_id`; the index `org_id-created_at-index` lists an org's projects.
//! - memberships: `scope` (`org#<id>` | `project#<id>`) + `user_id`, so an access check is a
//!   GetItem on the base table and "members of X" one Query; the index `user_id-scope-index`
//!   lists "my organizations/projects" in one Query.
//! - invitations: `scope` + `id`, so a scope's invitations are one Query and accepting one a
//!   GetItem and a transaction on the base table (see [`invitations`]).
//!
//! The access decision ([`ProjectAccess`], [`OrgAccess`]) is one strongly consistent
//! BatchGetItem per request (the project or organization, the memberships, and the caller's
//! profile item for its deletion tombstone). Only a project's organization is cached in the
//! function (it never changes), never a membership: removing a member takes effect on their next
//! request.

use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::{Arc, Mutex},
};

use aws_sdk_dynamodb::{
    types::{AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update},
    Client,
};
use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

mod account;
mod deletion;
pub mod invitations;
mod manage;

pub use account::Leaving;
pub use invitations::{AcceptedInvitation, CreatedInvitation, Invitation, Invitee};

use crate::{
    access::{self, Action, Permission, Role},
    auth::{Identity, KeyScope},
    config::{ConfigError, Env},
    cursor::{CursorCodec, CursorKey, Page, PageRequest},
    error::ApiError,
    item::{self, Timestamp},
    owned::{self, NamedTable, Retention},
    store::{
        attr, batch_delete, cancellation_reasons, dynamo_error, project_partition, user_query, Expect, Item, Space,
    },
};

const ORG_PREFIX: &str = "org#";
/// What API keys are refused on organization routes ("API keys cannot ...").
pub(crate) const ORGANIZATIONS_NEED_A_PERSON: &str = "act on organizations or accept invitations";
const SCOPE: &str = "scope";
const ROLE: &str = "role";
const ORG_ID: &str = "org_id";
const OWNER_COUNT: &str = "owner_count";
const PROJECT_COUNT: &str = "project_count";
const MY_SCOPES_INDEX: &str = "user_id-scope-index";
const ORG_PROJECTS_INDEX: &str = "org_id-created_at-index";
/// DynamoDB's limit on the keys of one BatchGetItem.
const BATCH_GET_MAX_KEYS: usize = 100;
/// How many project → organization pairs a function remembers (immutable facts).
const ORG_OF_CACHE: usize = 10_000;

fn org_scope(org_id: &str) -> String {
    format!("{ORG_PREFIX}{org_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

fn role_of(item: Option<&Item>) -> Option<Role> {
    item.and_then(|i| text(i, ROLE)).and_then(Role::parse)
}

/// The caller's account deletion, as far as memberships are concerned (their profile item's
/// `deleted_at`). `DELETE /me` removes the memberships it finds on the user index, which is
/// eventually consistent: one granted a moment before may not show yet. So a membership grants
/// nothing when it was created at or before the account's latest deletion (in whole seconds, as
/// `deleted_at`), and nothing at all to a token issued at or before it (as every create refuses
/// such a token). A membership granted later belongs to the account as it is now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AccountState {
    deleted_at: Option<u64>,
    revoked: bool,
}

impl AccountState {
    /// From the caller's profile item (absent: never deleted).
    fn of(who: &Identity, profile: Option<&Item>) -> Self {
        let deleted_at = profile.and_then(|p| match p.get(attr::DELETED_AT) {
            Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
            _ => None,
        });
        Self { deleted_at, revoked: deleted_at.is_some_and(|d| d >= who.issued_at()) }
    }

    /// The membership outlived the account's latest deletion: it was created after it.
    fn outlived_deletion(&self, membership: &Item) -> bool {
        let Some(deleted_at) = self.deleted_at else { return true };
        let after = Timestamp::from_epoch_seconds(deleted_at.saturating_add(1));
        text(membership, attr::CREATED_AT).is_some_and(|created| created >= after.as_str())
    }

    /// The membership grants the caller its role.
    fn grants(&self, membership: &Item) -> bool {
        !self.revoked && self.outlived_deletion(membership)
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// An organization's plan tier (read by the governance work).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Pro,
    Enterprise,
}

/// An organization as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

/// An organization with the caller's role in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyOrganization {
    #[serde(flatten)]
    pub organization: Organization,
    pub role: Role,
}

/// A project as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

/// A project with the role the caller acts with in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyProject {
    #[serde(flatten)]
    pub project: Project,
    pub role: Role,
}

/// A membership as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The member's user id (their token's `sub`).
    pub user: String,
    pub role: Role,
    pub created_at: String,
    pub updated_at: String,
}

fn member_view(item: &Item) -> Result<Member, ApiError> {
    Ok(Member {
        user: text(item, attr::USER_ID).ok_or_else(|| internal("membership without user"))?.to_owned(),
        role: role_of(Some(item)).ok_or_else(|| internal("membership without role"))?,
        created_at: text(item, attr::CREATED_AT).unwrap_or_default().to_owned(),
        updated_at: text(item, attr::UPDATED_AT).unwrap_or_default().to_owned(),
    })
}

fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, ApiError> {
    dynamo::from_item(item).map_err(|e| internal(format!("stored item does not deserialize: {e}")))
}

/// The caller's verified role in an organization. Only [`Teams`] builds one.
#[derive(Clone, Debug)]
pub struct OrgAccess {
    caller: Identity,
    org_id: String,
    role: Role,
    /// The organization item (absent once a deletion removed it).
    org: Option<Item>,
}

impl OrgAccess {
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn caller(&self) -> &Identity {
        &self.caller
    }
    pub fn organization(&self) -> Result<Organization, ApiError> {
        from_item(self.org.clone().ok_or(ApiError::NotFound("organization"))?)
    }
}

/// The caller's verified role in a project. Only [`Teams`] builds one.
#[derive(Clone, Debug)]
pub struct ProjectAccess {
    caller: Identity,
    project_id: String,
    org_id: String,
    role: Role,
    project: Item,
}

impl ProjectAccess {
    pub fn project_id(&self) -> &str {
        &self.project_id
    }
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn caller(&self) -> &Identity {
        &self.caller
    }
    /// The project's workspace, for the stores.
    pub fn space(&self) -> Space {
        Space::project(&self.caller, &self.project_id)
    }
    pub fn project(&self) -> Result<Project, ApiError> {
        from_item(self.project.clone())
    }
    fn deleting(&self) -> bool {
        self.project.contains_key(attr::DELETING_AT)
    }
}

fn check(role: Role, action: Action) -> Result<(), ApiError> {
    if access::allows(role, action) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("your role ({}) does not allow this", role.as_str())))
    }
}

/// Teams' tables and the project → organization cache, built once per cold start.
pub struct Teams {
    client: Client,
    memberships: String,
    projects: String,
    organizations: Option<String>,
    /// The invitations table: the organizations function's (it deletes organizations, which
    /// sweeps their invitations, so it is required along with `ORGANIZATIONS_TABLE`).
    invitations: Option<String>,
    cursors: CursorCodec,
    org_of: OrgOfProject,
    /// The workspace tables a project's deletion sweeps (the organizations function's).
    workspace: Vec<NamedTable>,
    profiles: Option<String>,
    /// The files bucket, whose `projects/<id>/` prefix a project's deletion empties.
    #[cfg(feature = "s3")]
    objects: Option<crate::objects::UserObjects>,
}

impl Teams {
    /// Configured when the function has `MEMBERSHIPS_TABLE` and `PROJECTS_TABLE`.
    pub fn from_env(client: Client, env: &Env, cursors: CursorCodec) -> Result<Option<Self>, ConfigError> {
        let (Some(memberships), Some(projects)) = (env.optional("MEMBERSHIPS_TABLE"), env.optional("PROJECTS_TABLE"))
        else {
            return Ok(None);
        };
        let organizations = env.optional("ORGANIZATIONS_TABLE");
        let (workspace, invitations) = if organizations.is_some() {
            (owned::named(env, |t| t.retention == Retention::Content)?, Some(env.required("INVITATIONS_TABLE")?))
        } else {
            (Vec::new(), env.optional("INVITATIONS_TABLE"))
        };
        Ok(Some(Self {
            client,
            memberships,
            projects,
            organizations,
            invitations,
            cursors,
            org_of: OrgOfProject::default(),
            workspace,
            profiles: env.optional(owned::PROFILE_TABLE.env),
            #[cfg(feature = "s3")]
            objects: None,
        }))
    }

    /// Only the tables founding an organization touches (organizations, memberships, the
    /// founder's profile for the deletion guard): for the auth area, which creates the
    /// organization a user named at sign-up and serves no team route.
    #[cfg(feature = "cognito")]
    pub(crate) fn founding(client: Client, env: &Env, cursors: CursorCodec) -> Result<Self, ConfigError> {
        Ok(Self {
            client,
            memberships: env.required("MEMBERSHIPS_TABLE")?,
            projects: String::new(),
            organizations: Some(env.required("ORGANIZATIONS_TABLE")?),
            invitations: None,
            cursors,
            org_of: OrgOfProject::default(),
            workspace: Vec::new(),
            profiles: Some(env.required(owned::PROFILE_TABLE.env)?),
            #[cfg(feature = "s3")]
            objects: None,
        })
    }

    /// The same tables through another DynamoDB client (a fresh organization cache).
    pub fn with_client(&self, client: Client) -> Self {
        Self {
            client,
            memberships: self.memberships.clone(),
            projects: self.projects.clone(),
            organizations: self.organizations.clone(),
            invitations: self.invitations.clone(),
            cursors: self.cursors.clone(),
            org_of: OrgOfProject::default(),
            workspace: self.workspace.clone(),
            profiles: self.profiles.clone(),
            #[cfg(feature = "s3")]
            objects: self.objects.clone(),
        }
    }

    /// Lets a project's deletion remove its files' bytes too.
    #[cfg(feature = "s3")]
    pub fn with_objects(mut self, objects: Option<crate::objects::UserObjects>) -> Self {
        self.objects = objects;
        self
    }

    fn organizations(&self) -> Result<&str, ApiError> {
        self.organizations.as_deref().ok_or_else(|| internal("ORGANIZATIONS_TABLE is not set"))
    }

    fn membership_key(scope: &str, user: &str) -> Item {
        Item::from([(SCOPE.to_owned(), s(scope)), (attr::USER_ID.to_owned(), s(user))])
    }

    fn id_key(id: &str) -> Item {
        Item::from([(attr::ID.to_owned(), s(id))])
    }

    /// The caller's profile item, for a BatchGetItem (none when the function has no profile
    /// table).
    fn profile_read(&self, who: &Identity) -> Option<(&str, Item)> {
        let key = Item::from([(attr::USER_ID.to_owned(), s(who.user_id()))]);
        self.profiles.as_deref().map(|table| (table, key))
    }

    /// The caller's account state from a BatchGetItem that read their profile item.
    fn account_state(&self, who: &Identity, found: &mut HashMap<String, Vec<Item>>) -> AccountState {
        let profile = self.profiles.as_ref().and_then(|t| found.remove(t)).and_then(|mut p| p.pop());
        AccountState::of(who, profile.as_ref())
    }

    /// Strongly consistent reads of these keys, by table: one BatchGetItem per 100 keys
    /// (retrying unprocessed keys).
    async fn batch_get(&self, wanted: Vec<(&str, Item)>) -> Result<HashMap<String, Vec<Item>>, ApiError> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for chunk in wanted.chunks(BATCH_GET_MAX_KEYS) {
            let mut request: HashMap<String, KeysAndAttributes> = HashMap::new();
            for (table, key) in chunk {
                let entry = request.remove(*table).map(|k| k.keys).unwrap_or_default();
                let keys = KeysAndAttributes::builder()
                    .set_keys(Some([entry, vec![key.clone()]].concat()))
                    .consistent_read(true)
                    .build()
                    .map_err(internal)?;
                request.insert((*table).to_owned(), keys);
            }
            for attempt in 0u32.. {
                let out =
                    self.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(dynamo_error)?;
                for (table, items) in out.responses.unwrap_or_default() {
                    found.entry(table).or_default().extend(items);
                }
                request = out.unprocessed_keys.unwrap_or_default();
                if request.is_empty() {
                    break;
                }
                if attempt >= 8 {
                    return Err(ApiError::Unavailable("membership reads left unprocessed".into()));
                }
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
        }
        Ok(found)
    }

    /// The organization of a project (cached).
    async fn org_of(&self, project_id: &str) -> Result<String, ApiError> {
        self.org_of.get(&self.client, &self.projects, project_id).await?.ok_or(ApiError::NotFound("project"))
    }

    /// The caller's access to a project: the project item and both memberships in one read.
    /// Anything that does not make the caller a member is the same 404 as a missing project.
    /// An API key reaches only its own project (another is the same 404), with the lower of
    /// its role and its creator's current one: a creator who lost the membership loses the
    /// key's reach on its next request.
    pub async fn project_access(&self, who: &Identity, project_id: &str) -> Result<ProjectAccess, ApiError> {
        let project_id = item::parse_id(project_id, "project")?;
        let key_role = match who.key_scope() {
            None => None,
            Some(KeyScope::Project { project_id: scoped, role }) if *scoped == project_id => Some(*role),
            Some(_) => return Err(ApiError::NotFound("project")),
        };
        let org_id = self.org_of(&project_id).await?;
        let mut found = self
            .batch_get(
                [
                    (self.projects.as_str(), Self::id_key(&project_id)),
                    (&self.memberships, Self::membership_key(&org_scope(&org_id), who.user_id())),
                    (&self.memberships, Self::membership_key(&project_partition(&project_id), who.user_id())),
                ]
                .into_iter()
                .chain(self.profile_read(who))
                .collect(),
            )
            .await?;
        let account = self.account_state(who, &mut found);
        let project = found.remove(&self.projects).and_then(|mut p| p.pop()).ok_or(ApiError::NotFound("project"))?;
        let memberships = found.remove(&self.memberships).unwrap_or_default();
        let scoped = |scope: &str| memberships.iter().find(|m| text(m, SCOPE) == Some(scope) && account.grants(m));
        let role = access::project_role(
            role_of(scoped(&org_scope(&org_id))),
            role_of(scoped(&project_partition(&project_id))),
        )
        .ok_or(ApiError::NotFound("project"))?;
        let role = key_role.map_or(role, |key_role| key_role.min(role));
        Ok(ProjectAccess { caller: who.clone(), project_id, org_id, role, project })
    }

    /// The caller's access to an organization: its item and their membership in one read.
    /// API keys never act on organizations (403).
    pub async fn org_access(&self, who: &Identity, org_id: &str) -> Result<OrgAccess, ApiError> {
        who.require_signed_in(ORGANIZATIONS_NEED_A_PERSON)?;
        let org_id = item::parse_id(org_id, "organization")?;
        let mut found = self
            .batch_get(
                [
                    (self.organizations()?, Self::id_key(&org_id)),
                    (&self.memberships, Self::membership_key(&org_scope(&org_id), who.user_id())),
                ]
                .into_iter()
                .chain(self.profile_read(who))
                .collect(),
            )
            .await?;
        let account = self.account_state(who, &mut found);
        let org = found.remove(self.organizations()?).and_then(|mut o| o.pop());
        let membership = found.remove(&self.memberships).and_then(|mut m| m.pop()).filter(|m| account.grants(m));
        let role = role_of(membership.as_ref()).ok_or(ApiError::NotFound("organization"))?;
        Ok(OrgAccess { caller: who.clone(), org_id, role, org })
    }

    /// One transaction. A cancelled one says which items' conditions failed (by position);
    /// any other failure is an error.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<bool>>, ApiError> {
        let count = items.len();
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Ok(())),
            Err(e) => {
                let reasons = cancellation_reasons(&e);
                if !reasons.cancelled() {
                    return Err(dynamo_error(e));
                }
                Ok(Err((0..count).map(|i| reasons.failed(i)).collect()))
            }
        }
    }
}

/// The organization of each project a function has met: cached, since it never changes.
#[derive(Default)]
struct OrgOfProject(Mutex<HashMap<String, String>>);

impl OrgOfProject {
    /// From the cache, else one consistent GetItem on the projects table (None: no project).
    async fn get(&self, client: &Client, projects: &str, project_id: &str) -> Result<Option<String>, ApiError> {
        if let Some(org) = self.0.lock().expect("cache lock").get(project_id) {
            return Ok(Some(org.clone()));
        }
        let out = client
            .get_item()
            .table_name(projects)
            .set_key(Some(Teams::id_key(project_id)))
            .consistent_read(true)
            .projection_expression("#org")
            .expression_attribute_names("#org", ORG_ID)
            .send()
            .await
            .map_err(dynamo_error)?;
        let Some(org) = out.item.as_ref().and_then(|i| text(i, ORG_ID)).map(str::to_owned) else {
            return Ok(None);
        };
        let mut cache = self.0.lock().expect("cache lock");
        if cache.len() >= ORG_OF_CACHE {
            cache.clear();
        }
        cache.insert(project_id.to_owned(), org.clone());
        Ok(Some(org))
    }
}

/// Who may read a project's items right now, for realtime pushes: by the same rule as
/// [`Teams::project_access`] ([`access::project_role`]), read from the memberships with
/// strongly consistent Queries of the base table, so a member removed before a change is
/// never among its readers. Needs `MEMBERSHIPS_TABLE` and `PROJECTS_TABLE`.
pub struct ProjectReaders {
    client: Client,
    memberships: String,
    projects: String,
    org_of: OrgOfProject,
}

impl ProjectReaders {
    pub fn from_env(client: Client, env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            client,
            memberships: env.required("MEMBERSHIPS_TABLE")?,
            projects: env.required("PROJECTS_TABLE")?,
            org_of: OrgOfProject::default(),
        })
    }

    /// The user ids that may read the project now: its organization's owners and admins and
    /// the project's members who are still in the organization (viewers too); nobody for a
    /// project that no longer exists. Two Queries (plus, once per project, a GetItem).
    pub async fn of(&self, project_id: &str) -> Result<Vec<String>, ApiError> {
        let Some(org_id) = self.org_of.get(&self.client, &self.projects, project_id).await? else {
            return Ok(Vec::new());
        };
        let in_org = self.roles(&org_scope(&org_id)).await?;
        let in_project = self.roles(&project_partition(project_id)).await?;
        Ok(in_org
            .iter()
            .filter_map(|(user, org_role)| {
                access::project_role(Some(*org_role), in_project.get(user).copied()).map(|_| user.clone())
            })
            .collect())
    }

    /// Every member of a scope with their role: consistent Queries of the base table.
    async fn roles(&self, scope: &str) -> Result<HashMap<String, Role>, ApiError> {
        let mut roles = HashMap::new();
        let mut start = None;
        loop {
            let out = scope_members(&self.client, &self.memberships, scope)
                .projection_expression("#uid, #role")
                .expression_attribute_names("#role", ROLE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            for item in out.items.unwrap_or_default() {
                if let (Some(user), Some(role)) = (text(&item, attr::USER_ID), role_of(Some(&item))) {
                    roles.insert(user.to_owned(), role);
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(roles),
            }
        }
    }
}

/// The memberships of an organization or project, read consistently; `#uid` names the member's
/// user id for the caller's projection.
fn scope_members(
    client: &Client,
    memberships: &str,
    scope: &str,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    client
        .query()
        .table_name(memberships)
        .key_condition_expression("#scope = :scope")
        .expression_attribute_names("#scope", SCOPE)
        .expression_attribute_names("#uid", attr::USER_ID)
        .expression_attribute_values(":scope", s(scope))
        .consistent_read(true)
}

/// The space a workspace route acts in, checked for permission `P`: the caller's personal
/// space on personal routes, or the project of the path's `{project_id}` when the caller's
/// membership allows `P` (404 for non-members, 403 for a role without `P`).
pub struct Authorized<P>(pub Space, pub PhantomData<P>);

impl<P> std::ops::Deref for Authorized<P> {
    type Target = Space;
    fn deref(&self) -> &Space {
        &self.0
    }
}

/// A path parameter by name.
async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Option<String> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state).await.ok()?;
    params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_owned())
}

fn teams(parts: &Parts) -> Result<Arc<Teams>, ApiError> {
    parts
        .extensions
        .get::<Option<Arc<Teams>>>()
        .cloned()
        .flatten()
        .ok_or_else(|| internal("this function has no MEMBERSHIPS_TABLE/PROJECTS_TABLE"))
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let who = Identity::from_request_parts(parts, state).await?;
        let Some(project_id) = path_param(parts, state, "project_id").await else {
            if let Some(KeyScope::Project { project_id, .. }) = who.key_scope() {
                return Err(ApiError::Forbidden(format!(
                    "this API key is scoped to project {project_id}: personal items need a personal key"
                )));
            }
            return Ok(Self(Space::personal(&who), PhantomData));
        };
        let access = InProject::<P>::resolve(parts, &who, &project_id).await?;
        Ok(Self(access.space(), PhantomData))
    }
}

/// The path's project, the caller's access to it checked for permission `P`.
pub struct InProject<P>(pub ProjectAccess, pub PhantomData<P>);

impl<P: Permission> InProject<P> {
    async fn resolve(parts: &Parts, who: &Identity, project_id: &str) -> Result<ProjectAccess, ApiError> {
        let access = teams(parts)?.project_access(who, project_id).await?;
        // A project being deleted is gone, except to whoever may finish its deletion.
        if access.deleting() && P::ACTION != Action::ManageProject {
            return Err(ApiError::NotFound("project"));
        }
        check(access.role, P::ACTION)?;
        Ok(access)
    }
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for InProject<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let who = Identity::from_request_parts(parts, state).await?;
        let project_id = path_param(parts, state, "project_id").await.ok_or(ApiError::NotFound("project"))?;
        Ok(Self(Self::resolve(parts, &who, &project_id).await?, PhantomData))
    }
}

/// The path's organization, the caller's access to it checked for permission `P`.
pub struct InOrg<P>(pub OrgAccess, pub PhantomData<P>);

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for InOrg<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let who = Identity::from_request_parts(parts, state).await?;
        let org_id = path_param(parts, state, "org_id").await.ok_or(ApiError::NotFound("organization"))?;
        let access = teams(parts)?.org_access(&who, &org_id).await?;
        // An organization being deleted is gone, except to whoever may finish its deletion.
        let gone = access.org.as_ref().is_none_or(|o| o.contains_key(attr::DELETING_AT));
        if gone && P::ACTION != Action::DeleteOrganization {
            return Err(ApiError::NotFound("organization"));
        }
        check(access.role, P::ACTION)?;
        Ok(Self(access, PhantomData))
    }
}

/// The `Teams` of the function, for handlers that list the caller's organizations.
pub struct TeamsService(pub Arc<Teams>);

impl<S: Send + Sync> FromRequestParts<S> for TeamsService {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        teams(parts).map(Self)
    }
}

/// The `{user_id}` of a member route: a user id as tokens carry it (1-256 characters, no
/// control characters); anything else names nobody, a 404.
pub struct MemberId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for MemberId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let user = path_param(parts, state, "user_id").await.unwrap_or_default();
        if !is_user_id(&user) {
            return Err(ApiError::NotFound("member"));
        }
        Ok(Self(user))
    }
}

/// What a token subject can be (see the verifier): 1-256 bytes, no control characters.
fn is_user_id(user: &str) -> bool {
    !user.is_empty() && user.len() <= 256 && !user.chars().any(char::is_control)
}
