//! Realtime end to end, with real WebSocket clients against the local gateway: the realtime
//! authorizer and routes functions authorize and track connections, DynamoDB Local's streams
//! feed the push function changes, and pushes go out through the local Management API, as they
//! would in AWS.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{SinkExt, StreamExt};
use integration_tests::{Harness, User};
use serde_json::{json, Value};
use shared::access::Role;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Live {
    h: Harness,
    ws: String,
}

async fn live() -> Live {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let h = Harness::with(|s| s.gateway_url = Some(base.clone())).await;
    tokio::spawn(local_stack::gateway::serve(h.stack.clone(), listener));
    local_stack::streams::spawn_pumps(h.stack.clone()).await.expect("stream pumps start");
    let ws = format!("{}{}", base.replacen("http", "ws", 1), local_stack::websocket::PATH);
    Live { h, ws }
}

impl Live {
    async fn connect_query(&self, user: &User) -> Socket {
        connect_async(format!("{}?token={}", self.ws, user.token)).await.expect("connects").0
    }

    /// Browsers cannot set headers: the token rides in `Sec-WebSocket-Protocol`.
    async fn connect_protocol(&self, user: &User) -> Socket {
        let mut request = self.ws.as_str().into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", format!("bearer, {}", user.token).parse().unwrap());
        let (socket, response) = connect_async(request).await.expect("connects");
        assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
        socket
    }

    async fn connections_of(&self, user: &User) -> usize {
        let client = shared::runtime::local_dynamodb_client(self.h.stack.settings.dynamodb_endpoint.clone());
        let out = client
            .query()
            .table_name("ConnectionsTable")
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user.id.clone()))
            .send()
            .await
            .unwrap();
        out.count() as usize
    }
}

/// Events received within `window`, stopping early once `until` matches one.
async fn events(socket: &mut Socket, window: Duration, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + window;
    let mut seen = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline.into(), socket.next()).await {
        if let Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            let done = until(&event);
            seen.push(event);
            if done {
                break;
            }
        }
    }
    seen
}

fn is_message(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["type"] == "message.created" && e["id"] == id
}

