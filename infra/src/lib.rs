//! The local stack: DynamoDB Local, the template's tables, and a local API gateway that serves
//! every function's routes through the same handler code Lambda runs.

pub mod dynamodb_local;
pub mod gateway;
pub mod local;
pub mod migrate;
pub mod s3_local;
pub mod streams;
pub mod tables;
pub mod template;
pub mod websocket;

use std::path::PathBuf;

/// The project root: the nearest folder upwards holding `template.yaml`, from the current
/// directory or, failing that, from this crate's source folder.
pub fn workspace_root() -> PathBuf {
    let has_template = |p: &PathBuf| p.join("template.yaml").is_file() && p.join("Cargo.toml").is_file();
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd.ancestors().map(PathBuf::from).find(has_template) {
            return found;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).expect("infra/ has a parent")
}
