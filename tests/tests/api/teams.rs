//! Teams: organizations, projects, memberships and the permission matrix, through the real
//! handlers on DynamoDB Local. The role-by-action test walks every project route of the
//! template and takes its expectations from `shared::access::allows`, so the matrix and the
//! behaviour cannot drift apart.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::config::SharedInterceptor;
use integration_tests::{fixture_body, fixtures, Harness, Reply, User};
use serde_json::{json, Value};
use shared::access::{allows, Action, Role};

const MISSING_ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";

/// An organization with one project, created by `owner`.
pub struct Team {
    pub owner: User,
    pub org: String,
    pub project: String,
}

impl Team {
    pub async fn new(h: &Harness, owner: User) -> Self {
        let org = h.call(Some(&owner), "POST", "/orgs", Some(json!({"name": "Acme"}))).await;
        assert_eq!(org.status, 201, "{}", org.text());
        let org = org.json()["id"].as_str().unwrap().to_owned();
        let project =
            h.call(Some(&owner), "POST", &format!("/orgs/{org}/projects"), Some(json!({"name": "Launch"}))).await;
        assert_eq!(project.status, 201, "{}", project.text());
        let project = project.json()["id"].as_str().unwrap().to_owned();
        Self { owner, org, project }
    }

    /// Gives `user` an organization role and, if given, a project role (as the owner).
    pub async fn add(&self, h: &Harness, user: &User, org_role: Role, project_role: Option<Role>) {
        let r = self.put_member(h, &self.owner, &format!("/orgs/{}", self.org), user, org_role).await;
        assert_eq!(r.status, 204, "{}", r.text());
        if let Some(role) = project_role {
            let r = self.put_member(h, &self.owner, &format!("/projects/{}", self.project), user, role).await;
            assert_eq!(r.status, 204, "{}", r.text());
        }
    }

    pub async fn put_member(&self, h: &Harness, by: &User, scope: &str, user: &User, role: Role) -> Reply {
        h.call(Some(by), "PUT", &format!("{scope}/members/{}", user.id), Some(json!({"role": role.as_str()}))).await
    }

    /// Fills a route's path parameters with this team's ids (and `id`, `user_id` if given).
    pub fn path(&self, template: &str, id: Option<&str>, user: Option<&str>) -> String {
        let mut path = template.replace("{org_id}", &self.org).replace("{project_id}", &self.project);
        if let Some(id) = id {
            path = path.replace("{id}", id);
        }
        if let Some(user) = user {
            path = path.replace("{user_id}", user);
        }
        path
    }
}

/// The route's body from its events/ fixture.
fn bodies() -> BTreeMap<String, Option<Value>> {
    fixtures().into_iter().map(|(file, route)| (route, fixture_body(&file))).collect()
}

/// What a project route does, in the matrix's terms.
fn action_of(method: &str, path: &str) -> Action {
    let rest = path.trim_start_matches("/projects/{project_id}");
    match (method, rest) {
        // Listing, making and revoking invitations is managing members.
        (_, p) if p.starts_with("/invitations") => Action::ManageMembers,
        ("GET", _) => Action::ReadItems,
        ("PATCH" | "DELETE", "") => Action::ManageProject,
        ("PUT" | "DELETE", "/members/{user_id}") => Action::ManageMembers,
        ("POST", p) if p.contains("/run/") || p.ends_with("/files/{id}/complete") => Action::UpdateItems,
        ("POST", _) => Action::CreateItems,
        ("PATCH", _) => Action::UpdateItems,
        ("DELETE", _) => Action::DeleteItems,
        other => panic!("no action for {other:?}"),
    }
}

/// The collection a workspace route's `{id}` belongs to (`/projects/{project_id}/sessions`).
fn collection_of(path: &str) -> Option<&str> {
    path.find("/{id}").map(|i| &path[..i])
}

