//! The route-driven security suite. Routes come from template.yaml, request bodies from the
//! events/ fixtures, so a new route is attacked automatically, and a route the suite cannot
//! exercise (no fixture, no way to create its item) fails the suite.
//!
//! For every route, against the real handlers on DynamoDB Local: broken authentication (OWASP
//! API2), another user's ids (API1), protected and unknown fields (API3), malformed input and
//! oversized bodies (API4), bad paging; and no response carries another user's data or an
//! internal attribute. Bob attacks with his token and with his API keys (personal, and admin
//! of his own project): a key reaches no more of alice's data than his token does.

use std::collections::BTreeMap;

use integration_tests::{fixture_body, fixtures, public_example_status, public_routes, Harness, Reply, User};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Attribute names that are storage details and must never appear in a response.
const INTERNAL: &[&str] = &["session_order", "user_id"];
/// Where `user_id` legitimately appears: the caller's own profile.
const OWN_PROFILE_ROUTES: &[&str] = &["GET /me", "GET /me/export"];
const PROTECTED_FIELDS: &[&str] = &["user_id", "id", "version", "created_at", "updated_at"];
const MISSING_ID: &str = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10";

#[derive(Clone)]
struct Route {
    key: String,
    method: String,
    path: String,
    body: Option<Value>,
}

impl Route {
    /// The path names something: an item, an organization, a project or a member.
    fn has_id(&self) -> bool {
        self.path.contains('{')
    }

    /// The collection of the route's `{id}` (`/projects/{project_id}/sessions`), else its path.
    fn collection(&self) -> &str {
        self.path.find("/{id}").map_or(&self.path, |end| &self.path[..end])
    }

    /// The path with every parameter naming nothing.
    fn nobodys(&self) -> String {
        ["{id}", "{org_id}", "{project_id}", "{user_id}"]
            .iter()
            .fold(self.path.clone(), |p, n| p.replace(n, MISSING_ID))
    }
}

/// A user's organization and project, and their items by collection.
#[derive(Default)]
struct Holdings {
    org: String,
    project: String,
    items: BTreeMap<String, String>,
}

fn routes(h: &Harness) -> Vec<Route> {
    let by_route: BTreeMap<String, String> = fixtures().into_iter().map(|(file, route)| (route, file)).collect();
    h.stack
        .template
        .api_route_keys()
        .into_iter()
        .map(|key| {
            let file = by_route
                .get(&key)
                .unwrap_or_else(|| panic!("{key} has no events/ fixture: run `cargo run -p local-stack -- events`"));
            let (method, path) = key.split_once(' ').unwrap();
            Route { method: method.into(), path: path.into(), body: fixture_body(file), key }
        })
        .collect()
}

struct Suite<'h> {
    h: &'h Harness,
    alice: User,
    bob: User,
    /// Alice's ids: her item per collection (created through the collection's POST fixture),
    /// her organizations and projects.
    owned: BTreeMap<String, String>,
    holdings: BTreeMap<String, Holdings>,
    /// Bob acting with each of his API keys.
    bob_keys: Vec<(&'static str, User)>,
    cases: usize,
}

fn body_bytes(body: &Option<Value>) -> Option<Vec<u8>> {
    body.as_ref().map(|b| b.to_string().into_bytes())
}

fn headers(user: Option<&User>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(u) = user {
        h.push(Harness::auth(u));
    }
    h
}

impl<'h> Suite<'h> {
    async fn new(h: &'h Harness) -> Self {
        let (alice, bob) = (h.user("alice"), h.user("bob"));
        let mut suite =
            Self { h, alice, bob, owned: BTreeMap::new(), holdings: BTreeMap::new(), bob_keys: Vec::new(), cases: 0 };
        suite.populate().await;
        let project = suite.holdings[&suite.bob.id].project.clone();
        for (what, scope) in [
            ("personal API key", json!({"kind": "personal"})),
            ("project API key", json!({"kind": "project", "project_id": project, "role": "admin"})),
        ] {
            let key = suite.api_key(&suite.bob, scope).await;
            suite.bob_keys.push((what, key));
        }
        suite
    }

