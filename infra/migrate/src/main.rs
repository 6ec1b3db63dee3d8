//! `migrate`: single-tenant legacy tables into the user-partitioned tables. The logic lives in
//! the `migrate` library; `migrate --help` lists the options, the README shows a run.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    migrate::cli::main(std::env::args_os()).await
}
