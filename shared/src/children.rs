//! Items that belong to a parent item of the same user (a session's messages): appended in a
//! transaction that also touches the parent, listed in creation order in one Query, and purged
//! with the parent.

use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, TransactWriteItem, Update},
    Client,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use crate::{
    auth::Identity,
    cursor::{CursorCodec, CursorKey, PageRequest},
    error::ApiError,
    item::Timestamp,
    store::{attr, batch_delete, dynamo_error, from_item, user_query, HasId, Item, ResumeKey, UserStore},
};

/// A child table: `user_id` (HASH) + `id` (RANGE), and an index whose HASH is `user_id` and
/// whose RANGE `order_attr` is `"<parent id>#<child id>"`: child ids are time-ordered, so one
/// Query with `begins_with` returns a parent's children in creation order.
#[derive(Clone, Debug)]
pub struct ChildCollection {
    pub table: String,
    pub noun: &'static str,
    pub scope: &'static str,
    pub index: &'static str,
    pub parent_attr: &'static str,
    pub order_attr: &'static str,
}

#[derive(Clone)]
pub struct ChildStore {
    client: Client,
    collection: ChildCollection,
    cursors: CursorCodec,
}

/// A page of children. `next_cursor` is `null` on the last page, like every list;
/// `poll_cursor` always marks the position after the newest child seen, so a client without a
/// socket can ask later for what came since (`?after=`).
#[derive(Debug, serde::Serialize)]
pub struct ChildPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub poll_cursor: Option<String>,
}

impl ChildStore {
    pub fn new(client: Client, collection: ChildCollection, cursors: CursorCodec) -> Self {
        Self { client, collection, cursors }
    }

    /// The ordering-index value of a child: `"<parent id>#<child id>"`. Public so tools that
    /// write children outside a request (the migration) derive it exactly as the store does.
    pub fn order_key(parent_id: &str, child_id: &str) -> String {
        format!("{parent_id}#{child_id}")
    }

    /// Cursors are bound to the user, the list and the parent.
    fn scope(&self, parent_id: &str) -> String {
        format!("{}:{parent_id}", self.collection.scope)
    }

    /// Stores `child` under `parent_id` and bumps the parent's `updated_at`, in one
    /// transaction: the child is written only if the caller's parent exists (else 404).
    pub async fn append<C: Serialize + HasId>(
        &self,
        who: &Identity,
        parent: &UserStore,
        parent_id: &str,
        child: &C,
    ) -> Result<(), ApiError> {
        let c = &self.collection;
        let mut item: Item = dynamo::to_item(child).map_err(|e| ApiError::Internal(e.to_string()))?;
        item.insert(attr::USER_ID.to_owned(), AttributeValue::S(who.user_id().to_owned()));
        item.insert(attr::ID.to_owned(), AttributeValue::S(child.id().to_owned()));
        item.insert(c.parent_attr.to_owned(), AttributeValue::S(parent_id.to_owned()));
        item.insert(c.order_attr.to_owned(), AttributeValue::S(Self::order_key(parent_id, child.id())));
        let put = Put::builder()
            .table_name(&c.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let touch = Update::builder()
            .table_name(&parent.collection().table)
            .set_key(Some(parent.key(who, parent_id)))
            .update_expression("SET #updated_at = :now")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#updated_at", attr::UPDATED_AT)
            .expression_attribute_values(":now", AttributeValue::S(Timestamp::now().into_string()))
            .build()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(touch).build())
            // Refused once the account is deleted after the token was issued (see UserStore::create).
            .transact_items(parent.account_guard(who)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons: Vec<Option<String>> = e
                    .as_service_error()
                    .and_then(|s| match s {
                        TransactWriteItemsError::TransactionCanceledException(t) => Some(t),
                        _ => None,
                    })
                    .map(|t| t.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let failed = |i: usize| reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
                if failed(2) {
                    Err(ApiError::AccountDeleted)
                } else if failed(1) {
                    Err(ApiError::NotFound(parent.collection().noun))
                } else if failed(0) {
                    Err(ApiError::Conflict(format!("{} {} already exists", c.noun, child.id())))
                } else if !reasons.is_empty() {
                    Err(ApiError::Conflict("a concurrent request changed this item, retry".into()))
                } else {
                    Err(dynamo_error(e))
                }
            }
        }
    }

    /// The caller's children of `parent_id`, oldest first, resuming after `page.cursor`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        who: &Identity,
        parent_id: &str,
        page: &PageRequest,
    ) -> Result<ChildPage<T>, ApiError> {
        let scope = self.scope(parent_id);
        let resume = ResumeKey([attr::ID, self.collection.order_attr]);
        let inside_parent = |key: &CursorKey| {
            key.get(self.collection.order_attr).is_some_and(|o| o.starts_with(&Self::order_key(parent_id, "")))
        };
        let start = resume.decode(&self.cursors, &scope, who, page.cursor.as_deref(), inside_parent)?;
        let out = self
            .children_query(who, parent_id)
            .scan_index_forward(true)
            .limit(page.limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let mut items = out.items.unwrap_or_default();
        let more = items.len() > page.limit as usize || out.last_evaluated_key.is_some();
        items.truncate(page.limit as usize);
        let poll_cursor = match items.last() {
            Some(last) => Some(self.cursors.encode(&scope, who, &resume.of(last))),
            None => page.cursor.clone(),
        };
        let next_cursor = if more { poll_cursor.clone() } else { None };
        let items = items.into_iter().map(|i| self.strip(i)).map(from_item).collect::<Result<Vec<T>, _>>()?;
        Ok(ChildPage { items, next_cursor, poll_cursor })
    }

    /// Deletes every child of `parent_id`. Idempotent: a retry after an interruption removes
    /// what is left. Returns how many were deleted.
    pub async fn purge(&self, who: &Identity, parent_id: &str) -> Result<usize, ApiError> {
        let table = &self.collection.table;
        let mut deleted = 0;
        let mut start = None;
        loop {
            let out = self
                .children_query(who, parent_id)
                .projection_expression("#uid, #id")
                .expression_attribute_names("#id", attr::ID)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            let keys = out.items.unwrap_or_default();
            deleted += keys.len();
            batch_delete(&self.client, table, keys).await?;
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(deleted),
            }
        }
    }

    fn strip(&self, mut item: Item) -> Item {
        item.remove(self.collection.order_attr);
        item
    }

    /// A Query for the caller's children of `parent_id`, on the ordering index.
    fn children_query(
        &self,
        who: &Identity,
        parent_id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        user_query(&self.client, &self.collection.table, who, "#uid = :uid AND begins_with(#order, :parent)")
            .index_name(self.collection.index)
            .expression_attribute_names("#order", self.collection.order_attr)
            .expression_attribute_values(":parent", AttributeValue::S(Self::order_key(parent_id, "")))
    }
}
