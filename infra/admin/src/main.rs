//! `admin`: what an operator does to a user's standing. Every change reaches every function
//! instance within the stack's revocation bound (`RevocationCacheSeconds`).
//!
//! ```text
//! admin --users-table <UsersTable> disable-user <user-id>
//! admin --users-table <UsersTable> enable-user <user-id>
//! admin --users-table <UsersTable> sign-out-user <user-id>
//! ```

use std::{process::ExitCode, time::Duration};

use aws_sdk_dynamodb::config::BehaviorVersion;
use clap::{Parser, Subcommand};
use shared::credentials::Credentials;

#[derive(Debug, Parser)]
#[command(name = "admin", version)]
struct Args {
    /// The stack's UsersTable (the profile table that carries each user's standing).
    #[arg(long, env = "USERS_TABLE", value_name = "TABLE")]
    users_table: String,
    /// A DynamoDB endpoint other than AWS's (DynamoDB Local).
    #[arg(long, env = "DYNAMODB_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
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
    let client = match &args.endpoint {
        Some(endpoint) => shared::runtime::local_dynamodb_client(endpoint.clone()),
        None => aws_sdk_dynamodb::Client::new(&aws_config::load_defaults(BehaviorVersion::latest()).await),
    };
    // The tool reads nothing twice: no cache.
    let credentials = Credentials::new(client, args.users_table, Duration::ZERO, Duration::ZERO);
    let (result, done) = match &args.command {
        Command::Disable { user_id } => (credentials.set_disabled(user_id, true).await, "disabled"),
        Command::Enable { user_id } => (credentials.set_disabled(user_id, false).await, "enabled"),
        Command::SignOut { user_id } => (credentials.sign_out_user(user_id).await, "signed out everywhere"),
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
