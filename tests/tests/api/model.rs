//! Property test: random interleavings of several users' operations across every area, run
//! against the real handlers on DynamoDB Local and against an in-memory model of what each
//! user owns. Every answer must match the model (an attempt on another user's item is a 404
//! that changes nothing), and at the end every user's lists hold exactly the model's items.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use integration_tests::{Harness, Reply, User};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::access::Role;

const USERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    CreateCanvas(usize),
    RenameCanvas(usize, usize),
    DeleteCanvas(usize, usize),
    CreateSession(usize),
    Append(usize, usize),
    DeleteSession(usize, usize),
    CreateWorkflow(usize),
    StartRun(usize, usize),
    PauseRun(usize, usize),
    ReadCanvas(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS * 2;
    let pick = 0..64usize;
    prop_oneof![
        3 => user.clone().prop_map(Op::CreateCanvas),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::RenameCanvas(u, p)),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::DeleteCanvas(u, p)),
        2 => user.clone().prop_map(Op::CreateSession),
        3 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::Append(u, p)),
        1 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::DeleteSession(u, p)),
        2 => user.clone().prop_map(Op::CreateWorkflow),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::StartRun(u, p)),
        2 => (user.clone(), pick.clone()).prop_map(|(u, p)| Op::PauseRun(u, p)),
        2 => (user, pick).prop_map(|(u, p)| Op::ReadCanvas(u, p)),
    ]
}

/// What every user owns, by the model.
#[derive(Default)]
struct Model {
    /// Canvas id → (owner, name).
    canvases: BTreeMap<String, (usize, String)>,
    /// Session id → (owner, messages in order).
    sessions: BTreeMap<String, (usize, Vec<String>)>,
    /// Workflow id → (owner, run status).
    workflows: BTreeMap<String, (usize, String)>,
}

/// The `pick`-th key of a map (of any owner: picking another user's item is the point).
fn nth<V>(map: &BTreeMap<String, V>, pick: usize) -> Option<String> {
    (!map.is_empty()).then(|| map.keys().nth(pick % map.len()).unwrap().clone())
}

