//! What anyone at all can do to the hub and to other people's conversations, each kind tried
//! as an attacker would, against a real hub on real sockets: ids another member claimed first,
//! budgets dodged with fresh sessions, unbounded bytes, connections that never finish a
//! request, peers that never read, floods of every frame kind, rooms made by the thousand.
//! Each test checks that the attacker gets a clear refusal and everybody else carries on.
//!
//! Every test client would come from 127.0.0.1, so a test that is about addresses binds its
//! sockets to other loopback addresses (127.0.0.0/8 is all local on Linux).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser as _;
use common::hooked::{Hooked, StoreHooks};
use common::{session, Tab, TestHub, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use natter_hub::store::{BoxFuture, Draft, StoreError};
use natter_hub::Config;
use natter_protocol::{close, ErrorCode, ServerMessage};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to the hub from `from`.
async fn tcp_from(hub: &TestHub, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind a loopback address");
    tokio::time::timeout(DEADLINE, socket.connect(hub.addr)).await.expect("connect in time").expect("connect")
}

/// A tab of `session` connected from `from`, its first `history` read.
async fn tab_from(hub: &TestHub, from: IpAddr, session: &str) -> Tab {
    let tcp = tcp_from(hub, from).await;
    let (ws, _) = tokio_tungstenite::client_async(hub.ws_url(session, ""), MaybeTlsStream::Plain(tcp))
        .await
        .expect("upgrade");
    let mut tab = Tab { ws };
    tab.expect_history().await;
    tab
}

/// An HTTP client whose connections come from `from`.
fn http_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).build().expect("client")
}

/// Sends a raw HTTP/1.1 request on its own connection from `from` and returns the status and
/// the head of the answer.
async fn raw_request(hub: &TestHub, from: IpAddr, request: &str) -> (u16, String) {
    let mut tcp = tcp_from(hub, from).await;
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut answer)).await.expect("an answer in time");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
}

/// Reads until the peer closes the connection (or resets it); panics if it stays open.
async fn closed_by_hub(tcp: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await.expect("the hub closes the connection")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

async fn join(tab: &mut Tab, room: &str, name: &str) {
    tab.send(json!({"type": "join", "room": room, "name": name})).await;
    tab.until(|m| matches!(m, ServerMessage::History(h) if h.room.as_deref() == Some(room)).then_some(()))
        .await;
}

/// Fills `room` (joined by `writer`) with `n` chat messages of `text`, ids `<prefix>-0`…, and
/// waits for the last one's ack.
async fn fill_room(writer: &mut Tab, room: &str, prefix: &str, n: usize, text: &str) {
    for i in 0..n {
        writer
            .send(json!({"type": "chat", "room": room, "id": format!("{prefix}-{i}"), "message": text}))
            .await;
    }
    let last = format!("{prefix}-{}", n - 1);
    writer.until(|m| matches!(m, ServerMessage::Ack(a) if a.id == last).then_some(())).await;
}

fn chat_text(m: ServerMessage) -> Option<(String, String)> {
    match m {
        ServerMessage::Chat(c) => Some((c.id, c.message)),
        _ => None,
    }
}

// 1. Someone else's id never swallows your message.

#[tokio::test]
async fn another_members_id_never_swallows_yours() {
    let hub = TestHub::start().await;
    let (mut m, _) = hub.tab(&session("m")).await;
    let (mut a, _) = hub.tab(&session("a")).await;
    let (mut reader, _) = hub.tab(&session("reader")).await;
    for (tab, name) in [(&mut m, "M"), (&mut a, "A"), (&mut reader, "R")] {
        join(tab, "design", name).await;
    }
    m.send(json!({"type": "chat", "room": "design", "id": "c-01", "message": "from M"})).await;
    let first = m.until(|x| if let ServerMessage::Ack(ack) = x { Some(ack) } else { None }).await;
    a.send(json!({"type": "chat", "room": "design", "id": "c-01", "message": "from A"})).await;
    let second = a.until(|x| if let ServerMessage::Ack(ack) = x { Some(ack) } else { None }).await;
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!((second.seq, second.duplicate), (2, false), "A's message is A's, whatever M sent");
    // M's own re-send is still recognised, and delivered to nobody again.
    m.send(json!({"type": "chat", "room": "design", "id": "c-01", "message": "from M, again"})).await;
    let again = m.until(|x| if let ServerMessage::Ack(ack) = x { Some(ack) } else { None }).await;
    assert_eq!((again.seq, again.duplicate), (1, true));
    a.send(json!({"type": "chat", "room": "design", "id": "end", "message": "marker"})).await;
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(id, _): &(String, String)| id != "end") {
        seen.push(reader.until(chat_text).await);
    }
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["from M", "from A", "marker"]);
}

#[tokio::test]
async fn ids_the_hub_makes_cannot_be_claimed_in_advance() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("no-ids")).await;
    let mut ids = Vec::new();
    for text in ["first", "second"] {
        tab.send(json!({"type": "user", "message": text})).await;
        ids.push(tab.until(|m| if let ServerMessage::Ack(a) = m { Some(a.id) } else { None }).await);
    }
    for id in &ids {
        assert_eq!(id.len(), 33, "{id}");
        assert!(id.starts_with('h') && id[1..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(ids[0][..17], ids[1][..17], "no shared prefix and counter: {ids:?}");
    // The bot's reply ids are the hub's too; a visitor sending one as its own id is not
    // mistaken for a re-send of the bot's message.
    let bot_id = tab.until(|m| if let ServerMessage::Bot(b) = m { Some(b.id) } else { None }).await;
    tab.send(json!({"type": "user", "id": bot_id, "message": "mine"})).await;
    let ack = tab.until(|m| if let ServerMessage::Ack(a) = m { Some(a) } else { None }).await;
    assert!(!ack.duplicate, "{ack:?}");
}

// 2. Budgets per client address, and caps on what is held.

#[tokio::test]
async fn fresh_sessions_do_not_escape_the_address_budget() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 10;
    config.address_rate_per_sec = 0.5;
    config.rate_burst = 0;
    let hub = TestHub::with(config).await;
    let attacker = http_from(loopback(3));
    let (mut ok, mut limited) = (0, 0);
    for i in 0..30 {
        let r = attacker
            .post(hub.url("/api/chat/messages"))
            .json(&json!({"sessionId": format!("s{i}"), "message": "hi"}))
            .send()
            .await
            .expect("post");
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(r.headers().get("retry-after").is_some(), "Retry-After on a 429");
                let body: ServerMessage = r.json().await.expect("json");
                assert!(
                    matches!(body, ServerMessage::Error(e) if e.code == ErrorCode::RateLimited && e.retry_after_ms.is_some())
                );
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok <= 12 && limited >= 18, "{ok} accepted, {limited} refused");
    // The same address's WebSocket messages draw on the same budget...
    let tcp = tcp_from(&hub, loopback(3)).await;
    let upgrade =
        tokio_tungstenite::client_async(hub.ws_url("ws-attacker", ""), MaybeTlsStream::Plain(tcp)).await;
    assert!(upgrade.is_err(), "even the upgrade is refused while the budget is spent");
    // ...while an honest client elsewhere carries on.
    let honest = http_from(loopback(4));
    let r = honest
        .post(hub.url("/api/chat/messages?session=honest"))
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert!(hub.metric("natter_limited_total{limit=\"address_rate\"}").await >= 18);
    assert!(hub.metric("natter_errors_total{code=\"rate_limited\"}").await >= 18);
}

/// Sessions are issued by the hub (the production default), free and stateless: a client that
/// asks for a new one over and over spends its address's budget like any other request, over
/// HTTP and over the WebSocket alike, and a refusal issues nothing.
#[tokio::test]
async fn fetching_new_sessions_over_and_over_spends_the_address_budget() {
    let mut config = Config::for_tests();
    config.open_sessions = false;
    config.address_rate_burst = 10;
    config.address_rate_per_sec = 0.5;
    config.rate_burst = 0;
    let hub = TestHub::with(config).await;
    let attacker = http_from(loopback(20));
    let (mut issued, mut limited) = (std::collections::HashSet::new(), 0);
    for _ in 0..30 {
        let r = attacker
            .post(hub.url("/api/chat/messages"))
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .expect("post");
        let session = r.headers().get(natter_protocol::SESSION_HEADER).map(|v| v.as_bytes().to_vec());
        match r.status().as_u16() {
            200 => {
                issued.insert(session.expect("a new session with each answer"));
            }
            429 => {
                assert!(session.is_none(), "a refused request is issued no session");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(issued.len() <= 11 && limited >= 19, "{} sessions issued, {limited} refused", issued.len());
    // Over the WebSocket: every connect draws on the budget, so `{"type":"auth"}` on one fresh
    // socket after another stops there too.
    let mut welcomed = 0;
    for _ in 0..30 {
        let tcp = tcp_from(&hub, loopback(21)).await;
        let url = format!("ws://{}/ws/chat", hub.addr);
        let Ok((ws, _)) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await else {
            continue;
        };
        let mut tab = Tab { ws };
        tab.send(json!({"type": "auth"})).await;
        if matches!(tab.recv().await, ServerMessage::Welcome(w) if w.session.is_some()) {
            welcomed += 1;
        }
    }
    assert!((1..=11).contains(&welcomed), "{welcomed} sessions issued over the WebSocket");
    // Another address is served.
    let r = http_from(loopback(22))
        .post(hub.url("/api/chat/messages"))
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(natter_protocol::SESSION_HEADER).is_some());
}

/// A refusal of the address budget carries the CORS headers a page needs to read it (status and
/// `Retry-After`), rather than looking like a network failure to the widget's script.
#[tokio::test]
async fn a_429_can_be_read_by_the_page_that_caused_it() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 1;
    config.address_rate_per_sec = 0.1;
    config.allowed_origins = vec!["https://site.example".into()];
    let hub = TestHub::with(config).await;
    let client = http_from(loopback(23));
    let poll =
        || client.get(hub.url("/api/chat/poll?session=cors")).header("Origin", "https://site.example").send();
    assert_eq!(poll().await.expect("poll").status(), 200);
    let r = poll().await.expect("poll");
    assert_eq!(r.status(), 429);
    let header =
        |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    assert_eq!(header("access-control-allow-origin"), "https://site.example");
    assert!(header("access-control-expose-headers").contains("retry-after"), "{:?}", r.headers());
    assert!(!header("retry-after").is_empty());
}

/// Every route draws on the address's request budget, not only the chat API: the widget's files,
/// the demo page, health and metrics fetched in a loop from one address are refused `429` past
/// it (one client fetched the 1 MB wasm module 16,000 times in 35 s), and another address is
/// served.
#[tokio::test]
async fn every_route_draws_on_the_address_budget() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 5;
    config.address_rate_per_sec = 0.1;
    let hub = TestHub::with(config).await;
    let paths = ["/healthz", "/metrics", "/", "/favicon.svg", "/natter_widget_bg.wasm"];
    // Two fresh addresses per route, so each starts with a full budget.
    for (i, path) in (0u8..).zip(paths) {
        let http = http_from(loopback(90 + 2 * i));
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(http.get(hub.url(path)).send().await.expect("get").status().as_u16());
        }
        assert!(statuses[..5].iter().all(|s| *s != 429), "{path}: {statuses:?}");
        assert_eq!(statuses[5..], [429, 429, 429], "{path}: {statuses:?}");
        let other = http_from(loopback(91 + 2 * i)).get(hub.url(path)).send().await.expect("get");
        assert_ne!(other.status().as_u16(), 429, "{path}: another address is served");
    }
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 3;
    config.address_rate_per_sec = 0.1;
    config.trusted_proxies = vec!["127.0.0.5/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let poll = |from: u8, forwarded: &str| {
        let client = http_from(loopback(from));
        let url = hub.url("/api/chat/poll?session=fwd");
        let forwarded = forwarded.to_owned();
        async move {
            client.get(url).header("X-Forwarded-For", forwarded).send().await.expect("get").status().as_u16()
        }
    };
    // Through the proxy, each client has its own budget.
    for _ in 0..3 {
        assert_eq!(poll(5, "198.51.100.1").await, 200);
    }
    assert_eq!(poll(5, "198.51.100.1").await, 429);
    assert_eq!(poll(5, "198.51.100.2").await, 200, "another client behind the same proxy");
    assert_eq!(poll(5, "6.6.6.6, 198.51.100.2").await, 200, "a client's own header is not believed");
    // A peer that is not trusted is its own client whatever it claims.
    for i in 0..3 {
        assert_eq!(poll(6, &format!("203.0.113.{i}")).await, 200);
    }
    assert_eq!(poll(6, "203.0.113.99").await, 429);
}

