//! Chat sessions with the AI agent, and their messages.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use shared::{
    access::{Create, Read},
    children::{ChildCollection, ChildStore},
    cursor::PageRequest,
    http::{json, ItemId, JsonBody, Noun, Paging, QueryParams, RequestBody},
    item::{check_text, NewRecord, Text},
    resource::{self, Resource, Stores},
    store::{Changes, Collection, Expect, HasId, Space, UserStore},
    teams::Authorized,
    ApiError, Area, ConfigError, Env, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub const TITLE_MAX_CHARS: usize = 200;
/// A message's content, in bytes of UTF-8.
pub const CONTENT_MAX_BYTES: usize = 64 * 1024;
const DEFAULT_TITLE: &str = "New chat";

type Title = Text<1, TITLE_MAX_CHARS>;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Session {
    id: String,
    title: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Logo ideas"}))]
pub struct CreateSession {
    /// Defaults to "New chat".
    #[serde(default)]
    title: Option<Title>,
}

impl RequestBody for CreateSession {
    const MAX_BYTES: usize = 4 * 1024;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Logo ideas, round 2"}))]
pub struct RenameSession {
    title: Title,
}

impl RequestBody for RenameSession {
    const MAX_BYTES: usize = 4 * 1024;
}

impl HasId for Session {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Noun for Session {
    const NOUN: &'static str = "session";
}

impl Resource for Session {
    const PATH: &'static str = "/sessions";
    type Create = CreateSession;
    type Summary = Session;
    type Update = RenameSession;
    type View = Session;

    fn create(body: CreateSession, new: NewRecord) -> Result<Self, ApiError> {
        let title = body.title.map_or_else(|| DEFAULT_TITLE.to_owned(), Text::into_string);
        Ok(Self { id: new.id, title, created_at: new.created_at, updated_at: new.updated_at, version: new.version })
    }

    fn changes(body: RenameSession) -> Result<Changes, ApiError> {
        Changes::default().set("title", &body.title)
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn view(self) -> Result<Self, ApiError> {
        Ok(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Message {
    id: String,
    session_id: String,
    /// The message's place in its session: 1, 2, 3, ... with no gap, in commit order. Null for
    /// messages migrated from the old system, which come before every numbered one.
    #[schema(minimum = 1)]
    seq: Option<u64>,
    role: Role,
    content: String,
    created_at: String,
}

impl HasId for Message {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "user", "content": "Draw a fox in a forest"}))]
pub struct AppendMessage {
    role: Role,
    /// At most 64 KiB of UTF-8 (413 above).
    #[schema(
        min_length = 1,
        max_length = 65536,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    content: String,
}

impl RequestBody for AppendMessage {
    const MAX_BYTES: usize = CONTENT_MAX_BYTES + 1024;
}

/// A page of messages, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    items: Vec<Message>,
    /// `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
    /// `after` for the next poll: the position after the newest message of an unbroken run of
    /// `seq` (a page never skips a message that is committed but not yet listable).
    poll_cursor: Option<String>,
}

pub struct Sessions {
    sessions: UserStore,
    messages: ChildStore,
}

impl Stores<Session> for Sessions {
    fn store(&self) -> &UserStore {
        &self.sessions
    }

    /// Deletes the session, then its messages. The session goes first, so no message is
    /// reachable from then on (listing and appending need the session). If the purge is
    /// interrupted, a retried DELETE finds the session gone and purges what is left.
    async fn delete(&self, space: &Space, id: &str, expect: Expect) -> Result<(), ApiError> {
        match self.sessions.delete(space, id, expect).await {
            Ok(()) => self.messages.purge(space, id).await.map(drop),
            Err(ApiError::NotFound(noun)) => match self.messages.purge(space, id).await? {
                0 => Err(ApiError::NotFound(noun)),
                _ => Ok(()),
            },
            Err(e) => Err(e),
        }
    }
}

impl Area for Sessions {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let sessions =
            platform.store(Collection::by_updated_at(env.required("SESSIONS_TABLE")?, Session::NOUN, "sessions"))?;
        let messages = ChildStore::new(
            platform.dynamodb.clone(),
            ChildCollection {
                table: env.required("MESSAGES_TABLE")?,
                noun: "message",
                scope: "messages",
                index: "user_id-session_id-index",
                parent_attr: "session_id",
                order_attr: "session_order",
                seq_attr: "seq",
                parent_seq_attr: "message_seq",
            },
            platform.cursors.clone(),
        );
        Ok(Self { sessions, messages })
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        resource::personal_and_project(|| resource::routes::<Session, Self>().routes(routes!(append, messages)))
    }
}

/// Adds a message to the session (and bumps the session's `updated_at` in the same transaction).
#[utoipa::path(post, path = "/sessions/{id}/messages", tag = "sessions", operation_id = "append_message",
    params(("id" = String, Path, format = Uuid, description = "The session's id")),
    request_body = AppendMessage,
    responses((status = 201, description = "The stored message", body = Message)))]
async fn append(
    State(area): State<Arc<Sessions>>,
    space: Authorized<Create>,
    session_id: ItemId<Session>,
    JsonBody(body): JsonBody<AppendMessage>,
) -> Result<Response, ApiError> {
    if body.content.len() > CONTENT_MAX_BYTES {
        return Err(ApiError::PayloadTooLarge(format!("content is over {CONTENT_MAX_BYTES} bytes")));
    }
    check_text("content", &body.content, 1, CONTENT_MAX_BYTES)?;
    let new = NewRecord::now();
    let mut message = Message {
        id: new.id,
        session_id: session_id.to_string(),
        // The store numbers the message when it commits.
        seq: None,
        role: body.role,
        content: body.content,
        created_at: new.created_at,
    };
    message.seq = Some(area.messages.append(&space, &area.sessions, &session_id, &message).await?);
    json(StatusCode::CREATED, &message)
}

/// The session's messages in `seq` order. `?after=<poll_cursor>` returns only newer ones: the
/// polling fallback for clients without a socket. A poller that keeps polling gets every
/// message exactly once, in order, however many are appended at once.
#[utoipa::path(get, path = "/sessions/{id}/messages", tag = "sessions", operation_id = "list_messages",
    params(
        ("id" = String, Path, format = Uuid, description = "The session's id"),
        Paging,
        ("after" = Option<String>, Query, description = "Poll: only messages after this cursor (the last page's `next_cursor`)"),
    ),
    responses((status = 200, description = "One page of messages", body = MessagePage)))]
async fn messages(
    State(area): State<Arc<Sessions>>,
    space: Authorized<Read>,
    session_id: ItemId<Session>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    // The session must be the caller's and still exist: orphans of an interrupted delete
    // are never listed. Checked first, so a foreign session is a 404 whatever the query says.
    area.sessions.get::<Session>(&space, &session_id).await?;
    let cursor = match (query.get("cursor"), query.get("after")) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("pass either cursor or after, not both")),
        (cursor, after) => cursor.or(after),
    };
    let page = PageRequest::parse(query.get("limit"), cursor)?;
    let page = area.messages.list::<Message>(&space, &session_id, &page).await?;
    json(StatusCode::OK, &page)
}
