//! The WebSocket routes: `$connect` records the connection under its owner, `$disconnect`
//! forgets it, `$default` answers client messages.

use aws_lambda_events::{
    apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest},
    http::{header::SEC_WEBSOCKET_PROTOCOL, HeaderValue},
};
use serde_json::{json, Value};
use shared::{
    realtime::{self, connection_id, connection_owner, Connections, Pusher},
    ConfigError, Env, EventFunction, Platform,
};

pub struct Routes {
    /// Replies go out like pushes do, through the Management API.
    pusher: Pusher,
}

fn status(code: u16) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(code);
    response
}

impl EventFunction for Routes {
    type Event = ApiGatewayWebsocketProxyRequest;
    type Output = ApiGatewayProxyResponse;

    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let connections = Connections::new(platform.dynamodb.clone(), env.required("CONNECTIONS_TABLE")?);
        let management = platform.management(&env.required("WEBSOCKET_ENDPOINT")?);
        Ok(Self { pusher: Pusher::new(connections, management) })
    }

    async fn handle(&self, event: Self::Event) -> Result<Self::Output, lambda_runtime::Error> {
        let (Some(owner), Some(connection)) = (connection_owner(&event), connection_id(&event)) else {
            tracing::warn!("websocket event without an authorized connection");
            return Ok(status(401));
        };
        let connections = self.pusher.connections();
        let result = match event.request_context.event_type.as_deref() {
            Some("CONNECT") => connections.register(&owner, connection).await.map(|()| {
                let mut answer = status(200);
                if realtime::wants_bearer_protocol(&event.headers) {
                    answer.headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("bearer"));
                }
                answer
            }),
            Some("DISCONNECT") => connections.forget(&owner, connection).await.map(|()| status(200)),
            _ => {
                let reply = reply_to(event.body.as_deref().unwrap_or_default());
                self.pusher.send(&owner, connection, &reply).await;
                Ok(status(200))
            }
        };
        tracing::info!(
            route = event.request_context.route_key.as_deref().unwrap_or("-"),
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
