//! What Lambda's DynamoDB event source mapping does, locally: reads the streams of the
//! template's tables from DynamoDB Local and invokes the subscribed function with the same
//! `{"Records": [...]}` event Lambda would send.

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_dynamodbstreams::{
    config::{BehaviorVersion, Credentials, Region},
    types::{AttributeValue, Record, ShardIteratorType},
    Client,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Map, Value};

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

/// An attribute in the JSON shape of Lambda's DynamoDB events (`{"S": "..."}`).
fn attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": STANDARD.encode(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(|b| STANDARD.encode(b.as_ref())).collect::<Vec<_>>() }),
        AttributeValue::L(items) => json!({ "L": items.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(map) => json!({ "M": image(map) }),
        _ => Value::Null,
    }
}

fn image(map: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()
}

fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let data = record.dynamodb();
    let mut dynamodb = json!({
        "Keys": data.and_then(|d| d.keys()).map(image).unwrap_or_default(),
        "SequenceNumber": data.and_then(|d| d.sequence_number()).unwrap_or_default(),
        "SizeBytes": data.and_then(|d| d.size_bytes()).unwrap_or_default(),
        "StreamViewType": data.and_then(|d| d.stream_view_type()).map(|v| v.as_str()).unwrap_or_default(),
    });
    if let Some(new) = data.and_then(|d| d.new_image()) {
        dynamodb["NewImage"] = Value::Object(image(new));
    }
    if let Some(old) = data.and_then(|d| d.old_image()) {
        dynamodb["OldImage"] = Value::Object(image(old));
    }
    json!({
        "eventID": record.event_id().unwrap_or_default(),
        "eventName": record.event_name().map(|e| e.as_str()).unwrap_or_default(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    })
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
                    let records: Vec<Value> = records.iter().map(|r| lambda_record(r, arn)).collect();
                    if let Err(e) = function.call_event(json!({ "Records": records })).await {
                        tracing::warn!(error = %e, function = %function.spec.logical_id, "stream batch failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "reading the stream failed"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
