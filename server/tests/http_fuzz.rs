//! The HTTP bodies and queries under generated input, against a real hub: every request —
//! random bytes, JSON of every shape, valid bodies broken in every way, odd queries — gets an
//! answer with a status the API documents and a JSON body (the `ack`, the room, or an `error`
//! frame naming a known code), and the hub is healthy afterwards.
//!
//! Seeded (the same few hundred requests every run, a few seconds in all).

mod common;

use common::TestHub;
use natter_hub::Config;
use natter_protocol::{ErrorCode, ServerMessage};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

/// Statuses the API answers with (docs/protocol.md).
const DOCUMENTED: &[u16] = &[200, 201, 400, 401, 403, 404, 408, 409, 413, 429, 503];

/// `n` samples of `strategy`, the same ones every run.
fn samples<S: Strategy>(strategy: S, n: usize, seed: u8) -> Vec<S::Value> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(RunnerConfig::default(), rng);
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("a sample").current()).collect()
}

fn json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "type",
        "id",
        "message",
        "sessionId",
        "context",
        "room",
        "name",
        "metadata",
        "page",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec!["user", "chat", "s-1", "room-1", "", " ", "\u{202e}", "a b"])
            .prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// Bodies: JSON of any shape, raw bytes, and valid bodies with a byte changed or cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop::sample::select(vec![
        r#"{"type":"user","id":"f-1","message":"hello","sessionId":"fuzz-s","context":{"page":"/"}}"#,
        r#"{"message":"hi","sessionId":"fuzz-s"}"#,
        r#"{"room":"fuzz-room","name":"Fuzz","metadata":{"a":1}}"#,
    ]);
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
        (valid, 0usize..90, any::<u8>(), 0usize..20).prop_map(|(v, at, byte, cut)| {
            let mut b = v.as_bytes().to_vec();
            if let Some(x) = b.get_mut(at) {
                *x = byte;
            }
            b.truncate(b.len().saturating_sub(cut));
            b
        }),
    ]
}

/// Query values, percent-encoded as a client would send them.
fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        prop::sample::select(vec!["0", "-1", "18446744073709551616", "abc", "", "%", "5"])
            .prop_map(str::to_owned),
    ]
    .prop_map(|v| v.bytes().map(|b| format!("%{b:02X}")).collect())
}

async fn check(response: reqwest::Response, what: &str) {
    let status = response.status().as_u16();
    assert!(DOCUMENTED.contains(&status), "{what}: status {status}");
    let text = response.text().await.expect("a body");
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    if status >= 400 {
        match ServerMessage::from_json(&value.to_string()) {
            Ok(ServerMessage::Error(e)) => {
                assert!(ErrorCode::ALL.contains(&e.code), "{what}: {e:?}");
                assert!(!e.message.is_empty(), "{what}");
            }
            other => panic!("{what}: {status} without an error frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_generated_request_gets_a_documented_answer() {
    let mut config = Config::for_tests();
    config.api_key = Some("fuzz key of the room API".into());
    // A generated `after` may ask for a held poll: keep the hold short.
    config.poll_timeout = std::time::Duration::from_millis(20);
    let hub = TestHub::with(config).await;
    let http = reqwest::Client::new();

    for (i, body) in samples(body(), 300, 1).into_iter().enumerate() {
        let r = http
            .post(hub.url("/api/chat/messages?session=fuzz-s"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        check(r, &format!("message body {i}: {}", String::from_utf8_lossy(&body))).await;
        let r = http
            .post(hub.url("/api/rooms"))
            .bearer_auth("fuzz key of the room API")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        check(r, &format!("room body {i}: {}", String::from_utf8_lossy(&body))).await;
        let r = http
            .put(hub.url("/api/rooms/fuzz-room"))
            .bearer_auth("fuzz key of the room API")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("put");
        check(r, &format!("room PUT body {i}: {}", String::from_utf8_lossy(&body))).await;
    }
    for (i, (a, b)) in samples((query_value(), query_value()), 150, 2).into_iter().enumerate() {
        let r = http.get(hub.url(&format!("/api/rooms?limit={a}&cursor={b}"))).send().await.expect("get");
        check(r, &format!("room list query {i}: limit={a} cursor={b}")).await;
        let r =
            http.get(hub.url(&format!("/api/chat/poll?session={a}&after={b}"))).send().await.expect("get");
        check(r, &format!("poll query {i}: session={a} after={b}")).await;
        if !a.is_empty() {
            let r = http.get(hub.url(&format!("/api/rooms/{a}"))).send().await.expect("get");
            check(r, &format!("room info {i}: {a}")).await;
        }
    }
    let health: Value = http.get(hub.url("/healthz")).send().await.expect("get").json().await.expect("json");
    assert_eq!(health["status"], "ok");
}
