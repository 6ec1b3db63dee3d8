//! Creates the template's tables and indexes in DynamoDB Local, exactly as declared.

use std::time::Duration;

use aws_sdk_dynamodb::{
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    },
    Client,
};

use template::{KeyElement, TableSpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn keys(schema: &[KeyElement]) -> Result<Vec<KeySchemaElement>, BoxError> {
    schema
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

/// Creates `spec` unless a table of that name exists, and waits until it is active.
pub async fn ensure_table(client: &Client, spec: &TableSpec) -> Result<bool, BoxError> {
    let name = &spec.logical_id;
    if client.describe_table().table_name(name).send().await.is_ok() {
        return Ok(false);
    }
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&spec.key_schema)?));
    for (attr, kind) in &spec.attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for gsi in &spec.global_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(gsi.projection_type.as_str()))
            .set_non_key_attributes((!gsi.non_key_attributes.is_empty()).then(|| gsi.non_key_attributes.clone()))
            .build();
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.name)
                .set_key_schema(Some(keys(&gsi.key_schema)?))
                .projection(projection)
                .build()?,
        );
    }
    if let Some(view) = &spec.stream_view {
        create = create.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(view.as_str()))
                .build()?,
        );
    }
    match create.send().await {
        Ok(_) => {}
        // Another process created it between our check and our create.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(false),
        Err(e) => return Err(format!("create table {name}: {:?}", e.into_service_error()).into()),
    }
    for _ in 0..100 {
        let out = client.describe_table().table_name(name).send().await?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(attr) = &spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build()?)
            .send()
            .await?;
    }
    Ok(true)
}

/// Creates every table of the template that does not exist yet. Returns the names created.
pub async fn ensure_all(client: &Client, tables: &[TableSpec]) -> Result<Vec<String>, BoxError> {
    let mut created = Vec::new();
    for spec in tables {
        if ensure_table(client, spec).await? {
            created.push(spec.logical_id.clone());
        }
    }
    Ok(created)
}
