//! Files: metadata in DynamoDB, bytes in S3 under the caller's prefix. Bytes never pass
//! through Lambda: the client PUTs them to a presigned URL bound to the declared size and type,
//! then asks us to check that they arrived.

use std::time::Duration;

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::{
    http::{self, json, no_content, Call, Route},
    item::{check_text, NewRecord},
    objects::{Presigned, UserObjects},
    resource,
    store::{Changes, Collection, Expect, HasId, UserStore},
    ApiError, ConfigError, Env, Function, Platform,
};

pub const NAME_MAX_CHARS: usize = 255;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
const NOUN: &str = "file";

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Create,
    List,
    Get,
    Complete,
    Delete,
}

pub const ROUTES: &[Route<Op>] = &[
    Route::private("POST /files", Op::Create),
    Route::private("GET /files", Op::List),
    Route::private("GET /files/{id}", Op::Get),
    Route::private("POST /files/{id}/complete", Op::Complete),
    Route::private("DELETE /files/{id}", Op::Delete),
];

mod status {
    pub const PENDING: &str = "pending";
    pub const READY: &str = "ready";
}

#[derive(Clone, Serialize, Deserialize)]
pub struct File {
    id: String,
    name: String,
    content_type: String,
    size: u64,
    status: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

impl HasId for File {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFile {
    name: String,
    content_type: String,
    size: u64,
}

#[derive(Serialize)]
struct Created {
    file: File,
    upload: Presigned,
}

#[derive(Serialize)]
struct WithDownload {
    #[serde(flatten)]
    file: File,
    download: Option<Presigned>,
}

/// `type/subtype`, RFC 6838 characters, no parameters.
fn check_content_type(value: &str) -> Result<(), ApiError> {
    let token = |s: &str| {
        !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match value.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => Ok(()),
        _ => Err(ApiError::bad_request("content_type must be a media type such as image/png")),
    }
}

pub struct Files {
    platform: Platform,
    store: UserStore,
    objects: UserObjects,
    max_bytes: u64,
}

impl Function for Files {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let collection = Collection {
            table: env.required("FILES_TABLE")?,
            noun: NOUN,
            scope: "files",
            list_index: "user_id-created_at-index",
            list_sort_key: "created_at",
        };
        Ok(Self {
            platform: platform.clone(),
            store: platform.store(collection),
            objects: UserObjects::new(platform.s3(), env.required("FILES_BUCKET")?),
            max_bytes: env.parse_or("FILE_MAX_BYTES", DEFAULT_MAX_FILE_BYTES)?,
        })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Create => self.create(call).await,
                Op::List => resource::list::<File>(&self.store, call).await,
                Op::Get => self.get(call).await,
                Op::Complete => self.complete(call).await,
                Op::Delete => self.delete(call).await,
            }
        })
        .await
    }
}

impl Files {
    async fn create(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let body: NewFile = call.json(4 * 1024)?;
        check_text("name", &body.name, 1, NAME_MAX_CHARS)?;
        check_content_type(&body.content_type)?;
        if body.size == 0 {
            return Err(ApiError::bad_request("size must be at least 1 byte"));
        }
        if body.size > self.max_bytes {
            return Err(ApiError::PayloadTooLarge(format!("files are limited to {} bytes", self.max_bytes)));
        }
        let new = NewRecord::now();
        let file = File {
            id: new.id,
            name: body.name,
            content_type: body.content_type,
            size: body.size,
            status: status::PENDING.to_owned(),
            created_at: new.created_at,
            updated_at: new.updated_at,
            version: new.version,
        };
        self.store.create(who, &file).await?;
        let upload = self.objects.upload_url(who, &file.id, &file.content_type, file.size, UPLOAD_URL_TTL).await?;
        let mut response = json(StatusCode::CREATED, &Created { file: file.clone(), upload })?;
        response.headers_mut().insert(
            "location",
            format!("/files/{}", file.id).parse().map_err(|_| ApiError::Internal("location".into()))?,
        );
        Ok(response)
    }

    async fn get(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let id = call.id("id", NOUN)?;
        let file: File = self.store.get(who, &id).await?;
        let download = match file.status.as_str() {
            status::READY => Some(self.objects.download_url(who, &id, DOWNLOAD_URL_TTL).await?),
            _ => None,
        };
        json(StatusCode::OK, &WithDownload { file, download })
    }

    /// Checks that the bytes arrived with the declared size and type, then marks the file ready.
    async fn complete(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let id = call.id("id", NOUN)?;
        let file: File = self.store.get(who, &id).await?;
        if file.status == status::READY {
            return Err(ApiError::Conflict("the upload is already complete".into()));
        }
        let stored = self.objects.stat(who, &id).await?.ok_or_else(|| {
            ApiError::Conflict("nothing was uploaded yet: PUT the bytes to the upload URL first".into())
        })?;
        if stored.size != file.size {
            return Err(ApiError::Conflict(format!(
                "{} bytes arrived but {} were declared: upload again",
                stored.size, file.size
            )));
        }
        if stored.content_type.as_deref().is_some_and(|t| t != file.content_type) {
            return Err(ApiError::Conflict(format!("the upload is not {}: upload again", file.content_type)));
        }
        let changes = Changes::default().set("status", &status::READY)?.only_if(
            "status",
            &[status::PENDING],
            "the upload is already complete",
        );
        let file: File = self.store.update(who, &id, Expect::Exists, changes).await?;
        json(StatusCode::OK, &file)
    }

    async fn delete(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let id = call.id("id", NOUN)?;
        self.store.delete(who, &id, call.expect()?).await?;
        // After the metadata: if this fails, the object is an orphan inside the user's own
        // prefix, which account deletion removes.
        self.objects.delete(who, &id).await?;
        Ok(no_content())
    }
}
