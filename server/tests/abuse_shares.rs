//! One address's share of what every client shares: the conversations the hub keeps in memory
//! (a conversation someone is in is never forgotten, so one address in rooms could hold every
//! place) and the CORS preflights the hub answers (they were answered before any budget saw
//! them). Against a real hub on real sockets; each test's clients bind their own loopback
//! addresses (127.0.0.0/8 is all local on Linux), so each address has budgets of its own.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{session, Tab, TestHub, DEADLINE};
use natter_hub::Config;
use natter_protocol::{close, ErrorCode, ServerMessage};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A WebSocket of `session` connected from `from`, nothing read yet.
async fn connect_from(hub: &TestHub, from: IpAddr, session: &str) -> Tab {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind a loopback address");
    let tcp = tokio::time::timeout(DEADLINE, socket.connect(hub.addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(hub.ws_url(session, ""), MaybeTlsStream::Plain(tcp))
        .await
        .expect("upgrade");
    Tab { ws }
}

/// A tab of a fresh session connected from `from`, its first `history` read.
async fn tab_from(hub: &TestHub, from: IpAddr, name: &str) -> Tab {
    let mut tab = connect_from(hub, from, &session(name)).await;
    tab.expect_history().await;
    tab
}

fn http_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).build().expect("client")
}

/// Sends a `join` of `room`; the room's `history`, or the `error` that refused it.
async fn try_join(tab: &mut Tab, room: &str) -> Result<(), natter_protocol::ErrorFrame> {
    tab.send(json!({"type": "join", "room": room, "name": "Sam"})).await;
    tab.until(|m| match m {
        ServerMessage::History(h) if h.room.as_deref() == Some(room) => Some(Ok(())),
        ServerMessage::Error(e) => Some(Err(e)),
        _ => None,
    })
    .await
}

/// Three WebSockets from one address joined 247 rooms of a hub holding at most 250
/// conversations, and every new visitor after them was refused `unavailable`: a room someone
/// is in is never forgotten. Now one address keeps at most a quarter of `--max-conversations`
/// in memory (its tabs' own conversations, their rooms, what its long-polls wait on); the join
/// past it is refused `rate_limited` with a wait, the address's tabs carry on, a leave gives a
/// place back, and visitors and members from other addresses get in.
#[tokio::test]
async fn one_address_keeps_at_most_a_quarter_of_the_conversations_in_memory() {
    let mut config = Config::for_tests();
    config.max_conversations = 40;
    config.max_conversations_per_address = None; // the default: a quarter, 10
    config.poll_timeout = Duration::from_secs(60);
    let hub = TestHub::with(config).await;
    let squatter = loopback(50);
    let mut tabs = Vec::new();
    for i in 0..3 {
        tabs.push(tab_from(&hub, squatter, &format!("squat-{i}")).await);
    }
    // Each tab tries to join 20 rooms: 7 fit beside the 3 tabs' own conversations.
    let mut joined = 0;
    let mut refusals = Vec::new();
    for (k, tab) in tabs.iter_mut().enumerate() {
        for i in 0..20 {
            match try_join(tab, &format!("squat-{k}-{i}")).await {
                Ok(()) => joined += 1,
                Err(e) => refusals.push(e),
            }
        }
    }
    assert_eq!(joined, 7, "a quarter of 40, less the three tabs' own conversations");
    assert_eq!(refusals.len(), 60 - 7);
    let first = &refusals[0];
    assert_eq!(first.code, ErrorCode::RateLimited, "{first:?}");
    assert!(first.retry_after_ms.is_some_and(|ms| ms > 0), "{first:?}");
    assert!(first.message.contains("--max-conversations-per-address"), "{}", first.message);
    assert!(hub.metric("natter_limited_total{limit=\"conversations_per_address\"}").await >= 53);
    // The squatter's tabs carry on in the rooms they have.
    for tab in &mut tabs {
        tab.ping_works().await;
    }
    // A new visitor and a new room member from other addresses get in.
    let mut visitor = tab_from(&hub, loopback(3), "honest").await;
    visitor.ping_works().await;
    let mut member = tab_from(&hub, loopback(4), "member").await;
    try_join(&mut member, "team-standup").await.expect("an honest join");
    // A fourth tab of the squatter's is refused as it subscribes, and told to come back later.
    let mut fourth = connect_from(&hub, squatter, &session("squat-4")).await;
    fourth.expect_error(ErrorCode::RateLimited).await;
    assert_eq!(fourth.expect_close().await, close::RATE_LIMITED);
    // A leave gives its place back.
    tabs[0].send(json!({"type": "leave", "room": "squat-0-0"})).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while try_join(&mut tabs[1], "squat-again").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the left room's place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The HTTP long-poll holds the same rule: a poll of rooms (existing or not) keeps each in
    // memory while it waits, and counts against its address.
    let squatter_http = http_from(squatter);
    let r = squatter_http
        .get(hub.url("/api/chat/poll?rooms=ghost-1,ghost-2&after=0,0"))
        .header(natter_protocol::SESSION_HEADER, session("squat-poll"))
        .send()
        .await
        .expect("poll");
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let r = squatter_http.get(hub.url(&format!("/api/chat/poll?session={}", session("p")))).send();
    assert_eq!(r.await.expect("poll").status(), 429, "a poll of its own conversation too");
    // Another address polls ten rooms that do not exist: it holds its quarter while it waits…
    let poller = loopback(60);
    let rooms: Vec<String> = (0..10).map(|i| format!("ghost-{i}")).collect();
    let url = hub.url(&format!("/api/chat/poll?rooms={}&after={}", rooms.join(","), ["0"; 10].join(",")));
    let waiting = tokio::spawn(http_from(poller).get(url).send());
    hub.wait_metric("natter_polls_waiting", 1).await;
    // …so a tab of it is refused, while others still get in.
    let mut late = connect_from(&hub, poller, &session("poller-tab")).await;
    late.expect_error(ErrorCode::RateLimited).await;
    let mut visitor = tab_from(&hub, loopback(5), "honest-too").await;
    visitor.ping_works().await;
    waiting.abort();
}

