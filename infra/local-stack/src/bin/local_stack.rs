//! `local-stack up [--port N]`: DynamoDB Local + S3 server + moto's Cognito + the template's tables and buckets +
//! the local gateway in development mode.
//! `local-stack exec -- <command...>`: the same local AWS, then runs the command with
//! `DYNAMODB_ENDPOINT`, `S3_ENDPOINT` and the user pool's `COGNITO_ENDPOINT`, `COGNITO_USER_POOL_ID`,
//! `COGNITO_CLIENT_ID` set, and stops it all when it ends (the tests use this).
//! `local-stack events`: writes `events/`, an API Gateway v2 event for every template route.
//! `local-stack env <LogicalId>`: a function's environment as the local stack gives it, as JSON
//! (for running its built binary against the local AWS, see infra/real-artifacts).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};

use local_stack::{
    cognito_local::CognitoLocal,
    dynamodb_local::DynamoDbLocal,
    gateway,
    local::{LocalSettings, LocalStack},
    s3_local::S3Local,
    tables,
};
use template::Template;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The local AWS stack: DynamoDB Local, a local S3 server, the template's tables, the gateway.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API locally in development mode (the default).
    Up {
        /// Port of the local gateway.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Port of DynamoDB Local (default: a free one).
        #[arg(long)]
        dynamodb_port: Option<u16>,
    },
    /// Start the local AWS services, run a command against them, stop them.
    Exec {
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Write an API Gateway v2 event for every template route (for `sam local invoke -e` and
    /// the fixture tests); request bodies are the API description's examples.
    Events {
        /// Folder to write to.
        #[arg(long, default_value = "events")]
        out: PathBuf,
    },
    /// Print a function's environment as the local stack configures it (a JSON object): the
    /// template's variables resolved locally, with `DYNAMODB_ENDPOINT`, `S3_ENDPOINT` and
    /// `JWT_SECRET` taken from this command's environment (as `exec` sets the first two), and
    /// development mode off (the binary then runs as it would in Lambda).
    Env {
        /// The function's logical id in template.yaml, e.g. CanvasesFunction.
        function: String,
    },
}

/// The local AWS: DynamoDB Local and an S3 server, with the template's tables and buckets, and
/// moto's Cognito with the user pool.
struct LocalAws {
    dynamodb: DynamoDbLocal,
    s3: S3Local,
    cognito: CognitoLocal,
    template: Template,
}

impl LocalAws {
    async fn start(dynamodb_port: Option<u16>) -> Result<Self, BoxError> {
        let template = Template::load_default()?;
        let (dynamodb, s3, cognito) =
            tokio::try_join!(DynamoDbLocal::start(dynamodb_port), S3Local::start(), CognitoLocal::start())?;
        let client = shared::runtime::local_dynamodb_client(dynamodb.endpoint.clone());
        tables::ensure_all(&client, &template.tables).await?;
        S3Local::ensure_buckets(&s3.endpoint, &template.buckets).await?;
        eprintln!(
            "DynamoDB Local at {} (tables: {}); S3 at {} (buckets: {})",
            dynamodb.endpoint,
            template.tables.iter().map(|t| t.logical_id.as_str()).collect::<Vec<_>>().join(", "),
            s3.endpoint,
            template.buckets.join(", ")
        );
        eprintln!(
            "Cognito (moto) at {} (user pool {}, app client {})",
            cognito.pool.endpoint, cognito.pool.pool_id, cognito.pool.client_id
        );
        Ok(Self { dynamodb, s3, cognito, template })
    }

    async fn stop(self) {
        self.dynamodb.stop().await;
        self.s3.stop().await;
        self.cognito.stop().await;
    }
}

async fn up(port: u16, dynamodb_port: Option<u16>) -> Result<(), BoxError> {
    shared::runtime::init_logging();
    let aws = LocalAws::start(dynamodb_port).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (pass --port to choose another)"))?;
    let routes = aws.template.route_keys();
    let base = format!("http://127.0.0.1:{port}");
    let mut settings = LocalSettings::development(aws.dynamodb.endpoint.clone(), aws.s3.endpoint.clone())
        .with_pool(aws.cognito.pool.clone());
    settings.gateway_url = Some(base.clone());
    let stack = Arc::new(LocalStack::build(aws.template.clone(), settings).await?);
    let _pumps = local_stack::streams::spawn_pumps(stack.clone()).await?;
    let _notifications = tokio::spawn(local_stack::s3_events::deliver(stack.clone()));
    println!("\nLocal API (development mode) at {base}");
    for route in &routes {
        println!("  {route}");
    }
    if stack.template.websocket.is_some() {
        println!("  WebSocket: ws://127.0.0.1:{port}{}?token=<JWT>", local_stack::websocket::PATH);
    }
    println!(
        "\nGet a token and call the API:\n  TOKEN=$(curl -s -X POST {base}/dev/token -d '{{\"user\":\"alice\"}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n  curl -s -X POST {base}/canvases -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"My first canvas\"}}'\n  curl -s {base}/canvases -H \"Authorization: Bearer $TOKEN\"\n\nOr sign up and in on the local user pool (moto accepts any confirmation code): POST {base}/auth/signup, /auth/confirm, /auth/login (README, \"Auth\").\n\nCtrl-C stops the gateway, DynamoDB Local and moto.\n"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = gateway::serve(stack, listener) => result?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        _ = terminate.recv() => eprintln!("stopping"),
    }
    aws.stop().await;
    Ok(())
}

async fn exec(command: &[String]) -> Result<ExitCode, BoxError> {
    let (program, rest) = command.split_first().ok_or("exec needs a command")?;
    let aws = LocalAws::start(None).await?;
    let status = tokio::process::Command::new(program)
        .args(rest)
        .env("DYNAMODB_ENDPOINT", &aws.dynamodb.endpoint)
        .env("S3_ENDPOINT", &aws.s3.endpoint)
        .envs(aws.cognito.pool.vars())
        .status()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    aws.stop().await;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}

fn function_env(function: &str) -> Result<String, BoxError> {
    let template = Template::load_default()?;
    let spec = template.functions.iter().find(|f| f.logical_id == function).ok_or_else(|| {
        let known: Vec<&str> = template.functions.iter().map(|f| f.logical_id.as_str()).collect();
        format!("no function {function} in template.yaml (functions: {})", known.join(", "))
    })?;
    let from_env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let mut settings = LocalSettings::development(from_env("DYNAMODB_ENDPOINT")?, from_env("S3_ENDPOINT")?);
    settings.jwt_secret = from_env("JWT_SECRET")?;
    settings.development_mode = false;
    let env = local_stack::local::local_environment(spec, &template, &settings);
    Ok(serde_json::to_string_pretty(&env)?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Up { port: 3000, dynamodb_port: None }) {
        Command::Up { port, dynamodb_port } => up(port, dynamodb_port).await.map(|_| ExitCode::SUCCESS),
        Command::Exec { command } => exec(&command).await,
        Command::Events { out } => local_stack::fixtures::write_all(&out).map(|count| {
            eprintln!("wrote {count} events to {}", out.display());
            ExitCode::SUCCESS
        }),
        Command::Env { function } => function_env(&function).map(|env| {
            println!("{env}");
            ExitCode::SUCCESS
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("local-stack: {e}");
        ExitCode::FAILURE
    })
}
