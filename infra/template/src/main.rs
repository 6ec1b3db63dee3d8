//! `template`: what the shell scripts in `infra/` need from `template.yaml`, read by the same
//! parser as the local stack and the tests (so the scripts need no YAML tooling of their own).

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use template::{workspace_root, Template};

#[derive(Parser)]
#[command(about = "Reads template.yaml for the infra/ scripts")]
struct Cli {
    /// The SAM template [default: template.yaml at the workspace root]
    #[arg(long, global = true)]
    template: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cargo binary of every function built with `BuildMethod: rust-cargolambda`, one a
    /// line, in template order; fails when one lacks `Metadata.BuildProperties.Binary`, two share
    /// a binary, or there are none.
    Binaries,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.template.unwrap_or_else(|| workspace_root().join("template.yaml"));
    let result = Template::load(&path).and_then(|t| match cli.command {
        Command::Binaries => t.binaries().map(|binaries| binaries.join("\n")),
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("template: {e}");
            ExitCode::FAILURE
        }
    }
}
