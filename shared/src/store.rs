//! The repository of user-owned items. Every key it builds starts with the caller's
//! `user_id`, taken from an [`Identity`]; no method accepts a raw user id. One DynamoDB call
//! per operation, no Scan, no read-before-write.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::{ProvideErrorMetadata, SdkError},
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem},
    Client,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use crate::{
    auth::Identity,
    cursor::{CursorCodec, CursorKey, Page, PageRequest},
    error::ApiError,
    item::Timestamp,
};

/// Attribute names the store owns. Clients can never set them.
pub mod attr {
    pub const USER_ID: &str = "user_id";
    pub const ID: &str = "id";
    pub const VERSION: &str = "version";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    /// On the profile item: when the account was last deleted (seconds since the epoch).
    /// Tokens issued at or before it can no longer create anything.
    pub const DELETED_AT: &str = "deleted_at";
    /// On the profile item: the TTL attribute that removes a bare tombstone.
    pub const EXPIRES_AT: &str = "expires_at";
    /// On an organization or project item: its deletion has begun (seconds since the epoch).
    pub const DELETING_AT: &str = "deleting_at";
}

pub type Item = HashMap<String, AttributeValue>;

/// Prefix of a project's partition value. The verifier refuses token subjects that start with
/// it, so no user's personal partition can ever be a project's.
pub const PROJECT_PARTITION_PREFIX: &str = "project#";

/// Whose partition a store call addresses, and who is calling: the caller's personal space, or
/// a project the caller was verified to belong to. Only `shared` builds the project kind (from
/// a [`ProjectAccess`](crate::teams::ProjectAccess)), so a handler cannot name a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    caller: Identity,
    project: Option<String>,
}

impl Space {
    /// The caller's own items, partitioned by their user id exactly as before teams.
    pub fn personal(who: &Identity) -> Self {
        Self { caller: who.clone(), project: None }
    }

    pub(crate) fn project(who: &Identity, project_id: &str) -> Self {
        Self { caller: who.clone(), project: Some(project_id.to_owned()) }
    }

    pub fn caller(&self) -> &Identity {
        &self.caller
    }

    pub fn project_id(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The `user_id` partition value of this space's items.
    pub(crate) fn partition(&self) -> String {
        match &self.project {
            None => self.caller.user_id().to_owned(),
            Some(project) => project_partition(project),
        }
    }

    /// Binds cursors to the list and the space (a personal list's scope is unchanged, so
    /// cursors handed out before teams stay valid).
    pub(crate) fn cursor_scope(&self, list: &str) -> String {
        match &self.project {
            None => list.to_owned(),
            Some(project) => format!("{list}@{}", project_partition(project)),
        }
    }
}

/// The partition value of a project's workspace items in every owned table.
pub(crate) fn project_partition(project_id: &str) -> String {
    format!("{PROJECT_PARTITION_PREFIX}{project_id}")
}

/// The project whose workspace a partition value is, if it is one (else it is a user's).
#[cfg_attr(not(feature = "realtime"), allow(dead_code))]
pub(crate) fn project_of_partition(partition: &str) -> Option<&str> {
    partition.strip_prefix(PROJECT_PARTITION_PREFIX)
}

/// A user-partitioned table: `user_id` (HASH) + `id` (RANGE), listed newest first through a
/// GSI whose HASH is `user_id` and whose RANGE is `list_sort_key`.
#[derive(Clone, Debug)]
pub struct Collection {
    pub table: String,
    /// Singular noun for messages ("canvas not found").
    pub noun: &'static str,
    /// Binds cursors to this list, so one list's cursor is refused by another.
    pub scope: &'static str,
    pub list_index: &'static str,
    pub list_sort_key: &'static str,
}

impl Collection {
    /// A table listed newest-updated first on `user_id-updated_at-index`, as the seeds name it.
    pub fn by_updated_at(table: String, noun: &'static str, scope: &'static str) -> Self {
        Self { table, noun, scope, list_index: "user_id-updated_at-index", list_sort_key: attr::UPDATED_AT }
    }
}

/// What a conditional write expects of the stored item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The item must exist (any version).
    Exists,
    /// The item must exist with one of these versions (the strong ETags of `If-Match`). Empty
    /// when no listed tag can be a version of ours: the write then fails as 404 or 412.
    OneOf(Vec<u64>),
}

