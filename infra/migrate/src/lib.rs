//! Moves single-tenant data (legacy tables keyed by `id` alone) into the user-partitioned tables
//! of `template.yaml`, safely enough to run against production:
//!
//! - **Owners** come from an owner-mapping file, an attribute on the item, or a default user
//!   ([`owner`]); a message always goes to its session's owner, under its session's target id.
//! - **Shapes** are the API's: each target item deserializes into the function's own record
//!   type before it is written ([`shape`]), with the attributes the indexes need (`user_id`,
//!   `updated_at` or `created_at`, `session_id` and `session_order`).
//! - **Never overwrites**: every write is a conditional put (`attribute_not_exists`); the target
//!   is looked up first, so a second run writes nothing and says so, and an item the target
//!   already holds differently is reported as a conflict and left alone.
//! - **Resumable**: a real run records, after every page, where each scan segment is
//!   ([`checkpoint`]); the next run with the same options resumes there. A finished migration's
//!   checkpoint stays, so running the command again does nothing; a new pass (another
//!   checkpoint file) re-checks every item and writes only what the target lacks.
//! - **Bounded**: the legacy table is read with a parallel segmented Scan (the only Scan in the
//!   project: this is an offline admin tool), and reads and writes each go through a token
//!   bucket over the capacity DynamoDB reports consumed ([`throttle`]).
//! - **Nothing dropped silently**: an item that cannot be migrated (no owner, too large,
//!   malformed, its session unusable) is counted and reported with the reason.
//!
//! `--dry-run` does all of it but the writes; `--verify` compares every legacy item with what
//! the target holds under its key.

pub mod checkpoint;
pub mod cli;
pub mod owner;
pub mod shape;
pub mod throttle;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    io::Write,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata,
    types::{
        AttributeValue, ConsumedCapacity, KeyType, KeysAndAttributes, ReturnConsumedCapacity, ScalarAttributeType,
        TableDescription,
    },
    Client,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use shared::{
    owned::OwnedTable,
    store::{attr, Item},
};
use time::OffsetDateTime;

use self::{
    checkpoint::{key_from_json, key_to_json, Checkpoint, Settings},
    owner::Owners,
    shape::{legacy_id, Category, Problem, Shaped, Shaper},
    throttle::Throttle,
};

/// Puts in flight at once per scan segment.
const WRITES_IN_FLIGHT: usize = 8;
/// Sessions remembered for their messages (an id and a small item each).
const SESSION_CACHE_MAX: usize = 200_000;
/// Issues kept in the summary; the report file gets all of them.
const ISSUES_KEPT: usize = 10_000;

/// The kinds of legacy data, in the order they are migrated (sessions before their messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sessions,
    Messages,
    Canvases,
    Workflows,
    Files,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Sessions, Kind::Messages, Kind::Canvases, Kind::Workflows, Kind::Files];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sessions => "sessions",
            Kind::Messages => "messages",
            Kind::Canvases => "canvases",
            Kind::Workflows => "workflows",
            Kind::Files => "files",
        }
    }

    /// The registry entry of the kind's target table, where its logical id and noun come from.
    pub fn owned_table(self) -> &'static OwnedTable {
        let logical_id = match self {
            Kind::Sessions => "SessionsTable",
            Kind::Messages => "MessagesTable",
            Kind::Canvases => "CanvasesTable",
            Kind::Workflows => "WorkflowsTable",
            Kind::Files => "FilesTable",
        };
        // Never fails: a unit test resolves every kind.
        shared::owned::by_logical_id(logical_id)
            .unwrap_or_else(|| panic!("{logical_id} is not in shared::owned::OWNED_TABLES"))
    }

    /// What one item is called. Also part of the ids derived from legacy ids (see
    /// [`shape::target_id`]), so a registry rename would re-id what earlier runs migrated.
    pub fn noun(self) -> &'static str {
        self.owned_table().kind
    }

    /// The target table's logical id in `template.yaml` (locally also its name).
    pub fn logical_table(self) -> &'static str {
        self.owned_table().logical_id
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Reads and reports; writes nothing.
    DryRun,
    Run,
    /// Compares every legacy item with the target; writes nothing.
    Verify,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// Legacy table per kind. Every kind given is migrated (unless `only` says otherwise);
    /// messages also need the legacy sessions table, to find their session's owner.
    pub legacy: BTreeMap<Kind, String>,
    /// Target table per kind.
    pub target: BTreeMap<Kind, String>,
    /// Migrate only these kinds.
    pub only: Option<Vec<Kind>>,
    pub owners: Owners,
    /// The creation time of items that carry no timestamp; by default the legacy table's
    /// creation time (so every run derives the same).
    pub missing_timestamp: Option<OffsetDateTime>,
    /// Parallel scan segments per legacy table.
    pub segments: u32,
    /// Items per Scan page (and per checkpoint).
    pub page_size: u32,
    /// Capacity units per second; `None`: unbounded.
    pub max_read_units: Option<f64>,
    pub max_write_units: Option<f64>,
    /// Real runs only: where progress is recorded and resumed from.
    pub checkpoint: Option<PathBuf>,
    /// Every issue as a JSON line (appended when resuming).
    pub report: Option<PathBuf>,
    /// Stop (as an interruption would) once this many items were read in this run.
    pub stop_after: Option<u64>,
    pub progress: bool,
}

