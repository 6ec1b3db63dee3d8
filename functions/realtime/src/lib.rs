//! The realtime function: the WebSocket API's authorizer and `$connect`, `$disconnect`,
//! `$default` routes, and the consumer of the data tables' DynamoDB Streams, which pushes each
//! change to its owner's connections only.
//!
//! Why streams rather than a call from the write path: a push then can never fail, slow down or
//! undo a write; Lambda retries stream batches on its own; and the owner of a change is read
//! from the changed item's partition key, not from anything a client sent.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shared::{
    realtime::{self, connection_id, connection_owner, Connections, Pusher},
    ConfigError, Env, EventFunction, Platform,
};

pub struct Realtime {
    platform: Platform,
    pusher: Pusher,
    /// Table name → what its items are called in events.
    kinds: BTreeMap<String, &'static str>,
}

fn status(code: u16) -> Value {
    json!({ "statusCode": code })
}

impl EventFunction for Realtime {
    type Event = Value;
    type Output = Value;

    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let connections = Connections::new(platform.dynamodb.clone(), env.required("CONNECTIONS_TABLE")?);
        let management = platform.management(&env.required("WEBSOCKET_ENDPOINT")?);
        let mut kinds = BTreeMap::new();
        for (variable, kind) in [
            ("SESSIONS_TABLE", "session"),
            ("MESSAGES_TABLE", "message"),
            ("CANVASES_TABLE", "canvas"),
            ("WORKFLOWS_TABLE", "workflow"),
        ] {
            kinds.insert(env.required(variable)?, kind);
        }
        Ok(Self { platform: platform.clone(), pusher: Pusher::new(connections, management), kinds })
    }

    async fn handle(&self, event: Value) -> Result<Value, lambda_runtime::Error> {
        if event.get("Records").is_some() {
            return Ok(self.stream(&event).await?);
        }
        if event["type"] == "REQUEST" {
            // API Gateway answers 401 to the client when the authorizer fails with this message.
            return realtime::authorize(&self.platform.verifier, &event).await.map_err(|reason| {
                tracing::info!(reason, "websocket connection refused");
                "Unauthorized".into()
            });
        }
        let (Some(owner), Some(connection)) = (connection_owner(&event), connection_id(&event)) else {
            tracing::warn!("websocket event without an authorized connection");
            return Ok(status(401));
        };
        let connections = self.pusher.connections();
        let result = match event["requestContext"]["eventType"].as_str() {
            Some("CONNECT") => connections.register(&owner, connection).await.map(|()| {
                let mut answer = status(200);
                if realtime::wants_bearer_protocol(&event) {
                    answer["headers"] = json!({"Sec-WebSocket-Protocol": "bearer"});
                }
                answer
            }),
            Some("DISCONNECT") => connections.forget(&owner, connection).await.map(|()| status(200)),
            _ => {
                let reply = reply_to(event["body"].as_str().unwrap_or_default());
                self.pusher.send(&owner, connection, &reply).await;
                Ok(status(200))
            }
        };
        tracing::info!(
            route = event["requestContext"]["routeKey"].as_str().unwrap_or("-"),
            user_id = owner.user_id(),
            connection,
            "websocket"
        );
        result.or_else(|e| {
            tracing::error!(error = %e, "websocket route failed");
            Ok(status(e.status().as_u16()))
        })
    }
}

/// What the server answers to a client message. Clients cannot choose what they hear: every
/// event of their own data reaches them, and naming anything else changes nothing.
fn reply_to(body: &str) -> Value {
    let action = serde_json::from_str::<Value>(body).ok().and_then(|v| v["action"].as_str().map(str::to_owned));
    match action.as_deref() {
        Some("ping") => json!({"type": "pong"}),
        Some("subscribe") => json!({
            "type": "error",
            "detail": "there is nothing to subscribe to: every change to your own data reaches your connections",
        }),
        _ => json!({"type": "error", "detail": "unknown action: send {\"action\": \"ping\"}"}),
    }
}

impl Realtime {
    /// A batch from the data tables' streams. Push failures are logged, never returned: the
    /// writes have happened, and failing the batch would only replay pushes.
    async fn stream(&self, event: &Value) -> Result<Value, String> {
        let changes = realtime::changes(event, &self.kinds)?;
        let count = changes.len();
        match self.pusher.push(changes).await {
            Ok(d) => tracing::info!(changes = count, sent = d.sent, gone = d.gone, failed = d.failed, "pushed"),
            Err(e) => tracing::warn!(error = %e, changes = count, "push skipped"),
        }
        Ok(json!({"batchItemFailures": []}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_cannot_subscribe_to_anything() {
        assert_eq!(reply_to(r#"{"action":"ping"}"#), json!({"type": "pong"}));
        assert_eq!(reply_to(r#"{"action":"subscribe","session_id":"someone-elses"}"#)["type"], "error");
        assert_eq!(reply_to("not json")["type"], "error");
    }
}
