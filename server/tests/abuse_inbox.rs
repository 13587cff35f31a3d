//! The operator inbox under the public-internet rules, against a real hub on a real SQLite file
//! with operators made by the real `natter-hub operator add`: message ids are scoped to their
//! sender for operators too; operators are staff, so the budgets kept per client address never
//! throttle them (an office of operators shares one address); and what anyone may send the
//! inbox before signing in is bounded like the rest of the hub.

mod common;
mod inbox_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use common::{session, TestHub};
use futures_util::SinkExt as _;
use inbox_support::{add_operator, db_in, sign_in, until_listed};
use natter_hub::store::sqlite::{SqliteOptions, SqliteStore};
use natter_hub::Config;
use natter_protocol::inbox::{ConversationSummary, InboxEvent};
use natter_protocol::{ErrorCode, Role, ServerMessage};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse battery";

/// A hub on a fresh SQLite file with operators `ada` and `bob`, and the temp dir it lives in.
async fn hub_with_operators(config: Config) -> (TestHub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    add_operator(&db, "ada", "Ada Lovelace", PASSWORD);
    add_operator(&db, "bob", "Bob", PASSWORD);
    let store = SqliteStore::open(SqliteOptions::new(&db)).expect("open the database");
    (TestHub::with_store(config, Arc::new(store)).await, dir)
}

/// The `ack` fields of a reply's answer: (seq, duplicate).
fn acked(answer: &Value) -> (u64, bool) {
    (answer["seq"].as_u64().expect("a seq"), answer["duplicate"].as_bool().unwrap_or(false))
}

/// `POST /inbox/api/conversations/{conversation}/reply` with `{text, id}`.
async fn reply(
    op: &inbox_support::Operator,
    conversation: &str,
    id: &str,
    text: &str,
) -> (StatusCode, Value) {
    op.post(&format!("/inbox/api/conversations/{conversation}/reply"), json!({"text": text, "id": id})).await
}

