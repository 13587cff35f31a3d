//! The support conversation over the WebSocket: history, send → ack → fan-out, tabs of one
//! session, isolation between sessions, de-duplication, resume, reply rules, ping.

mod common;

use common::{session, Tab, TestHub};
use natter_protocol::{ConversationMessage, ServerMessage};
use serde_json::json;

/// Reads frames until the `ack` for `id`, a `user` frame for `id` and a `bot` reply to `id`
/// have all arrived (in any order); returns `(ack seq, user, bot)`.
async fn exchange(tab: &mut Tab, id: &str) -> (u64, ConversationMessage, ConversationMessage) {
    let (mut ack, mut user, mut bot) = (None, None, None);
    while ack.is_none() || user.is_none() || bot.is_none() {
        match tab.recv().await {
            ServerMessage::Ack(a) if a.id == id => ack = Some(a.seq),
            ServerMessage::User(m) if m.id == id => user = Some(m),
            ServerMessage::Bot(m) if m.reply_to.as_deref() == Some(id) => bot = Some(m),
            ServerMessage::Typing(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
    (ack.unwrap_or_default(), user.unwrap_or_default(), bot.unwrap_or_default())
}

#[tokio::test]
async fn original_format_client_gets_history_ack_echo_and_greeting() {
    let hub = TestHub::start().await;
    let sid = session("seed");
    let (mut tab, history) = hub.tab(&sid).await;
    assert!(history.messages.is_empty() && history.complete && history.last_seq == 0, "{history:?}");

    // The original widget's format verbatim (no id: the hub makes one).
    tab.send(json!({
        "type": "user",
        "message": "hello",
        "timestamp": "2025-08-23T10:00:00Z",
        "sessionId": sid,
        "context": {"page": "/pricing"}
    }))
    .await;
    let mut typing_on = false;
    let (mut ack, mut user, mut bot) = (None, None, None);
    while ack.is_none() || user.is_none() || bot.is_none() {
        match tab.recv().await {
            ServerMessage::Ack(a) => ack = Some(a),
            ServerMessage::User(m) => user = Some(m),
            ServerMessage::Bot(m) => {
                assert!(typing_on, "typing must start before the reply");
                bot = Some(m)
            }
            ServerMessage::Typing(t) => typing_on |= t.active,
            other => panic!("unexpected {other:?}"),
        }
    }
    let (ack, user, bot) = (ack.unwrap(), user.unwrap(), bot.unwrap());
    assert_eq!(ack.seq, 1);
    assert!(!ack.duplicate);
    assert_eq!(user.id, ack.id);
    assert_eq!((user.seq, user.message.as_str(), user.session_id.as_str()), (1, "hello", sid.as_str()));
    assert_eq!(user.context, Some(json!({"page": "/pricing"}).into()));
    assert_eq!(bot.seq, 2);
    assert_eq!(bot.category.as_deref(), Some("greeting"));
    assert_eq!(bot.reply_to.as_deref(), Some(ack.id.as_str()));
    assert!(bot.message.starts_with("Hello"), "{}", bot.message);
    // Typing stops after the reply.
    let typing = tab
        .until(|m| match m {
            ServerMessage::Typing(t) => Some(t),
            _ => None,
        })
        .await;
    assert!(!typing.active);
    tab.ping_works().await;
}

#[tokio::test]
async fn each_category_gets_its_answer_with_the_page() {
    let hub = TestHub::start().await;
    let (mut tab, _) = hub.tab(&session("rules")).await;
    for (i, (text, category)) in [
        ("hi there", "greeting"),
        ("the checkout is broken", "bug"),
        ("I see an error", "bug"),
        ("the dropdown does nothing", "ui"),
        ("pages are slow", "performance"),
        ("I love the color", "style"),
        ("what are your prices?", "fallback"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("m{i}");
        tab.say(&id, text).await;
        let (_, user, bot) = exchange(&mut tab, &id).await;
        assert_eq!(bot.category.as_deref(), Some(category), "{text}");
        assert_eq!(bot.seq, user.seq + 1);
        // The tab connected with page=/test; the reply engine saw it.
        if category != "greeting" {
            assert!(bot.message.contains("/test"), "{category}: {}", bot.message);
        }
    }
}

#[tokio::test]
async fn tabs_of_a_session_share_it_and_other_sessions_see_nothing() {
    let hub = TestHub::start().await;
    let sid = session("tabs");
    let (mut a, _) = hub.tab(&sid).await;
    let (mut b, _) = hub.tab(&sid).await;
    let (mut other, _) = hub.tab(&session("other")).await;

    a.say("a1", "hello from a").await;
    let (seq, _, _) = exchange(&mut a, "a1").await;
    // Tab b receives the user message and the reply, but no ack.
    let m = b.recv_data().await;
    assert!(matches!(&m, ServerMessage::User(u) if u.id == "a1" && u.seq == seq), "{m:?}");
    let m = b.recv_data().await;
    assert!(matches!(&m, ServerMessage::Bot(r) if r.reply_to.as_deref() == Some("a1")), "{m:?}");

    // The other session got nothing at all: its next frame is the answer to its own ping.
    other.ping_works().await;
    b.ping_works().await;
}

#[tokio::test]
async fn resend_with_stored_id_is_acked_again_never_delivered_twice() {
    let hub = TestHub::start().await;
    let sid = session("dedup");
    let (mut a, _) = hub.tab(&sid).await;
    let (mut b, _) = hub.tab(&sid).await;
    a.say("same-id", "the page is broken").await;
    let (seq, _, _) = exchange(&mut a, "same-id").await;
    a.say("same-id", "the page is broken").await;
    let ack = a
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            ServerMessage::Typing(_) => None,
            other => panic!("a duplicate must only be acked, got {other:?}"),
        })
        .await;
    assert_eq!((ack.id.as_str(), ack.seq, ack.duplicate), ("same-id", seq, true));
    // b saw the message and its reply once; then only its own pong.
    assert!(matches!(b.recv_data().await, ServerMessage::User(_)));
    assert!(matches!(b.recv_data().await, ServerMessage::Bot(_)));
    b.send(json!({"type": "ping"})).await;
    assert!(matches!(b.recv_data().await, ServerMessage::Pong(_)), "no second delivery, no second reply");
    assert_eq!(hub.metric("natter_duplicates_total").await, 1);
}

#[tokio::test]
async fn resume_after_seq_replays_what_was_missed() {
    let hub = TestHub::start().await;
    let sid = session("resume");
    let (mut a, _) = hub.tab(&sid).await;
    a.say("r1", "hello").await;
    let (s1, _, bot1) = exchange(&mut a, "r1").await;
    drop(a);
    // While disconnected, another tab talks.
    let (mut b, _) = hub.tab(&sid).await;
    b.say("r2", "something is slow").await;
    let (s2, _, bot2) = exchange(&mut b, "r2").await;

    let mut again = Tab::connect(&hub.ws_url(&sid, &format!("&after={}", bot1.seq))).await;
    let h = again.expect_history().await;
    assert!(h.complete && h.gap.is_none(), "{h:?}");
    let seqs: Vec<u64> = h.messages.iter().filter_map(ServerMessage::seq).collect();
    assert_eq!(seqs, [s2, bot2.seq]);
    assert_eq!(h.last_seq, bot2.seq);
    assert!(s1 < s2);

    // A new tab without `after` gets the recent history: all four messages.
    let (_, h) = hub.tab(&sid).await;
    assert_eq!(h.messages.iter().filter_map(ServerMessage::seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    again.ping_works().await;
}
