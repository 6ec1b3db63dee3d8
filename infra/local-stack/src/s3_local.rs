//! A local S3 server that checks signatures as S3 does, so tests can prove what a presigned URL
//! allows: the `s3s` project's filesystem backend (`s3s-fs`), served in-process on a free
//! localhost port from a fresh temporary folder. Every request must carry a valid SigV4
//! signature (an `Authorization` header, or a presigned query within its `X-Amz-Expires`) made
//! with the local key pair [`shared::objects::local_s3_client`] signs with; unsigned requests
//! are refused. (moto's S3, used before, accepted any signature or none.)
//!
//! S3 sends event notifications; s3s-fs does not. So the server records, for every object a
//! request created (PUT, copy, completed multipart upload) and S3 would notify, the
//! `ObjectCreated` record S3 would send, and serves them in order at [`NOTIFICATIONS_PATH`]:
//! the functions may run in another process (the tests'), and [`crate::s3_events`] delivers
//! them from there to the subscribed functions, as [`crate::streams`] does DynamoDB's streams.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use http::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder, Body};
use serde_json::{json, Value};
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
        let notifications = Arc::new(Notifications::default());
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
                let (service, notifications) = (service.clone(), notifications.clone());
                let notifying = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (service, notifications) = (service.clone(), notifications.clone());
                    async move {
                        if request.uri().path() == NOTIFICATIONS_PATH {
                            return Ok(notifications.page(request.uri().query()));
                        }
                        let created = Creation::of(&request);
                        let response = hyper::service::Service::call(&service, request).await?;
                        if let (Some(created), true) = (created, response.status().is_success()) {
                            notifications.record(created, response.headers());
                        }
                        Ok::<_, s3s::HttpError>(response)
                    }
                });
                tokio::spawn(async move {
                    // HTTP/1.1 only: what the SDK and reqwest speak over plain http.
                    let connection =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), notifying);
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

/// Where the local server serves its event notifications: `GET` with `?after=<n>` answers
/// `{"records": [<S3EventRecord>...], "next": <n>}`, the records from the `n`-th on. No bucket
/// name can start with `_`, so no S3 request has this path.
pub const NOTIFICATIONS_PATH: &str = "/_local/notifications";

/// The `ObjectCreated` records S3 would have sent, in the order the objects were created.
#[derive(Default)]
struct Notifications(Mutex<Vec<Value>>);

/// An object a request creates, if it succeeds.
struct Creation {
    event_name: &'static str,
    bucket: String,
    key: String,
    size: Option<u64>,
}

impl Creation {
    /// Path-style requests (as the local clients make them): `PUT /<bucket>/<key>` stores or
    /// copies an object, `POST /<bucket>/<key>?uploadId=` completes a multipart upload. A PUT
    /// with other query parameters than a presigned URL's (a part, a tag, an ACL) creates none.
    fn of(request: &Request<hyper::body::Incoming>) -> Option<Self> {
        let names: Vec<&str> =
            request.uri().query().unwrap_or("").split('&').map(|p| p.split('=').next().unwrap_or("")).collect();
        let only_signature =
            names.iter().all(|n| n.is_empty() || n.to_ascii_lowercase().starts_with("x-amz-") || *n == "x-id");
        let event_name = match *request.method() {
            Method::PUT if !only_signature => return None,
            Method::PUT if request.headers().contains_key("x-amz-copy-source") => "ObjectCreated:Copy",
            Method::PUT => "ObjectCreated:Put",
            Method::POST if names.contains(&"uploadId") => "ObjectCreated:CompleteMultipartUpload",
            _ => return None,
        };
        let path = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8().ok()?;
        let (bucket, key) = path.strip_prefix('/')?.split_once('/')?;
        if key.is_empty() {
            return None; // PUT /<bucket> creates the bucket
        }
        let size = request.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
        Some(Self { event_name, bucket: bucket.to_owned(), key: key.to_owned(), size })
    }
}

/// Keys in S3 event notifications are URL-encoded as in a form: bytes other than letters,
/// digits, `-_.~` and `/` become `%XX`, a space `+`.
const EVENT_KEY: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b' ');

fn event_key(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, EVENT_KEY).to_string().replace(' ', "+")
}

impl Notifications {
    fn record(&self, created: Creation, headers: &http::HeaderMap) {
        let mut records = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let etag = headers.get("etag").and_then(|v| v.to_str().ok()).map(|e| e.trim_matches('"').to_owned());
        let now = time::OffsetDateTime::now_utc();
        let event_time = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut object = json!({"key": event_key(&created.key), "sequencer": format!("{:016X}", records.len() + 1)});
        if let Some(size) = created.size {
            object["size"] = json!(size);
        }
        if let Some(etag) = etag {
            object["eTag"] = json!(etag);
        }
        records.push(json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": event_time,
            "eventName": created.event_name,
            "userIdentity": {"principalId": "local"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "local",
                "bucket": {
                    "name": created.bucket,
                    "ownerIdentity": {"principalId": "local"},
                    "arn": format!("arn:aws:s3:::{}", created.bucket),
                },
                "object": object,
            },
        }));
    }

    fn page(&self, query: Option<&str>) -> Response<Body> {
        let after = query
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix("after="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let records = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let page: Vec<&Value> = records.iter().skip(after).collect();
        let body = json!({"records": page, "next": records.len().max(after)}).to_string();
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
        response
    }
}

impl Drop for S3Local {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_encoded_as_s3_does_and_decode_back() {
        assert_eq!(event_key("users/a%2Eb/f c+"), "users/a%252Eb/f+c%2B");
        for key in ["users/alice/f", "users/a%2Eb/f", "users/x%20y%C3%A9/f", "a b/é+~*"] {
            assert_eq!(shared::objects::decode_event_key(&event_key(key)).as_deref(), Some(key));
        }
    }
}
