//! Realtime pushes: WebSocket connections belong to one user; a change to a user's data
//! reaches that user's connections and no one else's, and a change in a project reaches the
//! connections of everyone who may read the project at that moment.
//!
//! A connection is authenticated once, by the `$connect` authorizer, with the same verifier as
//! the HTTP API; API Gateway then carries the verified user id in the authorizer context of the
//! connection's every event. Changes arrive from DynamoDB Streams, and who hears a change is
//! decided by the partition key of the changed item itself (a user, or a project whose readers
//! [`ProjectReaders`] reads from the memberships): nothing in a client message decides who
//! hears what. Every event is one of `aws_lambda_events`' types, as Lambda delivers it.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::{
    apigw::{
        ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
        ApiGatewayCustomAuthorizerResponse, ApiGatewayWebsocketProxyRequest,
    },
    dynamodb::{Event as StreamEvent, EventRecord},
    iam::{IamPolicyEffect, IamPolicyStatement},
};
use aws_sdk_apigatewaymanagement::{primitives::Blob, Client as Management};
use aws_sdk_dynamodb::{types::AttributeValue, Client};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    auth::{Identity, Verifier},
    config::{ConfigError, Env},
    credentials::Credentials,
    owned,
    store::{attr, dynamo_error, project_of_partition, user_query, Item},
    teams::ProjectReaders,
    ApiError,
};

/// Whose connection or change this is: the verified user id, as established by our
/// authorizer (from a verified token), by the partition key of a changed item, or by a
/// membership record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    pub fn user_id(&self) -> &str {
        &self.0
    }

    fn identity(&self) -> Identity {
        Identity::from_verified_source(&self.0)
    }
}

impl From<&Identity> for Owner {
    fn from(who: &Identity) -> Self {
        Self(who.user_id().to_owned())
    }
}

/// What our authorizer puts in a connection's context; API Gateway hands it to every route
/// event of that connection (`requestContext.authorizer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionContext {
    pub user_id: String,
}

/// The authorizer context key that carries the verified user id (the field of [`ConnectionContext`]).
const CONTEXT_USER: &str = "user_id";

pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<ConnectionContext>;

/// How long a connection item lives without a `$disconnect` (API Gateway closes idle
/// connections after 10 minutes and any connection after 2 hours).
const CONNECTION_TTL_SECONDS: u64 = 2 * 60 * 60 + 60;

/// The `$connect` authorizer (REQUEST type). Browsers cannot set headers on a WebSocket, so
/// the token comes from the `token` query parameter or from `Sec-WebSocket-Protocol: bearer,
/// <token>`. Answers an IAM policy allowing this connection (the `methodArn`), with the user id
/// as principal and context; the error is why the connection is refused.
/// A revoked token ([`Credentials::check`]) is refused like a bad one.
pub async fn authorize(
    verifier: &Verifier,
    credentials: Option<&Credentials>,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<AuthorizerResponse, String> {
    let method_arn = event.method_arn.as_deref().ok_or("no methodArn")?;
    let token = token_of(event).ok_or("no token")?;
    let who = verifier.verify(&token).await.map_err(|e| e.to_string())?;
    if let Some(credentials) = credentials {
        // Boxed: the SDK call's future would otherwise nest past the compiler's layout depth
        // limit inside the Lambda runtime's future.
        Box::pin(credentials.check(&who)).await.map_err(|e| e.to_string())?;
    }
    Ok(allow(&who, method_arn))
}

fn allow(who: &Identity, method_arn: &str) -> AuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![method_arn.to_owned()];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = vec![statement];
    let mut response = AuthorizerResponse::default();
    response.principal_id = Some(who.user_id().to_owned());
    response.policy_document = policy;
    response.context = ConnectionContext { user_id: who.user_id().to_owned() };
    response
}