    /// `user` acting with a new API key of theirs with this scope.
    async fn api_key(&self, user: &User, scope: Value) -> User {
        let r = self.h.call(Some(user), "POST", "/auth/api-keys", Some(json!({"name": "suite", "scope": scope}))).await;
        assert_eq!(r.status, 201, "{}", r.text());
        User { id: user.id.clone(), token: r.json()["key"].as_str().unwrap().to_owned() }
    }

    /// The route's path with `user`'s ids (the caller's own id for `{user_id}`).
    fn path_of(&self, route: &Route, user: &User) -> String {
        let held = &self.holdings[&user.id];
        let mut path = route.path.replace("{org_id}", &held.org).replace("{project_id}", &held.project);
        path = path.replace("{user_id}", &user.id);
        if route.path.contains("{id}") {
            let id = held
                .items
                .get(route.collection())
                .unwrap_or_else(|| panic!("{}: no item to address: its collection needs a POST fixture", route.key));
            path = path.replace("{id}", id);
        }
        path
    }

    /// Gives alice and bob two organizations (the first with two projects and two members, a
    /// helper and themselves, in its first project too) and two items in every collection,
    /// personal and in their project, so every list has a second page.
    async fn populate(&mut self) {
        let all = routes(self.h);
        let body = |key: &str| all.iter().find(|r| r.key == key).and_then(|r| r.body.clone());
        for user in [self.alice.clone(), self.bob.clone()] {
            let mut held = Holdings::default();
            for _ in 0..2 {
                let r = self.h.call(Some(&user), "POST", "/orgs", body("POST /orgs")).await;
                assert_eq!(r.status, 201, "{}", r.text());
                held.org = r.json()["id"].as_str().unwrap().to_owned();
            }
            let projects = format!("/orgs/{}/projects", held.org);
            for _ in 0..2 {
                let r = self.h.call(Some(&user), "POST", &projects, body("POST /orgs/{org_id}/projects")).await;
                assert_eq!(r.status, 201, "{}", r.text());
                held.project = r.json()["id"].as_str().unwrap().to_owned();
            }
            let helper = self.h.user("helper");
            for (scope, member) in [
                (format!("/orgs/{}", held.org), &helper),
                (format!("/projects/{}", held.project), &helper),
                (format!("/projects/{}", held.project), &user),
            ] {
                let r = self
                    .h
                    .call(Some(&user), "PUT", &format!("{scope}/members/{}", member.id), Some(json!({"role": "admin"})))
                    .await;
                assert_eq!(r.status, 204, "{}", r.text());
            }
            if user.id == self.alice.id {
                self.owned.insert("org".into(), held.org.clone());
                self.owned.insert("project".into(), held.project.clone());
            }
            self.holdings.insert(user.id.clone(), held);
        }
        // The POSTs of collections with item routes (`/canvases`, `/orgs/{org_id}/invitations`).
        let has_items = |path: &str| all.iter().any(|r| r.path.starts_with(&format!("{path}/{{id}}")));
        let creators: Vec<&Route> =
            all.iter().filter(|r| r.method == "POST" && !r.path.contains("{id}") && has_items(&r.path)).collect();
        for route in &creators {
            for user in [self.alice.clone(), self.bob.clone()] {
                for _ in 0..2 {
                    let path = self.path_of(route, &user);
                    let r = self.h.send("POST", &path, headers(Some(&user)), body_bytes(&route.body).as_deref()).await;
                    assert_eq!(r.status, 201, "{}: {}", route.key, r.text());
                    let v = r.json();
                    let id = v.get("file").unwrap_or(&v)["id"].as_str().unwrap().to_owned();
                    if user.id == self.alice.id {
                        self.owned.insert(route.collection().to_owned(), id.clone());
                    }
                    self.holdings.get_mut(&user.id).unwrap().items.insert(route.collection().to_owned(), id);
                }
            }
        }
        // Children: two messages in alice's and in bob's first session.
        let messages: Vec<Route> =
            routes(self.h).into_iter().filter(|r| r.method == "POST" && r.path.ends_with("/messages")).collect();
        for route in messages {
            for user in [self.alice.clone(), self.bob.clone()] {
                let sessions = self.path_of(&Route { path: route.collection().to_owned(), ..route.clone() }, &user);
                let (items, _) = self.h.list_all(&user, &sessions, 100).await;
                let sid = items[0]["id"].as_str().unwrap().to_owned();
                if user.id == self.alice.id {
                    self.owned.insert(route.collection().to_owned(), sid.clone());
                }
                self.holdings.get_mut(&user.id).unwrap().items.insert(route.collection().to_owned(), sid);
                for _ in 0..2 {
                    let r = self
                        .h
                        .send(
                            "POST",
                            &self.path_of(&route, &user),
                            headers(Some(&user)),
                            body_bytes(&route.body).as_deref(),
                        )
                        .await;
                    assert_eq!(r.status, 201, "{}", r.text());
                }
            }
        }
    }

