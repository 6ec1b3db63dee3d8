//! The `migrate` command line: options to a [`Config`], a DynamoDB client from the environment
//! (or `--endpoint`), Ctrl-C as a clean interruption, the summary on stdout.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    path::PathBuf,
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
};

use aws_sdk_dynamodb::{
    config::{retry::RetryConfig, BehaviorVersion},
    Client,
};
use clap::Parser;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{
    owner::{check_user_id, load_mapping, Owners},
    Config, Kind, Migration, Mode, Summary,
};

/// Exit codes besides 0 (done, nothing to report) and 1 (error).
pub const EXIT_ISSUES: u8 = 2;
pub const EXIT_STOPPED: u8 = 3;

/// Copies single-tenant legacy tables (keyed by `id` alone) into the stack's user-partitioned
/// tables. Never overwrites, resumable, bounded in capacity. See the README, "Migrating
/// single-tenant data".
///
/// Exit status: 0 done; 2 done, but items failed or conflicted (verify: differences found);
/// 3 stopped before the end (resume with the same command); 1 error.
#[derive(Debug, Parser)]
#[command(name = "migrate", version)]
pub struct Args {
    /// Read and report what a run would do; write nothing.
    #[arg(long, conflicts_with = "verify")]
    pub dry_run: bool,
    /// Compare every legacy item with the target and report the differences; write nothing.
    #[arg(long)]
    pub verify: bool,

    /// Legacy canvases table.
    #[arg(long, value_name = "TABLE")]
    pub legacy_canvases: Option<String>,
    /// Legacy chat sessions table (needed with --legacy-messages: a message goes to its session's owner).
    #[arg(long, value_name = "TABLE")]
    pub legacy_sessions: Option<String>,
    /// Legacy chat messages table (each item names its `session_id`).
    #[arg(long, value_name = "TABLE")]
    pub legacy_messages: Option<String>,
    /// Legacy workflows table.
    #[arg(long, value_name = "TABLE")]
    pub legacy_workflows: Option<String>,
    /// Legacy files table (metadata; the bytes are not moved).
    #[arg(long, value_name = "TABLE")]
    pub legacy_files: Option<String>,

    /// The stack's CanvasesTable (with --endpoint, default: CanvasesTable).
    #[arg(long, env = "CANVASES_TABLE", value_name = "TABLE")]
    pub canvases_table: Option<String>,
    /// The stack's SessionsTable.
    #[arg(long, env = "SESSIONS_TABLE", value_name = "TABLE")]
    pub sessions_table: Option<String>,
    /// The stack's MessagesTable.
    #[arg(long, env = "MESSAGES_TABLE", value_name = "TABLE")]
    pub messages_table: Option<String>,
    /// The stack's WorkflowsTable.
    #[arg(long, env = "WORKFLOWS_TABLE", value_name = "TABLE")]
    pub workflows_table: Option<String>,
    /// The stack's FilesTable.
    #[arg(long, env = "FILES_TABLE", value_name = "TABLE")]
    pub files_table: Option<String>,
    /// Migrate only these kinds (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub only: Option<Vec<Kind>>,

    /// Owner-mapping file: `<legacy id>,<user id>` lines or a JSON object. Checked first.
    #[arg(long, value_name = "FILE")]
    pub owner_map: Option<PathBuf>,
    /// The legacy attribute holding the owner's user id (e.g. owner, created_by). Checked second.
    #[arg(long, value_name = "NAME")]
    pub owner_attribute: Option<String>,
    /// The user who gets items neither the mapping nor the attribute assigns. Without it such
    /// items are reported as `no owner` and not migrated.
    #[arg(long, value_name = "USER_ID")]
    pub default_owner: Option<String>,
    /// Creation time (RFC 3339) of items with no timestamp at all; default: the legacy table's
    /// creation time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub missing_timestamp: Option<OffsetDateTime>,

