//! Realtime pushes: WebSocket connections belong to one user, and a change to a user's data
//! reaches that user's connections and no one else's.
//!
//! A connection is authenticated once, by the `$connect` authorizer, with the same verifier as
//! the HTTP API; API Gateway then carries the verified user id in the authorizer context of the
//! connection's every event. Changes arrive from DynamoDB Streams, and the owner of a change is
//! the partition key of the changed item itself: nothing in a client message decides who hears
//! what.

use std::collections::BTreeMap;

use aws_sdk_apigatewaymanagement::{primitives::Blob, Client as Management};
use aws_sdk_dynamodb::{types::AttributeValue, Client};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::{Identity, Verifier},
    store::{attr, dynamo_error, user_query, Item},
    ApiError,
};

/// Whose connection or change this is: the verified user id, as established by our
/// authorizer (from a verified token) or by the partition key of a changed item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    pub fn user_id(&self) -> &str {
        &self.0
    }
}

impl From<&Identity> for Owner {
    fn from(who: &Identity) -> Self {
        Self(who.user_id().to_owned())
    }
}

/// The authorizer context key that carries the verified user id.
const CONTEXT_USER: &str = "user_id";
/// How long a connection item lives without a `$disconnect` (API Gateway closes idle
/// connections after 10 minutes and any connection after 2 hours).
const CONNECTION_TTL_SECONDS: u64 = 2 * 60 * 60 + 60;

/// The `$connect` authorizer (REQUEST type). Browsers cannot set headers on a WebSocket, so
/// the token comes from the `token` query parameter or from `Sec-WebSocket-Protocol: bearer,
/// <token>`. Answers an IAM policy allowing the connection, with the user id as context.
pub async fn authorize(verifier: &Verifier, event: &Value) -> Result<Value, String> {
    let token = token_of(event).ok_or("no token")?;
    let who = verifier.verify(&token).await.map_err(|e| e.to_string())?;
    let resource = event["methodArn"].as_str().unwrap_or("*");
    Ok(json!({
        "principalId": who.user_id(),
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
        "context": { CONTEXT_USER: who.user_id() },
    }))
}

fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event["headers"].as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
}

fn token_of(event: &Value) -> Option<String> {
    if let Some(token) = event["queryStringParameters"]["token"].as_str() {
        return Some(token.to_owned());
    }
    let protocols: Vec<&str> = header(event, "sec-websocket-protocol")?.split(',').map(str::trim).collect();
    let at = protocols.iter().position(|p| p.eq_ignore_ascii_case("bearer"))?;
    protocols.get(at + 1).map(|t| (*t).to_owned())
}

/// Whether the client asked for the `bearer` subprotocol (which `$connect` must then echo).
pub fn wants_bearer_protocol(event: &Value) -> bool {
    header(event, "sec-websocket-protocol")
        .is_some_and(|p| p.split(',').any(|x| x.trim().eq_ignore_ascii_case("bearer")))
}

/// The owner of a connection event, from the context our authorizer set at `$connect`.
pub fn connection_owner(event: &Value) -> Option<Owner> {
    event["requestContext"]["authorizer"][CONTEXT_USER].as_str().filter(|u| !u.is_empty()).map(|u| Owner(u.to_owned()))
}

pub fn connection_id(event: &Value) -> Option<&str> {
    event["requestContext"]["connectionId"].as_str()
}

/// The `connections` table: (`user_id`, `id` = connection id), expiring by TTL.
#[derive(Clone)]
pub struct Connections {
    client: Client,
    table: String,
}

impl Connections {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn key(owner: &Owner, connection_id: &str) -> Item {
        Item::from([
            (attr::USER_ID.to_owned(), AttributeValue::S(owner.0.clone())),
            (attr::ID.to_owned(), AttributeValue::S(connection_id.to_owned())),
        ])
    }

    pub async fn register(&self, owner: &Owner, connection_id: &str) -> Result<(), ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut item = Self::key(owner, connection_id);
        item.insert("connected_at".into(), AttributeValue::N(now.to_string()));
        item.insert("expires_at".into(), AttributeValue::N((now + CONNECTION_TTL_SECONDS).to_string()));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(dynamo_error)?;
        Ok(())
    }

    pub async fn forget(&self, owner: &Owner, connection_id: &str) -> Result<(), ApiError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(owner, connection_id)))
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(())
    }

    /// The owner's live connections (expired ones are skipped even before TTL removes them).
    pub async fn of(&self, owner: &Owner) -> Result<Vec<String>, ApiError> {
        let who = Identity::for_owner(owner);
        let now = jsonwebtoken::get_current_timestamp();
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = user_query(&self.client, &self.table, &who, "#uid = :uid")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo_error)?;
            for item in out.items.unwrap_or_default() {
                let live = match item.get("expires_at") {
                    Some(AttributeValue::N(n)) => n.parse::<u64>().is_ok_and(|t| t > now),
                    _ => true,
                };
                if let (true, Some(AttributeValue::S(id))) = (live, item.get(attr::ID)) {
                    ids.push(id.clone());
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(ids),
            }
        }
    }
}

/// Sends events to connections through the API Gateway Management API.
#[derive(Clone)]
pub struct Pusher {
    connections: Connections,
    management: Management,
}

/// What one push achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub gone: usize,
    pub failed: usize,
}

