//! Items that belong to a parent item of the same user (a session's messages): appended in a
//! transaction that also touches the parent, listed in commit order in one Query, and purged
//! with the parent.
//!
//! Order comes from a per-parent sequence number, not from the child's id: ids are assigned
//! before the write commits, so ordering by id lets a child with a smaller key commit after a
//! reader has moved past it. The parent holds the last number given (`parent_seq_attr`); an
//! append moves it from `n - 1` to `n` in the same transaction that puts child `n`, so numbers
//! are contiguous and commit in order. The ordering index is updated asynchronously and
//! without order between items (and cannot be read consistently), so a reader stops a page at
//! the first missing number: it never moves past a child that is committed but not yet
//! indexed, and a poller that keeps polling gets every child exactly once, in order.

use std::{collections::HashSet, time::Duration};

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata,
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update},
    Client,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use crate::{
    cursor::{CursorCodec, CursorKey, PageRequest},
    error::ApiError,
    item::Timestamp,
    store::{attr, batch_delete, dynamo_error, page_of, user_query, HasId, Item, ResumeKey, Space, UserStore},
};

/// How long an append keeps retrying when concurrent appends to the same parent take the next
/// number first: one parent takes one commit at a time, so a burst of appends queues up.
/// Well under API Gateway's 29 s, then a 503 the client may retry.
const APPEND_BUDGET: Duration = Duration::from_secs(10);
/// The backoff between attempts is random in `[0, min(BASE << attempt, CAP)]` (full jitter), so
/// writers that collided do not collide again in lockstep.
const BACKOFF_BASE: Duration = Duration::from_millis(4);
const BACKOFF_CAP: Duration = Duration::from_millis(200);
/// Sequenced ordering values are `"<parent id>#s<20 digits>"`: `s` sorts after every hex digit,
/// so they follow the children written before sequence numbers existed (the migration's,
/// ordered by their time-ordered id), and 20 digits hold any `u64`.
const SEQ_MARK: char = 's';

/// A child table: `user_id` (HASH) + `id` (RANGE), and an index whose HASH is `user_id` and
/// whose RANGE `order_attr` is `"<parent id>#s<seq>"` (see [`ChildStore::order_key`]).
#[derive(Clone, Debug)]
pub struct ChildCollection {
    pub table: String,
    pub noun: &'static str,
    pub scope: &'static str,
    pub index: &'static str,
    pub parent_attr: &'static str,
    pub order_attr: &'static str,
    /// The child's sequence number (N), also returned to clients.
    pub seq_attr: &'static str,
    /// On the parent: the sequence number of its newest child (N, absent before the first).
    pub parent_seq_attr: &'static str,
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

    /// The ordering-index value of the child numbered `seq`: `"<parent id>#s<seq, 20 digits>"`.
    pub fn order_key(parent_id: &str, seq: u64) -> String {
        format!("{parent_id}#{SEQ_MARK}{seq:020}")
    }

    /// The ordering-index value of a child written without a sequence number (by the
    /// migration, offline): `"<parent id>#<child id>"`, the id being time-ordered. These sort
    /// before every sequenced child of the parent.
    pub fn unsequenced_order_key(parent_id: &str, child_id: &str) -> String {
        debug_assert!(!child_id.starts_with(SEQ_MARK));
        format!("{parent_id}#{child_id}")
    }

    /// The sequence number an ordering value names (`None` for an unsequenced child).
    fn seq_of_order_key(parent_id: &str, order: &str) -> Option<u64> {
        order.strip_prefix(parent_id)?.strip_prefix('#')?.strip_prefix(SEQ_MARK)?.parse().ok()
    }

    /// Cursors are bound to the user, the list, the space and the parent.
    fn scope(&self, space: &Space, parent_id: &str) -> String {
        space.cursor_scope(&format!("{}:{parent_id}", self.collection.scope))
    }

