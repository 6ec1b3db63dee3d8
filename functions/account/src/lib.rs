//! The caller's account: profile, export of everything they own, deletion of everything they
//! own. Also the public health check.

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::json;
use shared::{
    http::{self, json, Call, Route},
    objects::UserObjects,
    partition::{OwnedTable, Partition},
    ApiError, ConfigError, Env, Function, Platform,
};

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Health,
    Me,
    Export,
    Delete,
}

pub const ROUTES: &[Route<Op>] = &[
    Route::public("GET /health", Op::Health),
    Route::private("GET /me", Op::Me),
    Route::private("GET /me/export", Op::Export),
    Route::private("DELETE /me", Op::Delete),
];

pub struct Account {
    platform: Platform,
    partition: Partition,
    objects: UserObjects,
}

impl Function for Account {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let owned = |kind, variable: &str, internal| -> Result<OwnedTable, ConfigError> {
            Ok(OwnedTable { kind, table: env.required(variable)?, internal })
        };
        let tables = vec![
            owned("canvas", "CANVASES_TABLE", &[])?,
            owned("session", "SESSIONS_TABLE", &[])?,
            owned("message", "MESSAGES_TABLE", &["session_order"])?,
            owned("workflow", "WORKFLOWS_TABLE", &[])?,
            owned("file", "FILES_TABLE", &[])?,
        ];
        Ok(Self {
            platform: platform.clone(),
            partition: Partition::new(
                platform.dynamodb.clone(),
                env.required("USERS_TABLE")?,
                tables,
                platform.cursors.clone(),
            ),
            objects: UserObjects::new(platform.s3(), env.required("FILES_BUCKET")?),
        })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Health => json(StatusCode::OK, &json!({"status": "ok", "version": shared::BUILD_VERSION})),
                Op::Me => json(StatusCode::OK, &self.partition.profile(call.identity()?).await?),
                Op::Export => self.export(call).await,
                Op::Delete => self.delete(call).await,
            }
        })
        .await
    }
}

impl Account {
    /// Everything the caller owns, a page at a time (follow `next_cursor` to the end).
    async fn export(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        self.partition.profile(who).await?;
        json(StatusCode::OK, &self.partition.export(who, &call.page()?).await?)
    }

    /// Deletes every item the caller owns in every table and every object under their prefix.
    /// Safe to repeat: if interrupted, calling it again finishes the job.
    async fn delete(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let objects = self.objects.delete_all(who).await?;
        let mut deleted = self.partition.delete_all(who).await?;
        deleted.insert("object", objects);
        json(StatusCode::OK, &json!({ "deleted": deleted }))
    }
}