impl Config {
    pub fn new(mode: Mode, legacy: BTreeMap<Kind, String>, target: BTreeMap<Kind, String>, owners: Owners) -> Self {
        Self {
            mode,
            legacy,
            target,
            only: None,
            owners,
            missing_timestamp: None,
            segments: 4,
            page_size: 100,
            max_read_units: Some(100.0),
            max_write_units: Some(100.0),
            checkpoint: None,
            report: None,
            stop_after: None,
            progress: false,
        }
    }

    /// The kinds this run migrates, in order.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.legacy.contains_key(k) && self.only.as_ref().is_none_or(|only| only.contains(k)))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Checkpoint(String),
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    #[error("{0}")]
    Io(String),
}

fn dynamo<E: ProvideErrorMetadata + fmt::Debug, R: fmt::Debug>(
    what: &str,
) -> impl Fn(aws_sdk_dynamodb::error::SdkError<E, R>) -> MigrateError + '_ {
    move |e| {
        let detail = match e.as_service_error() {
            Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or_default()),
            None => format!("{e:?}"),
        };
        MigrateError::Dynamo(format!("{what}: {detail}"))
    }
}

/// Per kind: what happened to the legacy items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Legacy items read.
    pub read: u64,
    /// Written (a dry run: would be written).
    pub written: u64,
    /// Already in the target exactly as the migration writes it (verify: matching).
    pub present: u64,
    /// The target holds a different item under the key: left untouched (verify: differs).
    pub conflicts: u64,
    /// Verify: not in the target.
    pub missing: u64,
    /// Cannot be migrated (see the issues).
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.written += other.written;
        self.present += other.present;
        self.conflicts += other.conflicts;
        self.missing += other.missing;
        self.failed += other.failed;
    }
}

/// An item not (or not correctly) migrated, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Issue {
    pub kind: Kind,
    pub legacy_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    pub category: Category,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub mode: Mode,
    /// Totals of the whole migration (including earlier, interrupted runs it resumed).
    pub counts: BTreeMap<Kind, Counts>,
    /// Issues found by this run (the report file has all of them).
    pub issues: Vec<Issue>,
    pub issues_dropped: u64,
    /// Legacy attributes not carried over: (kind, attribute) -> items.
    pub left_behind: BTreeMap<(Kind, String), u64>,
    /// Items read (and written; a dry run: would write) by this run, and how long it took.
    pub read_this_run: u64,
    pub written_this_run: u64,
    pub elapsed: Duration,
    pub read_units: f64,
    pub write_units: f64,
    pub max_read_units: Option<f64>,
    pub max_write_units: Option<f64>,
    pub segments: u32,
    /// Which run of this migration this was (1 unless it resumed a checkpoint).
    pub run_number: u32,
    /// False when the run stopped before the end (interrupted, `stop_after`).
    pub complete: bool,
    /// The checkpoint recorded a finished migration: this run did nothing.
    pub already_complete: bool,
    pub checkpoint: Option<PathBuf>,
    pub report: Option<PathBuf>,
}

impl Summary {
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for c in self.counts.values() {
            total.add(c);
        }
        total
    }

    /// Items read per second by this run.
    pub fn items_per_second(&self) -> f64 {
        self.read_this_run as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Verify: legacy items whose target is missing or different.
    pub fn differences(&self) -> u64 {
        let t = self.total();
        t.missing + t.conflicts
    }
}

struct Shared {
    client: Client,
    config: Config,
    shaper: Shaper,
    reads: Throttle,
    writes: Throttle,
    sessions: Mutex<HashMap<String, Result<Shaped, Problem>>>,
    progress: Mutex<Checkpoint>,
    report: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    issues: Mutex<(Vec<Issue>, u64)>,
    left_behind: Mutex<BTreeMap<(Kind, String), u64>>,
    read_this_run: AtomicU64,
    written_this_run: AtomicU64,
    stop: Arc<AtomicBool>,
}

pub struct Migration {
    client: Client,
    config: Config,
    stop: Arc<AtomicBool>,
}

/// What the legacy table tells before the scan.
struct LegacyTable {
    created: OffsetDateTime,
    items: u64,
}

impl Migration {
    pub fn new(client: Client, config: Config) -> Self {
        Self { client, config, stop: Arc::new(AtomicBool::new(false)) }
    }