fn token_of(event: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Option<String> {
    if let Some(token) = event.query_string_parameters.first("token") {
        return Some(token.to_owned());
    }
    let protocols: Vec<&str> = protocols(&event.headers)?.split(',').map(str::trim).collect();
    let at = protocols.iter().position(|p| p.eq_ignore_ascii_case("bearer"))?;
    protocols.get(at + 1).map(|t| (*t).to_owned())
}

fn protocols(headers: &HeaderMap) -> Option<&str> {
    headers.get(http::header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()
}

/// Whether the client asked for the `bearer` subprotocol (which `$connect` must then echo).
pub fn wants_bearer_protocol(headers: &HeaderMap) -> bool {
    protocols(headers).is_some_and(|p| p.split(',').any(|x| x.trim().eq_ignore_ascii_case("bearer")))
}

/// The owner of a connection event, from the context our authorizer set at `$connect`.
pub fn connection_owner(event: &ApiGatewayWebsocketProxyRequest) -> Option<Owner> {
    let user = event.request_context.authorizer.fields.get(CONTEXT_USER)?.as_str()?;
    (!user.is_empty()).then(|| Owner(user.to_owned()))
}

pub fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event.request_context.connection_id.as_deref()
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
        let who = owner.identity();
        let now = jsonwebtoken::get_current_timestamp();
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = user_query(&self.client, &self.table, who.user_id(), "#uid = :uid")
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

    /// Sends each change to the connections of everyone who hears it ([`Audience`]), and only
    /// theirs. Every project's readers are read once per batch, every recipient's connections
    /// looked up once. A change whose readers or any of whose recipients' connections cannot be
    /// looked up is not sent at all: it comes back as unsent, to be retried whole.
    pub async fn push(&self, changes: Vec<Change>, readers: &ProjectReaders) -> Pushed {
        let projects: BTreeSet<&str> = changes.iter().filter_map(|c| c.audience.project_id()).collect();
        let mut project_readers = BTreeMap::new();
        for project in projects {
            let found = match readers.of(project).await {
                Ok(users) => Some(users.into_iter().map(Owner).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, project_id = project, "project readers lookup failed");
                    None
                }
            };
            project_readers.insert(project.to_owned(), found);
        }
        let hearing: Vec<Option<Vec<Owner>>> = changes
            .iter()
            .map(|c| match &c.audience {
                Audience::Owner(owner) => Some(vec![owner.clone()]),
                Audience::Project(project) => project_readers.get(project).cloned().flatten(),
            })
            .collect();
        let mut connections: BTreeMap<Owner, Option<Vec<String>>> = BTreeMap::new();
        for owner in hearing.iter().flatten().flatten() {
            if connections.contains_key(owner) {
                continue;
            }
            let found = match self.connections.of(owner).await {
                Ok(ids) => Some(ids),
                Err(e) => {
                    tracing::warn!(error = %e, user_id = owner.user_id(), "connections lookup failed");
                    None
                }
            };
            connections.insert(owner.clone(), found);
        }
        let mut pushed = Pushed::default();
        let mut to_send: BTreeMap<&Owner, Vec<&Change>> = BTreeMap::new();
        for (change, hearing) in changes.iter().zip(&hearing) {
            let reachable = hearing.as_ref().filter(|owners| owners.iter().all(|o| connections[o].is_some()));
            match reachable {
                Some(owners) => owners.iter().for_each(|o| to_send.entry(o).or_default().push(change)),
                None => pushed.unsent.push(change.clone()),
            }
        }
        for (owner, changes) in to_send {
            for connection_id in connections[owner].iter().flatten() {
                for change in &changes {
                    let d = self.send(owner, connection_id, &change.event).await;
                    pushed.delivery.sent += d.sent;
                    pushed.delivery.gone += d.gone;
                    pushed.delivery.failed += d.failed;
                    if d.gone > 0 {
                        break;
                    }
                }
            }
        }
        pushed
    }
}

/// What one batch of pushes achieved.
#[derive(Debug, Default)]
pub struct Pushed {
    pub delivery: Delivery,
    /// Changes whose audience (a project's readers, or a recipient's connections) could not be
    /// looked up: none of them was sent.
    pub unsent: Vec<Change>,
}

/// Who hears a change: the owner of a personal item, or whoever may read the project of a
/// project's item when the change is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Owner(Owner),
    Project(String),
}

impl Audience {
    /// From the partition key of the changed item.
    fn of_partition(partition: &str) -> Self {
        match project_of_partition(partition) {
            Some(project) => Self::Project(project.to_owned()),
            None => Self::Owner(Owner(partition.to_owned())),
        }
    }

    pub fn project_id(&self) -> Option<&str> {
        match self {
            Self::Project(project) => Some(project),
            Self::Owner(_) => None,
        }
    }
}

/// A change to a user's or a project's data, as pushed: small, naming what changed (and, in a
/// project, which project), never the content.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub audience: Audience,
    pub event: Value,
    /// The stream record's sequence number: what a batch response names to have it retried.
    pub sequence_number: Option<String>,
}

