//! `local-stack up [--port N]`: DynamoDB Local + S3 server + the template's tables and buckets +
//! the local gateway in development mode.
//! `local-stack exec -- <command...>`: the same local AWS, then runs the command with
//! `DYNAMODB_ENDPOINT` and `S3_ENDPOINT` set, and stops it all when it ends (the tests use this).

use std::{process::ExitCode, sync::Arc};

use local_stack::{
    dynamodb_local::DynamoDbLocal,
    gateway,
    local::{LocalSettings, LocalStack},
    s3_local::S3Local,
    tables,
};
use template::Template;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str =
    "usage: local-stack up [--port N] [--dynamodb-port N]\n       local-stack exec -- <command> [args...]";

fn flag(args: &[String], name: &str) -> Result<Option<u16>, BoxError> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| format!("{name} needs a value"))?;
            Ok(Some(v.parse().map_err(|_| format!("{name}: not a port: {v}"))?))
        }
    }
}

/// The local AWS: DynamoDB Local and an S3 server, with the template's tables and buckets.
struct LocalAws {
    dynamodb: DynamoDbLocal,
    s3: S3Local,
    template: Template,
}

impl LocalAws {
    async fn start(dynamodb_port: Option<u16>) -> Result<Self, BoxError> {
        let template = Template::load_default()?;
        let (dynamodb, s3) = tokio::try_join!(DynamoDbLocal::start(dynamodb_port), S3Local::start())?;
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
        Ok(Self { dynamodb, s3, template })
    }

    async fn stop(self) {
        self.dynamodb.stop().await;
        self.s3.stop().await;
    }
}

async fn up(args: &[String]) -> Result<(), BoxError> {
    shared::runtime::init_logging();
    let port = flag(args, "--port")?.unwrap_or(3000);
    let aws = LocalAws::start(flag(args, "--dynamodb-port")?).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (pass --port to choose another)"))?;
    let routes = aws.template.route_keys();
    let base = format!("http://127.0.0.1:{port}");
    let mut settings = LocalSettings::development(aws.dynamodb.endpoint.clone(), aws.s3.endpoint.clone());
    settings.gateway_url = Some(base.clone());
    let stack = Arc::new(LocalStack::build(aws.template.clone(), settings).await?);
    let _pumps = local_stack::streams::spawn_pumps(stack.clone()).await?;
    println!("\nLocal API (development mode) at {base}");
    for route in &routes {
        println!("  {route}");
    }
    if stack.template.websocket.is_some() {
        println!("  WebSocket: ws://127.0.0.1:{port}{}?token=<JWT>", local_stack::websocket::PATH);
    }
    println!(
        "\nGet a token and call the API:\n  TOKEN=$(curl -s -X POST {base}/dev/token -d '{{\"user\":\"alice\"}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n  curl -s -X POST {base}/canvases -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"My first canvas\"}}'\n  curl -s {base}/canvases -H \"Authorization: Bearer $TOKEN\"\n\nCtrl-C stops the gateway and DynamoDB Local.\n"
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
    let (program, rest) = command.split_first().ok_or(USAGE)?;
    let aws = LocalAws::start(None).await?;
    let status = tokio::process::Command::new(program)
        .args(rest)
        .env("DYNAMODB_ENDPOINT", &aws.dynamodb.endpoint)
        .env("S3_ENDPOINT", &aws.s3.endpoint)
        .status()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    aws.stop().await;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("up") => up(&args).await.map(|_| ExitCode::SUCCESS),
        Some("exec") => {
            let command = match args.get(1).map(String::as_str) {
                Some("--") => &args[2..],
                _ => &args[1..],
            };
            exec(command).await
        }
        _ => Err(USAGE.into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("local-stack: {e}");
        ExitCode::FAILURE
    })
}
