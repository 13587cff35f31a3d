//! Every refusal is counted once in `natter_errors_total`, where it leaves the hub — whether it
//! was made at the edge (a bad query) or deep inside (a store that fails), and whichever
//! transport answers it.

mod common;

use std::sync::Arc;

use common::{session, TestHub};
use natter_hub::store::memory::MemoryStore;
use natter_hub::store::{
    Appended, BoxFuture, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError,
};
use natter_hub::Config;
use natter_protocol::ErrorCode;
use serde_json::json;
use tokio::sync::mpsc;

/// A store whose writes fail as if its backend were down; everything else works.
struct FailingWrites(MemoryStore);

impl Store for FailingWrites {
    fn append(&self, _key: &ConversationKey, _draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("the test's store refuses writes".into())) })
    }

    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        self.0.history(key, after, limit)
    }

    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        self.0.recent(key, limit)
    }

    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>> {
        self.0.publish_ephemeral(event)
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        self.0.subscribe()
    }

    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.0.create_room(room)
    }

    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>> {
        self.0.room(room)
    }

    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>> {
        self.0.rooms(after, limit)
    }

    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.0.expire_empty_rooms(created_before, keep)
    }
}

const UNAVAILABLE: &str = "natter_errors_total{code=\"unavailable\"}";

#[tokio::test]
async fn a_store_failure_is_counted_once_on_either_transport() {
    let hub = TestHub::with_store(Config::for_tests(), Arc::new(FailingWrites(MemoryStore::new()))).await;
    let http = reqwest::Client::new();

    let sid = session("failing-http");
    let response = http
        .post(hub.url(&format!("/api/chat/messages?session={sid}")))
        .json(&json!({"id": "m1", "message": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 503);
    assert_eq!(hub.metric(UNAVAILABLE).await, 1, "one refused POST, one count");

    let (mut tab, _) = hub.tab(&session("failing-ws")).await;
    tab.say("m2", "hello").await;
    tab.expect_error(ErrorCode::Unavailable).await;
    assert_eq!(hub.metric(UNAVAILABLE).await, 2, "one refused frame, one count");
    // The connection carries on.
    tab.ping_works().await;
}

#[tokio::test]
async fn edge_refusals_are_counted_once() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://allowed.example".into()];
    let hub = TestHub::with(config).await;
    let http = reqwest::Client::new();

    let bad_session = http.get(hub.url("/api/chat/poll?session=a%20b")).send().await.expect("poll");
    assert_eq!(bad_session.status(), 400);
    let upgrade = tokio_tungstenite::connect_async(format!("ws://{}/ws/chat?session=", hub.addr)).await;
    assert!(upgrade.is_err(), "an empty session is refused before the upgrade");
    assert_eq!(hub.metric("natter_errors_total{code=\"bad_session\"}").await, 2);

    // Refusals axum would answer in plain text are JSON error frames too, and counted.
    let not_upgraded = http.get(hub.url("/ws/chat?session=ok")).send().await.expect("get");
    assert_eq!(not_upgraded.status(), 426);
    let body: serde_json::Value = not_upgraded.json().await.expect("a JSON error");
    assert_eq!(body["code"], "invalid_message");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Upgrade")), "{body}");
    let repeated = http.get(hub.url("/api/chat/poll?session=a&session=b")).send().await.expect("poll");
    assert_eq!(repeated.status(), 400);
    let body: serde_json::Value = repeated.json().await.expect("a JSON error");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("session")), "{body}");
    assert_eq!(hub.metric("natter_errors_total{code=\"invalid_message\"}").await, 2);

    let foreign = http
        .get(hub.url("/api/chat/poll?session=ok"))
        .header("Origin", "https://elsewhere.example")
        .send()
        .await
        .expect("poll");
    assert_eq!(foreign.status(), 403);
    assert_eq!(hub.metric("natter_errors_total{code=\"forbidden_origin\"}").await, 1);
}