impl Pusher {
    pub fn new(connections: Connections, management: Management) -> Self {
        Self { connections, management }
    }

    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Sends `event` to one connection of `owner`; a connection that is gone (410) is forgotten.
    pub async fn send(&self, owner: &Owner, connection_id: &str, event: &Value) -> Delivery {
        let data = Blob::new(event.to_string().into_bytes());
        match self.management.post_to_connection().connection_id(connection_id).data(data).send().await {
            Ok(_) => Delivery { sent: 1, ..Delivery::default() },
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                if let Err(e) = self.connections.forget(owner, connection_id).await {
                    tracing::warn!(error = %e, connection_id, "could not forget a gone connection");
                }
                Delivery { gone: 1, ..Delivery::default() }
            }
            Err(e) => {
                tracing::warn!(error = ?e, connection_id, "push failed");
                Delivery { failed: 1, ..Delivery::default() }
            }
        }
    }

    /// Sends each owner's events to that owner's connections, and only theirs.
    pub async fn push(&self, changes: Vec<Change>) -> Result<Delivery, ApiError> {
        let mut by_owner: BTreeMap<Owner, Vec<Value>> = BTreeMap::new();
        for change in changes {
            by_owner.entry(change.owner).or_default().push(change.event);
        }
        let mut total = Delivery::default();
        for (owner, events) in by_owner {
            let connections = self.connections.of(&owner).await?;
            for connection_id in &connections {
                for event in &events {
                    let d = self.send(&owner, connection_id, event).await;
                    total.sent += d.sent;
                    total.gone += d.gone;
                    total.failed += d.failed;
                    if d.gone > 0 {
                        break;
                    }
                }
            }
        }
        Ok(total)
    }
}

/// A change to a user's data, as pushed: small, naming what changed, never the content.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub owner: Owner,
    pub event: Value,
}

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "Records", default)]
    records: Vec<StreamRecord>,
}

#[derive(Deserialize)]
struct StreamRecord {
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventSourceARN", default)]
    source_arn: String,
    dynamodb: StreamImages,
}

#[derive(Deserialize)]
struct StreamImages {
    #[serde(rename = "Keys", default)]
    keys: BTreeMap<String, Value>,
    #[serde(rename = "NewImage", default)]
    new_image: Option<BTreeMap<String, Value>>,
    #[serde(rename = "OldImage", default)]
    old_image: Option<BTreeMap<String, Value>>,
}

fn string_attr(image: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    image.get(name)?.get("S")?.as_str().map(str::to_owned)
}

/// The table name in a stream ARN (`arn:aws:dynamodb:...:table/<name>/stream/<label>`).
fn table_of(arn: &str) -> Option<&str> {
    arn.split("table/").nth(1)?.split('/').next()
}

/// Turns DynamoDB stream records into changes. `kinds` maps table names to what their items
/// are (`message`, `session`, ...); records of other tables are ignored.
pub fn changes(event: &Value, kinds: &BTreeMap<String, &'static str>) -> Result<Vec<Change>, String> {
    let event: StreamEvent = serde_json::from_value(event.clone()).map_err(|e| format!("not a stream event: {e}"))?;
    let mut out = Vec::new();
    for record in event.records {
        let Some(kind) = table_of(&record.source_arn).and_then(|t| kinds.get(t)) else { continue };
        let Some(owner) = string_attr(&record.dynamodb.keys, attr::USER_ID) else { continue };
        let Some(id) = string_attr(&record.dynamodb.keys, attr::ID) else { continue };
        let verb = match record.event_name.as_str() {
            "INSERT" => "created",
            "MODIFY" => "updated",
            "REMOVE" => "deleted",
            _ => continue,
        };
        let image = record.dynamodb.new_image.or(record.dynamodb.old_image).unwrap_or_default();
        let mut event = json!({ "type": format!("{kind}.{verb}"), "id": id });
        for field in ["session_id", "updated_at", "run_status", "status"] {
            if let Some(v) = string_attr(&image, field) {
                event[field] = json!(v);
            }
        }
        out.push(Change { owner: Owner(owner), event });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(table: &str, name: &str, user: &str, id: &str, image: Value) -> Value {
        json!({
            "eventName": name,
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:1:table/{table}/stream/2026"),
            "dynamodb": {"Keys": {"user_id": {"S": user}, "id": {"S": id}}, "NewImage": image},
        })
    }

    #[test]
    fn changes_belong_to_the_owner_of_the_item() {
        let kinds = BTreeMap::from([("Msgs".to_owned(), "message")]);
        let event = json!({"Records": [
            record("Msgs", "INSERT", "alice", "m1", json!({"session_id": {"S": "s1"}, "content": {"S": "secret"}})),
            record("Other", "INSERT", "bob", "x", json!({})),
            record("Msgs", "REMOVE", "bob", "m2", Value::Null),
        ]});
        let changes = changes(&event, &kinds).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].owner.user_id(), "alice");
        assert_eq!(changes[0].event, json!({"type": "message.created", "id": "m1", "session_id": "s1"}));
        assert!(!changes[0].event.to_string().contains("secret"), "content never travels in a push");
        assert_eq!(changes[1].owner.user_id(), "bob");
        assert_eq!(changes[1].event["type"], "message.deleted");
    }

    #[test]
    fn tokens_come_from_the_query_or_the_subprotocol() {
        assert_eq!(token_of(&json!({"queryStringParameters": {"token": "abc"}})), Some("abc".into()));
        let header = json!({"headers": {"Sec-WebSocket-Protocol": "bearer, t.o.k"}});
        assert_eq!(token_of(&header), Some("t.o.k".into()));
        assert!(wants_bearer_protocol(&header));
        assert_eq!(token_of(&json!({"headers": {"sec-websocket-protocol": "chat"}})), None);
        assert_eq!(token_of(&json!({})), None);
    }

    #[test]
    fn owner_comes_only_from_the_authorizer_context() {
        let event = json!({"requestContext": {"authorizer": {"user_id": "alice"}, "connectionId": "c1"}, "body": "{\"user_id\":\"bob\"}"});
        assert_eq!(connection_owner(&event), Some(Owner("alice".into())));
        assert_eq!(connection_owner(&json!({"requestContext": {}})), None);
    }
}