/// The user acting with a personal API key of their own (same id, the key as the bearer).
async fn personal_key(h: &Harness, user: &User) -> User {
    let body = json!({"name": "model", "scope": {"kind": "personal"}});
    let r = h.call(Some(user), "POST", "/auth/api-keys", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    User { id: user.id.clone(), token: r.json()["key"].as_str().unwrap().to_owned() }
}

static OPERATIONS: AtomicUsize = AtomicUsize::new(0);

/// `users[u]` acts for user `u % USERS`: the first USERS with their tokens, the others with
/// their personal API keys, which must reach exactly what their creator's token reaches.
async fn run(h: &Harness, users: &[User], ops: Vec<Op>) {
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::CreateCanvas(u) => {
                let name = format!("canvas {step}");
                let r = h.call(Some(&users[u]), "POST", "/canvases", Some(json!({"name": name}))).await;
                assert_eq!(r.status, 201);
                m.canvases.insert(r.json()["id"].as_str().unwrap().to_owned(), (u % USERS, name));
            }
            Op::RenameCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let name = format!("renamed {step}");
                let r = h.call(Some(&users[u]), "PATCH", &format!("/canvases/{id}"), Some(json!({"name": name}))).await;
                let entry = m.canvases.get_mut(&id).unwrap();
                if entry.0 == u % USERS {
                    assert_eq!(r.status, 200);
                    entry.1 = name;
                } else {
                    assert_eq!(r.status, 404, "user {u} renamed user {}'s canvas", entry.0);
                }
            }
            Op::DeleteCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let r = h.call(Some(&users[u]), "DELETE", &format!("/canvases/{id}"), None).await;
                if m.canvases[&id].0 == u % USERS {
                    assert_eq!(r.status, 204);
                    m.canvases.remove(&id);
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::ReadCanvas(u, p) => {
                let Some(id) = nth(&m.canvases, p) else { continue };
                let r = h.call(Some(&users[u]), "GET", &format!("/canvases/{id}"), None).await;
                let (owner, name) = &m.canvases[&id];
                if *owner == u % USERS {
                    assert_eq!(r.json()["name"], json!(name));
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::CreateSession(u) => {
                let r = h.call(Some(&users[u]), "POST", "/sessions", Some(json!({}))).await;
                assert_eq!(r.status, 201);
                m.sessions.insert(r.json()["id"].as_str().unwrap().to_owned(), (u % USERS, Vec::new()));
            }
            Op::Append(u, p) => {
                let Some(id) = nth(&m.sessions, p) else { continue };
                let text = format!("message {step}");
                let body = json!({"role": "user", "content": text});
                let r = h.call(Some(&users[u]), "POST", &format!("/sessions/{id}/messages"), Some(body)).await;
                let entry = m.sessions.get_mut(&id).unwrap();
                if entry.0 == u % USERS {
                    assert_eq!(r.status, 201);
                    entry.1.push(text);
                } else {
                    assert_eq!(r.status, 404, "user {u} wrote into user {}'s session", entry.0);
                }
            }
            Op::DeleteSession(u, p) => {
                let Some(id) = nth(&m.sessions, p) else { continue };
                let r = h.call(Some(&users[u]), "DELETE", &format!("/sessions/{id}"), None).await;
                if m.sessions[&id].0 == u % USERS {
                    assert_eq!(r.status, 204);
                    m.sessions.remove(&id);
                } else {
                    assert_eq!(r.status, 404);
                }
            }
            Op::CreateWorkflow(u) => {
                let body = json!({"name": format!("wf {step}"), "graph": {"1": {}}});
                let r = h.call(Some(&users[u]), "POST", "/workflows", Some(body)).await;
                assert_eq!(r.status, 201);
                m.workflows.insert(r.json()["id"].as_str().unwrap().to_owned(), (u % USERS, "idle".into()));
            }
            Op::StartRun(u, p) | Op::PauseRun(u, p) => {
                let Some(id) = nth(&m.workflows, p) else { continue };
                let (action, from, to) = if matches!(op, Op::StartRun(..)) {
                    ("start", "idle", "running")
                } else {
                    ("pause", "running", "paused")
                };
                let r = h.call(Some(&users[u]), "POST", &format!("/workflows/{id}/run/{action}"), None).await;
                let entry = m.workflows.get_mut(&id).unwrap();
                match (entry.0 == u % USERS, entry.1 == from) {
                    (false, _) => assert_eq!(r.status, 404),
                    (true, false) => assert_eq!(r.status, 409, "{action} from {}", entry.1),
                    (true, true) => {
                        assert_eq!(r.status, 200);
                        entry.1 = to.into();
                    }
                }
            }
        }
    }
    for (u, user) in users.iter().enumerate().take(USERS) {
        let names = |items: Vec<Value>| -> BTreeMap<String, Value> {
            items.into_iter().map(|i| (i["id"].as_str().unwrap().to_owned(), i)).collect()
        };
        let canvases = names(h.list_all(user, "/canvases", 7).await.0);
        let expected: BTreeMap<&String, &String> =
            m.canvases.iter().filter(|(_, (o, _))| *o == u).map(|(id, (_, n))| (id, n)).collect();
        assert_eq!(canvases.len(), expected.len(), "user {u}'s canvas count");
        for (id, name) in expected {
            assert_eq!(canvases[id]["name"], json!(name));
        }
        let sessions = names(h.list_all(user, "/sessions", 7).await.0);
        let own_sessions: Vec<_> = m.sessions.iter().filter(|(_, (o, _))| *o == u).collect();
        assert_eq!(sessions.len(), own_sessions.len(), "user {u}'s session count");
        for (id, (_, messages)) in own_sessions {
            assert!(sessions.contains_key(id));
            let listed = h.list_all(user, &format!("/sessions/{id}/messages"), 5).await.0;
            let texts: Vec<&str> = listed.iter().map(|x| x["content"].as_str().unwrap()).collect();
            assert_eq!(texts, messages.iter().map(String::as_str).collect::<Vec<_>>(), "messages of {id}");
        }
        let workflows = names(h.list_all(user, "/workflows", 7).await.0);
        let own_workflows: Vec<_> = m.workflows.iter().filter(|(_, (o, _))| *o == u).collect();
        assert_eq!(workflows.len(), own_workflows.len(), "user {u}'s workflow count");
        for (id, (_, status)) in own_workflows {
            assert_eq!(workflows[id]["run_status"], json!(status));
        }
    }
}

#[test]
fn random_interleavings_of_users_match_the_model() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..60))| {
        runtime.block_on(async {
            let h = Harness::new().await;
            let mut principals: Vec<User> = (0..USERS).map(|i| h.user(&format!("p{i}"))).collect();
            for i in 0..USERS {
                let key = personal_key(&h, &principals[i]).await;
                principals.push(key);
            }
            run(&h, &principals, ops).await;
        });
    });
    println!("property test: {cases} cases, {} operations", OPERATIONS.load(Ordering::Relaxed));
}

