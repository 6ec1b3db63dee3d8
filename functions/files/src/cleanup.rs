//! The files bucket's `ObjectCreated` consumer. A presigned upload URL cannot be revoked: it
//! stays valid until it expires, also after `DELETE /files/{id}` or `DELETE /me` removed the
//! file record it was issued for. So S3 reports every object created under `users/`, and an
//! object whose file record is gone is deleted: bytes only stay where a record awaits them
//! (pending) or holds them (ready).
//!
//! A ready record keeps its object too: the notification of an upload can arrive after the
//! client already completed it (S3 delivers events asynchronously, usually within a second), and
//! deleting then would lose a file just marked ready. A later PUT through the same URL (until it
//! expires) can only store bytes of the signed size and type into the owner's own file.

use aws_lambda_events::event::s3::S3Event;
use shared::{
    objects::{self, CreatedObject},
    store::UserStore,
    ApiError, ConfigError, Env, EventFunction, Platform,
};

use crate::File;

pub struct UploadCleanup {
    files: UserStore,
    s3: aws_sdk_s3::Client,
}

/// What became of one reported object.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Its file record exists.
    Kept,
    /// No file record (or not a user's key at all): deleted.
    Deleted,
}

impl UploadCleanup {
    async fn check(&self, object: &CreatedObject) -> Result<Outcome, ApiError> {
        if let Some((owner, name)) = &object.owner {
            match self.files.get::<File>(&shared::store::Space::personal(owner), name).await {
                Ok(_) => return Ok(Outcome::Kept),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        object.delete(&self.s3).await?;
        Ok(Outcome::Deleted)
    }
}

impl EventFunction for UploadCleanup {
    type Event = S3Event;
    type Output = ();

    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        // Only reads: the bucket comes with each event (its name in the environment would make
        // the bucket and this function depend on each other in the template).
        Ok(Self { files: platform.reader(crate::collection(env)?), s3: platform.s3() })
    }

    /// An error makes Lambda retry the event (S3 invokes asynchronously); checking and deleting
    /// again is harmless.
    async fn handle(&self, event: S3Event) -> Result<(), lambda_runtime::Error> {
        for object in objects::created_objects(&event) {
            let outcome = self.check(&object).await?;
            match outcome {
                Outcome::Kept => tracing::debug!(key = %object.key, "upload has its file record"),
                Outcome::Deleted => tracing::info!(key = %object.key, "deleted an upload without a file record"),
            }
        }
        Ok(())
    }
}