/// Everything a refusal must leave as it was, read as the owner.
async fn snapshot(h: &Harness, team: &Team, item: Option<&str>) -> String {
    let mut parts = Vec::new();
    let lists = ["/canvases", "/sessions", "/workflows", "/files", "/invitations"].map(|l| format!("{l}?limit=100"));
    for path in ["", "/members?limit=100"].into_iter().chain(lists.iter().map(String::as_str)) {
        let r = h.call(Some(&team.owner), "GET", &format!("/projects/{}{path}", team.project), None).await;
        parts.push(r.text());
    }
    for list in ["members", "invitations"] {
        let r = h.call(Some(&team.owner), "GET", &format!("/orgs/{}/{list}?limit=100", team.org), None).await;
        parts.push(r.text());
    }
    if let Some(item) = item {
        parts.push(h.call(Some(&team.owner), "GET", item, None).await.text());
    }
    parts.join("\n")
}

/// A caller of the role test, and the role they act with in the project (None: not a member).
struct Caller {
    name: &'static str,
    user: User,
    acts_as: Option<Role>,
}

#[tokio::test]
async fn every_role_on_every_project_route_gets_what_the_matrix_says() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let mut callers = vec![Caller { name: "org owner", user: team.owner.clone(), acts_as: Some(Role::Admin) }];
    for (name, org_role, project_role, acts_as) in [
        ("org admin", Role::Admin, None, Some(Role::Admin)),
        ("project admin", Role::Member, Some(Role::Admin), Some(Role::Admin)),
        ("project member", Role::Viewer, Some(Role::Member), Some(Role::Member)),
        ("project viewer", Role::Member, Some(Role::Viewer), Some(Role::Viewer)),
        ("org member outside the project", Role::Member, None, None),
    ] {
        let user = h.user(name.split(' ').next_back().unwrap());
        team.add(&h, &user, org_role, project_role).await;
        callers.push(Caller { name, user, acts_as });
    }
    callers.push(Caller { name: "stranger", user: h.user("stranger"), acts_as: None });
    // Someone whose project membership the member routes change.
    let target = h.user("target");
    team.add(&h, &target, Role::Member, None).await;

    let bodies = bodies();
    let mut routes: Vec<(String, String)> = h
        .stack
        .template
        .api_route_keys()
        .into_iter()
        .filter(|r| r.contains(" /projects/{project_id}"))
        .map(|r| {
            let (m, p) = r.split_once(' ').unwrap();
            (m.to_owned(), p.to_owned())
        })
        .collect();
    // Deleting the project goes last: it ends the test's project.
    routes.sort_by_key(|(m, p)| (m == "DELETE" && p == "/projects/{project_id}", m.clone(), p.clone()));
    assert!(routes.len() >= 30, "{routes:?}");
    let mut checked = 0;
    for (method, path) in &routes {
        let action = action_of(method, path);
        let body = bodies[&format!("{method} {path}")].clone();
        let deletes_project = method == "DELETE" && path == "/projects/{project_id}";
        let mut order: Vec<&Caller> = callers.iter().collect();
        if deletes_project {
            // Refusals first, then one allowed caller deletes it.
            order.retain(|c| !c.acts_as.is_some_and(|r| allows(r, action)) || c.name == "project admin");
            order.sort_by_key(|c| c.acts_as.is_some_and(|r| allows(r, action)));
        }
        for caller in order {
            // A fresh item for item routes, made by the owner in the project.
            let id = match collection_of(path) {
                Some(collection) => {
                    let create = bodies[&format!("POST {collection}")].clone();
                    let r = h.call(Some(&team.owner), "POST", &team.path(collection, None, None), create).await;
                    assert_eq!(r.status, 201, "{}", r.text());
                    Some(r.json()["id"].as_str().unwrap().to_owned())
                }
                None => None,
            };
            if path.ends_with("/members/{user_id}") && method == "DELETE" {
                let scope = format!("/projects/{}", team.project);
                let r = team.put_member(&h, &team.owner, &scope, &target, Role::Viewer).await;
                assert_eq!(r.status, 204, "{}", r.text());
            }
            let url = team.path(path, id.as_deref(), Some(&target.id));
            // An invitation has no GET of its own: the snapshot's invitation list shows it.
            let item_url = id
                .as_ref()
                .filter(|_| !path.contains("/invitations/"))
                .map(|_| team.path(&path[..path.find("{id}").unwrap() + 4], id.as_deref(), None));
            let before = snapshot(&h, &team, item_url.as_deref()).await;
            let allowed = caller.acts_as.is_some_and(|role| allows(role, action));
            let reply = h.call(Some(&caller.user), method, &url, body.clone()).await;
            let what = format!("{} {method} {path}", caller.name);
            match caller.acts_as {
                None => {
                    reply.assert_problem(404);
                    let nobody = team.path(path, id.as_deref(), Some(&target.id)).replace(&team.project, MISSING_ID);
                    let missing = h.call(Some(&caller.user), method, &nobody, body.clone()).await;
                    assert_eq!(reply.body_without_request_id(), missing.body_without_request_id(), "{what}");
                }
                Some(_) if !allowed => {
                    let problem = reply.assert_problem(403);
                    assert!(problem["detail"].as_str().unwrap().contains("role"), "{what}: {problem}");
                }
                Some(_) => {
                    // A fresh workflow's run is idle: only `start` applies (409 otherwise); a fresh
                    // file has no bytes to complete.
                    let state_conflict = (path.contains("/run/") && !path.ends_with("/run/start"))
                        || path.ends_with("/files/{id}/complete");
                    let ok = (200..300).contains(&reply.status) || (state_conflict && reply.status == 409);
                    assert!(ok, "{what}: {} {}", reply.status, reply.text());
                }
            }
            if !allowed {
                assert_eq!(snapshot(&h, &team, item_url.as_deref()).await, before, "{what}: a refusal changed data");
            }
            checked += 1;
        }
    }
    println!("role matrix: {} routes x {} callers, {checked} cases", routes.len(), callers.len());
    let gone = h.call(Some(&team.owner), "GET", &format!("/projects/{}", team.project), None).await;
    gone.assert_problem(404);
}

