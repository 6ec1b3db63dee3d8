//! What S3 event notifications do, locally: the local S3 server records the `ObjectCreated`
//! records S3 would send (see [`crate::s3_local`]); this reads them in order and invokes every
//! function the template subscribes to that bucket, event and key prefix with the typed S3
//! event Lambda would receive (one record per event, as S3 sends them).

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    local::LocalStack,
    s3_local::{bucket_name, NOTIFICATIONS_PATH},
};

const POLL: Duration = Duration::from_millis(20);

#[derive(Deserialize)]
struct Page {
    records: Vec<Value>,
    next: usize,
}

/// Delivers every notification of the stack's S3 server, from its first, until the task is
/// dropped. Does nothing when no function subscribes to a bucket.
pub async fn deliver(stack: Arc<LocalStack>) {
    if stack.functions.iter().all(|f| f.spec.bucket_events.is_empty()) {
        return;
    }
    let url = format!("{}{NOTIFICATIONS_PATH}", stack.settings.s3_endpoint);
    let client = reqwest::Client::new();
    let mut after = 0;
    loop {
        match next_page(&client, &url, after).await {
            Ok(page) => {
                for record in &page.records {
                    notify(&stack, record).await;
                }
                after = page.next;
            }
            Err(e) => tracing::warn!(error = %e, "reading the local S3 notifications failed"),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn next_page(client: &reqwest::Client, url: &str, after: usize) -> Result<Page, reqwest::Error> {
    client.get(format!("{url}?after={after}")).send().await?.error_for_status()?.json().await
}

/// Invokes the functions subscribed to this record's bucket, event and key.
async fn notify(stack: &LocalStack, record: &Value) {
    let (Some(bucket), Some(event_name), Some(key)) = (
        record["s3"]["bucket"]["name"].as_str(),
        record["eventName"].as_str(),
        record["s3"]["object"]["key"].as_str().and_then(shared::objects::decode_event_key),
    ) else {
        tracing::warn!(%record, "malformed local S3 notification");
        return;
    };
    for function in &stack.functions {
        let subscribed = function
            .spec
            .bucket_events
            .iter()
            .any(|events| bucket_name(&events.bucket) == bucket && events.matches(event_name, &key));
        if !subscribed {
            continue;
        }
        // Lambda retries a failed asynchronous invocation twice; locally it is logged.
        if let Err(e) = function.call_event(json!({"Records": [record]})).await {
            tracing::warn!(error = %e, function = %function.spec.logical_id, key, "S3 notification failed");
        }
    }
}
