//! Invitations to an organization or a project: made by whoever may manage its members (never
//! for a role above their own), accepted by the invitee while signed in.
//!
//! The invitee receives a token: base64url of the scope's kind and id, the invitation's id and a
//! 32-byte random secret. Only the secret's SHA-256 is stored, compared in constant time; the
//! token is shown once, in the answer that creates the invitation. Accepting is one transaction
//! that marks the invitation accepted (if still pending, unexpired, with that hash) and puts the
//! membership (if the invitee is not a member yet), so two accepts make one membership.

use aws_lc_rs::{constant_time, digest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use super::*;

/// The default and longest lifetime of an invitation (7 days), and the shortest (1 second).
pub const INVITATION_LIFETIME_SECS: u64 = 7 * 24 * 3600;
pub const INVITATION_MIN_LIFETIME_SECS: u64 = 1;
/// Used, revoked and expired invitations stay this long after their expiry (answering 409/410
/// rather than 404), then DynamoDB's TTL removes them.
const PURGE_AFTER_SECS: u64 = 30 * 24 * 3600;
const SECRET_BYTES: usize = 32;
/// kind (1) + scope id (16) + invitation id (16) + secret.
const TOKEN_BYTES: usize = 1 + 16 + 16 + SECRET_BYTES;
const ORG_KIND: u8 = 1;
const PROJECT_KIND: u8 = 2;

const STATUS: &str = "status";
const PENDING: &str = "pending";
const ACCEPTED: &str = "accepted";
const REVOKED: &str = "revoked";
const SECRET_HASH: &str = "secret_hash";
const INVITEE_USER: &str = "invitee_user";
const INVITEE_EMAIL: &str = "invitee_email";
const INVITED_BY: &str = "invited_by";
const PROJECT_ID: &str = "project_id";
/// The DynamoDB TTL attribute (a number of seconds since the epoch).
const PURGE_AT: &str = "purge_at";

/// Who an invitation is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invitee {
    /// A user id, as their token's `sub`.
    User(String),
    /// An email address (normalized): the accepting token's verified email must match.
    Email(String),
}

impl Invitee {
    /// Exactly one of a user id or an email address, each checked.
    pub fn from_fields(user: Option<String>, email: Option<String>) -> Result<Self, ApiError> {
        match (user, email) {
            (Some(user), None) if is_user_id(&user) && !user.starts_with(crate::store::PROJECT_PARTITION_PREFIX) => {
                Ok(Self::User(user))
            }
            (Some(_), None) => Err(ApiError::bad_request("user must be a user id (1-256 characters)")),
            (None, Some(email)) => crate::auth::normalize_email(&email)
                .map(Self::Email)
                .ok_or_else(|| ApiError::bad_request("email must be an email address (local@domain, at most 254)")),
            _ => Err(ApiError::bad_request("give either user (a user id) or email, not both")),
        }
    }
}

/// An invitation as the API lists it: never its secret nor the secret's hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    /// Set for a project invitation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The invitee's user id, for an invitation by user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The invitee's email address (lowercased), for an invitation by email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
    /// Who made it (a user id).
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
}

impl crate::http::Noun for Invitation {
    const NOUN: &'static str = "invitation";
}

/// A new invitation with its token: the only time the token is ever shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Give this to the invitee, who accepts with `POST /invitations/accept`.
    pub token: String,
}

/// What accepting gave the caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedInvitation {
    pub org_id: String,
    /// Set when the invitation was to a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub role: Role,
}

/// Where an invitation leads: the scope of its membership.
struct Target<'a> {
    caller: &'a Identity,
    /// The caller's role there (what they may invite to).
    role: Role,
    org_id: &'a str,
    project_id: Option<&'a str>,
}

impl Target<'_> {
    fn scope(&self) -> String {
        match self.project_id {
            Some(project) => project_partition(project),
            None => org_scope(self.org_id),
        }
    }
}