/// What nginx sends on for a client that adds a `Forwarded` header of its own: nginx appends
/// the peer it saw to `X-Forwarded-For` and passes the client's `Forwarded` on untouched. A new
/// made-up address in every request must not buy a new budget.
#[tokio::test]
async fn a_header_the_proxy_does_not_write_buys_no_budget() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 3;
    config.address_rate_per_sec = 0.1;
    config.trusted_proxies = vec!["127.0.0.7/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let proxy = http_from(loopback(7));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = proxy
            .post(hub.url("/api/chat/messages?session=spoof"))
            .header("Forwarded", format!("for=198.51.100.{i}"))
            .header("X-Forwarded-For", "203.0.113.77")
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .expect("post");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429], "one client, one budget");

    // A proxy that writes RFC 7239 `Forwarded` is named with --forwarded-header forwarded; then
    // a client's own X-Forwarded-For is what is passed on untouched, and ignored.
    let mut config = Config::for_tests();
    config.address_rate_burst = 3;
    config.address_rate_per_sec = 0.1;
    config.trusted_proxies = vec!["127.0.0.7/32".parse().expect("net")];
    config.forwarded_header = natter_hub::config::ForwardedHeader::Forwarded;
    let hub = TestHub::with(config).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = proxy
            .get(hub.url("/api/chat/poll?session=spoof"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .header("Forwarded", "for=203.0.113.78")
            .send()
            .await
            .expect("get");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let r = proxy.get(hub.url("/api/chat/poll?session=other")).header("Forwarded", "for=203.0.113.79");
    assert_eq!(r.send().await.expect("get").status(), 200, "another client behind the proxy");
}

#[tokio::test]
async fn long_polls_are_capped_per_address_and_in_all() {
    let mut config = Config::for_tests();
    config.max_polls_per_address = 2;
    config.max_polls = 3;
    config.poll_timeout = Duration::from_secs(60);
    let hub = TestHub::with(config).await;
    let hold = |from: u8, n: usize| {
        let client = http_from(loopback(from));
        let url = hub.url(&format!("/api/chat/poll?session=held-{from}-{n}&after=0"));
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    let a1 = hold(7, 1);
    let a2 = hold(7, 2);
    hub.wait_metric("natter_polls_waiting", 2).await;
    let a3 = hold(7, 3);
    assert_eq!(a3.await.expect("task").expect("answer"), 429, "a third from one address");
    let b1 = hold(8, 1);
    hub.wait_metric("natter_polls_waiting", 3).await;
    let c1 = hold(9, 1);
    assert_eq!(c1.await.expect("task").expect("answer"), 503, "past the hub's cap");
    // A client that gives up its poll gives its place back.
    a1.abort();
    let _ = a1.await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if hub.metric("natter_polls_waiting").await < 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the poll's place was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c2 = hold(9, 2);
    hub.wait_metric("natter_polls_waiting", 3).await;
    assert!(hub.metric("natter_limited_total{limit=\"polls_per_address\"}").await >= 1);
    assert!(hub.metric("natter_limited_total{limit=\"polls\"}").await >= 1);
    for t in [a2, b1, c2] {
        t.abort();
    }
}

/// The default budgets per address let an honest office through: a hundred people behind one
/// address with three tabs each, on the HTTP fallback (a proxy that blocks WebSockets): 300
/// long-polls held at once, each after its CORS preflight (the session goes in a header, and
/// each poll's URL is new to the browser's preflight cache), then everyone writes. Nothing is
/// refused. (The earlier defaults — 256 connections, 64 polls, a burst of 200 requests per
/// address — refused most of them.)
#[tokio::test]
async fn an_office_behind_one_address_is_not_throttled_by_the_defaults() {
    let defaults = Config::parse_from(["natter-hub"]);
    let mut config = Config::for_tests();
    config.address_rate_per_sec = defaults.address_rate_per_sec;
    config.address_rate_burst = defaults.address_rate_burst;
    config.max_connections_per_address = defaults.max_connections_per_address;
    // A hub whose open-file limit was raised, as the deploy guide's unit does (with the
    // common 1,024 the per-address default is a quarter of what the hub can hold).
    config.max_connections = Some(65_536);
    config.max_polls_per_address = defaults.max_polls_per_address;
    config.room_creations_per_hour = defaults.room_creations_per_hour;
    config.max_conversations_per_address = defaults.max_conversations_per_address;
    config.poll_timeout = Duration::from_secs(10);
    let hub = TestHub::with(config).await;
    let office = http_from(loopback(20));
    let polls: Vec<_> = (0..300)
        .map(|tab| {
            let person = tab % 100;
            let url = hub.url(&format!("/api/chat/poll?session=office-{person}&after=0"));
            let preflight = office
                .request(reqwest::Method::OPTIONS, url.clone())
                .header("Origin", "https://site.example")
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", natter_protocol::SESSION_HEADER)
                .send();
            let r = office.get(url).send();
            tokio::spawn(async move {
                let preflight = preflight.await?.status().as_u16();
                assert_eq!(preflight, 200, "a preflight");
                r.await.map(|r| r.status().as_u16())
            })
        })
        .collect();
    hub.wait_metric("natter_polls_waiting", 300).await;
    let posts = futures_util::future::join_all((0..100).map(|person| {
        office
            .post(hub.url(&format!("/api/chat/messages?session=office-{person}")))
            .json(&json!({"id": format!("m-{person}"), "message": "hello from the office"}))
            .send()
    }))
    .await;
    let posted: Vec<u16> = posts.into_iter().map(|r| r.expect("post").status().as_u16()).collect();
    assert!(posted.iter().all(|s| *s == 200), "posts: {posted:?}");
    for poll in polls {
        let status =
            tokio::time::timeout(DEADLINE, poll).await.expect("in time").expect("task").expect("poll");
        assert_eq!(status, 200);
    }
    assert_eq!(hub.metric("natter_limited_total{limit=\"address_rate\"}").await, 0);
    assert_eq!(hub.metric("natter_limited_total{limit=\"polls_per_address\"}").await, 0);
    assert_eq!(hub.metric("natter_limited_total{limit=\"preflights\"}").await, 0);
    assert_eq!(hub.metric("natter_limited_total{limit=\"conversations_per_address\"}").await, 0);
}

#[tokio::test]
async fn conversations_held_in_memory_are_capped() {
    let mut config = Config::for_tests();
    config.max_conversations = 4;
    let hub = TestHub::with(config).await;
    let http = reqwest::Client::new();
    // Plain polls made conversations that stayed for minutes; now the oldest idle ones go.
    for i in 0..10 {
        let r = http.get(hub.url(&format!("/api/chat/poll?session=plain-{i}"))).send().await.expect("poll");
        assert_eq!(r.status(), 200);
    }
    assert!(hub.metric("natter_conversations").await <= 4);
    assert!(hub.metric("natter_conversations_evicted_total").await >= 6);
    // Conversations in use are never forgotten: past the cap a new one is refused, clearly.
    let mut tabs = Vec::new();
    for i in 0..4 {
        tabs.push(hub.tab(&session(&format!("pinned-{i}"))).await.0);
    }
    let r = http.get(hub.url("/api/chat/poll?session=one-too-many")).send().await.expect("poll");
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let mut extra = Tab::connect(&hub.ws_url(&session("extra"), "")).await;
    extra.expect_error(ErrorCode::Unavailable).await;
    // A full hub, not a broken one: the close says to come back later (1001), not 1011.
    assert_eq!(extra.expect_close().await, close::GOING_AWAY);
    for tab in &mut tabs {
        tab.ping_works().await;
    }
}

#[tokio::test]
async fn rooms_created_per_address_are_budgeted() {
    let mut config = Config::for_tests();
    config.room_creations_per_hour = 3;
    let hub = TestHub::with(config).await;
    let mut tab = tab_from(&hub, loopback(12), &session("spray")).await;
    for i in 0..3 {
        join(&mut tab, &format!("spray-{i}"), "S").await;
    }
    tab.send(json!({"type": "join", "room": "spray-3"})).await;
    let message = tab.expect_error(ErrorCode::RateLimited).await;
    assert!(message.contains("spray-3"), "{message}");
    // Existing rooms are still open to that address, and other addresses create their own.
    let mut other = tab_from(&hub, loopback(12), &session("second")).await;
    join(&mut other, "spray-0", "T").await;
    let mut elsewhere = tab_from(&hub, loopback(13), &session("elsewhere")).await;
    join(&mut elsewhere, "fresh", "E").await;
    assert_eq!(hub.metric("natter_limited_total{limit=\"room_creations\"}").await, 1);
}

/// A room member's message over the HTTP fallback makes the room when it does not exist: from
/// the same hourly budget as a `join`, so the fallback is no way round it.
#[tokio::test]
async fn rooms_made_by_messages_over_http_are_budgeted_too() {
    let mut config = Config::for_tests();
    config.room_creations_per_hour = 2;
    let hub = TestHub::with(config).await;
    let http = http_from(loopback(14));
    let post = |room: String| {
        let r = http
            .post(hub.url(&format!("/api/chat/messages?session={}", session("http-spray"))))
            .json(&json!({"type": "chat", "room": room, "id": format!("m-{room}"), "message": "hi"}))
            .send();
        async move {
            let r = r.await.expect("post");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for i in 0..2 {
        let (status, body) = post(format!("http-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = post("http-2".into()).await;
    assert_eq!(
        (status, &body["code"], &body["room"]),
        (429, &json!("rate_limited"), &json!("http-2")),
        "{body}"
    );
    // A room that exists takes messages from that address as before.
    assert_eq!(post("http-0".into()).await.0, 200);
}

/// A long-poll is how a client on the HTTP fallback is in a room, so polling a room that does
/// not exist makes it, from the same budget as a `join`: four addresses polling 100 made-up
/// rooms at a time filled `--max-conversations` (every one held while its poll waited), and
/// every new visitor was refused.
#[tokio::test]
async fn polls_of_rooms_that_do_not_exist_are_budgeted_like_joins() {
    let mut config = Config::for_tests();
    config.room_creations_per_hour = 3;
    config.poll_timeout = Duration::from_millis(50);
    let hub = TestHub::with(config).await;
    let http = http_from(loopback(15));
    let poll = |rooms: &str| {
        let r = http.get(hub.url(&format!("/api/chat/poll?session=ghost&rooms={rooms}"))).send();
        async move {
            let r = r.await.expect("poll");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = poll("ghost-0,ghost-1,ghost-2").await;
    assert_eq!(status, 200, "{body}");
    let listed = reqwest::get(hub.url("/api/rooms/ghost-1")).await.expect("room");
    assert_eq!(listed.status(), 200, "the poll made the room");
    let (status, body) = poll("ghost-0,ghost-3").await;
    assert_eq!(
        (status, &body["code"], &body["room"]),
        (429, &json!("rate_limited"), &json!("ghost-3")),
        "{body}"
    );
    assert_eq!(hub.metric("natter_limited_total{limit=\"room_creations\"}").await, 1);
    // Rooms that exist are polled as before, and another address makes its own.
    assert_eq!(poll("ghost-2,ghost-0").await.0, 200);
    let elsewhere = http_from(loopback(16)).get(hub.url("/api/chat/poll?session=other&room=ghost-9")).send();
    assert_eq!(elsewhere.await.expect("poll").status(), 200);
}

/// Joins are only rate-limited, so over an afternoon one connection could collect thousands of
/// rooms, each a member entry, a place in its fan-out and a presence record: a connection is in
/// at most `--max-rooms-per-connection` at once, and a leave makes room for another.
#[tokio::test]
async fn rooms_one_connection_is_in_are_capped() {
    let mut config = Config::for_tests();
    config.max_rooms_per_connection = 3;
    let hub = TestHub::with(config).await;
    let (mut tab, _) = hub.tab(&session("collector")).await;
    for i in 0..3 {
        join(&mut tab, &format!("many-{i}"), "C").await;
    }
    tab.send(json!({"type": "join", "room": "many-3"})).await;
    let message = tab.expect_error(ErrorCode::InvalidMessage).await;
    assert!(message.contains("--max-rooms-per-connection") && message.contains("many-3"), "{message}");
    assert_eq!(hub.metric("natter_limited_total{limit=\"rooms_per_connection\"}").await, 1);
    // The connection carries on in the rooms it has, and a leave frees a place.
    tab.send(json!({"type": "chat", "room": "many-0", "id": "c-1", "message": "still here"})).await;
    tab.until(|m| matches!(m, ServerMessage::Ack(a) if a.id == "c-1").then_some(())).await;
    tab.send(json!({"type": "leave", "room": "many-0"})).await;
    join(&mut tab, "many-3", "C").await;
    // The cap is per connection: another tab of the same visitor joins on its own.
    let (mut other, _) = hub.tab(&session("collector")).await;
    join(&mut other, "many-1", "C").await;
}

// 3. Bytes nobody bounded.

/// A store whose history reads wait while `open` is false: a read from a busy database,
/// held still so a test can see what the hub holds meanwhile. Everything else is the memory
/// store.
struct HeldReads {
    open: tokio::sync::watch::Sender<bool>,
    /// How many reads the store runs at once.
    turns: usize,
}

impl StoreHooks for HeldReads {
    fn read_turns(&self) -> usize {
        self.turns
    }

    fn before_read(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|o| *o).await;
        })
    }
}

/// Each resume is bounded by `--max-replay-bytes`, but nothing bounded how many were built at
/// once: 300 polls from `after=0` at once from one address took a hub from 28 MB to 520 MB.
/// A read from the store takes `--max-replay-bytes` of `--max-replay-in-flight` while it is
/// built, an address at most a quarter of it.
#[tokio::test]
async fn history_being_built_is_capped_per_address_and_in_all() {
    let mut config = Config::for_tests();
    config.rate_burst = 0;
    config.max_replay_in_flight = 4 * config.max_replay_bytes;
    let (open, _) = tokio::sync::watch::channel(true);
    // More reads at once than the cap has room for: the cap is what refuses here.
    let store = Hooked::new(HeldReads { open: open.clone(), turns: 8 });
    let hub = TestHub::with_store(config, store).await;
    let (mut writer, _) = hub.tab(&session("archivist")).await;
    // A support conversation longer than the in-memory ring, for a WebSocket resume below.
    let reader = session("reader");
    let (mut visitor, _) = hub.tab(&reader).await;
    for i in 0..60 {
        visitor.send(json!({"type": "user", "id": format!("u-{i}"), "message": "old question"})).await;
    }
    visitor.until(|m| matches!(m, ServerMessage::Ack(a) if a.id == "u-59").then_some(())).await;
    join(&mut writer, "archive", "W").await;
    fill_room(&mut writer, "archive", "a", 150, "old news").await;

    // From here every read from the store is held: each resume from the start (older than the
    // ring) holds its share meanwhile.
    open.send_replace(false);
    let resume = |from: u8| {
        let request =
            http_from(loopback(from)).get(hub.url("/api/chat/poll?session=r&room=archive&after=0")).send();
        tokio::spawn(async move { request.await.expect("poll") })
    };
    let answered_at_once = |task: tokio::task::JoinHandle<reqwest::Response>| async move {
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("answered without waiting for the store")
            .expect("task")
    };
    let limited = |name: &str| format!("natter_limited_total{{limit=\"{name}\"}}");
    let share = 1_048_576;
    let mut held = vec![resume(42)];
    hub.wait_metric("natter_replay_bytes", share).await;
    let second = answered_at_once(resume(42)).await;
    assert_eq!(second.status(), 429, "one address holds at most a quarter");
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(hub.metric(&limited("replay_in_flight_per_address")).await, 1);
    // A WebSocket resuming its conversation from that address is refused the same way, and
    // told to come back later (4029), not that the hub failed (1011).
    let tcp = tcp_from(&hub, loopback(42)).await;
    let (mut ws, _) =
        tokio_tungstenite::client_async(hub.ws_url(&reader, "&after=0"), MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
    let mut refused_with = None;
    while let Some(Ok(frame)) = tokio::time::timeout(DEADLINE, ws.next()).await.expect("the hub answers") {
        match frame {
            Message::Text(text) => {
                if let Ok(ServerMessage::Error(e)) = serde_json::from_str::<ServerMessage>(&text) {
                    assert_eq!(e.code, ErrorCode::RateLimited, "{text}");
                }
            }
            Message::Close(Some(c)) => refused_with = Some(u16::from(c.code)),
            _ => {}
        }
    }
    assert_eq!(refused_with, Some(close::RATE_LIMITED));
    assert_eq!(hub.metric(&limited("replay_in_flight_per_address")).await, 2);
    for (n, from) in [43, 44, 45].into_iter().enumerate() {
        held.push(resume(from));
        hub.wait_metric("natter_replay_bytes", (n as u64 + 2) * share).await;
    }
    let fifth = answered_at_once(resume(46)).await;
    assert_eq!(fifth.status(), 503, "the hub builds at most --max-replay-in-flight at once");
    assert_eq!(hub.metric(&limited("replay_in_flight")).await, 1);

    // The store answers: every held resume gets its history, and the shares are back.
    open.send_replace(true);
    for task in held {
        let r = task.await.expect("task");
        assert_eq!(r.status(), 200);
        let history: ServerMessage = r.json().await.expect("history");
        assert!(matches!(history, ServerMessage::History(h) if h.messages.len() == 150));
    }
    assert_eq!(hub.metric("natter_replay_bytes").await, 0);
    assert_eq!(answered_at_once(resume(42)).await.status(), 200);
    assert_eq!(answered_at_once(resume(46)).await.status(), 200);
}

/// A TCP connection to the hub from `from` with a 4 KB receive buffer: a reader that stops
/// reading holds up the hub's writes at once.
async fn small_reader(hub: &TestHub, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.bind(SocketAddr::new(from, 0)).expect("bind a loopback address");
    tokio::time::timeout(DEADLINE, socket.connect(hub.addr)).await.expect("in time").expect("connect")
}

/// A hub whose `--max-replay-in-flight` holds four answers of `--max-replay-bytes` (an address
/// one), whose deaf readers outlast a test, with a room `archive` of about 525 KB of history
/// written by the returned tab.
async fn archive_hub() -> (TestHub, Tab) {
    let mut config = Config::for_tests();
    config.rate_burst = 0;
    config.max_replay_in_flight = 4 * config.max_replay_bytes;
    config.idle_timeout = Duration::from_secs(300);
    let hub = TestHub::with(config).await;
    let (mut writer, _) = hub.tab(&session("archivist")).await;
    join(&mut writer, "archive", "W").await;
    fill_room(&mut writer, "archive", "a", 150, &"x".repeat(3500)).await;
    (hub, writer)
}

/// A deaf reader from `from`: a small receive buffer, a join of `room` from the start, and
/// nothing read after that.
async fn deaf_join(
    hub: &TestHub,
    from: IpAddr,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>> {
    let tcp = small_reader(hub, from).await;
    let url = hub.ws_url(&session(&format!("deaf-{from}")), "");
    let (mut deaf, _) =
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await.expect("upgrade");
    let join = json!({"type": "join", "room": room, "name": "D", "after": 0});
    deaf.send(Message::Text(join.to_string().into())).await.expect("send the join");
    deaf
}

/// Joins `room` from the start and returns how many messages its history holds.
async fn history_of(tab: &mut Tab, room: &str) -> usize {
    tab.send(json!({"type": "join", "room": room, "name": "H", "after": 0})).await;
    tab.until(|m| match m {
        ServerMessage::History(h) if h.room.as_deref() == Some(room) => Some(h.messages.len()),
        ServerMessage::Error(e) => panic!("the join of {room} was refused: {e:?}"),
        _ => None,
    })
    .await
}

/// A history answer is held against `--max-replay-in-flight` until it is written, not only
/// while it is built: a WebSocket that joins a room from the start and never reads keeps its
/// share (the kernel's send buffer is bounded, `--socket-send-buffer`, so the answer cannot
/// all go there) — 281 such connections from one address took a hub from 15 MB to 291 MB,
/// three addresses to 988 MB, when the share was given back once the answer was queued. And
/// it keeps it only until someone else needs it: a request that finds its address's share or
/// the hub's cap taken has the connections holding the oldest unread answers closed (4001)
/// to make room — without that, four addresses of deaf readers renewed every minute kept
/// every new visitor of the hub out.
#[tokio::test]
async fn unread_history_answers_keep_their_share_until_someone_needs_it() {
    // One address may hold one answer of the room's history, not two.
    let (hub, _writer) = archive_hub().await;
    let slow = "natter_slow_consumers_dropped_total";
    // Tabs that will ask for the room's history, connected (their own history read) before.
    let mut neighbour = tab_from(&hub, loopback(60), &session("neighbour")).await;
    let mut newcomer = tab_from(&hub, loopback(70), &session("newcomer")).await;

    let _first = deaf_join(&hub, loopback(60), "archive").await;
    hub.wait_metric("natter_replay_bytes", 400_000).await;
    assert_eq!(hub.metric(slow).await, 0);
    // Its address asks again: the deaf reader's unread answer goes, the new one is built.
    assert_eq!(history_of(&mut neighbour, "archive").await, 150);
    assert_eq!(hub.metric(slow).await, 1, "the deaf reader was closed to make room");

    // Six addresses' deaf readers hold most of the hub's cap; a newcomer still gets in, and
    // the oldest of them goes.
    let mut deaf = Vec::new();
    for (n, from) in (64..70).enumerate() {
        deaf.push(deaf_join(&hub, loopback(from), "archive").await);
        hub.wait_metric("natter_replay_bytes", (n as u64 + 1) * 500_000).await;
    }
    assert_eq!(history_of(&mut newcomer, "archive").await, 150);
    assert_eq!(hub.metric(slow).await, 2, "one more deaf reader made room");

    // When the deaf readers hang up, every share is back.
    drop(deaf);
    let start = tokio::time::Instant::now();
    while hub.metric("natter_replay_bytes").await > 0 {
        assert!(start.elapsed() < DEADLINE, "the shares were never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same for a long-poll: its answer keeps its share until the hub has handed the last of
/// it to the connection. Three addresses polling a long room from the start 12 times a second
/// without reading took a hub from 105 MB to 514 MB in 15 s when the share ended with the
/// handler.
#[tokio::test]
async fn unread_long_poll_answers_keep_their_share_until_written() {
    let (hub, _writer) = archive_hub().await;
    let mut deaf = small_reader(&hub, loopback(62)).await;
    let request = "GET /api/chat/poll?session=deaf&room=archive&after=0 HTTP/1.1\r\nHost: hub\r\n\r\n";
    deaf.write_all(request.as_bytes()).await.expect("send the poll");
    hub.wait_metric("natter_replay_bytes", 400_000).await;

    let poll = |from: u8| {
        http_from(loopback(from)).get(hub.url("/api/chat/poll?session=s2&room=archive&after=0")).send()
    };
    let refused = poll(62).await.expect("poll");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.expect("body").contains("still being written"));
    let answered = poll(63).await.expect("poll");
    assert_eq!(answered.status(), 200);
    let history: ServerMessage = answered.json().await.expect("history");
    assert!(matches!(history, ServerMessage::History(h) if h.messages.len() == 150));

    drop(deaf);
    let start = tokio::time::Instant::now();
    while hub.metric("natter_replay_bytes").await > 0 {
        assert!(start.elapsed() < DEADLINE, "the share was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(poll(62).await.expect("poll").status(), 200);
}

/// A history read from the store holds its share of `--max-replay-in-flight` only while it
/// reads, not while it waits in line for the store, and a session issued with the request is
/// not read at all (it is known to be empty). Each read took `--max-replay-bytes` before it
/// waited: 20 addresses of session-less long-polls filled the cap with shares of empty
/// answers, honest polls were refused (503) and honest WebSockets whose history was written
/// but not read yet were closed (4001) to make room for reads still waiting in line. Nor is
/// such a session read to learn whether its first message opens a conversation.
#[tokio::test]
async fn history_reads_hold_a_share_only_while_they_read() {
    let mut config = Config::for_tests();
    config.rate_burst = 0;
    config.address_conversations_per_hour = 300;
    config.max_replay_in_flight = 4 * config.max_replay_bytes;
    config.idle_timeout = Duration::from_secs(300);
    let (open, _) = tokio::sync::watch::channel(true);
    let store = Hooked::new(HeldReads { open: open.clone(), turns: 2 });
    let hub = TestHub::with_store(config, store).await;
    let (mut writer, _) = hub.tab(&session("archivist")).await;
    join(&mut writer, "archive", "W").await;
    fill_room(&mut writer, "archive", "a", 150, &"x".repeat(3500)).await;
    // An honest tab's answer of about 525 KB, written and not read yet (a tab in the
    // background): the first the hub would close to make room.
    let _background = deaf_join(&hub, loopback(100), "archive").await;
    hub.wait_metric("natter_replay_bytes", 400_000).await;
    let unread = hub.metric("natter_replay_bytes").await;

    // From here every read from the store is held.
    open.send_replace(false);
    // Four addresses ask for the recent history of three conversations each, none of them in
    // memory: two reads start (the store's turns), the ten others wait in line holding nothing.
    let share = 1_048_576;
    let cold = |from: u8, i: usize| {
        let path = format!("/api/chat/poll?session={}", session(&format!("cold-{from}-{i}")));
        let request = http_from(loopback(from)).get(hub.url(&path)).send();
        tokio::spawn(async move { request.await.expect("poll") })
    };
    let mut reads = Vec::new();
    for i in 0..3 {
        for from in 101..105 {
            reads.push(cold(from, i));
        }
    }
    hub.wait_metric("natter_history_reads_waiting", 10).await;
    assert_eq!(
        hub.metric("natter_replay_bytes").await,
        unread + 2 * share,
        "only the reads reading hold a share"
    );

    // Session-less long-polls from the same addresses: each gets a new session, whose history
    // is known to be empty; none reads or holds anything, and all wait for news.
    let fresh = |from: u8| {
        let request = http_from(loopback(from)).get(hub.url("/api/chat/poll?after=0")).send();
        tokio::spawn(async move { request.await.expect("poll") })
    };
    let waiting: Vec<_> = (101..105).flat_map(|from| [fresh(from), fresh(from)]).collect();
    hub.wait_metric("natter_polls_waiting", 8).await;
    assert_eq!(hub.metric("natter_history_reads_waiting").await, 10);

    // A new visitor from another address gets its (empty) history at once, and the background
    // tab keeps its answer.
    let tcp = tcp_from(&hub, loopback(105)).await;
    let url = format!("ws://{}/ws/chat?page=/test", hub.addr);
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await.expect("upgrade");
    let mut newcomer = Tab { ws };
    newcomer.send(json!({"type": "auth"})).await;
    let history = newcomer
        .until(|m| match m {
            ServerMessage::History(h) => Some(h),
            ServerMessage::Error(e) => panic!("the newcomer was refused: {e:?}"),
            _ => None,
        })
        .await;
    assert!(history.messages.is_empty() && history.complete);
    let limited = |name: &str| format!("natter_limited_total{{limit=\"{name}\"}}");
    assert_eq!(hub.metric("natter_slow_consumers_dropped_total").await, 0, "nobody was cut to make room");
    assert_eq!(hub.metric(&limited("replay_in_flight")).await, 0);
    assert_eq!(hub.metric(&limited("replay_in_flight_per_address")).await, 0);
    assert_eq!(hub.metric("natter_replay_bytes").await, unread + 2 * share);

    // A first message under a session issued with it opens a conversation, known without a
    // read (whether it does is what its address's openings budget needs): it is acknowledged
    // while every read is held.
    let post = http_from(loopback(106)).post(hub.url("/api/chat/messages")).json(&json!({"message": "hi"}));
    let posted = tokio::time::timeout(DEADLINE, post.send()).await.expect("answered, no read").expect("post");
    assert_eq!(posted.status(), 200);

    // The store answers: every read waiting in line gets its turn and its answer.
    open.send_replace(true);
    for task in reads {
        let r = task.await.expect("task");
        assert_eq!(r.status(), 200);
        let history: ServerMessage = r.json().await.expect("history");
        assert!(matches!(history, ServerMessage::History(h) if h.messages.is_empty()));
    }
    assert_eq!(hub.metric("natter_history_reads_waiting").await, 0);
    assert_eq!(hub.metric("natter_replay_bytes").await, unread);
    for task in waiting {
        task.abort();
    }
}

#[tokio::test]
async fn context_is_capped_in_bytes_and_kept_as_text() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("ctx")).await;
    let zeros: Vec<u8> = vec![0; 31_000];
    tab.send(json!({"type": "user", "id": "big", "message": "hi", "context": zeros})).await;
    let message = tab.expect_error(ErrorCode::TooLarge).await;
    assert!(message.contains("context") && message.contains("62001"), "{message}");
    // Kept as the text it was sent as (odd spacing included) and echoed so.
    tab.send_text(r#"{"type":"user","id":"small","message":"hi","context":{ "page" : "/x" }}"#).await;
    let echoed = loop {
        match tab.ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"user""#) => break t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(echoed.contains(r#""context":{ "page" : "/x" }"#), "{echoed}");
    assert_eq!(hub.metric("natter_limited_total{limit=\"context\"}").await, 1);
}

#[tokio::test]
async fn rings_and_resumes_are_bounded_in_bytes() {
    let mut config = Config::for_tests();
    config.ring_bytes = 8 * 1024;
    config.max_replay_bytes = 4 * 1024;
    config.rate_burst = 0;
    let hub = TestHub::with(config).await;
    let sid = session("bytes");
    let (mut tab, _) = hub.tab(&sid).await;
    let text = "x".repeat(1000);
    for i in 0..30 {
        tab.say(&format!("b{i}"), &text).await;
        tab.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;
    }
    // Thirty user messages and thirty bot replies, in a ring of 8 KiB.
    assert!(hub.metric("natter_ring_bytes").await <= 8 * 1024 + 1500);
    // A resume from the start gets the newest 4 KiB and is told the rest is a gap.
    let mut again = Tab::connect(&hub.ws_url(&sid, "&after=0")).await;
    let h = again.expect_history().await;
    assert!(!h.complete && h.gap.is_some(), "{:?}", (h.complete, h.gap));
    assert!(h.messages.len() < 8 && !h.messages.is_empty(), "{}", h.messages.len());
    assert_eq!(h.messages.last().and_then(ServerMessage::seq), Some(h.last_seq));
}

/// A history answer is bytes the hub sends like any other frame: a `join` (after=0) / `leave`
/// loop on a room with a long history, or the same long-poll over and over, is paid for from
/// the connection's frame budget and its address's, refused with `rate_limited` past them, and
/// a member elsewhere still joins and talks.
#[tokio::test]
async fn history_replays_are_paid_for_from_the_frame_budgets() {
    let mut config = Config::for_tests();
    config.rate_burst = 0;
    // Bursts of 200 KB a connection and 400 KB an address; the room's history is about 90 KB.
    config.frame_budget = 50_000;
    config.address_frame_budget = 100_000;
    let hub = TestHub::with(config).await;
    let mut writer = tab_from(&hub, loopback(50), &session("writer")).await;
    join(&mut writer, "library", "W").await;
    fill_room(&mut writer, "library", "l", 40, &"p".repeat(2000)).await;

    // Over a WebSocket: up to twenty full replays asked for; a few are paid, then refused.
    let mut looper = tab_from(&hub, loopback(51), &session("looper")).await;
    let mut replays = 0;
    let refusal = loop {
        assert!(replays < 20, "twenty full replays and no refusal");
        looper.send(json!({"type": "join", "room": "library", "name": "L", "after": 0})).await;
        let answer = looper
            .until(|m| match m {
                ServerMessage::History(h) if h.room.as_deref() == Some("library") => Some(Ok(h)),
                ServerMessage::Error(e) => Some(Err(e)),
                _ => None,
            })
            .await;
        match answer {
            Ok(h) => {
                assert_eq!(h.messages.len(), 40);
                replays += 1;
                looper.send(json!({"type": "leave", "room": "library"})).await;
            }
            Err(e) => break e,
        }
    };
    assert!(replays < 5, "{replays} full replays before the first refusal");
    assert_eq!(refusal.code, ErrorCode::RateLimited, "{refusal:?}");
    assert!(refusal.retry_after_ms.is_some() && refusal.room.as_deref() == Some("library"), "{refusal:?}");
    assert!(hub.metric("natter_limited_total{limit=\"frame_budget\"}").await >= 1);

    // Over HTTP: the same long-poll from another address, twenty times on one client.
    let http = http_from(loopback(52));
    let (mut answered, mut limited) = (0, 0);
    for _ in 0..20 {
        let r =
            http.get(hub.url("/api/chat/poll?session=p&room=library&after=0")).send().await.expect("poll");
        match r.status().as_u16() {
            200 => answered += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!((1..8).contains(&answered) && limited > 0, "{answered} answered, {limited} refused");
    assert!(hub.metric("natter_limited_total{limit=\"address_frame_budget\"}").await >= 1);

    // A member elsewhere joins, gets the whole history and talks.
    let mut honest = tab_from(&hub, loopback(53), &session("honest")).await;
    honest.send(json!({"type": "join", "room": "library", "name": "H", "after": 0})).await;
    let h = honest
        .until(|m| match m {
            ServerMessage::History(h) if h.room.as_deref() == Some("library") => Some(h),
            _ => None,
        })
        .await;
    assert_eq!(h.messages.len(), 40);
    honest.send(json!({"type": "chat", "room": "library", "id": "h-1", "message": "hello"})).await;
    writer.until(|m| chat_text(m).filter(|(id, _)| id == "h-1")).await;
}

/// A refused `Origin` is answered (and logged) clipped: a 60 KB one used to be written whole to
/// the INFO log and echoed whole in the 403, 60 KB of each per request.
#[tokio::test]
async fn a_huge_refused_origin_is_answered_clipped() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://site.example".into()];
    let hub = TestHub::with(config).await;
    let origin = format!("https://{}.example", "a".repeat(60_000));
    let request = format!(
        "GET /api/chat/poll?session=o&after=0 HTTP/1.1\r\nHost: hub\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) = raw_request(&hub, loopback(24), &request).await;
    assert_eq!(status, 403, "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("forbidden_origin") && answer.contains("https://aaaa"), "{answer}");
    assert!(answer.len() < 2000, "a {}-byte answer", answer.len());
}

// 4. Transport timeouts and the connection cap.

#[tokio::test]
async fn slow_and_idle_connections_are_cut_at_the_header_timeout() {
    let mut config = Config::for_tests();
    config.header_timeout = Duration::from_millis(800);
    let hub = TestHub::with(config).await;
    // A connection that never sends anything.
    let mut idle = tcp_from(&hub, loopback(1)).await;
    // One that sends a request head one byte at a time, a byte every 300 ms.
    let mut slow = tcp_from(&hub, loopback(1)).await;
    let dribble = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("the hub read the whole dribbled head");
    });
    // A keep-alive connection that went quiet after one request.
    let mut kept = tcp_from(&hub, loopback(1)).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n").await.expect("write");
    closed_by_hub(&mut idle).await;
    closed_by_hub(&mut kept).await;
    let mut slow = tokio::time::timeout(DEADLINE, dribble).await.expect("cut in time").expect("task");
    closed_by_hub(&mut slow).await;
    // The hub is fine.
    assert_eq!(raw_request(&hub, loopback(1), &get("/healthz")).await.0, 200);
}

#[tokio::test]
async fn a_body_that_trickles_is_answered_408() {
    let mut config = Config::for_tests();
    config.header_timeout = Duration::from_millis(800);
    let hub = TestHub::with(config).await;
    let mut tcp = tcp_from(&hub, loopback(1)).await;
    tcp.write_all(
        b"POST /api/chat/messages?session=slow HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"message\":",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut answer)).await.expect("answered in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
}

/// A `Content-Length` past the body limit is refused at once from the header (413, naming the
/// figure), not after waiting the header timeout for a body the hub would refuse anyway.
#[tokio::test]
async fn a_body_announced_too_large_is_refused_at_once() {
    let mut config = Config::for_tests();
    // Longer than the test waits: only an answer from the header alone passes.
    config.header_timeout = Duration::from_secs(300);
    let hub = TestHub::with(config).await;
    let request = "POST /api/chat/messages HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\
                   Content-Length: 999999999\r\nConnection: close\r\n\r\n";
    let (status, answer) = raw_request(&hub, loopback(23), request).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("999999999") && answer.contains("too_large"), "{answer}");
}

#[tokio::test]
async fn past_max_connections_healthz_answers_and_the_rest_is_refused_politely() {
    let mut config = Config::for_tests();
    config.max_connections = Some(4);
    let hub = TestHub::with(config).await;
    // The hub accepts connections in the order they were made, so these four take every place
    // before the requests below arrive (no `/metrics` meanwhile: it would be refused too).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp_from(&hub, loopback(1)).await);
    }
    let (status, answer) = raw_request(&hub, loopback(1), &get("/healthz")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"ok\""), "{answer}");
    let (status, answer) = raw_request(&hub, loopback(1), &get("/api/chat/poll?session=x")).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 5"), "{answer}");
    assert!(answer.contains("most connections"), "{answer}");
    // Once connections close, everyone is served again.
    drop(held);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, _) = raw_request(&hub, loopback(1), &get("/api/chat/poll?session=x")).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hub.metric("natter_limited_total{limit=\"connections\"}").await >= 2);
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let mut config = Config::for_tests();
    config.max_connections_per_address = Some(3);
    let hub = TestHub::with(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from(&hub, loopback(10)).await);
    }
    hub.wait_metric("natter_sockets", 3).await;
    let (status, answer) = raw_request(&hub, loopback(10), &get("/api/chat/poll?session=x")).await;
    assert_eq!(status, 429, "{answer}");
    let (status, _) = raw_request(&hub, loopback(11), &get("/api/chat/poll?session=x")).await;
    assert_eq!(status, 200, "another address is served");
    drop(held);
}

#[tokio::test]
async fn new_connections_past_an_address_budget_are_turned_away_before_a_read() {
    let mut config = Config::for_tests();
    config.address_connect_burst = 3;
    // One more every 1,000 s: none comes back while the test runs.
    config.address_connect_rate_per_sec = 0.001;
    config.trusted_proxies = vec!["127.0.0.22/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    // Connections that never send a request spend the budget all the same (a slowloris).
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from(&hub, loopback(20)).await);
    }
    hub.wait_metric("natter_sockets", 3).await;
    // The next one is answered before it sends anything, and closed.
    let mut early = tcp_from(&hub, loopback(20)).await;
    let mut answer = Vec::new();
    let _ =
        tokio::time::timeout(DEADLINE, early.read_to_end(&mut answer)).await.expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{answer}");
    assert!(answer.contains("\r\nRetry-After: ") && answer.contains("\r\nConnection: close\r\n"), "{answer}");
    let body: Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], "rate_limited");
    assert!(body["message"].as_str().unwrap_or_default().contains("--address-connect-burst"), "{body}");
    // One that sends its request at once gets the same answer.
    let (status, answer) = raw_request(&hub, loopback(20), &get("/healthz")).await;
    assert_eq!(status, 429, "{answer}");
    // One still sending a large body when it is answered reads the answer, not a reset: the
    // hub reads the rest of what it sends before it closes.
    let mut sender = tcp_from(&hub, loopback(20)).await;
    let body = "x".repeat(256 * 1024);
    let request = format!(
        "POST /api/chat/messages HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut reading, mut writing) = sender.split();
    let (wrote, read) = tokio::join!(writing.write_all(request.as_bytes()), async {
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, reading.read_to_end(&mut answer)).await.map(|r| r.map(|_| answer))
    });
    wrote.expect("the whole request is taken");
    let answer = read.expect("answered in time").expect("an answer and an orderly close, not a reset");
    assert!(answer.starts_with(b"HTTP/1.1 429"), "{}", String::from_utf8_lossy(&answer));
    // Other addresses carry on, and so do the connections already open.
    let (status, _) = raw_request(&hub, loopback(21), &get("/healthz")).await;
    assert_eq!(status, 200, "another address is served");
    held[0].write_all(get("/healthz").as_bytes()).await.expect("write");
    let mut served = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, held[0].read_to_end(&mut served)).await.expect("served in time");
    assert!(served.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&served));
    // A trusted proxy's connections are its clients', not its own: never turned away here.
    for _ in 0..5 {
        let (status, answer) = raw_request(&hub, loopback(22), &get("/healthz")).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(hub.metric("natter_limited_total{limit=\"address_connects\"}").await, 3);
    assert_eq!(hub.metric("natter_errors_total{code=\"rate_limited\"}").await, 3);
    drop(held);
}

// 5. A peer that stops reading.

/// A peer that keeps writing `frame(n)` (n = 0, 1, …) but never reads is closed at the idle
/// timeout (4002), while a tab that reads beside it stays.
async fn a_deaf_peer_is_closed(frame: fn(u64) -> Message) {
    let mut config = Config::for_tests();
    config.ping_interval = Duration::from_millis(200);
    config.idle_timeout = Duration::from_secs(2);
    let hub = TestHub::with(config).await;
    let (mut deaf, _) = hub.tab(&session("deaf")).await;
    let (live, _) = hub.tab(&session("live")).await;
    // The live tab reads, and so echoes each of the hub's pings in its pong.
    let live_task = tokio::spawn(async move {
        let mut live = live;
        while let Some(Ok(_)) = live.ws.next().await {}
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = stop.clone();
    let writer = tokio::spawn(async move {
        let mut n: u64 = 0;
        while !writing.load(std::sync::atomic::Ordering::Relaxed) {
            if deaf.ws.send(frame(n)).await.is_err() {
                break;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        deaf
    });
    hub.wait_metric("natter_stale_connections_closed_total", 1).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut deaf = writer.await.expect("writer");
    // Reading at last, it finds the close telling it so.
    assert_eq!(deaf.expect_close().await, close::STALE);
    assert_eq!(hub.metric("natter_stale_connections_closed_total").await, 1, "the live tab stays");
    live_task.abort();
}

#[tokio::test]
async fn a_peer_that_pings_but_never_reads_is_closed() {
    a_deaf_peer_is_closed(|_| Message::Ping(Default::default())).await;
}

/// Pongs are free to send unasked, so only a pong echoing one of the hub's pings (each with a
/// random payload) counts as proof that the peer reads: one that only ever sends pongs of its
/// own, empty or made up, is closed at the idle timeout like a silent one.
#[tokio::test]
async fn unsolicited_pongs_do_not_keep_a_deaf_peer_alive() {
    // Empty, then guesses of an 8-byte payload, in turn.
    a_deaf_peer_is_closed(|n| {
        let payload = if n % 2 == 0 { Vec::new() } else { n.to_le_bytes().to_vec() };
        Message::Pong(payload.into())
    })
    .await;
}

// 6. Every frame kind draws on one budget.

#[tokio::test]
async fn a_flooder_is_throttled_then_cut_and_the_room_stays() {
    let hub = TestHub::start().await;
    let mut members = Vec::new();
    for i in 0..20 {
        let (mut tab, _) = hub.tab(&session(&format!("member-{i}"))).await;
        join(&mut tab, "board", &format!("M{i}")).await;
        members.push(tab);
    }
    let (mut flooder, _) = hub.tab(&session("flooder")).await;
    join(&mut flooder, "board", "F").await;
    let blob = "x".repeat(60_000);
    let frame = json!({"type": "cursor_position", "room": "board", "data": {"blob": blob}}).to_string();
    let mut sent = 0;
    while sent < 3000 && flooder.ws.send(Message::text(frame.clone())).await.is_ok() {
        sent += 1;
        if hub.metric("natter_limited_total{limit=\"frame_budget_cut\"}").await > 0 {
            break;
        }
    }
    // Told to slow down (with how long to wait), then cut with 4029.
    let mut refused = 0;
    let code = loop {
        match tokio::time::timeout(DEADLINE, flooder.ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => {
                if let Ok(ServerMessage::Error(e)) = ServerMessage::from_json(t.as_str()) {
                    assert_eq!(e.code, ErrorCode::RateLimited);
                    assert!(e.retry_after_ms.is_some());
                    refused += 1;
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("expected 4029, got {other:?}"),
        }
    };
    assert!(refused >= 1, "refused before being cut");
    assert_eq!(code, close::RATE_LIMITED);
    assert!(sent < 100, "cut after {sent} frames, not after the flood");
    // Nobody else was dropped; everyone still talks.
    assert_eq!(hub.metric("natter_slow_consumers_dropped_total").await, 0);
    members[0].send(json!({"type": "chat", "room": "board", "id": "after", "message": "still here"})).await;
    for tab in &mut members[1..] {
        let (id, _) = tab.until(chat_text).await;
        assert_eq!(id, "after");
    }
}

/// Connections are free to open, so a budget per connection alone is multiplied by every
/// connection an address opens: sixteen tabs of one address, each flooding a room with typing
/// well within its own budget, together send eight times what one may. Their address's budget
/// refuses the excess; a member elsewhere sees a fraction of the flood and carries on.
#[tokio::test]
async fn many_connections_from_one_address_share_its_frame_budget() {
    let mut config = Config::for_tests();
    config.frame_budget = 64 * 1024;
    config.address_frame_budget = 128 * 1024;
    let hub = TestHub::with(config).await;
    let mut honest = tab_from(&hub, loopback(30), &session("honest")).await;
    join(&mut honest, "board", "H").await;
    let mut other = tab_from(&hub, loopback(31), &session("other")).await;
    join(&mut other, "board", "K").await;
    let mut attackers = Vec::new();
    for i in 0..16 {
        let mut tab = tab_from(&hub, loopback(32), &session(&format!("attacker-{i}"))).await;
        join(&mut tab, "board", &format!("A{i}")).await;
        attackers.push(tab);
    }
    // Each typing frame reaches 18 members: about 5.5 KB of the budget. Thirty of them are
    // 165 KB, within one connection's 256 KiB burst; sixteen connections send 2.6 MB, five
    // times their address's burst.
    let typing = json!({"type": "typing", "room": "board", "active": true}).to_string();
    let rounds = 30;
    for _ in 0..rounds {
        for tab in &mut attackers {
            tab.send_text(&typing).await;
        }
    }
    hub.wait_metric("natter_limited_total{limit=\"address_frame_budget\"}", 1).await;
    let refusal = attackers[15]
        .until(|m| match m {
            ServerMessage::Error(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!(refusal.code, ErrorCode::RateLimited, "{refusal:?}");
    assert!(refusal.retry_after_ms.is_some() && refusal.room.as_deref() == Some("board"), "{refusal:?}");
    assert!(refusal.message.contains("your address"), "{}", refusal.message);
    assert_eq!(
        hub.metric("natter_limited_total{limit=\"frame_budget\"}").await,
        0,
        "no connection overspent"
    );
    // The honest members are still there, and got only part of the flood.
    other.send(json!({"type": "chat", "room": "board", "id": "k-1", "message": "still here"})).await;
    let mut relayed = 0;
    loop {
        match honest.recv().await {
            ServerMessage::Typing(t) if t.from.as_ref().is_some_and(|m| m.name.as_deref() != Some("K")) => {
                relayed += 1
            }
            ServerMessage::Chat(c) if c.id == "k-1" => break,
            _ => {}
        }
    }
    assert!(
        relayed < rounds * attackers.len(),
        "{relayed} of {} typing frames relayed",
        rounds * attackers.len()
    );
    honest.send(json!({"type": "chat", "room": "board", "id": "h-1", "message": "me too"})).await;
    assert_eq!(other.until(chat_text).await.0, "k-1");
    assert_eq!(other.until(chat_text).await.0, "h-1");
}

/// Frames sent before `auth` (when the connection has not said who it is) draw on the same
/// budget: refused, then cut with 4029.
#[tokio::test]
async fn frames_before_auth_draw_on_the_budget_too() {
    let mut config = Config::for_tests();
    config.open_sessions = false;
    config.frame_budget = 4 * 1024;
    let hub = TestHub::with(config).await;
    let mut tab = Tab::connect(&format!("ws://{}/ws/chat", hub.addr)).await;
    let junk = json!({"type": "ping", "nonce": "x".repeat(1000)}).to_string();
    for _ in 0..200 {
        if tab.ws.send(Message::text(junk.clone())).await.is_err() {
            break;
        }
    }
    let mut codes = Vec::new();
    let close = loop {
        match tokio::time::timeout(DEADLINE, tab.ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => {
                if let Ok(ServerMessage::Error(e)) = ServerMessage::from_json(t.as_str()) {
                    codes.push(e.code);
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("expected 4029, got {other:?}"),
        }
    };
    assert_eq!(close, close::RATE_LIMITED, "{codes:?}");
    assert!(codes.contains(&ErrorCode::BadSession) && codes.contains(&ErrorCode::RateLimited), "{codes:?}");
    assert!(codes.len() < 60, "{} frames answered before the cut", codes.len());
}

#[tokio::test]
async fn typing_floods_and_rejoins_are_refused() {
    let mut config = Config::for_tests();
    config.frame_budget = 32 * 1024;
    let hub = TestHub::with(config).await;
    let (mut watcher, _) = hub.tab(&session("watcher")).await;
    join(&mut watcher, "quiet", "W").await;
    let (mut typist, _) = hub.tab(&session("typist")).await;
    join(&mut typist, "quiet", "T").await;
    // Re-joins are refused at once, without another room_info.
    for _ in 0..3 {
        typist.send(json!({"type": "join", "room": "quiet"})).await;
        let message = typist.expect_error(ErrorCode::InvalidMessage).await;
        assert!(message.contains("already"), "{message}");
    }
    // 2,000 typing frames are not all relayed: the budget refuses them, then cuts the typist.
    let frame = json!({"type": "typing", "room": "quiet", "active": true}).to_string();
    for _ in 0..2000 {
        if typist.ws.send(Message::text(frame.clone())).await.is_err() {
            break;
        }
    }
    assert_eq!(typist.expect_close().await, close::RATE_LIMITED);
    let mut relayed = 0;
    watcher.send(json!({"type": "ping", "nonce": "end"})).await;
    loop {
        match watcher.recv().await {
            ServerMessage::Typing(_) => relayed += 1,
            ServerMessage::Pong(p) if p.nonce.as_ref().is_some_and(|n| *n == json!("end")) => break,
            _ => {}
        }
    }
    assert!(relayed < 2000, "{relayed} typing frames relayed");
    assert!(hub.metric("natter_limited_total{limit=\"frame_budget\"}").await >= 1);
}

// 7. Rooms are bounded.

#[tokio::test]
async fn room_creation_over_http_needs_the_api_key() {
    let hub = TestHub::start().await;
    let http = reqwest::Client::new();
    let r = http.post(hub.url("/api/rooms")).json(&json!({"room": "r1"})).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let body: ServerMessage = r.json().await.expect("json");
    assert!(
        matches!(&body, ServerMessage::Error(e) if e.code == ErrorCode::Unauthorized && e.message.contains("--api-key")),
        "{body:?}"
    );

    let mut config = Config::for_tests();
    config.api_key = Some("s3cret key of the room API".into());
    let hub = TestHub::with(config).await;
    let create = |key: Option<&str>| {
        let mut r = http.post(hub.url("/api/rooms")).json(&json!({"room": "r1", "name": "One"}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move { r.send().await.expect("post").status().as_u16() }
    };
    assert_eq!(create(None).await, 401);
    assert_eq!(create(Some("guess")).await, 401);
    assert_eq!(create(Some("s3cret key of the room API")).await, 201);
}

/// Room squatting: a visitor's `join` makes `team-standup` before the site does. The site's
/// `POST` is a 409 that names `PUT`; the site's `PUT` takes the room over (name and metadata
/// replaced, the squatter sees the new `room_info`); its `DELETE` removes the room and its
/// history, and tells the members present (`room_deleted`), who are no longer in it. Nobody
/// without the API key may do either.
#[tokio::test]
async fn the_operator_takes_over_and_deletes_a_squatted_room() {
    const KEY: &str = "the site's key of the room API";
    let mut config = Config::for_tests();
    config.api_key = Some(KEY.into());
    let hub = TestHub::with(config).await;
    let http = reqwest::Client::new();
    let room_url = |room: &str| hub.url(&format!("/api/rooms/{room}"));
    let answer = |r: reqwest::RequestBuilder| async move {
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    };

    // The squatter makes the room with a join and writes in it.
    let (mut squatter, _) = hub.tab(&session("squatter")).await;
    squatter.send(json!({"type": "join", "room": "team-standup", "name": "Squatter"})).await;
    squatter.until(|m| matches!(m, ServerMessage::History(_)).then_some(())).await;
    squatter.send(json!({"type": "chat", "room": "team-standup", "id": "c-1", "message": "mine now"})).await;
    squatter.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;

    // POST keeps its 409, and says how to take the room over.
    let post = http.post(hub.url("/api/rooms")).bearer_auth(KEY).json(&json!({"room": "team-standup"}));
    let (status, body) = answer(post).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("PUT /api/rooms/team-standup"), "{body}");

    // Without the key: 401, whatever the body.
    let site_room = json!({"name": "Team stand-up", "metadata": {"owner": "site"}});
    let (status, body) = answer(http.put(room_url("team-standup")).json(&site_room)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("--api-key"), "{body}");
    let (status, _) =
        answer(http.put(room_url("team-standup")).bearer_auth("a guess").json(&site_room)).await;
    assert_eq!(status, 401);
    let (status, _) = answer(http.delete(room_url("team-standup"))).await;
    assert_eq!(status, 401);
    // Validated as POST validates.
    let (status, body) =
        answer(http.put(room_url("team-standup")).bearer_auth(KEY).json(&json!({"name": "two\nlines"})))
            .await;
    assert_eq!((status, body.contains("name")), (400, true), "{body}");
    let (status, body) =
        answer(http.put(room_url("team-standup")).bearer_auth(KEY).json(&json!({"metadata": [1]}))).await;
    assert_eq!((status, body.contains("JSON object")), (400, true), "{body}");
    let (status, body) =
        answer(http.put(room_url("team-standup")).bearer_auth(KEY).json(&json!({"room": "other"}))).await;
    assert_eq!((status, body.contains("path")), (400, true), "{body}");
    let (status, _) = answer(http.put(room_url("bad%20room")).bearer_auth(KEY).json(&site_room)).await;
    assert_eq!(status, 400);

    // The site takes it over: 200, its name and metadata, the squatter still a member.
    let (status, body) = answer(http.put(room_url("team-standup")).bearer_auth(KEY).json(&site_room)).await;
    assert_eq!(status, 200, "{body}");
    let info: natter_protocol::RoomInfo = serde_json::from_str(&body).expect("room info");
    assert_eq!((info.name.as_deref(), info.metadata.get()), (Some("Team stand-up"), r#"{"owner":"site"}"#));
    assert_eq!(info.last_seq, 1, "the room's history stays");
    assert_eq!(info.member_count, 1);
    let seen = squatter
        .until(|m| match m {
            ServerMessage::RoomInfo(i) => Some(i),
            _ => None,
        })
        .await;
    assert_eq!(seen.name.as_deref(), Some("Team stand-up"), "the members present see the new info");
    // Idempotent, and a room nobody made yet is created (201).
    let (status, _) = answer(http.put(room_url("team-standup")).bearer_auth(KEY).json(&site_room)).await;
    assert_eq!(status, 200);
    let (status, body) = answer(http.put(room_url("support")).bearer_auth(KEY)).await;
    assert_eq!(status, 201, "an empty body is `{{}}`: {body}");
    let got: Value =
        http.get(room_url("team-standup")).send().await.expect("get").json().await.expect("json");
    assert_eq!(got["name"], "Team stand-up");

    // The site deletes it: 204, the squatter is told and is no longer in it.
    let (status, body) = answer(http.delete(room_url("team-standup")).bearer_auth(KEY)).await;
    assert_eq!(status, 204, "{body}");
    let deleted = squatter
        .until(|m| match m {
            ServerMessage::Error(e) if e.code == ErrorCode::RoomDeleted => Some(e),
            _ => None,
        })
        .await;
    assert_eq!(deleted.room.as_deref(), Some("team-standup"));
    squatter
        .send(json!({"type": "chat", "room": "team-standup", "id": "c-2", "message": "still here?"}))
        .await;
    assert!(squatter.expect_error(ErrorCode::NotInRoom).await.contains("join"));
    let (status, _) = answer(http.get(room_url("team-standup"))).await;
    assert_eq!(status, 404);
    let (status, body) = answer(http.delete(room_url("team-standup")).bearer_auth(KEY)).await;
    assert_eq!(status, 404, "{body}");

    // A join after it makes a new, empty room, with none of the old history; its seqs go on
    // from the deleted room's (1), so nobody who saw seq 1 before skips the new messages.
    let (mut later, _) = hub.tab(&session("later")).await;
    later.send(json!({"type": "join", "room": "team-standup", "name": "Later"})).await;
    let info = later
        .until(|m| match m {
            ServerMessage::RoomInfo(i) => Some(i),
            _ => None,
        })
        .await;
    assert_eq!((info.name, info.last_seq), (None, 1));
    let history = later.expect_history().await;
    assert!(history.messages.is_empty(), "{history:?}");
    assert_eq!(history.last_seq, 1, "{history:?}");
    // The squatter may join again like anyone, and writes after the old room's last seq.
    squatter.send(json!({"type": "join", "room": "team-standup", "name": "Squatter"})).await;
    let history = squatter.until(|m| match m {
        ServerMessage::History(h) => Some(h),
        _ => None,
    });
    assert!(history.await.messages.is_empty());
    squatter.send(json!({"type": "chat", "room": "team-standup", "id": "c-1", "message": "again"})).await;
    let ack = squatter
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!((ack.seq, ack.duplicate), (2, false), "a new history: the old id is not a duplicate");
    // A tab that saw seq 1 before the deletion and comes back resuming after it gets the new
    // room's message (with seqs starting again at 1, it was told it had seen it).
    let (mut returning, _) = hub.tab(&session("returning")).await;
    returning.send(json!({"type": "join", "room": "team-standup", "name": "Back", "after": 1})).await;
    let history = returning
        .until(|m| match m {
            ServerMessage::History(h) => Some(h),
            _ => None,
        })
        .await;
    let seqs: Vec<Option<u64>> = history.messages.iter().map(ServerMessage::seq).collect();
    assert_eq!(seqs, vec![Some(2)], "{history:?}");
}

/// `--room-creation api`: only the site makes rooms, so no id can be squatted; a join of a
/// room it has not made is refused, one it made is joined. Without `--api-key` nobody could
/// make a room, and the hub refuses to start.
#[tokio::test]
async fn with_room_creation_api_a_join_makes_no_room() {
    const KEY: &str = "the site's key of the room API";
    let mut config = Config::for_tests();
    config.api_key = Some(KEY.into());
    config.room_creation = natter_hub::config::RoomCreation::Api;
    let hub = TestHub::with(config).await;
    let (mut tab, _) = hub.tab(&session("visitor")).await;
    tab.send(json!({"type": "join", "room": "support", "name": "V"})).await;
    let refused = tab.expect_error(ErrorCode::UnknownRoom).await;
    assert!(refused.contains("--room-creation api"), "{refused}");
    let http = reqwest::Client::new();
    let r = http.get(hub.url("/api/rooms/support")).send().await.expect("get");
    assert_eq!(r.status(), 404, "the refused join made no room");
    // Nor does a message over the HTTP fallback.
    let r = http
        .post(hub.url("/api/chat/messages"))
        .header("x-natter-session", session("poster"))
        .json(&json!({"type": "chat", "room": "lobby", "id": "p1", "message": "hi", "name": "P"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    let r = http.put(hub.url("/api/rooms/support")).bearer_auth(KEY).send().await.expect("put");
    assert_eq!(r.status(), 201);
    tab.send(json!({"type": "join", "room": "support", "name": "V"})).await;
    tab.until(|m| matches!(m, ServerMessage::RoomInfo(_)).then_some(())).await;

    let mut keyless = Config::for_tests();
    keyless.room_creation = natter_hub::config::RoomCreation::Api;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let store = std::sync::Arc::new(natter_hub::store::memory::MemoryStore::new());
    let reply = natter_hub::build_reply(&keyless).expect("reply engine");
    let started = natter_hub::serve(listener, keyless, store, reply, std::future::pending()).await;
    let error = started.expect_err("no key, no rooms: refused").to_string();
    assert!(error.contains("--room-creation api") && error.contains("--api-key"), "{error}");
}

#[tokio::test]
async fn room_names_and_metadata_are_validated() {
    let mut config = Config::for_tests();
    config.api_key = Some("k".repeat(16));
    let hub = TestHub::with(config).await;
    let http = reqwest::Client::new();
    let create = |body: Value| {
        let r = http.post(hub.url("/api/rooms")).bearer_auth("k".repeat(16)).json(&body);
        async move {
            let r = r.send().await.expect("post");
            let status = r.status().as_u16();
            let message = match r.json::<Value>().await {
                Ok(v) => v["message"].as_str().unwrap_or_default().to_owned(),
                Err(_) => String::new(),
            };
            (status, message)
        }
    };
    for name in ["nul\0name", "two\nlines", "\u{1b}[31mred", "evil\u{202e}txt.exe"] {
        let (status, message) = create(json!({"room": "bad-name", "name": name})).await;
        assert_eq!(status, 400, "{name:?}: {message}");
        assert!(message.contains("name"), "{message}");
    }
    let (status, message) = create(json!({"room": "long", "name": "n".repeat(30_000)})).await;
    assert_eq!(status, 400);
    assert!(message.contains("30000 characters"), "{message}");
    let (status, _) = create(json!({"room": "meta", "metadata": [1, 2]})).await;
    assert_eq!(status, 400);
    let (status, message) = create(json!({"room": "meta", "metadata": {"blob": "m".repeat(9000)}})).await;
    assert_eq!(status, 413, "{message}");
    let (status, _) = create(json!({"room": "bad room"})).await;
    assert_eq!(status, 400);
    let (status, _) =
        create(json!({"room": "fine", "name": "Design review ✏️", "metadata": {"team": "a"}})).await;
    assert_eq!(status, 201);
    // Member names follow the same rules.
    let (mut tab, _) = hub.tab(&session("bidi")).await;
    tab.send(json!({"type": "join", "room": "fine", "name": "Ada\u{202e}"})).await;
    tab.expect_error(ErrorCode::InvalidMessage).await;
}

#[tokio::test]
async fn the_room_list_comes_in_pages() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("lister")).await;
    for i in 0..7 {
        join(&mut tab, &format!("page-{i}"), "L").await;
    }
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = hub.url("/api/rooms?limit=3");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: natter_protocol::RoomList =
            http.get(url).send().await.expect("get").json().await.expect("json");
        assert!(page.rooms.len() <= 3);
        seen.extend(page.rooms.into_iter().map(|r| r.room));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>());
    for bad in ["/api/rooms?limit=0", "/api/rooms?limit=100000", "/api/rooms?cursor=zz"] {
        let r = http.get(hub.url(bad)).send().await.expect("get");
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn empty_rooms_expire_and_rooms_in_use_stay() {
    let mut config = Config::for_tests();
    config.empty_room_ttl = Duration::from_millis(600);
    let hub = TestHub::with(config).await;
    let (mut a, _) = hub.tab(&session("expiry-a")).await;
    join(&mut a, "left-empty", "A").await;
    join(&mut a, "with-messages", "A").await;
    a.send(json!({"type": "chat", "room": "with-messages", "message": "keep me"})).await;
    a.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;
    a.send(json!({"type": "leave", "room": "left-empty"})).await;
    a.send(json!({"type": "leave", "room": "with-messages"})).await;
    let (mut b, _) = hub.tab(&session("expiry-b")).await;
    join(&mut b, "occupied", "B").await;
    let http = reqwest::Client::new();
    let status = |room: &'static str| {
        let url = hub.url(&format!("/api/rooms/{room}"));
        let http = http.clone();
        async move { http.get(url).send().await.expect("get").status().as_u16() }
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while status("left-empty").await != 404 {
        assert!(tokio::time::Instant::now() < deadline, "the empty room never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more sweeps at least: the others are still there.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(status("with-messages").await, 200);
    assert_eq!(status("occupied").await, 200);
}

// Fairness under a burst of accepted messages.

/// A store whose bot answers are written one at a time, each when the test lets one through,
/// in the order they asked (a busy database's writer, slowed down so a test can see whose
/// answers go first); it notes each answered conversation in order. Everything else is the
/// memory store.
struct MeteredBotWrites {
    through: tokio::sync::Semaphore,
    asked: std::sync::atomic::AtomicUsize,
    order: std::sync::Mutex<Vec<String>>,
}

impl StoreHooks for MeteredBotWrites {
    fn before_append<'a>(&'a self, draft: &'a Draft) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let ServerMessage::Bot(bot) = &draft.message {
                self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.through.acquire().await.expect("open").forget();
                self.order.lock().expect("order").push(bot.session_id.clone());
            }
            Ok(())
        })
    }
}

/// 160 messages from fresh sessions of one address, each within every budget, are accepted at
/// once; each brings work after its ack (its inbox record, the bot's answer stored). That work
/// used to start for all of them at once, so a visitor from another address who wrote just
/// after waited behind all 40 (on one CPU: honest p99 ×5 during such a burst). It now takes
/// turns by address: the other visitor's answer is written after a few of the burst's, not
/// after all of them.
#[tokio::test]
async fn a_burst_from_one_address_waits_behind_its_own() {
    let store = Hooked::new(MeteredBotWrites {
        through: tokio::sync::Semaphore::new(0),
        asked: Default::default(),
        order: Default::default(),
    });
    let hub = TestHub::with_store(Config::for_tests(), store.clone()).await;
    let mut honest = tab_from(&hub, loopback(32), &session("fair-honest")).await;
    let flood = http_from(loopback(31));
    let url = hub.url("/api/chat/messages");
    let posts = (0..160).map(|i| {
        let body = json!({"sessionId": session(&format!("fair-burst-{i}")), "message": "hello"});
        flood.post(&url).json(&body).send()
    });
    for answer in futures_util::future::join_all(posts).await {
        assert_eq!(answer.expect("an answer").status(), 200);
    }
    // The burst's answers are being written (the rest wait their turn) before the visitor writes.
    let asked = || store.hooks.asked.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(DEADLINE, async {
        while asked() < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the burst's answers start");
    // The rest of the burst waits for turns; how many run at once is what did not wait.
    let waiting = loop {
        let waiting = hub.metric("natter_turns_waiting").await;
        if waiting + asked() as u64 >= 160 || waiting == 0 {
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(waiting > 0, "the burst's follow-ups wait for turns");
    let at_once = 160 - waiting as usize;
    honest.say("h1", "hello").await;
    honest.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;
    // Let the answers through one at a time, until the visitor's is written.
    let at = tokio::time::timeout(DEADLINE, async {
        loop {
            store.hooks.through.add_permits(1);
            tokio::time::sleep(Duration::from_millis(2)).await;
            let order = store.hooks.order.lock().expect("order");
            if let Some(at) = order.iter().position(|s| s.contains("fair-honest")) {
                return at;
            }
        }
    })
    .await
    .expect("the visitor's answer is written");
    // Two turns: one before the reply engine is asked, one to store its answer.
    assert!(
        at <= 2 * at_once + 2,
        "the visitor's answer was written after {at} of the burst's 160 ({at_once} turns at once)"
    );
    hub.stop().await.expect("stop");
}

// 9. Backend calls past the reply engine's bounds.

/// A store that counts history reads (`history` and `recent`), such as the conversation read for
/// the reply engine. Everything else is the memory store.
#[derive(Default)]
struct CountedReads(std::sync::atomic::AtomicUsize);

impl CountedReads {
    fn reads(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl StoreHooks for CountedReads {
    fn before_read(&self) -> BoxFuture<'_, ()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {})
    }
}

/// An OpenAI-compatible server that takes every call and never answers (a model that hangs).
async fn hanging_llm() -> SocketAddr {
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(std::future::pending::<String>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// 1,500 messages from fresh sessions against a busy LLM each made the hub read the
/// conversation for the model, and only then find every call slot taken; the fallback that
/// answers them needs none of it, so the reads were the flood's cost to everyone else. The
/// conversation is now read once a call slot is held: a shed reply reads nothing.
#[tokio::test]
async fn a_reply_past_the_reply_gate_reads_nothing_for_the_engine() {
    let llm = hanging_llm().await;
    let mut config = Config::for_tests();
    config.reply_backend = natter_hub::config::ReplyBackend::Llm;
    config.llm_url = Some(format!("http://{llm}/v1/"));
    config.llm_model = Some("test-model".into());
    config.reply_timeout = Duration::from_secs(120);
    config.reply_idle_timeout = Duration::from_secs(120);
    config.reply_concurrency = 1;
    config.reply_queue = 0;
    let store = Hooked::new(CountedReads::default());
    let hub = TestHub::with_store(config, store.clone()).await;
    let post = |from: u8, who: &str| {
        let body = json!({"sessionId": session(who), "message": "hello"});
        http_from(loopback(from)).post(hub.url("/api/chat/messages")).json(&body).send()
    };
    // The first message takes the only call slot; its conversation is read for the model.
    assert_eq!(post(60, "gate-first").await.expect("post").status(), 200);
    hub.wait_metric("natter_reply_calls", 1).await;
    let reads = store.hooks.reads();
    assert!(reads >= 1, "the call in flight read its conversation");
    // Ten more, each from an address of its own, find the slot taken: the fallback answers.
    for i in 0..10u8 {
        assert_eq!(post(61 + i, &format!("gate-shed-{i}")).await.expect("post").status(), 200);
    }
    hub.wait_metric("natter_reply_shed_total", 10).await;
    hub.wait_metric("natter_replies_total", 10).await;
    assert_eq!(store.hooks.reads(), reads, "a shed reply reads no conversation for the engine");
    hub.stop().await.expect("stop");
}

/// One address's messages from fresh sessions used to take every reply-engine call slot (its
/// quarter of calls and queue places together was more than all the calls), and a visitor from
/// another address waited for one to end. An address now calls in at most a quarter of the slots
/// at once: with four slots held by a model that never answers, the flood holds one and the
/// other visitor's call goes out at once.
#[tokio::test]
async fn one_address_holds_at_most_a_quarter_of_the_reply_calls() {
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            seen.lock().expect("asked").push(body);
            std::future::pending::<String>()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let llm = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut config = Config::for_tests();
    config.reply_backend = natter_hub::config::ReplyBackend::Llm;
    config.llm_url = Some(format!("http://{llm}/v1/"));
    config.llm_model = Some("test-model".into());
    config.reply_timeout = Duration::from_secs(120);
    config.reply_idle_timeout = Duration::from_secs(120);
    config.reply_concurrency = 4;
    config.reply_queue = 28;
    let hub = TestHub::with(config).await;
    let post = |from: u8, who: String, text: &str| {
        let body = json!({"sessionId": session(&who), "message": text});
        http_from(loopback(from)).post(hub.url("/api/chat/messages")).json(&body).send()
    };
    for i in 0..8 {
        assert_eq!(post(80, format!("flood-{i}"), "flood").await.expect("post").status(), 200);
    }
    hub.wait_metric("natter_reply_calls", 1).await;
    assert_eq!(post(81, "other".into(), "a real question").await.expect("post").status(), 200);
    let called = |text: &'static str| {
        let asked = asked.clone();
        move || asked.lock().expect("asked").iter().filter(|b| b.contains(text)).count()
    };
    let other = called("a real question");
    tokio::time::timeout(DEADLINE, async {
        while other() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the other visitor's call goes out while the flood's hang");
    assert_eq!(called("flood")(), 1, "the flood calls in one slot of four");
    assert_eq!(hub.metric("natter_reply_calls").await, 2);
    hub.stop().await.expect("stop");
}
