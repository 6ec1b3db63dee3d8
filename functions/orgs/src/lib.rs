//! Teams: organizations, their projects, and memberships with roles. The handlers are thin: the
//! access decision comes from `shared::teams`' extractors (404 for non-members, 403 for a role
//! the permission matrix refuses), and every read and write from `shared::teams::Teams`.

use std::sync::Arc;

use axum::{http::StatusCode, response::Response};
use serde::Deserialize;
use shared::{
    access::{DeleteOrganization, ManageMembers, ManageOrganization, ManageProject, Read, Role},
    cursor::Page,
    http::{json, json_versioned, no_content, with_location, IfMatch, ItemId, JsonBody, Paging, RequestBody},
    item::{nullable, Text},
    teams::{
        invitations::{INVITATION_LIFETIME_SECS, INVITATION_MIN_LIFETIME_SECS},
        AcceptedInvitation, CreatedInvitation, InOrg, InProject, Invitation, Invitee, Member, MemberId, MyOrganization,
        MyProject, Organization, Plan, Project, TeamsService,
    },
    ApiError, Area, ConfigError, Env, Identity, Platform,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub const NAME_MAX_CHARS: usize = 200;
type Name = Text<1, NAME_MAX_CHARS>;

/// The organizations function holds no state of its own: everything is in `shared::teams`.
pub struct Orgs;

impl Area for Orgs {
    fn build(platform: &Platform, env: &Env) -> Result<Self, ConfigError> {
        env.required("ORGANIZATIONS_TABLE")?;
        match &platform.teams {
            Some(_) => Ok(Self),
            None => Err(ConfigError::Missing("MEMBERSHIPS_TABLE and PROJECTS_TABLE".into())),
        }
    }

    fn routes() -> OpenApiRouter<Arc<Self>> {
        OpenApiRouter::new()
            .routes(routes!(create_org, list_orgs))
            .routes(routes!(get_org, update_org, delete_org))
            .routes(routes!(transfer))
            .routes(routes!(org_members))
            .routes(routes!(set_org_member, remove_org_member))
            .routes(routes!(create_project, list_projects))
            .routes(routes!(get_project, update_project, delete_project))
            .routes(routes!(project_members))
            .routes(routes!(set_project_member, remove_project_member))
            .routes(routes!(invite_to_org, org_invitations))
            .routes(routes!(revoke_org_invitation))
            .routes(routes!(invite_to_project, project_invitations))
            .routes(routes!(revoke_project_invitation))
            .routes(routes!(accept_invitation))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Design", "plan": "free"}))]
pub struct CreateOrganization {
    name: Name,
    /// Defaults to `free`.
    #[serde(default)]
    plan: Option<Plan>,
}

impl RequestBody for CreateOrganization {
    const MAX_BYTES: usize = 4 * 1024;
}

/// PATCH body: absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Design Studio"}))]
pub struct UpdateOrganization {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Name, required = false)]
    name: Option<Option<Name>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Plan, required = false)]
    plan: Option<Option<Plan>>,
}

impl RequestBody for UpdateOrganization {
    const MAX_BYTES: usize = 4 * 1024;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Spring campaign"}))]
pub struct ProjectBody {
    name: Name,
}

impl RequestBody for ProjectBody {
    const MAX_BYTES: usize = 4 * 1024;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "member"}))]
pub struct SetRole {
    role: Role,
}

impl RequestBody for SetRole {
    const MAX_BYTES: usize = 1024;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"new_owner": "user-42"}))]
pub struct Transfer {
    /// A member's user id: they become an owner, the caller an admin.
    #[schema(min_length = 1, max_length = 256)]
    new_owner: String,
}

impl RequestBody for Transfer {
    const MAX_BYTES: usize = 1024;
}

/// Invites someone by user id or by email address (give one of `user` and `email`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "dana@example.com", "role": "member"}))]
pub struct InvitationBody {
    /// The invitee's user id (their token's `sub`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    user: Option<String>,
    /// The invitee's email address: only a token carrying it, verified, can accept.
    #[serde(default)]
    #[schema(min_length = 3, max_length = 254)]
    email: Option<String>,
    /// At most the caller's own role (projects: admin, member or viewer).
    role: Role,
    /// Seconds until the invitation expires (default and longest: 7 days).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    expires_in: Option<u64>,
}

impl RequestBody for InvitationBody {
    const MAX_BYTES: usize = 2 * 1024;
}

const _: () = assert!(INVITATION_MIN_LIFETIME_SECS == 1 && INVITATION_LIFETIME_SECS == 604_800, "the schema's bounds");

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "AQGS8MRvjno8nB5vLRt6ThABkvDEb456PJweby0bek4RUNhY4JhezH9gQYqvDMWrWH9CwlcKiECVqejMrND2VFw"}))]
pub struct AcceptBody {
    /// The token of the invitation, as its creation answered it.
    #[schema(min_length = 1, max_length = 200)]
    token: String,
}

