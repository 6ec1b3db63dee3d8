//! `admin`: what an operator does to a user's standing. Every change reaches every function
//! instance within the stack's revocation bound (`RevocationCacheSeconds`); with
//! `--user-pool-id` the user pool follows too (a disabled user cannot sign in or refresh, a
//! sign-out invalidates their refresh tokens).
//!
//! ```text
//! admin --users-table <UsersTable> [--user-pool-id <UserPoolId>] disable-user <user-id>
//! admin --users-table <UsersTable> [--user-pool-id <UserPoolId>] enable-user <user-id>
//! admin --users-table <UsersTable> [--user-pool-id <UserPoolId>] sign-out-user <user-id>
//! ```

use std::{process::ExitCode, time::Duration};

use aws_sdk_dynamodb::config::BehaviorVersion;
use clap::{Parser, Subcommand};
use shared::{
    credentials::Credentials,
    identity_provider::{PoolAdmin, UserAdmin},
};

#[derive(Debug, Parser)]
#[command(name = "admin", version)]
struct Args {
    /// The stack's UsersTable (the profile table that carries each user's standing).
    #[arg(long, env = "USERS_TABLE", value_name = "TABLE")]
    users_table: String,
    /// A DynamoDB endpoint other than AWS's (DynamoDB Local).
    #[arg(long, env = "DYNAMODB_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// The stack's user pool (output `UserPoolId`): the change is made there too. Leave it out
    /// when the functions trust another identity provider.
    #[arg(long, env = "COGNITO_USER_POOL_ID", value_name = "ID")]
    user_pool_id: Option<String>,
    /// A Cognito endpoint other than AWS's (the local stack's moto).
    #[arg(long, env = "COGNITO_ENDPOINT", value_name = "URL")]
    cognito_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Refuses every credential of the user, whenever issued, until enabled.
    #[command(name = "disable-user")]
    Disable { user_id: String },
    /// Lifts a disable; tokens refused by other revocations stay refused.
    #[command(name = "enable-user")]
    Enable { user_id: String },
    /// Refuses every token the user holds now; new sign-ins work.
    #[command(name = "sign-out-user")]
    SignOut { user_id: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match &args.endpoint {
        Some(_) => shared::runtime::local_sdk_config(),
        None => aws_config::load_defaults(BehaviorVersion::latest()).await,
    };
    let dynamodb = match &args.endpoint {
        Some(endpoint) => shared::runtime::local_dynamodb_client(endpoint.clone()),
        None => aws_sdk_dynamodb::Client::new(&config),
    };
    // The tool reads nothing twice: no cache.
    let credentials = Credentials::new(dynamodb, args.users_table.clone(), Duration::ZERO, Duration::ZERO);
    let pool = args.user_pool_id.as_ref().map(|pool_id| {
        let mut cognito = aws_sdk_cognitoidentityprovider::config::Builder::from(&config);
        cognito.set_endpoint_url(args.cognito_endpoint.clone());
        PoolAdmin::new(aws_sdk_cognitoidentityprovider::Client::from_conf(cognito.build()), pool_id)
    });
    let admin = UserAdmin { credentials, pool };
    let (result, done) = match &args.command {
        Command::Disable { user_id } => (admin.disable(user_id).await, "disabled"),
        Command::Enable { user_id } => (admin.enable(user_id).await, "enabled"),
        Command::SignOut { user_id } => (admin.sign_out_everywhere(user_id).await, "signed out everywhere"),
    };
    match result {
        Ok(()) => {
            println!("{done}; every function refuses accordingly within the stack's revocation bound");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("admin: {e}");
            ExitCode::FAILURE
        }
    }
}
