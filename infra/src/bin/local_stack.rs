//! `local-stack up [--port N]`: DynamoDB Local + tables + the local gateway in development mode.
//! `local-stack exec -- <command...>`: DynamoDB Local + tables, then runs the command with
//! `DYNAMODB_ENDPOINT` set, and stops DynamoDB Local when it ends (the test command uses this).

use std::{process::ExitCode, sync::Arc};

use infra::{
    dynamodb_local::DynamoDbLocal,
    gateway,
    local::{LocalSettings, LocalStack},
    tables,
    template::Template,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: local-stack up [--port N] [--dynamodb-port N]\n       local-stack exec -- <command> [args...]";

fn flag(args: &[String], name: &str) -> Result<Option<u16>, BoxError> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| format!("{name} needs a value"))?;
            Ok(Some(v.parse().map_err(|_| format!("{name}: not a port: {v}"))?))
        }
    }
}

async fn start_dynamodb(port: Option<u16>) -> Result<(DynamoDbLocal, Template), BoxError> {
    let template = Template::load_default()?;
    let local = DynamoDbLocal::start(port).await?;
    let client = shared::runtime::dynamodb_client(Some(local.endpoint.clone())).await;
    let created = tables::ensure_all(&client, &template.tables).await?;
    eprintln!("DynamoDB Local at {} with tables: {}", local.endpoint, created.join(", "));
    Ok((local, template))
}

async fn up(args: &[String]) -> Result<(), BoxError> {
    shared::runtime::init_logging();
    let port = flag(args, "--port")?.unwrap_or(3000);
    let (dynamodb, template) = start_dynamodb(flag(args, "--dynamodb-port")?).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (pass --port to choose another)"))?;
    let routes = template.route_keys();
    let stack = Arc::new(LocalStack::build(template, LocalSettings::development(dynamodb.endpoint.clone())).await?);
    let base = format!("http://127.0.0.1:{port}");
    println!("\nLocal API (development mode) at {base}");
    for route in &routes {
        println!("  {route}");
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
    dynamodb.stop().await;
    Ok(())
}

async fn exec(command: &[String]) -> Result<ExitCode, BoxError> {
    let (program, rest) = command.split_first().ok_or(USAGE)?;
    let (dynamodb, _) = start_dynamodb(None).await?;
    let status = tokio::process::Command::new(program)
        .args(rest)
        .env("DYNAMODB_ENDPOINT", &dynamodb.endpoint)
        .status()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    dynamodb.stop().await;
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
