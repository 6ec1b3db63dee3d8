//! The one registry of user-owned data. Account export and deletion, realtime pushes and the
//! migration tool all read their tables from [`OWNED_TABLES`]; a test compares it with every
//! table of `template.yaml` whose partition key is the owner, so a new table cannot be left out
//! of `DELETE /me` or the export by accident.

use crate::config::{ConfigError, Env};

/// How a table's items are treated when their owner exports or deletes their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// The user's content: exported, deleted with the account, pushed to their connections
    /// when it changes (if the table streams).
    Content,
    /// Bookkeeping that belongs to the user but is not content (WebSocket connections, API keys):
    /// deleted with the account, never exported.
    Bookkeeping,
}

/// A table whose partition key is the owner's `user_id`, keyed (`user_id`, `id`).
#[derive(Clone, Copy, Debug)]
pub struct OwnedTable {
    /// The table's logical id in `template.yaml`.
    pub logical_id: &'static str,
    /// The environment variable a function reads the table's name from.
    pub env: &'static str,
    /// What one item is called, in exports, deletion counts and realtime events.
    pub kind: &'static str,
    /// Attributes that are storage details, left out of exports.
    pub internal: &'static [&'static str],
    pub retention: Retention,
    /// Changes reach the owner's WebSocket connections (the table has a stream).
    pub pushed: bool,
}

/// Every table of user-owned items, in export order.
pub const OWNED_TABLES: &[OwnedTable] = &[
    content("CanvasesTable", "CANVASES_TABLE", "canvas", &[], true),
    content("SessionsTable", "SESSIONS_TABLE", "session", &["message_seq"], true),
    content("MessagesTable", "MESSAGES_TABLE", "message", &["session_order"], true),
    content("WorkflowsTable", "WORKFLOWS_TABLE", "workflow", &[], true),
    content("FilesTable", "FILES_TABLE", "file", &[], false),
    OwnedTable {
        logical_id: "ConnectionsTable",
        env: "CONNECTIONS_TABLE",
        kind: "connection",
        internal: &[],
        retention: Retention::Bookkeeping,
        pushed: false,
    },
    // Credentials, not content: deleted with the account, never exported (not even digests).
    OwnedTable {
        logical_id: "ApiKeysTable",
        env: "API_KEYS_TABLE",
        kind: "api_key",
        internal: &["secret_hash"],
        retention: Retention::Bookkeeping,
        pushed: false,
    },
];

/// A table of team data (organizations, projects, memberships, invitations): owned by an organization or a
/// project, reached only through a membership (`shared::teams`), never by a user's partition.
/// A project's workspace items are not here: they live in the owned tables under the project's
/// partition value, which no token subject can take.
#[derive(Clone, Copy, Debug)]
pub struct TeamTable {
    pub logical_id: &'static str,
    pub env: &'static str,
    /// The key attributes, HASH then RANGE, as `template.yaml` must declare them.
    pub key: &'static str,
}

/// Every team table.
pub const TEAM_TABLES: &[TeamTable] = &[
    TeamTable { logical_id: "OrganizationsTable", env: "ORGANIZATIONS_TABLE", key: "id" },
    TeamTable { logical_id: "ProjectsTable", env: "PROJECTS_TABLE", key: "id" },
    TeamTable { logical_id: "MembershipsTable", env: "MEMBERSHIPS_TABLE", key: "scope, user_id" },
    TeamTable { logical_id: "InvitationsTable", env: "INVITATIONS_TABLE", key: "scope, id" },
];

/// The profile table: one item per user, keyed by `user_id` alone.
pub const PROFILE_TABLE: ProfileTable = ProfileTable { logical_id: "UsersTable", env: "USERS_TABLE" };

#[derive(Clone, Copy, Debug)]
pub struct ProfileTable {
    pub logical_id: &'static str,
    pub env: &'static str,
}

const fn content(
    logical_id: &'static str,
    env: &'static str,
    kind: &'static str,
    internal: &'static [&'static str],
    pushed: bool,
) -> OwnedTable {
    OwnedTable { logical_id, env, kind, internal, retention: Retention::Content, pushed }
}

/// An owned table with its deployed name, read from the function's environment.
#[derive(Clone, Debug)]
pub struct NamedTable {
    pub spec: OwnedTable,
    pub name: String,
}

/// The registry's tables that `select` keeps, each named from the environment; a missing
/// variable is a configuration error naming it.
pub fn named(env: &Env, select: impl Fn(&OwnedTable) -> bool) -> Result<Vec<NamedTable>, ConfigError> {
    OWNED_TABLES
        .iter()
        .filter(|t| select(t))
        .map(|spec| Ok(NamedTable { spec: *spec, name: env.required(spec.env)? }))
        .collect()
}

/// The registry entry of a table by its logical id.
pub fn by_logical_id(logical_id: &str) -> Option<&'static OwnedTable> {
    OWNED_TABLES.iter().find(|t| t.logical_id == logical_id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn entries_are_unique() {
        let ids: HashSet<_> = OWNED_TABLES.iter().map(|t| t.logical_id).collect();
        let envs: HashSet<_> = OWNED_TABLES.iter().map(|t| t.env).collect();
        let kinds: HashSet<_> = OWNED_TABLES.iter().map(|t| t.kind).collect();
        assert_eq!(ids.len(), OWNED_TABLES.len());
        assert_eq!(envs.len(), OWNED_TABLES.len());
        assert_eq!(kinds.len(), OWNED_TABLES.len());
        assert!(by_logical_id(PROFILE_TABLE.logical_id).is_none());
    }
}