// ---- Teams: organizations, projects, memberships and project workspaces ----

/// What a team operation does. Users, organizations, projects and items are picked by index
/// (modulo what exists), so an actor is often not allowed: that is the point.
#[derive(Clone, Debug)]
enum TeamOp {
    CreateOrg(usize),
    CreateProject {
        actor: Actor,
        org: usize,
    },
    /// `role: None` removes the member (or the actor leaves).
    SetOrgMember {
        actor: Actor,
        org: usize,
        target: usize,
        role: Option<Role>,
    },
    SetProjectMember {
        actor: Actor,
        project: usize,
        target: usize,
        role: Option<Role>,
    },
    CreateItem {
        actor: Actor,
        project: usize,
        kind: Kind,
    },
    /// Reads an item through its own project's path, or through another project's (`via`).
    GetItem {
        actor: Actor,
        item: usize,
        via: Option<usize>,
    },
    ListItems {
        actor: Actor,
        project: usize,
        kind: Kind,
    },
    DeleteItem {
        actor: Actor,
        item: usize,
    },
    CreatePersonalCanvas(usize),
}

/// Who acts: any user, or (more often, so that allowed changes happen) the `n`-th of those
/// who are in the organization or can read the project at that moment, whatever their role.
#[derive(Clone, Copy, Debug)]
enum Actor {
    Anyone(usize),
    Insider(usize),
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![1 => (0..TEAM_USERS).prop_map(Actor::Anyone), 2 => (0..16usize).prop_map(Actor::Insider)]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Canvas,
    Session,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Canvas => "canvases",
            Kind::Session => "sessions",
        }
    }

    fn body(self, name: &str) -> Value {
        match self {
            Kind::Canvas => json!({"name": name}),
            Kind::Session => json!({"title": name}),
        }
    }

    fn name_of(self, item: &Value) -> Value {
        match self {
            Kind::Canvas => item["name"].clone(),
            Kind::Session => item["title"].clone(),
        }
    }
}

const TEAM_USERS: usize = 4;