/// An operator's reply id is theirs alone: another operator (or the visitor, or the bot) using
/// the same id first never swallows it, and only the operator's own re-send is a duplicate.
#[tokio::test]
async fn an_operators_reply_id_is_scoped_to_that_operator() {
    let (hub, _dir) = hub_with_operators(Config::for_tests()).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let bob = sign_in(&hub.url(""), "bob", PASSWORD).await;
    let mut feed = ada.feed().await;
    let s = session("scoped-ids");
    let (mut visitor, _) = hub.tab(&s).await;
    visitor.send(json!({"type":"user","id":"x-1","message":"hello"})).await;
    let record: ConversationSummary = feed
        .until(|e| match e {
            InboxEvent::Conversation { conversation } if conversation.last_role == Some(Role::User) => {
                Some(conversation)
            }
            _ => None,
        })
        .await;
    let bot = visitor
        .until(|m| match m {
            ServerMessage::Bot(b) => Some(b),
            _ => None,
        })
        .await;
    // The visitor's id, then the bot's (which every operator sees in the feed), reused by Ada.
    let (status, a1) = reply(&ada, &record.id, "x-1", "Ada on x-1").await;
    assert_eq!(status, StatusCode::OK, "{a1}");
    assert!(!acked(&a1).1, "the visitor's id swallowed Ada's reply: {a1}");
    let (_, a2) = reply(&ada, &record.id, &bot.id, "Ada on the bot's id").await;
    assert!(!acked(&a2).1, "the bot's id swallowed Ada's reply: {a2}");
    // Bob sends the id Ada used: his reply is his own.
    let (_, b1) = reply(&bob, &record.id, "x-1", "Bob on x-1").await;
    assert!(!acked(&b1).1, "Ada's id swallowed Bob's reply: {b1}");
    // Each operator's own re-send is recognised, with the seq it got the first time.
    let (_, again) = reply(&ada, &record.id, "x-1", "Ada on x-1").await;
    assert_eq!(acked(&again), (acked(&a1).0, true));
    let (_, again) = reply(&bob, &record.id, "x-1", "Bob on x-1").await;
    assert_eq!(acked(&again), (acked(&b1).0, true));
    // And the visitor may use an operator's id for a message of their own.
    visitor.send(json!({"type":"user","id":"x-1","message":"hello"})).await;
    let ack = visitor
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            _ => None,
        })
        .await;
    assert!(ack.duplicate, "the visitor's own re-send is a duplicate");
    visitor.send(json!({"type":"user","id":"op-idea","message":"mine"})).await;
    let (_, a3) = reply(&ada, &record.id, "op-idea", "Ada on op-idea").await;
    assert!(!acked(&a3).1, "{a3}");

    // Everything reached the visitor once, in order.
    let (_, page) = ada.get(&format!("/inbox/api/conversations/{}/messages", record.id)).await;
    let texts: Vec<&str> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["message"].as_str()).collect();
    for text in ["Ada on x-1", "Ada on the bot's id", "Bob on x-1", "mine", "Ada on op-idea"] {
        assert_eq!(texts.iter().filter(|t| **t == text).count(), 1, "{text:?} once in {texts:?}");
    }

    // Notes get ids the hub makes: unguessable, never shared, whatever the operators write.
    let mut ids = Vec::new();
    for op in [&ada, &bob, &ada] {
        let (status, note) = op
            .post(
                &format!("/inbox/api/conversations/{}/notes", record.id),
                json!({"text":"same note","id":"n-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{note}");
        let id = note["id"].as_str().expect("an id").to_string();
        assert!(id.len() == 33 && id.starts_with('h'), "a hub-made id: {id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three notes, three ids");
    let (_, detail) = bob.get(&format!("/inbox/api/conversations/{}", record.id)).await;
    assert_eq!(detail["notes"].as_array().map(Vec::len), Some(3), "{detail}");
}

/// An HTTP client whose connections come from `127.0.0.<last>`.
fn http_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("client")
}

/// One address trying name after name gets its share of the hub's sign-in attempts and no
/// more (each is an argon2 check, so the hub has a budget for all of them): operators signing
/// in from anywhere else are not locked out by it.
#[tokio::test]
async fn one_address_guessing_cannot_lock_operators_out_of_signing_in() {
    let (hub, _dir) = hub_with_operators(Config::for_tests()).await;
    let attacker = http_from(11);
    let base = hub.url("");
    let (mut tried, mut refused) = (0, 0);
    for i in 0..30 {
        let r = attacker
            .post(hub.url("/inbox/api/signin"))
            .header("origin", &base)
            .json(&json!({"name": format!("guess{i}"), "password": "not the password"}))
            .send()
            .await
            .expect("post");
        match r.status() {
            StatusCode::UNAUTHORIZED => tried += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["code"], json!("rate_limited"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((tried, refused), (10, 20), "ten tries, then one every six seconds");
    // The operators, from their own address, sign in at once.
    sign_in(&base, "ada", PASSWORD).await;
    sign_in(&base, "bob", PASSWORD).await;
}

/// Anyone can fail for a name: wrong passwords for an operator's name from elsewhere hold up
/// the guesser, not the operator at an address they signed in from.
#[tokio::test]
async fn a_guesser_elsewhere_cannot_lock_an_operator_out_of_their_office() {
    let (hub, _dir) = hub_with_operators(Config::for_tests()).await;
    let base = hub.url("");
    let office = http_from(21);
    let try_as = |client: &reqwest::Client, password: &str| {
        client
            .post(hub.url("/inbox/api/signin"))
            .header("origin", &base)
            .json(&json!({"name": "ada", "password": password}))
            .send()
    };
    assert_eq!(try_as(&office, PASSWORD).await.expect("post").status(), StatusCode::OK);
    let guesser = http_from(22);
    for _ in 0..5 {
        assert_eq!(try_as(&guesser, "guess").await.expect("post").status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(try_as(&guesser, PASSWORD).await.expect("post").status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(try_as(&http_from(23), PASSWORD).await.expect("post").status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        try_as(&office, PASSWORD).await.expect("post").status(),
        StatusCode::OK,
        "the office signs in"
    );
}

/// A made-up session cookie is a guessed sign-in that costs a store read: one address sending
/// them gets its share of lookups (a hundred, then ten a second) and is then refused before the
/// store is read; signed-in operators, from that address or any other, carry on.
#[tokio::test]
async fn made_up_session_cookies_are_budgeted_per_address() {
    let (hub, _dir) = hub_with_operators(Config::for_tests()).await;
    let base = hub.url("");
    let ada = sign_in(&base, "ada", PASSWORD).await;
    let attacker = http_from(12);
    let (mut unknown, mut refused) = (0, 0);
    let started = std::time::Instant::now();
    for i in 0..130 {
        let r = attacker
            .get(hub.url("/inbox/api/conversations"))
            .header("cookie", format!("natter_operator={i:064x}"))
            .send()
            .await
            .expect("get");
        match r.status() {
            StatusCode::UNAUTHORIZED => unknown += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["code"], json!("rate_limited"), "{body}");
                assert!(body["message"].as_str().is_some_and(|m| m.contains("session cookie")), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // A hundred at once, and ten more each second the loop took (a busy machine is slower).
    let refilled = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        unknown >= 100 && unknown <= 100 + refilled && refused > 0 && unknown + refused == 130,
        "{unknown} looked up, {refused} refused, {refilled} refilled"
    );
    assert_eq!(hub.metric("natter_limited_total{limit=\"inbox_session_lookups\"}").await, refused as u64);
    // The socket upgrade is held to the same budget: refused once the tokens that came back
    // since (ten a second) are spent too.
    let since = std::time::Instant::now();
    let mut looked_up = 0;
    loop {
        let socket = attacker
            .get(hub.url("/inbox/ws"))
            .header("cookie", "natter_operator=00")
            .header("origin", &base)
            .send()
            .await
            .expect("get");
        if socket.status() == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        looked_up += 1;
        let refilled = (since.elapsed().as_secs_f64() * 10.0).ceil() as usize;
        assert!(looked_up <= 1 + refilled, "{looked_up} socket upgrades looked up, {refilled} refilled");
    }
    // A signed-in operator is unaffected, and a request without a cookie is simply told to sign in.
    let (status, _) = ada.get("/inbox/api/conversations").await;
    assert_eq!(status, StatusCode::OK);
    let bare = attacker.get(hub.url("/inbox/api/me")).send().await.expect("get");
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
}

/// Operators are staff: an office of them behind one address is never held to the budgets
/// kept for anonymous clients of that address (requests per second, frames per connection).
/// Here the address's request budget is five, and they reply, write notes and read lists far
/// past it; visitors from that address are still held to it.
#[tokio::test]
async fn operators_behind_one_address_are_not_held_to_its_budgets() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 5;
    config.address_rate_per_sec = 0.1;
    config.frame_budget = 4096;
    let (hub, _dir) = hub_with_operators(config).await;
    let base = hub.url("");
    let ada = sign_in(&base, "ada", PASSWORD).await;
    let bob = sign_in(&base, "bob", PASSWORD).await;
    let mut feed = ada.feed().await;
    let mut bob_feed = bob.feed().await;
    let s = session("office");
    let (mut visitor, _) = hub.tab(&s).await;
    visitor.send(json!({"type":"user","id":"v1","message":"hello"})).await;
    let id = feed
        .until(|e| match e {
            InboxEvent::Conversation { conversation } if conversation.last_role == Some(Role::User) => {
                Some(conversation.id)
            }
            _ => None,
        })
        .await;
    for i in 0..20 {
        let op = if i % 2 == 0 { &ada } else { &bob };
        let (status, ack) = reply(op, &id, &format!("r{i}"), &format!("reply {i}")).await;
        assert_eq!(status, StatusCode::OK, "reply {i}: {ack}");
        let (status, note) = op
            .post(&format!("/inbox/api/conversations/{id}/notes"), json!({"text": format!("note {i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "note {i}: {note}");
        let (status, _) = op.get("/inbox/api/conversations").await;
        assert_eq!(status, StatusCode::OK, "list {i}");
        bob_feed.send(json!({"type":"typing","conversation": id, "active": i % 2 == 0})).await;
    }
    // Every reply reached the visitor.
    let mut seen = 0;
    while seen < 20 {
        if let ServerMessage::Agent(a) = visitor.recv_data().await {
            assert_eq!(a.message, format!("reply {seen}"));
            seen += 1;
        }
    }
    // A visitor of that address is held to it: its sixth request is refused.
    let http = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..6).map(|_| http.get(hub.url(&format!("/api/chat/poll?session={s}&after=0"))).send()),
    )
    .await
    .into_iter()
    .map(|r| r.expect("get").status().as_u16())
    .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// What anyone may send the inbox before signing in is read like every other body: one that
/// trickles in is answered 408 at `--header-timeout`, not held for as long as it takes.
#[tokio::test]
async fn a_sign_in_body_that_trickles_is_answered_408() {
    let mut config = Config::for_tests();
    config.header_timeout = Duration::from_millis(800);
    let (hub, _dir) = hub_with_operators(config).await;
    let mut tcp = TcpStream::connect(hub.addr).await.expect("connect");
    let head = format!(
        "POST /inbox/api/signin HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\":",
        hub.addr
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ =
        tokio::time::timeout(common::DEADLINE, tcp.read_to_end(&mut answer)).await.expect("answered in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
}

/// A visitor's typing in the support conversation reaches every operator connection, so each
/// frame costs the visitor's frame budget once per operator: one visitor cannot flood the
/// inboxes of a whole team with what the budget allows for one recipient.
#[tokio::test]
async fn a_visitors_typing_flood_is_paid_for_once_per_operator() {
    let mut config = Config::for_tests();
    config.frame_budget = 8192;
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feeds = Vec::new();
    for _ in 0..10 {
        feeds.push(ada.feed().await);
    }
    let before = hub.metric("natter_connections").await;
    let (mut typist, _) = hub.tab(&session("typist")).await;
    for i in 0..200 {
        if typist
            .ws
            .send(Message::text(json!({"type":"typing","active": i % 2 == 0}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Once the hub has let the typist's connection go, it has handled every frame it sent.
    let _ = typist.ws.close(None).await;
    let start = tokio::time::Instant::now();
    while hub.metric("natter_connections").await > before {
        assert!(start.elapsed() < common::DEADLINE, "the typist's connection never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another visitor writes then: the feed's order puts it after every typing notice relayed.
    let (mut other, _) = hub.tab(&session("marker")).await;
    other.send(json!({"type":"user","id":"m","message":"after the flood"})).await;
    let feed = &mut feeds[0];
    let mut relayed = 0;
    loop {
        match feed.next().await {
            InboxEvent::Typing { .. } => relayed += 1,
            InboxEvent::Message { message: ServerMessage::User(u), .. } if u.message == "after the flood" => {
                break
            }
            _ => {}
        }
    }
    // About ten at once (32 KiB of budget, 11 recipients of ~290 bytes), not the hundred and
    // more one recipient's price would let through.
    assert!(relayed <= 20, "{relayed} typing notices relayed to each operator");
    assert!(hub.metric("natter_limited_total{limit=\"frame_budget\"}").await > 0, "the typist was refused");
}

/// Posts `text` over the HTTP fallback as session `session` from `client`.
async fn post_as(hub: &TestHub, client: &reqwest::Client, session: &str, text: &str) -> reqwest::Response {
    client
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"sessionId": session, "message": text}))
        .send()
        .await
        .expect("post")
}

/// One address opening conversation after conversation (each a fresh session) buried an
/// honest visitor's under them: the list answered the newest 200 and no more. Now the list
/// comes in pages whose `next` reaches every conversation, here 251 of them, the honest one
/// first and oldest.
#[tokio::test]
async fn the_operator_pages_to_every_conversation_however_many_one_address_opens() {
    let (hub, _dir) = hub_with_operators(Config::for_tests()).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let honest = post_as(&hub, &http_from(31), &session("honest"), "I need help").await;
    assert_eq!(honest.status(), StatusCode::OK);
    // Its record, once the bot has answered it (so nothing moves it up later).
    let start = tokio::time::Instant::now();
    let honest_id = loop {
        let listed = until_listed(&ada, "open", 50, 1).await;
        if listed[0]["lastRole"] == json!("bot") {
            break listed[0]["id"].clone();
        }
        assert!(start.elapsed() < common::DEADLINE, "the bot never answered: {listed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let attacker = http_from(32);
    for i in 0..250 {
        let r = post_as(&hub, &attacker, &format!("bury-{i}"), "spam").await;
        assert_eq!(r.status(), StatusCode::OK, "budget off: conversation {i}");
    }
    let all = until_listed(&ada, "open", 50, 251).await;
    assert_eq!(all.len(), 251);
    assert_eq!(all.last().map(|c| &c["id"]), Some(&honest_id), "the honest one, oldest, is on the last page");
    // Pages of every size reach the same conversations; the default page is 50, the most 200.
    let ids = |list: &[Value]| {
        let mut ids: Vec<String> = list.iter().map(|c| c["id"].as_str().expect("id").to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&until_listed(&ada, "open", 200, 251).await), ids(&all));
    assert_eq!(ids(&until_listed(&ada, "unassigned", 7, 251).await), ids(&all));
    let (_, first) = ada.get("/inbox/api/conversations").await;
    assert_eq!(first["conversations"].as_array().map(Vec::len), Some(50), "the default page");
    assert!(first["next"].is_string(), "{}", first["next"]);
    // Bad paging values are refused with a message, never clamped or ignored.
    for bad in ["limit=0", "limit=201", "limit=x", "cursor=zz", "cursor=3132"] {
        let (status, body) = ada.get(&format!("/inbox/api/conversations?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], json!("invalid_message"), "{bad}: {body}");
    }
}

/// Sessions are free, so conversations are budgeted by address: one address opens its
/// `--address-conversations-per-hour` over HTTP and WebSocket together, then every message
/// that would open one more is refused `rate_limited` with `Retry-After` (counted in
/// `/metrics`), while its existing conversations, resends and other addresses carry on.
#[tokio::test]
async fn one_address_may_open_only_its_budget_of_conversations() {
    let mut config = Config::for_tests();
    config.address_conversations_per_hour = 6;
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let attacker = http_from(33);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..30 {
        let r = post_as(&hub, &attacker, &format!("fresh-{i}"), "spam").await;
        match r.status() {
            StatusCode::OK => opened += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = r.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
                assert!(wait > 0 && wait <= 3600, "Retry-After {wait}");
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["code"], json!("rate_limited"), "{body}");
                assert!(
                    body["message"].as_str().is_some_and(|m| m.contains("--address-conversations-per-hour")),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((opened, refused), (6, 24));
    // What it opened carries on: a second message, and a resend of a first one, are free.
    assert_eq!(post_as(&hub, &attacker, "fresh-0", "more").await.status(), StatusCode::OK);
    let resend = attacker
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"sessionId": "fresh-1", "message": "spam", "id": "again"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resend.status(), StatusCode::OK);
    // The WebSocket draws on the same kind of budget (its tabs here come from 127.0.0.1).
    let mut ws_refused = None;
    for i in 0..8 {
        let (mut tab, _) = hub.tab(&session(&format!("ws-{i}"))).await;
        tab.send(json!({"type":"user","id":"first","message":"hello"})).await;
        let answer = tab
            .until(|m| match m {
                ServerMessage::Ack(_) => Some(None),
                ServerMessage::Error(e) => Some(Some(e)),
                _ => None,
            })
            .await;
        if let Some(e) = answer {
            assert_eq!((e.code, e.id.as_deref()), (ErrorCode::RateLimited, Some("first")), "{e:?}");
            assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
            ws_refused = Some(i);
            break;
        }
    }
    assert_eq!(ws_refused, Some(6), "six opened over the WebSocket, the seventh refused");
    assert_eq!(hub.metric("natter_limited_total{limit=\"conversation_openings\"}").await, 25);
    // An honest visitor elsewhere opens theirs, and the operator sees every conversation.
    assert_eq!(post_as(&hub, &http_from(34), &session("honest"), "help").await.status(), StatusCode::OK);
    until_listed(&ada, "open", 5, 6 + 6 + 1).await;
}

/// New conversations are paced hub-wide (`--new-conversations-*`), as per-address budgets do
/// not bound many addresses at once, but nobody is refused for it: a first message whose turn
/// is more than 2 s away is stored and acknowledged anyway, over HTTP and WebSocket alike, and
/// the work that follows it (its inbox record, the bot's answer) waits for the turn instead;
/// conversations that already have a message are never paced.
#[tokio::test]
async fn first_messages_past_the_pace_are_acknowledged_and_their_follow_ups_wait() {
    // (Each of the first messages below waits its 2 s for a turn that does not come.)
    let mut config = Config::for_tests();
    // Two at once, then one every 20 s.
    (config.new_conversations_per_sec, config.new_conversations_burst) = (0.05, 2);
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;
    let answers = futures_util::future::join_all((0..6u8).map(|i| {
        let hub = &hub;
        async move { post_as(hub, &http_from(60 + i), &format!("paced-{i}"), &format!("hello {i}")).await }
    }))
    .await;
    for (i, r) in answers.into_iter().enumerate() {
        assert_eq!(r.status(), StatusCode::OK, "first message {i}: stored and acknowledged");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["type"], json!("ack"), "{body}");
    }
    // Two follow-ups had turns; four wait (a gauge).
    hub.wait_metric("natter_new_conversations_waiting", 4).await;
    // A fresh WebSocket visitor's first message is acknowledged too, and its follow-up waits.
    let (mut tab, _) = hub.tab(&session("paced-ws")).await;
    tab.send(json!({"type":"user","id":"first","message":"hello"})).await;
    let ack = tab
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            ServerMessage::Error(e) => panic!("refused: {e:?}"),
            _ => None,
        })
        .await;
    assert_eq!(ack.id, "first");
    hub.wait_metric("natter_new_conversations_waiting", 5).await;
    // A conversation that had its turn carries on unpaced: its next message is recorded for
    // the operator while five follow-ups still wait.
    let opened = feed
        .until(|e| match e {
            InboxEvent::Conversation { conversation } if conversation.last_role == Some(Role::User) => {
                conversation.preview.clone().filter(|p| p.starts_with("hello "))
            }
            _ => None,
        })
        .await;
    let n = opened.trim_start_matches("hello ").parse::<u8>().expect("which");
    let r = post_as(&hub, &http_from(60 + n), &format!("paced-{n}"), "second message").await;
    assert_eq!(r.status(), StatusCode::OK);
    feed.until(|e| match e {
        InboxEvent::Conversation { conversation } => {
            (conversation.preview.as_deref() == Some("second message")).then_some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(hub.metric("natter_new_conversations_waiting").await, 5);
    assert_eq!(hub.metric("natter_limited_total{limit=\"new_conversations\"}").await, 0);
}

/// A refused first message keeps the session the hub issued with it: the answer's
/// `X-Natter-Session` comes with the refusal too, so the widget's resend goes into the same
/// conversation instead of opening (and paying for) yet another.
#[tokio::test]
async fn a_refused_first_message_keeps_its_issued_session() {
    let mut config = Config::for_tests();
    config.address_conversations_per_hour = 1;
    let (hub, _dir) = hub_with_operators(config).await;
    let office = http_from(79);
    let post = || office.post(hub.url("/api/chat/messages")).json(&json!({"message": "hi"})).send();
    let first = post().await.expect("post");
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().contains_key("x-natter-session"));
    let refused = post().await.expect("post");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("x-natter-session"), "{:?}", refused.headers());
}

/// The pace's turns go to the address served least recently: a visitor arriving after one
/// address's six new conversations has its conversation recorded (and answered) before the
/// last of them, which it would wait behind in one queue, so busy addresses cannot hold up a
/// newcomer's answer.
#[tokio::test]
async fn new_conversations_take_turns_by_address() {
    let mut config = Config::for_tests();
    (config.new_conversations_per_sec, config.new_conversations_burst) = (5.0, 1);
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;
    let busy = http_from(75);
    let posts: Vec<_> = (0..6)
        .map(|i| {
            let (busy, url) = (busy.clone(), hub.url("/api/chat/messages"));
            tokio::spawn(async move {
                let body = json!({"sessionId": format!("busy-{i}"), "message": format!("busy {i}")});
                busy.post(url).json(&body).send().await.expect("post").status()
            })
        })
        .collect();
    // The first had the burst's turn; five wait, so the newcomer surely comes after them.
    hub.wait_metric("natter_new_conversations_waiting", 5).await;
    assert_eq!(post_as(&hub, &http_from(76), "newcomer", "newcomer").await.status(), StatusCode::OK);
    for post in posts {
        assert_eq!(post.await.expect("a busy post"), StatusCode::OK);
    }
    let mut order = Vec::new();
    while order.len() < 7 {
        let recorded = feed
            .until(|e| match e {
                InboxEvent::Conversation { conversation } if conversation.last_role == Some(Role::User) => {
                    conversation.preview.clone()
                }
                _ => None,
            })
            .await;
        if !order.contains(&recorded) {
            order.push(recorded);
        }
    }
    // Turns 200 ms apart: the newcomer's is at most two away, the busy address's last six.
    assert_eq!(order.last().map(String::as_str), Some("busy 5"), "{order:?}");
}

/// The inbox's page and files are anyone's to fetch, so each fetch is one request of the
/// address's budget like every other route's: a burst of `GET /inbox/app.js` is refused `429`
/// with `Retry-After` past it, as are `/inbox` and the API without a session, while a
/// signed-in operator at that same address is staff and carries on.
#[tokio::test]
async fn the_inbox_app_and_api_draw_on_the_address_budget() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 5;
    config.address_rate_per_sec = 0.1;
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let client = http_from(35);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = client.get(hub.url("/inbox/app.js")).send().await.expect("get");
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["code"], json!("rate_limited"), "{body}");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    for path in ["/inbox", "/inbox/app.css", "/inbox/api/me"] {
        let r = client.get(hub.url(path)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        // A made-up cookie buys nothing.
        let r = client.get(hub.url(path)).header("cookie", "natter_operator=00").send().await.expect("get");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path} with a made-up cookie");
    }
    let signin = client
        .post(hub.url("/inbox/api/signin"))
        .header("origin", hub.url(""))
        .json(&json!({"name": "bob", "password": PASSWORD}))
        .send()
        .await
        .expect("post");
    assert_eq!(signin.status(), StatusCode::TOO_MANY_REQUESTS, "sign-in is anyone's too");
    assert!(hub.metric("natter_limited_total{limit=\"address_rate\"}").await >= 22);
    // The operator, from that very address, loads the app and the list.
    for path in ["/inbox", "/inbox/app.js", "/inbox/api/me", "/inbox/api/conversations"] {
        let r = client.get(hub.url(path)).header("cookie", &ada.cookie).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path} for a signed-in operator");
    }
}

/// An operator's socket is metered on the wire like a visitor's: a ping flood (each ping
/// answered by the WebSocket library, never seen by the hub's own code) is held to the frame
/// budget and cut with 4029.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_on_the_inbox_socket_is_cut() {
    use futures_util::StreamExt as _;
    let mut config = Config::for_tests();
    config.frame_budget = 16 * 1024;
    config.idle_timeout = Duration::from_secs(600);
    let (hub, _dir) = hub_with_operators(config).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let feed = ada.feed().await;
    let (mut tx, mut rx) = feed.ws.split();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while tx.feed(Message::Ping(Default::default())).await.is_ok() {
            sent += 1;
            if sent % 1000 == 0 && tx.flush().await.is_err() {
                break;
            }
        }
        sent
    });
    let mut pongs = 0u64;
    let close = loop {
        match tokio::time::timeout(common::DEADLINE, rx.next()).await.expect("the hub ends the flood") {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(Message::Close(Some(f)))) => break Some(u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    flood.abort();
    assert_eq!(close, Some(natter_protocol::close::RATE_LIMITED), "{pongs} pongs");
    // Two bursts of four seconds, then the budget for well under a minute.
    assert!(pongs <= (8 + 60) * 16 * 1024 / natter_protocol::FRAME_OVERHEAD, "{pongs} pongs");
    // The operator opens the feed again and it is served (its first event arrives).
    let mut again = ada.feed().await;
    let first = again.next().await;
    println!("after the cut, a new feed starts with {first:?}");
}
