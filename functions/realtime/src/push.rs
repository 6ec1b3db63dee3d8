//! The DynamoDB Streams consumer: pushes each change of a pushed table to its owner's
//! connections, or, for a project's item, to the connections of the project's readers.

use std::collections::BTreeMap;

use aws_lambda_events::{
    dynamodb::Event,
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use shared::{
    realtime::{self, Change, Connections, Pusher},
    teams::ProjectReaders,
    ConfigError, Env, EventFunction, Platform,
};

pub struct Push {
    pusher: Pusher,
    /// Who may read a project, from its memberships (its organization cached).
    readers: ProjectReaders,
    /// Table name → what its items are called in events.
    tables: BTreeMap<String, &'static str>,
}

impl EventFunction for Push {
    type Event = Event;
    type Output = DynamoDbEventResponse;

    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let connections = Connections::new(platform.dynamodb.clone(), env.required("CONNECTIONS_TABLE")?);
        let management = platform.management(&env.required("WEBSOCKET_ENDPOINT")?);
        Ok(Self {
            pusher: Pusher::new(connections, management),
            readers: ProjectReaders::from_env(platform.dynamodb.clone(), env)?,
            tables: realtime::pushed_tables(env)?,
        })
    }

    /// Sends that fail are logged, never retried: the writes have happened, and a retry would
    /// replay the pushes that did go out. Only changes whose audience could not be looked up
    /// (nothing was sent for them) are reported, for Lambda to retry from there.
    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
        let changes = realtime::changes(&event, &self.tables);
        let count = changes.len();
        let pushed = self.pusher.push(changes, &self.readers).await;
        let d = &pushed.delivery;
        tracing::info!(
            changes = count,
            sent = d.sent,
            gone = d.gone,
            failed = d.failed,
            unsent = pushed.unsent.len(),
            "pushed"
        );
        Ok(batch_response(&pushed.unsent))
    }
}

/// The batch response (`ReportBatchItemFailures`) naming the records of unsent changes.
fn batch_response(unsent: &[Change]) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = unsent
        .iter()
        .filter_map(|change| change.sequence_number.clone())
        .map(|sequence_number| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn unsent_changes_are_reported_by_sequence_number() {
        let event: Event = serde_json::from_value(json!({"Records": [{
            "eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Msgs/stream/2026",
            "dynamodb": {"Keys": {"user_id": {"S": "alice"}, "id": {"S": "m1"}}, "SequenceNumber": "42", "SizeBytes": 9},
        }]}))
        .unwrap();
        let unsent = realtime::changes(&event, &BTreeMap::from([("Msgs".to_owned(), "message")]));
        let response = serde_json::to_value(batch_response(&unsent)).unwrap();
        assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": "42"}]}));
        assert_eq!(serde_json::to_value(batch_response(&[])).unwrap(), json!({"batchItemFailures": []}));
    }
}
