//! The whole of a user's data: their profile, and their partition in every table. Export
//! pages through all of it; deletion removes all of it. Both only ever Query the caller's own
//! partition key, so nothing of another user can be read or touched. Their teams (memberships,
//! the organizations they own) come through `shared::teams`, which reaches them the same way:
//! from the caller's memberships.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use aws_sdk_dynamodb::{types::AttributeValue, Client};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use serde_json::Value;

use crate::{
    auth::Identity,
    budget,
    config::{ConfigError, Env},
    cursor::{CursorCodec, CursorKey, Page, PageRequest},
    error::ApiError,
    item::Timestamp,
    owned::{self, NamedTable, Retention, PROFILE_TABLE},
    store::{attr, batch_delete, dynamo_error, user_query, Item},
    teams::{Leaving, Teams},
};

/// The caller's profile, created on first use.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Profile {
    pub user_id: String,
    pub created_at: String,
}

/// One exported item and what it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Exported {
    /// `profile`; the kind of the owned table it comes from (`canvas`, `session`, `message`,
    /// `workflow`, `file`); `membership` (one of the caller's: `scope` `organization` or
    /// `project`, `org_id`, `project_id` for a project, `role`, `created_at`, `updated_at`);
    /// `organization` (one the caller owns) or `project` (one of an organization they own).
    #[schema(example = "canvas")]
    pub kind: &'static str,
    #[schema(value_type = Object)]
    pub item: Value,
}

#[derive(Clone)]
pub struct Partition {
    client: Client,
    profiles: String,
    /// The owned tables whose items are exported (the users' content), in export order.
    exported: Vec<NamedTable>,
    /// Every owned table of the registry: all of it goes with the account.
    deleted: Vec<NamedTable>,
    cursors: CursorCodec,
    /// The caller's teams: exported after the tables, left and deleted with the account.
    teams: Option<Arc<Teams>>,
}

/// The phases of the export after the owned tables: memberships, then owned organizations.
const TEAM_PHASES: usize = 2;

/// The items of one export page, kept within the page's count and size budget.
pub(crate) struct ExportPage {
    items: Vec<Exported>,
    used: usize,
    limit: usize,
}

impl ExportPage {
    pub(crate) fn full(&self) -> bool {
        self.items.len() >= self.limit
    }

    pub(crate) fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.items.len())
    }

    /// Adds the item unless it would take the page over its size budget (false: the page ends
    /// before it). A page's first item always fits.
    pub(crate) fn push(&mut self, item: Exported) -> bool {
        let size = budget::escaped_size(&item);
        if self.used + size > budget::PAGE_BUDGET_BYTES && !self.items.is_empty() {
            return false;
        }
        self.used += size;
        self.items.push(item);
        true
    }
}

const EXPORT_SCOPE: &str = "export";
const CURSOR_TABLE: &str = "table";

impl Partition {
    /// The caller's data in every table of the registry, named from the environment.
    pub fn from_env(client: Client, env: &Env, cursors: CursorCodec) -> Result<Self, ConfigError> {
        let deleted = owned::named(env, |_| true)?;
        let exported = deleted.iter().filter(|t| t.spec.retention == Retention::Content).cloned().collect();
        Ok(Self { client, profiles: env.required(PROFILE_TABLE.env)?, exported, deleted, cursors, teams: None })
    }

    /// Includes the caller's teams: their memberships and owned organizations in the export,
    /// leaving them (or refusing, 409) in the deletion.
    pub fn with_teams(mut self, teams: Arc<Teams>) -> Self {
        self.teams = Some(teams);
        self
    }

    /// How many phases the export has: the owned tables, then the team phases.
    fn phases(&self) -> usize {
        self.exported.len() + if self.teams.is_some() { TEAM_PHASES } else { 0 }
    }

    fn profile_key(who: &Identity) -> Item {
        Item::from([(attr::USER_ID.to_owned(), AttributeValue::S(who.user_id().to_owned()))])
    }

