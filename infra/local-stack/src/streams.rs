//! What Lambda's DynamoDB event source mapping does, locally: reads the streams of the
//! template's tables from DynamoDB Local and invokes the subscribed function with the typed
//! DynamoDB event Lambda would send.

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_lambda_events::{
    dynamodb::{Event, EventRecord, StreamRecord, StreamViewType},
    streams::DynamoDbEventResponse,
};
use aws_sdk_dynamodbstreams::{
    config::{BehaviorVersion, Credentials, Region},
    types::{self, AttributeValue, Record, ShardIteratorType},
    Client,
};
use serde_dynamo::{AttributeValue as EventValue, Item};

use crate::local::{HostedFunction, LocalStack};

const POLL: Duration = Duration::from_millis(20);

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "dynamodb-local"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// A streams API attribute as Lambda's DynamoDB events carry it.
fn attribute(value: &AttributeValue) -> EventValue {
    let bytes = |b: &aws_sdk_dynamodbstreams::primitives::Blob| b.as_ref().to_vec();
    match value {
        AttributeValue::S(s) => EventValue::S(s.clone()),
        AttributeValue::N(n) => EventValue::N(n.clone()),
        AttributeValue::B(b) => EventValue::B(bytes(b)),
        AttributeValue::Bool(b) => EventValue::Bool(*b),
        AttributeValue::Ss(v) => EventValue::Ss(v.clone()),
        AttributeValue::Ns(v) => EventValue::Ns(v.clone()),
        AttributeValue::Bs(v) => EventValue::Bs(v.iter().map(bytes).collect()),
        AttributeValue::L(items) => EventValue::L(items.iter().map(attribute).collect()),
        AttributeValue::M(map) => EventValue::M(map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()),
        _ => EventValue::Null(true),
    }
}

fn image(map: &HashMap<String, AttributeValue>) -> Item {
    map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<HashMap<_, _>>().into()
}

fn view_type(view: &types::StreamViewType) -> Option<StreamViewType> {
    match view {
        types::StreamViewType::KeysOnly => Some(StreamViewType::KeysOnly),
        types::StreamViewType::NewImage => Some(StreamViewType::NewImage),
        types::StreamViewType::OldImage => Some(StreamViewType::OldImage),
        types::StreamViewType::NewAndOldImages => Some(StreamViewType::NewAndOldImages),
        _ => None,
    }
}

fn lambda_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut change = StreamRecord::default();
    if let Some(data) = record.dynamodb() {
        change.keys = data.keys().map(image).unwrap_or_default();
        change.new_image = data.new_image().map(image).unwrap_or_default();
        change.old_image = data.old_image().map(image).unwrap_or_default();
        change.sequence_number = data.sequence_number().map(str::to_owned);
        change.size_bytes = data.size_bytes().unwrap_or_default();
        change.stream_view_type = data.stream_view_type().and_then(view_type);
    }
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record.event_name().map(|e| e.as_str().to_owned()).unwrap_or_default();
    out.event_version = Some("1.1".to_owned());
    out.event_source = Some("aws:dynamodb".to_owned());
    out.aws_region = "us-east-1".to_owned();
    out.event_source_arn = Some(stream_arn.to_owned());
    out.change = change;
    out
}

/// Starts one poller per (table, subscribed function) of the template, from the streams'
/// current end (`LATEST`), as a new event source mapping does.
pub async fn spawn_pumps(
    stack: Arc<LocalStack>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = stack.settings.dynamodb_endpoint.clone();
    let dynamodb = shared::runtime::local_dynamodb_client(endpoint.clone());
    let streams = client(&endpoint);
    let mut pumps = Vec::new();
    for (index, function) in stack.functions.iter().enumerate() {
        for table in &function.spec.streams {
            let described = dynamodb.describe_table().table_name(table).send().await?;
            let arn = described
                .table()
                .and_then(|t| t.latest_stream_arn())
                .ok_or_else(|| format!("table {table} has no stream"))?
                .to_owned();
            let cursors = latest(&streams, &arn).await?;
            let (stack, streams) = (stack.clone(), streams.clone());
            pumps.push(tokio::spawn(async move { pump(&streams, &stack.functions[index], &arn, cursors).await }));
        }
    }
    Ok(pumps)
}

/// A position in a shard: after this sequence number, or from the start.
struct ShardCursor {
    shard_id: String,
    after: Option<String>,
}

/// Reads a shard from a cursor: a fresh iterator per read (`AFTER_SEQUENCE_NUMBER`), since
/// DynamoDB Local refuses reads from the iterators it hands out after an empty read.
async fn read(
    streams: &Client,
    arn: &str,
    cursor: &mut ShardCursor,
) -> Result<Vec<Record>, Box<dyn std::error::Error + Send + Sync>> {
    let request = streams.get_shard_iterator().stream_arn(arn).shard_id(&cursor.shard_id);
    let request = match &cursor.after {
        Some(sequence) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let Some(iterator) = request.send().await?.shard_iterator().map(str::to_owned) else { return Ok(Vec::new()) };
    let records = streams.get_records().shard_iterator(iterator).send().await?.records().to_vec();
    if let Some(last) = records.last().and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()) {
        cursor.after = Some(last.to_owned());
    }
    Ok(records)
}

/// Cursors at the current end of every shard, as a new `LATEST` event source mapping starts.
async fn latest(streams: &Client, arn: &str) -> Result<Vec<ShardCursor>, Box<dyn std::error::Error + Send + Sync>> {
    let mut cursors = Vec::new();
    let shards = streams.describe_stream().stream_arn(arn).send().await?;
    for shard in shards.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let mut cursor = ShardCursor { shard_id: shard.shard_id().unwrap_or_default().to_owned(), after: None };
        while !read(streams, arn, &mut cursor).await?.is_empty() {}
        cursors.push(cursor);
    }
    Ok(cursors)
}

async fn pump(streams: &Client, function: &HostedFunction, arn: &str, mut cursors: Vec<ShardCursor>) {
    loop {
        for cursor in &mut cursors {
            match read(streams, arn, cursor).await {
                Ok(records) if !records.is_empty() => {
                    let mut event = Event::default();
                    event.records = records.iter().map(|r| lambda_record(r, arn)).collect();
                    // Lambda would retry from the first reported record; locally it is only logged.
                    match invoke(function, &event).await {
                        Ok(response) if response.batch_item_failures.is_empty() => {}
                        Ok(response) => tracing::warn!(
                            failures = response.batch_item_failures.len(),
                            function = %function.spec.logical_id,
                            "stream batch reported failures"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, function = %function.spec.logical_id, "stream batch failed")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "reading the stream failed"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn invoke(function: &HostedFunction, event: &Event) -> Result<DynamoDbEventResponse, String> {
    let answer = function.call_event(serde_json::to_value(event).map_err(|e| e.to_string())?).await?;
    serde_json::from_value(answer).map_err(|e| format!("not a batch response: {e}"))
}
