//! Teams: organizations, projects and memberships, and the access decision made from them.
//!
//! Tables (every key is built here):
//! - organizations: `id`; `owner_count` and `project_count` keep "the last owner" and "every
//!   project is gone" exact under concurrency (changed in the same transactions).
//! - projects: `id`, with `org_id`; the index `org_id-created_at-index` lists an org's projects.
//! - memberships: `scope` (`org#<id>` | `project#<id>`) + `user_id`, so an access check is a
//!   GetItem on the base table and "members of X" one Query; the index `user_id-scope-index`
//!   lists "my organizations/projects" in one Query.
//!
//! The access decision ([`ProjectAccess`], [`OrgAccess`]) is one strongly consistent
//! BatchGetItem per request. Only a project's organization is cached in the function (it never
//! changes), never a membership: removing a member takes effect on their next request.

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

use crate::{
    access::{self, Action, Permission, Role},
    auth::Identity,
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
const SCOPE: &str = "scope";
const ROLE: &str = "role";
const ORG_ID: &str = "org_id";
const OWNER_COUNT: &str = "owner_count";
const PROJECT_COUNT: &str = "project_count";
const MY_SCOPES_INDEX: &str = "user_id-scope-index";
const ORG_PROJECTS_INDEX: &str = "org_id-created_at-index";
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
    cursors: CursorCodec,
    org_of: Mutex<HashMap<String, String>>,
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
        let workspace = if organizations.is_some() {
            owned::named(env, |t| t.retention == Retention::Content)?
        } else {
            Vec::new()
        };
        Ok(Some(Self {
            client,
            memberships,
            projects,
            organizations,
            cursors,
            org_of: Mutex::new(HashMap::new()),
            workspace,
            profiles: env.optional(owned::PROFILE_TABLE.env),
            #[cfg(feature = "s3")]
            objects: None,
        }))
    }

    /// The same tables through another DynamoDB client (a fresh organization cache).
    pub fn with_client(&self, client: Client) -> Self {
        Self {
            client,
            memberships: self.memberships.clone(),
            projects: self.projects.clone(),
            organizations: self.organizations.clone(),
            cursors: self.cursors.clone(),
            org_of: Mutex::new(HashMap::new()),
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

    /// One strongly consistent BatchGetItem (retrying unprocessed keys), by table.
    async fn batch_get(&self, wanted: Vec<(&str, Item)>) -> Result<HashMap<String, Vec<Item>>, ApiError> {
        let mut request: HashMap<String, KeysAndAttributes> = HashMap::new();
        for (table, key) in wanted {
            let entry = request.remove(table).map(|k| k.keys).unwrap_or_default();
            let keys = KeysAndAttributes::builder()
                .set_keys(Some([entry, vec![key]].concat()))
                .consistent_read(true)
                .build()
                .map_err(internal)?;
            request.insert(table.to_owned(), keys);
        }
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
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
        Ok(found)
    }

    /// The organization of a project: cached (it never changes), else one consistent GetItem.
    async fn org_of(&self, project_id: &str) -> Result<String, ApiError> {
        if let Some(org) = self.org_of.lock().expect("cache lock").get(project_id) {
            return Ok(org.clone());
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.projects)
            .set_key(Some(Self::id_key(project_id)))
            .consistent_read(true)
            .projection_expression("#org")
            .expression_attribute_names("#org", ORG_ID)
            .send()
            .await
            .map_err(dynamo_error)?;
        let org = out.item.as_ref().and_then(|i| text(i, ORG_ID)).ok_or(ApiError::NotFound("project"))?.to_owned();
        let mut cache = self.org_of.lock().expect("cache lock");
        if cache.len() >= ORG_OF_CACHE {
            cache.clear();
        }
        cache.insert(project_id.to_owned(), org.clone());
        Ok(org)
    }

    /// The caller's access to a project: the project item and both memberships in one read.
    /// Anything that does not make the caller a member is the same 404 as a missing project.
    pub async fn project_access(&self, who: &Identity, project_id: &str) -> Result<ProjectAccess, ApiError> {
        let project_id = item::parse_id(project_id, "project")?;
        let org_id = self.org_of(&project_id).await?;
        let mut found = self
            .batch_get(vec![
                (&self.projects, Self::id_key(&project_id)),
                (&self.memberships, Self::membership_key(&org_scope(&org_id), who.user_id())),
                (&self.memberships, Self::membership_key(&project_partition(&project_id), who.user_id())),
            ])
            .await?;
        let project = found.remove(&self.projects).and_then(|mut p| p.pop()).ok_or(ApiError::NotFound("project"))?;
        let memberships = found.remove(&self.memberships).unwrap_or_default();
        let scoped = |scope: &str| memberships.iter().find(|m| text(m, SCOPE) == Some(scope));
        let role = access::project_role(
            role_of(scoped(&org_scope(&org_id))),
            role_of(scoped(&project_partition(&project_id))),
        )
        .ok_or(ApiError::NotFound("project"))?;
        Ok(ProjectAccess { caller: who.clone(), project_id, org_id, role, project })
    }

    /// The caller's access to an organization: its item and their membership in one read.
    pub async fn org_access(&self, who: &Identity, org_id: &str) -> Result<OrgAccess, ApiError> {
        let org_id = item::parse_id(org_id, "organization")?;
        let mut found = self
            .batch_get(vec![
                (self.organizations()?, Self::id_key(&org_id)),
                (&self.memberships, Self::membership_key(&org_scope(&org_id), who.user_id())),
            ])
            .await?;
        let org = found.remove(self.organizations()?).and_then(|mut o| o.pop());
        let role = role_of(found.remove(&self.memberships).and_then(|mut m| m.pop()).as_ref())
            .ok_or(ApiError::NotFound("organization"))?;
        Ok(OrgAccess { caller: who.clone(), org_id, role, org })
    }

    fn guard(&self, who: &Identity) -> Result<TransactWriteItem, ApiError> {
        let profiles = self.profiles.as_ref().ok_or_else(|| internal("USERS_TABLE is not set"))?;
        let check = ConditionCheck::builder()
            .table_name(profiles)
            .key(attr::USER_ID, s(who.user_id()))
            .condition_expression("attribute_not_exists(#deleted_at) OR #deleted_at < :issued_at")
            .expression_attribute_names("#deleted_at", attr::DELETED_AT)
            .expression_attribute_values(":issued_at", n(who.issued_at()))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn membership_item(scope: &str, user: &str, role: Role, org_id: &str, now: &str) -> Item {
        Item::from([
            (SCOPE.to_owned(), s(scope)),
            (attr::USER_ID.to_owned(), s(user)),
            (ROLE.to_owned(), s(role.as_str())),
            (ORG_ID.to_owned(), s(org_id)),
            (attr::CREATED_AT.to_owned(), s(now)),
            (attr::UPDATED_AT.to_owned(), s(now)),
        ])
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

    /// Creates an organization with the caller as its only owner.
    pub async fn create_org(&self, who: &Identity, name: String, plan: Plan) -> Result<Organization, ApiError> {
        let now = Timestamp::now().into_string();
        let org = Organization {
            id: item::new_id(),
            name,
            plan,
            created_at: now.clone(),
            updated_at: now.clone(),
            version: 1,
        };
        let mut item: Item = dynamo::to_item(&org).map_err(internal)?;
        item.insert(OWNER_COUNT.to_owned(), n(1));
        item.insert(PROJECT_COUNT.to_owned(), n(0));
        let put_org = Put::builder()
            .table_name(self.organizations()?)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(internal)?;
        let put_owner = Put::builder()
            .table_name(&self.memberships)
            .set_item(Some(Self::membership_item(&org_scope(&org.id), who.user_id(), Role::Owner, &org.id, &now)))
            .build()
            .map_err(internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put_org).build(),
            TransactWriteItem::builder().put(put_owner).build(),
            self.guard(who)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(org),
            Err(failed) if failed.get(2) == Some(&true) => Err(ApiError::AccountDeleted),
            Err(_) => Err(ApiError::Conflict("a concurrent request changed this organization, retry".into())),
        }
    }

    /// One page of the caller's memberships of `prefix` scopes (`org#` or `project#`), from
    /// the user index: one Query.
    async fn my_scopes(
        &self,
        who: &Identity,
        prefix: &str,
        list: &str,
        page: &PageRequest,
        org_filter: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), ApiError> {
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key = self.cursors.decode(list, who, c)?;
                let scope = key.get(SCOPE).filter(|v| v.starts_with(prefix)).ok_or_else(|| {
                    ApiError::bad_request("cursor is invalid: pass back the `next_cursor` of a previous page unchanged")
                })?;
                Some(Item::from([(SCOPE.to_owned(), s(scope.as_str())), (attr::USER_ID.to_owned(), s(who.user_id()))]))
            }
        };
        let mut query =
            user_query(&self.client, &self.memberships, who.user_id(), "#uid = :uid AND begins_with(#scope, :prefix)")
                .index_name(MY_SCOPES_INDEX)
                .expression_attribute_names("#scope", SCOPE)
                .expression_attribute_values(":prefix", s(prefix))
                .limit(page.limit as i32)
                .set_exclusive_start_key(start);
        if let Some(org) = org_filter {
            query = query
                .filter_expression("#org = :org")
                .expression_attribute_names("#org", ORG_ID)
                .expression_attribute_values(":org", s(org));
        }
        let out = query.send().await.map_err(dynamo_error)?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| text(k, SCOPE))
            .map(|scope| self.cursors.encode(list, who, &CursorKey::from([(SCOPE.to_owned(), scope.to_owned())])));
        Ok((out.items.unwrap_or_default(), next))
    }

    /// The items of `table` with these ids, in the given order (missing ones left out).
    async fn by_ids(&self, table: &str, ids: &[String]) -> Result<Vec<Item>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self.batch_get(ids.iter().map(|id| (table, Self::id_key(id))).collect()).await?;
        let mut items: HashMap<String, Item> = found
            .remove(table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| text(&i, attr::ID).map(str::to_owned).map(|id| (id, i)))
            .collect();
        Ok(ids.iter().filter_map(|id| items.remove(id)).filter(|i| !i.contains_key(attr::DELETING_AT)).collect())
    }

    /// The caller's organizations with their role: one Query and one BatchGetItem per page.
    pub async fn my_orgs(&self, who: &Identity, page: &PageRequest) -> Result<Page<MyOrganization>, ApiError> {
        let (memberships, next_cursor) = self.my_scopes(who, ORG_PREFIX, "orgs", page, None).await?;
        let ids: Vec<String> = memberships.iter().filter_map(|m| text(m, ORG_ID).map(str::to_owned)).collect();
        let orgs = self.by_ids(self.organizations()?, &ids).await?;
        let items = orgs
            .into_iter()
            .map(|org| {
                let id = text(&org, attr::ID).unwrap_or_default().to_owned();
                let role = memberships.iter().find(|m| text(m, ORG_ID) == Some(&id)).and_then(|m| role_of(Some(m)));
                Ok(MyOrganization { organization: from_item(org)?, role: role.unwrap_or(Role::Viewer) })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Page { items, next_cursor })
    }

    /// The projects of an organization the caller can see: all of them for its owners and
    /// admins (one Query on the org's index), else those they were added to (one Query on their
    /// memberships and one BatchGetItem).
    pub async fn org_projects(&self, org: &OrgAccess, page: &PageRequest) -> Result<Page<MyProject>, ApiError> {
        let who = &org.caller;
        let list = format!("projects@{}", org_scope(&org.org_id));
        if org.role >= Role::Admin {
            let start = match &page.cursor {
                None => None,
                Some(c) => {
                    let key = self.cursors.decode(&list, who, c)?;
                    let (Some(id), Some(created)) = (key.get(attr::ID), key.get(attr::CREATED_AT)) else {
                        return Err(ApiError::bad_request("cursor is invalid"));
                    };
                    Some(Item::from([
                        (attr::ID.to_owned(), s(id.as_str())),
                        (attr::CREATED_AT.to_owned(), s(created.as_str())),
                        (ORG_ID.to_owned(), s(org.org_id.as_str())),
                    ]))
                }
            };
            let out = self
                .client
                .query()
                .table_name(&self.projects)
                .index_name(ORG_PROJECTS_INDEX)
                .key_condition_expression("#org = :org")
                .filter_expression("attribute_not_exists(#deleting)")
                .expression_attribute_names("#org", ORG_ID)
                .expression_attribute_names("#deleting", attr::DELETING_AT)
                .expression_attribute_values(":org", s(org.org_id.as_str()))
                .limit(page.limit as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            let next_cursor = out.last_evaluated_key.as_ref().map(|k| {
                let key = [attr::ID, attr::CREATED_AT]
                    .iter()
                    .filter_map(|a| text(k, a).map(|v| ((*a).to_owned(), v.to_owned())))
                    .collect();
                self.cursors.encode(&list, who, &key)
            });
            let items = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|p| Ok(MyProject { project: from_item(p)?, role: Role::Admin }))
                .collect::<Result<_, ApiError>>()?;
            return Ok(Page { items, next_cursor });
        }
        let (memberships, next_cursor) = self.my_scopes(who, "project#", &list, page, Some(&org.org_id)).await?;
        let ids: Vec<String> = memberships
            .iter()
            .filter_map(|m| text(m, SCOPE).and_then(|s| s.strip_prefix("project#")).map(str::to_owned))
            .collect();
        let projects = self.by_ids(&self.projects, &ids).await?;
        let items = projects
            .into_iter()
            .map(|p| {
                let scope = project_partition(text(&p, attr::ID).unwrap_or_default());
                let role = memberships.iter().find(|m| text(m, SCOPE) == Some(&scope)).and_then(|m| role_of(Some(m)));
                Ok(MyProject { project: from_item(p)?, role: role.unwrap_or(Role::Viewer) })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Page { items, next_cursor })
    }

    /// Changes an organization's or project's fields (`table` keyed by `id`), if it exists,
    /// is not being deleted, and has the expected version.
    async fn update_named(
        &self,
        table: &str,
        id: &str,
        noun: &'static str,
        expect: Expect,
        fields: Vec<(&'static str, AttributeValue)>,
    ) -> Result<Item, ApiError> {
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(Self::id_key(id)))
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#deleting", attr::DELETING_AT)
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_names("#updated_at", attr::UPDATED_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(Timestamp::now().into_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        let mut set = vec!["#updated_at = :now".to_owned(), "#version = #version + :one".to_owned()];
        for (i, (name, value)) in fields.into_iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
            set.push(format!("#f{i} = :f{i}"));
        }
        let mut condition = "attribute_exists(#id) AND attribute_not_exists(#deleting)".to_owned();
        if let Expect::Version(v) = expect {
            update = update.expression_attribute_values(":expected", n(v));
            condition.push_str(" AND #version = :expected");
        }
        let result =
            update.update_expression(format!("SET {}", set.join(", "))).condition_expression(condition).send().await;
        match result {
            Ok(out) => out.attributes.ok_or_else(|| internal("update returned no item")),
            Err(e) => {
                let old = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                        Some(c.item().cloned())
                    }
                    _ => None,
                });
                match old {
                    None => Err(dynamo_error(e)),
                    Some(Some(old)) if !old.contains_key(attr::DELETING_AT) => {
                        Err(ApiError::PreconditionFailed(format!(
                            "{noun} has changed since version {}: fetch it again and retry",
                            match expect {
                                Expect::Version(v) => v,
                                Expect::Exists => 0,
                            }
                        )))
                    }
                    Some(_) => Err(ApiError::NotFound(noun)),
                }
            }
        }
    }

    pub async fn update_org(
        &self,
        org: &OrgAccess,
        expect: Expect,
        name: Option<String>,
        plan: Option<Plan>,
    ) -> Result<Organization, ApiError> {
        let mut fields = Vec::new();
        if let Some(name) = name {
            fields.push(("name", s(name)));
        }
        if let Some(plan) = plan {
            fields.push(("plan", dynamo::to_attribute_value(plan).map_err(internal)?));
        }
        from_item(self.update_named(self.organizations()?, &org.org_id, "organization", expect, fields).await?)
    }

    pub async fn update_project(
        &self,
        project: &ProjectAccess,
        expect: Expect,
        name: String,
    ) -> Result<Project, ApiError> {
        let fields = vec![("name", s(name))];
        from_item(self.update_named(&self.projects, &project.project_id, "project", expect, fields).await?)
    }

    /// Creates a project in the organization (counted on it, refused once its deletion began).
    pub async fn create_project(&self, org: &OrgAccess, name: String) -> Result<Project, ApiError> {
        let now = Timestamp::now().into_string();
        let project = Project {
            id: item::new_id(),
            org_id: org.org_id.clone(),
            name,
            created_at: now.clone(),
            updated_at: now,
            version: 1,
        };
        let put = Put::builder()
            .table_name(&self.projects)
            .set_item(Some(dynamo::to_item(&project).map_err(internal)?))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(internal)?;
        let count = Update::builder()
            .table_name(self.organizations()?)
            .set_key(Some(Self::id_key(&org.org_id)))
            .update_expression("ADD #count :one")
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#deleting)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#deleting", attr::DELETING_AT)
            .expression_attribute_names("#count", PROJECT_COUNT)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
            self.guard(&org.caller)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(project),
            Err(failed) if failed.get(2) == Some(&true) => Err(ApiError::AccountDeleted),
            Err(failed) if failed.get(1) == Some(&true) => Err(ApiError::NotFound("organization")),
            Err(_) => Err(ApiError::Conflict("a concurrent request changed this organization, retry".into())),
        }
    }

    /// One page of a scope's members: one Query on the base table.
    async fn members(&self, who: &Identity, scope: &str, page: &PageRequest) -> Result<Page<Member>, ApiError> {
        let list = format!("members@{scope}");
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key = self.cursors.decode(&list, who, c)?;
                let user = key.get(attr::USER_ID).ok_or_else(|| ApiError::bad_request("cursor is invalid"))?;
                Some(Self::membership_key(scope, user))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.memberships)
            .key_condition_expression("#scope = :scope")
            .expression_attribute_names("#scope", SCOPE)
            .expression_attribute_values(":scope", s(scope))
            .limit(page.limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let next_cursor = out.last_evaluated_key.as_ref().and_then(|k| text(k, attr::USER_ID)).map(|user| {
            self.cursors.encode(&list, who, &CursorKey::from([(attr::USER_ID.to_owned(), user.to_owned())]))
        });
        let items = out.items.unwrap_or_default().iter().map(member_view).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    pub async fn org_members(&self, org: &OrgAccess, page: &PageRequest) -> Result<Page<Member>, ApiError> {
        self.members(&org.caller, &org_scope(&org.org_id), page).await
    }

    pub async fn project_members(&self, p: &ProjectAccess, page: &PageRequest) -> Result<Page<Member>, ApiError> {
        self.members(&p.caller, &project_partition(&p.project_id), page).await
    }

    async fn membership(&self, scope: &str, user: &str) -> Result<Option<Item>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.memberships)
            .set_key(Some(Self::membership_key(scope, user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(out.item)
    }

    /// The condition that a membership still has the role it was read with (or still is absent).
    fn unchanged(current: Option<Role>) -> (String, Option<AttributeValue>) {
        match current {
            None => ("attribute_not_exists(#scope)".to_owned(), None),
            Some(role) => ("attribute_exists(#scope) AND #role = :current".to_owned(), Some(s(role.as_str()))),
        }
    }

    /// The organization's owner count moved by `delta` (refused below one owner).
    fn owner_count(&self, org_id: &str, delta: i64) -> Result<TransactWriteItem, ApiError> {
        let mut update = Update::builder()
            .table_name(self.organizations()?)
            .set_key(Some(Self::id_key(org_id)))
            .update_expression("ADD #owners :delta")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#owners", OWNER_COUNT)
            .expression_attribute_values(":delta", n(delta));
        update = if delta < 0 {
            update
                .condition_expression("attribute_exists(#id) AND #owners > :one")
                .expression_attribute_values(":one", n(1))
        } else {
            update.condition_expression("attribute_exists(#id)")
        };
        Ok(TransactWriteItem::builder().update(update.build().map_err(internal)?).build())
    }

    /// Adds a member to the organization or changes their role (`None`: removes them), by the
    /// rules of [`access::may_change`]; the last owner can neither leave nor be demoted.
    pub async fn set_org_member(&self, org: &OrgAccess, user: &str, new: Option<Role>) -> Result<(), ApiError> {
        org.organization()?;
        let scope = org_scope(&org.org_id);
        let current = role_of(self.membership(&scope, user).await?.as_ref());
        let is_self = user == org.caller.user_id();
        access::may_change(org.role, is_self, current, new).map_err(|e| ApiError::Forbidden(e.to_string()))?;
        if current.is_none() && new.is_none() {
            return Err(ApiError::NotFound("member"));
        }
        if current == new {
            return Ok(());
        }
        let mut items = vec![self.membership_write(&scope, user, current, new, &org.org_id)?];
        let was_owner = current == Some(Role::Owner);
        let is_owner = new == Some(Role::Owner);
        if was_owner != is_owner {
            items.push(self.owner_count(&org.org_id, if is_owner { 1 } else { -1 })?);
        }
        match self.transact(items).await? {
            Ok(()) => {}
            Err(failed) if failed.get(1) == Some(&true) => {
                return Err(ApiError::Conflict(
                    "the last owner cannot leave or be demoted: make another member owner first".into(),
                ))
            }
            Err(_) => return Err(ApiError::Conflict("the membership changed meanwhile, retry".into())),
        }
        if new.is_none() {
            // Access already ended with the org membership; this only tidies up.
            self.remove_project_memberships(user, &org.org_id).await?;
        }
        Ok(())
    }

    fn membership_write(
        &self,
        scope: &str,
        user: &str,
        current: Option<Role>,
        new: Option<Role>,
        org_id: &str,
    ) -> Result<TransactWriteItem, ApiError> {
        let (condition, value) = Self::unchanged(current);
        Ok(match new {
            Some(role) => {
                let now = Timestamp::now().into_string();
                let mut put = Put::builder()
                    .table_name(&self.memberships)
                    .set_item(Some(Self::membership_item(scope, user, role, org_id, &now)))
                    .condition_expression(condition)
                    .expression_attribute_names("#scope", SCOPE);
                if let Some(v) = value {
                    put = put.expression_attribute_names("#role", ROLE).expression_attribute_values(":current", v);
                }
                TransactWriteItem::builder().put(put.build().map_err(internal)?).build()
            }
            None => {
                let mut delete = Delete::builder()
                    .table_name(&self.memberships)
                    .set_key(Some(Self::membership_key(scope, user)))
                    .condition_expression(condition)
                    .expression_attribute_names("#scope", SCOPE);
                if let Some(v) = value {
                    delete =
                        delete.expression_attribute_names("#role", ROLE).expression_attribute_values(":current", v);
                }
                TransactWriteItem::builder().delete(delete.build().map_err(internal)?).build()
            }
        })
    }

    /// Adds a member of the project's organization to the project, changes their project role,
    /// or removes them (`None`). Project roles stop at admin.
    pub async fn set_project_member(&self, p: &ProjectAccess, user: &str, new: Option<Role>) -> Result<(), ApiError> {
        if new.is_some_and(|r| !access::project_assignable(r)) {
            return Err(ApiError::bad_request("a project role is admin, member or viewer"));
        }
        let scope = project_partition(&p.project_id);
        let current = role_of(self.membership(&scope, user).await?.as_ref());
        let is_self = user == p.caller.user_id();
        access::may_change(p.role, is_self, current, new).map_err(|e| ApiError::Forbidden(e.to_string()))?;
        if current.is_none() && new.is_none() {
            return Err(ApiError::NotFound("member"));
        }
        if current == new {
            return Ok(());
        }
        let mut items = vec![self.membership_write(&scope, user, current, new, &p.org_id)?];
        if new.is_some() {
            // Only members of the organization join its projects.
            let in_org = ConditionCheck::builder()
                .table_name(&self.memberships)
                .set_key(Some(Self::membership_key(&org_scope(&p.org_id), user)))
                .condition_expression("attribute_exists(#scope)")
                .expression_attribute_names("#scope", SCOPE)
                .build()
                .map_err(internal)?;
            items.push(TransactWriteItem::builder().condition_check(in_org).build());
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.get(1) == Some(&true) => {
                Err(ApiError::Conflict(format!("{user} is not a member of the project's organization")))
            }
            Err(_) => Err(ApiError::Conflict("the membership changed meanwhile, retry".into())),
        }
    }

    /// Makes `new_owner` (a member) an owner and the caller an admin, in one transaction.
    pub async fn transfer(&self, org: &OrgAccess, new_owner: &str) -> Result<(), ApiError> {
        org.organization()?;
        if org.role != Role::Owner {
            return Err(ApiError::Forbidden("only an owner can transfer ownership".into()));
        }
        if !is_user_id(new_owner) {
            return Err(ApiError::bad_request("new_owner must be a user id (1-256 characters)"));
        }
        if new_owner == org.caller.user_id() {
            return Err(ApiError::bad_request("you already own this organization"));
        }
        let scope = org_scope(&org.org_id);
        let promote = Update::builder()
            .table_name(&self.memberships)
            .set_key(Some(Self::membership_key(&scope, new_owner)))
            .update_expression("SET #role = :owner, #updated_at = :now")
            .condition_expression("attribute_exists(#scope) AND #role <> :owner")
            .expression_attribute_names("#scope", SCOPE)
            .expression_attribute_names("#role", ROLE)
            .expression_attribute_names("#updated_at", attr::UPDATED_AT)
            .expression_attribute_values(":owner", s(Role::Owner.as_str()))
            .expression_attribute_values(":now", s(Timestamp::now().into_string()))
            .build()
            .map_err(internal)?;
        let step_down = Update::builder()
            .table_name(&self.memberships)
            .set_key(Some(Self::membership_key(&scope, org.caller.user_id())))
            .update_expression("SET #role = :admin, #updated_at = :now")
            .condition_expression("#role = :owner")
            .expression_attribute_names("#role", ROLE)
            .expression_attribute_names("#updated_at", attr::UPDATED_AT)
            .expression_attribute_values(":owner", s(Role::Owner.as_str()))
            .expression_attribute_values(":admin", s(Role::Admin.as_str()))
            .expression_attribute_values(":now", s(Timestamp::now().into_string()))
            .build()
            .map_err(internal)?;
        let items = vec![
            TransactWriteItem::builder().update(promote).build(),
            TransactWriteItem::builder().update(step_down).build(),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.first() == Some(&true) => {
                Err(ApiError::Conflict(format!("{new_owner} is not a member (or already an owner)")))
            }
            Err(_) => Err(ApiError::Conflict("the membership changed meanwhile, retry".into())),
        }
    }

    /// Deletes the user's project memberships in an organization (after they left it).
    async fn remove_project_memberships(&self, user: &str, org_id: &str) -> Result<(), ApiError> {
        loop {
            let out = user_query(&self.client, &self.memberships, user, "#uid = :uid AND begins_with(#scope, :prefix)")
                .index_name(MY_SCOPES_INDEX)
                .filter_expression("#org = :org")
                .expression_attribute_names("#scope", SCOPE)
                .expression_attribute_names("#org", ORG_ID)
                .expression_attribute_values(":prefix", s("project#"))
                .expression_attribute_values(":org", s(org_id))
                .send()
                .await
                .map_err(dynamo_error)?;
            let keys: Vec<Item> = out
                .items
                .unwrap_or_default()
                .iter()
                .filter_map(|m| text(m, SCOPE).map(|scope| Self::membership_key(scope, user)))
                .collect();
            if keys.is_empty() && out.last_evaluated_key.is_none() {
                return Ok(());
            }
            batch_delete(&self.client, &self.memberships, keys).await?;
            if out.last_evaluated_key.is_none() {
                return Ok(());
            }
        }
    }

    /// Marks an item (`table` keyed by `id`) as being deleted; idempotent.
    async fn mark_deleting(&self, table: &str, id: &str) -> Result<(), ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(Self::id_key(id)))
            .update_expression("SET #deleting = if_not_exists(#deleting, :now)")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#deleting", attr::DELETING_AT)
            .expression_attribute_values(":now", n(jsonwebtoken::get_current_timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(dynamo_error(e)),
        }
    }

    /// Deletes everything under a scope's partition key in `table` (key attributes `keys`).
    async fn sweep(&self, table: &str, hash: &str, range: &str, value: &str) -> Result<(), ApiError> {
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#h = :v")
                .projection_expression("#h, #r")
                .expression_attribute_names("#h", hash)
                .expression_attribute_names("#r", range)
                .expression_attribute_values(":v", s(value))
                .consistent_read(true)
                .send()
                .await
                .map_err(dynamo_error)?;
            let keys = out.items.unwrap_or_default();
            if keys.is_empty() {
                return Ok(());
            }
            batch_delete(&self.client, table, keys).await?;
        }
    }

    /// Deletes a project and everything in it. Marked first (creates in it are refused from
    /// then on), then its workspace items in every content table and its memberships, then the
    /// project itself. Idempotent: a retry continues where an interrupted one stopped.
    pub async fn delete_project(&self, p: &ProjectAccess) -> Result<(), ApiError> {
        self.delete_project_by_id(&p.caller, &p.project_id, &p.org_id).await
    }

    async fn delete_project_by_id(&self, who: &Identity, project_id: &str, org_id: &str) -> Result<(), ApiError> {
        self.mark_deleting(&self.projects, project_id).await?;
        #[cfg(feature = "s3")]
        if let Some(objects) = &self.objects {
            objects.delete_all(&Space::project(who, project_id)).await?;
        }
        #[cfg(not(feature = "s3"))]
        let _ = who;
        let partition = project_partition(project_id);
        for table in &self.workspace {
            self.sweep(&table.name, attr::USER_ID, attr::ID, &partition).await?;
        }
        self.sweep(&self.memberships, SCOPE, attr::USER_ID, &partition).await?;
        let delete = Delete::builder()
            .table_name(&self.projects)
            .set_key(Some(Self::id_key(project_id)))
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(internal)?;
        let count = Update::builder()
            .table_name(self.organizations()?)
            .set_key(Some(Self::id_key(org_id)))
            .update_expression("ADD #count :minus")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#count", PROJECT_COUNT)
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(internal)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact(items).await? {
            // Refused only when the project is already gone (a concurrent deletion finished it).
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// The ids of an organization's projects, from its index (one Query per page).
    async fn org_project_ids(&self, org_id: &str) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.projects)
                .index_name(ORG_PROJECTS_INDEX)
                .key_condition_expression("#org = :org")
                .projection_expression("#id")
                .expression_attribute_names("#org", ORG_ID)
                .expression_attribute_names("#id", attr::ID)
                .expression_attribute_values(":org", s(org_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            ids.extend(out.items.unwrap_or_default().iter().filter_map(|p| text(p, attr::ID).map(str::to_owned)));
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(ids),
            }
        }
    }

    /// Deletes an organization: marked first (no new project from then on), then every
    /// project (as [`Teams::delete_project`]), then the organization, then its memberships,
    /// the caller's last, so an interrupted deletion can be repeated by the same owner.
    pub async fn delete_org(&self, org: &OrgAccess) -> Result<(), ApiError> {
        let table = self.organizations()?.to_owned();
        self.mark_deleting(&table, &org.org_id).await?;
        let started = std::time::Instant::now();
        loop {
            let out = self
                .client
                .get_item()
                .table_name(&table)
                .set_key(Some(Self::id_key(&org.org_id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(dynamo_error)?;
            let Some(stored) = out.item else { break };
            if number(&stored, PROJECT_COUNT) == 0 {
                self.client
                    .delete_item()
                    .table_name(&table)
                    .set_key(Some(Self::id_key(&org.org_id)))
                    .send()
                    .await
                    .map_err(dynamo_error)?;
                break;
            }
            // The index is eventually consistent: a project it does not show yet is counted.
            let ids = self.org_project_ids(&org.org_id).await?;
            // Every project is marked before any is swept, so all of them are gone for their
            // members at once, not one after the other.
            for id in &ids {
                self.mark_deleting(&self.projects, id).await?;
            }
            if ids.is_empty() {
                if started.elapsed() > std::time::Duration::from_secs(20) {
                    return Err(ApiError::Unavailable("projects are still being listed: repeat the deletion".into()));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            for id in ids {
                self.delete_project_by_id(&org.caller, &id, &org.org_id).await?;
            }
        }
        // Every membership but the caller's, then the caller's.
        let scope = org_scope(&org.org_id);
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.memberships)
                .key_condition_expression("#scope = :scope")
                .projection_expression("#scope, #uid")
                .expression_attribute_names("#scope", SCOPE)
                .expression_attribute_names("#uid", attr::USER_ID)
                .expression_attribute_values(":scope", s(scope.as_str()))
                .consistent_read(true)
                .send()
                .await
                .map_err(dynamo_error)?;
            let others: Vec<Item> = out
                .items
                .unwrap_or_default()
                .into_iter()
                .filter(|m| text(m, attr::USER_ID) != Some(org.caller.user_id()))
                .collect();
            if others.is_empty() {
                break;
            }
            batch_delete(&self.client, &self.memberships, others).await?;
        }
        batch_delete(&self.client, &self.memberships, vec![Self::membership_key(&scope, org.caller.user_id())]).await
    }
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