/// Every route of organization B, called by organization A's owner with B's ids.
#[tokio::test]
async fn an_owner_of_one_organization_gets_404_on_everything_of_another() {
    let h = Harness::new().await;
    let a = Team::new(&h, h.user("owner-a")).await;
    let b = Team::new(&h, h.user("owner-b")).await;
    let b_member = h.user("member-b");
    b.add(&h, &b_member, Role::Member, Some(Role::Member)).await;
    let bodies = bodies();
    let mut items = BTreeMap::new();
    for collection in [
        "/projects/{project_id}/canvases",
        "/projects/{project_id}/sessions",
        "/projects/{project_id}/workflows",
        "/projects/{project_id}/files",
        "/projects/{project_id}/invitations",
        "/orgs/{org_id}/invitations",
    ] {
        let r = h
            .call(
                Some(&b.owner),
                "POST",
                &b.path(collection, None, None),
                bodies[&format!("POST {collection}")].clone(),
            )
            .await;
        items.insert(collection, r.json()["id"].as_str().unwrap().to_owned());
    }
    let before = snapshot(&h, &b, None).await;
    let mut checked = 0;
    for route in h.stack.template.api_route_keys() {
        let (method, path) = route.split_once(' ').unwrap();
        if !path.contains("{org_id}") && !path.contains("{project_id}") {
            continue;
        }
        let id = collection_of(path).map(|c| items[c].as_str());
        let url = b.path(path, id, Some(&b_member.id));
        let reply = h.call(Some(&a.owner), method, &url, bodies[&route].clone()).await;
        reply.assert_problem(404);
        let nobody = url.replace(&b.org, MISSING_ID).replace(&b.project, MISSING_ID);
        let missing = h.call(Some(&a.owner), method, &nobody, bodies[&route].clone()).await;
        assert_eq!(reply.body_without_request_id(), missing.body_without_request_id(), "{route}");
        checked += 1;
    }
    assert!(checked >= 44, "{checked}");
    assert_eq!(snapshot(&h, &b, None).await, before, "A changed B's data");
    let (orgs, _) = h.list_all(&a.owner, "/orgs", 100).await;
    assert_eq!(orgs.len(), 1, "A lists only its own organization");
    assert_eq!(orgs[0]["id"], a.org.as_str());
}

