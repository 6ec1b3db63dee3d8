//! Teams: roles, the one permission matrix, and the rules for granting roles. Pure code: the
//! membership records these decide from are read by [`crate::teams`].

use serde::{Deserialize, Serialize};

/// A member's role in an organization or a project, lowest first (so `Ord` is seniority).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MemberRole)]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a request does, as far as permissions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    ReadItems,
    CreateItems,
    UpdateItems,
    DeleteItems,
    ManageMembers,
    ManageProject,
    ManageOrganization,
    DeleteOrganization,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::ReadItems,
        Action::CreateItems,
        Action::UpdateItems,
        Action::DeleteItems,
        Action::ManageMembers,
        Action::ManageProject,
        Action::ManageOrganization,
        Action::DeleteOrganization,
    ];
}

/// The permission matrix, written once: for each action, whether owner, admin, member, viewer
/// (in that order) may do it. The README renders this table; [`matrix_markdown`] prints it.
pub const MATRIX: [(Action, [bool; 4]); 8] = [
    (Action::ReadItems, [true, true, true, true]),
    (Action::CreateItems, [true, true, true, false]),
    (Action::UpdateItems, [true, true, true, false]),
    (Action::DeleteItems, [true, true, true, false]),
    (Action::ManageMembers, [true, true, false, false]),
    (Action::ManageProject, [true, true, false, false]),
    (Action::ManageOrganization, [true, true, false, false]),
    (Action::DeleteOrganization, [true, false, false, false]),
];

/// Whether `role` may do `action`, from [`MATRIX`].
pub fn allows(role: Role, action: Action) -> bool {
    let column = match role {
        Role::Owner => 0,
        Role::Admin => 1,
        Role::Member => 2,
        Role::Viewer => 3,
    };
    MATRIX.iter().find(|(a, _)| *a == action).is_some_and(|(_, row)| row[column])
}

/// The role a caller acts with in a project: their project role, raised to admin when they are
/// an owner or admin of the project's organization. Someone no longer in the organization has
/// no access at all, whatever project membership is left behind.
pub fn project_role(org_role: Option<Role>, project_role: Option<Role>) -> Option<Role> {
    let org_role = org_role?;
    let inherited = (org_role >= Role::Admin).then_some(Role::Admin);
    inherited.max(project_role)
}

/// The roles a project membership may hold: ownership is an organization's.
pub fn project_assignable(role: Role) -> bool {
    role != Role::Owner
}

/// Why a membership change is refused (each a 403, except where noted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("your role does not allow managing members")]
    CannotManage,
    #[error("you cannot grant a role above your own ({0})")]
    AboveOwnRole(&'static str),
    #[error("you cannot change a member whose role ({0}) is above your own")]
    TargetAboveOwnRole(&'static str),
}

/// Whether `actor` may change a member whose role is `current` (absent: not a member yet) to
/// `new` (absent: remove them). Anyone may leave (remove themselves); the last-owner rule is
/// enforced atomically by the store, not here.
pub fn may_change(actor: Role, is_self: bool, current: Option<Role>, new: Option<Role>) -> Result<(), GrantRefusal> {
    if is_self && new.is_none() {
        return Ok(());
    }
    if !allows(actor, Action::ManageMembers) {
        return Err(GrantRefusal::CannotManage);
    }
    if let Some(new) = new.filter(|n| *n > actor) {
        return Err(GrantRefusal::AboveOwnRole(new.as_str()));
    }
    if let Some(current) = current.filter(|c| *c > actor) {
        return Err(GrantRefusal::TargetAboveOwnRole(current.as_str()));
    }
    Ok(())
}

/// The matrix as a Markdown table (the README's copy is checked against it).
pub fn matrix_markdown() -> String {
    let mut out = String::from("| action | owner | admin | member | viewer |\n|---|---|---|---|---|\n");
    for (action, row) in MATRIX {
        let cells: Vec<&str> = row.iter().map(|ok| if *ok { "yes" } else { "no" }).collect();
        out.push_str(&format!("| {action:?} | {} |\n", cells.join(" | ")));
    }
    out
}

/// Type-level actions, so an extractor names the permission its route needs.
pub trait Permission: Send + Sync + 'static {
    const ACTION: Action;
}

macro_rules! permissions {
    ($($name:ident => $action:ident),* $(,)?) => {$(
        #[doc = concat!("The [`Action::", stringify!($action), "`] permission.")]
        pub struct $name;
        impl Permission for $name {
            const ACTION: Action = Action::$action;
        }
    )*};
}

permissions!(
    Read => ReadItems,
    Create => CreateItems,
    Update => UpdateItems,
    Delete => DeleteItems,
    ManageMembers => ManageMembers,
    ManageProject => ManageProject,
    ManageOrganization => ManageOrganization,
    DeleteOrganization => DeleteOrganization,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_row_and_seniority_only_adds_permissions() {
        for action in Action::ALL {
            assert_eq!(MATRIX.iter().filter(|(a, _)| *a == action).count(), 1, "{action:?}");
            for pair in [Role::Viewer, Role::Member, Role::Admin, Role::Owner].windows(2) {
                assert!(!allows(pair[0], action) || allows(pair[1], action), "{action:?}: {pair:?}");
            }
        }
        assert!(allows(Role::Viewer, Action::ReadItems));
        assert!(!allows(Role::Viewer, Action::CreateItems));
        assert!(allows(Role::Member, Action::DeleteItems));
        assert!(!allows(Role::Member, Action::ManageMembers));
        assert!(!allows(Role::Admin, Action::DeleteOrganization));
        assert!(allows(Role::Owner, Action::DeleteOrganization));
    }

    #[test]
    fn org_admins_act_as_admins_in_every_project_and_leaving_the_org_ends_access() {
        assert_eq!(project_role(Some(Role::Owner), None), Some(Role::Admin));
        assert_eq!(project_role(Some(Role::Admin), Some(Role::Viewer)), Some(Role::Admin));
        assert_eq!(project_role(Some(Role::Member), None), None);
        assert_eq!(project_role(Some(Role::Viewer), Some(Role::Member)), Some(Role::Member));
        assert_eq!(project_role(None, Some(Role::Admin)), None);
    }

    #[test]
    fn nobody_grants_above_their_own_role() {
        use Role::*;
        for actor in Role::ALL {
            for new in Role::ALL {
                let result = may_change(actor, false, None, Some(new));
                let expected = allows(actor, Action::ManageMembers) && new <= actor;
                assert_eq!(result.is_ok(), expected, "{actor:?} granting {new:?}");
            }
        }
        assert_eq!(may_change(Admin, false, Some(Owner), Some(Member)), Err(GrantRefusal::TargetAboveOwnRole("owner")));
        assert_eq!(may_change(Admin, false, Some(Owner), None), Err(GrantRefusal::TargetAboveOwnRole("owner")));
        assert!(may_change(Owner, false, Some(Owner), Some(Admin)).is_ok());
        assert!(may_change(Viewer, true, Some(Viewer), None).is_ok(), "anyone may leave");
        assert_eq!(may_change(Viewer, true, Some(Viewer), Some(Member)), Err(GrantRefusal::CannotManage));
    }

    #[test]
    fn roles_round_trip_and_projects_have_no_owners() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(!project_assignable(Role::Owner));
        assert!(Role::ALL.into_iter().filter(|r| *r != Role::Owner).all(project_assignable));
        assert!(matrix_markdown().contains("| DeleteOrganization | yes | no | no | no |"));
    }
}