    /// Set it to stop after the pages in flight, as an interruption would (Ctrl-C).
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub async fn run(&self) -> Result<Summary, MigrateError> {
        let started = Instant::now();
        let config = &self.config;
        let kinds = config.kinds();
        if kinds.is_empty() {
            return Err(MigrateError::Config("no legacy table to migrate: name at least one".into()));
        }
        if !(1..=1_000_000).contains(&config.segments) {
            return Err(MigrateError::Config("segments must be 1 to 1000000".into()));
        }
        if !(1..=10_000).contains(&config.page_size) {
            return Err(MigrateError::Config("page size must be 1 to 10000".into()));
        }
        // Owner look-ups of messages go to the legacy sessions table.
        let mut legacy_needed = kinds.clone();
        if kinds.contains(&Kind::Messages) {
            if !config.legacy.contains_key(&Kind::Sessions) {
                return Err(MigrateError::Config(
                    "messages need the legacy sessions table too: their owner is their session's".into(),
                ));
            }
            legacy_needed.push(Kind::Sessions);
        }
        let mut legacy = BTreeMap::new();
        for kind in &legacy_needed {
            if !legacy.contains_key(kind) {
                legacy.insert(*kind, self.describe_legacy(&config.legacy[kind]).await?);
            }
        }
        for kind in &kinds {
            let table = config.target.get(kind).ok_or_else(|| {
                MigrateError::Config(format!("no target table for {kind} (the stack's {})", kind.logical_table()))
            })?;
            self.check_target(table).await?;
        }

        let fallback: BTreeMap<Kind, OffsetDateTime> =
            legacy.iter().map(|(k, t)| (*k, config.missing_timestamp.unwrap_or(t.created))).collect();
        let settings = Settings {
            segments: config.segments,
            tables: kinds.iter().map(|k| (*k, (config.legacy[k].clone(), config.target[k].clone()))).collect(),
            owners: config.owners.fingerprint(),
            fallback_times: fallback.iter().map(|(k, t)| (*k, shape::format_time(*t))).collect(),
        };
        let resumed = match (&config.mode, &config.checkpoint) {
            (Mode::Run, Some(path)) => Checkpoint::load(path, &settings)?,
            _ => None,
        };
        let progress = resumed.clone().unwrap_or_else(|| Checkpoint::new(settings));
        let report = match &config.report {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(resumed.is_some())
                    .write(true)
                    .truncate(resumed.is_none())
                    .open(path)
                    .map_err(|e| MigrateError::Io(format!("{}: {e}", path.display())))?;
                Some(std::io::BufWriter::new(file))
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            config: config.clone(),
            shaper: Shaper { owners: config.owners.clone(), fallback },
            reads: Throttle::new(config.max_read_units),
            writes: Throttle::new(config.max_write_units),
            sessions: Mutex::new(HashMap::new()),
            progress: Mutex::new(progress),
            report: Mutex::new(report),
            issues: Mutex::new((Vec::new(), 0)),
            left_behind: Mutex::new(BTreeMap::new()),
            read_this_run: AtomicU64::new(0),
            written_this_run: AtomicU64::new(0),
            stop: self.stop.clone(),
        });

        let mut failure = None;
        for kind in &kinds {
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = Shared::migrate_kind(&shared, *kind, legacy[kind].items).await {
                failure = Some(e);
                break;
            }
        }
        if let Some(report) = shared.report.lock().expect("report lock").as_mut() {
            report.flush().map_err(|e| MigrateError::Io(format!("report: {e}")))?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let progress = shared.progress.lock().expect("progress lock").clone();
        let complete = progress.is_complete();
        let (issues, issues_dropped) = std::mem::take(&mut *shared.issues.lock().expect("issues lock"));
        let left_behind = std::mem::take(&mut *shared.left_behind.lock().expect("lock"));
        Ok(Summary {
            mode: config.mode,
            counts: progress.kinds.iter().map(|(k, p)| (*k, p.counts)).collect(),
            issues,
            issues_dropped,
            left_behind,
            read_this_run: shared.read_this_run.load(Ordering::SeqCst),
            written_this_run: shared.written_this_run.load(Ordering::SeqCst),
            elapsed: started.elapsed(),
            read_units: shared.reads.consumed(),
            write_units: shared.writes.consumed(),
            max_read_units: shared.reads.rate(),
            max_write_units: shared.writes.rate(),
            segments: config.segments,
            run_number: progress.runs,
            complete,
            already_complete: resumed.as_ref().is_some_and(Checkpoint::is_complete),
            checkpoint: config.checkpoint.clone().filter(|_| config.mode == Mode::Run),
            report: config.report.clone(),
        })
    }