#[tokio::test]
async fn the_last_owner_can_neither_leave_nor_be_demoted() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let scope = format!("/orgs/{}", team.org);
    let leave = h.call(Some(&team.owner), "DELETE", &format!("{scope}/members/{}", team.owner.id), None).await;
    assert!(leave.assert_problem(409)["detail"].as_str().unwrap().contains("last owner"));
    team.put_member(&h, &team.owner, &scope, &team.owner, Role::Admin).await.assert_problem(409);

    // Two owners demoting each other at once: the owner count is checked in the same
    // transaction, so exactly one of them succeeds.
    let second = h.user("second");
    team.add(&h, &second, Role::Owner, None).await;
    let (x, y) = tokio::join!(
        team.put_member(&h, &team.owner, &scope, &second, Role::Admin),
        team.put_member(&h, &second, &scope, &team.owner, Role::Admin),
    );
    let statuses = [x.status, y.status];
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}: {} {}", x.text(), y.text());
    let (members, _) = h.list_all(&team.owner, &format!("{scope}/members"), 100).await;
    assert_eq!(members.iter().filter(|m| m["role"] == "owner").count(), 1, "{members:?}");
}

#[tokio::test]
async fn nobody_grants_a_role_above_their_own() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let (admin, member, newcomer) = (h.user("admin"), h.user("member"), h.user("newcomer"));
    team.add(&h, &admin, Role::Admin, None).await;
    team.add(&h, &member, Role::Member, None).await;
    let org = format!("/orgs/{}", team.org);
    let project = format!("/projects/{}", team.project);

    team.put_member(&h, &admin, &org, &newcomer, Role::Owner).await.assert_problem(403);
    team.put_member(&h, &admin, &org, &team.owner, Role::Member).await.assert_problem(403);
    let r = h.call(Some(&admin), "DELETE", &format!("{org}/members/{}", team.owner.id), None).await;
    r.assert_problem(403);
    team.put_member(&h, &member, &org, &newcomer, Role::Viewer).await.assert_problem(403);
    team.put_member(&h, &member, &org, &member, Role::Admin).await.assert_problem(403);
    assert_eq!(team.put_member(&h, &admin, &org, &newcomer, Role::Admin).await.status, 204);

    // In the project: roles stop at admin, and only members of the organization join.
    team.put_member(&h, &admin, &project, &member, Role::Owner).await.assert_problem(400);
    assert_eq!(team.put_member(&h, &admin, &project, &member, Role::Admin).await.status, 204);
    let outsider = h.user("outsider");
    team.put_member(&h, &admin, &project, &outsider, Role::Viewer).await.assert_problem(409);
    let viewer = h.user("viewer");
    team.add(&h, &viewer, Role::Member, Some(Role::Viewer)).await;
    team.put_member(&h, &viewer, &project, &viewer, Role::Member).await.assert_problem(403);
    // Anyone may leave.
    assert_eq!(h.call(Some(&viewer), "DELETE", &format!("{project}/members/{}", viewer.id), None).await.status, 204);
}

#[tokio::test]
async fn removing_a_member_takes_effect_on_their_next_request() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let (a, b) = (h.user("a"), h.user("b"));
    team.add(&h, &a, Role::Member, Some(Role::Member)).await;
    team.add(&h, &b, Role::Member, Some(Role::Member)).await;
    let canvases = format!("/projects/{}/canvases", team.project);
    for user in [&a, &b] {
        assert_eq!(h.call(Some(user), "GET", &canvases, None).await.status, 200);
    }
    // Out of the project: the very next request is a 404.
    let r = h.call(Some(&team.owner), "DELETE", &format!("/projects/{}/members/{}", team.project, a.id), None).await;
    assert_eq!(r.status, 204);
    h.call(Some(&a), "GET", &canvases, None).await.assert_problem(404);
    // Out of the organization: every project of it is gone too, even with a project membership.
    let r = h.call(Some(&team.owner), "DELETE", &format!("/orgs/{}/members/{}", team.org, b.id), None).await;
    assert_eq!(r.status, 204);
    h.call(Some(&b), "GET", &canvases, None).await.assert_problem(404);
    h.call(Some(&b), "GET", &format!("/orgs/{}", team.org), None).await.assert_problem(404);
    let (members, _) = h.list_all(&team.owner, &format!("/projects/{}/members", team.project), 100).await;
    assert!(members.is_empty(), "the removed member's project membership went with them: {members:?}");
}

