//! Every refusal is counted once in `natter_errors_total`, where it leaves the hub — whether it
//! was made at the edge (a bad query) or deep inside (a store that fails), and whichever
//! transport answers it.

mod common;

use common::hooked::{Hooked, StoreHooks};
use common::{session, TestHub};
use natter_hub::store::{BoxFuture, Draft, StoreError};
use natter_hub::Config;
use natter_protocol::ErrorCode;
use serde_json::json;

/// A store whose writes fail as if its backend were down; everything else works.
struct FailingWrites;

impl StoreHooks for FailingWrites {
    fn before_append<'a>(&'a self, _draft: &'a Draft) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("the test's store refuses writes".into())) })
    }
}

const UNAVAILABLE: &str = "natter_errors_total{code=\"unavailable\"}";

#[tokio::test]
async fn a_store_failure_is_counted_once_on_either_transport() {
    let hub = TestHub::with_store(Config::for_tests(), Hooked::new(FailingWrites)).await;
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