    /// The legacy table must be keyed by a string `id` alone.
    async fn describe_legacy(&self, table: &str) -> Result<LegacyTable, MigrateError> {
        let (t, keys) = self.describe("legacy", table).await?;
        let id_is_string = t
            .attribute_definitions()
            .iter()
            .any(|d| d.attribute_name() == attr::ID && d.attribute_type() == &ScalarAttributeType::S);
        if keys != [(attr::ID.to_owned(), KeyType::Hash)] || !id_is_string {
            return Err(MigrateError::Config(format!(
                "{table} is not a legacy table: its key must be a string `id` alone, it is {keys:?}"
            )));
        }
        let created = t
            .creation_date_time()
            .and_then(|d| OffsetDateTime::from_unix_timestamp_nanos(d.as_nanos()).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        Ok(LegacyTable { created, items: t.item_count().unwrap_or(0).max(0) as u64 })
    }

    /// The target must be one of the template's user-partitioned tables.
    async fn check_target(&self, table: &str) -> Result<(), MigrateError> {
        let (_, keys) = self.describe("target", table).await?;
        if keys != [(attr::USER_ID.to_owned(), KeyType::Hash), (attr::ID.to_owned(), KeyType::Range)] {
            return Err(MigrateError::Config(format!(
                "{table} is not a user-partitioned table (user_id HASH, id RANGE): its key is {keys:?}"
            )));
        }
        Ok(())
    }

    /// The table's description and its key schema; `role` names the table in errors.
    async fn describe(
        &self,
        role: &str,
        table: &str,
    ) -> Result<(TableDescription, Vec<(String, KeyType)>), MigrateError> {
        let out = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(dynamo(&format!("{role} table {table}")))?;
        let t = out.table.ok_or_else(|| MigrateError::Config(format!("{role} table {table}: no description")))?;
        let keys = t.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().clone())).collect();
        Ok((t, keys))
    }
}

/// Read units of a read that DynamoDB did not report: 4 KB per unit, half for eventual reads.
fn read_units(bytes: usize, keys: usize, consistent: bool) -> f64 {
    let units = (bytes as f64 / 4096.0).ceil().max(keys as f64);
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// Write units of a put: 1 KB per unit.
fn write_units(item: &Item) -> f64 {
    (shape::item_size(item) as f64 / 1024.0).ceil().max(1.0)
}

fn capacity(consumed: &[ConsumedCapacity], table: &str) -> Option<f64> {
    let units: Vec<f64> =
        consumed.iter().filter(|c| c.table_name() == Some(table)).filter_map(|c| c.capacity_units()).collect();
    (!units.is_empty()).then(|| units.iter().sum())
}

/// Names of the attributes that differ between two items.
fn differing(expected: &Item, found: &Item) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    names.into_iter().filter(|n| expected.get(*n) != found.get(*n)).cloned().collect()
}

struct PageResult {
    counts: Counts,
    issues: Vec<Issue>,
}