fn team_op() -> impl Strategy<Value = TeamOp> {
    let user = || 0..TEAM_USERS;
    let pick = || 0..64usize;
    let org_role = prop_oneof![
        Just(Some(Role::Owner)),
        Just(Some(Role::Admin)),
        Just(Some(Role::Member)),
        Just(Some(Role::Viewer)),
        Just(None)
    ];
    // Owner is not a project role: asking for it is a 400 (to a member).
    let project_role = prop_oneof![
        3 => Just(Some(Role::Admin)),
        3 => Just(Some(Role::Member)),
        3 => Just(Some(Role::Viewer)),
        2 => Just(None),
        2 => Just(Some(Role::Owner)),
    ];
    let kind = prop_oneof![Just(Kind::Canvas), Just(Kind::Session)];
    prop_oneof![
        2 => user().prop_map(TeamOp::CreateOrg),
        3 => (actor(), pick()).prop_map(|(actor, org)| TeamOp::CreateProject { actor, org }),
        6 => (actor(), pick(), user(), org_role)
            .prop_map(|(actor, org, target, role)| TeamOp::SetOrgMember { actor, org, target, role }),
        6 => (actor(), pick(), user(), project_role)
            .prop_map(|(actor, project, target, role)| TeamOp::SetProjectMember { actor, project, target, role }),
        4 => (actor(), pick(), kind.clone()).prop_map(|(actor, project, kind)| TeamOp::CreateItem { actor, project, kind }),
        3 => (actor(), pick(), prop::option::weighted(0.3, pick()))
            .prop_map(|(actor, item, via)| TeamOp::GetItem { actor, item, via }),
        2 => (actor(), pick(), kind).prop_map(|(actor, project, kind)| TeamOp::ListItems { actor, project, kind }),
        2 => (actor(), pick()).prop_map(|(actor, item)| TeamOp::DeleteItem { actor, item }),
        1 => user().prop_map(TeamOp::CreatePersonalCanvas),
    ]
}

struct OrgModel {
    id: String,
    members: BTreeMap<usize, Role>,
}

struct ProjectModel {
    id: String,
    org: usize,
    members: BTreeMap<usize, Role>,
}

struct ItemModel {
    id: String,
    kind: Kind,
    project: usize,
    name: String,
}

/// The model of teams, written out on its own (not from `shared::access`): who is in which
/// organization and project with which role, and what each project holds.
#[derive(Default)]
struct TeamModel {
    orgs: Vec<OrgModel>,
    projects: Vec<ProjectModel>,
    items: Vec<ItemModel>,
    personal: BTreeMap<usize, Vec<String>>,
}

impl TeamModel {
    /// The role a user acts with in a project: owners and admins of its organization act as
    /// admins (or as their higher project role); other organization members act with their
    /// project role; anyone outside the organization has none, whatever else is recorded.
    fn acts_as(&self, user: usize, project: usize) -> Option<Role> {
        let p = &self.projects[project];
        let in_project = p.members.get(&user).copied();
        match self.orgs[p.org].members.get(&user)? {
            Role::Owner | Role::Admin => Some(in_project.map_or(Role::Admin, |r| r.max(Role::Admin))),
            Role::Member | Role::Viewer => in_project,
        }
    }

    /// The user an org operation's actor is (an organization always has its owners).
    fn in_org(&self, actor: Actor, org: usize) -> usize {
        match actor {
            Actor::Anyone(u) => u,
            Actor::Insider(n) => *self.orgs[org].members.keys().nth(n % self.orgs[org].members.len()).unwrap(),
        }
    }

    /// The user a project operation's actor is (its organization's owners can always read it).
    fn in_project(&self, actor: Actor, project: usize) -> usize {
        match actor {
            Actor::Anyone(u) => u,
            Actor::Insider(n) => {
                let readers: Vec<usize> = (0..TEAM_USERS).filter(|u| self.acts_as(*u, project).is_some()).collect();
                readers[n % readers.len()]
            }
        }
    }

    /// The expected status of a workspace request by `user` in `project` that needs `write`
    /// (create, delete) or only reading, when the request itself would succeed with `ok`.
    fn workspace_status(&self, user: usize, project: usize, write: bool, ok: u16) -> u16 {
        match self.acts_as(user, project) {
            None => 404,
            Some(Role::Viewer) if write => 403,
            Some(_) => ok,
        }
    }

    /// What a membership change by `actor` (acting as `acting`) of `target` from `current` to
    /// `new` answers, before the store's own rules (the last owner, organization membership).
    fn change_refused(acting: Role, is_self: bool, current: Option<Role>, new: Option<Role>) -> Option<u16> {
        let leaving = is_self && new.is_none();
        let manages = matches!(acting, Role::Owner | Role::Admin);
        if !leaving && (!manages || new.is_some_and(|n| n > acting) || current.is_some_and(|c| c > acting)) {
            return Some(403);
        }
        if current.is_none() && new.is_none() {
            return Some(404);
        }
        None
    }
}

