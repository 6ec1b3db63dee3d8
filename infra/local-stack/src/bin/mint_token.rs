//! `mint-token <user> [--ttl SECONDS]`: prints an HS256 token whose `sub` is `user`, for a
//! stack deployed with `JwtSecret` (no identity provider). Reads the settings the functions
//! read: `JWT_SECRET`, and `JWT_ISSUER` / `JWT_AUDIENCE` when the stack sets them, so the token
//! carries the `iss` / `aud` the stack requires. Default lifetime: one hour.
//!
//! ```sh
//! JWT_SECRET=... cargo run -q -p infra --bin mint-token -- alice
//! ```

use std::{process::ExitCode, time::Duration};

use shared::{AuthConfig, Env, TokenMinter};

const USAGE: &str = "usage: mint-token <user> [--ttl SECONDS]   (reads JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE)";

fn parse(args: &[String]) -> Result<(String, Duration), String> {
    let mut user = None;
    let mut ttl = Duration::from_secs(3600);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ttl" => {
                let value = args.next().ok_or("--ttl needs a number of seconds")?;
                let secs: u64 = value.parse().map_err(|_| format!("--ttl: not a number of seconds: {value}"))?;
                ttl = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}\n{USAGE}")),
            other if user.is_none() => user = Some(other.to_owned()),
            other => return Err(format!("unexpected argument {other}\n{USAGE}")),
        }
    }
    let user = user.filter(|u| !u.trim().is_empty()).ok_or(USAGE)?;
    Ok((user, ttl))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (user, ttl) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let config = match AuthConfig::from_env(&Env::process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mint-token: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(minter) = TokenMinter::from_config(&config) else {
        eprintln!("mint-token: JWT_SECRET is not set: only HS256 stacks take minted tokens (get an identity provider's token otherwise)");
        return ExitCode::FAILURE;
    };
    println!("{}", minter.mint(&user, ttl));
    ExitCode::SUCCESS
}