impl Expect {
    /// The item must exist with exactly this version.
    pub fn version(version: u64) -> Self {
        Self::OneOf(vec![version])
    }
}

/// The fields an update sets or removes, besides `updated_at` and `version`, which the store
/// always maintains itself.
#[derive(Default, Debug)]
pub struct Changes {
    set: Vec<(&'static str, AttributeValue)>,
    remove: Vec<&'static str>,
    guard: Option<Guard>,
}

/// A state precondition: the update applies only while `attr` holds one of `allowed`;
/// otherwise it is refused with a 409 carrying `refusal`, never silently applied.
#[derive(Debug)]
struct Guard {
    attr: &'static str,
    allowed: Vec<String>,
    refusal: String,
}

impl Changes {
    pub fn set<T: Serialize>(mut self, name: &'static str, value: &T) -> Result<Self, ApiError> {
        debug_assert!(!is_store_owned(name), "{name} is maintained by the store");
        let value = dynamo::to_attribute_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.set.push((name, value));
        Ok(self)
    }

    pub fn remove(mut self, name: &'static str) -> Self {
        debug_assert!(!is_store_owned(name), "{name} is maintained by the store");
        self.remove.push(name);
        self
    }

    /// A PATCH field that cannot be cleared: absent keeps it, `null` is refused; `check`
    /// validates the value and gives what is stored.
    pub fn patch_required<T, U: Serialize>(
        self,
        name: &'static str,
        value: Option<Option<T>>,
        check: impl FnOnce(T) -> Result<U, ApiError>,
    ) -> Result<Self, ApiError> {
        match value {
            None => Ok(self),
            Some(None) => Err(ApiError::bad_request(format!("{name} cannot be null"))),
            Some(Some(v)) => self.set(name, &check(v)?),
        }
    }

    /// A PATCH field that may be cleared: absent keeps it, `null` removes it.
    pub fn patch_optional<T, U: Serialize>(
        self,
        name: &'static str,
        value: Option<Option<T>>,
        check: impl FnOnce(T) -> Result<U, ApiError>,
    ) -> Result<Self, ApiError> {
        match value {
            None => Ok(self),
            Some(None) => Ok(self.remove(name)),
            Some(Some(v)) => self.set(name, &check(v)?),
        }
    }

