//! A local S3 server that checks signatures as S3 does, so tests can prove what a presigned URL
//! allows: the `s3s` project's filesystem backend (`s3s-fs`), served in-process on a free
//! localhost port from a fresh temporary folder. Every request must carry a valid SigV4
//! signature (an `Authorization` header, or a presigned query within its `X-Amz-Expires`) made
//! with the local key pair [`shared::objects::local_s3_client`] signs with; unsigned requests
//! are refused. (moto's S3, used before, accepted any signature or none.)

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use shared::runtime::{LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY};
use tokio::{net::TcpListener, task::JoinHandle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct S3Local {
    pub endpoint: String,
    /// Where the buckets live; removed when the server stops.
    root: PathBuf,
    server: JoinHandle<()>,
}

/// The local name of a template bucket: S3 names are lower case.
pub fn bucket_name(logical_id: &str) -> String {
    logical_id.to_ascii_lowercase()
}

impl S3Local {
    pub async fn start() -> Result<Self, BoxError> {
        // Port 0: the kernel picks a free port and it stays ours (no race with other servers).
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let root = std::env::temp_dir().join(format!("local-s3-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("s3s-fs on {}: {e:?}", root.display()))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY));
        let service = builder.build();
        let server = tokio::spawn(async move {
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        // E.g. out of file descriptors: wait rather than spin.
                        tracing::warn!("local S3: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = service.clone();
                tokio::spawn(async move {
                    // HTTP/1.1 only: what the SDK and reqwest speak over plain http.
                    let connection =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service);
                    let _ = connection.await;
                });
            }
        });
        Ok(Self { endpoint: format!("http://127.0.0.1:{port}"), root, server })
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

    pub async fn stop(self) {
        drop(self);
    }
}

impl Drop for S3Local {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