impl RequestBody for AcceptBody {
    const MAX_BYTES: usize = 1024;
}

/// A page of organizations.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrganizationPage {
    items: Vec<MyOrganization>,
    next_cursor: Option<String>,
}

/// A page of projects.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProjectPage {
    items: Vec<MyProject>,
    next_cursor: Option<String>,
}

/// A page of members.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MemberPage {
    items: Vec<Member>,
    next_cursor: Option<String>,
}

/// A page of pending invitations.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InvitationPage {
    items: Vec<Invitation>,
    next_cursor: Option<String>,
}

fn page<T: serde::Serialize>(page: Page<T>) -> Result<Response, ApiError> {
    json(StatusCode::OK, &page)
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/orgs", tag = "orgs", operation_id = "create_organization",
    request_body = CreateOrganization,
    responses((status = 201, description = "The new organization, with the caller's role", body = MyOrganization)))]
async fn create_org(
    TeamsService(teams): TeamsService,
    who: Identity,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> Result<Response, ApiError> {
    let org = teams.create_org(&who, body.name.into_string(), body.plan.unwrap_or_default()).await?;
    let (location, version) = (format!("/orgs/{}", org.id), org.version);
    let created = MyOrganization { organization: org, role: Role::Owner };
    with_location(json_versioned(StatusCode::CREATED, &created, version)?, &location)
}

/// The caller's organizations, with their role in each.
#[utoipa::path(get, path = "/orgs", tag = "orgs", operation_id = "list_organizations",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = OrganizationPage)))]
async fn list_orgs(
    TeamsService(teams): TeamsService,
    who: Identity,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.my_orgs(&who, &request).await?)
}

/// An organization, with the caller's role in it.
#[utoipa::path(get, path = "/orgs/{org_id}", tag = "orgs", operation_id = "get_organization",
    params(("org_id" = Uuid, Path, description = "The organization's id")),
    responses((status = 200, description = "The organization", body = MyOrganization)))]
async fn get_org(InOrg(org, ..): InOrg<Read>) -> Result<Response, ApiError> {
    let organization = org.organization()?;
    let version = organization.version;
    json_versioned(StatusCode::OK, &MyOrganization { organization, role: org.role() }, version)
}

/// Renames an organization or changes its plan (owners and admins).
#[utoipa::path(patch, path = "/orgs/{org_id}", tag = "orgs", operation_id = "update_organization",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this write expects (412 if stale), or `*`")),
    request_body = UpdateOrganization,
    responses((status = 200, description = "The updated organization", body = Organization)))]
async fn update_org(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageOrganization>,
    IfMatch(expect): IfMatch,
    JsonBody(body): JsonBody<UpdateOrganization>,
) -> Result<Response, ApiError> {
    let name = match body.name {
        Some(None) => return Err(ApiError::bad_request("name cannot be null")),
        Some(Some(name)) => Some(name.into_string()),
        None => None,
    };
    let plan = match body.plan {
        Some(None) => return Err(ApiError::bad_request("plan cannot be null")),
        other => other.flatten(),
    };
    if name.is_none() && plan.is_none() {
        return Err(ApiError::bad_request("nothing to update"));
    }
    let updated = teams.update_org(&org, expect, name, plan).await?;
    let version = updated.version;
    json_versioned(StatusCode::OK, &updated, version)
}

/// Deletes an organization with its projects and everything in them (owners only). Repeat it
/// to finish an interrupted deletion.
#[utoipa::path(delete, path = "/orgs/{org_id}", tag = "orgs", operation_id = "delete_organization",
    params(("org_id" = Uuid, Path, description = "The organization's id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_org(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<DeleteOrganization>,
) -> Result<Response, ApiError> {
    teams.delete_org(&org).await?;
    Ok(no_content())
}

/// Makes another member an owner and the caller (an owner) an admin, at once.
#[utoipa::path(post, path = "/orgs/{org_id}/transfer", tag = "orgs", operation_id = "transfer_organization",
    params(("org_id" = Uuid, Path, description = "The organization's id")),
    request_body = Transfer,
    responses((status = 204, description = "Transferred")))]
async fn transfer(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageOrganization>,
    JsonBody(body): JsonBody<Transfer>,
) -> Result<Response, ApiError> {
    teams.transfer(&org, &body.new_owner).await?;
    Ok(no_content())
}

/// The organization's members.
#[utoipa::path(get, path = "/orgs/{org_id}/members", tag = "orgs", operation_id = "list_organization_members",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = MemberPage)))]
async fn org_members(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<Read>,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.org_members(&org, &request).await?)
}