impl Shared {
    async fn migrate_kind(shared: &Arc<Self>, kind: Kind, estimate: u64) -> Result<(), MigrateError> {
        let (done_before, read_before) = {
            let progress = shared.progress.lock().expect("progress lock");
            let k = &progress.kinds[&kind];
            (k.segments.iter().all(|s| s.done), k.counts.read)
        };
        if done_before {
            return Ok(());
        }
        let bar = match shared.config.progress {
            true => ProgressBar::with_draw_target(Some(estimate.max(read_before)), ProgressDrawTarget::stderr()),
            false => ProgressBar::hidden(),
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:28}] {pos:>7}/{len:7} {rate:>9} {elapsed:>4} {msg}")
                .expect("progress template")
                .with_key("rate", move |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                    // Items of this run only (a resumed bar starts at the checkpoint's count).
                    let items = state.pos().saturating_sub(read_before) as f64;
                    let _ = write!(w, "{:.0}/s", items / state.elapsed().as_secs_f64().max(0.001));
                })
                .progress_chars("=> "),
        );
        bar.set_prefix(kind.name());
        bar.set_position(read_before);
        let mut workers = tokio::task::JoinSet::new();
        for segment in 0..shared.config.segments {
            let (shared, bar) = (shared.clone(), bar.clone());
            workers.spawn(async move { shared.scan_segment(kind, segment, &bar).await });
        }
        let mut result = Ok(());
        while let Some(joined) = workers.join_next().await {
            let outcome = joined.map_err(|e| MigrateError::Io(format!("a scan worker failed: {e}")))?;
            if let (Err(e), Ok(())) = (outcome, &result) {
                // One segment failing stops the others after their page: the checkpoint
                // stays consistent, and the run reports the error.
                shared.stop.store(true, Ordering::SeqCst);
                result = Err(e);
            }
        }
        bar.finish();
        result
    }

    fn set_message(&self, kind: Kind, bar: &ProgressBar) {
        let counts = self.progress.lock().expect("progress lock").kinds[&kind].counts;
        let message = match self.config.mode {
            Mode::Verify => format!(
                "match {} · missing {} · differ {} · not migratable {}",
                counts.present, counts.missing, counts.conflicts, counts.failed
            ),
            mode => format!(
                "{} {} · present {} · conflicts {} · failed {}",
                if mode == Mode::DryRun { "would write" } else { "written" },
                counts.written,
                counts.present,
                counts.conflicts,
                counts.failed
            ),
        };
        bar.set_message(message);
    }

    async fn scan_segment(&self, kind: Kind, segment: u32, bar: &ProgressBar) -> Result<(), MigrateError> {
        let table = &self.config.legacy[&kind];
        let mut start = {
            let progress = self.progress.lock().expect("progress lock");
            let s = &progress.kinds[&kind].segments[segment as usize];
            if s.done {
                return Ok(());
            }
            s.resume_after.as_ref().map(key_from_json).transpose()?
        };
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let estimate = read_units(0, 1, false);
            self.reads.take(estimate).await;
            let out = self
                .client
                .scan()
                .table_name(table)
                .segment(segment as i32)
                .total_segments(self.config.segments as i32)
                .limit(self.config.page_size as i32)
                .set_exclusive_start_key(start.clone())
                .consistent_read(false)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(dynamo(&format!("scanning {table}")))?;
            let items = out.items.unwrap_or_default();
            let bytes: usize = items.iter().map(shape::item_size).sum();
            self.reads.settle(
                estimate,
                out.consumed_capacity.and_then(|c| c.capacity_units).unwrap_or_else(|| read_units(bytes, 1, false)),
            );
            let n = items.len() as u64;
            let page = self.migrate_page(kind, items).await?;
            let next = out.last_evaluated_key.filter(|k| !k.is_empty());
            self.record(kind, segment, &next, page)?;
            bar.inc(n);
            self.set_message(kind, bar);
            let read = self.read_this_run.fetch_add(n, Ordering::SeqCst) + n;
            if self.config.stop_after.is_some_and(|limit| read >= limit) {
                self.stop.store(true, Ordering::SeqCst);
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }

    /// Adds a finished page to the totals and moves its segment on, in one step, then saves the
    /// checkpoint; then reports the page's issues.
    fn record(&self, kind: Kind, segment: u32, next: &Option<Item>, page: PageResult) -> Result<(), MigrateError> {
        {
            let mut progress = self.progress.lock().expect("progress lock");
            let k = progress.kinds.get_mut(&kind).expect("kind in checkpoint");
            k.counts.add(&page.counts);
            self.written_this_run.fetch_add(page.counts.written, Ordering::SeqCst);
            let s = &mut k.segments[segment as usize];
            s.resume_after = next.as_ref().map(key_to_json).transpose()?;
            s.done = next.is_none();
            if let (Mode::Run, Some(path)) = (self.config.mode, &self.config.checkpoint) {
                progress.save(path)?;
            }
        }
        if page.issues.is_empty() {
            return Ok(());
        }
        if let Some(report) = self.report.lock().expect("report lock").as_mut() {
            for issue in &page.issues {
                let line = serde_json::to_string(issue).map_err(|e| MigrateError::Io(e.to_string()))?;
                writeln!(report, "{line}").map_err(|e| MigrateError::Io(format!("report: {e}")))?;
            }
            report.flush().map_err(|e| MigrateError::Io(format!("report: {e}")))?;
        }
        let mut issues = self.issues.lock().expect("issues lock");
        for issue in page.issues {
            if issues.0.len() < ISSUES_KEPT {
                issues.0.push(issue);
            } else {
                issues.1 += 1;
            }
        }
        Ok(())
    }

    async fn migrate_page(&self, kind: Kind, items: Vec<Item>) -> Result<PageResult, MigrateError> {
        let mut counts = Counts { read: items.len() as u64, ..Counts::default() };
        let mut issues = Vec::new();
        {
            let mut left = self.left_behind.lock().expect("lock");
            for item in &items {
                for name in self.shaper.left_behind(kind, item) {
                    *left.entry((kind, name.to_owned())).or_default() += 1;
                }
            }
        }
        let sessions = match kind {
            Kind::Messages => self.sessions_of(&items).await?,
            _ => HashMap::new(),
        };
        let mut shaped = Vec::with_capacity(items.len());
        for item in &items {
            let legacy = legacy_id(item).map(str::to_owned).unwrap_or_else(|_| format!("{:?}", item.get(attr::ID)));
            let session = Shaper::message_session(item).ok().and_then(|s| sessions.get(s));
            match self.shaper.shape(kind, item, session) {
                Ok(target) => shaped.push((legacy, target)),
                Err(problem) => {
                    counts.failed += 1;
                    issues.push(Issue {
                        kind,
                        legacy_id: legacy,
                        owner: None,
                        target_id: None,
                        category: problem.category,
                        detail: problem.detail,
                    });
                }
            }
        }

        let target = &self.config.target[&kind];
        let keys: Vec<Item> = shaped.iter().map(|(_, s)| s.key()).collect();
        let existing: HashMap<(String, String), Item> = self
            .batch_get(target, keys, true)
            .await?
            .into_iter()
            .filter_map(|item| {
                let text = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(s)) => Some(s.clone()),
                    _ => None,
                };
                Some(((text(attr::USER_ID)?, text(attr::ID)?), item))
            })
            .collect();
        let mut to_write = Vec::new();
        for (legacy, s) in shaped {
            let issue = |category: Category, detail: String| Issue {
                kind,
                legacy_id: legacy.clone(),
                owner: Some(s.owner.clone()),
                target_id: Some(s.id.clone()),
                category,
                detail,
            };
            match existing.get(&(s.owner.clone(), s.id.clone())) {
                Some(found) if *found == s.item => counts.present += 1,
                Some(found) => {
                    counts.conflicts += 1;
                    let version = match found.get(attr::VERSION) {
                        Some(AttributeValue::N(v)) if v != "1" => format!(" (target at version {v}: changed since)"),
                        _ => String::new(),
                    };
                    let detail = format!("attributes differ: {}{version}", differing(&s.item, found).join(", "));
                    let category = match self.config.mode {
                        Mode::Verify => Category::Differs,
                        _ => Category::Conflict,
                    };
                    issues.push(issue(category, detail));
                }
                None => match self.config.mode {
                    Mode::DryRun => counts.written += 1,
                    Mode::Verify => {
                        counts.missing += 1;
                        issues.push(issue(Category::Missing, "not in the target table".into()));
                    }
                    Mode::Run => to_write.push((legacy, s)),
                },
            }
        }

        for chunk in to_write.chunks(WRITES_IN_FLIGHT) {
            let mut puts = tokio::task::JoinSet::new();
            for (i, (_, s)) in chunk.iter().enumerate() {
                self.writes.take(write_units(&s.item)).await;
                let put = self
                    .client
                    .put_item()
                    .table_name(target)
                    .set_item(Some(s.item.clone()))
                    .condition_expression("attribute_not_exists(#id)")
                    .expression_attribute_names("#id", attr::ID)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total);
                puts.spawn(async move { (i, put.send().await) });
            }
            while let Some(joined) = puts.join_next().await {
                let (i, result) = joined.map_err(|e| MigrateError::Io(format!("a write task failed: {e}")))?;
                let (legacy, s) = &chunk[i];
                let estimate = write_units(&s.item);
                match result {
                    Ok(out) => {
                        let consumed = out.consumed_capacity.and_then(|c| c.capacity_units).unwrap_or(estimate);
                        self.writes.settle(estimate, consumed);
                        counts.written += 1;
                    }
                    Err(e) => {
                        // A failed condition costs the write too.
                        self.writes.settle(estimate, estimate);
                        let service = e.as_service_error();
                        if service.is_some_and(|s| s.is_conditional_check_failed_exception()) {
                            // Written in the meantime (another run, or two legacy ids with one target).
                            counts.present += 1;
                        } else if service.and_then(|s| s.code()) == Some("ValidationException") {
                            counts.failed += 1;
                            issues.push(Issue {
                                kind,
                                legacy_id: legacy.clone(),
                                owner: Some(s.owner.clone()),
                                target_id: Some(s.id.clone()),
                                category: Category::WriteFailed,
                                detail: service.and_then(|s| s.message()).unwrap_or("refused").to_owned(),
                            });
                        } else {
                            // Throttled past the retries, or unreachable: stop here; the page is
                            // not checkpointed, so a resumed run does it again.
                            return Err(dynamo::<_, _>(&format!("writing to {target}"))(e));
                        }
                    }
                }
            }
        }
        Ok(PageResult { counts, issues })
    }

    /// The shaped sessions (or why they cannot be migrated) of a page of messages.
    async fn sessions_of(&self, messages: &[Item]) -> Result<HashMap<String, Result<Shaped, Problem>>, MigrateError> {
        let wanted: HashSet<String> =
            messages.iter().filter_map(|m| Shaper::message_session(m).ok()).map(str::to_owned).collect();
        let mut found: HashMap<String, Result<Shaped, Problem>> = HashMap::new();
        let missing: Vec<String> = {
            let cache = self.sessions.lock().expect("sessions lock");
            wanted
                .into_iter()
                .filter(|id| match cache.get(id) {
                    Some(known) => {
                        found.insert(id.clone(), known.clone());
                        false
                    }
                    None => true,
                })
                .collect()
        };
        if !missing.is_empty() {
            let table = &self.config.legacy[&Kind::Sessions];
            let keys =
                missing.iter().map(|id| Item::from([(attr::ID.to_owned(), AttributeValue::S(id.clone()))])).collect();
            let mut legacy: HashMap<String, Item> = HashMap::new();
            for item in self.batch_get(table, keys, false).await? {
                if let Ok(id) = legacy_id(&item) {
                    legacy.insert(id.to_owned(), item);
                }
            }
            let mut cache = self.sessions.lock().expect("sessions lock");
            if cache.len() + missing.len() > SESSION_CACHE_MAX {
                cache.clear();
            }
            for id in missing {
                let shaped = match legacy.get(&id) {
                    Some(item) => self.shaper.shape(Kind::Sessions, item, None),
                    None => Err(Problem::new(Category::SessionUnavailable, "not in the legacy sessions table")),
                };
                cache.insert(id.clone(), shaped.clone());
                found.insert(id, shaped);
            }
        }
        Ok(found)
    }

    /// BatchGetItem of `keys` (duplicates removed), 100 per request, retrying unprocessed keys.
    async fn batch_get(&self, table: &str, keys: Vec<Item>, consistent: bool) -> Result<Vec<Item>, MigrateError> {
        let mut unique: Vec<Item> = Vec::with_capacity(keys.len());
        let mut seen = HashSet::new();
        for key in keys {
            let mut id: Vec<(String, String)> = key.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect();
            id.sort();
            if seen.insert(id) {
                unique.push(key);
            }
        }
        let mut found = Vec::new();
        for chunk in unique.chunks(100) {
            let mut pending = chunk.to_vec();
            for attempt in 0u32.. {
                let estimate = read_units(0, pending.len(), consistent);
                self.reads.take(estimate).await;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| MigrateError::Dynamo(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(dynamo(&format!("reading {table}")))?;
                let items = out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default();
                let bytes = items.iter().map(shape::item_size).sum();
                let units = out
                    .consumed_capacity
                    .as_deref()
                    .and_then(|c| capacity(c, table))
                    .unwrap_or_else(|| read_units(bytes, pending.len(), consistent));
                self.reads.settle(estimate, units);
                found.extend(items);
                pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys).unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt >= 10 {
                    return Err(MigrateError::Dynamo(format!("{} keys of {table} left unprocessed", pending.len())));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
        }
        Ok(found)
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "unbounded".to_owned(), |r| format!("≤ {r}/s"))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = match self.mode {
            Mode::DryRun => "migrate --dry-run: nothing was written",
            Mode::Run => "migrate",
            Mode::Verify => "migrate --verify: nothing was written",
        };
        let resumed = match self.run_number {
            1 => String::new(),
            n => format!(", run {n} of this migration (resumed from its checkpoint; counts are totals)"),
        };
        writeln!(f, "{title}{resumed}")?;
        if self.already_complete {
            writeln!(f, "  nothing to do: the checkpoint records this migration as complete (its totals below)")?;
        }
        let header = match self.mode {
            Mode::Run => ["read", "written", "present", "conflicts", "failed"],
            Mode::DryRun => ["read", "would write", "present", "conflicts", "failed"],
            Mode::Verify => ["read", "match", "missing", "differ", "not migratable"],
        };
        writeln!(
            f,
            "  {:<10}{:>9}{:>13}{:>10}{:>11}{:>16}",
            "", header[0], header[1], header[2], header[3], header[4]
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, c: &Counts| {
            let cols = match self.mode {
                Mode::Verify => [c.read, c.present, c.missing, c.conflicts, c.failed],
                _ => [c.read, c.written, c.present, c.conflicts, c.failed],
            };
            writeln!(f, "  {:<10}{:>9}{:>13}{:>10}{:>11}{:>16}", name, cols[0], cols[1], cols[2], cols[3], cols[4])
        };
        for (kind, counts) in &self.counts {
            row(f, kind.name(), counts)?;
        }
        let total = self.total();
        row(f, "total", &total)?;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let written = match self.mode {
            Mode::Run => format!(", {} written ({:.0}/s)", self.written_this_run, self.written_this_run as f64 / secs),
            Mode::DryRun => format!(", {} would be written", self.written_this_run),
            Mode::Verify => String::new(),
        };
        writeln!(
            f,
            "  this run: {} items read in {:.2} s ({:.0} items/s){written}",
            self.read_this_run,
            self.elapsed.as_secs_f64(),
            self.items_per_second(),
        )?;
        let writes = match self.mode {
            Mode::Run => format!(", {:.1} write units ({})", self.write_units, rate_text(self.max_write_units)),
            _ => String::new(),
        };
        writeln!(
            f,
            "  {} scan segments; consumed {:.1} read units ({}){writes}",
            self.segments,
            self.read_units,
            rate_text(self.max_read_units),
        )?;

        let migratable = total.written + total.present + total.conflicts + total.missing;
        match self.mode {
            Mode::Run if total.written == 0 && self.complete && !self.already_complete => writeln!(
                f,
                "  nothing written: all {} migratable items are already in the target",
                total.present + total.conflicts
            )?,
            Mode::DryRun if total.written == 0 => {
                writeln!(f, "  a run would write nothing: all {migratable} migratable items are already in the target")?
            }
            Mode::Verify => writeln!(
                f,
                "  {} differences ({} missing, {} differ) among {migratable} migratable items",
                self.differences(),
                total.missing,
                total.conflicts
            )?,
            _ => {}
        }

        let mut by_category: BTreeMap<Category, u64> = BTreeMap::new();
        for issue in &self.issues {
            *by_category.entry(issue.category).or_default() += 1;
        }
        if !self.issues.is_empty() {
            let groups: Vec<String> = by_category
                .iter()
                .map(|(c, n)| format!("{} {n}", c.describe().split(" (").next().unwrap_or("")))
                .collect();
            writeln!(
                f,
                "  issues found by this run: {} ({})",
                self.issues.len() as u64 + self.issues_dropped,
                groups.join(", ")
            )?;
            const SHOWN: usize = 20;
            for issue in self.issues.iter().take(SHOWN) {
                let owner = issue.owner.as_deref().map(|o| format!(" (owner {o})")).unwrap_or_default();
                writeln!(
                    f,
                    "    {} {}{owner}: {}: {}",
                    issue.kind.noun(),
                    issue.legacy_id,
                    issue.category.describe(),
                    issue.detail
                )?;
            }
            let more = self.issues.len().saturating_sub(SHOWN) as u64 + self.issues_dropped;
            if more > 0 {
                writeln!(f, "    ... and {more} more")?;
            }
            if let Some(report) = &self.report {
                writeln!(f, "  every issue, one JSON line each: {}", report.display())?;
            }
        }
        if !self.left_behind.is_empty() {
            let left: Vec<String> =
                self.left_behind.iter().map(|((kind, name), n)| format!("{kind}.{name} ×{n}")).collect();
            writeln!(f, "  legacy attributes not carried over (items read by this run): {}", left.join(", "))?;
        }
        match (self.complete, &self.checkpoint) {
            (true, Some(path)) => writeln!(
                f,
                "  complete: {} records it, so this command now does nothing (another --checkpoint starts a new pass)",
                path.display()
            )?,
            (true, None) => writeln!(f, "  complete")?,
            (false, Some(path)) => {
                writeln!(f, "  STOPPED before the end: run the same command again to resume from {}", path.display())?
            }
            (false, None) => writeln!(f, "  STOPPED before the end")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shared::owned::{Retention, OWNED_TABLES};

    use super::*;

    #[test]
    fn every_content_table_of_the_registry_has_a_kind() {
        for table in OWNED_TABLES.iter().filter(|t| t.retention == Retention::Content) {
            assert!(
                Kind::ALL.iter().any(|k| k.logical_table() == table.logical_id),
                "{} holds user content (shared::owned::OWNED_TABLES) but the migration tool has no Kind \
                 for it: add one, with how a legacy {} is shaped",
                table.logical_id,
                table.kind
            );
        }
    }

    #[test]
    fn every_kind_targets_its_own_content_table() {
        assert_eq!(Kind::ALL.len(), <Kind as clap::ValueEnum>::value_variants().len(), "Kind::ALL lists every kind");
        let mut targets = HashSet::new();
        for kind in Kind::ALL {
            let table = kind.owned_table();
            assert_eq!(table.retention, Retention::Content, "{kind} migrates into bookkeeping");
            assert!(targets.insert(table.logical_id), "two kinds migrate into {}", table.logical_id);
        }
    }

    #[test]
    fn derived_ids_do_not_change_between_releases() {
        // The noun is hashed into ids derived from non-UUID legacy ids: renaming a registry
        // entry's kind would make the next run write every such item again under a new id.
        // The values are SHA-256("<noun>:legacy-17") as a version 8 UUID, computed outside Rust.
        let pinned = [
            (Kind::Sessions, "4fc554f9-a2ce-8632-8ccc-ea80277ffde7"),
            (Kind::Messages, "676fc259-6e17-8f47-ab7c-d2d6a156849f"),
            (Kind::Canvases, "cf6d0dd0-bc25-8db7-8e8a-db88c740dd71"),
            (Kind::Workflows, "f20c6e4c-f76f-8cdf-91a0-d80ca6a5a1b2"),
            (Kind::Files, "23b7aec8-0e7f-82b2-b274-a857cb1373f8"),
        ];
        for (kind, id) in pinned {
            assert_eq!(shape::target_id(kind, "legacy-17"), id, "{kind}");
        }
    }
}
