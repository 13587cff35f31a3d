//! Send queues bounded in bytes, against a real hub on real sockets: members of rooms who never
//! read (a small receive buffer, nothing read) cannot pin more of the hub's memory than their
//! address's share, however many rooms they sit in, while honest members of the same rooms
//! from another address keep receiving everything.
//!
//! Every test client would come from 127.0.0.1, so the sockets here are bound to other loopback
//! addresses (127.0.0.0/8 is all local on Linux).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{session, Tab, TestHub, DEADLINE};
use futures_util::SinkExt;
use natter_hub::Config;
use natter_protocol::{close, ServerMessage};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Where a test client comes from: a loopback address of its own, or 127.0.0.1 (the trusted
/// proxy) naming the client in `X-Forwarded-For`.
#[derive(Clone)]
enum From {
    Socket(IpAddr),
    Forwarded(String),
}

/// A tab of `session` connected from `from` with a receive buffer of `recv_buffer` bytes (0:
/// the system's), its first `history` read.
async fn tab_from(hub: &TestHub, from: From, session: &str, recv_buffer: u32) -> Tab {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let socket = TcpSocket::new_v4().expect("socket");
    if recv_buffer > 0 {
        socket.set_recv_buffer_size(recv_buffer).expect("SO_RCVBUF");
    }
    let mut request = hub.ws_url(session, "").into_client_request().expect("request");
    let ip = match from {
        From::Socket(ip) => ip,
        From::Forwarded(client) => {
            request.headers_mut().insert("x-forwarded-for", client.parse().expect("header"));
            loopback(1)
        }
    };
    socket.bind(SocketAddr::new(ip, 0)).expect("bind a loopback address");
    let tcp = tokio::time::timeout(DEADLINE, socket.connect(hub.addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (ws, _) =
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await.expect("upgrade");
    let mut tab = Tab { ws };
    tab.expect_history().await;
    tab
}

async fn join(tab: &mut Tab, room: &str, name: &str) {
    tab.send(json!({"type": "join", "room": room, "name": name})).await;
    tab.until(|m| matches!(m, ServerMessage::History(h) if h.room.as_deref() == Some(room)).then_some(()))
        .await;
}

const ROOMS: usize = 8;
const ROUNDS: usize = 40;
const FRAME_BYTES: usize = 30_000;
const QUEUE_BYTES: usize = 256 * 1024;
const ADDRESS_BYTES: usize = 1024 * 1024;

/// Eight rooms, each with a deaf member from 127.0.0.2 (4 KB receive buffer, never reads), an
/// honest member from 127.0.0.3 (reads everything) and a sender from 127.0.0.4 relaying 30 KB
/// `cursor_position` frames, one a room each round, well within every frame budget. The deaf
/// members' queues fill; together they reach their address's share (1 MiB here) long before
/// each its own 256 KiB, and each frame that does not fit closes its connection with 4001. The
/// bytes queued to any one address never pass the share, and every honest member gets every
/// frame. Without a byte bound the deaf would hold 256 frames each (7.5 MB) and stay.
#[tokio::test]
async fn deaf_room_members_are_closed_at_their_addresses_share_of_queued_bytes() {
    deaf_members_are_closed_and_honest_ones_receive(|_| From::Socket(loopback(2))).await;
}

/// The same from eight /64s of one IPv6 /48 (behind a trusted proxy): each /64 alone stays far
/// below its share and each queue below its own bound, but the /48 together gets one address's
/// share, no more.
#[tokio::test]
async fn deaf_room_members_of_one_slash_48_share_one_addresses_share() {
    deaf_members_are_closed_and_honest_ones_receive(|i| From::Forwarded(format!("2001:db8:5:{i:x}::1")))
        .await;
}

async fn deaf_members_are_closed_and_honest_ones_receive(deaf_from: impl Fn(usize) -> From) {
    let mut config = Config::for_tests();
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a network")];
    config.send_queue_bytes = QUEUE_BYTES;
    config.address_send_queue_bytes = ADDRESS_BYTES;
    config.socket_send_buffer = 4096;
    // Budgets are not what this is about: the sender stays well within them.
    config.frame_budget = 1 << 30;
    let hub = TestHub::with(config).await;

    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("room-{i}")).collect();
    let mut deaf = Vec::new();
    let mut honest = Vec::new();
    let mut sender = tab_from(&hub, From::Socket(loopback(4)), &session("sender"), 0).await;
    for (i, room) in rooms.iter().enumerate() {
        let mut d = tab_from(&hub, deaf_from(i), &session(&format!("deaf-{i}")), 4096).await;
        join(&mut d, room, &format!("D{i}")).await;
        deaf.push(d);
        let mut h = tab_from(&hub, From::Socket(loopback(3)), &session(&format!("honest-{i}")), 0).await;
        join(&mut h, room, &format!("H{i}")).await;
        honest.push(h);
        join(&mut sender, room, "S").await;
    }

    // Each honest member counts the cursor frames it gets, until the room's closing chat.
    let received: Arc<Vec<AtomicUsize>> = Arc::new((0..ROOMS).map(|_| AtomicUsize::new(0)).collect());
    let readers: Vec<_> = honest
        .into_iter()
        .enumerate()
        .map(|(i, mut tab)| {
            let received = received.clone();
            tokio::spawn(async move {
                loop {
                    match tab.recv_data().await {
                        ServerMessage::CursorPosition(_) => {
                            received[i].fetch_add(1, Ordering::AcqRel);
                        }
                        ServerMessage::Chat(c) if c.id == "after" => return tab,
                        _ => {}
                    }
                }
            })
        })
        .collect();

    let blob = "x".repeat(FRAME_BYTES);
    let mut most = 0;
    for round in 1..=ROUNDS {
        for room in &rooms {
            let frame = json!({"type": "cursor_position", "room": room, "data": {"blob": blob}});
            sender.ws.send(Message::text(frame.to_string())).await.expect("send");
        }
        // The honest members read each round before the next: what they hold queued stays a
        // frame or so, whatever the machine's speed.
        let start = tokio::time::Instant::now();
        while received.iter().any(|n| n.load(Ordering::Acquire) < round) {
            assert!(start.elapsed() < DEADLINE, "honest members stopped receiving in round {round}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        most = most.max(hub.metric("natter_address_send_queue_bytes_max").await);
        assert!(most <= ADDRESS_BYTES as u64, "an address holds {most} bytes queued, past its share");
    }
    assert!(most > 0, "the deaf members held bytes queued");

    // Every deaf member was closed as a slow consumer, past its address's share.
    assert!(hub.metric("natter_limited_total{limit=\"address_send_queue_bytes\"}").await >= 1);
    assert_eq!(hub.metric("natter_slow_consumers_dropped_total").await, ROOMS as u64);
    for d in &mut deaf {
        // Reading at last, it finds what was in the kernel's buffers, then the close.
        assert_eq!(d.expect_close().await, close::SLOW_CONSUMER);
    }

    // The honest members got every frame and are still in their rooms.
    for room in &rooms {
        sender.send(json!({"type": "chat", "room": room, "id": "after", "message": "still here"})).await;
    }
    for (i, reader) in readers.into_iter().enumerate() {
        let mut tab =
            tokio::time::timeout(DEADLINE, reader).await.expect("the chat in time").expect("reader");
        assert_eq!(received[i].load(Ordering::Acquire), ROUNDS, "room {i}");
        tab.ping_works().await;
    }
    hub.wait_metric("natter_send_queue_bytes", 0).await;
    hub.stop().await.expect("stop");
}
