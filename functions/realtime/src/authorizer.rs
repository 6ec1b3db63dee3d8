//! The `$connect` authorizer (REQUEST type): the same verifier as the HTTP API.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use shared::{
    credentials::Credentials,
    realtime::{self, AuthorizerResponse},
    ConfigError, Env, EventFunction, Platform, Verifier,
};

pub struct Authorizer {
    verifier: Arc<Verifier>,
    credentials: Option<Arc<Credentials>>,
}

/// The error message API Gateway turns into a 401 for the client.
const REFUSED: &str = "Unauthorized";

impl EventFunction for Authorizer {
    // Reads only the caller's standing, which most connections find cached.
    const WARM_UP_DYNAMODB: bool = false;
    type Event = ApiGatewayCustomAuthorizerRequestTypeRequest;
    type Output = AuthorizerResponse;

    fn build(platform: &Platform, _env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { verifier: platform.verifier.clone(), credentials: platform.credentials.clone() })
    }

    async fn handle(&self, event: Self::Event) -> Result<Self::Output, lambda_runtime::Error> {
        realtime::authorize(&self.verifier, self.credentials.as_deref(), &event).await.map_err(|reason| {
            tracing::info!(reason, "websocket connection refused");
            REFUSED.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_token_is_the_error_api_gateway_maps_to_401() {
        let env = Env::from_map(
            [
                ("JWT_SECRET", "authorizer-test-secret-0123456789abcdef"),
                ("DYNAMODB_ENDPOINT", "http://127.0.0.1:9"),
                ("S3_ENDPOINT", "http://127.0.0.1:9"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let platform = Platform::from_env(&env).await.unwrap();
        let authorizer = Authorizer::build(&platform, &env).unwrap();
        let event: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(serde_json::json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:1:api/live/$connect",
            "queryStringParameters": {"token": "garbage"},
            "requestContext": {"routeKey": "$connect", "connectionId": "c1"},
        }))
        .unwrap();
        let error = authorizer.handle(event).await.unwrap_err();
        assert_eq!(error.to_string(), "Unauthorized");
    }
}
