//! File bytes in S3, each user under their own prefix `users/<encoded user id>/`. Keys are
//! built here only, from an [`Identity`].
//!
//! The encoding percent-encodes every byte of the user id except ASCII letters, digits, `-` and
//! `_` (so `.` too: `.` is `%2E`, `..` is `%2E%2E`, `a.b` is `a%2Eb`). Hence:
//! - no `/`: no user id (`alice/files`, say) reaches into another user's prefix;
//! - no `.`: no key has a `.` or `..` segment, which URL parsers (reqwest's, browsers') remove
//!   from a presigned URL's path, sending it to another key than the one signed (and, on a
//!   server that did not check, outside the user's prefix). `%` is encoded too, and the SDK
//!   encodes the key's `%` as `%25` in the URL, so no `%2E` segment appears there either;
//! - injective (percent-decoding inverts it), and a prefix ends at `/`: two users' prefixes
//!   never overlap, and deleting one prefix deletes nothing of another's.
//!
//! Keeping the ids' common characters readable keeps keys easy to inspect. Up to 3 bytes per id
//! byte: a 256-byte `sub` (the verifier's limit) still fits S3's 1024-byte keys.
//!
//! Objects stored before `.` was encoded (user ids containing `.`) sit under their old prefix,
//! which nothing reaches any more: pre-release data, not migrated.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::{
    presigning::PresigningConfig,
    types::{Delete, ObjectIdentifier},
    Client,
};
use serde::Serialize;

use crate::{auth::Identity, error::ApiError, store::Space};

/// Where every user's prefix lives (the template's upload notifications filter on it too).
pub const USERS_PREFIX: &str = "users/";

/// A presigned request the client makes itself, straight to S3.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Presigned {
    pub method: String,
    pub url: String,
    /// Headers the client must send exactly as given (they are part of the signature).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: String,
}

#[derive(Clone)]
pub struct UserObjects {
    client: Client,
    bucket: String,
}

/// What S3 holds for an object.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub content_type: Option<String>,
}

/// See the module documentation: never yields `/`, `.` or an unencoded `%`.
fn encode_user(user_id: &str) -> String {
    percent_encoding::utf8_percent_encode(user_id, USER_ID_KEPT).to_string()
}

/// The bytes of a user id kept as they are; all others are percent-encoded, so no `.`, `/` or
/// `%` survives and no URL normalization can move an object out of its user's prefix.
const USER_ID_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');

fn s3_error<E: std::fmt::Debug>(
    err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> ApiError {
    use aws_sdk_s3::error::SdkError;
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ApiError::Unavailable(format!("s3: {err:?}"))
        }
        SdkError::ServiceError(s) if s.raw().status().as_u16() == 503 => ApiError::Unavailable(format!("s3: {err:?}")),
        _ => ApiError::Internal(format!("s3: {err:?}")),
    }
}