/// Adds a user to the organization or changes their role: never above the caller's own, and
/// the last owner cannot be demoted.
#[utoipa::path(put, path = "/orgs/{org_id}/members/{user_id}", tag = "orgs", operation_id = "set_organization_member",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("user_id" = String, Path, description = "The member's user id")),
    request_body = SetRole,
    responses((status = 204, description = "The member has this role")))]
async fn set_org_member(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<Read>,
    MemberId(user): MemberId,
    JsonBody(body): JsonBody<SetRole>,
) -> Result<Response, ApiError> {
    teams.set_org_member(&org, &user, Some(body.role)).await?;
    Ok(no_content())
}

/// Removes a member (or the caller leaves); the last owner cannot leave.
#[utoipa::path(delete, path = "/orgs/{org_id}/members/{user_id}", tag = "orgs", operation_id = "remove_organization_member",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("user_id" = String, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed")))]
async fn remove_org_member(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<Read>,
    MemberId(user): MemberId,
) -> Result<Response, ApiError> {
    teams.set_org_member(&org, &user, None).await?;
    Ok(no_content())
}

/// Creates a project in the organization (owners and admins).
#[utoipa::path(post, path = "/orgs/{org_id}/projects", tag = "orgs", operation_id = "create_project",
    params(("org_id" = Uuid, Path, description = "The organization's id")),
    request_body = ProjectBody,
    responses((status = 201, description = "The new project", body = Project)))]
async fn create_project(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageProject>,
    JsonBody(body): JsonBody<ProjectBody>,
) -> Result<Response, ApiError> {
    let project = teams.create_project(&org, body.name.into_string()).await?;
    let (location, version) = (format!("/projects/{}", project.id), project.version);
    with_location(json_versioned(StatusCode::CREATED, &project, version)?, &location)
}

/// The organization's projects the caller can see: all of them for owners and admins, the
/// ones they were added to for others.
#[utoipa::path(get, path = "/orgs/{org_id}/projects", tag = "orgs", operation_id = "list_projects",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = ProjectPage)))]
async fn list_projects(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<Read>,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.org_projects(&org, &request).await?)
}

/// A project, with the role the caller acts with in it.
#[utoipa::path(get, path = "/projects/{project_id}", tag = "projects", operation_id = "get_project",
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses((status = 200, description = "The project", body = MyProject)))]
async fn get_project(InProject(p, ..): InProject<Read>) -> Result<Response, ApiError> {
    let project = p.project()?;
    let version = project.version;
    json_versioned(StatusCode::OK, &MyProject { project, role: p.role() }, version)
}

/// Renames a project (its admins, and the organization's owners and admins).
#[utoipa::path(patch, path = "/projects/{project_id}", tag = "projects", operation_id = "update_project",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this write expects (412 if stale), or `*`")),
    request_body = ProjectBody,
    responses((status = 200, description = "The updated project", body = Project)))]
async fn update_project(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<ManageProject>,
    IfMatch(expect): IfMatch,
    JsonBody(body): JsonBody<ProjectBody>,
) -> Result<Response, ApiError> {
    let project = teams.update_project(&p, expect, body.name.into_string()).await?;
    let version = project.version;
    json_versioned(StatusCode::OK, &project, version)
}

/// Deletes a project and everything in it. Repeat it to finish an interrupted deletion.
#[utoipa::path(delete, path = "/projects/{project_id}", tag = "projects", operation_id = "delete_project",
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_project(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<ManageProject>,
) -> Result<Response, ApiError> {
    teams.delete_project(&p).await?;
    Ok(no_content())
}

/// The project's own members (the organization's owners and admins act as its admins too).
#[utoipa::path(get, path = "/projects/{project_id}/members", tag = "projects", operation_id = "list_project_members",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = MemberPage)))]
async fn project_members(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<Read>,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.project_members(&p, &request).await?)
}

/// Adds a member of the organization to the project or changes their project role (admin,
/// member or viewer; never above the caller's own).
#[utoipa::path(put, path = "/projects/{project_id}/members/{user_id}", tag = "projects", operation_id = "set_project_member",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("user_id" = String, Path, description = "The member's user id")),
    request_body = SetRole,
    responses((status = 204, description = "The member has this role")))]
async fn set_project_member(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<Read>,
    MemberId(user): MemberId,
    JsonBody(body): JsonBody<SetRole>,
) -> Result<Response, ApiError> {
    teams.set_project_member(&p, &user, Some(body.role)).await?;
    Ok(no_content())
}

/// Removes a member from the project (or the caller leaves it).
#[utoipa::path(delete, path = "/projects/{project_id}/members/{user_id}", tag = "projects", operation_id = "remove_project_member",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("user_id" = String, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed")))]
async fn remove_project_member(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<Read>,
    MemberId(user): MemberId,
) -> Result<Response, ApiError> {
    teams.set_project_member(&p, &user, None).await?;
    Ok(no_content())
}