    /// Applies the changes only while `attr` is one of `allowed` (a state transition).
    pub fn only_if(mut self, attr: &'static str, allowed: &[&str], refusal: impl Into<String>) -> Self {
        self.guard =
            Some(Guard { attr, allowed: allowed.iter().map(|s| (*s).to_owned()).collect(), refusal: refusal.into() });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

fn is_store_owned(name: &str) -> bool {
    [attr::USER_ID, attr::ID, attr::VERSION, attr::CREATED_AT, attr::UPDATED_AT].contains(&name)
}

#[derive(Clone)]
pub struct UserStore {
    client: Client,
    collection: Collection,
    cursors: CursorCodec,
    /// The profile table, whose item carries the account's deletion tombstone; `None` for a
    /// store that never creates (see [`Platform::reader`](crate::Platform::reader)).
    profiles: Option<String>,
    /// The projects table, whose item a create in a project checks (not being deleted).
    projects: Option<String>,
}

impl UserStore {
    pub fn new(
        client: Client,
        collection: Collection,
        cursors: CursorCodec,
        profiles: Option<String>,
        projects: Option<String>,
    ) -> Self {
        Self { client, collection, cursors, profiles, projects }
    }

    /// The conditions every create carries besides its own: the account guard and, in a
    /// project, that the project still exists and is not being deleted (so a project's deletion
    /// sweep, which starts by marking it, meets no item created behind it).
    pub fn create_guards(&self, space: &Space) -> Result<Vec<TransactWriteItem>, ApiError> {
        let mut guards = vec![self.account_guard(space.caller())?];
        if let Some(project) = space.project_id() {
            let table = self.projects.as_ref().ok_or_else(|| ApiError::Internal("PROJECTS_TABLE is not set".into()))?;
            let check = ConditionCheck::builder()
                .table_name(table)
                .key(attr::ID, AttributeValue::S(project.to_owned()))
                .condition_expression("attribute_exists(#id) AND attribute_not_exists(#deleting)")
                .expression_attribute_names("#id", attr::ID)
                .expression_attribute_names("#deleting", attr::DELETING_AT)
                .build()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            guards.push(TransactWriteItem::builder().condition_check(check).build());
        }
        Ok(guards)
    }

    /// The transaction item every create carries: the caller's account was not deleted after
    /// their token was issued. A transaction is serialized with the tombstone write of
    /// `DELETE /me`, so a create either lands before the tombstone (and the sweep that follows
    /// it finds the item) or is refused; none slips in behind the sweep.
    pub fn account_guard(&self, who: &Identity) -> Result<TransactWriteItem, ApiError> {
        let profiles = self.profiles.as_deref().ok_or_else(|| {
            ApiError::Internal("this store only reads: it has no profile table to guard creates".into())
        })?;
        account_guard(profiles, who)
    }

    pub fn collection(&self) -> &Collection {
        &self.collection
    }

    pub(crate) fn key(&self, space: &Space, id: &str) -> Item {
        HashMap::from([
            (attr::USER_ID.to_owned(), AttributeValue::S(space.partition())),
            (attr::ID.to_owned(), AttributeValue::S(id.to_owned())),
        ])
    }

    fn not_found(&self) -> ApiError {
        ApiError::NotFound(self.collection.noun)
    }

    /// The caller's item with this id, or 404 (also when another user owns that id).
    pub async fn get<T: DeserializeOwned>(&self, space: &Space, id: &str) -> Result<T, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.collection.table)
            .set_key(Some(self.key(space, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        let item = out.item.ok_or_else(|| self.not_found())?;
        from_item(item)
    }

    /// Stores a new item under the caller's partition. Never overwrites: an existing id is a 409.
    /// Refused (401) when the account was deleted after the caller's token was issued: the put
    /// and the [account guard](Self::account_guard) are one transaction, still one call.
    pub async fn create<T: Serialize + HasId>(&self, space: &Space, record: &T) -> Result<(), ApiError> {
        let mut item: Item = dynamo::to_item(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        item.insert(attr::USER_ID.to_owned(), AttributeValue::S(space.partition()));
        item.insert(attr::ID.to_owned(), AttributeValue::S(record.id().to_owned()));
        let put = Put::builder()
            .table_name(&self.collection.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(
                [vec![TransactWriteItem::builder().put(put).build()], self.create_guards(space)?].concat(),
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons = cancellation_reasons(&e);
                if reasons.failed(1) {
                    Err(ApiError::AccountDeleted)
                } else if reasons.failed(2) {
                    Err(ApiError::NotFound("project"))
                } else if reasons.failed(0) {
                    Err(ApiError::Conflict(format!("{} {} already exists", self.collection.noun, record.id())))
                } else if reasons.cancelled() {
                    Err(ApiError::Conflict("a concurrent request changed this item, retry".into()))
                } else {
                    Err(dynamo_error(e))
                }
            }
        }
    }

    /// Applies `changes` to the caller's item if it exists (and has the expected version),
    /// bumping `version` and `updated_at`. Returns the item as stored after the update.
    pub async fn update<T: DeserializeOwned>(
        &self,
        space: &Space,
        id: &str,
        expect: Expect,
        changes: Changes,
    ) -> Result<T, ApiError> {
        let mut names = HashMap::from([
            ("#version".to_owned(), attr::VERSION.to_owned()),
            ("#updated_at".to_owned(), attr::UPDATED_AT.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":one".to_owned(), AttributeValue::N("1".to_owned())),
            (":now".to_owned(), AttributeValue::S(Timestamp::now().into_string())),
        ]);
        let mut set = vec!["#updated_at = :now".to_owned(), "#version = #version + :one".to_owned()];
        for (i, (name, value)) in changes.set.into_iter().enumerate() {
            names.insert(format!("#s{i}"), name.to_owned());
            values.insert(format!(":s{i}"), value);
            set.push(format!("#s{i} = :s{i}"));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !changes.remove.is_empty() {
            let removed: Vec<String> = changes
                .remove
                .into_iter()
                .enumerate()
                .map(|(i, name)| {
                    names.insert(format!("#r{i}"), name.to_owned());
                    format!("#r{i}")
                })
                .collect();
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        let mut condition = Self::condition(&expect, &mut names, &mut values);
        let refusal = changes.guard.map(|guard| {
            names.insert("#guard".to_owned(), guard.attr.to_owned());
            let placeholders: Vec<String> = guard
                .allowed
                .into_iter()
                .enumerate()
                .map(|(i, state)| {
                    values.insert(format!(":g{i}"), AttributeValue::S(state));
                    format!(":g{i}")
                })
                .collect();
            condition.push_str(&format!(" AND #guard IN ({})", placeholders.join(", ")));
            guard.refusal
        });
        let result = self
            .client
            .update_item()
            .table_name(&self.collection.table)
            .set_key(Some(self.key(space, id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => from_item(out.attributes.ok_or_else(|| ApiError::Internal("update returned no item".into()))?),
            Err(e) => Err(self.write_error(e, &expect, refusal)),
        }
    }

    /// Deletes the caller's item if it exists (and has the expected version).
    pub async fn delete(&self, space: &Space, id: &str, expect: Expect) -> Result<(), ApiError> {
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let condition = Self::condition(&expect, &mut names, &mut values);
        let result = self
            .client
            .delete_item()
            .table_name(&self.collection.table)
            .set_key(Some(self.key(space, id)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(self.write_error(e, &expect, None)),
        }
    }

    /// One page of the caller's items, newest `list_sort_key` first, from the list index. The
    /// page also stops where its items would not fit in a Lambda response.
    pub async fn list<T: DeserializeOwned + Serialize>(
        &self,
        space: &Space,
        page: &PageRequest,
    ) -> Result<Page<T>, ApiError> {
        let c = &self.collection;
        let resume = ResumeKey([attr::ID, c.list_sort_key]);
        let scope = space.cursor_scope(c.scope);
        let start = resume.decode(&self.cursors, &scope, space, page.cursor.as_deref(), |_| true)?;
        // One item more than asked tells whether another page exists without a second call.
        let out = user_query(&self.client, &c.table, &space.partition(), "#uid = :uid")
            .index_name(c.list_index)
            .scan_index_forward(false)
            .limit(page.limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let more_stored = out.last_evaluated_key.is_some();
        let page = page_of(out.items.unwrap_or_default(), page.limit, more_stored, &resume, |i| i)?;
        // Resume after the last item returned (DynamoDB may also have stopped at its 1 MB page).
        let next_cursor = match (page.more, &page.last) {
            (true, Some(last)) => Some(self.cursors.encode(&scope, space.caller(), last)),
            _ => None,
        };
        Ok(Page { items: page.items, next_cursor })
    }

    /// The condition of a write to an existing item; adds the names and values it uses.
    pub(crate) fn condition(expect: &Expect, names: &mut HashMap<String, String>, values: &mut Item) -> String {
        names.insert("#id".to_owned(), attr::ID.to_owned());
        match expect {
            Expect::Exists => "attribute_exists(#id)".to_owned(),
            // Fails whether or not the item exists; the failure tells 404 from 412.
            Expect::OneOf(versions) if versions.is_empty() => {
                "attribute_exists(#id) AND attribute_not_exists(#id)".to_owned()
            }
            Expect::OneOf(versions) => {
                names.insert("#version".to_owned(), attr::VERSION.to_owned());
                let placeholders: Vec<String> = versions
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        values.insert(format!(":expected{i}"), AttributeValue::N(v.to_string()));
                        format!(":expected{i}")
                    })
                    .collect();
                format!("attribute_exists(#id) AND #version IN ({})", placeholders.join(", "))
            }
        }
    }

    /// A failed condition is a 404 when nothing was there, a 412 when the version differed,
    /// a 409 when a state guard refused. `ReturnValuesOnConditionCheckFailure` returns the old
    /// item, which tells them apart without a second read.
    fn write_error<E, R>(&self, err: SdkError<E, R>, expect: &Expect, refusal: Option<String>) -> ApiError
    where
        E: ProvideErrorMetadata + ConditionFailure + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let old = match err.as_service_error().and_then(ConditionFailure::condition_failure) {
            None => return dynamo_error(err),
            Some(None) => return self.not_found(),
            Some(Some(old)) => old,
        };
        let stored_version = match old.get(attr::VERSION) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        match (expect, refusal) {
            (Expect::OneOf(versions), _) if !stored_version.is_some_and(|v| versions.contains(&v)) => {
                ApiError::PreconditionFailed(format!(
                    "If-Match names no current version of the {}: fetch it again and retry",
                    self.collection.noun
                ))
            }
            (_, Some(refusal)) => ApiError::Conflict(refusal),
            _ => self.not_found(),
        }
    }
}

/// What one page returns of the items a Query read.
pub(crate) struct PageOf<T> {
    pub items: Vec<T>,
    /// The cursor key of the last one returned: where the next page resumes.
    pub last: Option<CursorKey>,
    /// Whether items remain after it.
    pub more: bool,
}

/// The account guard of [`UserStore::account_guard`] on the profile table `profiles`: the
/// caller's account was not deleted at or after their credential was issued.
pub(crate) fn account_guard(profiles: &str, who: &Identity) -> Result<TransactWriteItem, ApiError> {
    let check = ConditionCheck::builder()
        .table_name(profiles)
        .key(attr::USER_ID, AttributeValue::S(who.user_id().to_owned()))
        .condition_expression("attribute_not_exists(#deleted_at) OR #deleted_at < :issued_at")
        .expression_attribute_names("#deleted_at", attr::DELETED_AT)
        .expression_attribute_values(":issued_at", AttributeValue::N(who.issued_at().to_string()))
        .build()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// The page of `items` (read with one more than `limit`, so a surplus tells that more exist):
/// at most `limit` of them, and only as many as fit Lambda's response (`budget`), each shown
/// through `view`. `more_stored`: DynamoDB stopped before the end (its 1 MB page). Each stored
/// item is consumed as it is shown; only its `resume` key is kept.
pub(crate) fn page_of<T: DeserializeOwned + Serialize>(
    mut items: Vec<Item>,
    limit: u32,
    more_stored: bool,
    resume: &ResumeKey,
    view: impl Fn(Item) -> Item,
) -> Result<PageOf<T>, ApiError> {
    let limit = limit as usize;
    let mut more = more_stored || items.len() > limit;
    items.truncate(limit);
    let mut page = Vec::with_capacity(items.len());
    let mut last = None;
    let mut budget = crate::budget::Budget::default();
    for item in items {
        let key = resume.of(&item);
        let value: T = from_item(view(item))?;
        if !budget.admits(&value) {
            more = true;
            break;
        }
        page.push(value);
        last = Some(key);
    }
    Ok(PageOf { items: page, last, more })
}

/// A Query on one partition (a [`Space::partition`]): `#uid`/`:uid` are bound to it, and
/// `key_condition` must start with `#uid = :uid`.
pub(crate) fn user_query(
    client: &Client,
    table: &str,
    partition: &str,
    key_condition: &str,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    debug_assert!(key_condition.starts_with("#uid = :uid"));
    client
        .query()
        .table_name(table)
        .key_condition_expression(key_condition)
        .expression_attribute_names("#uid", attr::USER_ID)
        .expression_attribute_values(":uid", AttributeValue::S(partition.to_owned()))
}

/// Where a paged Query resumes: the key attributes (besides `user_id`) of the last item.
pub(crate) struct ResumeKey<'a>(pub [&'a str; 2]);

impl ResumeKey<'_> {
    /// The cursor key of an item.
    pub(crate) fn of(&self, item: &Item) -> CursorKey {
        self.0
            .iter()
            .filter_map(|name| match item.get(*name) {
                Some(AttributeValue::S(v)) => Some(((*name).to_owned(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// The `ExclusiveStartKey` of a cursor, in the caller's partition. `valid` checks the
    /// values (a child cursor must stay inside its parent).
    pub(crate) fn decode(
        &self,
        cursors: &CursorCodec,
        scope: &str,
        space: &Space,
        cursor: Option<&str>,
        valid: impl Fn(&CursorKey) -> bool,
    ) -> Result<Option<Item>, ApiError> {
        let Some(cursor) = cursor else { return Ok(None) };
        let key = cursors.decode(scope, space.caller(), cursor)?;
        if key.len() != self.0.len() || !self.0.iter().all(|k| key.contains_key(*k)) || !valid(&key) {
            return Err(ApiError::bad_request("cursor is invalid"));
        }
        let mut start: Item = key.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect();
        start.insert(attr::USER_ID.to_owned(), AttributeValue::S(space.partition()));
        Ok(Some(start))
    }
}

/// Records whose id the store needs to build the key.
pub trait HasId {
    fn id(&self) -> &str;
}

/// Operation errors that can report a failed condition check, with the old item if any.
pub trait ConditionFailure {
    fn condition_failure(&self) -> Option<Option<&Item>>;
}

macro_rules! condition_failure {
    ($($error:ty => $variant:path),* $(,)?) => {$(
        impl ConditionFailure for $error {
            fn condition_failure(&self) -> Option<Option<&Item>> {
                match self {
                    $variant(e) => Some(e.item()),
                    _ => None,
                }
            }
        }
    )*};
}

condition_failure!(
    aws_sdk_dynamodb::operation::update_item::UpdateItemError => aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError => aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException,
);

/// Why each item of a cancelled transaction failed, by position (empty if it was not cancelled).
pub(crate) struct Cancellation(Vec<Option<String>>);

impl Cancellation {
    /// The condition of the item at `index` was false.
    pub(crate) fn failed(&self, index: usize) -> bool {
        self.0.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
    }

    pub(crate) fn cancelled(&self) -> bool {
        !self.0.is_empty()
    }
}

pub(crate) fn cancellation_reasons<R>(err: &SdkError<TransactWriteItemsError, R>) -> Cancellation {
    Cancellation(
        err.as_service_error()
            .and_then(|s| match s {
                TransactWriteItemsError::TransactionCanceledException(t) => Some(t),
                _ => None,
            })
            .map(|t| t.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect())
            .unwrap_or_default(),
    )
}

pub(crate) fn from_item<T: DeserializeOwned>(mut item: Item) -> Result<T, ApiError> {
    item.remove(attr::USER_ID);
    dynamo::from_item(item).map_err(|e| ApiError::Internal(format!("stored item does not deserialize: {e}")))
}

/// Deletes items by key (each holding only the key attributes), 25 per BatchWriteItem, and
/// retries what DynamoDB leaves unprocessed under load.
pub(crate) async fn batch_delete(client: &Client, table: &str, keys: Vec<Item>) -> Result<(), ApiError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    for chunk in keys.chunks(25) {
        let mut requests = chunk
            .iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        for attempt in 0u32.. {
            let out = client.batch_write_item().request_items(table, requests).send().await.map_err(dynamo_error)?;
            requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            if requests.is_empty() {
                break;
            }
            if attempt >= 8 {
                return Err(ApiError::Unavailable(format!("{} deletes left unprocessed in {table}", requests.len())));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
        }
    }
    Ok(())
}

/// Maps a DynamoDB failure that is not a business outcome: throttling and unreachable service
/// are 503 (retryable); an item over DynamoDB's size limit is 413; anything else is a bug.
pub fn dynamo_error<E, R>(err: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ApiError::Unavailable(format!("{err:?}"))
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            match e.code() {
                Some(
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException",
                ) => ApiError::Unavailable(format!(
                    "{}: {}",
                    e.code().unwrap_or_default(),
                    e.message().unwrap_or_default()
                )),
                Some("TransactionConflictException") => {
                    ApiError::Conflict("a concurrent request changed this item, retry".into())
                }
                Some("ValidationException") if e.message().is_some_and(|m| m.contains("size has exceeded")) => {
                    ApiError::PayloadTooLarge("the item is larger than the storage limit".into())
                }
                code => ApiError::Internal(format!("dynamodb {code:?}: {}", e.message().unwrap_or_default())),
            }
        }
        _ => ApiError::Internal(format!("{err:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_space_has_its_own_partition_and_cursor_scope() {
        let alice = Identity::for_tests("alice");
        let personal = Space::personal(&alice);
        let project = Space::project(&alice, "p1");
        assert_eq!(personal.partition(), "alice");
        assert_eq!(project.partition(), "project#p1");
        assert_eq!(personal.cursor_scope("canvases"), "canvases", "personal cursors keep their scope");
        assert_ne!(project.cursor_scope("canvases"), Space::project(&alice, "p2").cursor_scope("canvases"));
        assert_eq!(project.caller(), &alice);
    }
}