/// How often each status was expected across the run: the generator must reach every kind of
/// answer (allowed, forbidden, non-member, conflict, bad input), or it proves little.
static TEAM_STATUSES: std::sync::Mutex<BTreeMap<u16, usize>> = std::sync::Mutex::new(BTreeMap::new());

/// Checks one answer against the model's expectation, and counts it.
fn expect_status(r: &Reply, expected: u16, context: &str) {
    assert_eq!(r.status, expected, "{context}: {}", r.text());
    *TEAM_STATUSES.lock().unwrap().entry(expected).or_default() += 1;
}

fn nth_index(len: usize, pick: usize) -> Option<usize> {
    (len > 0).then(|| pick % len)
}

async fn run_teams(h: &Harness, users: &[User], ops: Vec<TeamOp>) {
    let mut m = TeamModel::default();
    for (step, op) in ops.into_iter().enumerate() {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        let context = format!("step {step}: {op:?}");
        match op {
            TeamOp::CreateOrg(u) => {
                let r = h.call(Some(&users[u]), "POST", "/orgs", Some(json!({"name": format!("org {step}")}))).await;
                expect_status(&r, 201, &context);
                assert_eq!(r.json()["role"], "owner", "{context}");
                let id = r.json()["id"].as_str().unwrap().to_owned();
                m.orgs.push(OrgModel { id, members: BTreeMap::from([(u, Role::Owner)]) });
            }
            TeamOp::CreateProject { actor, org } => {
                let Some(o) = nth_index(m.orgs.len(), org) else { continue };
                let actor = m.in_org(actor, o);
                let path = format!("/orgs/{}/projects", m.orgs[o].id);
                let r = h.call(Some(&users[actor]), "POST", &path, Some(json!({"name": format!("p {step}")}))).await;
                let expected = match m.orgs[o].members.get(&actor) {
                    None => 404,
                    Some(Role::Owner | Role::Admin) => 201,
                    Some(_) => 403,
                };
                expect_status(&r, expected, &context);
                if r.status == 201 {
                    let id = r.json()["id"].as_str().unwrap().to_owned();
                    m.projects.push(ProjectModel { id, org: o, members: BTreeMap::new() });
                }
            }
            TeamOp::SetOrgMember { actor, org, target, role } => {
                let Some(o) = nth_index(m.orgs.len(), org) else { continue };
                let actor = m.in_org(actor, o);
                let path = format!("/orgs/{}/members/{}", m.orgs[o].id, users[target].id);
                let r = match role {
                    Some(role) => h.call(Some(&users[actor]), "PUT", &path, Some(json!({"role": role.as_str()}))).await,
                    None => h.call(Some(&users[actor]), "DELETE", &path, None).await,
                };
                let members = &m.orgs[o].members;
                let current = members.get(&target).copied();
                let owners = members.values().filter(|r| **r == Role::Owner).count();
                let expected = match members.get(&actor) {
                    None => 404,
                    Some(&acting) => match TeamModel::change_refused(acting, actor == target, current, role) {
                        Some(refused) => refused,
                        None if current == Some(Role::Owner) && role != Some(Role::Owner) && owners == 1 => 409,
                        None => 204,
                    },
                };
                expect_status(&r, expected, &context);
                if r.status == 204 {
                    match role {
                        Some(role) => {
                            m.orgs[o].members.insert(target, role);
                        }
                        None => {
                            m.orgs[o].members.remove(&target);
                            // Leaving the organization leaves its projects too.
                            for p in m.projects.iter_mut().filter(|p| p.org == o) {
                                p.members.remove(&target);
                            }
                        }
                    }
                }
            }
            TeamOp::SetProjectMember { actor, project, target, role } => {
                let Some(p) = nth_index(m.projects.len(), project) else { continue };
                let actor = m.in_project(actor, p);
                let path = format!("/projects/{}/members/{}", m.projects[p].id, users[target].id);
                let r = match role {
                    Some(role) => h.call(Some(&users[actor]), "PUT", &path, Some(json!({"role": role.as_str()}))).await,
                    None => h.call(Some(&users[actor]), "DELETE", &path, None).await,
                };
                let current = m.projects[p].members.get(&target).copied();
                let in_org = m.orgs[m.projects[p].org].members.contains_key(&target);
                let expected = match m.acts_as(actor, p) {
                    None => 404,
                    Some(_) if role == Some(Role::Owner) => 400,
                    Some(acting) => match TeamModel::change_refused(acting, actor == target, current, role) {
                        Some(refused) => refused,
                        None if current == role => 204,
                        None if role.is_some() && !in_org => 409,
                        None => 204,
                    },
                };
                expect_status(&r, expected, &context);
                if r.status == 204 {
                    match role {
                        Some(role) => m.projects[p].members.insert(target, role),
                        None => m.projects[p].members.remove(&target),
                    };
                }
            }
            TeamOp::CreateItem { actor, project, kind } => {
                let Some(p) = nth_index(m.projects.len(), project) else { continue };
                let actor = m.in_project(actor, p);
                let name = format!("{kind:?} {step}");
                let path = format!("/projects/{}/{}", m.projects[p].id, kind.collection());
                let r = h.call(Some(&users[actor]), "POST", &path, Some(kind.body(&name))).await;
                expect_status(&r, m.workspace_status(actor, p, true, 201), &context);
                if r.status == 201 {
                    let id = r.json()["id"].as_str().unwrap().to_owned();
                    m.items.push(ItemModel { id, kind, project: p, name });
                }
            }
            TeamOp::GetItem { actor, item, via } => {
                let Some(i) = nth_index(m.items.len(), item) else { continue };
                let it = &m.items[i];
                let through = via.map_or(it.project, |v| v % m.projects.len());
                let actor = m.in_project(actor, through);
                let path = format!("/projects/{}/{}/{}", m.projects[through].id, it.kind.collection(), it.id);
                let r = h.call(Some(&users[actor]), "GET", &path, None).await;
                // Through another project, the item does not exist there: 404 like any other id.
                let ok = if through == it.project { 200 } else { 404 };
                expect_status(&r, m.workspace_status(actor, through, false, ok), &context);
                if r.status == 200 {
                    assert_eq!(it.kind.name_of(&r.json()), json!(it.name), "{context}");
                }
            }
            TeamOp::ListItems { actor, project, kind } => {
                let Some(p) = nth_index(m.projects.len(), project) else { continue };
                let actor = m.in_project(actor, p);
                let path = format!("/projects/{}/{}?limit=100", m.projects[p].id, kind.collection());
                let r = h.call(Some(&users[actor]), "GET", &path, None).await;
                expect_status(&r, m.workspace_status(actor, p, false, 200), &context);
                if r.status == 200 {
                    let listed = ids(&r.json()["items"]);
                    let expected = m.items.iter().filter(|i| i.project == p && i.kind == kind).map(|i| i.id.clone());
                    assert_eq!(listed, expected.collect(), "{context}");
                }
            }
            TeamOp::DeleteItem { actor, item } => {
                let Some(i) = nth_index(m.items.len(), item) else { continue };
                let it = &m.items[i];
                let actor = m.in_project(actor, it.project);
                let path = format!("/projects/{}/{}/{}", m.projects[it.project].id, it.kind.collection(), it.id);
                let r = h.call(Some(&users[actor]), "DELETE", &path, None).await;
                expect_status(&r, m.workspace_status(actor, it.project, true, 204), &context);
                if r.status == 204 {
                    m.items.remove(i);
                }
            }
            TeamOp::CreatePersonalCanvas(u) => {
                let r =
                    h.call(Some(&users[u]), "POST", "/canvases", Some(json!({"name": format!("mine {step}")}))).await;
                assert_eq!(r.status, 201, "{context}");
                m.personal.entry(u).or_default().push(r.json()["id"].as_str().unwrap().to_owned());
            }
        }
    }
    check_team_views(h, users, &m).await;
}