    /// Parallel scan segments per legacy table.
    #[arg(long, default_value_t = 4)]
    pub segments: u32,
    /// Items per scan page (the checkpoint advances page by page).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Read capacity units per second at most (0: unbounded).
    #[arg(long, default_value_t = 100.0)]
    pub max_read_units: f64,
    /// Write capacity units per second at most (0: unbounded).
    #[arg(long, default_value_t = 100.0)]
    pub max_write_units: f64,
    /// Progress of a real run, resumed from when it exists; removed when the run completes.
    #[arg(long, default_value = "migrate-checkpoint.json", value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Every issue (failed item, conflict, difference) as a JSON line. Default:
    /// migrate-report.jsonl, migrate-dry-run.jsonl or migrate-verify.jsonl, so one mode's
    /// report never replaces another's.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Stop once this many items were read (as an interruption would; resume later).
    #[arg(long, value_name = "ITEMS")]
    pub stop_after: Option<u64>,
    /// DynamoDB endpoint (DynamoDB Local); default: AWS, with credentials and region from the environment.
    #[arg(long, env = "DYNAMODB_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

impl Args {
    pub fn config(&self) -> Result<Config, String> {
        let mode = match (self.dry_run, self.verify) {
            (true, _) => Mode::DryRun,
            (_, true) => Mode::Verify,
            _ => Mode::Run,
        };
        let legacy: BTreeMap<Kind, String> = [
            (Kind::Canvases, &self.legacy_canvases),
            (Kind::Sessions, &self.legacy_sessions),
            (Kind::Messages, &self.legacy_messages),
            (Kind::Workflows, &self.legacy_workflows),
            (Kind::Files, &self.legacy_files),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.clone().map(|t| (k, t)))
        .collect();
        let local = self.endpoint.is_some();
        let target: BTreeMap<Kind, String> = [
            (Kind::Canvases, &self.canvases_table),
            (Kind::Sessions, &self.sessions_table),
            (Kind::Messages, &self.messages_table),
            (Kind::Workflows, &self.workflows_table),
            (Kind::Files, &self.files_table),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.clone().or_else(|| local.then(|| k.logical_table().to_owned())).map(|t| (k, t)))
        .collect();
        if self.owner_map.is_none() && self.owner_attribute.is_none() && self.default_owner.is_none() {
            return Err("say where owners come from: --owner-map, --owner-attribute and/or --default-owner".into());
        }
        if let Some(user) = &self.default_owner {
            check_user_id(user).map_err(|e| format!("--default-owner: {e}"))?;
        }
        let mapping = match &self.owner_map {
            Some(path) => load_mapping(path)?,
            None => Default::default(),
        };
        let owners = Owners { attribute: self.owner_attribute.clone(), mapping, default: self.default_owner.clone() };
        let mut config = Config::new(mode, legacy, target, owners);
        let bound = |v: f64| (v > 0.0).then_some(v);
        config.only = self.only.clone();
        config.missing_timestamp = self.missing_timestamp;
        config.segments = self.segments;
        config.page_size = self.page_size;
        config.max_read_units = bound(self.max_read_units);
        config.max_write_units = bound(self.max_write_units);
        config.checkpoint = Some(self.checkpoint.clone());
        config.report = Some(self.report.clone().unwrap_or_else(|| {
            PathBuf::from(match mode {
                Mode::Run => "migrate-report.jsonl",
                Mode::DryRun => "migrate-dry-run.jsonl",
                Mode::Verify => "migrate-verify.jsonl",
            })
        }));
        config.stop_after = self.stop_after;
        config.progress = !self.no_progress;
        Ok(config)
    }
}

/// A DynamoDB client for the migration: DynamoDB Local at `endpoint`, else AWS as configured by
/// the environment (`AWS_PROFILE`, `AWS_REGION`, ...). Throttled requests are retried up to
/// ten times with backoff before the run stops (resumable).
pub async fn client(endpoint: Option<&str>) -> Client {
    let retry = RetryConfig::standard().with_max_attempts(10);
    match endpoint {
        Some(url) => {
            let local = shared::runtime::local_dynamodb_client(url.to_owned());
            Client::from_conf(local.config().to_builder().retry_config(retry).build())
        }
        None => {
            let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
            Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).retry_config(retry).build())
        }
    }
}

/// The exit status a finished run's summary calls for.
pub fn exit_status(summary: &Summary) -> u8 {
    let total = summary.total();
    let issues = match summary.mode {
        Mode::Verify => summary.differences() > 0,
        _ => total.failed + total.conflicts > 0,
    };
    match (summary.complete, issues) {
        (false, _) => EXIT_STOPPED,
        (true, true) => EXIT_ISSUES,
        (true, false) => 0,
    }
}

/// The whole program, for `src/bin/migrate.rs` (and tests).
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("migrate: {e}");
            return ExitCode::from(1);
        }
    };
    for kind in config.kinds() {
        eprintln!(
            "{kind}: {} -> {}",
            config.legacy[&kind],
            config.target.get(&kind).map_or("(no target table given)", String::as_str)
        );
    }
    let migration = Migration::new(client(args.endpoint.as_deref()).await, config);
    let stop = migration.stopper();
    let interrupt = tokio::spawn(watch_interrupts(stop));
    let outcome = migration.run().await;
    interrupt.abort();
    match outcome {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::from(exit_status(&summary))
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            if args.checkpoint.exists() && !args.dry_run && !args.verify {
                eprintln!(
                    "migrate: progress so far is in {}: run the same command to resume",
                    args.checkpoint.display()
                );
            }
            ExitCode::from(1)
        }
    }
}

/// First Ctrl-C: finish the pages in flight, save the checkpoint, print the summary. Second:
/// quit at once (the checkpoint on disk is still consistent).
async fn watch_interrupts(stop: Arc<std::sync::atomic::AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("\nmigrate: stopping after the pages in flight (Ctrl-C again to quit now)");
        stop.store(true, Ordering::SeqCst);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_a_config() {
        let args = Args::try_parse_from([
            "migrate",
            "--dry-run",
            "--legacy-canvases",
            "old-canvases",
            "--canvases-table",
            "stack-CanvasesTable-X",
            "--owner-attribute",
            "created_by",
            "--only",
            "canvases,messages",
            "--max-write-units",
            "0",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.mode, Mode::DryRun);
        assert_eq!(config.kinds(), vec![Kind::Canvases]);
        assert_eq!(config.target[&Kind::Canvases], "stack-CanvasesTable-X");
        assert_eq!(config.max_write_units, None);
        assert_eq!(config.max_read_units, Some(100.0));
        assert_eq!(config.report, Some(PathBuf::from("migrate-dry-run.jsonl")));
        assert!(Args::try_parse_from(["migrate", "--dry-run", "--verify"]).is_err());
        let ownerless = Args::try_parse_from(["migrate", "--legacy-canvases", "t"]).unwrap();
        assert!(ownerless.config().unwrap_err().contains("owners"));
    }
}
