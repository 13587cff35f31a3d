//! Budgets per client address for IPv6 clients: a holder of a /48 has 65,536 /64s, so every
//! budget is also kept for the /56 and /48 that enclose a client's /64, a multiple of the /64's.
//! Against a real hub on real sockets; the clients' IPv6 addresses are named by a trusted proxy
//! (`X-Forwarded-For`), as a hub behind a reverse proxy sees them.

mod common;

use common::TestHub;
use natter_hub::Config;
use natter_protocol::{ErrorCode, ServerMessage};
use serde_json::json;

/// Posts a message from a fresh session as the client `forwarded`, through the proxy (the test
/// client at 127.0.0.1); the status and, for a refusal, its error message.
async fn post(hub: &TestHub, client: &reqwest::Client, i: u32, forwarded: &str) -> (u16, Option<String>) {
    let r = client
        .post(hub.url("/api/chat/messages"))
        .header("X-Forwarded-For", forwarded)
        .json(&json!({"sessionId": format!("net-{i}"), "message": "hi"}))
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    if status == 200 {
        return (status, None);
    }
    assert!(r.headers().get("retry-after").is_some(), "Retry-After on a {status}");
    match r.json::<ServerMessage>().await.expect("json") {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            (status, Some(e.message))
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// One attacker spreading its requests over the /64s of its /48 (each in a /56 of its own, so
/// no /56 runs out first) gets sixteen /64s' budgets in all, not 65,536; the refusal names the
/// /48; a client in another /48 is served, and one in another /56 of a known /48 is not held up
/// by what a neighbour /64 spent beyond its own budget.
#[tokio::test]
async fn a_slash_48_spread_over_its_slash_64s_gets_sixteen_budgets_not_65536() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 3;
    config.address_rate_per_sec = 0.01;
    config.rate_burst = 0;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let (mut ok, mut refusal) = (0, None);
    for i in 0..100u32 {
        let from = format!("2001:db8:aa:{:x}::{:x}", i * 256 + i % 7, i + 1);
        match post(&hub, &client, i, &from).await {
            (200, _) => ok += 1,
            (429, Some(message)) => {
                refusal.get_or_insert(message);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 3 * 16, "sixteen /64s' bursts for the whole /48");
    let refusal = refusal.expect("refused");
    assert!(refusal.contains("your network (2001:db8:aa::/48)"), "{refusal}");
    assert!(refusal.contains("burst of 48"), "{refusal}");
    // Another /48 is unaffected.
    assert_eq!(post(&hub, &client, 1000, "2001:db8:bb:1::1").await.0, 200);
    // One /64 of a third /48 spends its own budget and more: only its own three are charged to
    // its /56, so the rest of its /56 is served.
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..10).map(|i| post(&hub, &client, 2000 + i, "2001:db8:cc:1::1")))
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    for i in 2..11u32 {
        assert_eq!(post(&hub, &client, 3000 + i, &format!("2001:db8:cc:{i:x}::1")).await.0, 200);
    }
    assert!(hub.metric("natter_limited_total{limit=\"address_rate\"}").await >= 100 - 48 + 7);
    hub.stop().await.expect("stop");
}

/// IPv4 addresses are never grouped: a /24 of different addresses has a budget each.
#[tokio::test]
async fn ipv4_addresses_are_not_grouped_into_networks() {
    let mut config = Config::for_tests();
    config.address_rate_burst = 1;
    config.address_rate_per_sec = 0.01;
    config.rate_burst = 0;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    for i in 1..=40u32 {
        assert_eq!(post(&hub, &client, i, &format!("198.51.100.{i}")).await.0, 200, "address {i}");
    }
    assert_eq!(post(&hub, &client, 41, "198.51.100.1").await.0, 429, "each its own budget");
    hub.stop().await.expect("stop");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket as session `name` for the client `forwarded`, through the proxy.
async fn open(
    hub: &TestHub,
    name: &str,
    forwarded: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = hub.ws_url(&common::session(name), "").into_client_request().expect("request");
    request.headers_mut().insert("x-forwarded-for", forwarded.parse().expect("header"));
    tokio::time::timeout(common::DEADLINE, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer in time")
        .map(|(ws, _)| ws)
}

/// Opens one WebSocket for each client of `forwarded`, in order; the ones held, and the body of
/// the first refusal (every refusal must be a `429`).
async fn open_each(
    hub: &TestHub,
    tag: &str,
    forwarded: impl Iterator<Item = String>,
) -> (Vec<Ws>, Option<String>) {
    let mut held = Vec::new();
    let mut refused = None;
    for (i, from) in forwarded.enumerate() {
        match open(hub, &format!("{tag}-{i}"), &from).await {
            Ok(ws) => held.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                assert_eq!(response.status().as_u16(), 429, "{body}");
                refused.get_or_insert(body);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    (held, refused)
}

/// WebSockets held open are counted per /48 too: with one connection allowed per address, a /48
/// holds sixteen however many /64s it opens them from; the upgrade past that is refused `429`
/// naming the network, and a client in another /48 connects.
#[tokio::test]
async fn websockets_held_by_a_slash_48_are_counted_together() {
    let mut config = Config::for_tests();
    config.max_connections_per_address = Some(1);
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let (held, refused) =
        open_each(&hub, "ws-net", (0..24u32).map(|i| format!("2001:db8:dd:{:x}::1", i * 256))).await;
    assert_eq!(held.len(), 16, "sixteen connections for the /48");
    let body = refused.expect("refused");
    assert!(body.contains("your network (2001:db8:dd::/48) has 16 connections"), "{body}");
    assert!(open(&hub, "ws-net-other", "2001:db8:ee::1").await.is_ok(), "another /48 connects");
    drop(held);
}

/// Connections are a share of the hub's: four /64s of one home line's /56 used to hold four
/// addresses' quarters, every connection the hub had, and everyone else got `503`. A network
/// holds at most the quarter one address may; past it the upgrade is refused `429` naming the
/// network, and an IPv4 client still connects.
#[tokio::test]
async fn several_slash_64s_of_one_slash_56_hold_no_more_connections_than_one_address() {
    let mut config = Config::for_tests();
    // 40 sockets: a quarter, 10, an address by default, and (the fix) 10 for a /56 too.
    config.max_connections = Some(40);
    config.max_connections_per_address = None;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    // Round the four /64s of one /56 in turn.
    let (held, refused) =
        open_each(&hub, "ws-56", (0..40u32).map(|i| format!("2001:db8:5600:{:x}::1", i % 4))).await;
    assert_eq!(held.len(), 10, "one address's quarter for the whole /56");
    let body = refused.expect("refused");
    assert!(body.contains("your network (2001:db8:5600::/56) has 10 connections"), "{body}");
    assert!(open(&hub, "ws-56-v4", "198.51.100.9").await.is_ok(), "an IPv4 client connects");
    assert!(open(&hub, "ws-56-other", "2001:db8:5601::1").await.is_ok(), "another /48 connects");
    assert!(hub.metric("natter_limited_total{limit=\"connections_per_address\"}").await >= 30);
    drop(held);
}

/// Long-polls are a share of `--max-polls`: with 100 polls and 10 an address, ten /64s of one
/// /48 used to hold all 100. A network holds at most a quarter of them (here 25, the /48's 160
/// capped); its polls past that are refused `429` naming the network, and an IPv4 client's poll
/// is held.
#[tokio::test]
async fn the_slash_64s_of_one_slash_48_hold_at_most_a_quarter_of_the_long_polls() {
    let mut config = Config::for_tests();
    config.max_polls = 100;
    config.max_polls_per_address = 10;
    config.poll_timeout = std::time::Duration::from_secs(120);
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let hold = |i: u32, from: String| {
        let request = client
            .get(
                hub.url(&format!("/api/chat/poll?session={}&after=0", common::session(&format!("poll-{i}")))),
            )
            .header("X-Forwarded-For", from);
        tokio::spawn(async move {
            let r = request.send().await.expect("poll");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
    };
    // Ten /64s in ten /56s of one /48, ten polls each: all 100 of the hub's, before.
    let polls: Vec<_> = (0..100u32).map(|i| hold(i, format!("2001:db8:ab:{:x}00::1", i % 10))).collect();
    let start = tokio::time::Instant::now();
    while polls.iter().filter(|p| p.is_finished()).count() < 75 {
        assert!(start.elapsed() < common::DEADLINE, "never 75 of the /48's polls refused");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    hub.wait_metric("natter_polls_waiting", 25).await;
    assert_eq!(hub.metric("natter_polls_waiting").await, 25, "a quarter of the hub's polls for the /48");
    let mut refused = None;
    let mut held = Vec::new();
    for poll in polls {
        if poll.is_finished() {
            let (status, body) = poll.await.expect("task");
            assert_eq!(status, 429, "{body}");
            refused.get_or_insert(body);
        } else {
            held.push(poll);
        }
    }
    let body = refused.expect("refused");
    assert!(body.contains("your network (2001:db8:ab::/48) holds 25 long-polls"), "{body}");
    let honest = hold(1000, "198.51.100.30".into());
    hub.wait_metric("natter_polls_waiting", 26).await;
    assert!(!honest.is_finished(), "an IPv4 client's poll is held, not refused");
    for poll in held.into_iter().chain([honest]) {
        poll.abort();
    }
}