    fn alice_path(&self, route: &Route) -> String {
        self.path_of(route, &self.alice)
    }

    /// Everything alice and bob own, as the export returns it.
    async fn snapshot(&self) -> (String, String) {
        let all = |u: &User| {
            let u = u.clone();
            async move { serde_json::to_string(&self.h.list_all(&u, "/me/export", 100).await.0).unwrap() }
        };
        (all(&self.alice).await, all(&self.bob).await)
    }

    fn check_no_leak(&self, route: &Route, caller: &User, reply: &Reply) {
        if public_routes().contains(&route.key) {
            return; // No user data: the health check and the API description.
        }
        let text = reply.text();
        let victim = if caller.id == self.alice.id { &self.bob } else { &self.alice };
        assert!(!text.contains(&victim.id), "{}: response holds {}'s data: {text}", route.key, victim.id);
        if caller.id == self.bob.id {
            for id in self.owned.values() {
                assert!(!text.contains(id.as_str()), "{}: response names alice's item {id}", route.key);
            }
        }
        for name in INTERNAL {
            let quoted = format!("\"{name}\"");
            if *name == "user_id" && OWN_PROFILE_ROUTES.contains(&route.key.as_str()) {
                continue;
            }
            assert!(!text.contains(&quoted), "{}: internal attribute {name} in response: {text}", route.key);
        }
    }

    #[track_caller]
    fn expect_4xx_problem(&mut self, route: &Route, what: &str, reply: &Reply) {
        self.cases += 1;
        assert!(
            (400..500).contains(&reply.status),
            "{} ({what}): expected a 4xx, got {}: {}",
            route.key,
            reply.status,
            reply.text()
        );
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{} ({what})", route.key);
    }