#[tokio::test]
async fn ownership_is_transferred_in_one_step() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let heir = h.user("heir");
    team.add(&h, &heir, Role::Member, None).await;
    let transfer = format!("/orgs/{}/transfer", team.org);
    let r = h.call(Some(&heir), "POST", &transfer, Some(json!({"new_owner": heir.id}))).await;
    r.assert_problem(403);
    let r = h.call(Some(&team.owner), "POST", &transfer, Some(json!({"new_owner": "nobody"}))).await;
    r.assert_problem(409);
    let r = h.call(Some(&team.owner), "POST", &transfer, Some(json!({"new_owner": ""}))).await;
    r.assert_problem(400);
    let r = h.call(Some(&team.owner), "POST", &transfer, Some(json!({"new_owner": heir.id}))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let org = format!("/orgs/{}", team.org);
    assert_eq!(h.call(Some(&team.owner), "GET", &org, None).await.json()["role"], "admin");
    assert_eq!(h.call(Some(&heir), "GET", &org, None).await.json()["role"], "owner");
    h.call(Some(&team.owner), "DELETE", &org, None).await.assert_problem(403);
    assert_eq!(h.call(Some(&heir), "DELETE", &org, None).await.status, 204);
}

#[tokio::test]
async fn organizations_have_a_plan_and_conditional_updates() {
    let h = Harness::new().await;
    let owner = h.user("owner");
    let r = h.call(Some(&owner), "POST", "/orgs", Some(json!({"name": "Big", "plan": "enterprise"}))).await;
    assert_eq!(r.status, 201);
    let org = r.json();
    assert_eq!(org["plan"], "enterprise");
    assert_eq!(org["role"], "owner");
    let path = format!("/orgs/{}", org["id"].as_str().unwrap());
    let r = h.call(Some(&owner), "POST", "/orgs", Some(json!({"name": "Bad", "plan": "platinum"}))).await;
    r.assert_problem(400);
    let r = h.call_with(&owner, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"plan": "pro"}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["plan"], "pro");
    assert_eq!(r.header("etag"), Some("\"2\""));
    let r = h.call_with(&owner, "PATCH", &path, &[("if-match", "\"1\"")], Some(json!({"name": "Stale"}))).await;
    r.assert_problem(412);
}

#[tokio::test]
async fn project_items_stay_in_the_project_and_cursors_are_bound_to_it() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let member = h.user("member");
    team.add(&h, &member, Role::Member, Some(Role::Member)).await;
    let canvases = format!("/projects/{}/canvases", team.project);
    for i in 0..3 {
        let r = h.call(Some(&member), "POST", &canvases, Some(json!({"name": format!("shared {i}")}))).await;
        assert_eq!(r.status, 201);
        assert!(r.header("location").unwrap().starts_with(&canvases));
    }
    // Shared: the owner sees the member's canvases, paged; neither sees them in a personal list.
    let (items, pages) = h.list_all(&team.owner, &canvases, 2).await;
    assert_eq!((items.len(), pages), (3, vec![2, 1]));
    for user in [&team.owner, &member] {
        assert!(h.list_all(user, "/canvases", 100).await.0.is_empty());
        // The export has their memberships (and the owner's organization), never the items.
        let export = h.list_all(user, "/me/export", 100).await.0;
        let teams = ["profile", "membership", "organization", "project"];
        assert!(export.iter().all(|i| teams.contains(&i["kind"].as_str().unwrap())), "{export:?}");
    }
    // A project list's cursor works for its caller and list only.
    let first = h.call(Some(&team.owner), "GET", &format!("{canvases}?limit=1"), None).await.json();
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(h.call(Some(&team.owner), "GET", &format!("{canvases}?cursor={cursor}"), None).await.status, 200);
    h.call(Some(&member), "GET", &format!("{canvases}?cursor={cursor}"), None).await.assert_problem(400);
    h.call(Some(&team.owner), "GET", &format!("/canvases?cursor={cursor}"), None).await.assert_problem(400);
    // A personal item is not reachable through the project, nor the reverse.
    let mine = h.call(Some(&member), "POST", "/canvases", Some(json!({"name": "mine"}))).await.json();
    let mine = mine["id"].as_str().unwrap();
    h.call(Some(&member), "GET", &format!("{canvases}/{mine}"), None).await.assert_problem(404);
    let shared = items[0]["id"].as_str().unwrap();
    h.call(Some(&member), "GET", &format!("/canvases/{shared}"), None).await.assert_problem(404);
}