/// One address sent 9,930 CORS preflights a second, every one answered `200`: the CORS layer
/// answers them before any budget sees the request. Now preflights draw on a bucket of their
/// own, as large as the address's request budget: past it `429` with `Retry-After`, counted;
/// the address's requests are not charged for them, another address's preflights are
/// answered, and an answered preflight tells the browser to keep it (`Access-Control-Max-Age`).
#[tokio::test]
async fn cors_preflights_draw_on_a_budget_of_their_own() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 5;
    config.address_rate_per_sec = 0.01;
    config.allowed_origins = vec!["https://site.example".into()];
    let hub = TestHub::with(config).await;
    let preflight = |client: &reqwest::Client| {
        client
            .request(reqwest::Method::OPTIONS, hub.url("/api/chat/poll?after=7"))
            .header("Origin", "https://site.example")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", natter_protocol::SESSION_HEADER)
            .send()
    };
    let flooder = http_from(loopback(71));
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = preflight(&flooder).await.expect("preflight");
        let status = r.status().as_u16();
        if status == 200 {
            let max_age = r.headers().get("access-control-max-age").and_then(|v| v.to_str().ok());
            assert_eq!(max_age, Some("600"), "{:?}", r.headers());
        } else {
            assert!(r.headers().get("retry-after").is_some(), "{:?}", r.headers());
        }
        statuses.push(status);
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 7], "{statuses:?}");
    assert_eq!(hub.metric("natter_limited_total{limit=\"preflights\"}").await, 7);
    // The address's requests were not charged for its preflights.
    for _ in 0..5 {
        let r = flooder
            .get(hub.url(&format!("/api/chat/poll?session={}", session("flooder"))))
            .header("Origin", "https://site.example")
            .send()
            .await
            .expect("poll");
        assert_eq!(r.status(), 200);
    }
    // Another address is answered.
    let r = preflight(&http_from(loopback(72))).await.expect("preflight");
    assert_eq!(r.status(), 200);
}