/// What a token carries.
struct Token {
    scope: String,
    id: String,
    secret: Vec<u8>,
}

fn uuid_bytes(id: &str) -> Result<[u8; 16], ApiError> {
    uuid::Uuid::try_parse(id).map(|u| *u.as_bytes()).map_err(internal)
}

fn encode_token(kind: u8, scope_id: &str, id: &str, secret: &[u8]) -> Result<String, ApiError> {
    let mut bytes = Vec::with_capacity(TOKEN_BYTES);
    bytes.push(kind);
    bytes.extend(uuid_bytes(scope_id)?);
    bytes.extend(uuid_bytes(id)?);
    bytes.extend(secret);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn decode_token(token: &str) -> Result<Token, ApiError> {
    let malformed = || ApiError::bad_request("token is malformed: pass the invitation's token unchanged");
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| malformed())?;
    if bytes.len() != TOKEN_BYTES {
        return Err(malformed());
    }
    let uuid = |range: std::ops::Range<usize>| {
        uuid::Uuid::from_slice(&bytes[range]).map(|u| u.hyphenated().to_string()).map_err(|_| malformed())
    };
    let scope_id = uuid(1..17)?;
    let scope = match bytes[0] {
        ORG_KIND => org_scope(&scope_id),
        PROJECT_KIND => project_partition(&scope_id),
        _ => return Err(malformed()),
    };
    Ok(Token { scope, id: uuid(17..33)?, secret: bytes[33..].to_vec() })
}

fn secret_hash(secret: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret).as_ref().to_vec()
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn invitation_view(item: &Item) -> Result<Invitation, ApiError> {
    let field = |name: &str| text(item, name).map(str::to_owned);
    Ok(Invitation {
        id: field(attr::ID).ok_or_else(|| internal("invitation without id"))?,
        org_id: field(ORG_ID).unwrap_or_default(),
        project_id: field(PROJECT_ID),
        user: field(INVITEE_USER),
        email: field(INVITEE_EMAIL),
        role: role_of(Some(item)).ok_or_else(|| internal("invitation without role"))?,
        invited_by: field(INVITED_BY).unwrap_or_default(),
        created_at: field(attr::CREATED_AT).unwrap_or_default(),
        expires_at: Timestamp::from_epoch_seconds(number(item, attr::EXPIRES_AT)).into_string(),
    })
}

/// Why a stored invitation can no longer be accepted, if it cannot.
fn unusable(item: &Item, now: u64) -> Option<ApiError> {
    match text(item, STATUS) {
        Some(ACCEPTED) => Some(ApiError::Conflict("this invitation was already accepted".into())),
        Some(REVOKED) => Some(ApiError::Gone("this invitation was revoked".into())),
        _ if number(item, attr::EXPIRES_AT) <= now => {
            Some(ApiError::Gone("this invitation expired: ask for a new one".into()))
        }
        _ => None,
    }
}

/// Whether the caller is the invitation's invitee.
fn check_invitee(item: &Item, who: &Identity) -> Result<(), ApiError> {
    if let Some(user) = text(item, INVITEE_USER) {
        if user != who.user_id() {
            return Err(ApiError::Forbidden("this invitation is for another user".into()));
        }
    }
    if let Some(email) = text(item, INVITEE_EMAIL) {
        if who.verified_email() != Some(email) {
            return Err(ApiError::Forbidden(if who.has_unverified_email() {
                "this invitation is for an email address, and your token's email is not verified".into()
            } else {
                "this invitation is for another email address: sign in with that address (verified)".into()
            }));
        }
    }
    Ok(())
}

impl Teams {
    pub(super) fn invitations(&self) -> Result<&str, ApiError> {
        self.invitations.as_deref().ok_or_else(|| internal("INVITATIONS_TABLE is not set"))
    }

    fn invitation_key(scope: &str, id: &str) -> Item {
        Item::from([(SCOPE.to_owned(), s(scope)), (attr::ID.to_owned(), s(id))])
    }