/// A project's sessions and messages, and a workflow's run, shared between members.
#[tokio::test]
async fn sessions_and_workflow_runs_are_shared_in_a_project() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let member = h.user("member");
    team.add(&h, &member, Role::Member, Some(Role::Member)).await;
    let base = format!("/projects/{}", team.project);
    let session = h.call(Some(&member), "POST", &format!("{base}/sessions"), Some(json!({"title": "Ideas"}))).await;
    let session = session.json()["id"].as_str().unwrap().to_owned();
    let messages = format!("{base}/sessions/{session}/messages");
    for (user, content) in [(&member, "hello"), (&team.owner, "hi")] {
        let r = h.call(Some(user), "POST", &messages, Some(json!({"role": "user", "content": content}))).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let (listed, _) = h.list_all(&team.owner, &messages, 10).await;
    assert_eq!(listed.iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    let graph = json!({"name": "Flow", "graph": {"1": {"class_type": "KSampler", "inputs": {}}}});
    let workflow = h.call(Some(&member), "POST", &format!("{base}/workflows"), Some(graph)).await.json();
    let run = format!("{base}/workflows/{}/run", workflow["id"].as_str().unwrap());
    assert_eq!(h.call(Some(&member), "POST", &format!("{run}/start"), None).await.status, 200);
    assert_eq!(h.call(Some(&team.owner), "GET", &run, None).await.json()["status"], "running");
    // Deleting the session deletes its messages in the project too.
    assert_eq!(h.call(Some(&team.owner), "DELETE", &format!("{base}/sessions/{session}"), None).await.status, 204);
    h.call(Some(&member), "GET", &messages, None).await.assert_problem(404);
}

#[tokio::test]
async fn deleting_an_organization_removes_its_projects_and_their_items_and_can_be_repeated() {
    let h = Harness::new().await;
    let owner = h.user("owner");
    let team = Team::new(&h, owner.clone()).await;
    let second =
        h.call(Some(&owner), "POST", &format!("/orgs/{}/projects", team.org), Some(json!({"name": "Two"}))).await;
    let second = second.json()["id"].as_str().unwrap().to_owned();
    let member = h.user("member");
    team.add(&h, &member, Role::Member, Some(Role::Member)).await;
    for project in [&team.project, &second] {
        let base = format!("/projects/{project}");
        for _ in 0..30 {
            h.call(Some(&owner), "POST", &format!("{base}/canvases"), Some(json!({"name": "c"}))).await;
        }
        let s = h.call(Some(&owner), "POST", &format!("{base}/sessions"), Some(json!({}))).await.json();
        let messages = format!("{base}/sessions/{}/messages", s["id"].as_str().unwrap());
        h.call(Some(&owner), "POST", &messages, Some(json!({"role": "user", "content": "x"}))).await;
        // A file, its bytes uploaded through the presigned URL.
        let file = json!({"name": "a.png", "content_type": "image/png", "size": 3});
        let created = h.call(Some(&owner), "POST", &format!("{base}/files"), Some(file)).await.json();
        let upload = &created["upload"];
        assert!(upload["url"].as_str().unwrap().contains(&format!("/projects/{project}/")), "{upload}");
        let mut put = reqwest::Client::new().put(upload["url"].as_str().unwrap()).body(vec![1u8, 2, 3]);
        for (name, value) in upload["headers"].as_object().unwrap().iter().filter(|(n, _)| *n != "content-length") {
            put = put.header(name, value.as_str().unwrap());
        }
        assert!(put.send().await.unwrap().status().is_success());
    }
    // An interrupted deletion: its first step (marking the organization) ran, nothing else.
    let client = shared::runtime::local_dynamodb_client(&h.stack.settings.dynamodb_endpoint);
    client
        .update_item()
        .table_name("OrganizationsTable")
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S(team.org.clone()))
        .update_expression("SET deleting_at = :now")
        .expression_attribute_values(":now", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    // Being deleted: gone for everyone but the owner who can finish it.
    h.call(Some(&member), "GET", &format!("/orgs/{}", team.org), None).await.assert_problem(404);
    let r = h.call(Some(&owner), "POST", &format!("/orgs/{}/projects", team.org), Some(json!({"name": "late"}))).await;
    r.assert_problem(404);
    assert_eq!(h.call(Some(&owner), "DELETE", &format!("/orgs/{}", team.org), None).await.status, 204);
    h.call(Some(&owner), "DELETE", &format!("/orgs/{}", team.org), None).await.assert_problem(404);
    for project in [&team.project, &second] {
        h.call(Some(&owner), "GET", &format!("/projects/{project}"), None).await.assert_problem(404);
        for table in ["CanvasesTable", "SessionsTable", "MessagesTable", "WorkflowsTable"] {
            let left = client
                .query()
                .table_name(table)
                .key_condition_expression("user_id = :p")
                .expression_attribute_values(
                    ":p",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("project#{project}")),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            assert_eq!(left.count, 0, "{table} still holds items of project {project}");
        }
    }
    for user in [&owner, &member] {
        assert!(h.list_all(user, "/orgs", 100).await.0.is_empty());
    }
    let s3 = shared::objects::local_s3_client(&h.stack.settings.s3_endpoint);
    for project in [&team.project, &second] {
        let listed = s3
            .list_objects_v2()
            .bucket(local_stack::s3_local::bucket_name("FilesBucket"))
            .prefix(format!("projects/{project}/"))
            .send()
            .await
            .unwrap();
        assert!(listed.contents().is_empty(), "the bytes of project {project}'s files are left");
    }
}

#[tokio::test]
async fn subjects_that_look_like_a_project_partition_are_refused() {
    let h = Harness::new().await;
    let team = Team::new(&h, h.user("owner")).await;
    let impostor =
        User { token: h.stack.token(&format!("project#{}", team.project)), id: format!("project#{}", team.project) };
    h.call(Some(&impostor), "GET", "/canvases", None).await.assert_problem(401);
}

#[test]
fn the_readme_shows_the_permission_matrix() {
    let readme = std::fs::read_to_string(local_stack::workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&shared::access::matrix_markdown()),
        "README.md's matrix differs from shared::access::MATRIX"
    );
}