/// The pushed tables (`pushed` in [`owned::OWNED_TABLES`]) by their deployed name, each with
/// what its items are called in events.
pub fn pushed_tables(env: &Env) -> Result<BTreeMap<String, &'static str>, ConfigError> {
    Ok(owned::named(env, |t| t.pushed)?.into_iter().map(|t| (t.name, t.spec.kind)).collect())
}

fn string_attr<'a>(item: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        serde_dynamo::AttributeValue::S(s) => Some(s),
        _ => None,
    }
}

/// A whole-number attribute (DynamoDB numbers travel as text in stream images).
fn count_attr(item: &serde_dynamo::Item, name: &str) -> Option<u64> {
    match item.get(name)? {
        serde_dynamo::AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// What a pushed event copies from the changed item: names and states that tell a client what
/// to fetch, never content. `seq` is a message's number in its session, the same the API
/// answers with, so a client can order pushes and tell which poll they make redundant.
const PUSHED_TEXT: [&str; 4] = ["session_id", "updated_at", "run_status", "status"];
const PUSHED_NUMBERS: [&str; 1] = ["seq"];

/// The table name in a stream ARN (`arn:aws:dynamodb:...:table/<name>/stream/<label>`).
fn table_of(arn: &str) -> Option<&str> {
    arn.split("table/").nth(1)?.split('/').next()
}

/// Turns DynamoDB stream records into changes. `tables` maps table names to what their items
/// are (`message`, `session`, ...); records of other tables, and records without a string
/// `user_id` and `id` key, are ignored. An item of a project (partition `project#<id>`) names
/// its project in the event (`project_id`).
pub fn changes(event: &StreamEvent, tables: &BTreeMap<String, &'static str>) -> Vec<Change> {
    event.records.iter().filter_map(|record| change(record, tables)).collect()
}

fn change(record: &EventRecord, tables: &BTreeMap<String, &'static str>) -> Option<Change> {
    let kind = tables.get(table_of(record.event_source_arn.as_deref()?)?)?;
    let keys = &record.change.keys;
    let (partition, id) = (string_attr(keys, attr::USER_ID)?, string_attr(keys, attr::ID)?);
    let verb = match record.event_name.as_str() {
        "INSERT" => "created",
        "MODIFY" => "updated",
        "REMOVE" => "deleted",
        _ => return None,
    };
    let image = match record.change.new_image.is_empty() {
        true => &record.change.old_image,
        false => &record.change.new_image,
    };
    let audience = Audience::of_partition(partition);
    let mut event = json!({ "type": format!("{kind}.{verb}"), "id": id });
    if let Some(project) = audience.project_id() {
        event["project_id"] = json!(project);
    }
    for field in PUSHED_TEXT {
        if let Some(v) = string_attr(image, field) {
            event[field] = json!(v);
        }
    }
    for field in PUSHED_NUMBERS {
        if let Some(v) = count_attr(image, field) {
            event[field] = json!(v);
        }
    }
    Some(Change { audience, event, sequence_number: record.change.sequence_number.clone() })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{AuthConfig, TokenMinter};

    /// A record as Lambda delivers it.
    fn record(table: &str, name: &str, user: &str, id: &str, image: Value) -> Value {
        json!({
            "eventID": format!("{name}-{id}"),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:1:table/{table}/stream/2026"),
            "dynamodb": {
                "Keys": {"user_id": {"S": user}, "id": {"S": id}},
                "NewImage": image,
                "SequenceNumber": format!("seq-{id}"),
                "SizeBytes": 64,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        })
    }

    #[test]
    fn changes_belong_to_the_owner_of_the_item() {
        let tables = BTreeMap::from([("Msgs".to_owned(), "message")]);
        let event: StreamEvent = serde_json::from_value(json!({"Records": [
            record(
                "Msgs",
                "INSERT",
                "alice",
                "m1",
                json!({"session_id": {"S": "s1"}, "seq": {"N": "7"}, "content": {"S": "secret"}})
            ),
            record("Other", "INSERT", "bob", "x", json!({})),
            record("Msgs", "REMOVE", "bob", "m2", Value::Null),
            record("Msgs", "MODIFY", "project#p1", "m3", json!({"session_id": {"S": "s3"}})),
        ]}))
        .unwrap();
        let changes = changes(&event, &tables);
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0].audience, Audience::Owner(Owner("alice".into())));
        assert_eq!(changes[0].event, json!({"type": "message.created", "id": "m1", "session_id": "s1", "seq": 7}));
        assert_eq!(changes[0].sequence_number.as_deref(), Some("seq-m1"));
        assert!(!changes[0].event.to_string().contains("secret"), "content never travels in a push");
        assert_eq!(changes[1].audience, Audience::Owner(Owner("bob".into())));
        assert_eq!(changes[1].event["type"], "message.deleted");
        assert!(changes[1].event.get("project_id").is_none(), "a personal item names no project");
        assert_eq!(changes[2].audience, Audience::Project("p1".into()));
        assert_eq!(
            changes[2].event,
            json!({"type": "message.updated", "id": "m3", "session_id": "s3", "project_id": "p1"})
        );
    }

    #[test]
    fn pushed_tables_come_from_the_registry() {
        let env = Env::from_map(
            owned::OWNED_TABLES.iter().map(|t| (t.env.to_owned(), format!("deployed-{}", t.logical_id))).collect(),
        );
        let tables = pushed_tables(&env).unwrap();
        assert_eq!(tables.get("deployed-MessagesTable"), Some(&"message"));
        assert!(!tables.contains_key("deployed-ConnectionsTable"), "connections are not pushed");
        assert_eq!(tables.len(), owned::OWNED_TABLES.iter().filter(|t| t.pushed).count());
    }

    /// An authorizer event as API Gateway sends it for `$connect`.
    fn authorizer_event(extra: Value) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
        let mut event = json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:1:api/live/$connect",
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c1", "apiId": "api"},
        });
        event.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(event).unwrap()
    }

    #[test]
    fn tokens_come_from_the_query_or_the_subprotocol() {
        let query = authorizer_event(json!({"queryStringParameters": {"token": "abc"}}));
        assert_eq!(token_of(&query), Some("abc".into()));
        let header = authorizer_event(json!({"headers": {"Sec-WebSocket-Protocol": "bearer, t.o.k"}}));
        assert_eq!(token_of(&header), Some("t.o.k".into()));
        assert!(wants_bearer_protocol(&header.headers));
        assert_eq!(token_of(&authorizer_event(json!({"headers": {"sec-websocket-protocol": "chat"}}))), None);
        assert_eq!(token_of(&authorizer_event(json!({}))), None);
    }

    /// A route event as API Gateway sends it, with the authorizer context it keeps for the connection.
    fn route_event(authorizer: Value, body: &str) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(json!({
            "requestContext": {
                "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "c1", "authorizer": authorizer,
                "connectedAt": 1, "requestTimeEpoch": 2,
            },
            "body": body,
            "isBase64Encoded": false,
        }))
        .unwrap()
    }

    #[test]
    fn owner_comes_only_from_the_authorizer_context() {
        let event = route_event(json!({"user_id": "alice", "principalId": "alice"}), r#"{"user_id":"bob"}"#);
        assert_eq!(connection_owner(&event), Some(Owner("alice".into())));
        assert_eq!(connection_id(&event), Some("c1"));
        assert_eq!(connection_owner(&route_event(Value::Null, r#"{"user_id":"bob"}"#)), None);
        assert_eq!(connection_owner(&route_event(json!({"user_id": ""}), "")), None);
    }

    #[tokio::test]
    async fn the_authorizer_allows_the_connection_of_a_verified_user_only() {
        let config = AuthConfig {
            secret: Some(b"realtime-test-secret-0123456789abcdef".to_vec()),
            jwks_url: None,
            algorithms: vec![jsonwebtoken::Algorithm::HS256],
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
            jwks_timeout: Duration::from_secs(1),
        };
        let token = TokenMinter::from_config(&config).unwrap().mint("alice", Duration::from_secs(60));
        let verifier = Verifier::new(config).unwrap();
        let event = authorizer_event(json!({"queryStringParameters": {"token": token}}));
        let response = authorize(&verifier, None, &event).await.unwrap();
        assert_eq!(response.principal_id.as_deref(), Some("alice"));
        let statement = &response.policy_document.statement[0];
        assert_eq!(
            (&statement.effect, &statement.resource),
            (&IamPolicyEffect::Allow, &vec![event.method_arn.clone().unwrap()])
        );

        // What API Gateway then hands the routes is what they read the owner from.
        let route = route_event(serde_json::to_value(&response.context).unwrap(), "");
        assert_eq!(connection_owner(&route).map(|o| o.user_id().to_owned()), Some("alice".into()));

        for refused in [json!({}), json!({"queryStringParameters": {"token": "garbage"}})] {
            assert!(authorize(&verifier, None, &authorizer_event(refused)).await.is_err());
        }
    }
}