fn ids(items: &Value) -> std::collections::BTreeSet<String> {
    items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// Id → role of a page of organizations or projects, or user → role of a page of members.
fn roles(items: &Value, key: &str) -> BTreeMap<String, String> {
    let items = items.as_array().unwrap().iter();
    items.map(|i| (i[key].as_str().unwrap().to_owned(), i["role"].as_str().unwrap().to_owned())).collect()
}

/// At the end, every user's view of every organization and project is the model's.
async fn check_team_views(h: &Harness, users: &[User], m: &TeamModel) {
    let names = |members: &BTreeMap<usize, Role>| -> BTreeMap<String, String> {
        members.iter().map(|(u, r)| (users[*u].id.clone(), r.as_str().to_owned())).collect()
    };
    for (u, user) in users.iter().enumerate() {
        let mine = h.call(Some(user), "GET", "/orgs?limit=100", None).await.json();
        let expected = m.orgs.iter().filter_map(|o| o.members.get(&u).map(|r| (o.id.clone(), r.as_str().to_owned())));
        assert_eq!(roles(&mine["items"], "id"), expected.collect(), "user {u}'s organizations");
        for (o, org) in m.orgs.iter().enumerate() {
            let r = h.call(Some(user), "GET", &format!("/orgs/{}/projects?limit=100", org.id), None).await;
            if !org.members.contains_key(&u) {
                assert_eq!(r.status, 404, "user {u} outside org {o}");
                continue;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            let expected = (0..m.projects.len())
                .filter(|p| m.projects[*p].org == o)
                .filter_map(|p| m.acts_as(u, p).map(|r| (m.projects[p].id.clone(), r.as_str().to_owned())));
            assert_eq!(roles(&r.json()["items"], "id"), expected.collect(), "user {u}'s projects of org {o}");
            let r = h.call(Some(user), "GET", &format!("/orgs/{}/members?limit=100", org.id), None).await;
            assert_eq!(roles(&r.json()["items"], "user"), names(&org.members), "members of org {o}");
        }
        for (p, project) in m.projects.iter().enumerate() {
            let r = h.call(Some(user), "GET", &format!("/projects/{}", project.id), None).await;
            let Some(role) = m.acts_as(u, p) else {
                assert_eq!(r.status, 404, "user {u} outside project {p}: {}", r.text());
                continue;
            };
            assert_eq!(r.json()["role"], role.as_str(), "user {u} in project {p}");
            let r = h.call(Some(user), "GET", &format!("/projects/{}/members?limit=100", project.id), None).await;
            assert_eq!(roles(&r.json()["items"], "user"), names(&project.members), "members of project {p}");
            for kind in [Kind::Canvas, Kind::Session] {
                let path = format!("/projects/{}/{}?limit=100", project.id, kind.collection());
                let listed = ids(&h.call(Some(user), "GET", &path, None).await.json()["items"]);
                let expected = m.items.iter().filter(|i| i.project == p && i.kind == kind).map(|i| i.id.clone());
                assert_eq!(listed, expected.collect(), "{kind:?} of project {p} as user {u}");
            }
        }
        let personal = ids(&h.call(Some(user), "GET", "/canvases?limit=100", None).await.json()["items"]);
        let expected = m.personal.get(&u).into_iter().flatten().cloned().collect();
        assert_eq!(personal, expected, "user {u}'s personal canvases (no project item among them)");
    }
}

#[test]
fn random_membership_changes_and_project_work_match_the_model() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in prop::collection::vec(team_op(), 1..80))| {
        runtime.block_on(async {
            let h = Harness::new().await;
            let users: Vec<User> = (0..TEAM_USERS).map(|i| h.user(&format!("t{i}"))).collect();
            run_teams(&h, &users, ops).await;
        });
    });
    let statuses = TEAM_STATUSES.lock().unwrap().clone();
    println!("teams property test: {cases} cases, expected statuses {statuses:?}");
    // (400, an owner asked for in a project, is rarer: counted, not required.)
    for status in [200, 201, 204, 403, 404, 409] {
        assert!(statuses.contains_key(&status), "no operation was expected to answer {status}: {statuses:?}");
    }
}
