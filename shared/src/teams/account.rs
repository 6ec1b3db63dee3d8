//! What the caller's account does to their teams. `DELETE /me` is refused while they are the
//! only owner of an organization with other members; otherwise the account leaves every
//! organization and project, and takes along the organizations it is the only member of. The
//! export lists the caller's memberships, and the organizations they own with their projects.

use std::collections::BTreeMap;

use super::*;
use crate::partition::{ExportPage, Exported};

/// The caller's memberships as `DELETE /me` found them before its tombstone (from the user
/// index; the roles and counts that decide from the base tables, strongly consistent).
#[derive(Clone, Debug, Default)]
pub struct Leaving {
    /// Organizations the caller is the only member of: deleted with the account.
    sole_member_of: Vec<String>,
    /// Organizations the caller owns together with other owners: left in the tombstone's own
    /// transaction, so that two owners deleting their accounts at once cannot leave none.
    co_owned: Vec<String>,
    /// Every other organization: left after the tombstone.
    member_of: Vec<String>,
    /// Project memberships: (scope, organization).
    projects: Vec<(String, String)>,
}

/// A transaction holds at most 100 items: the tombstone and two per co-owned organization.
const CO_OWNED_MAX: usize = 49;

/// How leaving one organization ended.
enum Outcome {
    Left,
    Deleted,
    /// The membership was already gone.
    Gone,
    /// The caller became its last owner meanwhile and it has other members: the membership
    /// stays, granting nothing (see [`AccountState`]); its admins can remove it.
    Kept,
}

impl Leaving {
    /// Whether the tombstone must be written in one transaction with leaving organizations.
    pub(crate) fn in_tombstone(&self) -> bool {
        !self.co_owned.is_empty()
    }
}

