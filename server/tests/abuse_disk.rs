//! Disk: what one client address may have stored. Within its request rate an address could
//! otherwise write messages from fresh sessions all day and fill the disk (retention is off by
//! default), so it has a day's budget of stored bytes (`--address-store-bytes-per-day`), for
//! visitor messages over the WebSocket and the HTTP fallback and room messages alike. Against a
//! real hub on real sockets.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{session, Tab, TestHub, DEADLINE};
use natter_hub::Config;
use natter_protocol::{ErrorCode, ServerMessage};
use serde_json::json;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The next `error` frame `tab` gets (skipping presence, availability and the like), which must
/// have `code`; its message.
async fn error_of(tab: &mut Tab, code: ErrorCode) -> String {
    let e = tab.until(|m| if let ServerMessage::Error(e) = m { Some(e) } else { None }).await;
    assert_eq!(e.code, code, "{e:?}");
    e.message
}

/// An HTTP client whose connections come from `from`.
fn http_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).build().expect("client")
}

#[tokio::test]
async fn an_address_has_a_day_of_stored_bytes_then_is_refused_and_others_carry_on() {
    let mut config = Config::for_tests();
    config.address_store_bytes_per_day = 60_000;
    config.rate_burst = 0;
    let hub = TestHub::with(config).await;
    let text = "x".repeat(1000);

    // An honest visitor on a WebSocket (from 127.0.0.1) before the flood.
    let (mut honest, _) = hub.tab(&session("disk-honest")).await;
    honest.say("h1", "hello").await;
    honest.until(|m| matches!(m, ServerMessage::Ack(a) if a.id == "h1").then_some(())).await;

    // The attacker, from another address, posts 1,000-character messages from fresh sessions.
    let attacker = http_from(loopback(31));
    let (mut ok, mut refused) = (0, 0);
    for i in 0..40 {
        let r = attacker
            .post(hub.url("/api/chat/messages"))
            .json(&json!({"sessionId": format!("disk-{i}"), "message": text}))
            .send()
            .await
            .expect("post");
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(r.headers().get("retry-after").is_some(), "Retry-After on a 429");
                let body: ServerMessage = r.json().await.expect("json");
                let ServerMessage::Error(e) = body else { panic!("{body:?}") };
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert!(e.message.contains("--address-store-bytes-per-day"), "{}", e.message);
                assert!(e.retry_after_ms.is_some_and(|ms| ms > 1000), "{e:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Each message costs its 1,000 bytes, a few hundred more, and the 2,000 + 256 bytes of the
    // bot's answer it brings: 60,000 bytes is about sixteen.
    assert!((12..=19).contains(&ok), "{ok} stored, {refused} refused");
    assert_eq!(ok + refused, 40);

    // The same address's messages over a WebSocket, visitor and room alike, draw on the same
    // budget: refused with the message's id, the connection open.
    let tcp = {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(std::net::SocketAddr::new(loopback(31), 0)).expect("bind");
        tokio::time::timeout(DEADLINE, socket.connect(hub.addr)).await.expect("in time").expect("connect")
    };
    let (ws, _) = tokio_tungstenite::client_async(
        hub.ws_url(&session("disk-ws"), ""),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .expect("upgrade");
    let mut tab = Tab { ws };
    tab.expect_history().await;
    // Larger than the HTTP messages, so what the budget has left cannot pay for them.
    let larger = "y".repeat(3900);
    tab.say("w1", &larger).await;
    let message = error_of(&mut tab, ErrorCode::RateLimited).await;
    assert!(message.contains("--address-store-bytes-per-day"), "{message}");
    tab.send(json!({"type": "join", "room": "disk-room"})).await;
    tab.until(|m| matches!(m, ServerMessage::History(_)).then_some(())).await;
    tab.send(json!({"type": "chat", "room": "disk-room", "id": "c1", "message": larger})).await;
    let message = error_of(&mut tab, ErrorCode::RateLimited).await;
    assert!(message.contains("--address-store-bytes-per-day"), "{message}");
    tab.ping_works().await;

    // Everyone else carries on, over both transports, and nothing stored is lost.
    honest.say("h2", "still here").await;
    honest.until(|m| matches!(m, ServerMessage::Ack(a) if a.id == "h2").then_some(())).await;
    let other = http_from(loopback(32));
    let r = other
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"sessionId": "disk-other", "message": text}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let r = attacker.get(hub.url("/api/chat/poll?session=disk-0")).send().await.expect("get");
    let history = r.text().await.expect("text");
    assert!(history.contains(&text), "the attacker's first message is kept: {history}");
    assert!(hub.metric("natter_limited_total{limit=\"address_store_bytes\"}").await >= 23);
    hub.stop().await.expect("stop");
}

/// A hub whose database's disk has less free than `--min-free-disk` refuses clients' new
/// messages with `unavailable` (503, `Retry-After`) instead of filling it; connections and the
/// rest of the hub carry on. The floor is set above what any disk has free.
#[tokio::test]
async fn below_the_free_disk_floor_new_messages_are_refused_not_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests();
    config.db = dir.path().join("natter.db");
    config.min_free_disk = u64::MAX;
    let store = natter_hub::build_store(&config).await.expect("sqlite");
    let hub = TestHub::with_store(config, store).await;
    let http = reqwest::Client::new();
    let r = http
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"sessionId": "disk-full", "message": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some(), "Retry-After on a 503");
    let ServerMessage::Error(e) = r.json().await.expect("json") else { panic!("an error") };
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("--min-free-disk"), "{}", e.message);

    let (mut tab, _) = hub.tab(&session("disk-full-ws")).await;
    tab.say("f1", "hello").await;
    let message = error_of(&mut tab, ErrorCode::Unavailable).await;
    assert!(message.contains("--min-free-disk"), "{message}");
    tab.send(json!({"type": "join", "room": "disk-full-room"})).await;
    tab.until(|m| matches!(m, ServerMessage::History(_)).then_some(())).await;
    tab.send(json!({"type": "chat", "room": "disk-full-room", "id": "c1", "message": "hi"})).await;
    error_of(&mut tab, ErrorCode::Unavailable).await;
    tab.ping_works().await;
    assert_eq!(http.get(hub.url("/healthz")).send().await.expect("get").status(), 200);
    assert!(hub.metric("natter_limited_total{limit=\"min_free_disk\"}").await >= 3);
    hub.stop().await.expect("stop");

    // With a floor the disk is above, the same hub writes.
    let mut config = Config::for_tests();
    config.db = dir.path().join("natter2.db");
    config.min_free_disk = 1;
    let store = natter_hub::build_store(&config).await.expect("sqlite");
    let hub = TestHub::with_store(config, store).await;
    let r = http
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"sessionId": "disk-ok", "message": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    hub.stop().await.expect("stop");
}