/// The DynamoDB operations the functions call, in order (the realtime connections table left
/// out: its stream consumer runs on its own time).
#[derive(Clone, Default, Debug)]
struct Calls(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl aws_sdk_dynamodb::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::*;
        let input = context.input();
        let (operation, table) = if let Some(i) = input.downcast_ref::<get_item::GetItemInput>() {
            ("GetItem", i.table_name().unwrap_or_default().to_owned())
        } else if let Some(i) = input.downcast_ref::<batch_get_item::BatchGetItemInput>() {
            let tables: Vec<_> = i.request_items().into_iter().flat_map(|r| r.keys().cloned()).collect();
            ("BatchGetItem", tables.join("+"))
        } else if let Some(i) = input.downcast_ref::<query::QueryInput>() {
            ("Query", i.table_name().unwrap_or_default().to_owned())
        } else if let Some(i) = input.downcast_ref::<put_item::PutItemInput>() {
            ("PutItem", i.table_name().unwrap_or_default().to_owned())
        } else if let Some(i) = input.downcast_ref::<update_item::UpdateItemInput>() {
            ("UpdateItem", i.table_name().unwrap_or_default().to_owned())
        } else if let Some(i) = input.downcast_ref::<delete_item::DeleteItemInput>() {
            ("DeleteItem", i.table_name().unwrap_or_default().to_owned())
        } else if input.downcast_ref::<transact_write_items::TransactWriteItemsInput>().is_some() {
            ("TransactWriteItems", String::new())
        } else if input.downcast_ref::<batch_write_item::BatchWriteItemInput>().is_some() {
            ("BatchWriteItem", String::new())
        } else {
            return Ok(()); // DescribeEndpoints: the cold start's warm-up.
        };
        // The caller's standing (revocation) is read at most once per user and revocation bound
        // whatever the route (tests/tests/api/revocation.rs); what is counted here is the route's.
        let standing = operation == "GetItem" && table == "UsersTable";
        if !table.contains("Connections") && !standing {
            self.0.lock().unwrap().push(operation.to_owned());
        }
        Ok(())
    }
}

