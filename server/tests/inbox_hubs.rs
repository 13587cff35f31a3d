//! The operator inbox across two hubs on one real `redis-server`: an operator signed in on one
//! hub answers a visitor connected to the other, the handoff holds across hubs, closing reaches
//! the visitor's widget, and the visitor's hub knows whether an operator is online anywhere.

mod common;
mod inbox_support;
mod support_redis;

use std::sync::Arc;

use common::{session, TestHub};
use inbox_support::{add_operator, every_conversation, sign_in, until_listed};
use natter_hub::store::redis::{RedisOptions, RedisStore};
use natter_hub::Config;
use natter_protocol::inbox::{ConversationState, InboxEvent};
use natter_protocol::{Role, ServerMessage};
use reqwest::StatusCode;
use serde_json::json;
use support_redis::RedisServer;

const PASSWORD: &str = "correct horse battery";

async fn hub(redis: &RedisServer) -> TestHub {
    let store = RedisStore::connect(RedisOptions::new(redis.url())).await.expect("connect to redis");
    TestHub::with_store(Config::for_tests(), Arc::new(store)).await
}

#[tokio::test]
async fn an_operator_on_one_hub_answers_a_visitor_on_another() {
    let redis = RedisServer::start();
    // Operators live in Redis: the command adds them there, every hub signs them in.
    add_operator(&redis.url(), "ada", "Ada Lovelace", PASSWORD);
    let (a, b) = (hub(&redis).await, hub(&redis).await);

    let ada = sign_in(&a.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;

    // The visitor's hub learns that an operator is online on the other one.
    let (mut visitor, _) = b.tab(&session("hubs")).await;
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(x) if x.online == Some(true)).then_some(()))
        .await;

    // Their first message, stored through hub B, reaches the inbox on hub A.
    visitor.say("v1", "hello from hub B").await;
    let id = feed
        .until(|e| match e {
            InboxEvent::Conversation { conversation } if conversation.last_role == Some(Role::User) => {
                Some(conversation.id)
            }
            _ => None,
        })
        .await;
    let (_, list) = ada.get("/inbox/api/conversations").await;
    assert_eq!(list["conversations"][0]["id"], json!(id));
    let (_, page) = ada.get(&format!("/inbox/api/conversations/{id}/messages")).await;
    assert_eq!(page["messages"][0]["message"], json!("hello from hub B"));

    // Ada answers from hub A; the visitor on hub B sees her name.
    let (status, _) = ada
        .post(&format!("/inbox/api/conversations/{id}/reply"), json!({"text":"Hi from hub A","id":"a1"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let agent = visitor
        .until(|m| match m {
            ServerMessage::Agent(x) => Some(x),
            _ => None,
        })
        .await;
    assert_eq!(agent.author.as_deref(), Some("Ada Lovelace"));

    // The handoff is in the shared record: hub B's bot stays silent.
    visitor.say("v2", "still there?").await;
    feed.until(|e| {
        matches!(e, InboxEvent::Message { message: ServerMessage::User(ref u), .. } if u.id == "v2")
            .then_some(())
    })
    .await;
    ada.post(&format!("/inbox/api/conversations/{id}/reply"), json!({"text":"Yes!","id":"a2"})).await;
    visitor
        .until(|m| match m {
            ServerMessage::Bot(x) if x.reply_to.as_deref() == Some("v2") => {
                panic!("hub B's bot answered during the handoff")
            }
            ServerMessage::Agent(x) if x.id == "a2" => Some(()),
            _ => None,
        })
        .await;

    // Visitor typing on hub B reaches the operator on hub A, and back.
    visitor.send(json!({"type":"typing","active":true})).await;
    feed.until(|e| matches!(e, InboxEvent::Typing { role: Role::User, active: true, .. }).then_some(()))
        .await;
    feed.send(json!({"type":"typing","conversation": id, "active": true})).await;
    visitor.until(|m| matches!(m, ServerMessage::Typing(ref t) if t.role == Role::Agent).then_some(())).await;

    // The operator leaves: the visitor's hub says nobody is online, and its bot answers the
    // handed-over conversation again, saying once (through the shared record) that a person
    // will follow up.
    drop(feed);
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(x) if x.online == Some(false)).then_some(()))
        .await;
    visitor.say("v3", "hello?").await;
    let mut bots = Vec::new();
    while bots.len() < 3 {
        if let ServerMessage::Bot(b) = visitor.recv().await {
            bots.push((b.reply_to.unwrap_or_default(), b.category.unwrap_or_default()));
            if bots.len() == 2 {
                visitor.say("v4", "hi").await;
            }
        }
    }
    assert_eq!(
        bots,
        [
            ("v3".into(), "greeting".into()),
            ("v3".into(), "follow_up".into()),
            ("v4".into(), "greeting".into())
        ] as [(String, String); 3]
    );

    // Closing on hub A reaches the widget on hub B.
    ada.post(&format!("/inbox/api/conversations/{id}/close"), json!({})).await;
    visitor
        .until(|m| {
            matches!(m, ServerMessage::ConversationStatus(ref c) if c.status == ConversationState::Closed)
                .then_some(())
        })
        .await;
}

/// On Redis the list is read from the activity index and filtered as it is read: pages of
/// each filter, followed by their `next`, reach every conversation of it and no other.
#[tokio::test]
async fn the_list_pages_through_every_conversation_on_redis() {
    let redis = RedisServer::start();
    add_operator(&redis.url(), "ada", "Ada Lovelace", PASSWORD);
    let a = hub(&redis).await;
    let ada = sign_in(&a.url(""), "ada", PASSWORD).await;
    let http = reqwest::Client::new();
    for i in 0..30 {
        let r = http
            .post(a.url("/api/chat/messages"))
            .json(&json!({"sessionId": session(&format!("page-{i}")), "message": format!("m{i}")}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Once every bot answer is recorded: a record read while its answer lands may show newer
    // activity than its place in the index had a moment before.
    let start = tokio::time::Instant::now();
    loop {
        let (_, page) = ada.get("/inbox/api/conversations?limit=200").await;
        let all = page["conversations"].as_array().expect("conversations");
        if all.len() == 30 && all.iter().all(|c| c["lastRole"] == json!("bot")) {
            break;
        }
        assert!(start.elapsed() < inbox_support::DEADLINE, "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let open = until_listed(&ada, "open", 4, 30).await;
    assert_eq!(open.len(), 30);
    // Close every third: the filters then skip what they do not match, page after page.
    let closed_ids: Vec<&str> = open.iter().step_by(3).map(|c| c["id"].as_str().expect("id")).collect();
    for id in &closed_ids {
        let (status, _) = ada.post(&format!("/inbox/api/conversations/{id}/close"), json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let ids = |list: Vec<serde_json::Value>| {
        let mut ids: Vec<String> = list.iter().map(|c| c["id"].as_str().expect("id").to_string()).collect();
        ids.sort();
        ids
    };
    let mut want_closed: Vec<String> = closed_ids.iter().map(|s| s.to_string()).collect();
    want_closed.sort();
    assert_eq!(ids(every_conversation(&ada, "closed", 3).await), want_closed);
    let still_open = ids(every_conversation(&ada, "open", 4).await);
    assert_eq!(still_open.len(), 20);
    assert!(still_open.iter().all(|id| !want_closed.contains(id)));
    assert_eq!(ids(every_conversation(&ada, "unassigned", 200).await), still_open);
}