    async fn broken_authentication(&mut self, route: &Route) {
        let mallory = self.h.user("mallory");
        let settings = &self.h.stack.settings;
        let now = jsonwebtoken::get_current_timestamp();
        let claims =
            |exp: u64| json!({"sub": mallory.id, "iss": settings.issuer, "aud": settings.audience, "exp": exp});
        let sign = |claims: &Value, secret: &[u8]| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        let tokens = [
            ("no token", None),
            ("malformed token", Some("Bearer not.a.token".to_owned())),
            ("expired token", Some(format!("Bearer {}", sign(&claims(now - 3600), settings.jwt_secret.as_bytes())))),
            (
                "wrong key",
                Some(format!("Bearer {}", sign(&claims(now + 600), b"another-secret-of-at-least-32-bytes!!"))),
            ),
        ];
        // Keys: one nobody created, and bob's real key presented as alice's (the user part of
        // the key names whose key it is; the secret is bob's).
        let b64 = |id: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id);
        let forged = format!("Bearer ak_{MISSING_ID}.{}.{}", b64(&mallory.id), "A".repeat(43));
        let bobs_key = &self.bob_keys[0].1.token;
        let parts: Vec<&str> = bobs_key.splitn(3, '.').collect();
        let swapped = format!("Bearer {}.{}.{}", parts[0], b64(&self.alice.id), parts[2]);
        let tokens =
            tokens.into_iter().chain([("forged API key", Some(forged)), ("API key under another user", Some(swapped))]);
        let path = self.alice_path(route);
        for (what, authorization) in tokens {
            let mut h = headers(None);
            if let Some(a) = authorization {
                h.push(("authorization".into(), a));
            }
            let reply = self.h.send(&route.method, &path, h, body_bytes(&route.body).as_deref()).await;
            self.cases += 1;
            if public_routes().contains(&route.key) {
                assert_eq!(
                    reply.status,
                    public_example_status(&route.key),
                    "{} is public: {}",
                    route.key,
                    reply.text()
                );
            } else {
                assert_eq!(reply.status, 401, "{} ({what}): {}", route.key, reply.text());
                assert_eq!(reply.header("content-type"), Some("application/problem+json"));
                assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
            }
        }
        assert!(
            self.h.list_all(&mallory, "/me/export", 100).await.0.iter().all(|i| i["kind"] == "profile"),
            "{}: a refused token wrote data for its subject",
            route.key
        );
    }

    /// Bob names alice's item: the answer is byte for byte the answer for an id nobody has.
    async fn another_users_ids(&mut self, route: &Route) {
        if !route.has_id() {
            return;
        }
        let alices = self.alice_path(route);
        let body = body_bytes(&route.body);
        let theirs =
            self.h.send_as("fixed-request-id", &route.method, &alices, headers(Some(&self.bob)), body.as_deref()).await;
        let nobodys = self
            .h
            .send_as("fixed-request-id", &route.method, &route.nobodys(), headers(Some(&self.bob)), body.as_deref())
            .await;
        self.cases += 1;
        assert_eq!(theirs.status, 404, "{}: bob reached alice's item: {}", route.key, theirs.text());
        assert_eq!(theirs.body, nobodys.body, "{}: the 404 tells alice's item exists", route.key);
        assert_eq!(theirs.headers.get("content-type"), nobodys.headers.get("content-type"));
        self.check_no_leak(route, &self.bob.clone(), &theirs);
        // With a key, a route may refuse keys outright (403), but alike for alice's ids and
        // nobody's.
        for (what, key) in self.bob_keys.clone() {
            let theirs =
                self.h.send_as("fixed-request-id", &route.method, &alices, headers(Some(&key)), body.as_deref()).await;
            let nobodys = self
                .h
                .send_as("fixed-request-id", &route.method, &route.nobodys(), headers(Some(&key)), body.as_deref())
                .await;
            self.cases += 1;
            assert!(
                matches!(theirs.status, 403 | 404),
                "{}: bob's {what} reached alice's item: {}",
                route.key,
                theirs.text()
            );
            assert_eq!(theirs.body, nobodys.body, "{}: bob's {what} learns alice's item exists", route.key);
            self.check_no_leak(route, &self.bob.clone(), &theirs);
        }
    }

    async fn protected_and_unknown_fields(&mut self, route: &Route) {
        let Some(Value::Object(body)) = &route.body else { return };
        let path = self.alice_path(route);
        for field in PROTECTED_FIELDS.iter().copied().chain(["session_order", "owner", "isAdmin"]) {
            let mut tampered = body.clone();
            tampered.insert(field.to_owned(), json!("injected"));
            let reply = self
                .h
                .send(
                    &route.method,
                    &path,
                    headers(Some(&self.alice)),
                    Some(Value::Object(tampered).to_string().as_bytes()),
                )
                .await;
            self.expect_4xx_problem(route, field, &reply);
            assert_eq!(reply.status, 400, "{} with {field}", route.key);
        }
    }

    async fn malformed_input(&mut self, route: &Route) {
        let Some(Value::Object(body)) = &route.body else { return };
        let path = self.alice_path(route);
        let mut bodies: Vec<(String, Vec<u8>)> = vec![
            ("truncated JSON".into(), b"{\"name\": ".to_vec()),
            ("invalid UTF-8".into(), b"{\"name\": \"\xff\xfe\"}".to_vec()),
            ("empty body".into(), Vec::new()),
            ("array".into(), b"[]".to_vec()),
            ("null".into(), b"null".to_vec()),
            ("string".into(), b"\"text\"".to_vec()),
            ("oversized".into(), format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024)).into_bytes()),
        ];
        for (field, value) in body {
            let wrong = match value {
                Value::String(_) => json!(12345),
                Value::Number(_) => json!("not a number"),
                Value::Object(_) | Value::Array(_) => json!("not a document"),
                _ => json!({"unexpected": true}),
            };
            let mut b = body.clone();
            b.insert(field.clone(), wrong);
            bodies.push((format!("wrong type for {field}"), Value::Object(b).to_string().into_bytes()));
        }
        for (what, bytes) in bodies {
            let reply = self.h.send(&route.method, &path, headers(Some(&self.alice)), Some(&bytes)).await;
            self.expect_4xx_problem(route, &what, &reply);
            if what == "oversized" {
                assert_eq!(reply.status, 413, "{} oversized", route.key);
            }
        }
        let form = vec![Harness::auth(&self.alice), ("content-type".into(), "text/plain".into())];
        let reply = self.h.send(&route.method, &path, form, body_bytes(&route.body).as_deref()).await;
        self.expect_4xx_problem(route, "not JSON", &reply);
    }

    async fn paging(&mut self, route: &Route) {
        if route.method != "GET" {
            return;
        }
        let path = self.alice_path(route);
        let first = self.h.send("GET", &format!("{path}?limit=1"), headers(Some(&self.alice)), None).await;
        let is_json = first.header("content-type") == Some("application/json");
        if first.status != 200 || !is_json || first.json().get("items").is_none() {
            return;
        }
        self.cases += 1;
        let alices_cursor = first.json()["next_cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: alice has two items", route.key))
            .to_owned();
        for query in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=abc",
            "limit=1e3",
            "cursor=garbage",
            "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let reply = self.h.send("GET", &format!("{path}?{query}"), headers(Some(&self.alice)), None).await;
            self.expect_4xx_problem(route, query, &reply);
        }
        // Alice's cursor, presented by bob, on bob's own list of the same kind.
        let bobs_path = self.path_of(route, &self.bob);
        let reply =
            self.h.send("GET", &format!("{bobs_path}?cursor={alices_cursor}"), headers(Some(&self.bob)), None).await;
        self.expect_4xx_problem(route, "foreign cursor", &reply);
        assert_eq!(reply.status, 400);
        // And bob's own list never shows alice's items.
        let (items, _) = self.h.list_all(&self.bob, &bobs_path, 100).await;
        let text = serde_json::to_string(&items).unwrap();
        for id in self.owned.values() {
            assert!(!text.contains(id.as_str()), "{}: bob's list holds alice's {id}", route.key);
        }
    }

    async fn no_leaks_in_successful_answers(&mut self, route: &Route) {
        if route.method != "GET" {
            return;
        }
        let reply = self.h.send("GET", &self.alice_path(route), headers(Some(&self.alice)), None).await;
        if (200..300).contains(&reply.status) {
            self.cases += 1;
            self.check_no_leak(route, &self.alice.clone(), &reply);
        }
        // Bob's keys on his own paths: whatever they may read holds nothing of alice's.
        let bobs = self.path_of(route, &self.bob);
        for (_, key) in self.bob_keys.clone() {
            let reply = self.h.send("GET", &bobs, headers(Some(&key)), None).await;
            if (200..300).contains(&reply.status) {
                self.cases += 1;
                self.check_no_leak(route, &self.bob.clone(), &reply);
            }
        }
    }
}

#[tokio::test]
async fn every_route_resists_the_owasp_api_top_risks() {
    let h = Harness::new().await;
    let mut suite = Suite::new(&h).await;
    let before = suite.snapshot().await;
    let routes = routes(&h);
    // Reads first, destructive routes last, so every route finds alice's items in place.
    let mut ordered: Vec<&Route> = routes.iter().collect();
    ordered.sort_by_key(|r| (r.method == "DELETE", r.method != "GET"));
    for route in &ordered {
        suite.broken_authentication(route).await;
        suite.another_users_ids(route).await;
        suite.no_leaks_in_successful_answers(route).await;
        suite.paging(route).await;
    }
    assert_eq!(suite.snapshot().await, before, "refused requests changed somebody's data");
    for route in &ordered {
        suite.protected_and_unknown_fields(route).await;
        suite.malformed_input(route).await;
    }
    assert_eq!(suite.snapshot().await, before, "refused writes changed somebody's data");
    println!("security suite: {} routes, {} cases", routes.len(), suite.cases);
    assert!(suite.cases > routes.len() * 5);
}