    /// The condition that the organization or project exists and is not being deleted.
    fn scope_alive(&self, org_id: &str, project_id: Option<&str>) -> Result<TransactWriteItem, ApiError> {
        let (table, id) = match project_id {
            Some(project) => (self.projects.as_str(), project),
            None => (self.organizations()?, org_id),
        };
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(Self::id_key(id)))
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#deleting)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#deleting", attr::DELETING_AT)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// A new owner counted on the organization (the same bookkeeping as a direct grant), if it
    /// exists and is not being deleted.
    fn owner_joins(&self, org_id: &str) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(self.organizations()?)
            .set_key(Some(Self::id_key(org_id)))
            .update_expression("ADD #owners :one")
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#deleting)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#deleting", attr::DELETING_AT)
            .expression_attribute_names("#owners", OWNER_COUNT)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn invitation(&self, scope: &str, id: &str) -> Result<Option<Item>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(self.invitations()?)
            .set_key(Some(Self::invitation_key(scope, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(out.item)
    }

    async fn invite(
        &self,
        target: Target<'_>,
        invitee: Invitee,
        role: Role,
        lifetime_secs: Option<u64>,
    ) -> Result<CreatedInvitation, ApiError> {
        if target.project_id.is_some() && !access::project_assignable(role) {
            return Err(ApiError::bad_request("a project role is admin, member or viewer"));
        }
        access::may_change(target.role, false, None, Some(role)).map_err(|e| ApiError::Forbidden(e.to_string()))?;
        let lifetime = lifetime_secs.unwrap_or(INVITATION_LIFETIME_SECS);
        if !(INVITATION_MIN_LIFETIME_SECS..=INVITATION_LIFETIME_SECS).contains(&lifetime) {
            return Err(ApiError::bad_request(format!(
                "expires_in is {INVITATION_MIN_LIFETIME_SECS} to {INVITATION_LIFETIME_SECS} seconds"
            )));
        }
        let mut secret = [0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| internal("no randomness for an invitation secret"))?;
        let id = item::new_id();
        let scope = target.scope();
        let (kind, scope_id) = match target.project_id {
            Some(project) => (PROJECT_KIND, project),
            None => (ORG_KIND, target.org_id),
        };
        let token = encode_token(kind, scope_id, &id, &secret)?;
        let expires_at = now_secs() + lifetime;
        let mut stored = Item::from([
            (SCOPE.to_owned(), s(scope.as_str())),
            (attr::ID.to_owned(), s(id.as_str())),
            (ORG_ID.to_owned(), s(target.org_id)),
            (ROLE.to_owned(), s(role.as_str())),
            (STATUS.to_owned(), s(PENDING)),
            (SECRET_HASH.to_owned(), AttributeValue::B(secret_hash(&secret).into())),
            (INVITED_BY.to_owned(), s(target.caller.user_id())),
            (attr::CREATED_AT.to_owned(), s(Timestamp::now().into_string())),
            (attr::EXPIRES_AT.to_owned(), n(expires_at)),
            (PURGE_AT.to_owned(), n(expires_at + PURGE_AFTER_SECS)),
        ]);
        if let Some(project) = target.project_id {
            stored.insert(PROJECT_ID.to_owned(), s(project));
        }
        match &invitee {
            Invitee::User(user) => stored.insert(INVITEE_USER.to_owned(), s(user.as_str())),
            Invitee::Email(email) => stored.insert(INVITEE_EMAIL.to_owned(), s(email.as_str())),
        };
        let invitation = invitation_view(&stored)?;
        let put = Put::builder()
            .table_name(self.invitations()?)
            .set_item(Some(stored))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .build()
            .map_err(internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            // None is made once a deletion began: its sweep sees every invitation there is.
            self.scope_alive(target.org_id, target.project_id)?,
            self.guard(target.caller)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(CreatedInvitation { invitation, token }),
            Err(failed) if failed.get(2) == Some(&true) => Err(ApiError::AccountDeleted),
            Err(failed) if failed.get(1) == Some(&true) => {
                Err(ApiError::NotFound(if target.project_id.is_some() { "project" } else { "organization" }))
            }
            Err(_) => Err(ApiError::Conflict("a concurrent request changed this invitation, retry".into())),
        }
    }

    /// Invites someone to the organization with `role` (at most the caller's own).
    pub async fn invite_to_org(
        &self,
        org: &OrgAccess,
        invitee: Invitee,
        role: Role,
        lifetime_secs: Option<u64>,
    ) -> Result<CreatedInvitation, ApiError> {
        let target = Target { caller: &org.caller, role: org.role, org_id: &org.org_id, project_id: None };
        self.invite(target, invitee, role, lifetime_secs).await
    }

    /// Invites a member of the project's organization to the project with `role` (admin,
    /// member or viewer; at most the caller's own).
    pub async fn invite_to_project(
        &self,
        p: &ProjectAccess,
        invitee: Invitee,
        role: Role,
        lifetime_secs: Option<u64>,
    ) -> Result<CreatedInvitation, ApiError> {
        let target = Target { caller: &p.caller, role: p.role, org_id: &p.org_id, project_id: Some(&p.project_id) };
        self.invite(target, invitee, role, lifetime_secs).await
    }

    /// One page of a scope's pending invitations: one Query on the base table (accepted,
    /// revoked and expired ones are filtered out).
    async fn pending_invitations(
        &self,
        who: &Identity,
        scope: &str,
        page: &PageRequest,
    ) -> Result<Page<Invitation>, ApiError> {
        let list = format!("invitations@{scope}");
        let start = match &page.cursor {
            None => None,
            Some(c) => {
                let key = self.cursors.decode(&list, who, c)?;
                let id = key.get(attr::ID).ok_or_else(|| ApiError::bad_request("cursor is invalid"))?;
                Some(Self::invitation_key(scope, id))
            }
        };
        let out = self
            .client
            .query()
            .table_name(self.invitations()?)
            .key_condition_expression("#scope = :scope")
            .filter_expression("#status = :pending AND #expires > :now")
            .expression_attribute_names("#scope", SCOPE)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(":scope", s(scope))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":now", n(now_secs()))
            .limit(page.limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_error)?;
        let next_cursor = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| text(k, attr::ID))
            .map(|id| self.cursors.encode(&list, who, &CursorKey::from([(attr::ID.to_owned(), id.to_owned())])));
        let items = out.items.unwrap_or_default().iter().map(invitation_view).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    pub async fn org_invitations(&self, org: &OrgAccess, page: &PageRequest) -> Result<Page<Invitation>, ApiError> {
        self.pending_invitations(&org.caller, &org_scope(&org.org_id), page).await
    }

    pub async fn project_invitations(
        &self,
        p: &ProjectAccess,
        page: &PageRequest,
    ) -> Result<Page<Invitation>, ApiError> {
        self.pending_invitations(&p.caller, &project_partition(&p.project_id), page).await
    }

    /// Revokes a pending invitation (repeating it is harmless). Like changing a member, never
    /// one for a role above the caller's own.
    async fn revoke(&self, target: Target<'_>, id: &str) -> Result<(), ApiError> {
        let id = item::parse_id(id, "invitation")?;
        let scope = target.scope();
        let stored = self.invitation(&scope, &id).await?.ok_or(ApiError::NotFound("invitation"))?;
        access::may_change(target.role, false, role_of(Some(&stored)), None)
            .map_err(|e| ApiError::Forbidden(e.to_string()))?;
        match text(&stored, STATUS) {
            Some(REVOKED) => return Ok(()),
            Some(ACCEPTED) => {
                return Err(ApiError::Conflict(
                    "this invitation was already accepted: remove the member instead".into(),
                ))
            }
            _ => {}
        }
        let result = self
            .client
            .update_item()
            .table_name(self.invitations()?)
            .set_key(Some(Self::invitation_key(&scope, &id)))
            .update_expression("SET #status = :revoked, #revoked_at = :now, #revoked_by = :by")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#revoked_at", "revoked_at")
            .expression_attribute_names("#revoked_by", "revoked_by")
            .expression_attribute_values(":revoked", s(REVOKED))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":now", s(Timestamp::now().into_string()))
            .expression_attribute_values(":by", s(target.caller.user_id()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(ApiError::Conflict("the invitation changed meanwhile, retry".into()))
            }
            Err(e) => Err(dynamo_error(e)),
        }
    }