    /// The caller's profile item: the profile (if it has been created since the last
    /// deletion) and the deletion tombstone (if the account was ever deleted).
    async fn read_profile(&self, who: &Identity) -> Result<Stored, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.profiles)
            .set_key(Some(Self::profile_key(who)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        Stored::from_item(out.item)
    }

    /// The caller's profile, created on first use by a conditional write: concurrent first
    /// requests create it once and all see the same one. A token issued before the account's
    /// deletion gets 401 [`ApiError::AccountDeleted`] and never re-creates the profile; a later
    /// one creates it over the tombstone, whose `deleted_at` stays (it still refuses the old
    /// tokens) but whose TTL goes (the profile lives on).
    pub async fn profile(&self, who: &Identity) -> Result<Profile, ApiError> {
        let stored = self.read_profile(who).await?;
        if stored.revokes(who) {
            return Err(ApiError::AccountDeleted);
        }
        if let Some(profile) = stored.profile {
            return Ok(profile);
        }
        let profile = Profile { user_id: who.user_id().to_owned(), created_at: Timestamp::now().into_string() };
        let created = self
            .client
            .update_item()
            .table_name(&self.profiles)
            .set_key(Some(Self::profile_key(who)))
            .update_expression("SET #created_at = :created_at REMOVE #expires_at")
            .condition_expression(
                "attribute_not_exists(#created_at) AND (attribute_not_exists(#deleted_at) OR #deleted_at < :issued_at)",
            )
            .expression_attribute_names("#created_at", attr::CREATED_AT)
            .expression_attribute_names("#expires_at", attr::EXPIRES_AT)
            .expression_attribute_names("#deleted_at", attr::DELETED_AT)
            .expression_attribute_values(":created_at", AttributeValue::S(profile.created_at.clone()))
            .expression_attribute_values(":issued_at", AttributeValue::N(who.issued_at().to_string()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(profile),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                // Another request created it, or a deletion began meanwhile: read which.
                let stored = self.read_profile(who).await?;
                if stored.revokes(who) {
                    return Err(ApiError::AccountDeleted);
                }
                stored.profile.ok_or_else(|| ApiError::Conflict("profile is being deleted, retry".into()))
            }
            Err(e) => Err(dynamo_error(e)),
        }
    }

    /// One page of everything the caller owns: the profile first, then each table in turn,
    /// then their memberships and the organizations they own. The cursor says which phase and
    /// where in it to resume.
    pub async fn export(&self, who: &Identity, page: &PageRequest) -> Result<Page<Exported>, ApiError> {
        let (mut phase, mut resume) = match &page.cursor {
            None => (0, CursorKey::new()),
            Some(cursor) => self.resume_point(self.cursors.decode(EXPORT_SCOPE, who, cursor)?)?,
        };
        let mut out = ExportPage { items: Vec::new(), used: 0, limit: page.limit as usize };
        if page.cursor.is_none() {
            if let Some(profile) = self.read_profile(who).await?.profile {
                out.push(Exported {
                    kind: "profile",
                    item: serde_json::to_value(profile).map_err(|e| ApiError::Internal(e.to_string()))?,
                });
            }
        }
        while phase < self.phases() {
            if out.full() {
                // The page is full: the phase starts on the next one.
                return Ok(Page { items: out.items, next_cursor: Some(self.cursor(who, phase, resume)) });
            }
            let stopped = match (phase.checked_sub(self.exported.len()), &self.teams) {
                (Some(team_phase), Some(teams)) => teams.export_phase(who, team_phase, &resume, &mut out).await?,
                _ => self.export_table(who, phase, &resume, &mut out).await?,
            };
            if let Some(at) = stopped {
                return Ok(Page { items: out.items, next_cursor: Some(self.cursor(who, phase, at)) });
            }
            phase += 1;
            resume = CursorKey::new();
        }
        Ok(Page { items: out.items, next_cursor: None })
    }

    /// One owned table's part of an export page, from `resume` (`id`: after that item). Returns
    /// where to resume when the page filled before the table ended.
    async fn export_table(
        &self,
        who: &Identity,
        table: usize,
        resume: &CursorKey,
        page: &mut ExportPage,
    ) -> Result<Option<CursorKey>, ApiError> {
        let owned = &self.exported[table];
        let at = |id: &str| CursorKey::from([(attr::ID.to_owned(), id.to_owned())]);
        let mut start = resume.get(attr::ID).map(|id| {
            Item::from([
                (attr::USER_ID.to_owned(), AttributeValue::S(who.user_id().to_owned())),
                (attr::ID.to_owned(), AttributeValue::S(id.clone())),
            ])
        });
        let mut position = resume.clone();
        loop {
            let out = user_query(&self.client, &owned.name, who.user_id(), "#uid = :uid")
                .limit(page.remaining() as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo_error)?;
            for mut item in out.items.unwrap_or_default() {
                let id = match item.get(attr::ID) {
                    Some(AttributeValue::S(id)) => Some(id.clone()),
                    _ => None,
                };
                item.remove(attr::USER_ID);
                for name in owned.spec.internal {
                    item.remove(*name);
                }
                let item: Value = dynamo::from_item(item).map_err(|e| ApiError::Internal(format!("export: {e}")))?;
                if !page.push(Exported { kind: owned.spec.kind, item }) {
                    // The page is full by size: resume after the last item it holds.
                    return Ok(Some(position));
                }
                if let Some(id) = id {
                    position = at(&id);
                }
            }
            // DynamoDB stops a page at 1 MB: continue in the same table, else move on.
            match out.last_evaluated_key {
                Some(_) if page.full() => return Ok(Some(position)),
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    fn cursor(&self, who: &Identity, phase: usize, mut at: CursorKey) -> String {
        at.insert(CURSOR_TABLE.to_owned(), phase.to_string());
        self.cursors.encode(EXPORT_SCOPE, who, &at)
    }

    /// The phase a cursor names, and where in it to resume (the rest of its key).
    fn resume_point(&self, mut key: CursorKey) -> Result<(usize, CursorKey), ApiError> {
        let phase = key
            .remove(CURSOR_TABLE)
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|t| *t < self.phases())
            .ok_or_else(|| ApiError::bad_request("cursor is invalid"))?;
        Ok((phase, key))
    }

    /// The first step of deleting the account: the tombstone on the profile item. From its
    /// write on, every create made with a token issued at or before `deleted_at` is refused
    /// (see [`UserStore::account_guard`](crate::store::UserStore::account_guard)), so the sweep
    /// of [`Partition::delete_all`] that follows meets no new item of an old token. Seconds
    /// are whole: a token issued in the same second as the deletion counts as issued before it.
    /// A repeated deletion moves `deleted_at` forward. The tombstone expires by TTL after
    /// [`TOMBSTONE_TTL`], longer than any token lives.
    ///
    /// Before it, with teams: refused (409, nothing changed) while the caller is the only owner
    /// of an organization that has other members ([`Teams::prepare_leaving`]); the
    /// organizations they own together with other owners are left in the tombstone's own
    /// transaction.
    pub async fn begin_deletion(&self, who: &Identity) -> Result<Tombstone, ApiError> {
        let leaving = match &self.teams {
            Some(teams) => teams.prepare_leaving(who).await?,
            None => Leaving::default(),
        };
        let deleted_at = jsonwebtoken::get_current_timestamp();
        // One expression for both ways of writing it (in a transaction or on its own).
        let set = "SET #deleted_at = :deleted_at, #expires_at = :expires_at";
        let names = HashMap::from([
            ("#deleted_at".to_owned(), attr::DELETED_AT.to_owned()),
            ("#expires_at".to_owned(), attr::EXPIRES_AT.to_owned()),
        ]);
        let values = HashMap::from([
            (":deleted_at".to_owned(), AttributeValue::N(deleted_at.to_string())),
            (":expires_at".to_owned(), AttributeValue::N((deleted_at + TOMBSTONE_TTL.as_secs()).to_string())),
        ]);
        let had_profile = match &self.teams {
            Some(teams) if leaving.in_tombstone() => {
                // A transaction returns no old item: whether there was a profile is read first.
                let had_profile = self.read_profile(who).await?.profile.is_some();
                let tombstone = aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&self.profiles)
                    .set_key(Some(Self::profile_key(who)))
                    .update_expression(set)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                teams.commit_tombstone(who, tombstone, &leaving).await?;
                had_profile
            }
            _ => {
                let old = self
                    .client
                    .update_item()
                    .table_name(&self.profiles)
                    .set_key(Some(Self::profile_key(who)))
                    .update_expression(set)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                    .send()
                    .await
                    .map_err(dynamo_error)?;
                old.attributes.is_some_and(|a| a.contains_key(attr::CREATED_AT))
            }
        };
        Ok(Tombstone { deleted_at, had_profile, leaving })
    }

    /// Leaves the caller's organizations and projects (deleting those they were the only member
    /// of), deletes every item of the caller in every table, then reduces the profile to the
    /// bare `tombstone` that [`Partition::begin_deletion`] wrote. Idempotent: if it is
    /// interrupted, running the deletion again finishes the job. Returns counts per kind.
    pub async fn delete_all(
        &self,
        who: &Identity,
        tombstone: Tombstone,
    ) -> Result<BTreeMap<&'static str, usize>, ApiError> {
        let mut counts = match &self.teams {
            Some(teams) => teams.leave_all(who, &tombstone.leaving).await?,
            None => BTreeMap::new(),
        };
        for owned in &self.deleted {
            let mut deleted = 0;
            loop {
                // Always from the start: what was deleted is gone, so this ends when the partition
                // is empty. Strongly consistent on the base table, so every create that committed
                // before the tombstone is seen.
                let out = user_query(&self.client, &owned.name, who.user_id(), "#uid = :uid")
                    .consistent_read(true)
                    .projection_expression("#uid, #id")
                    .expression_attribute_names("#id", attr::ID)
                    .send()
                    .await
                    .map_err(dynamo_error)?;
                let keys = out.items.unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                deleted += keys.len();
                batch_delete(&self.client, &owned.name, keys).await?;
            }
            // Bookkeeping (connections) goes too, but only the user's content is counted.
            if owned.spec.retention == Retention::Content {
                counts.insert(owned.spec.kind, deleted);
            }
        }
        // The whole profile goes; only the tombstone stays. Not over a later deletion's one.
        let bare = Item::from([
            (attr::USER_ID.to_owned(), AttributeValue::S(who.user_id().to_owned())),
            (attr::DELETED_AT.to_owned(), AttributeValue::N(tombstone.deleted_at.to_string())),
            (
                attr::EXPIRES_AT.to_owned(),
                AttributeValue::N((tombstone.deleted_at + TOMBSTONE_TTL.as_secs()).to_string()),
            ),
        ]);
        let reduced = self
            .client
            .put_item()
            .table_name(&self.profiles)
            .set_item(Some(bare))
            .condition_expression("#deleted_at = :deleted_at")
            .expression_attribute_names("#deleted_at", attr::DELETED_AT)
            .expression_attribute_values(":deleted_at", AttributeValue::N(tombstone.deleted_at.to_string()))
            .send()
            .await;
        match reduced {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(dynamo_error(e)),
        }
        counts.insert("profile", usize::from(tombstone.had_profile));
        Ok(counts)
    }
}

