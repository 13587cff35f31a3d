//! Bad input: every kind is answered with an `error` frame naming the problem, and the
//! connection carries on (a ping right after works). Oversized frames close with 1009; a bad
//! origin or session is refused before the upgrade.

mod common;

use common::{session, Tab, TestHub};
use natter_hub::Config;
use natter_protocol::{close, ErrorCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_bad_frame_gets_an_error_and_the_connection_goes_on() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("bad")).await;
    let cases: Vec<(String, ErrorCode, &str)> = vec![
        ("{not json".into(), ErrorCode::BadJson, "not valid JSON"),
        ("[1,2]".into(), ErrorCode::BadJson, "an array"),
        ("\"hello\"".into(), ErrorCode::BadJson, "a string"),
        (json!({"message": "no type"}).to_string(), ErrorCode::UnknownType, "no \"type\""),
        (json!({"type": 7}).to_string(), ErrorCode::UnknownType, "a number"),
        (json!({"type": "shout"}).to_string(), ErrorCode::UnknownType, "\"shout\""),
        (json!({"type": "user"}).to_string(), ErrorCode::InvalidMessage, "missing field `message`"),
        (json!({"type": "user", "message": 5}).to_string(), ErrorCode::InvalidMessage, "integer"),
        (json!({"type": "user", "message": "   "}).to_string(), ErrorCode::InvalidMessage, "empty"),
        (
            json!({"type": "user", "id": "has space", "message": "x"}).to_string(),
            ErrorCode::InvalidMessage,
            "' '",
        ),
        (json!({"type": "join", "room": "a/b"}).to_string(), ErrorCode::InvalidMessage, "\"a/b\""),
        (json!({"type": "join", "room": ""}).to_string(), ErrorCode::InvalidMessage, "empty"),
        (
            json!({"type": "chat", "room": "lobby", "message": "hi"}).to_string(),
            ErrorCode::NotInRoom,
            "\"lobby\"",
        ),
        (
            json!({"type": "cursor_position", "room": "lobby", "data": {}}).to_string(),
            ErrorCode::NotInRoom,
            "join",
        ),
        (json!({"type": "chain_update", "room": "lobby"}).to_string(), ErrorCode::NotInRoom, "\"lobby\""),
        (json!({"type": "leave", "room": "lobby"}).to_string(), ErrorCode::NotInRoom, "\"lobby\""),
        (json!({"type": "typing", "room": "lobby"}).to_string(), ErrorCode::NotInRoom, "\"lobby\""),
        (
            json!({"type": "user", "message": "x".repeat(4001)}).to_string(),
            ErrorCode::TooLarge,
            "4001 characters",
        ),
        // Control characters but tabs and line breaks: a NUL, a terminal escape sequence.
        (
            json!({"type": "user", "message": "\u{0}\u{0}"}).to_string(),
            ErrorCode::InvalidMessage,
            "U+0000 at character 0",
        ),
        (
            json!({"type": "user", "message": "ok\u{1b}[31mred"}).to_string(),
            ErrorCode::InvalidMessage,
            "U+001B at character 2",
        ),
        // Names that show nothing, or look like another: a zero-width space, a Hangul filler.
        (
            json!({"type": "join", "room": "lobby", "name": "Ada\u{200b}"}).to_string(),
            ErrorCode::InvalidMessage,
            "invisible",
        ),
        (
            json!({"type": "join", "room": "lobby", "name": "\u{3164}"}).to_string(),
            ErrorCode::InvalidMessage,
            "invisible",
        ),
    ];
    for (frame, code, needle) in cases {
        tab.send_text(&frame).await;
        let message = tab.expect_error(code).await;
        assert!(message.contains(needle), "{frame}: {message:?} should mention {needle:?}");
        tab.ping_works().await;
    }
    tab.ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
    tab.expect_error(ErrorCode::BadJson).await;
    tab.ping_works().await;
    assert!(hub.metric("natter_errors_total{code=\"bad_json\"}").await >= 4);
    // Tabs and line breaks are text's own.
    let (mut other, _) = hub.tab(&session("tabs")).await;
    other.send_text(&json!({"type": "user", "id": "tabs", "message": "a\tb\r\nc"}).to_string()).await;
    let ack = other
        .until(|m| match m {
            natter_protocol::ServerMessage::Ack(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(ack.id, "tabs");
}

use futures_util::SinkExt;

#[tokio::test]
async fn the_refused_message_id_is_echoed() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("bad-id")).await;
    tab.send(json!({"type": "user", "id": "m-1", "message": ""})).await;
    match tab.recv_data().await {
        natter_protocol::ServerMessage::Error(e) => assert_eq!(e.id.as_deref(), Some("m-1")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn oversized_frame_is_refused_with_1009() {
    let hub = TestHub::with(Config::for_tests()).await;
    let (mut tab, _) = hub.tab(&session("big")).await;
    tab.say("small", "hello").await;
    let big = json!({"type": "user", "message": "x".repeat(natter_protocol::MAX_FRAME_BYTES)}).to_string();
    tab.send_text(&big).await;
    // Whatever was queued before, then the too_large error, then the close.
    let mut saw_error = false;
    let code = loop {
        match tab.ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.as_str().contains("\"too_large\"") {
                    saw_error = true;
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, close::TOO_BIG);
    assert!(saw_error, "a too_large error frame comes before the close");
}

use futures_util::StreamExt;

#[tokio::test]
async fn bad_session_and_after_are_400_before_upgrade() {
    // (A socket with no session in its URL is not refused: it says who it is in an `auth`
    // frame; server/tests/identity.rs tests that.)
    let hub = TestHub::start().await;
    for (query, needle) in [
        ("session=", "session id is empty"),
        ("session=a%20b", "' '"),
        (&format!("session={}", "a".repeat(200)) as &str, "200 bytes"),
        ("session=ok&after=-1", "whole number"),
        ("session=ok&after=x", "whole number"),
    ] {
        let url = format!("ws://{}/ws/chat?{query}", hub.addr);
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{query}");
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains(needle), "{query}: {body}");
                assert!(body.contains("\"type\":\"error\""), "{body}");
            }
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn origin_not_on_the_list_is_403_before_upgrade() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://good.example".into()];
    let hub = TestHub::with(config).await;
    let url = hub.ws_url(&session("origin"), "");

    let mut request = url.clone().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("forbidden_origin") && body.contains("evil.example"), "{body}");
        }
        other => panic!("expected a 403, got {other:?}"),
    }

    let mut request = url.clone().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://good.example".parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("allowed origin connects");
    let mut tab = Tab { ws };
    tab.expect_history().await;
    tab.ping_works().await;

    // The HTTP fallback applies the same list.
    let response = reqwest::Client::new()
        .post(hub.url("/api/chat/messages?session=s1"))
        .header("origin", "https://evil.example")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403);
}

