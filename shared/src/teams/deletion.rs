//! Deleting projects and organizations: marked first (creates are refused from then on), then
//! swept, then removed; a repeat continues an interrupted deletion.

use super::*;

impl Teams {
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
        // None is made once the project is marked, so this sees every one.
        self.sweep(self.invitations()?, SCOPE, attr::ID, &partition).await?;
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

    /// A Query for an organization's projects, on the projects table's `org_id` index.
    pub(super) fn org_projects_query(
        &self,
        org_id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.projects)
            .index_name(ORG_PROJECTS_INDEX)
            .key_condition_expression("#org = :org")
            .expression_attribute_names("#org", ORG_ID)
            .expression_attribute_values(":org", s(org_id))
    }

    /// The ids of an organization's projects, from its index (one Query per page).
    async fn org_project_ids(&self, org_id: &str) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .org_projects_query(org_id)
                .projection_expression("#id")
                .expression_attribute_names("#id", attr::ID)
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
        // The organization's own invitations (its projects' go with each project); none is
        // made once it is marked.
        self.sweep(self.invitations()?, SCOPE, attr::ID, &org_scope(&org.org_id)).await?;
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
            let out = super::scope_members(&self.client, &self.memberships, &scope)
                .projection_expression("#scope, #uid")
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