/// How long a deletion tombstone outlives the deletion before DynamoDB's TTL removes it: longer
/// than any token lives (access tokens last hours at most), so no token issued before the
/// deletion can still be valid once the tombstone is gone.
pub const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A deletion in progress: written by [`Partition::begin_deletion`], completed by
/// [`Partition::delete_all`].
#[derive(Clone, Debug)]
pub struct Tombstone {
    deleted_at: u64,
    had_profile: bool,
    /// The memberships found before the tombstone, left by `delete_all`.
    leaving: Leaving,
}

/// What the profile item holds.
struct Stored {
    profile: Option<Profile>,
    deleted_at: Option<u64>,
}

impl Stored {
    fn from_item(item: Option<Item>) -> Result<Self, ApiError> {
        let Some(item) = item else { return Ok(Self { profile: None, deleted_at: None }) };
        let deleted_at = match item.get(attr::DELETED_AT) {
            Some(AttributeValue::N(n)) => {
                Some(n.parse().map_err(|_| ApiError::Internal(format!("stored deleted_at {n:?}")))?)
            }
            _ => None,
        };
        // A bare tombstone has no created_at: no profile.
        let profile = if item.contains_key(attr::CREATED_AT) {
            Some(dynamo::from_item(item).map_err(|e| ApiError::Internal(format!("stored profile: {e}")))?)
        } else {
            None
        };
        Ok(Self { profile, deleted_at })
    }

    /// The account was deleted at or after the moment `who`'s token was issued.
    fn revokes(&self, who: &Identity) -> bool {
        self.deleted_at.is_some_and(|d| d >= who.issued_at())
    }
}