/// What the README states: a project request costs one BatchGetItem (the access check) besides
/// its own call; only a function's first request for a project adds a GetItem (its
/// organization, cached since it never changes). Refusals stop after the BatchGetItem.
#[tokio::test]
async fn a_project_request_costs_one_batch_get_item_besides_its_own_call() {
    let calls = Calls::default();
    let hook = calls.clone();
    let h = Harness::with(move |s| s.test_dynamodb_interceptors.push(SharedInterceptor::new(hook))).await;
    let team = Team::new(&h, h.user("owner")).await;
    let viewer = h.user("viewer");
    team.add(&h, &viewer, Role::Member, Some(Role::Viewer)).await;
    let stranger = h.user("stranger");
    let owner = &team.owner;
    let base = format!("/projects/{}/canvases", team.project);
    calls.take();

    let mut seen = Vec::new();
    let mut expect = |what: &str, reply: Reply, status: u16, expected: &[&str]| {
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        let made = calls.take();
        assert_eq!(made, expected, "{what}");
        seen.push(format!("{what}: {}", made.join(", ")));
        reply
    };
    let created = h.call(Some(owner), "POST", &base, Some(json!({"name": "c"}))).await;
    let created =
        expect("first create in the project", created, 201, &["GetItem", "BatchGetItem", "TransactWriteItems"]);
    let item = format!("{base}/{}", created.json()["id"].as_str().unwrap());
    let r = h.call(Some(owner), "POST", &base, Some(json!({"name": "d"}))).await;
    expect("create", r, 201, &["BatchGetItem", "TransactWriteItems"]);
    expect("get", h.call(Some(owner), "GET", &item, None).await, 200, &["BatchGetItem", "GetItem"]);
    expect("list page", h.call(Some(owner), "GET", &base, None).await, 200, &["BatchGetItem", "Query"]);
    let r = h.call(Some(owner), "PATCH", &item, Some(json!({"name": "e"}))).await;
    expect("update", r, 200, &["BatchGetItem", "UpdateItem"]);
    let r = h.call(Some(&viewer), "PATCH", &item, Some(json!({"name": "f"}))).await;
    expect("refused (403)", r, 403, &["BatchGetItem"]);
    expect("non-member (404)", h.call(Some(&stranger), "GET", &item, None).await, 404, &["BatchGetItem"]);
    expect("delete", h.call(Some(owner), "DELETE", &item, None).await, 204, &["BatchGetItem", "DeleteItem"]);
    let mine = h.call(Some(owner), "POST", "/canvases", Some(json!({"name": "mine"}))).await;
    let mine = expect("personal create (unchanged)", mine, 201, &["TransactWriteItems"]);
    let mine = format!("/canvases/{}", mine.json()["id"].as_str().unwrap());
    expect("personal get (unchanged)", h.call(Some(owner), "GET", &mine, None).await, 200, &["GetItem"]);
    let project = format!("/projects/{}", team.project);
    expect("get project", h.call(Some(owner), "GET", &project, None).await, 200, &["BatchGetItem"]);
    println!("DynamoDB calls per request:\n  {}", seen.join("\n  "));
}
