//! Who owns a legacy item: the owner-mapping file's entry for its id, else the owner attribute
//! the operator named, else the default owner. Nothing is guessed beyond that: an item none of
//! them gives an owner is reported as `no owner`.

use std::{collections::HashMap, path::Path};

use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::Item;

use super::shape::{Category, Problem};

/// The longest user id the API accepts (the verifier's limit on a token's `sub`).
const USER_ID_MAX_BYTES: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct Owners {
    /// The legacy attribute holding the owner's user id (`owner`, `created_by`, ...).
    pub attribute: Option<String>,
    /// Legacy id -> user id. For messages it is not consulted: a message has its session's owner.
    pub mapping: HashMap<String, String>,
    pub default: Option<String>,
}

/// A user id as the API's verifier accepts a token `sub`: non-empty, at most 256 bytes, no
/// control characters. Data under any other id could never be read by anyone.
pub fn check_user_id(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > USER_ID_MAX_BYTES || user.chars().any(char::is_control) {
        return Err(format!("{user:?} is not a usable user id (1-{USER_ID_MAX_BYTES} bytes, no control characters)"));
    }
    Ok(())
}

impl Owners {
    pub fn resolve(&self, legacy_id: &str, item: &Item) -> Result<String, Problem> {
        if let Some(user) = self.mapping.get(legacy_id) {
            return Ok(user.clone());
        }
        if let Some(name) = &self.attribute {
            match item.get(name) {
                Some(AttributeValue::S(user)) | Some(AttributeValue::N(user)) => {
                    check_user_id(user).map_err(|e| Problem::new(Category::NoOwner, format!("{name}: {e}")))?;
                    return Ok(user.clone());
                }
                Some(AttributeValue::Null(_)) | None => {}
                Some(_) => return Err(Problem::new(Category::NoOwner, format!("{name} is not a string"))),
            }
        }
        self.default.clone().ok_or_else(|| {
            let mut tried = vec!["no entry in the owner mapping".to_owned()];
            if let Some(name) = &self.attribute {
                tried.push(format!("no {name} attribute"));
            }
            tried.push("no default owner".to_owned());
            Problem::new(Category::NoOwner, tried.join(", "))
        })
    }

    /// Identifies these settings in a checkpoint: resuming with other owners would split one
    /// migration between two sets of rules.
    pub fn fingerprint(&self) -> String {
        let mut entries: Vec<(&String, &String)> = self.mapping.iter().collect();
        entries.sort();
        let mut text = format!("attribute={:?};default={:?};", self.attribute, self.default);
        for (id, user) in entries {
            text.push_str(&format!("{id:?}={user:?};"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        digest.as_ref().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }
}

/// Reads an owner-mapping file: either a JSON object `{"<legacy id>": "<user id>", ...}`, or
/// lines `<legacy id>,<user id>` (a tab also separates; blank lines and `#` comments are skipped).
pub fn load_mapping(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<(String, String)> = if text.trim_start().starts_with('{') {
        let map: HashMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a JSON object of strings: {e}", path.display()))?;
        map.into_iter().collect()
    } else {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, user) = line
                .split_once([',', '\t'])
                .ok_or_else(|| format!("{}:{}: expected <legacy id>,<user id>", path.display(), n + 1))?;
            entries.push((id.trim().to_owned(), user.trim().to_owned()));
        }
        entries
    };
    let mut mapping = HashMap::with_capacity(entries.len());
    for (id, user) in entries {
        check_user_id(&user).map_err(|e| format!("{}: entry {id:?}: {e}", path.display()))?;
        if let Some(previous) = mapping.insert(id.clone(), user.clone()) {
            if previous != user {
                return Err(format!("{}: {id:?} is mapped to both {previous:?} and {user:?}", path.display()));
            }
        }
    }
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_then_attribute_then_default() {
        let item = |owner: Option<&str>| -> Item {
            owner.map(|o| ("created_by".to_owned(), AttributeValue::S(o.to_owned()))).into_iter().collect()
        };
        let mut owners = Owners {
            attribute: Some("created_by".into()),
            mapping: HashMap::from([("a".to_owned(), "mapped".to_owned())]),
            default: None,
        };
        assert_eq!(owners.resolve("a", &item(Some("attr"))).unwrap(), "mapped");
        assert_eq!(owners.resolve("b", &item(Some("attr"))).unwrap(), "attr");
        assert_eq!(owners.resolve("b", &item(None)).unwrap_err().category, Category::NoOwner);
        assert_eq!(owners.resolve("b", &item(Some(""))).unwrap_err().category, Category::NoOwner, "never empty");
        owners.default = Some("fallback".into());
        assert_eq!(owners.resolve("b", &item(None)).unwrap(), "fallback");
        assert_eq!(owners.resolve("b", &item(Some("bad\u{0}id"))).unwrap_err().category, Category::NoOwner);
    }

    #[test]
    fn mapping_files_as_csv_or_json() {
        let dir = std::env::temp_dir().join(format!("owners-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("owners.csv");
        std::fs::write(&csv, "# legacy id, user id\nc-1,alice\n\nc-2\tbob\n").unwrap();
        let m = load_mapping(&csv).unwrap();
        assert_eq!((m["c-1"].as_str(), m["c-2"].as_str()), ("alice", "bob"));
        let json = dir.join("owners.json");
        std::fs::write(&json, r#"{"c-1": "alice"}"#).unwrap();
        assert_eq!(load_mapping(&json).unwrap()["c-1"], "alice");
        std::fs::write(&csv, "c-1,alice\nc-1,bob\n").unwrap();
        assert!(load_mapping(&csv).unwrap_err().contains("both"));
        std::fs::write(&csv, "c-1\n").unwrap();
        assert!(load_mapping(&csv).unwrap_err().contains(":1:"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
