//! Connection lifecycle: a slow consumer is closed with 4001 while the others carry on; a
//! silent socket is closed with 4002 after the idle timeout; shutdown closes every socket with
//! 1001 and `run` returns.

mod common;

use std::time::Duration;

use common::{session, Tab, TestHub};
use futures_util::StreamExt;
use natter_hub::Config;
use natter_protocol::{close, ServerMessage};
use serde_json::json;

#[tokio::test]
async fn slow_consumer_is_dropped_with_4001_and_the_room_carries_on() {
    let mut config = Config::for_tests();
    config.send_queue = 4;
    // The sender floods the room on purpose, far past what --frame-budget lets one connection
    // send (the budget's own test is in abuse.rs): here only the slow consumer is under test.
    config.frame_budget = 0;
    let hub = TestHub::with(config).await;
    let (slow_sid, fast_sid) = (session("slow"), session("fast"));
    let (mut slow, _) = hub.tab(&slow_sid).await;
    let (mut fast, _) = hub.tab(&fast_sid).await;
    let (mut sender, _) = hub.tab(&session("sender")).await;
    for (tab, name) in [(&mut slow, "slow"), (&mut fast, "fast"), (&mut sender, "sender")] {
        tab.send(json!({"type": "join", "room": "flood", "name": name})).await;
        tab.until(|m| matches!(m, ServerMessage::History(_)).then_some(())).await;
    }
    let blob = "x".repeat(32 * 1024);
    // `slow` never reads. Keep sending until the hub has given up on it (kernel buffers first
    // absorb a few megabytes, then its queue of 4 fills).
    let mut sent = 0u64;
    while hub.metric("natter_slow_consumers_dropped_total").await == 0 {
        // One at a time, each read by the fast member before the next, so only a member that
        // does not read at all can fall behind.
        sender.send(json!({"type": "cursor_position", "room": "flood", "data": {"blob": blob}})).await;
        sent += 1;
        fast.until(|m| matches!(m, ServerMessage::CursorPosition(_)).then_some(())).await;
        assert!(sent < 20_000, "the slow consumer was never dropped");
    }
    // The slow tab, reading at last, finds the close code telling it to reconnect and resume.
    assert_eq!(slow.expect_close().await, close::SLOW_CONSUMER);
    // Reading on completes the close handshake (the client's close reply goes out), as a
    // browser does at once.
    assert!(slow.ws.next().await.is_none_or(|r| r.is_err()));
    // The others carry on: fast is told slow left, and both still talk.
    let left = fast
        .until(|m| match m {
            ServerMessage::UserLeft(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(left.user.id, common::member_id(&slow_sid));
    sender.send(json!({"type": "chat", "room": "flood", "message": "still here"})).await;
    let chat = fast
        .until(|m| match m {
            ServerMessage::Chat(c) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(chat.message, "still here");
    fast.ping_works().await;
    sender.ping_works().await;
    assert_eq!(hub.metric("natter_slow_consumers_dropped_total").await, 1);
}

#[tokio::test]
async fn silent_socket_is_closed_after_the_idle_timeout() {
    let mut config = Config::for_tests();
    // Small enough for a quick test, large enough that a live tab on a loaded machine always
    // answers a ping in time.
    config.ping_interval = Duration::from_millis(200);
    config.idle_timeout = Duration::from_secs(3);
    let hub = TestHub::with(config).await;
    let (mut silent, _) = hub.tab(&session("silent")).await;
    // A live tab keeps reading (tungstenite answers the hub's pings while it reads).
    let (live, _) = hub.tab(&session("live")).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let live_task = tokio::spawn(async move {
        let mut live = live;
        let mut stop_rx = stop_rx;
        loop {
            tokio::select! {
                _ = &mut stop_rx => return live,
                m = live.ws.next() => assert!(matches!(m, Some(Ok(_))), "live tab closed: {m:?}"),
            }
        }
    });
    hub.wait_metric("natter_stale_connections_closed_total", 1).await;
    assert_eq!(silent.expect_close().await, close::STALE);
    let _ = stop_tx.send(());
    let mut live: Tab = live_task.await.expect("live task");
    live.ping_works().await;
    assert_eq!(hub.metric("natter_stale_connections_closed_total").await, 1);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let mut config = Config::for_tests();
    config.poll_timeout = Duration::from_secs(600);
    let hub = TestHub::with(config).await;
    let sid = session("bye");
    let (mut a, _) = hub.tab(&sid).await;
    let (mut b, _) = hub.tab(&session("bye2")).await;
    let poll = {
        let url = hub.url(&format!("/api/chat/poll?session={sid}&after=0"));
        tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) })
    };
    hub.wait_metric("natter_polls_waiting", 1).await;
    let stopping = tokio::spawn(hub.stop());
    assert_eq!(a.expect_close().await, close::GOING_AWAY);
    assert_eq!(b.expect_close().await, close::GOING_AWAY);
    drop((a, b));
    assert!(stopping.await.expect("stop task").is_ok(), "run returns Ok");
    assert_eq!(poll.await.expect("poll task").expect("poll answered"), 200);
}
