//! The caller's account: profile, export of everything they own, deletion of everything they
//! own. Also the public health check.

mod docs;

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
    OpenApi,
    Docs,
    Me,
    Export,
    Delete,
}

pub const ROUTES: &[Route<Op>] = &[
    Route::public("GET /health", Op::Health),
    Route::public("GET /openapi.json", Op::OpenApi),
    Route::public("GET /docs", Op::Docs),
    Route::private("GET /me", Op::Me),
    Route::private("GET /me/export", Op::Export),
    Route::private("DELETE /me", Op::Delete),
];

/// The API description, kept true to template.yaml by a test.
pub const OPENAPI: &str = include_str!("../../../openapi.json");

pub struct Account {
    platform: Platform,
    /// The readable docs page, rendered once from the API description.
    docs: String,
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
            docs: docs::render(OPENAPI),
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
                Op::OpenApi => Ok(static_page("application/json", OPENAPI)),
                Op::Docs => Ok(static_page("text/html; charset=utf-8", &self.docs)),
                Op::Me => json(StatusCode::OK, &self.partition.profile(call.identity()?).await?),
                Op::Export => self.export(call).await,
                Op::Delete => self.delete(call).await,
            }
        })
        .await
    }
}

fn static_page(content_type: &str, body: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .body(Body::Text(body.to_owned()))
        .expect("static response")
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
