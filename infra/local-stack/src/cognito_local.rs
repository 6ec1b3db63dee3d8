//! moto's Cognito (`moto_server`, from `.venv/`) as the local user pool: started on a free port
//! with a pool shaped like the template's (email as username, the same password policy, the
//! `organization` attribute) and a public app client. moto signs RS256 tokens (`kid` "dummy")
//! and serves the pool's JWKS, so the functions verify its tokens on the same path as on AWS.
//! Stopped when dropped.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use aws_sdk_cognitoidentityprovider::{
    types::{
        AttributeDataType, ExplicitAuthFlowsType, PasswordPolicyType, SchemaAttributeType,
        StringAttributeConstraintsType, UserPoolPolicyType, UsernameAttributeType, VerifiedAttributeType,
    },
    Client,
};
use shared::identity_provider::PASSWORD_MIN_LENGTH;
use tokio::process::{Child, Command};

use crate::dynamodb_local::{die_with_parent, free_port};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The region moto puts in its issuer: the local SDK settings' (`shared::runtime::local_sdk_config`).
const REGION: &str = "us-east-1";

/// Where the local user pool is, as `local-stack exec` exports it to the commands it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPool {
    pub endpoint: String,
    pub pool_id: String,
    pub client_id: String,
}

impl LocalPool {
    pub const ENDPOINT_VAR: &'static str = "COGNITO_ENDPOINT";
    pub const POOL_VAR: &'static str = "COGNITO_USER_POOL_ID";
    pub const CLIENT_VAR: &'static str = "COGNITO_CLIENT_ID";

    /// The pool `local-stack exec` started, if this process runs under it.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Some(Self {
            endpoint: var(Self::ENDPOINT_VAR)?,
            pool_id: var(Self::POOL_VAR)?,
            client_id: var(Self::CLIENT_VAR)?,
        })
    }

    pub fn vars(&self) -> [(&'static str, &str); 3] {
        [(Self::ENDPOINT_VAR, &self.endpoint), (Self::POOL_VAR, &self.pool_id), (Self::CLIENT_VAR, &self.client_id)]
    }

    /// The `iss` of moto's tokens (models.py `create_jwt`), as Cognito's.
    pub fn issuer(&self) -> String {
        format!("https://cognito-idp.{REGION}.amazonaws.com/{}", self.pool_id)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/{}/.well-known/jwks.json", self.endpoint, self.pool_id)
    }

    pub fn client(&self) -> Client {
        Client::from_conf(
            aws_sdk_cognitoidentityprovider::config::Builder::from(&shared::runtime::local_sdk_config())
                .endpoint_url(&self.endpoint)
                .build(),
        )
    }

    /// Another public app client of the pool (its tokens name it, not ours).
    pub async fn create_app_client(&self, name: &str) -> Result<String, BoxError> {
        create_app_client(&self.client(), &self.pool_id, name).await
    }

    /// Signs in through an app client directly (not through the API): its access and ID tokens.
    pub async fn sign_in_with(
        &self,
        client_id: &str,
        email: &str,
        password: &str,
    ) -> Result<(String, String), BoxError> {
        let out = self
            .client()
            .initiate_auth()
            .client_id(client_id)
            .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", password)
            .send()
            .await?;
        let tokens = out.authentication_result.ok_or("no tokens")?;
        Ok((tokens.access_token.ok_or("no access token")?, tokens.id_token.ok_or("no id token")?))
    }
}

async fn create_app_client(client: &Client, pool_id: &str, name: &str) -> Result<String, BoxError> {
    let created = client
        .create_user_pool_client()
        .user_pool_id(pool_id)
        .client_name(name)
        .generate_secret(false)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await?;
    Ok(created.user_pool_client.and_then(|c| c.client_id).ok_or("moto created a client without id")?)
}

pub struct CognitoLocal {
    child: Child,
    pub pool: LocalPool,
}

impl CognitoLocal {
    /// Starts moto on a free port and creates the pool and its app client.
    pub async fn start() -> Result<Self, BoxError> {
        let root = crate::workspace_root();
        let moto = root.join(".venv/bin/moto_server");
        if !moto.exists() {
            return Err(
                format!("{} not found: run infra/bootstrap.sh's ensure_venv (moto[server])", moto.display()).into()
            );
        }
        let port = free_port()?;
        let mut command = Command::new(&moto);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", moto.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let client =
            LocalPool { endpoint: endpoint.clone(), pool_id: String::new(), client_id: String::new() }.client();
        wait_ready(&client).await?;
        let pool_id = create_pool(&client).await?;
        let client_id = create_app_client(&client, &pool_id, "local-web").await?;
        Ok(Self { child, pool: LocalPool { endpoint, pool_id, client_id } })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn wait_ready(client: &Client) -> Result<(), BoxError> {
    let started = Instant::now();
    loop {
        match client.list_user_pools().max_results(1).send().await {
            Ok(_) => return Ok(()),
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => return Err(format!("moto's Cognito did not answer within 30 s: {e:?}").into()),
        }
    }
}

/// A pool like the template's `UserPool`.
async fn create_pool(client: &Client) -> Result<String, BoxError> {
    let policy = PasswordPolicyType::builder()
        .minimum_length(PASSWORD_MIN_LENGTH as i32)
        .require_lowercase(true)
        .require_uppercase(true)
        .require_numbers(true)
        .require_symbols(false)
        .build();
    let organization = SchemaAttributeType::builder()
        .name("organization")
        .attribute_data_type(AttributeDataType::String)
        .mutable(true)
        .string_attribute_constraints(
            StringAttributeConstraintsType::builder().min_length("1").max_length("100").build(),
        )
        .build();
    let created = client
        .create_user_pool()
        .pool_name("local")
        .username_attributes(UsernameAttributeType::Email)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .policies(UserPoolPolicyType::builder().password_policy(policy).build())
        .schema(organization)
        .send()
        .await?;
    Ok(created.user_pool.and_then(|p| p.id).ok_or("moto created a pool without id")?)
}