    /// Stores `child` under `parent_id` as the parent's next child and bumps the parent's
    /// `updated_at`, in one transaction: the child is written only if the caller's parent
    /// exists (else 404). Returns the child's sequence number.
    pub async fn append<C: Serialize + HasId>(
        &self,
        space: &Space,
        parent: &UserStore,
        parent_id: &str,
        child: &C,
    ) -> Result<u64, ApiError> {
        let c = &self.collection;
        let mut item: Item = dynamo::to_item(child).map_err(|e| ApiError::Internal(e.to_string()))?;
        item.insert(attr::USER_ID.to_owned(), AttributeValue::S(space.partition()));
        item.insert(attr::ID.to_owned(), AttributeValue::S(child.id().to_owned()));
        item.insert(c.parent_attr.to_owned(), AttributeValue::S(parent_id.to_owned()));
        let started = std::time::Instant::now();
        let mut last = self.last_seq(space, parent, parent_id).await?;
        let mut attempt = 0;
        while started.elapsed() < APPEND_BUDGET {
            let seq = last + 1;
            match self.try_append(space, parent, parent_id, child.id(), item.clone(), seq).await? {
                Attempt::Done => return Ok(seq),
                Attempt::Behind(Some(stored)) => last = stored,
                // A conflicting transaction was in flight: what it did is unknown, read again.
                Attempt::Behind(None) => last = self.last_seq(space, parent, parent_id).await?,
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
        tracing::warn!(parent_id, "append gave up: too many concurrent appends");
        Err(ApiError::Unavailable(format!("too many concurrent appends to {} {parent_id}", parent.collection().noun)))
    }

    /// The sequence number of the parent's newest child (0 if none), read consistently.
    async fn last_seq(&self, space: &Space, parent: &UserStore, parent_id: &str) -> Result<u64, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&parent.collection().table)
            .set_key(Some(parent.key(space, parent_id)))
            .consistent_read(true)
            .projection_expression("#id, #seq")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#seq", self.collection.parent_seq_attr)
            .send()
            .await
            .map_err(dynamo_error)?;
        let item = out.item.ok_or(ApiError::NotFound(parent.collection().noun))?;
        Ok(self.parent_seq(&item))
    }

    fn parent_seq(&self, parent: &Item) -> u64 {
        number(parent.get(self.collection.parent_seq_attr)).unwrap_or(0)
    }