/// A browser can only tell "this site is refused" from "the hub is down" if it may read the
/// refusal: the 403 of the HTTP endpoints carries `Access-Control-Allow-Origin`, so the widget
/// on a refused page reads `forbidden_origin` (and says so) instead of retrying for ever.
#[tokio::test]
async fn a_refused_origin_can_read_why_it_was_refused() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://good.example".into()];
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let response = client
        .get(hub.url(&format!("/api/chat/poll?session={}", session("refused"))))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("poll");
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers().get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"*"[..]));
    let body = response.text().await.expect("body");
    assert!(body.contains("\"code\":\"forbidden_origin\"") && body.contains("evil.example"), "{body}");

    // Only the refusal is readable: an allowed origin's answers are as before, and a refused
    // origin's other answers (none: it is refused everywhere) gain nothing.
    let response = client
        .get(hub.url(&format!("/api/chat/poll?session={}&after=0", session("allowed"))))
        .header("origin", "https://good.example")
        .send()
        .await
        .expect("poll");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://good.example"[..])
    );
}

/// A widget that sends credentials in headers (a signed-in user's bearer token, a returning
/// visitor's `X-Natter-Session`) makes the browser ask first (a CORS preflight). Refusing a
/// refused origin's preflight would hide the readable 403 behind a network error; it is let
/// through, the request itself gets `forbidden_origin` with nothing else readable, and answers
/// to a refused origin that are not that refusal still carry no CORS header.
#[tokio::test]
async fn a_refused_origin_with_credential_headers_can_read_why_too() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://good.example".into()];
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    for (method, path) in [("GET", "/api/chat/poll?after=0"), ("POST", "/api/chat/messages")] {
        let preflight = client
            .request(reqwest::Method::OPTIONS, hub.url(path))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization,x-natter-session,content-type")
            .send()
            .await
            .expect("preflight");
        assert!(preflight.status().is_success(), "{method} {path}: {}", preflight.status());
        let header =
            |name: &str| preflight.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("access-control-allow-origin").as_deref(), Some("https://evil.example"), "{path}");
        let allowed = header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("x-natter-session"), "{allowed}");
    }
    let refused = client
        .get(hub.url("/api/chat/poll?after=0"))
        .header("origin", "https://evil.example")
        .header("authorization", "Bearer not.checked.first")
        .header("x-natter-session", "whatever")
        .send()
        .await
        .expect("poll");
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers().get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"*"[..]));
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("\"code\":\"forbidden_origin\""),
        "the origin is checked before the credentials: {body}"
    );
    // Nothing else becomes readable to it.
    let rooms = client
        .get(hub.url("/api/rooms"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("rooms");
    assert_eq!(rooms.headers().get("access-control-allow-origin"), None);
}