    pub async fn revoke_org_invitation(&self, org: &OrgAccess, id: &str) -> Result<(), ApiError> {
        self.revoke(Target { caller: &org.caller, role: org.role, org_id: &org.org_id, project_id: None }, id).await
    }

    pub async fn revoke_project_invitation(&self, p: &ProjectAccess, id: &str) -> Result<(), ApiError> {
        let target = Target { caller: &p.caller, role: p.role, org_id: &p.org_id, project_id: Some(&p.project_id) };
        self.revoke(target, id).await
    }

    /// Accepts an invitation as the caller: one GetItem (to tell the refusals apart), then one
    /// transaction that uses the invitation up and makes the membership.
    pub async fn accept_invitation(&self, who: &Identity, token: &str) -> Result<AcceptedInvitation, ApiError> {
        who.require_signed_in(super::ORGANIZATIONS_NEED_A_PERSON)?;
        let token = decode_token(token)?;
        let stored = self.invitation(&token.scope, &token.id).await?.ok_or(ApiError::NotFound("invitation"))?;
        let hash = secret_hash(&token.secret);
        let stored_hash = match stored.get(SECRET_HASH) {
            Some(AttributeValue::B(b)) => b.as_ref(),
            _ => &[][..],
        };
        // A wrong secret names no invitation: it tells nothing of the one with that id.
        if constant_time::verify_slices_are_equal(&hash, stored_hash).is_err() {
            return Err(ApiError::NotFound("invitation"));
        }
        if let Some(refusal) = unusable(&stored, now_secs()) {
            return Err(refusal);
        }
        check_invitee(&stored, who)?;
        let role = role_of(Some(&stored)).ok_or_else(|| internal("invitation without role"))?;
        let org_id = text(&stored, ORG_ID).ok_or_else(|| internal("invitation without org_id"))?.to_owned();
        let project_id = text(&stored, PROJECT_ID).map(str::to_owned);
        let now = Timestamp::now().into_string();
        let use_up = Update::builder()
            .table_name(self.invitations()?)
            .set_key(Some(Self::invitation_key(&token.scope, &token.id)))
            .update_expression("SET #status = :accepted, #accepted_at = :at, #accepted_by = :by")
            .condition_expression("#status = :pending AND #expires > :now AND #hash = :hash")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_names("#hash", SECRET_HASH)
            .expression_attribute_names("#accepted_at", "accepted_at")
            .expression_attribute_names("#accepted_by", "accepted_by")
            .expression_attribute_values(":accepted", s(ACCEPTED))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":hash", AttributeValue::B(hash.into()))
            .expression_attribute_values(":at", s(now.as_str()))
            .expression_attribute_values(":by", s(who.user_id()))
            .build()
            .map_err(internal)?;
        let join = Put::builder()
            .table_name(&self.memberships)
            .set_item(Some(Self::membership_item(&token.scope, who.user_id(), role, &org_id, &now)))
            .condition_expression("attribute_not_exists(#scope)")
            .expression_attribute_names("#scope", SCOPE)
            .build()
            .map_err(internal)?;
        // One operation per item in a transaction: an owner's count update is also the check
        // that the organization is still there.
        let alive = match &project_id {
            None if role == Role::Owner => self.owner_joins(&org_id)?,
            _ => self.scope_alive(&org_id, project_id.as_deref())?,
        };
        let mut items = vec![
            TransactWriteItem::builder().update(use_up).build(),
            TransactWriteItem::builder().put(join).build(),
            self.guard(who)?,
            alive,
        ];
        if project_id.is_some() {
            // Only members of the organization join its projects (as with a direct grant).
            let in_org = ConditionCheck::builder()
                .table_name(&self.memberships)
                .set_key(Some(Self::membership_key(&org_scope(&org_id), who.user_id())))
                .condition_expression("attribute_exists(#scope)")
                .expression_attribute_names("#scope", SCOPE)
                .build()
                .map_err(internal)?;
            items.push(TransactWriteItem::builder().condition_check(in_org).build());
        }
        let noun = if project_id.is_some() { "project" } else { "organization" };
        match self.transact(items).await? {
            Ok(()) => Ok(AcceptedInvitation { org_id, project_id, role }),
            Err(failed) if failed.get(2) == Some(&true) => Err(ApiError::AccountDeleted),
            Err(failed) if failed.get(3) == Some(&true) => {
                Err(ApiError::Gone(format!("the {noun} of this invitation was deleted")))
            }
            Err(failed) if failed.get(1) == Some(&true) && failed.first() != Some(&true) => {
                Err(ApiError::Conflict(format!("you are already a member of this {noun}")))
            }
            Err(failed) if project_id.is_some() && failed.get(4) == Some(&true) => Err(ApiError::Conflict(
                "join the project's organization first: project invitations are for its members".into(),
            )),
            Err(_) => {
                // The invitation changed since it was read (a concurrent accept or revocation,
                // or it just expired): say which.
                let now = self.invitation(&token.scope, &token.id).await?;
                Err(now.as_ref().and_then(|i| unusable(i, now_secs())).unwrap_or_else(|| {
                    ApiError::Conflict("a concurrent request is using this invitation, retry".into())
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";
    const ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e11";

    #[test]
    fn a_token_carries_scope_id_and_secret_and_nothing_else_decodes() {
        let secret = [7u8; SECRET_BYTES];
        let token = encode_token(PROJECT_KIND, ORG, ID, &secret).unwrap();
        let decoded = decode_token(&token).unwrap();
        assert_eq!(decoded.scope, format!("project#{ORG}"));
        assert_eq!(decoded.id, ID);
        assert_eq!(decoded.secret, secret);
        let org = decode_token(&encode_token(ORG_KIND, ORG, ID, &secret).unwrap()).unwrap();
        assert_eq!(org.scope, format!("org#{ORG}"));
        for bad in [
            String::new(),
            "not base64!".into(),
            token[..token.len() - 2].to_owned(),
            format!("{token}AA"),
            encode_token(3, ORG, ID, &secret).unwrap(),
        ] {
            assert!(matches!(decode_token(&bad), Err(ApiError::BadRequest(_))), "{bad:?}");
        }
        assert_ne!(secret_hash(&secret), secret_hash(&[8u8; SECRET_BYTES]));
        assert_eq!(secret_hash(&secret).len(), 32);
    }

    #[test]
    fn an_invitee_is_a_user_id_or_an_email_address() {
        assert_eq!(Invitee::from_fields(Some("bob".into()), None), Ok(Invitee::User("bob".into())));
        assert_eq!(
            Invitee::from_fields(None, Some(" Bob@Example.com ".into())),
            Ok(Invitee::Email("bob@example.com".into()))
        );
        for (user, email) in [
            (None, None),
            (Some("bob".to_owned()), Some("bob@example.com".to_owned())),
            (Some(String::new()), None),
            (Some(format!("{}x", crate::store::PROJECT_PARTITION_PREFIX)), None),
            (None, Some("bob".to_owned())),
        ] {
            assert!(matches!(Invitee::from_fields(user, email), Err(ApiError::BadRequest(_))));
        }
    }
}