fn expiry(ttl: Duration) -> String {
    let at = time::OffsetDateTime::from(SystemTime::now() + ttl);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl UserObjects {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    /// The space's prefix: the caller's own, or the project's (`projects/<id>/`, the id a
    /// canonical UUID); nothing of theirs lives outside it, nothing of anyone else inside.
    pub fn prefix(space: &Space) -> String {
        match space.project_id() {
            None => format!("{USERS_PREFIX}{}/", encode_user(space.caller().user_id())),
            Some(project) => format!("projects/{project}/"),
        }
    }

    fn key(space: &Space, name: &str) -> String {
        format!("{}{name}", Self::prefix(space))
    }

    /// A PUT URL for exactly `size` bytes of `content_type` at the caller's `name`.
    pub async fn upload_url(
        &self,
        space: &Space,
        name: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<Presigned, ApiError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| ApiError::Internal(e.to_string()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(space, name))
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(config)
            .await
            .map_err(s3_error)?;
        let mut headers: std::collections::BTreeMap<String, String> =
            request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        headers.insert("content-type".into(), content_type.to_owned());
        headers.insert("content-length".into(), size.to_string());
        Ok(Presigned { method: "PUT".into(), url: request.uri().to_owned(), headers, expires_at: expiry(ttl) })
    }

    pub async fn download_url(&self, space: &Space, name: &str, ttl: Duration) -> Result<Presigned, ApiError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| ApiError::Internal(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(Self::key(space, name))
            .presigned(config)
            .await
            .map_err(s3_error)?;
        Ok(Presigned {
            method: "GET".into(),
            url: request.uri().to_owned(),
            headers: request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            expires_at: expiry(ttl),
        })
    }

    /// Size and type of the caller's object, `None` if nothing was uploaded.
    pub async fn stat(&self, space: &Space, name: &str) -> Result<Option<StoredObject>, ApiError> {
        match self.client.head_object().bucket(&self.bucket).key(Self::key(space, name)).send().await {
            Ok(out) => Ok(Some(StoredObject {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                content_type: out.content_type().map(str::to_owned),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    /// Deletes the caller's object; deleting what is not there succeeds.
    pub async fn delete(&self, space: &Space, name: &str) -> Result<(), ApiError> {
        self.client.delete_object().bucket(&self.bucket).key(Self::key(space, name)).send().await.map_err(s3_error)?;
        Ok(())
    }

    /// Deletes everything under the caller's prefix. Returns how many objects were deleted.
    pub async fn delete_all(&self, space: &Space) -> Result<usize, ApiError> {
        let mut deleted = 0;
        loop {
            // Always the first page: what was deleted is gone, so this ends when the prefix is empty.
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(Self::prefix(space))
                .max_keys(1000)
                .send()
                .await
                .map_err(s3_error)?;
            let keys: Vec<ObjectIdentifier> = out
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            deleted += keys.len();
            let delete = Delete::builder()
                .set_objects(Some(keys))
                .quiet(true)
                .build()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await.map_err(s3_error)?;
        }
    }
}

/// An object S3 reports created (one record of an `ObjectCreated` event notification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// The object's key, decoded from the event's URL encoding.
    pub key: String,
    /// Whose object it is and its name under their prefix, when the key is one
    /// [`UserObjects`] builds; `None` for any other key.
    pub owner: Option<(Identity, String)>,
}

impl CreatedObject {
    /// Deletes the object (by the key S3 reported, which need not be a user's).
    pub async fn delete(&self, client: &Client) -> Result<(), ApiError> {
        client.delete_object().bucket(&self.bucket).key(&self.key).send().await.map_err(s3_error)?;
        Ok(())
    }
}

/// The objects an S3 event notification reports created. S3 URL-encodes the keys of its events
/// as a form does (`+` for a space, `%XX` for other bytes); they are decoded here. Records of
/// other events, or without a bucket or key, are left out.
pub fn created_objects(event: &S3Event) -> Vec<CreatedObject> {
    event
        .records
        .iter()
        .filter(|r| r.event_name.as_deref().is_some_and(|name| name.starts_with("ObjectCreated:")))
        .filter_map(|r| {
            let bucket = r.s3.bucket.name.clone()?;
            let key = decode_event_key(r.s3.object.key.as_deref()?)?;
            Some(CreatedObject { bucket, owner: owner_of(&key), key })
        })
        .collect()
}

/// An object key as S3 event notifications carry it, decoded (`+` is a space, `%XX` a byte).
/// `None` if the bytes are not UTF-8, which no S3 key can be.
pub fn decode_event_key(encoded: &str) -> Option<String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|k| k.into_owned())
}

/// The owner and name of a key [`UserObjects`] built: `users/<encoded user id>/<name>`, with
/// the user id encoded exactly as [`encode_user`] writes it (the encoding is injective, so
/// only one user's prefix can hold the key). `None` for every other key.
fn owner_of(key: &str) -> Option<(Identity, String)> {
    let (encoded, name) = key.strip_prefix(USERS_PREFIX)?.split_once('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let user_id = String::from_utf8(percent_encoding::percent_decode_str(encoded).collect()).ok()?;
    // Only the functions write under users/, each through a key built here from an identity.
    (encode_user(&user_id) == encoded).then(|| (Identity::from_verified_source(&user_id), name.to_owned()))
}

/// A client for the local S3 server (`infra/local-stack`, which checks signatures as S3 does):
/// the local settings and key pair every local client shares, path-style URLs.
pub fn local_s3_client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::config::Builder::from(&crate::runtime::local_sdk_config())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn personal(user: &str) -> Space {
        Space::personal(&Identity::for_tests(user))
    }

    #[test]
    fn a_project_has_its_own_prefix() {
        let project = Space::project(&Identity::for_tests("alice"), "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10");
        assert_eq!(UserObjects::prefix(&project), "projects/0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10/");
        assert!(UserObjects::prefix(&personal("projects")).starts_with("users/"));
    }

    /// The inverse of [`encode_user`], to show that it loses nothing.
    fn decode(encoded: &str) -> Vec<u8> {
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    const AWKWARD: &[&str] =
        &[".", "..", "...", ".a", "a.", "a.b", "%2E", "%2e", "%", "/", "./..", "a/../b", "auth0|42", "é", "~", " "];

    #[test]
    fn prefixes_cannot_overlap_between_users() {
        let alice = Identity::for_tests("alice");
        let sneaky = Identity::for_tests("alice/files");
        assert_eq!(UserObjects::prefix(&Space::personal(&alice)), "users/alice/");
        assert_eq!(UserObjects::prefix(&Space::personal(&sneaky)), "users/alice%2Ffiles/");
        assert!(
            !UserObjects::prefix(&Space::personal(&sneaky)).starts_with(&UserObjects::prefix(&Space::personal(&alice)))
        );
        assert_eq!(UserObjects::prefix(&personal("auth0|42")), "users/auth0%7C42/");
        assert_eq!(
            UserObjects::prefix(&personal("0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10")),
            "users/0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10/",
            "Cognito subs (UUIDs) stay as they are"
        );
    }

    #[test]
    fn dots_are_encoded_so_no_key_has_a_dot_segment() {
        assert_eq!(UserObjects::prefix(&personal(".")), "users/%2E/");
        assert_eq!(UserObjects::prefix(&personal("..")), "users/%2E%2E/");
        assert_eq!(UserObjects::prefix(&personal("a.b")), "users/a%2Eb/");
        for id in AWKWARD {
            let key = UserObjects::key(&personal(id), "f");
            assert!(!key.split('/').any(|s| s == "." || s == ".."), "{id:?}: {key}");
            let encoded = encode_user(id);
            assert!(!encoded.contains(['.', '/']), "{id:?}: {encoded}");
        }
    }

    #[test]
    fn the_encoding_is_injective() {
        let mut seen = std::collections::BTreeMap::new();
        for id in AWKWARD {
            let encoded = encode_user(id);
            assert_eq!(decode(&encoded), id.as_bytes(), "{id:?}");
            assert_eq!(seen.insert(encoded.clone(), id), None, "{id:?} and another id share {encoded}");
        }
        for (a, b) in AWKWARD.iter().flat_map(|a| AWKWARD.iter().map(move |b| (a, b))) {
            let (pa, pb) = (UserObjects::prefix(&personal(a)), UserObjects::prefix(&personal(b)));
            assert!(a == b || !pa.starts_with(&pb), "{a:?}'s prefix {pa} is inside {b:?}'s {pb}");
        }
    }

    #[test]
    fn the_longest_user_id_still_fits_an_s3_key() {
        // 256 bytes: the verifier's limit on `sub`; every byte encoded: the worst case.
        let id = "|".repeat(256);
        let key = UserObjects::key(&personal(&id), "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10");
        assert!(key.len() <= 1024, "{} bytes", key.len());
    }

    /// An `ObjectCreated` record as S3 delivers it, the key URL-encoded.
    fn created(name: &str, key: &str) -> S3Event {
        serde_json::from_value(serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-01-01T00:00:00.000Z", "eventName": name,
            "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "1.2.3.4"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": "files", "ownerIdentity": {"principalId": "X"}, "arn": "arn:aws:s3:::files"},
                   "object": {"key": key, "size": 3, "eTag": "e", "sequencer": "01"}},
        }]}))
        .unwrap()
    }

    #[test]
    fn created_objects_name_their_owner_by_the_key_prefix() {
        for id in AWKWARD.iter().chain(&["alice", "auth0|42"]) {
            let who = Identity::for_tests(id);
            let key = UserObjects::key(&Space::personal(&who), "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10");
            // As S3 encodes keys in events: `%` becomes `%25`.
            let encoded = key.replace('%', "%25");
            let objects = created_objects(&created("ObjectCreated:Put", &encoded));
            assert_eq!(objects.len(), 1);
            assert_eq!(objects[0].key, key, "{id:?}");
            let (owner, name) = objects[0].owner.as_ref().unwrap();
            assert_eq!((owner.user_id(), name.as_str()), (*id, "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10"));
        }
    }

    #[test]
    fn keys_no_user_prefix_builds_have_no_owner() {
        for key in ["elsewhere/x", "users/alice", "users/alice/", "users/alice/a/b", "users/a.b/x", "users/%41/x"] {
            let objects = created_objects(&created("ObjectCreated:Put", &key.replace('%', "%25")));
            assert_eq!(objects[0].key, key);
            assert_eq!(objects[0].owner, None, "{key}");
        }
        assert_eq!(decode_event_key("users/a+b%2Bc"), Some("users/a b+c".into()));
        assert!(created_objects(&created("ObjectRemoved:Delete", "users/alice/x")).is_empty());
    }

    /// What reqwest (and a browser) would send is what was signed: URL parsing changes nothing
    /// in a presigned URL's path, whatever the user id.
    #[tokio::test]
    async fn presigned_urls_survive_url_parsing() {
        let objects = UserObjects::new(local_s3_client("http://127.0.0.1:9"), "bucket".into());
        for id in AWKWARD {
            let who = personal(id);
            let ttl = Duration::from_secs(60);
            for url in [
                objects.upload_url(&who, "f", "image/png", 1, ttl).await.unwrap().url,
                objects.download_url(&who, "f", ttl).await.unwrap().url,
            ] {
                assert_eq!(reqwest::Url::parse(&url).unwrap().as_str(), url, "{id:?}");
            }
        }
    }
}