fn invitee(body: &InvitationBody) -> Result<Invitee, ApiError> {
    Invitee::from_fields(body.user.clone(), body.email.clone())
}

/// Invites someone to the organization with a role (at most the caller's own). The answer is
/// the only place the invitation's token is ever shown.
#[utoipa::path(post, path = "/orgs/{org_id}/invitations", tag = "orgs", operation_id = "invite_to_organization",
    params(("org_id" = Uuid, Path, description = "The organization's id")),
    request_body = InvitationBody,
    responses((status = 201, description = "The invitation and its token (shown only here)", body = CreatedInvitation)))]
async fn invite_to_org(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageMembers>,
    JsonBody(body): JsonBody<InvitationBody>,
) -> Result<Response, ApiError> {
    let created = teams.invite_to_org(&org, invitee(&body)?, body.role, body.expires_in).await?;
    json(StatusCode::CREATED, &created)
}

/// The organization's pending invitations (owners and admins).
#[utoipa::path(get, path = "/orgs/{org_id}/invitations", tag = "orgs", operation_id = "list_organization_invitations",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = InvitationPage)))]
async fn org_invitations(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageMembers>,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.org_invitations(&org, &request).await?)
}

/// Revokes a pending invitation (repeating it is harmless).
#[utoipa::path(delete, path = "/orgs/{org_id}/invitations/{id}", tag = "orgs", operation_id = "revoke_organization_invitation",
    params(("org_id" = Uuid, Path, description = "The organization's id"),
        ("id" = Uuid, Path, description = "The invitation's id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_org_invitation(
    TeamsService(teams): TeamsService,
    InOrg(org, ..): InOrg<ManageMembers>,
    id: ItemId<Invitation>,
) -> Result<Response, ApiError> {
    teams.revoke_org_invitation(&org, &id).await?;
    Ok(no_content())
}

/// Invites a member of the organization to the project with a role (admin, member or viewer;
/// at most the caller's own). The answer is the only place the token is ever shown.
#[utoipa::path(post, path = "/projects/{project_id}/invitations", tag = "projects", operation_id = "invite_to_project",
    params(("project_id" = Uuid, Path, description = "The project's id")),
    request_body = InvitationBody,
    responses((status = 201, description = "The invitation and its token (shown only here)", body = CreatedInvitation)))]
async fn invite_to_project(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<ManageMembers>,
    JsonBody(body): JsonBody<InvitationBody>,
) -> Result<Response, ApiError> {
    let created = teams.invite_to_project(&p, invitee(&body)?, body.role, body.expires_in).await?;
    json(StatusCode::CREATED, &created)
}

/// The project's pending invitations (whoever may manage its members).
#[utoipa::path(get, path = "/projects/{project_id}/invitations", tag = "projects", operation_id = "list_project_invitations",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (1-100, default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = InvitationPage)))]
async fn project_invitations(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<ManageMembers>,
    Paging(request): Paging,
) -> Result<Response, ApiError> {
    page(teams.project_invitations(&p, &request).await?)
}

/// Revokes a pending project invitation (repeating it is harmless).
#[utoipa::path(delete, path = "/projects/{project_id}/invitations/{id}", tag = "projects", operation_id = "revoke_project_invitation",
    params(("project_id" = Uuid, Path, description = "The project's id"),
        ("id" = Uuid, Path, description = "The invitation's id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_project_invitation(
    TeamsService(teams): TeamsService,
    InProject(p, ..): InProject<ManageMembers>,
    id: ItemId<Invitation>,
) -> Result<Response, ApiError> {
    teams.revoke_project_invitation(&p, &id).await?;
    Ok(no_content())
}

/// Accepts an invitation as the signed-in caller, who becomes a member with its role. An
/// invitation by email needs a token whose verified email is that address.
#[utoipa::path(post, path = "/invitations/accept", tag = "orgs", operation_id = "accept_invitation",
    request_body = AcceptBody,
    responses(
        (status = 200, description = "The caller is now a member with this role", body = AcceptedInvitation),
        (status = 403, description = "The invitation is for another user or email address (or the token's email is not verified)"),
        (status = 404, description = "No such invitation (or not this secret)"),
        (status = 409, description = "Already accepted, already a member, or (a project invitation) not a member of its organization"),
        (status = 410, description = "Expired or revoked, or its organization or project was deleted"),
    ))]
async fn accept_invitation(
    TeamsService(teams): TeamsService,
    who: Identity,
    JsonBody(body): JsonBody<AcceptBody>,
) -> Result<Response, ApiError> {
    let accepted = teams.accept_invitation(&who, &body.token).await?;
    json(StatusCode::OK, &accepted)
}