impl Teams {
    /// Every membership of `user`, from the user index (one Query per page).
    async fn all_my_memberships(&self, user: &str) -> Result<Vec<Item>, ApiError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let out = user_query(&self.client, &self.memberships, user, "#uid = :uid")
                .index_name(MY_SCOPES_INDEX)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo_error)?;
            all.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(all),
            }
        }
    }

    /// Whether anyone but `user` is a member of the organization (one consistent Query).
    async fn has_other_members(&self, org_id: &str, user: &str) -> Result<bool, ApiError> {
        let out = self
            .client
            .query()
            .table_name(&self.memberships)
            .key_condition_expression("#scope = :scope")
            .projection_expression("#uid")
            .expression_attribute_names("#scope", SCOPE)
            .expression_attribute_names("#uid", attr::USER_ID)
            .expression_attribute_values(":scope", s(org_scope(org_id)))
            .consistent_read(true)
            .limit(2)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(out.items().iter().any(|m| text(m, attr::USER_ID) != Some(user)))
    }

    /// The first step of `DELETE /me`, before anything changes: the caller's memberships, or
    /// 409 naming the organizations they are the only owner of while others are members.
    pub async fn prepare_leaving(&self, who: &Identity) -> Result<Leaving, ApiError> {
        let me = who.user_id();
        let memberships = self.all_my_memberships(me).await?;
        let mut leaving = Leaving::default();
        let mut org_ids = Vec::new();
        for m in &memberships {
            match (text(m, SCOPE), text(m, ORG_ID)) {
                (Some(scope), Some(org)) if scope.starts_with(ORG_PREFIX) => org_ids.push(org.to_owned()),
                (Some(scope), Some(org)) => leaving.projects.push((scope.to_owned(), org.to_owned())),
                _ => {}
            }
        }
        let organizations = self.organizations()?;
        let mut wanted: Vec<(&str, Item)> = Vec::new();
        for id in &org_ids {
            wanted.push((organizations, Self::id_key(id)));
            wanted.push((&self.memberships, Self::membership_key(&org_scope(id), me)));
        }
        wanted.extend(self.profile_read(who));
        let mut found = self.batch_get(wanted).await?;
        let account = self.account_state(who, &mut found);
        let by_id = |items: Vec<Item>, attribute: &str| -> HashMap<String, Item> {
            items.into_iter().filter_map(|i| text(&i, attribute).map(str::to_owned).map(|k| (k, i))).collect()
        };
        let orgs = by_id(found.remove(organizations).unwrap_or_default(), attr::ID);
        let mine = by_id(found.remove(&self.memberships).unwrap_or_default(), ORG_ID);
        let mut blocked = Vec::new();
        for id in org_ids {
            // Gone since the index showed it: nothing to leave.
            let Some(membership) = mine.get(&id) else { continue };
            let owner = role_of(Some(membership)) == Some(Role::Owner);
            // A membership the account's last deletion left behind grants nothing: it never blocks.
            match orgs.get(&id) {
                Some(org) if owner && account.outlived_deletion(membership) => {
                    if number(org, OWNER_COUNT) > 1 {
                        leaving.co_owned.push(id);
                    } else if self.has_other_members(&id, me).await? {
                        let name = text(org, "name").unwrap_or_default();
                        blocked.push(format!("{name:?} ({id})"));
                    } else {
                        leaving.sole_member_of.push(id);
                    }
                }
                _ => leaving.member_of.push(id),
            }
        }
        if !blocked.is_empty() {
            return Err(ApiError::Conflict(format!(
                "you are the only owner of {}, which other people are members of: transfer the ownership \
                 (POST /orgs/{{org_id}}/transfer) or delete the organization (DELETE /orgs/{{org_id}}) first, \
                 then delete your account",
                blocked.join(", ")
            )));
        }
        if leaving.co_owned.len() > CO_OWNED_MAX {
            return Err(ApiError::Conflict(format!(
                "you own {} organizations together with other owners, more than one deletion can leave at once \
                 ({CO_OWNED_MAX}): leave some first (DELETE /orgs/{{org_id}}/members/{{user_id}})",
                leaving.co_owned.len()
            )));
        }
        Ok(leaving)
    }

    /// Writes the account's tombstone (`tombstone`, an update of the profile item) in one
    /// transaction with leaving the organizations the caller co-owns, each lowering its
    /// `owner_count` on condition that another owner stays. Refused (409, nothing changed) when
    /// one of them changed since [`Teams::prepare_leaving`] read it.
    pub(crate) async fn commit_tombstone(
        &self,
        who: &Identity,
        tombstone: Update,
        leaving: &Leaving,
    ) -> Result<(), ApiError> {
        let mut items = vec![TransactWriteItem::builder().update(tombstone).build()];
        for org in &leaving.co_owned {
            items.push(self.membership_write(&org_scope(org), who.user_id(), Some(Role::Owner), None, org)?);
            items.push(self.owner_count(org, -1)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(ApiError::Conflict(
                "an organization you own together with others changed meanwhile (did another owner leave?): \
                 repeat DELETE /me"
                    .into(),
            )),
        }
    }

    /// After the tombstone: deletes the organizations the caller was the only member of (with
    /// their projects and everything in them), leaves every other organization (lowering its
    /// `owner_count` when leaving as one of its owners) and every project. Counts per kind.
    pub async fn leave_all(
        &self,
        who: &Identity,
        leaving: &Leaving,
    ) -> Result<BTreeMap<&'static str, usize>, ApiError> {
        let mut memberships = leaving.co_owned.len();
        let mut deleted_orgs = Vec::new();
        for org in &leaving.sole_member_of {
            self.delete_org(&self.as_owner(who, org)).await?;
            deleted_orgs.push(org.as_str());
        }
        for org in &leaving.member_of {
            match self.leave_org(who, org).await? {
                Outcome::Left => memberships += 1,
                Outcome::Deleted => deleted_orgs.push(org),
                Outcome::Gone | Outcome::Kept => {}
            }
        }
        // Projects of the deleted organizations went with them.
        let projects: Vec<Item> = leaving
            .projects
            .iter()
            .filter(|(_, org)| !deleted_orgs.contains(&org.as_str()))
            .map(|(scope, _)| Self::membership_key(scope, who.user_id()))
            .collect();
        memberships += projects.len();
        batch_delete(&self.client, &self.memberships, projects).await?;
        Ok(BTreeMap::from([("membership", memberships), ("organization", deleted_orgs.len())]))
    }

    /// The caller as the owner of an organization, for deleting it with their account.
    fn as_owner(&self, who: &Identity, org_id: &str) -> OrgAccess {
        OrgAccess { caller: who.clone(), org_id: org_id.to_owned(), role: Role::Owner, org: None }
    }

    /// Removes the caller's membership of an organization as [`Teams::set_org_member`] does
    /// (conditional on the role read, `owner_count` in the same transaction).
    async fn leave_org(&self, who: &Identity, org_id: &str) -> Result<Outcome, ApiError> {
        let (me, scope) = (who.user_id(), org_scope(org_id));
        for _ in 0..5 {
            let Some(current) = role_of(self.membership(&scope, me).await?.as_ref()) else { return Ok(Outcome::Gone) };
            let mut items = vec![self.membership_write(&scope, me, Some(current), None, org_id)?];
            if current == Role::Owner {
                items.push(self.owner_count(org_id, -1)?);
            }
            match self.transact(items).await? {
                Ok(()) => return Ok(Outcome::Left),
                Err(failed) if failed.get(1) == Some(&true) => {
                    // The last owner, or the organization is gone (a deletion was interrupted).
                    let org = self.batch_get(vec![(self.organizations()?, Self::id_key(org_id))]).await?;
                    let exists = org.values().any(|items| !items.is_empty());
                    if exists && self.has_other_members(org_id, me).await? {
                        tracing::warn!(
                            org_id,
                            "the deleted account became the last owner meanwhile; its membership stays, void"
                        );
                        return Ok(Outcome::Kept);
                    }
                    self.delete_org(&self.as_owner(who, org_id)).await?;
                    return Ok(Outcome::Deleted);
                }
                // The role changed meanwhile: read it again.
                Err(_) => continue,
            }
        }
        Err(ApiError::Conflict("your membership of an organization kept changing: repeat DELETE /me".into()))
    }

    /// One phase of the export's team part (`phase` 0: the caller's memberships; 1: the
    /// organizations they own, each followed by its projects), from `resume`, into `page`.
    /// Returns where to resume when the page filled before the phase ended.
    pub(crate) async fn export_phase(
        &self,
        who: &Identity,
        phase: usize,
        resume: &CursorKey,
        page: &mut ExportPage,
    ) -> Result<Option<CursorKey>, ApiError> {
        let mut found = self.batch_get(self.profile_read(who).into_iter().collect()).await?;
        let account = self.account_state(who, &mut found);
        match phase {
            0 => self.export_memberships(who, resume, account, page).await,
            _ => self.export_owned(who, resume, account, page).await,
        }
    }

    async fn export_memberships(
        &self,
        who: &Identity,
        resume: &CursorKey,
        account: AccountState,
        page: &mut ExportPage,
    ) -> Result<Option<CursorKey>, ApiError> {
        let me = who.user_id();
        let mut start = resume.get(SCOPE).map(|scope| Self::membership_key(scope, me));
        let mut position = resume.clone();
        loop {
            let out = user_query(&self.client, &self.memberships, me, "#uid = :uid")
                .index_name(MY_SCOPES_INDEX)
                .limit(page.remaining() as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo_error)?;
            for m in out.items.unwrap_or_default() {
                let scope = text(&m, SCOPE).unwrap_or_default().to_owned();
                if account.grants(&m) && !page.push(Exported { kind: "membership", item: exported_membership(&m)? }) {
                    return Ok(Some(position));
                }
                position = CursorKey::from([(SCOPE.to_owned(), scope)]);
            }
            match out.last_evaluated_key {
                Some(_) if page.full() => return Ok(Some(position)),
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    /// The next organization the caller owns after the membership `after` (their order on the
    /// user index), with its item.
    async fn next_owned_org(
        &self,
        who: &Identity,
        after: Option<&str>,
        account: AccountState,
    ) -> Result<Option<(String, Item)>, ApiError> {
        let me = who.user_id();
        let mut start = after.map(|scope| Self::membership_key(scope, me));
        loop {
            let out = user_query(&self.client, &self.memberships, me, "#uid = :uid AND begins_with(#scope, :prefix)")
                .index_name(MY_SCOPES_INDEX)
                .filter_expression("#role = :owner")
                .expression_attribute_names("#scope", SCOPE)
                .expression_attribute_names("#role", ROLE)
                .expression_attribute_values(":prefix", s(ORG_PREFIX))
                .expression_attribute_values(":owner", s(Role::Owner.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo_error)?;
            for m in out.items.unwrap_or_default().iter().filter(|m| account.grants(m)) {
                let (Some(scope), Some(org_id)) = (text(m, SCOPE), text(m, ORG_ID)) else { continue };
                let mut found = self.batch_get(vec![(self.organizations()?, Self::id_key(org_id))]).await?;
                let org = found.remove(self.organizations()?).and_then(|mut o| o.pop());
                if let Some(org) = org.filter(|o| !o.contains_key(attr::DELETING_AT)) {
                    return Ok(Some((scope.to_owned(), org)));
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    /// The organizations the caller owns, each followed by its projects. The cursor holds the
    /// organization in progress (its item exported) and its last exported project.
    async fn export_owned(
        &self,
        who: &Identity,
        resume: &CursorKey,
        account: AccountState,
        page: &mut ExportPage,
    ) -> Result<Option<CursorKey>, ApiError> {
        let mut position = resume.clone();
        let mut after = resume.get(SCOPE).cloned();
        let mut current = after.as_deref().and_then(|s| s.strip_prefix(ORG_PREFIX)).map(str::to_owned);
        let mut projects_from = match (&current, resume.get(attr::ID), resume.get(attr::CREATED_AT)) {
            (Some(org), Some(id), Some(created)) => Some(Item::from([
                (attr::ID.to_owned(), s(id.as_str())),
                (attr::CREATED_AT.to_owned(), s(created.as_str())),
                (ORG_ID.to_owned(), s(org.as_str())),
            ])),
            _ => None,
        };
        loop {
            let org_id = match current.take() {
                Some(org_id) => org_id,
                None => {
                    let Some((scope, org)) = self.next_owned_org(who, after.as_deref(), account).await? else {
                        return Ok(None);
                    };
                    let organization: Organization = from_item(org)?;
                    let item = serde_json::to_value(&organization).map_err(internal)?;
                    if !page.push(Exported { kind: "organization", item }) {
                        return Ok(Some(position));
                    }
                    position = CursorKey::from([(SCOPE.to_owned(), scope.clone())]);
                    after = Some(scope);
                    if page.full() {
                        return Ok(Some(position));
                    }
                    organization.id
                }
            };
            loop {
                let out = self
                    .org_projects_query(&org_id)
                    .limit(page.remaining() as i32)
                    .set_exclusive_start_key(projects_from.take())
                    .send()
                    .await
                    .map_err(dynamo_error)?;
                for stored in out.items.unwrap_or_default() {
                    if stored.contains_key(attr::DELETING_AT) {
                        continue;
                    }
                    let project: Project = from_item(stored)?;
                    let item = serde_json::to_value(&project).map_err(internal)?;
                    if !page.push(Exported { kind: "project", item }) {
                        return Ok(Some(position));
                    }
                    position = CursorKey::from([
                        (SCOPE.to_owned(), org_scope(&org_id)),
                        (attr::ID.to_owned(), project.id),
                        (attr::CREATED_AT.to_owned(), project.created_at),
                    ]);
                }
                match out.last_evaluated_key {
                    Some(_) if page.full() => return Ok(Some(position)),
                    Some(key) => projects_from = Some(key),
                    None => break,
                }
            }
            if page.full() {
                return Ok(Some(position));
            }
        }
    }
}

/// A membership as the export shows it.
#[derive(Serialize)]
struct ExportedMembership<'a> {
    /// `organization` or `project`.
    scope: &'static str,
    org_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    role: Role,
    created_at: &'a str,
    updated_at: &'a str,
}

fn exported_membership(m: &Item) -> Result<serde_json::Value, ApiError> {
    let scope = text(m, SCOPE).ok_or_else(|| internal("membership without scope"))?;
    let project_id = scope.strip_prefix(crate::store::PROJECT_PARTITION_PREFIX);
    let view = ExportedMembership {
        scope: if project_id.is_some() { "project" } else { "organization" },
        org_id: text(m, ORG_ID).unwrap_or_default(),
        project_id,
        role: role_of(Some(m)).ok_or_else(|| internal("membership without role"))?,
        created_at: text(m, attr::CREATED_AT).unwrap_or_default(),
        updated_at: text(m, attr::UPDATED_AT).unwrap_or_default(),
    };
    serde_json::to_value(view).map_err(internal)
}
