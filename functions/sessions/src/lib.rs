//! Chat sessions with the AI agent, and their messages.

use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::{
    children::{ChildCollection, ChildStore},
    cursor::PageRequest,
    http::{self, json, no_content, Call, Route},
    item::{check_text, NewRecord},
    resource::{self, Crud, Resource},
    store::{Changes, Collection, HasId, UserStore},
    ApiError, ConfigError, Env, Function, Platform,
};

pub const TITLE_MAX_CHARS: usize = 200;
/// A message's content, in bytes of UTF-8.
pub const CONTENT_MAX_BYTES: usize = 64 * 1024;
const DEFAULT_TITLE: &str = "New chat";

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Crud(Crud),
    Append,
    Messages,
}

pub const ROUTES: &[Route<Op>] = &[
    Route::private("POST /sessions", Op::Crud(Crud::Create)),
    Route::private("GET /sessions", Op::Crud(Crud::List)),
    Route::private("GET /sessions/{id}", Op::Crud(Crud::Get)),
    Route::private("PATCH /sessions/{id}", Op::Crud(Crud::Update)),
    Route::private("DELETE /sessions/{id}", Op::Crud(Crud::Delete)),
    Route::private("POST /sessions/{id}/messages", Op::Append),
    Route::private("GET /sessions/{id}/messages", Op::Messages),
];

#[derive(Serialize, Deserialize)]
pub struct Session {
    id: String,
    title: String,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameSession {
    title: String,
}

fn check_title(title: &str) -> Result<(), ApiError> {
    check_text("title", title, 1, TITLE_MAX_CHARS)
}

impl HasId for Session {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Resource for Session {
    const NOUN: &'static str = "session";
    const PATH: &'static str = "/sessions";
    const BODY_MAX_BYTES: usize = 4 * 1024;
    type Create = CreateSession;
    type Summary = Session;
    type Update = RenameSession;
    type View = Session;

    fn create(body: CreateSession, new: NewRecord) -> Result<Self, ApiError> {
        let title = body.title.unwrap_or_else(|| DEFAULT_TITLE.to_owned());
        check_title(&title)?;
        Ok(Self { id: new.id, title, created_at: new.created_at, updated_at: new.updated_at, version: new.version })
    }

    fn changes(body: RenameSession) -> Result<Changes, ApiError> {
        check_title(&body.title)?;
        Changes::default().set("title", &body.title)
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn view(self) -> Result<Self, ApiError> {
        Ok(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

#[derive(Serialize, Deserialize)]
pub struct Message {
    id: String,
    session_id: String,
    role: Role,
    content: String,
    created_at: String,
}

impl HasId for Message {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendMessage {
    role: Role,
    content: String,
}

pub struct Sessions {
    platform: Platform,
    sessions: UserStore,
    messages: ChildStore,
}

impl Function for Sessions {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        let sessions =
            platform.store(Collection::by_updated_at(env.required("SESSIONS_TABLE")?, Session::NOUN, "sessions"));
        let messages = ChildStore::new(
            platform.dynamodb.clone(),
            ChildCollection {
                table: env.required("MESSAGES_TABLE")?,
                noun: "message",
                scope: "messages",
                index: "user_id-session_id-index",
                parent_attr: "session_id",
                order_attr: "session_order",
            },
            platform.cursors.clone(),
        );
        Ok(Self { platform: platform.clone(), sessions, messages })
    }

    async fn handle(&self, request: Request) -> Response<Body> {
        http::serve(&self.platform.verifier, ROUTES, request, |op, call| async move {
            match op {
                Op::Crud(Crud::Delete) => self.delete(call).await,
                Op::Crud(op) => resource::crud::<Session>(&self.sessions, op, call).await,
                Op::Append => self.append(call).await,
                Op::Messages => self.messages(call).await,
            }
        })
        .await
    }
}

impl Sessions {
    /// Deletes the session, then its messages. The session goes first, so no message is
    /// reachable from then on (listing and appending need the session). If the purge is
    /// interrupted, a retried DELETE finds the session gone and purges what is left.
    async fn delete(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let id = call.id("id", Session::NOUN)?;
        let deleted = self.sessions.delete(who, &id, call.expect()?).await;
        match deleted {
            Ok(()) => {
                self.messages.purge(who, &id).await?;
                Ok(no_content())
            }
            Err(ApiError::NotFound(noun)) => match self.messages.purge(who, &id).await? {
                0 => Err(ApiError::NotFound(noun)),
                _ => Ok(no_content()),
            },
            Err(e) => Err(e),
        }
    }

    async fn append(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let session_id = call.id("id", Session::NOUN)?;
        let body: AppendMessage = call.json(CONTENT_MAX_BYTES + 1024)?;
        if body.content.len() > CONTENT_MAX_BYTES {
            return Err(ApiError::PayloadTooLarge(format!("content is over {CONTENT_MAX_BYTES} bytes")));
        }
        check_text("content", &body.content, 1, CONTENT_MAX_BYTES)?;
        let new = NewRecord::now();
        let message = Message {
            id: new.id,
            session_id: session_id.clone(),
            role: body.role,
            content: body.content,
            created_at: new.created_at,
        };
        self.messages.append(call.identity()?, &self.sessions, &session_id, &message).await?;
        json(StatusCode::CREATED, &message)
    }

    /// The session's messages in creation order. `?after=<poll_cursor>` returns only newer
    /// ones: the polling fallback for clients without a socket.
    async fn messages(&self, call: Call) -> Result<Response<Body>, ApiError> {
        let who = call.identity()?;
        let session_id = call.id("id", Session::NOUN)?;
        let cursor = match (call.query("cursor"), call.query("after")) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("pass either cursor or after, not both")),
            (cursor, after) => cursor.or(after),
        };
        let page = PageRequest::parse(call.query("limit"), cursor)?;
        // The session must be the caller's and still exist: orphans of an interrupted delete
        // are never listed.
        self.sessions.get::<Session>(who, &session_id).await?;
        let page = self.messages.list::<Message>(who, &session_id, &page).await?;
        json(StatusCode::OK, &page)
    }
}
