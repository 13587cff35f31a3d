//! The HTTP fallback shares conversations, seqs, ids and replies with the WebSocket; the
//! long-poll answers as soon as something arrives. Plus health, metrics and static files.

mod common;

use std::time::Duration;

use common::{session, TestHub};
use natter_hub::Config;
use natter_protocol::{ErrorCode, ServerMessage};
use serde_json::{json, Value};

async fn post(hub: &TestHub, query: &str, body: Value) -> (u16, ServerMessage) {
    let response = reqwest::Client::new()
        .post(hub.url(&format!("/api/chat/messages{query}")))
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

async fn poll(hub: &TestHub, sid: &str, after: Option<u64>) -> natter_protocol::History {
    let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
    let response =
        reqwest::get(hub.url(&format!("/api/chat/poll?session={sid}{after}"))).await.expect("poll");
    assert_eq!(response.status(), 200);
    match response.json().await.expect("json") {
        ServerMessage::History(h) => h,
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn http_tab_and_ws_tab_see_each_other() {
    let hub = TestHub::start().await;
    let sid = session("mixed");
    let (mut ws, _) = hub.tab(&sid).await;

    // The original widget's JSON, sessionId in the body.
    let (status, ack) = post(
        &hub,
        "",
        json!({"type": "user", "message": "the page is broken", "timestamp": "2025-08-23T10:00:00Z",
               "sessionId": sid, "context": {"page": "/checkout"}}),
    )
    .await;
    assert_eq!(status, 200);
    let ServerMessage::Ack(ack) = ack else { panic!("{ack:?}") };
    assert_eq!(ack.seq, 1);
    // The WebSocket tab sees the HTTP tab's message and the reply.
    let m = ws.recv_data().await;
    assert!(
        matches!(&m, ServerMessage::User(u) if u.id == ack.id && u.message == "the page is broken"),
        "{m:?}"
    );
    let m = ws.recv_data().await;
    let ServerMessage::Bot(bot) = m else { panic!("{m:?}") };
    assert_eq!(bot.category.as_deref(), Some("bug"));
    assert!(bot.message.contains("/checkout"), "{}", bot.message);

    // The WebSocket tab writes; the HTTP tab's poll gets it (and the reply) after seq 2.
    ws.say("from-ws", "hello").await;
    let mut seen = Vec::new();
    let mut after = bot.seq;
    while seen.len() < 2 {
        let h = poll(&hub, &sid, Some(after)).await;
        for m in h.messages {
            after = m.seq().expect("stored");
            seen.push(m);
        }
    }
    assert!(matches!(&seen[0], ServerMessage::User(u) if u.id == "from-ws" && u.seq == 3), "{seen:?}");
    assert!(
        matches!(&seen[1], ServerMessage::Bot(b) if b.category.as_deref() == Some("greeting")),
        "{seen:?}"
    );

    // Re-sending over HTTP with a stored id: acknowledged again, not stored twice.
    let (status, dup) =
        post(&hub, &format!("?session={sid}"), json!({"id": "from-ws", "message": "hello"})).await;
    assert_eq!(status, 200);
    assert!(matches!(dup, ServerMessage::Ack(a) if a.duplicate && a.seq == 3));

    // A poll without `after` answers at once with the recent history.
    let h = poll(&hub, &sid, None).await;
    assert_eq!(h.messages.len(), 4);
    assert_eq!(h.last_seq, 4);
}

#[tokio::test]
async fn long_poll_answers_when_a_message_arrives() {
    let mut config = Config::for_tests();
    // Far longer than the test can take: the poll must be answered by the message.
    config.poll_timeout = Duration::from_secs(600);
    let hub = TestHub::with(config).await;
    let sid = session("poll");
    let waiting = {
        let url = hub.url(&format!("/api/chat/poll?session={sid}&after=0"));
        tokio::spawn(async move { reqwest::get(url).await.expect("poll").json::<ServerMessage>().await })
    };
    hub.wait_metric("natter_polls_waiting", 1).await;
    let (status, _) = post(&hub, &format!("?session={sid}"), json!({"id": "p1", "message": "hey"})).await;
    assert_eq!(status, 200);
    let answer = tokio::time::timeout(common::DEADLINE, waiting)
        .await
        .expect("answered")
        .expect("task")
        .expect("json");
    let ServerMessage::History(h) = answer else { panic!("{answer:?}") };
    assert!(h.messages.iter().any(|m| m.id() == Some("p1")), "{h:?}");
}

#[tokio::test]
async fn long_poll_times_out_with_an_empty_history() {
    let mut config = Config::for_tests();
    config.poll_timeout = Duration::from_millis(50);
    let hub = TestHub::with(config).await;
    let h = poll(&hub, &session("quiet"), Some(0)).await;
    assert!(h.messages.is_empty() && h.complete && h.last_seq == 0, "{h:?}");
}

#[tokio::test]
async fn http_errors_are_json_error_frames() {
    let hub = TestHub::start().await;
    let client = reqwest::Client::new();
    let cases: Vec<(&str, String, u16, ErrorCode)> = vec![
        ("?session=", json!({"message": "empty session"}).to_string(), 400, ErrorCode::BadSession),
        ("?session=bad%20id", json!({"message": "x"}).to_string(), 400, ErrorCode::BadSession),
        ("?session=s1", "{oops".into(), 400, ErrorCode::BadJson),
        ("?session=s1", json!({"type": "join", "room": "x"}).to_string(), 400, ErrorCode::UnknownType),
        ("?session=s1", json!({"type": "user"}).to_string(), 400, ErrorCode::InvalidMessage),
        ("?session=s1", json!({"message": ""}).to_string(), 400, ErrorCode::InvalidMessage),
        ("?session=s1", json!({"message": "x".repeat(70_000)}).to_string(), 413, ErrorCode::TooLarge),
    ];
    for (query, body, status, code) in cases {
        let response = client
            .post(hub.url(&format!("/api/chat/messages{query}")))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), status, "{query} {body:.60}");
        match response.json::<ServerMessage>().await.expect("json") {
            ServerMessage::Error(e) => {
                assert_eq!(e.code, code, "{query} {body:.60}");
                assert!(!e.message.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
    let response = reqwest::get(hub.url("/api/chat/poll?session=s1&after=soon")).await.expect("poll");
    assert_eq!(response.status(), 400);
}

/// A body's `type` may be left out, or be `"user"`; anything else — `null` included, which is
/// not "left out" — is refused naming the field, and a body is called a body.
#[tokio::test]
async fn a_body_type_that_is_not_user_is_refused_naming_the_field() {
    let hub = TestHub::start().await;
    let client = reqwest::Client::new();
    let send = |body: &'static str| {
        client
            .post(hub.url(&format!("/api/chat/messages?session={}", session("typed"))))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let refused = |status: u16, m: ServerMessage| match m {
        ServerMessage::Error(e) => (status, e.code, e.message),
        other => panic!("{other:?}"),
    };
    for (body, code, words) in [
        (r#"{"type":null,"message":"hi"}"#, ErrorCode::UnknownType, &["\"type\"", "null"][..]),
        (r#"{"type":7,"message":"hi"}"#, ErrorCode::UnknownType, &["\"type\"", "a number"][..]),
        (r#"{"type":"join","room":"r"}"#, ErrorCode::UnknownType, &["\"join\""][..]),
        // A room member's message over the fallback needs its room.
        (r#"{"type":"chat","message":"hi"}"#, ErrorCode::InvalidMessage, &["room"][..]),
        (r#"[{"message":"hi"}]"#, ErrorCode::BadJson, &["body must be a JSON object", "an array"][..]),
        (r#""hi""#, ErrorCode::BadJson, &["body must be a JSON object"][..]),
    ] {
        let r = send(body).await.expect("post");
        let status = r.status().as_u16();
        let (status, got, message) = refused(status, r.json().await.expect("json"));
        assert_eq!((status, got), (400, code), "{body}: {message}");
        for w in words {
            assert!(message.contains(w), "{body}: {message:?} should name {w}");
        }
        assert!(!message.contains("frame"), "{body}: {message:?}");
    }
    for body in [r#"{"id":"t1","message":"hi"}"#, r#"{"type":"user","id":"t2","message":"hi"}"#] {
        let r = send(body).await.expect("post");
        assert_eq!(r.status(), 200, "{body}");
    }
}

/// JSON allows a repeated key (the last one wins), and serde's strict parse does not: such a
/// body is stored as the same frame would be on the WebSocket, not refused as "not `user`".
#[tokio::test]
async fn a_body_with_a_repeated_key_is_read_as_json_reads_it() {
    let hub = TestHub::start().await;
    let sid = session("repeated-key");
    let response = reqwest::Client::new()
        .post(hub.url(&format!("/api/chat/messages?session={sid}")))
        .header("content-type", "application/json")
        .body(r#"{"id":"r1","message":"first","message":"second"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert!(matches!(response.json().await.expect("json"), ServerMessage::Ack(a) if a.id == "r1"));
    let h = poll(&hub, &sid, None).await;
    assert!(
        h.messages
            .iter()
            .any(|m| matches!(m, ServerMessage::User(u) if u.id == "r1" && u.message == "second")),
        "{h:?}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let mut config = Config::for_tests();
    config.rate_burst = 3;
    config.rate_per_sec = 0.5;
    let hub = TestHub::with(config).await;
    let sid = session("rate");
    for i in 0..3 {
        let (status, _) =
            post(&hub, &format!("?session={sid}"), json!({"id": format!("r{i}"), "message": "hi"})).await;
        assert_eq!(status, 200);
    }
    let response = reqwest::Client::new()
        .post(hub.url(&format!("/api/chat/messages?session={sid}")))
        .json(&json!({"id": "r3", "message": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());
    match response.json::<ServerMessage>().await.expect("json") {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
            assert_eq!(e.id.as_deref(), Some("r3"));
        }
        other => panic!("{other:?}"),
    }
    // The same session over a WebSocket shares the bucket.
    let (mut tab, _) = hub.tab(&sid).await;
    tab.say("r4", "hi").await;
    tab.expect_error(ErrorCode::RateLimited).await;
    tab.ping_works().await;
}

#[tokio::test]
async fn healthz_and_metrics() {
    let hub = TestHub::start().await;
    let (_tab, _) = hub.tab(&session("health")).await;
    let health: Value = reqwest::get(hub.url("/healthz")).await.expect("get").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["protocol"], 1);
    assert_eq!(health["connections"], 1);
    assert!(health["version"].is_string());
    let response = reqwest::get(hub.url("/metrics")).await.expect("get");
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/plain"));
    let text = response.text().await.expect("text");
    for name in [
        "natter_connections 1",
        "natter_conversations 1",
        "natter_messages_in_total 0",
        "natter_messages_out_total",
        "natter_slow_consumers_dropped_total 0",
        "natter_errors_total{code=\"bad_json\"} 0",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[tokio::test]
async fn demo_page_has_strict_csp_and_widget_files_are_served() {
    let dir = std::env::temp_dir().join(format!("natter-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("natter.js"), "console.log('natter')").expect("write");
    std::fs::write(dir.join("natter_bg.wasm"), b"\0asm\x01\0\0\0").expect("write");
    std::fs::write(dir.join("natter.d.ts"), "export {};").expect("write");
    let mut config = Config::for_tests();
    config.assets = Some(dir.clone());
    let hub = TestHub::with(config).await;

    let page = reqwest::get(hub.url("/")).await.expect("get");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(!csp.contains("unsafe-inline") && csp.contains("'wasm-unsafe-eval'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<script src="/natter.js" data-server="" data-rooms async></script>"#));
    assert!(html.contains("Ctrl") && !html.contains("style=") && !html.contains("<style"));
    assert_eq!(reqwest::get(hub.url("/demo.css")).await.expect("css").status(), 200);

    for (path, kind) in [
        ("/natter.js", "text/javascript; charset=utf-8"),
        ("/natter_bg.wasm", "application/wasm"),
        ("/natter.d.ts", "application/typescript; charset=utf-8"),
    ] {
        let r = reqwest::get(hub.url(path)).await.expect("get");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], kind, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    }
    // A precompressed copy goes to clients that accept gzip, the plain file to the others.
    std::fs::write(dir.join("natter.js.gz"), b"\x1f\x8bGZ").expect("write");
    let r = reqwest::Client::new()
        .get(hub.url("/natter.js"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"\x1f\x8bGZ");
    let r = reqwest::get(hub.url("/natter.js")).await.expect("get");
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.expect("body"), "console.log('natter')");
    let missing = reqwest::get(hub.url("/natter-missing.js")).await.expect("get");
    assert_eq!(missing.status(), 404);
    let text = missing.text().await.expect("text");
    assert!(text.contains("--assets") && text.contains("cargo xtask build"), "{text}");
    assert_eq!(reqwest::get(hub.url("/../Cargo.toml")).await.expect("get").status(), 404);
    assert_eq!(reqwest::get(hub.url("/.hidden.js")).await.expect("get").status(), 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_abandoned_long_poll_is_released() {
    let mut config = Config::for_tests();
    config.poll_timeout = Duration::from_secs(600);
    let hub = TestHub::with(config).await;
    let url = hub.url(&format!("/api/chat/poll?session={}&after=0", session("gone")));
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|_| ()) });
    hub.wait_metric("natter_polls_waiting", 1).await;
    waiting.abort(); // the client hangs up
    let start = tokio::time::Instant::now();
    while hub.metric("natter_polls_waiting").await != 0 {
        assert!(start.elapsed() < common::DEADLINE, "the held poll was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