    /// One transaction writing child `seq`, valid only while the parent's last number is
    /// `seq - 1`.
    async fn try_append(
        &self,
        space: &Space,
        parent: &UserStore,
        parent_id: &str,
        child_id: &str,
        mut item: Item,
        seq: u64,
    ) -> Result<Attempt, ApiError> {
        let c = &self.collection;
        item.insert(c.order_attr.to_owned(), AttributeValue::S(Self::order_key(parent_id, seq)));
        item.insert(c.seq_attr.to_owned(), AttributeValue::N(seq.to_string()));
        let put = Put::builder()
            .table_name(&c.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut advance = Update::builder()
            .table_name(&parent.collection().table)
            .set_key(Some(parent.key(space, parent_id)))
            .update_expression("SET #seq = :seq, #updated_at = :now")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#seq", c.parent_seq_attr)
            .expression_attribute_names("#updated_at", attr::UPDATED_AT)
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(Timestamp::now().into_string()))
            // The parent as it was, when the condition fails: a lost race needs no new read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        advance = if seq == 1 {
            advance.condition_expression("attribute_exists(#id) AND attribute_not_exists(#seq)")
        } else {
            advance
                .condition_expression("attribute_exists(#id) AND #seq = :prev")
                .expression_attribute_values(":prev", AttributeValue::N((seq - 1).to_string()))
        };
        let advance = advance.build().map_err(|e| ApiError::Internal(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            // Refused once the account is deleted after the token was issued, or the project is
            // being deleted (see UserStore::create_guards).
            .set_transact_items(Some(
                [
                    vec![
                        TransactWriteItem::builder().put(put).build(),
                        TransactWriteItem::builder().update(advance).build(),
                    ],
                    parent.create_guards(space)?,
                ]
                .concat(),
            ))
            // A fresh token per attempt: the SDK's own retries of this attempt are idempotent
            // (a commit whose answer was lost is not written twice), our next attempt is not.
            .client_request_token(uuid::Uuid::now_v7().to_string())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Attempt::Done),
            Err(e) => e,
        };
        let canceled = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(t)) => t,
            Some(s) if s.code() == Some("TransactionConflictException") => return Ok(Attempt::Behind(None)),
            _ => return Err(dynamo_error(err)),
        };
        let reasons = canceled.cancellation_reasons();
        let code = |i: usize| reasons.get(i).and_then(|r| r.code());
        if code(2) == Some("ConditionalCheckFailed") {
            return Err(ApiError::AccountDeleted);
        }
        if code(3) == Some("ConditionalCheckFailed") {
            return Err(ApiError::NotFound("project"));
        }
        if code(1) == Some("ConditionalCheckFailed") {
            return match reasons[1].item() {
                None => Err(ApiError::NotFound(parent.collection().noun)),
                Some(old) if old.contains_key(attr::ID) => Ok(Attempt::Behind(Some(self.parent_seq(old)))),
                Some(_) => Err(ApiError::NotFound(parent.collection().noun)),
            };
        }
        if code(0) == Some("ConditionalCheckFailed") {
            return Err(ApiError::Conflict(format!("{} {child_id} already exists", c.noun)));
        }
        if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
            return Ok(Attempt::Behind(None));
        }
        Err(dynamo_error(err))
    }

    /// The caller's children of `parent_id`, oldest first, resuming after `page.cursor`. A page
    /// ends before the first sequence number the index does not show yet (see the module).
    pub async fn list<T: DeserializeOwned + Serialize>(
        &self,
        space: &Space,
        parent_id: &str,
        page: &PageRequest,
    ) -> Result<ChildPage<T>, ApiError> {
        let c = &self.collection;
        let scope = self.scope(space, parent_id);
        let resume = ResumeKey([attr::ID, c.order_attr]);
        let prefix = Self::unsequenced_order_key(parent_id, "");
        let inside_parent = |key: &CursorKey| key.get(c.order_attr).is_some_and(|o| o.starts_with(&prefix));
        let start = resume.decode(&self.cursors, &scope, space, page.cursor.as_deref(), inside_parent)?;
        // The number the next sequenced child must have: after the cursor's, or the first.
        let mut expected = start
            .as_ref()
            .and_then(|s| match s.get(c.order_attr) {
                Some(AttributeValue::S(o)) => Self::seq_of_order_key(parent_id, o),
                _ => None,
            })
            .map_or(1, |seq| seq + 1);
        let out = self
            .children_query(space, parent_id)
            .scan_index_forward(true)
            .limit(page.limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let mut items = out.items.unwrap_or_default();
        let mut more_stored = out.last_evaluated_key.is_some();
        if let Some(end) = items.iter().position(|item| match number(item.get(c.seq_attr)) {
            // Unsequenced (migrated) children were all written before the first sequenced one.
            None => false,
            Some(seq) if seq == expected => {
                expected += 1;
                false
            }
            Some(_) => true,
        }) {
            // Nothing past a gap is listable yet: the page ends there.
            items.truncate(end);
            more_stored = false;
        }
        let page_read = page_of(items, page.limit, more_stored, &resume, |i| self.strip(i))?;
        let poll_cursor = match &page_read.last {
            Some(last) => Some(self.cursors.encode(&scope, space.caller(), last)),
            None => page.cursor.clone(),
        };
        let next_cursor = if page_read.more { poll_cursor.clone() } else { None };
        Ok(ChildPage { items: page_read.items, next_cursor, poll_cursor })
    }

    /// Deletes every child of `parent_id`. Idempotent and resumable: every pass starts from the
    /// beginning of what is left, so a retry after an interruption removes the rest. Returns
    /// how many were deleted.
    ///
    /// The ordering index cannot be read consistently and may not show a child appended a moment
    /// ago, which a purge through it alone would leave behind. So the purge reads the base table,
    /// strongly consistent, from the parent's creation on: children are keyed (`user_id`, `id`)
    /// and their ids are UUIDv7 stamped when they are appended, which is after their parent was
    /// created. (See [`children_since`] for the bound; a parent whose id tells no time is read
    /// over the whole partition.) A second pass over the index then removes what only it can find:
    /// children written offline by the migration, whose ids may predate the bound, and which were
    /// indexed long ago. The parent is gone before a purge starts, so nothing is appended meanwhile.
    pub async fn purge(&self, space: &Space, parent_id: &str) -> Result<usize, ApiError> {
        let mut deleted = HashSet::new();
        self.purge_pass(space, parent_id, Pass::BaseTable { since: children_since(parent_id) }, &mut deleted).await?;
        self.purge_pass(space, parent_id, Pass::Index, &mut deleted).await?;
        Ok(deleted.len())
    }

    /// Deletes the children of `parent_id` one pass finds, page by page; `deleted` collects
    /// their ids (the index may still show what the base-table pass deleted).
    async fn purge_pass(
        &self,
        space: &Space,
        parent_id: &str,
        pass: Pass,
        deleted: &mut HashSet<String>,
    ) -> Result<(), ApiError> {
        let c = &self.collection;
        let mut start = None;
        loop {
            let query = match &pass {
                Pass::BaseTable { since } => {
                    let query = match since {
                        Some(since) => {
                            user_query(&self.client, &c.table, &space.partition(), "#uid = :uid AND #id >= :since")
                                .expression_attribute_values(":since", AttributeValue::S(since.clone()))
                        }
                        None => user_query(&self.client, &c.table, &space.partition(), "#uid = :uid"),
                    };
                    query
                        .consistent_read(true)
                        .filter_expression("#parent = :parent_id")
                        .expression_attribute_names("#parent", c.parent_attr)
                        .expression_attribute_values(":parent_id", AttributeValue::S(parent_id.to_owned()))
                }
                Pass::Index => self.children_query(space, parent_id),
            };
            let out = query
                .projection_expression("#uid, #id")
                .expression_attribute_names("#id", attr::ID)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            let keys = out.items.unwrap_or_default();
            deleted.extend(keys.iter().filter_map(|key| match key.get(attr::ID) {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            }));
            batch_delete(&self.client, &c.table, keys).await?;
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(()),
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
        space: &Space,
        parent_id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        user_query(
            &self.client,
            &self.collection.table,
            &space.partition(),
            "#uid = :uid AND begins_with(#order, :parent)",
        )
        .index_name(self.collection.index)
        .expression_attribute_names("#order", self.collection.order_attr)
        .expression_attribute_values(":parent", AttributeValue::S(Self::unsequenced_order_key(parent_id, "")))
    }
}

/// Where a purge looks for children.
enum Pass {
    /// The base table, strongly consistent: every committed child, from `since` on if set.
    BaseTable { since: Option<String> },
    /// The ordering index: every child indexed by now, whatever its id.
    Index,
}

/// How much earlier than its parent a child's id may be stamped: ids are UUIDv7 from the clock
/// of whichever Lambda host wrote the item, and those clocks agree within milliseconds (Amazon
/// Time Sync). An hour is far beyond any disagreement; it only costs the purge reading (and
/// filtering out) the children of other parents written in that hour.
const CLOCK_MARGIN: Duration = Duration::from_secs(3600);

/// The smallest id a child of `parent_id` can have, when the parent's id tells when it was
/// created (a UUIDv7, as the API makes them): the smallest UUIDv7 of [`CLOCK_MARGIN`] before
/// that. Canonical UUIDs compare as text the way their bytes do, so this bounds a key range.
/// `None` for other ids (e.g. kept by the migration): then no bound is known.
fn children_since(parent_id: &str) -> Option<String> {
    let parent = uuid::Uuid::parse_str(parent_id).ok()?;
    if parent.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = parent.get_timestamp()?.to_unix();
    let millis =
        (u128::from(seconds) * 1000 + u128::from(nanos) / 1_000_000).saturating_sub(CLOCK_MARGIN.as_millis()) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7, the rest of the random bits zero
    bytes[8] = 0x80; // RFC 4122 variant
    Some(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// What one append attempt found.
enum Attempt {
    Done,
    /// Another append took the number first; the parent's last number, when known.
    Behind(Option<u64>),
}

fn number(value: Option<&AttributeValue>) -> Option<u64> {
    match value {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let mut bytes = [0u8; 8];
    // Randomness only spreads retries: without it the backoff is the ceiling.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return ceiling;
    }
    ceiling.mul_f64(u64::from_le_bytes(bytes) as f64 / u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequenced_keys_sort_by_number_and_after_unsequenced_ones() {
        let keys = [
            ChildStore::unsequenced_order_key("p", "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10"),
            ChildStore::unsequenced_order_key("p", "ffffffff-ffff-7fff-bfff-ffffffffffff"),
            ChildStore::order_key("p", 1),
            ChildStore::order_key("p", 9),
            ChildStore::order_key("p", 10),
            ChildStore::order_key("p", u64::MAX),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(ChildStore::seq_of_order_key("p", &ChildStore::order_key("p", 42)), Some(42));
        assert_eq!(ChildStore::seq_of_order_key("p", &keys[0]), None);
        assert_eq!(ChildStore::seq_of_order_key("q", &ChildStore::order_key("p", 42)), None);
    }

    #[test]
    fn children_are_looked_for_from_an_hour_before_their_parent() {
        let parent = uuid::Uuid::now_v7();
        let since = children_since(&parent.to_string()).unwrap();
        let child = crate::item::new_id();
        assert!(since.as_str() < parent.to_string().as_str() && since < child, "{since} {parent} {child}");
        let since = uuid::Uuid::parse_str(&since).unwrap();
        assert_eq!(since.get_version_num(), 7);
        let (parent_secs, _) = parent.get_timestamp().unwrap().to_unix();
        let (since_secs, _) = since.get_timestamp().unwrap().to_unix();
        assert!((3599..=3600).contains(&(parent_secs - since_secs)), "{parent_secs} {since_secs}");
        // A child stamped a minute before its parent (a host whose clock is behind) is still found.
        let early = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, parent_secs - 60, 0));
        assert!(since.to_string() < early.to_string());
        assert_eq!(children_since("0192f0c4-6f8e-4a3c-9c1e-6f2d1b7a4e10"), None, "a v4 id tells no time");
        assert_eq!(children_since("legacy-7"), None);
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
    }
}