/// Appends a message: its id and the `seq` the API answered with.
async fn append(h: &Harness, user: &User, sid: &str, text: &str) -> (String, u64) {
    let r = h
        .call(Some(user), "POST", &format!("/sessions/{sid}/messages"), Some(json!({"role": "user", "content": text})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let message = r.json();
    (message["id"].as_str().unwrap().to_owned(), message["seq"].as_u64().expect("the API numbers messages"))
}

/// Every table the registry marks `pushed` streams into the push function, which names it in
/// its environment, and no other table does.
#[test]
fn every_pushed_table_streams_into_the_push_function() {
    let template = template::Template::load_default().unwrap();
    let push = template.function_by_binary("realtime-push").expect("the push function");
    let pushed: Vec<_> = shared::owned::OWNED_TABLES.iter().filter(|t| t.pushed).collect();
    let streamed: BTreeSet<&str> = push.streams.iter().map(String::as_str).collect();
    assert_eq!(streamed, pushed.iter().map(|t| t.logical_id).collect());
    for table in pushed {
        let expected = template::EnvValue::Ref(table.logical_id.to_owned());
        assert_eq!(push.environment.get(table.env), Some(&expected), "{}", table.env);
    }
}

/// One local gateway at a time: connections live in one table, and a second gateway would
/// rightly answer 410 for the first one's connections (as a second API would in AWS).
#[tokio::test]
async fn realtime() {
    let live = live().await;
    pushes_reach_all_of_the_owners_connections_and_no_one_else(&live).await;
    connections_without_a_valid_token_are_refused(&live).await;
    dropped_and_gone_connections_are_cleaned_up(&live).await;
    project_changes_reach_its_readers_and_no_one_else(&live).await;
    push_latency_over_200_messages(&live).await;
}

async fn pushes_reach_all_of_the_owners_connections_and_no_one_else(live: &Live) {
    let h = &live.h;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let mut a1 = live.connect_query(&alice).await;
    let mut a2 = live.connect_protocol(&alice).await;
    let mut b1 = live.connect_query(&bob).await;
    assert_eq!((live.connections_of(&alice).await, live.connections_of(&bob).await), (2, 1));

    let sid = h.call(Some(&alice), "POST", "/sessions", Some(json!({"title": "live"}))).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mid, seq) = append(h, &alice, &sid, "secret plan").await;
    for socket in [&mut a1, &mut a2] {
        // Streams of different tables are not ordered with each other: wait for both events.
        let mut got = events(socket, Duration::from_secs(10), is_message(&mid)).await;
        let created = |e: &Value| e["type"] == "session.created" && e["id"] == json!(sid);
        if !got.iter().any(created) {
            got.extend(events(socket, Duration::from_secs(10), created).await);
        }
        let pushed = got
            .iter()
            .find(|e| is_message(&mid)(e))
            .unwrap_or_else(|| panic!("alice's socket missed the message: {got:?}"));
        assert_eq!(pushed["session_id"], json!(sid));
        assert_eq!(pushed["seq"], json!(seq), "the push numbers the message as the API does: {pushed}");
        assert!(!pushed.to_string().contains("secret plan"), "pushes name what changed, not its content");
        assert!(got.iter().any(created), "alice's socket missed the session: {got:?}");
    }
    // Bob names alice's session: nothing to subscribe to, and he still hears nothing of hers.
    b1.send(Message::text(json!({"action": "subscribe", "session_id": sid}).to_string())).await.unwrap();
    let reply = events(&mut b1, Duration::from_secs(5), |_| true).await;
    assert_eq!(reply.first().map(|e| e["type"].clone()), Some(json!("error")), "{reply:?}");
    let (mid2, seq2) = append(h, &alice, &sid, "second").await;
    let got = events(&mut a1, Duration::from_secs(10), is_message(&mid2)).await;
    let pushed = got.iter().find(|e| is_message(&mid2)(e)).unwrap_or_else(|| panic!("missed: {got:?}"));
    assert_eq!((seq, seq2), (1, 2));
    assert_eq!(pushed["seq"], json!(seq2), "{pushed}");
    let heard = events(&mut b1, Duration::from_secs(2), |_| false).await;
    assert!(heard.is_empty(), "bob heard alice's events: {heard:?}");

    // Bob's own change reaches bob, not alice.
    let bob_canvas = h.call(Some(&bob), "POST", "/canvases", Some(json!({"name": "b"}))).await.json()["id"].clone();
    let got = events(&mut b1, Duration::from_secs(10), |e| e["id"] == bob_canvas).await;
    assert!(got.iter().any(|e| e["type"] == "canvas.created" && e["id"] == bob_canvas));
    let alice_heard = events(&mut a2, Duration::from_secs(2), |_| false).await;
    assert!(alice_heard.iter().all(|e| e["id"] != bob_canvas), "alice heard bob's canvas");

    // Ping works over the same path as pushes.
    a1.send(Message::text(r#"{"action":"ping"}"#)).await.unwrap();
    assert_eq!(events(&mut a1, Duration::from_secs(5), |e| e["type"] == "pong").await.last().unwrap()["type"], "pong");

    // A client without a socket polls and gets the same messages, numbered as they were pushed.
    let polled = h.list_all(&alice, &format!("/sessions/{sid}/messages"), 10).await.0;
    let ids: Vec<(&str, u64)> =
        polled.iter().map(|m| (m["id"].as_str().unwrap(), m["seq"].as_u64().unwrap())).collect();
    assert_eq!(ids, vec![(mid.as_str(), seq), (mid2.as_str(), seq2)]);
}

async fn connections_without_a_valid_token_are_refused(live: &Live) {
    let alice = live.h.user("alice");
    let expired = {
        let s = &live.h.stack.settings;
        let claims = json!({"sub": alice.id, "iss": s.issuer, "aud": s.audience, "exp": jsonwebtoken::get_current_timestamp() - 3600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(s.jwt_secret.as_bytes()),
        )
        .unwrap()
    };
    for url in [live.ws.clone(), format!("{}?token=garbage", live.ws), format!("{}?token={expired}", live.ws)] {
        match connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401, "{url}"),
            other => panic!("{url} was not refused: {:?}", other.map(|(_, r)| r.status())),
        }
    }
    assert_eq!(live.connections_of(&alice).await, 0, "no refused connection was stored");
}

async fn dropped_and_gone_connections_are_cleaned_up(live: &Live) {
    let h = &live.h;
    let alice = h.user("alice");
    let mut kept = live.connect_query(&alice).await;
    let dropped = live.connect_query(&alice).await;
    assert_eq!(live.connections_of(&alice).await, 2);
    drop(dropped); // no close frame: the network just went away
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.connections_of(&alice).await != 1 {
        assert!(Instant::now() < deadline, "$disconnect did not remove the dropped connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A connection API Gateway no longer knows (410 Gone) is forgotten on the next push.
    let client = shared::runtime::local_dynamodb_client(h.stack.settings.dynamodb_endpoint.clone());
    client
        .put_item()
        .table_name("ConnectionsTable")
        .item("user_id", AttributeValue::S(alice.id.clone()))
        .item("id", AttributeValue::S("stale-connection".into()))
        .item("expires_at", AttributeValue::N((jsonwebtoken::get_current_timestamp() + 600).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.connections_of(&alice).await, 2);
    let canvas = h.call(Some(&alice), "POST", "/canvases", Some(json!({"name": "x"}))).await.json()["id"].clone();
    assert!(!events(&mut kept, Duration::from_secs(10), |e| e["id"] == canvas).await.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.connections_of(&alice).await != 1 {
        assert!(Instant::now() < deadline, "the gone connection was not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A project member's socket, and whether they hear the project's changes.
struct Listener {
    name: &'static str,
    user: User,
    socket: Socket,
}

/// Waits until every listener has heard `wanted`, and checks the event names the project.
async fn all_hear(listeners: &mut [&mut Listener], wanted: impl Fn(&Value) -> bool, project: &str) {
    for l in listeners {
        let got = events(&mut l.socket, Duration::from_secs(10), &wanted).await;
        let event = got.iter().find(|e| wanted(e)).unwrap_or_else(|| panic!("{} missed the change: {got:?}", l.name));
        assert_eq!(event["project_id"], json!(project), "{}: {event}", l.name);
        assert!(!event.to_string().contains("Shared plan"), "pushes name what changed, not its content");
    }
}

/// Checks that no listener hears anything of `project` for a while (the others, who hear the
/// same batch, have already heard it), then that each one's socket still works: a change of
/// their own reaches them, so the silence was not a dead connection.
async fn none_hear(h: &Harness, listeners: &mut [&mut Listener], project: &str) {
    for l in listeners.iter_mut() {
        let heard = events(&mut l.socket, Duration::from_secs(2), |_| false).await;
        assert!(heard.iter().all(|e| e["project_id"] != json!(project)), "{} heard the project: {heard:?}", l.name);
        let own = h.call(Some(&l.user), "POST", "/canvases", Some(json!({"name": "mine"}))).await.json()["id"].clone();
        let got = events(&mut l.socket, Duration::from_secs(10), |e| e["id"] == own).await;
        assert!(got.iter().any(|e| e["id"] == own), "{}'s socket is dead: {got:?}", l.name);
    }
}

/// A change in a project reaches everyone who may read it (its members, viewers included, and
/// its organization's owners and admins) and nobody else; a member removed from the project,
/// or from the organization, hears nothing of changes made after the removal was answered.
async fn project_changes_reach_its_readers_and_no_one_else(live: &Live) {
    let h = &live.h;
    let team = crate::teams::Team::new(h, h.user("owner")).await;
    let other_project = h
        .call(Some(&team.owner), "POST", &format!("/orgs/{}/projects", team.org), Some(json!({"name": "Other"})))
        .await;
    assert_eq!(other_project.status, 201, "{}", other_project.text());
    let other_project = other_project.json()["id"].as_str().unwrap().to_owned();
    let listener = |name: &'static str, user: User| async move {
        let socket = live.connect_query(&user).await;
        Listener { name, user, socket }
    };
    let mut owner = listener("org owner", team.owner.clone()).await;
    let mut org_admin = listener("org admin outside the project", h.user("org-admin")).await;
    let mut admin = listener("project admin", h.user("admin")).await;
    let mut member = listener("project member", h.user("member")).await;
    let mut viewer = listener("project viewer", h.user("viewer")).await;
    let mut stranger = listener("non-member", h.user("stranger")).await;
    let mut elsewhere = listener("member of another project", h.user("elsewhere")).await;
    team.add(h, &org_admin.user, Role::Admin, None).await;
    team.add(h, &admin.user, Role::Member, Some(Role::Admin)).await;
    team.add(h, &member.user, Role::Member, Some(Role::Member)).await;
    team.add(h, &viewer.user, Role::Viewer, Some(Role::Viewer)).await;
    team.add(h, &elsewhere.user, Role::Member, None).await;
    let r = team.put_member(h, &team.owner, &format!("/projects/{other_project}"), &elsewhere.user, Role::Admin).await;
    assert_eq!(r.status, 204, "{}", r.text());

    let canvases = format!("/projects/{}/canvases", team.project);
    let created = h.call(Some(&member.user), "POST", &canvases, Some(json!({"name": "Shared plan"}))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let canvas = created.json()["id"].as_str().unwrap().to_owned();
    let is_canvas = |verb: &'static str| {
        let canvas = canvas.clone();
        move |e: &Value| e["type"] == format!("canvas.{verb}") && e["id"] == json!(canvas)
    };
    all_hear(
        &mut [&mut owner, &mut org_admin, &mut admin, &mut member, &mut viewer],
        is_canvas("created"),
        &team.project,
    )
    .await;
    none_hear(h, &mut [&mut stranger, &mut elsewhere], &team.project).await;

    // Removals answered, then a change: the removed hear nothing of it, the others do.
    let r = h
        .call(Some(&team.owner), "DELETE", &format!("/projects/{}/members/{}", team.project, member.user.id), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = h.call(Some(&team.owner), "DELETE", &format!("/orgs/{}/members/{}", team.org, viewer.user.id), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let renamed = h
        .call(Some(&admin.user), "PATCH", &format!("{canvases}/{canvas}"), Some(json!({"name": "Shared plan 2"})))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    all_hear(&mut [&mut owner, &mut org_admin, &mut admin], is_canvas("updated"), &team.project).await;
    none_hear(h, &mut [&mut member, &mut viewer, &mut stranger, &mut elsewhere], &team.project).await;
}

/// Push latency, from the append request to the event on the socket, over 200 messages. It
/// prints the figures (a benchmark, not a timed assertion) and checks every one arrived.
async fn push_latency_over_200_messages(live: &Live) {
    let h = &live.h;
    let alice = h.user("alice");
    let mut socket = live.connect_query(&alice).await;
    let sid =
        h.call(Some(&alice), "POST", "/sessions", Some(json!({}))).await.json()["id"].as_str().unwrap().to_owned();
    let mut latencies = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        let (mid, seq) = append(h, &alice, &sid, &format!("m{i}")).await;
        let got = events(&mut socket, Duration::from_secs(10), is_message(&mid)).await;
        let pushed = got.iter().find(|e| is_message(&mid)(e)).unwrap_or_else(|| panic!("message {i} was not pushed"));
        assert_eq!(pushed["seq"], json!(seq), "message {i}");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "push latency over {} messages: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
}
