//! A real S3-compatible server on localhost (moto's server, from PyPI, installed into .venv by
//! `infra/bootstrap.sh`), so presigned URLs are exercised with real HTTP, never a mock.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::dynamodb_local::{die_with_parent, free_port};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct S3Local {
    child: Child,
    pub endpoint: String,
}

/// The local name of a template bucket: S3 names are lower case.
pub fn bucket_name(logical_id: &str) -> String {
    logical_id.to_ascii_lowercase()
}

impl S3Local {
    pub async fn start() -> Result<Self, BoxError> {
        let root = crate::workspace_root();
        let server = root.join(".venv/bin/moto_server");
        if !server.exists() {
            let status = std::process::Command::new("bash")
                .arg("-c")
                .arg("source infra/bootstrap.sh && ensure_venv")
                .current_dir(&root)
                .status()?;
            if !status.success() {
                return Err("installing the Python tools (moto) failed".into());
            }
        }
        let port = free_port()?;
        let mut command = Command::new(&server);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let local = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let client = shared::objects::local_s3_client(&local.endpoint);
        let started = Instant::now();
        while client.list_buckets().send().await.is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the local S3 server did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(local)
    }

    /// Creates the template's buckets (idempotent).
    pub async fn ensure_buckets(endpoint: &str, logical_ids: &[String]) -> Result<(), BoxError> {
        let client = shared::objects::local_s3_client(endpoint);
        for id in logical_ids {
            let name = bucket_name(id);
            if client.head_bucket().bucket(&name).send().await.is_err() {
                client
                    .create_bucket()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(|e| format!("create bucket {name}: {e:?}"))?;
            }
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
