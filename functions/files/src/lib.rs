//! Files: metadata in DynamoDB, bytes in S3 under the caller's prefix. Bytes never pass
//! through Lambda: the client PUTs them to a presigned URL bound to the declared size and type,
//! then asks us to check that they arrived.

use std::{sync::Arc, time::Duration};

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use shared::{
    access::{Create, Delete, Read, Update},
    http::{json, no_content, with_location, IfMatch, ItemId, JsonBody, Noun, Paging, RequestBody},
    item::{NewRecord, Text},
    objects::{Presigned, UserObjects},
    resource,
    store::{Changes, Collection, Expect, HasId, UserStore},
    teams::Authorized,
    ApiError, Area, ConfigError, Env, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

mod cleanup;

pub use cleanup::UploadCleanup;

pub const NAME_MAX_CHARS: usize = 255;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
type FileName = Text<1, NAME_MAX_CHARS>;

/// Long enough to start a 25 MiB upload on a slow connection (S3 checks the expiry when the
/// request starts, not when it ends), short enough that a URL leaked or left over is soon
/// useless. Bytes it uploads after its file was deleted are removed by [`UploadCleanup`].
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(10 * 60);
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);

mod status {
    pub const PENDING: &str = "pending";
    pub const READY: &str = "ready";
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
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

impl Noun for File {
    const NOUN: &'static str = "file";
}

impl HasId for File {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "fox.png", "content_type": "image/png", "size": 1024}))]
pub struct NewFile {
    name: FileName,
    /// A media type such as image/png (no parameters).
    #[schema(pattern = r"^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}$")]
    content_type: String,
    /// In bytes (at most 25 MiB by default: 413 above).
    #[schema(minimum = 1, maximum = 26214400)]
    size: u64,
}

impl RequestBody for NewFile {
    const MAX_BYTES: usize = 4 * 1024;
}

/// A new file and where to upload its bytes.
#[derive(Serialize, ToSchema)]
pub struct Created {
    /// The file's id (also `file.id`).
    id: String,
    file: File,
    upload: Presigned,
}

#[derive(Serialize, ToSchema)]
pub struct WithDownload {
    #[serde(flatten)]
    file: File,
    /// A short-lived URL to GET the bytes, once the upload is complete.
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
    store: UserStore,
    objects: UserObjects,
    max_bytes: u64,
}

/// The files table, as every files function reads it.
fn collection(env: &Env) -> Result<Collection, ConfigError> {
    Ok(Collection {
        table: env.required("FILES_TABLE")?,
        noun: File::NOUN,
        scope: "files",
        list_index: "user_id-created_at-index",
        list_sort_key: "created_at",
    })
}

impl Area for Files {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: platform.store(collection(env)?)?,
            objects: UserObjects::new(platform.s3(), env.required("FILES_BUCKET")?),
            max_bytes: env.parse_or("FILE_MAX_BYTES", DEFAULT_MAX_FILE_BYTES)?,
        })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        resource::personal_and_project(|| {
            OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get, delete)).routes(routes!(complete))
        })
    }
}

/// Registers a file and returns a presigned `PUT` URL bound to its size and type.
#[utoipa::path(post, path = "/files", tag = "files", operation_id = "create_file",
    request_body = NewFile,
    responses((status = 201, description = "The pending file and its upload URL", body = Created)))]
async fn create(
    State(area): State<Arc<Files>>,
    who: Authorized<Create>,
    JsonBody(body): JsonBody<NewFile>,
) -> Result<Response, ApiError> {
    check_content_type(&body.content_type)?;
    if body.size == 0 {
        return Err(ApiError::bad_request("size must be at least 1 byte"));
    }
    if body.size > area.max_bytes {
        return Err(ApiError::PayloadTooLarge(format!("files are limited to {} bytes", area.max_bytes)));
    }
    let new = NewRecord::now();
    let file = File {
        id: new.id,
        name: body.name.into_string(),
        content_type: body.content_type,
        size: body.size,
        status: status::PENDING.to_owned(),
        created_at: new.created_at,
        updated_at: new.updated_at,
        version: new.version,
    };
    area.store.create(&who, &file).await?;
    let upload = area.objects.upload_url(&who, &file.id, &file.content_type, file.size, UPLOAD_URL_TTL).await?;
    let location = match who.project_id() {
        None => format!("/files/{}", file.id),
        Some(project) => format!("/projects/{project}/files/{}", file.id),
    };
    let response = json(StatusCode::CREATED, &Created { id: file.id.clone(), file, upload })?;
    with_location(response, &location)
}

/// The caller's files, newest first.
#[utoipa::path(get, path = "/files", tag = "files", operation_id = "list_files",
    params(
        Paging,
    ),
    responses((status = 200, description = "One page", body = FilePage)))]
async fn list(
    State(area): State<Arc<Files>>,
    who: Authorized<Read>,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    json(StatusCode::OK, &area.store.list::<File>(&who, &page).await?)
}

/// A page of files.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FilePage {
    items: Vec<File>,
    next_cursor: Option<String>,
}

/// A file, with a download URL once it is ready.
#[utoipa::path(get, path = "/files/{id}", tag = "files", operation_id = "get_file",
    params(("id" = Uuid, Path, description = "The file's id")),
    responses((status = 200, description = "The file", body = WithDownload)))]
async fn get(State(area): State<Arc<Files>>, who: Authorized<Read>, id: ItemId<File>) -> Result<Response, ApiError> {
    let file: File = area.store.get(&who, &id).await?;
    let download = match file.status.as_str() {
        status::READY => Some(area.objects.download_url(&who, &id, DOWNLOAD_URL_TTL).await?),
        _ => None,
    };
    json(StatusCode::OK, &WithDownload { file, download })
}

/// Checks that the bytes arrived with the declared size and type, then marks the file ready.
#[utoipa::path(post, path = "/files/{id}/complete", tag = "files", operation_id = "complete_file",
    params(("id" = Uuid, Path, description = "The file's id")),
    responses((status = 200, description = "The ready file", body = File)))]
async fn complete(
    State(area): State<Arc<Files>>,
    who: Authorized<Update>,
    id: ItemId<File>,
) -> Result<Response, ApiError> {
    let file: File = area.store.get(&who, &id).await?;
    if file.status == status::READY {
        return Err(ApiError::Conflict("the upload is already complete".into()));
    }
    let stored =
        area.objects.stat(&who, &id).await?.ok_or_else(|| {
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
    let file: File = area.store.update(&who, &id, Expect::Exists, changes).await?;
    json(StatusCode::OK, &file)
}

/// Deletes the file and its bytes.
#[utoipa::path(delete, path = "/files/{id}", tag = "files", operation_id = "delete_file",
    params(("id" = Uuid, Path, description = "The file's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this delete expects")),
    responses((status = 204, description = "Deleted")))]
async fn delete(
    State(area): State<Arc<Files>>,
    who: Authorized<Delete>,
    id: ItemId<File>,
    IfMatch(expect): IfMatch,
) -> Result<Response, ApiError> {
    area.store.delete(&who, &id, expect).await?;
    // After the metadata: if this fails, the object is an orphan inside the user's own
    // prefix, which account deletion removes.
    area.objects.delete(&who, &id).await?;
    Ok(no_content())
}
