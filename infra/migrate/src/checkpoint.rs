//! Where a real run is: for every kind and scan segment, the key to resume the scan after (or
//! that the segment is done), and the counts so far. Saved after every page, atomically (a new
//! file renamed over the old), so an interruption at any moment leaves the last finished page
//! recorded; at worst one page per segment is read again, and its conditional writes skip what
//! is already there.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use shared::store::Item;

use super::{Counts, Kind, MigrateError};

const FORMAT: u32 = 1;

/// What the checkpoint was made for. A resumed run must use the same, or its second half would
/// follow other rules than its first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub segments: u32,
    /// Kind -> (legacy table, target table).
    pub tables: BTreeMap<Kind, (String, String)>,
    /// A digest of the owner rules (attribute, mapping, default).
    pub owners: String,
    /// Kind -> the creation time given to items without timestamps.
    pub fallback_times: BTreeMap<Kind, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Segment {
    pub done: bool,
    /// The scan's `LastEvaluatedKey` after the last finished page.
    pub resume_after: Option<BTreeMap<String, KeyValue>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KindProgress {
    pub segments: Vec<Segment>,
    pub counts: Counts,
}

/// A key attribute of the legacy table, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyValue {
    S(String),
    N(String),
    /// Base64.
    B(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub settings: Settings,
    pub kinds: BTreeMap<Kind, KindProgress>,
    /// How many runs worked on this migration (1 for the first).
    pub runs: u32,
}

impl Checkpoint {
    pub fn new(settings: Settings) -> Self {
        let kinds = settings
            .tables
            .keys()
            .map(|kind| {
                let segments = vec![Segment::default(); settings.segments as usize];
                (*kind, KindProgress { segments, counts: Counts::default() })
            })
            .collect();
        Self { format: FORMAT, settings, kinds, runs: 1 }
    }

    /// The checkpoint at `path` if there is one, checked against `settings`.
    pub fn load(path: &Path, settings: &Settings) -> Result<Option<Self>, MigrateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MigrateError::Checkpoint(format!("{}: {e}", path.display()))),
        };
        let mut checkpoint: Self = serde_json::from_str(&text)
            .map_err(|e| MigrateError::Checkpoint(format!("{} is not a migration checkpoint: {e}", path.display())))?;
        if checkpoint.format != FORMAT {
            return Err(MigrateError::Checkpoint(format!("{}: unknown format {}", path.display(), checkpoint.format)));
        }
        if &checkpoint.settings != settings {
            return Err(MigrateError::Checkpoint(format!(
                "{} was written by a migration with other settings (tables, segments, owner rules or fallback \
                 times): finish it with the same options, or pass another --checkpoint to start over.\n  \
                 checkpoint: {:?}\n  now:        {:?}",
                path.display(),
                checkpoint.settings,
                settings
            )));
        }
        checkpoint.runs += 1;
        Ok(Some(checkpoint))
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), MigrateError> {
        let tmp = temp_path(path);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| MigrateError::Checkpoint(format!("saving {}: {e}", path.display())))
    }

    pub fn is_complete(&self) -> bool {
        self.kinds.values().all(|k| k.segments.iter().all(|s| s.done))
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

pub fn key_to_json(key: &Item) -> Result<BTreeMap<String, KeyValue>, MigrateError> {
    key.iter()
        .map(|(name, value)| {
            let v = match value {
                AttributeValue::S(s) => KeyValue::S(s.clone()),
                AttributeValue::N(n) => KeyValue::N(n.clone()),
                AttributeValue::B(b) => KeyValue::B(STANDARD.encode(b.as_ref())),
                other => return Err(MigrateError::Checkpoint(format!("key attribute {name} is {other:?}"))),
            };
            Ok((name.clone(), v))
        })
        .collect()
}

pub fn key_from_json(key: &BTreeMap<String, KeyValue>) -> Result<Item, MigrateError> {
    key.iter()
        .map(|(name, value)| {
            let v = match value {
                KeyValue::S(s) => AttributeValue::S(s.clone()),
                KeyValue::N(n) => AttributeValue::N(n.clone()),
                KeyValue::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                    STANDARD.decode(b).map_err(|e| MigrateError::Checkpoint(format!("key {name}: {e}")))?,
                )),
            };
            Ok((name.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(segments: u32) -> Settings {
        Settings {
            segments,
            tables: BTreeMap::from([(Kind::Canvases, ("legacy".into(), "CanvasesTable".into()))]),
            owners: "abc".into(),
            fallback_times: BTreeMap::new(),
        }
    }

    #[test]
    fn saves_loads_and_refuses_other_settings() {
        let path = std::env::temp_dir().join(format!("checkpoint-{}.json", uuid::Uuid::now_v7()));
        assert!(Checkpoint::load(&path, &settings(2)).unwrap().is_none());
        let mut c = Checkpoint::new(settings(2));
        let key = Item::from([("id".to_owned(), AttributeValue::S("x".into()))]);
        c.kinds.get_mut(&Kind::Canvases).unwrap().segments[1].resume_after = Some(key_to_json(&key).unwrap());
        c.kinds.get_mut(&Kind::Canvases).unwrap().segments[0].done = true;
        c.save(&path).unwrap();
        let loaded = Checkpoint::load(&path, &settings(2)).unwrap().unwrap();
        assert_eq!(loaded.runs, 2);
        let resume = loaded.kinds[&Kind::Canvases].segments[1].resume_after.as_ref().unwrap();
        assert_eq!(key_from_json(resume).unwrap(), key);
        assert!(!loaded.is_complete());
        assert!(Checkpoint::load(&path, &settings(4)).unwrap_err().to_string().contains("other settings"));
        std::fs::remove_file(path).unwrap();
    }
}
