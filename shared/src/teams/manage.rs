//! Organizations, projects and memberships: creating, listing, changing. Every change that a
//! rule depends on (the last owner, the organization of a project member) is one transaction.

use super::*;

impl Teams {
    pub(super) fn guard(&self, who: &Identity) -> Result<TransactWriteItem, ApiError> {
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

    pub(super) fn membership_item(scope: &str, user: &str, role: Role, org_id: &str, now: &str) -> Item {
        Item::from([
            (SCOPE.to_owned(), s(scope)),
            (attr::USER_ID.to_owned(), s(user)),
            (ROLE.to_owned(), s(role.as_str())),
            (ORG_ID.to_owned(), s(org_id)),
            (attr::CREATED_AT.to_owned(), s(now)),
            (attr::UPDATED_AT.to_owned(), s(now)),
        ])
    }

    /// Creates an organization with the caller as its only owner.
    pub async fn create_org(&self, who: &Identity, name: String, plan: Plan) -> Result<Organization, ApiError> {
        who.require_signed_in(super::ORGANIZATIONS_NEED_A_PERSON)?;
        self.create_org_with_id(who, item::new_id(), name, plan).await?.ok_or_else(concurrent_change)
    }

    /// Creates the organization a user named when signing up, once: its id is derived from
    /// their user id, so a repeated or retried confirmation finds it there (`None`) instead of
    /// founding a second one. `who` is a user the identity provider vouched for (crate-private).
    /// Returns the organization's id, new or not.
    #[cfg_attr(not(feature = "cognito"), allow(dead_code))]
    pub(crate) async fn found_signup_org(&self, who: &Identity, name: String) -> Result<String, ApiError> {
        let id = signup_org_id(who.user_id());
        self.create_org_with_id(who, id.clone(), name, Plan::Free).await?;
        Ok(id)
    }

    /// `None` when an organization with this id exists already.
    async fn create_org_with_id(
        &self,
        who: &Identity,
        id: String,
        name: String,
        plan: Plan,
    ) -> Result<Option<Organization>, ApiError> {
        let now = Timestamp::now().into_string();
        let org = Organization { id, name, plan, created_at: now.clone(), updated_at: now.clone(), version: 1 };
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
            Ok(()) => Ok(Some(org)),
            Err(failed) if failed.get(2) == Some(&true) => Err(ApiError::AccountDeleted),
            Err(failed) if failed.first() == Some(&true) => Ok(None),
            Err(_) => Err(concurrent_change()),
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

    /// The items of `table` with these ids, in the given order (missing ones left out), and the
    /// caller's account state, in one BatchGetItem.
    async fn by_ids(&self, who: &Identity, table: &str, ids: &[String]) -> Result<(Vec<Item>, AccountState), ApiError> {
        if ids.is_empty() {
            return Ok((Vec::new(), AccountState::default()));
        }
        let keys = ids.iter().map(|id| (table, Self::id_key(id)));
        let mut found = self.batch_get(keys.chain(self.profile_read(who)).collect()).await?;
        let account = self.account_state(who, &mut found);
        let mut items: HashMap<String, Item> = found
            .remove(table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| text(&i, attr::ID).map(str::to_owned).map(|id| (id, i)))
            .collect();
        let items =
            ids.iter().filter_map(|id| items.remove(id)).filter(|i| !i.contains_key(attr::DELETING_AT)).collect();
        Ok((items, account))
    }

    /// The caller's organizations with their role: one Query and one BatchGetItem per page.
    pub async fn my_orgs(&self, who: &Identity, page: &PageRequest) -> Result<Page<MyOrganization>, ApiError> {
        who.require_signed_in(super::ORGANIZATIONS_NEED_A_PERSON)?;
        let (memberships, next_cursor) = self.my_scopes(who, ORG_PREFIX, "orgs", page, None).await?;
        let ids: Vec<String> = memberships.iter().filter_map(|m| text(m, ORG_ID).map(str::to_owned)).collect();
        let (orgs, account) = self.by_ids(who, self.organizations()?, &ids).await?;
        let items = orgs
            .into_iter()
            .filter_map(|org| {
                let id = text(&org, attr::ID).unwrap_or_default().to_owned();
                let membership = memberships.iter().find(|m| text(m, ORG_ID) == Some(&id) && account.grants(m))?;
                let role = role_of(Some(membership)).unwrap_or(Role::Viewer);
                Some(from_item(org).map(|organization| MyOrganization { organization, role }))
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
                .org_projects_query(&org.org_id)
                .filter_expression("attribute_not_exists(#deleting)")
                .expression_attribute_names("#deleting", attr::DELETING_AT)
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
        let (projects, account) = self.by_ids(who, &self.projects, &ids).await?;
        let items = projects
            .into_iter()
            .filter_map(|p| {
                let scope = project_partition(text(&p, attr::ID).unwrap_or_default());
                let membership = memberships.iter().find(|m| text(m, SCOPE) == Some(&scope) && account.grants(m))?;
                let role = role_of(Some(membership)).unwrap_or(Role::Viewer);
                Some(from_item(p).map(|project| MyProject { project, role }))
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
        // The store's own condition for `If-Match`, and not being deleted.
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let condition = format!(
            "{} AND attribute_not_exists(#deleting)",
            crate::store::UserStore::condition(&expect, &mut names, &mut values)
        );
        for (name, value) in names {
            update = update.expression_attribute_names(name, value);
        }
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
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
                    Some(Some(old)) if !old.contains_key(attr::DELETING_AT) => Err(ApiError::PreconditionFailed(
                        format!("{noun} has changed since the version in If-Match: fetch it again and retry"),
                    )),
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

    pub(super) async fn membership(&self, scope: &str, user: &str) -> Result<Option<Item>, ApiError> {
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
    pub(super) fn owner_count(&self, org_id: &str, delta: i64) -> Result<TransactWriteItem, ApiError> {
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

    pub(super) fn membership_write(
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
}

fn concurrent_change() -> ApiError {
    ApiError::Conflict("a concurrent request changed this organization, retry".into())
}

/// The id of the organization `user_id` founds at sign-up: a UUID made of a digest of the user
/// id, the same on every confirmation.
fn signup_org_id(user_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("signup-org:{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

#[cfg(test)]
mod signup_tests {
    use super::*;

    #[test]
    fn a_users_signup_organization_id_is_stable_and_theirs_alone() {
        let id = signup_org_id("user-a");
        assert_eq!(id, signup_org_id("user-a"));
        assert_ne!(id, signup_org_id("user-b"));
        assert_eq!(item::parse_id(&id, "organization").as_deref(), Ok(id.as_str()), "a UUID the routes accept");
    }
}
