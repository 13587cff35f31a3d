//! Native tests of the whole state machine, both halves together: transport choice, outbox,
//! de-duplication, unread, chime. `link/tests.rs` and `log/tests.rs` test each half alone.

use super::link::{Mode, SocketPhase, Transport, WS_FAILURES_BEFORE_FALLBACK};
use super::log::Delivery;
use super::*;
use natter_protocol::{Ack, ConversationMessage, ErrorCode, ErrorFrame, Role, TypingNotice};

fn model() -> Model {
    Model::new(Init { seed: 42, online: true, ..Init::default() })
}

fn started() -> (Model, u32) {
    let mut m = model();
    let fx = update(&mut m, Event::Start);
    (m, socket_of(&fx).expect("start opens a socket"))
}

fn connected() -> (Model, u32) {
    let (mut m, s) = started();
    live(&mut m, s);
    (m, s)
}

/// Opens socket `s` and delivers the hub's first frame (an empty history); returns the effects.
fn live(m: &mut Model, s: u32) -> Vec<Effect> {
    let mut fx = update(m, Event::SocketOpened { socket: s });
    let last = m.log.last_seq.unwrap_or(0);
    fx.extend(update(m, frame(s, ServerMessage::History(history(vec![], last)))));
    fx
}

/// A hub frame arriving on socket `s`.
fn frame(s: u32, message: ServerMessage) -> Event {
    Event::Frame { socket: Some(s), message }
}

fn socket_of(fx: &[Effect]) -> Option<u32> {
    fx.iter().find_map(|e| match e {
        Effect::OpenSocket { socket, .. } => Some(*socket),
        _ => None,
    })
}

fn out(id: &str, text: &str) -> Outgoing {
    Outgoing { id: id.into(), text: text.into(), time: "2026-01-01T00:00:00Z".into(), context: String::new() }
}

fn conv(id: &str, seq: u64, text: &str) -> ConversationMessage {
    ConversationMessage {
        id: id.into(),
        seq,
        message: text.into(),
        timestamp: "2026-01-01T00:00:01Z".into(),
        session_id: "s".into(),
        ..Default::default()
    }
}

fn history(messages: Vec<ServerMessage>, last_seq: u64) -> History {
    History { room: None, messages, complete: true, gap: None, last_seq }
}

fn sent_on_socket(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendSocket(o) => Some(o.id.clone()),
            _ => None,
        })
        .collect()
}

fn has_timer(fx: &[Effect], t: Timer) -> Option<u32> {
    fx.iter().find_map(|e| match e {
        Effect::StartTimer { timer, ms } if *timer == t => Some(*ms),
        _ => None,
    })
}

fn ids(m: &Model) -> Vec<&str> {
    m.log.messages.iter().map(|x| x.id.as_str()).collect()
}

/// Fails `n` socket opens in a row; returns the effects of the last failure.
fn fail_opens(m: &mut Model, mut socket: u32, n: u32) -> Vec<Effect> {
    let mut last = Vec::new();
    for i in 0..n {
        last = update(m, Event::SocketClosed { socket, code: 1006 });
        if i + 1 < n {
            let fx = update(m, Event::TimerFired(Timer::Reconnect));
            socket = socket_of(&fx).expect("reconnect opens a socket");
        }
    }
    last
}

#[test]
fn connects_and_reports_status() {
    let (mut m, s) = started();
    assert_eq!(m.link.status(), Status::Connecting);
    assert_eq!(m.link.transport(), Transport::None);
    let fx = update(&mut m, Event::SocketOpened { socket: s });
    assert_eq!(m.link.status(), Status::Connecting, "not connected until the hub speaks");
    assert_eq!(fx, [Effect::Authenticate { after: None }], "the socket first says who the widget is");
    let fx = update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    assert!(fx.contains(&Effect::Notify(Notice::Status(Status::Connected))));
    assert!(fx.contains(&Effect::StopTimer(Timer::OpenTimeout)));
    assert_eq!(m.link.transport(), Transport::WebSocket);
}

#[test]
fn drop_reconnects_with_jittered_backoff_and_resumes_after_last_seq() {
    let (mut m, s) = connected();
    update(&mut m, frame(s, ServerMessage::Bot(conv("b1", 5, "hi"))));
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::GOING_AWAY });
    assert_eq!(m.link.status(), Status::Reconnecting);
    let delay = has_timer(&fx, Timer::Reconnect).expect("reconnect scheduled");
    assert!(delay < 500, "first delay is drawn from [0, base): {delay}");
    let fx = update(&mut m, Event::TimerFired(Timer::Reconnect));
    assert!(fx.iter().any(|e| matches!(e, Effect::OpenSocket { after: Some(5), .. })), "{fx:?}");
}

#[test]
fn a_cut_for_sending_too_much_waits_a_real_while_longer_each_time() {
    let (mut m, mut s) = connected();
    let mut floors = Vec::new();
    for _ in 0..4 {
        let fx =
            update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::RATE_LIMITED });
        assert_eq!(m.link.status(), Status::Reconnecting);
        floors.push(has_timer(&fx, Timer::Reconnect).expect("reconnect scheduled"));
        s = socket_of(&update(&mut m, Event::TimerFired(Timer::Reconnect))).expect("reconnects");
        update(&mut m, Event::SocketOpened { socket: s });
        update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    }
    // 5–10 s, then 10–20 s, 20–40 s, 40–80 s: the hub's budgets refill meanwhile, even though
    // each new connection was welcomed.
    for (i, delay) in floors.iter().enumerate() {
        let floor = 5_000 << i;
        assert!((floor..2 * floor).contains(delay), "cut {i}: {delay} ms");
    }
    // A connection that ends otherwise starts the next cut's delay from the first again.
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    s = socket_of(&update(&mut m, Event::TimerFired(Timer::Reconnect))).expect("reconnects");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::RATE_LIMITED });
    assert!((5_000..10_000).contains(&has_timer(&fx, Timer::Reconnect).unwrap_or(0)));
}

#[test]
fn final_close_codes_give_up() {
    for code in [natter_protocol::close::POLICY, natter_protocol::close::NORMAL] {
        let (mut m, s) = connected();
        let fx = update(&mut m, Event::SocketClosed { socket: s, code });
        assert_eq!(m.link.status(), Status::Offline);
        assert_eq!(has_timer(&fx, Timer::Reconnect), None);
        let fx = update(&mut m, Event::Wake);
        assert_eq!(socket_of(&fx), None, "no reconnect after a final close");
    }
}

#[test]
fn repeated_open_failures_fall_back_to_http_then_probe_back() {
    let (mut m, s) = started();
    let fx = fail_opens(&mut m, s, 2);
    assert!(has_timer(&fx, Timer::Reconnect).is_some());
    assert!(!fx.iter().any(|e| matches!(e, Effect::Poll { .. })));
    let fx = update(&mut m, Event::TimerFired(Timer::Reconnect));
    let s3 = socket_of(&fx).expect("third attempt");
    let fx = update(&mut m, Event::SocketClosed { socket: s3, code: 1006 });
    let poll = fx
        .iter()
        .find_map(|e| match e {
            Effect::Poll { poll, after: None } => Some(*poll),
            _ => None,
        })
        .expect("falls back to long-polling");
    assert!(has_timer(&fx, Timer::Probe).is_some(), "keeps probing the WebSocket");
    // Not "HTTP fallback" until HTTP has actually answered.
    assert_eq!(m.link.status(), Status::Connecting);

    // The HTTP poll answers: status says so, and (HTTP just came back) the WebSocket is
    // probed at once.
    let fx = update(&mut m, Event::PollDone { poll, history: Some(history(vec![], 0)) });
    assert_eq!(m.link.status(), Status::HttpFallback);
    assert_eq!(m.link.transport(), Transport::Http);
    assert!(fx.contains(&Effect::Notify(Notice::Status(Status::HttpFallback))));
    assert!(fx.iter().any(|e| matches!(e, Effect::Poll { after: Some(0), .. })), "polls again");
    let probe = socket_of(&fx).expect("probe at once");
    // The probe fails: still on HTTP, next probe scheduled.
    let fx = update(&mut m, Event::SocketClosed { socket: probe, code: 1006 });
    assert_eq!(m.link.status(), Status::HttpFallback);
    assert!(has_timer(&fx, Timer::Probe).is_some());
    // The next probe works: back on the WebSocket, long-poll aborted.
    let fx = update(&mut m, Event::TimerFired(Timer::Probe));
    let probe = socket_of(&fx).expect("probe");
    let fx = live(&mut m, probe);
    assert!(fx.contains(&Effect::AbortPoll));
    assert_eq!(m.link.status(), Status::Connected);
    assert_eq!(m.link.transport(), Transport::WebSocket);
}

#[test]
fn a_socket_that_cannot_be_created_falls_back_at_once() {
    let (mut m, s) = started();
    let fx = update(&mut m, Event::SocketUnavailable { socket: s });
    assert!(fx.iter().any(|e| matches!(e, Effect::Poll { .. })), "{fx:?}");
}

#[test]
fn a_socket_that_never_opens_times_out() {
    let (mut m, s) = started();
    let fx = update(&mut m, Event::TimerFired(Timer::OpenTimeout));
    assert!(fx.contains(&Effect::CloseSocket));
    assert!(has_timer(&fx, Timer::Reconnect).is_some());
    // The late close of the abandoned socket is ignored.
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn messages_typed_offline_go_out_in_order_once_connected() {
    let (mut m, s) = started();
    for (id, t) in [("a", "one"), ("b", "two")] {
        let fx = update(&mut m, Event::Send(out(id, t)));
        assert!(sent_on_socket(&fx).is_empty());
        assert!(fx.contains(&Effect::SaveOutbox));
    }
    assert!(m.log.messages.iter().all(|x| x.delivery == Delivery::Pending));
    let fx = live(&mut m, s);
    assert_eq!(sent_on_socket(&fx), ["a", "b"]);
    update(&mut m, frame(s, ServerMessage::Ack(Ack { id: "a".into(), seq: 1, ..Default::default() })));
    assert_eq!(m.log.messages[0].delivery, Delivery::Sent);
    assert_eq!(m.log.messages[0].seq, Some(1));
    assert_eq!(m.log.outbox.len(), 1);
    // Blank input is not a message.
    let fx = update(&mut m, Event::Send(out("c", "  \n ")));
    assert!(fx.is_empty());
}

#[test]
fn unacknowledged_messages_are_resent_with_the_same_id_after_a_drop() {
    let (mut m, s) = connected();
    let fx = update(&mut m, Event::Send(out("a", "one")));
    assert_eq!(sent_on_socket(&fx), ["a"]);
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    let fx = update(&mut m, Event::TimerFired(Timer::Reconnect));
    let s2 = socket_of(&fx).expect("reconnect");
    let fx = live(&mut m, s2);
    assert_eq!(sent_on_socket(&fx), ["a"]);
}

#[test]
fn nothing_is_shown_twice() {
    let (mut m, s) = connected();
    update(&mut m, Event::Send(out("a", "hello")));
    update(&mut m, frame(s, ServerMessage::Ack(Ack { id: "a".into(), seq: 1, ..Default::default() })));
    // The hub echoes the user message back to this tab too, and replays it in a history.
    update(&mut m, frame(s, ServerMessage::User(conv("a", 1, "hello"))));
    update(&mut m, frame(s, ServerMessage::Bot(conv("r1", 2, "hi!"))));
    update(&mut m, frame(s, ServerMessage::Bot(conv("r1", 2, "hi!"))));
    let h = history(
        vec![ServerMessage::User(conv("a", 1, "hello")), ServerMessage::Bot(conv("r1", 2, "hi!"))],
        2,
    );
    update(&mut m, frame(s, ServerMessage::History(h)));
    assert_eq!(ids(&m), ["a", "r1"]);
}

#[test]
fn a_reload_restores_the_outbox_and_history_confirms_what_was_stored() {
    let entries = vec![
        OutboxEntry {
            id: "a".into(),
            text: "one".into(),
            time: "t".into(),
            context: String::new(),
            failed: false,
            refusals: 0,
        },
        OutboxEntry {
            id: "b".into(),
            text: "two".into(),
            time: "t".into(),
            context: String::new(),
            failed: false,
            refusals: 0,
        },
    ];
    let mut m = Model::new(Init { seed: 1, online: true, outbox: entries, ..Init::default() });
    assert_eq!(ids(&m), ["a", "b"]);
    let fx = update(&mut m, Event::Start);
    let s = socket_of(&fx).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    // "a" had been stored before the reload; the history (no `after`) says so, and only "b"
    // is sent again.
    let h = history(
        vec![ServerMessage::Bot(conv("g", 1, "welcome")), ServerMessage::User(conv("a", 2, "one"))],
        2,
    );
    let fx = update(&mut m, frame(s, ServerMessage::History(h)));
    assert_eq!(sent_on_socket(&fx), ["b"]);
    assert_eq!(ids(&m), ["g", "a", "b"]);
    assert!(!m.log.outbox.contains("a"));
    assert!(m.log.outbox.contains("b"));
    assert_eq!(m.log.unread, 0, "history at load is not unread");
}

#[test]
fn history_is_placed_by_seq_before_pending_messages() {
    let (mut m, s) = started();
    update(&mut m, Event::Send(out("p", "pending")));
    live(&mut m, s);
    let h = history(vec![ServerMessage::Bot(conv("x", 3, "c")), ServerMessage::User(conv("y", 1, "a"))], 3);
    update(&mut m, frame(s, ServerMessage::History(h)));
    assert_eq!(ids(&m), ["y", "x", "p"]);
}

#[test]
fn unread_and_chime_follow_panel_tab_and_mute() {
    let (mut m, s) = connected();
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("1", 1, "x"))));
    assert!(fx.contains(&Effect::Chime));
    assert!(fx.contains(&Effect::Notify(Notice::Unread(1))));
    // Another tab's user message: shown, but neither unread nor chimed.
    let fx = update(&mut m, frame(s, ServerMessage::User(conv("2", 2, "x"))));
    assert!(!fx.contains(&Effect::Chime));
    assert_eq!(m.log.unread, 1);
    update(&mut m, Event::ToggleMute);
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("3", 3, "x"))));
    assert!(!fx.contains(&Effect::Chime), "muted");
    assert_eq!(m.log.unread, 2);
    let fx = update(&mut m, Event::Open);
    assert!(fx.contains(&Effect::Notify(Notice::Unread(0))));
    assert!(fx.contains(&Effect::FocusInput));
    update(&mut m, Event::ToggleMute);
    // Open and visible: no chime, no unread.
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("4", 4, "x"))));
    assert!(!fx.contains(&Effect::Chime));
    assert_eq!(m.log.unread, 0);
    // Open but the tab is hidden: chime.
    update(&mut m, Event::PageHidden { hidden: true });
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("5", 5, "x"))));
    assert!(fx.contains(&Effect::Chime));
    update(&mut m, Event::PageHidden { hidden: false });
    assert_eq!(m.log.unread, 0);
}

#[test]
fn resumed_history_counts_as_new() {
    let (mut m, s) = connected();
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    let fx = update(&mut m, Event::TimerFired(Timer::Reconnect));
    let s2 = socket_of(&fx).expect("socket");
    live(&mut m, s2);
    let fx = update(
        &mut m,
        frame(s2, ServerMessage::History(history(vec![ServerMessage::Bot(conv("r", 1, "missed"))], 1))),
    );
    assert!(fx.contains(&Effect::Chime));
    assert_eq!(m.log.unread, 1);
}

#[test]
fn typing_indicator_follows_the_bot() {
    let (mut m, s) = connected();
    let typing =
        |active| ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active });
    update(&mut m, frame(s, typing(true)));
    assert!(m.log.typing);
    update(&mut m, frame(s, ServerMessage::Bot(conv("r", 1, "answer"))));
    assert!(!m.log.typing, "a reply ends typing");
    update(&mut m, frame(s, typing(true)));
    update(&mut m, Event::TimerFired(Timer::Typing));
    assert!(!m.log.typing, "a lost 'stopped' does not leave the dots forever");
}

#[test]
fn refused_messages_fail_and_can_be_retried() {
    let (mut m, s) = connected();
    update(&mut m, Event::Send(out("a", "x")));
    let refuse = |code| {
        ServerMessage::Error(ErrorFrame {
            code,
            message: "no".into(),
            id: Some("a".into()),
            retry_after_ms: None,
            room: None,
        })
    };
    let fx = update(&mut m, frame(s, refuse(ErrorCode::TooLarge)));
    assert!(fx.contains(&Effect::SaveOutbox));
    assert_eq!(m.log.messages[0].delivery, Delivery::Failed);
    assert_eq!(m.log.outbox.first_sendable(), None);
    let fx = update(&mut m, Event::Retry { id: "a".into() });
    assert_eq!(sent_on_socket(&fx), ["a"]);
    assert_eq!(m.log.messages[0].delivery, Delivery::Pending);
    // Retryable refusals are re-sent a few times before the message shows as failed.
    for _ in 0..2 {
        let fx = update(&mut m, frame(s, refuse(ErrorCode::RateLimited)));
        assert!(has_timer(&fx, Timer::Resend).is_some());
        assert_eq!(m.log.messages[0].delivery, Delivery::Pending);
        let fx = update(&mut m, Event::TimerFired(Timer::Resend));
        assert_eq!(sent_on_socket(&fx), ["a"]);
    }
    update(&mut m, frame(s, refuse(ErrorCode::RateLimited)));
    assert_eq!(m.log.messages[0].delivery, Delivery::Failed);
}

fn into_http(m: &mut Model) -> u32 {
    let fx = update(m, Event::Start);
    let s = socket_of(&fx).expect("socket");
    let fx = update(m, Event::SocketUnavailable { socket: s });
    let poll = fx
        .iter()
        .find_map(|e| match e {
            Effect::Poll { poll, .. } => Some(*poll),
            _ => None,
        })
        .expect("poll");
    let fx = update(m, Event::PollDone { poll, history: Some(history(vec![], 0)) });
    // The immediate probe fails too.
    if let Some(p) = socket_of(&fx) {
        update(m, Event::SocketUnavailable { socket: p });
    }
    poll
}

#[test]
fn http_sends_one_at_a_time_in_order() {
    let mut m = model();
    into_http(&mut m);
    let fx = update(&mut m, Event::Send(out("a", "one")));
    assert!(fx.contains(&Effect::Post(out("a", "one"))));
    let fx = update(&mut m, Event::Send(out("b", "two")));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Post(_))), "waits for a's answer");
    let ack = |id: &str, seq| Some(ServerMessage::Ack(Ack { id: id.into(), seq, ..Default::default() }));
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: ack("a", 1) });
    assert!(fx.contains(&Effect::Post(out("b", "two"))));
    // A network failure keeps it pending and re-sends later.
    let fx = update(&mut m, Event::Posted { id: "b".into(), reply: None });
    assert!(has_timer(&fx, Timer::Resend).is_some());
    assert_eq!(m.log.messages[1].delivery, Delivery::Pending);
    let fx = update(&mut m, Event::TimerFired(Timer::Resend));
    assert!(fx.contains(&Effect::Post(out("b", "two"))));
    update(&mut m, Event::Posted { id: "b".into(), reply: ack("b", 2) });
    assert_eq!(m.log.outbox.len(), 0);
}

#[test]
fn failed_polls_back_off_and_status_leaves_http_fallback() {
    let mut m = model();
    into_http(&mut m);
    // The poll that is running now fails (hub down).
    let running = m.link.running_poll().expect("a poll is running");
    let fx = update(&mut m, Event::PollDone { poll: running, history: None });
    assert!(has_timer(&fx, Timer::Poll).is_some());
    assert_eq!(m.link.status(), Status::Reconnecting);
    assert_eq!(m.link.transport(), Transport::None);
}

#[test]
fn offline_closes_and_online_retries_at_once() {
    let (mut m, _s) = connected();
    let fx = update(&mut m, Event::Offline);
    assert!(fx.contains(&Effect::CloseSocket));
    assert!(fx.contains(&Effect::Notify(Notice::Status(Status::Offline))));
    let fx = update(&mut m, Event::Send(out("a", "typed offline")));
    assert!(sent_on_socket(&fx).is_empty());
    let fx = update(&mut m, Event::Online);
    let s2 = socket_of(&fx).expect("reconnects at once");
    assert_eq!(m.link.status(), Status::Reconnecting);
    let fx = live(&mut m, s2);
    assert_eq!(sent_on_socket(&fx), ["a"]);
}

#[test]
fn visibility_and_pageshow_retry_at_once() {
    let (mut m, s) = connected();
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    let fx = update(&mut m, Event::PageHidden { hidden: false });
    assert!(socket_of(&fx).is_some());
    let (mut m, s) = connected();
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    assert!(socket_of(&update(&mut m, Event::Wake)).is_some());
    // Connected already: nothing to do.
    let (mut m, _) = connected();
    assert!(socket_of(&update(&mut m, Event::Wake)).is_none());
}

#[test]
fn frames_from_a_stale_socket_are_ignored() {
    let (mut m, s) = connected();
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    update(&mut m, frame(s, ServerMessage::Bot(conv("late", 1, "x"))));
    assert!(m.log.messages.is_empty());
}

#[test]
fn panel_toggle_and_focus_effects() {
    let mut m = model();
    let fx = update(&mut m, Event::Toggle);
    assert!(m.open && fx.contains(&Effect::Notify(Notice::Open)));
    let fx = update(&mut m, Event::Toggle);
    assert!(!m.open && fx.contains(&Effect::RestoreFocus) && fx.contains(&Effect::Notify(Notice::Close)));
    assert!(update(&mut m, Event::Close).is_empty(), "closing a closed panel does nothing");
}

#[test]
fn system_notices_and_incomplete_history() {
    let (mut m, s) = connected();
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    let notice =
        natter_protocol::SystemNotice { message: "maintenance".into(), timestamp: "t".into(), room: None };
    update(&mut m, frame(s, ServerMessage::System(notice)));
    assert_eq!(m.log.messages[0].role, Role::System);
    let h = History {
        room: None,
        messages: vec![],
        complete: false,
        gap: Some(natter_protocol::Gap { from: 1, to: 3 }),
        last_seq: 9,
    };
    update(&mut m, frame(s, ServerMessage::History(h)));
    assert_eq!(m.log.messages.len(), 2);
    assert_eq!(m.log.last_seq, Some(9));
}

#[test]
fn http_refusals_never_spin() {
    let mut m = model();
    into_http(&mut m);
    update(&mut m, Event::Send(out("a", "one")));
    update(&mut m, Event::Send(out("b", "two")));
    let refusal = |code| {
        Some(ServerMessage::Error(ErrorFrame {
            code,
            message: "x".into(),
            id: None,
            retry_after_ms: Some(1500),
            room: None,
        }))
    };
    // Retryable, without an id: waits for the timer instead of re-posting at once.
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: refusal(ErrorCode::Unavailable) });
    assert!(!fx.iter().any(|e| matches!(e, Effect::Post(_))), "{fx:?}");
    assert_eq!(has_timer(&fx, Timer::Resend), Some(1500));
    // Final: "a" fails and "b" goes next.
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: refusal(ErrorCode::InvalidMessage) });
    assert_eq!(m.log.messages[0].delivery, Delivery::Failed);
    assert!(fx.contains(&Effect::Post(out("b", "two"))));
}

#[test]
fn a_socket_dropped_before_the_hub_speaks_is_a_failure() {
    // A proxy that accepts the upgrade and closes at once (Playwright's routeWebSocket, some
    // corporate proxies) must lead to the HTTP fallback like a socket that never opens.
    let (mut m, mut s) = started();
    for _ in 0..WS_FAILURES_BEFORE_FALLBACK {
        update(&mut m, Event::SocketOpened { socket: s });
        let fx = update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::INTERNAL });
        if let Some(next) = socket_of(&update(&mut m, Event::TimerFired(Timer::Reconnect))) {
            s = next;
        } else {
            assert!(fx.iter().any(|e| matches!(e, Effect::Poll { .. })), "falls back: {fx:?}");
        }
    }
    assert_eq!(m.link.mode(), Mode::Http);
    let poll = m.link.running_poll().expect("polling");
    update(&mut m, Event::PollDone { poll, history: Some(history(vec![], 0)) });
    assert_eq!(m.link.status(), Status::HttpFallback);
    // A probe that opens does not take over until the hub speaks on it.
    let fx = update(&mut m, Event::TimerFired(Timer::Probe));
    let probe = socket_of(&fx).or(match m.link.socket() {
        SocketPhase::Opening(p) => Some(p),
        _ => None,
    });
    let probe = probe.expect("a probe is under way");
    update(&mut m, Event::SocketOpened { socket: probe });
    assert_eq!(m.link.status(), Status::HttpFallback);
    assert!(m.link.running_poll().is_some(), "still polling");
    update(&mut m, Event::SocketClosed { socket: probe, code: natter_protocol::close::INTERNAL });
    assert_eq!(m.link.status(), Status::HttpFallback);
    assert_eq!(m.link.transport(), Transport::Http);
}

#[test]
fn acknowledged_ids_are_remembered_for_the_shared_storage() {
    let (mut m, s) = connected();
    update(&mut m, Event::Send(out("mine", "x")));
    update(&mut m, frame(s, ServerMessage::Ack(Ack { id: "mine".into(), seq: 1, ..Default::default() })));
    // Another tab's message, stored by the hub: remembered too, so this tab's next save drops
    // it from storage if that tab went away before its own acknowledgement.
    update(&mut m, frame(s, ServerMessage::User(conv("theirs", 2, "y"))));
    assert_eq!(m.log.acked, ["mine", "theirs"]);
}

#[test]
fn reading_in_an_open_visible_panel_is_saved_and_shared() {
    let mut m = Model::new(Init { seed: 42, online: true, session: Some("s".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    live(&mut m, s);
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("1", 1, "x"))));
    assert!(fx.contains(&Effect::Notify(Notice::Unread(1))));
    assert!(!fx.iter().any(|e| matches!(e, Effect::SaveRead(1))));
    let fx = update(&mut m, Event::Open);
    assert!(fx.contains(&Effect::SaveRead(1)));
    assert!(fx.contains(&Effect::Notify(Notice::Unread(0))));
    // Seen as it arrives while open and visible.
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("2", 2, "y"))));
    assert!(fx.contains(&Effect::SaveRead(2)));
    // Hidden: not read; read when visible again with the panel open.
    update(&mut m, Event::PageHidden { hidden: true });
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("3", 3, "z"))));
    assert!(fx.contains(&Effect::Notify(Notice::Unread(1))));
    let fx = update(&mut m, Event::PageHidden { hidden: false });
    assert!(fx.contains(&Effect::SaveRead(3)));
    // Closed, a new answer; another tab's open panel reads it.
    update(&mut m, Event::Close);
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("4", 4, "w"))));
    assert!(fx.contains(&Effect::Notify(Notice::Unread(1))));
    let conversation = m.read_conversation().expect("the session names the conversation");
    let fx = update(&mut m, Event::ReadElsewhere { conversation, seq: 4 });
    assert_eq!(fx, [Effect::Notify(Notice::Unread(0))]);
}

/// The page's delivery events: (id, state, seq, retried), in order.
fn deliveries(fx: &[Effect]) -> Vec<(String, Delivery, Option<u64>, bool)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notify(Notice::Delivery { message, retried }) => {
                Some((message.id.clone(), message.delivery, message.seq, *retried))
            }
            _ => None,
        })
        .collect()
}

fn d(id: &str, state: Delivery, seq: Option<u64>, retried: bool) -> (String, Delivery, Option<u64>, bool) {
    (id.to_string(), state, seq, retried)
}

#[test]
fn every_delivery_state_of_a_visitor_message_is_told_once() {
    let (mut m, s) = connected();
    // Typed: pending.
    let fx = update(&mut m, Event::Send(out("a", "hello")));
    assert_eq!(deliveries(&fx), [d("a", Delivery::Pending, None, false)]);
    // Acknowledged: sent, with its seq; the echo that follows changes nothing and says nothing.
    let ack = ServerMessage::Ack(Ack { id: "a".into(), seq: 7, ..Default::default() });
    assert_eq!(deliveries(&update(&mut m, frame(s, ack))), [d("a", Delivery::Sent, Some(7), false)]);
    let echo = ServerMessage::User(conv("a", 7, "hello"));
    assert_eq!(deliveries(&update(&mut m, frame(s, echo))), []);
    // Refused: failed; retried: pending again, marked as a retry; then sent by the echo alone.
    update(&mut m, Event::Send(out("b", "too long")));
    let refusal = ErrorFrame {
        code: ErrorCode::TooLarge,
        message: "no".into(),
        id: Some("b".into()),
        retry_after_ms: None,
        room: None,
    };
    let fx = update(&mut m, frame(s, ServerMessage::Error(refusal)));
    assert_eq!(deliveries(&fx), [d("b", Delivery::Failed, None, false)]);
    let fx = update(&mut m, Event::Retry { id: "b".into() });
    assert_eq!(deliveries(&fx), [d("b", Delivery::Pending, None, true)]);
    let fx = update(&mut m, frame(s, ServerMessage::User(conv("b", 8, "too long"))));
    assert_eq!(deliveries(&fx), [d("b", Delivery::Sent, Some(8), false)]);
    // Bot replies and other tabs' messages are not this tab's deliveries.
    let fx = update(&mut m, frame(s, ServerMessage::Bot(conv("r", 9, "hi"))));
    assert_eq!(deliveries(&fx), []);
}

#[test]
fn delivery_over_http_is_told_too() {
    let mut m = model();
    into_http(&mut m);
    let fx = update(&mut m, Event::Send(out("a", "one")));
    assert_eq!(deliveries(&fx), [d("a", Delivery::Pending, None, false)]);
    let ack = Some(ServerMessage::Ack(Ack { id: "a".into(), seq: 3, ..Default::default() }));
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: ack });
    assert_eq!(deliveries(&fx), [d("a", Delivery::Sent, Some(3), false)]);
}

fn forbidden() -> ErrorFrame {
    ErrorFrame {
        code: ErrorCode::ForbiddenOrigin,
        message: "origin \"http://127.0.0.1:8766\" is not allowed to use this hub (see --allowed-origin)"
            .into(),
        id: None,
        retry_after_ms: None,
        room: None,
    }
}

fn refusals(fx: &[Effect]) -> usize {
    fx.iter().filter(|e| matches!(e, Effect::Notify(Notice::Refused(_)))).count()
}

/// What a refused page goes through: the upgrade fails (a browser cannot read why), the
/// fallback's poll reads the 403. Returns the effects of that poll's answer.
fn refused_page(m: &mut Model) -> Vec<Effect> {
    let (fresh, s) = started();
    *m = fresh;
    fail_opens(m, s, WS_FAILURES_BEFORE_FALLBACK);
    let poll = m.link.running_poll().expect("the fallback polls");
    update(m, Event::PollRefused { poll, error: forbidden() })
}

#[test]
fn a_refused_origin_says_so_once_and_stops_trying() {
    let mut m = model();
    let fx = refused_page(&mut m);
    assert_eq!(m.link.status(), Status::Unavailable);
    assert_eq!(m.link.status().label(), "Chat is not available on this site");
    assert!(fx.contains(&Effect::Notify(Notice::Status(Status::Unavailable))));
    assert_eq!(refusals(&fx), 1);
    assert_eq!(m.link.transport(), Transport::None);
    // Nothing keeps going: no socket, poll, probe or resend is started, now or later.
    let busy = |fx: &[Effect]| {
        fx.iter().any(|e| {
            matches!(
                e,
                Effect::OpenSocket { .. } | Effect::Poll { .. } | Effect::Post(_) | Effect::StartTimer { .. }
            )
        })
    };
    assert!(!busy(&fx), "{fx:?}");
    for t in [Timer::Probe, Timer::Reconnect, Timer::Poll, Timer::Resend, Timer::OpenTimeout] {
        assert!(fx.contains(&Effect::StopTimer(t)) || t == Timer::OpenTimeout, "{t:?} not stopped: {fx:?}");
        let later = update(&mut m, Event::TimerFired(t));
        assert!(!busy(&later), "{t:?} fired: {later:?}");
    }
    for e in [Event::Online, Event::Wake, Event::PageHidden { hidden: false }] {
        let later = update(&mut m, e);
        assert!(!busy(&later) && refusals(&later) == 0, "{later:?}");
    }
    assert_eq!(m.link.status(), Status::Unavailable);
}

#[test]
fn a_refused_page_fails_its_messages_instead_of_sending_for_ever() {
    let (mut m, s) = started();
    update(&mut m, Event::Send(out("early", "typed while connecting")));
    fail_opens(&mut m, s, WS_FAILURES_BEFORE_FALLBACK);
    let poll = m.link.running_poll().expect("poll");
    let fx = update(&mut m, Event::PollRefused { poll, error: forbidden() });
    assert_eq!(deliveries(&fx), [d("early", Delivery::Failed, None, false)]);
    // Typed after the refusal: failed at once, and nothing is posted.
    let fx = update(&mut m, Event::Send(out("late", "anyone?")));
    assert_eq!(
        deliveries(&fx),
        [d("late", Delivery::Pending, None, false), d("late", Delivery::Failed, None, false)]
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Post(_) | Effect::SendSocket(_))));
    // Retrying starts one fresh attempt (the site may be allowed by now), from the WebSocket.
    let fx = update(&mut m, Event::Retry { id: "late".into() });
    assert_eq!(deliveries(&fx), [d("late", Delivery::Pending, None, true)]);
    let s = socket_of(&fx).expect("a retry after a refusal tries again");
    assert_eq!(m.link.status(), Status::Connecting);
    // Allowed now: it goes out on the socket.
    let fx = live(&mut m, s);
    assert_eq!(sent_on_socket(&fx), ["late"]);
}

#[test]
fn a_post_refused_for_its_origin_stops_the_link_too() {
    let mut m = model();
    into_http(&mut m);
    update(&mut m, Event::Send(out("a", "one")));
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: Some(ServerMessage::Error(forbidden())) });
    assert_eq!(refusals(&fx), 1);
    assert_eq!(m.link.status(), Status::Unavailable);
    assert_eq!(deliveries(&fx), [d("a", Delivery::Failed, None, false)]);
}

#[test]
fn other_poll_refusals_are_retried_like_failures() {
    let mut m = model();
    into_http(&mut m);
    let poll = m.link.running_poll().expect("poll");
    let busy = ErrorFrame {
        code: ErrorCode::Unavailable,
        message: "busy".into(),
        id: None,
        retry_after_ms: None,
        room: None,
    };
    let fx = update(&mut m, Event::PollRefused { poll, error: busy });
    assert!(has_timer(&fx, Timer::Poll).is_some());
    assert_eq!(refusals(&fx), 0);
    assert_ne!(m.link.status(), Status::Unavailable);
}

#[test]
fn the_refusal_advice_names_the_origin_the_hub_and_the_flag() {
    let text = refusal_advice("http://127.0.0.1:8766", "http://127.0.0.1:8765");
    assert!(
        text.contains("http://127.0.0.1:8766") && text.contains("hub at http://127.0.0.1:8765"),
        "{text}"
    );
    assert!(text.contains("--allowed-origin http://127.0.0.1:8766"), "{text}");
}

#[test]
fn a_page_opened_from_a_file_is_not_told_a_flag_value_the_hub_refuses() {
    // Chromium's `location.origin` for a file is "file://", Firefox's "null"; a sandboxed frame's
    // is "null". The browser sends `Origin: null` for all of them, and the hub refuses both
    // `--allowed-origin null` and `--allowed-origin file://` at start.
    for origin in ["file://", "null"] {
        let text = refusal_advice(origin, "http://127.0.0.1:8765");
        assert!(!text.contains(&format!("--allowed-origin {origin}")), "{text}");
        assert!(text.contains("hub at http://127.0.0.1:8765"), "{text}");
        assert!(text.contains("Serve it from a web server"), "{text}");
    }
    // An extension's origin is a real one the hub accepts.
    let text = refusal_advice("chrome-extension://abcdef", "http://127.0.0.1:8765");
    assert!(text.contains("--allowed-origin chrome-extension://abcdef"), "{text}");
}

// Identity: the issued session, the token, their refusals, login and logout.

fn welcome(session: Option<&str>, user: Option<&str>) -> ServerMessage {
    ServerMessage::Welcome(natter_protocol::Welcome {
        session: session.map(str::to_string),
        member: "u_1".into(),
        user: user.map(|id| natter_protocol::UserProfile { id: id.into(), ..Default::default() }),
        expires_at: user.map(|_| 1),
        budgets: None,
    })
}

fn identity_error(code: ErrorCode) -> ServerMessage {
    ServerMessage::Error(ErrorFrame {
        code,
        message: "why".into(),
        id: None,
        retry_after_ms: None,
        room: None,
    })
}

#[test]
fn the_welcome_makes_the_socket_live_and_its_session_is_kept() {
    let (mut m, s) = started();
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, Event::Send(out("a", "typed before the welcome")));
    let fx = update(&mut m, frame(s, welcome(Some("issued.tag"), None)));
    assert!(fx.contains(&Effect::SaveSession));
    assert_eq!(m.identity.session.as_deref(), Some("issued.tag"));
    assert_eq!(m.link.status(), Status::Connected);
    assert!(fx.iter().any(|e| matches!(e, Effect::SendSocket(o) if o.id == "a")), "the outbox goes out");
}

#[test]
fn a_refused_session_is_forgotten_and_nothing_typed_is_lost() {
    let mut m = Model::new(Init { seed: 1, online: true, session: Some("stale".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, Event::Send(out("a", "hello")));
    // An error before the welcome does not make the socket live: the outbox is not sent into
    // a connection the hub has not accepted.
    let fx = update(&mut m, frame(s, identity_error(ErrorCode::BadSession)));
    assert!(!fx.iter().any(|e| matches!(e, Effect::SendSocket(_))), "{fx:?}");
    assert!(fx.contains(&Effect::SaveSession) && fx.contains(&Effect::Warn("why".into())));
    assert_eq!(m.identity.session, None);
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::BAD_SESSION });
    assert!(has_timer(&fx, Timer::Reconnect).is_some(), "connects again, without the session");
    assert_eq!(m.log.outbox.entries().len(), 1);
    assert_eq!(m.log.messages[0].delivery, Delivery::Pending);
}

#[test]
fn an_expired_token_is_renewed_through_the_page_with_the_outbox_intact() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("42"))));
    update(&mut m, Event::Send(out("a", "sent while signed in")));
    update(&mut m, frame(s, ServerMessage::User(conv("a", 1, "sent while signed in"))));
    // The hub says the token expired and closes with 4401.
    let fx = update(&mut m, frame(s, identity_error(ErrorCode::Unauthorized)));
    assert!(fx.contains(&Effect::RenewToken { reason: "why".into() }), "{fx:?}");
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::UNAUTHORIZED });
    assert!(!fx.contains(&Effect::RenewToken { reason: "why".into() }), "asked once");
    assert_eq!(m.link.status(), Status::SignInNeeded);
    // Typed while waiting: kept, pending.
    update(&mut m, Event::Send(out("b", "typed while the token was renewed")));
    // Timers do not reconnect with the refused token.
    assert_eq!(socket_of(&update(&mut m, Event::TimerFired(Timer::Reconnect))), None);
    assert_eq!(socket_of(&update(&mut m, Event::Wake)), None);
    // The page gives a fresh token: the widget connects again with it, resuming.
    let fx = update(&mut m, Event::Identify { token: "fresh".into(), sub: Some("42".into()) });
    let s2 = socket_of(&fx).expect("reconnects at once");
    assert!(fx.iter().any(|e| matches!(e, Effect::OpenSocket { after: Some(1), .. })));
    assert_eq!(m.identity.token.as_deref(), Some("fresh"));
    update(&mut m, Event::SocketOpened { socket: s2 });
    let fx = update(&mut m, frame(s2, welcome(None, Some("42"))));
    assert!(fx.iter().any(|e| matches!(e, Effect::SendSocket(o) if o.id == "b")), "{fx:?}");
    assert_eq!(m.log.messages.len(), 2, "the same user's conversation is kept on screen");
}

#[test]
fn logging_in_and_out_switches_conversations() {
    let (mut m, s) = started();
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(Some("anon.tag"), None)));
    update(&mut m, frame(s, ServerMessage::Bot(conv("b1", 1, "hi visitor"))));
    // Login: the user's conversation replaces the anonymous one on screen.
    let s2 = socket_of(&update(&mut m, Event::Identify { token: "t".into(), sub: Some("42".into()) }))
        .expect("reconnect");
    update(&mut m, Event::SocketOpened { socket: s2 });
    update(&mut m, frame(s2, welcome(None, Some("42"))));
    assert!(m.log.messages.is_empty() && m.log.last_seq.is_none(), "{:?}", m.log.messages);
    update(
        &mut m,
        frame(s2, ServerMessage::History(history(vec![ServerMessage::Bot(conv("u1", 1, "hi Ada"))], 1))),
    );
    update(&mut m, Event::Send(out("p", "pending at logout")));
    // Logout: nothing of it is left, the session is forgotten, a new one is asked for.
    let fx = update(&mut m, Event::Logout);
    assert!(fx.contains(&Effect::SaveSession) && fx.contains(&Effect::ForgetConversation));
    assert!(m.log.messages.is_empty() && m.log.outbox.entries().is_empty());
    assert_eq!((m.identity.token.as_deref(), m.identity.session.as_deref()), (None, None));
    let s3 = socket_of(&fx).expect("reconnects as a new visitor");
    assert!(fx.iter().any(|e| matches!(e, Effect::OpenSocket { after: None, .. })));
    update(&mut m, Event::SocketOpened { socket: s3 });
    let fx = update(&mut m, frame(s3, welcome(Some("new.tag"), None)));
    assert!(fx.contains(&Effect::SaveSession));
}

/// The `after` a connection resumes from, in its `auth` frame and its URL.
fn resumes_after(fx: &[Effect]) -> Vec<Option<u64>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::OpenSocket { after, .. } | Effect::Authenticate { after } => Some(*after),
            _ => None,
        })
        .collect()
}

#[test]
fn a_login_asks_for_the_users_conversation_from_its_start() {
    // An anonymous visitor has seen seq 1..=3 of their own conversation.
    let (mut m, s) = started();
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(Some("anon.tag"), None)));
    let seen = (1..=3).map(|n| ServerMessage::Bot(conv(&format!("b{n}"), n, "hi visitor"))).collect();
    update(&mut m, frame(s, ServerMessage::History(history(seen, 3))));
    update(&mut m, Event::Send(out("p", "typed before the login")));
    // They log in: seq 3 means nothing in the user's conversation, so the new connection asks
    // for its history from the start, not after 3 (which would hide its first three messages).
    let fx = update(&mut m, Event::Identify { token: "t".into(), sub: Some("ada".into()) });
    let s2 = socket_of(&fx).expect("reconnects as the user");
    assert_eq!(ids(&m), ["p"], "only what the visitor typed stays on screen");
    let fx = [fx, update(&mut m, Event::SocketOpened { socket: s2 })].concat();
    assert_eq!(resumes_after(&fx), [None, None], "{fx:?}");
    update(&mut m, frame(s2, welcome(None, Some("ada"))));
    let theirs = (1..=2).map(|n| ServerMessage::User(conv(&format!("u{n}"), n, "Ada's"))).collect();
    update(&mut m, frame(s2, ServerMessage::History(history(theirs, 2))));
    assert_eq!(ids(&m), ["u1", "u2", "p"]);
}

#[test]
fn identify_as_another_user_starts_over_and_a_token_without_a_readable_sub_too() {
    for sub in [Some("bob"), None] {
        let mut m =
            Model::new(Init { seed: 1, online: true, token: Some("ada's".into()), ..Init::default() });
        let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
        update(&mut m, Event::SocketOpened { socket: s });
        update(&mut m, frame(s, welcome(None, Some("ada"))));
        update(
            &mut m,
            frame(s, ServerMessage::History(history(vec![ServerMessage::User(conv("a5", 5, "x"))], 5))),
        );
        let fx = update(&mut m, Event::Identify { token: "t".into(), sub: sub.map(str::to_string) });
        let s2 = socket_of(&fx).expect("reconnects");
        let fx = [fx, update(&mut m, Event::SocketOpened { socket: s2 })].concat();
        assert_eq!(resumes_after(&fx), [None, None], "{sub:?}: {fx:?}");
        assert!(m.log.messages.is_empty(), "{sub:?}");
    }
}

#[test]
fn one_users_unsent_messages_never_go_out_as_another_user() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("ada's".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("ada"))));
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    update(&mut m, Event::Send(out("p", "Ada's words")));
    // Bob signs in on the same browser before Ada's message was stored: it is dropped (told
    // failed) and forgotten, never sent under Bob's token.
    let fx = update(&mut m, Event::Identify { token: "bob's".into(), sub: Some("bob".into()) });
    assert_eq!(deliveries(&fx), [d("p", Delivery::Failed, None, false)]);
    assert!(fx.contains(&Effect::ForgetConversation), "{fx:?}");
    assert!(m.log.outbox.entries().is_empty());
    let s2 = socket_of(&fx).expect("reconnects as Bob");
    update(&mut m, Event::SocketOpened { socket: s2 });
    let fx = update(&mut m, frame(s2, welcome(None, Some("bob"))));
    assert_eq!(sent_on_socket(&fx), Vec::<String>::new());
}

#[test]
fn a_fresh_token_for_the_signed_in_user_is_given_on_the_open_socket() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("ada"))));
    update(
        &mut m,
        frame(s, ServerMessage::History(history(vec![ServerMessage::User(conv("a1", 1, "x"))], 1))),
    );
    // Before the old token expires the page gives a new one: an `auth` on the same socket, no
    // reconnection (the hub renews the connection and answers with a new welcome).
    // It is pinged too: a socket that looks live after a sleep may be dead, and is then
    // replaced at once (state/liveness/tests.rs).
    let fx = update(&mut m, Event::Identify { token: "new".into(), sub: Some("ada".into()) });
    assert_eq!(fx[0], Effect::Authenticate { after: Some(1) });
    assert!(fx.contains(&Effect::Ping { nonce: 0 }), "{fx:?}");
    assert_eq!(socket_of(&fx), None, "no reconnection");
    assert_eq!(m.identity.token.as_deref(), Some("new"));
    let fx = update(&mut m, frame(s, welcome(None, Some("ada"))));
    assert!(fx.is_empty() || !fx.iter().any(|e| matches!(e, Effect::CloseSocket)), "{fx:?}");
    assert_eq!(ids(&m), ["a1"], "the conversation stays on screen");
    assert_eq!(m.link.status(), Status::Connected);
}

#[test]
fn a_renewal_the_hub_refuses_asks_the_page_again_and_the_socket_carries_on() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("ada"))));
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    update(&mut m, Event::Identify { token: "garbled".into(), sub: Some("ada".into()) });
    let fx = update(&mut m, frame(s, ServerMessage::Error(refusal(ErrorCode::Unauthorized))));
    assert!(
        fx.iter().any(|e| matches!(e, Effect::RenewToken { .. })),
        "the page is asked for a good token: {fx:?}"
    );
    assert_eq!(m.link.status(), Status::Connected, "the connection carries on with the token it has");
    // Messages still go out on it.
    let fx = update(&mut m, Event::Send(out("a", "still here")));
    assert_eq!(sent_on_socket(&fx).len(), 1, "{fx:?}");
    // A good token goes out on the same socket.
    let fx = update(&mut m, Event::Identify { token: "good".into(), sub: Some("ada".into()) });
    assert_eq!(fx[0], Effect::Authenticate { after: Some(0) });
    assert_eq!(socket_of(&fx), None, "no reconnection");
    // When the hub closes for the expired token after all, the link holds for a fresh one.
    update(&mut m, Event::Identify { token: "garbled-again".into(), sub: Some("ada".into()) });
    update(&mut m, Event::SocketClosed { socket: s, code: natter_protocol::close::UNAUTHORIZED });
    assert_eq!(m.link.status(), Status::SignInNeeded);
}

#[test]
fn identity_refusals_over_http_keep_the_message_pending() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("t".into()), ..Init::default() });
    update(&mut m, Event::Start);
    update(&mut m, Event::Send(out("a", "hello")));
    let e = ErrorFrame {
        code: ErrorCode::Unauthorized,
        message: "expired".into(),
        id: None,
        retry_after_ms: None,
        room: None,
    };
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: Some(ServerMessage::Error(e)) });
    assert!(fx.contains(&Effect::RenewToken { reason: "expired".into() }));
    assert_eq!(m.log.messages[0].delivery, Delivery::Pending);
    let fx = update(&mut m, Event::SessionIssued { session: "ignored.tag".into() });
    assert!(!fx.contains(&Effect::SaveSession), "a signed-in user needs no session");
}

// What has been read belongs to a conversation: the anonymous session's, or the signed-in
// user's once the hub has said who that is.

/// The conversation a widget welcomed as `welcomed` shows (its read-record name).
fn conversation_of(welcomed: ServerMessage) -> u64 {
    let mut m = model();
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcomed));
    m.read_conversation().expect("a welcomed widget knows its conversation")
}

fn bots(seqs: std::ops::RangeInclusive<u64>) -> History {
    let last = *seqs.end();
    history(seqs.map(|q| ServerMessage::Bot(conv(&format!("b{q}"), q, "x"))).collect(), last)
}

/// A widget started with `init`, its socket welcomed as `welcomed` and its history read.
fn welcomed_with(init: Init, welcomed: ServerMessage, h: History) -> (Model, u32, Vec<Effect>) {
    let mut m = Model::new(Init { seed: 3, online: true, ..init });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    let mut fx = update(&mut m, frame(s, welcomed));
    fx.extend(update(&mut m, frame(s, ServerMessage::History(h))));
    (m, s, fx)
}

#[test]
fn the_read_record_counts_only_for_its_own_conversation() {
    let s1 = conversation_of(welcome(Some("s1"), None));
    let s2 = conversation_of(welcome(Some("s2"), None));
    assert_ne!(s1, s2);
    // A returning visitor: the record of their session says they read up to 1 of 3.
    let init = || Init {
        session: Some("s1".into()),
        read: Some(ReadMark { conversation: s1, seq: 1 }),
        ..Init::default()
    };
    let (m, _, _) = welcomed_with(init(), welcome(Some("s1"), None), bots(1..=3));
    assert_eq!(m.log.unread, 2);
    assert_eq!(m.read_conversation(), Some(s1));
    // The same record when the hub refused that session and issued another: a new conversation,
    // of which nothing earlier is news — and the old record's seq does not hide new answers.
    let (mut m, s, fx) = welcomed_with(init(), welcome(Some("s2"), None), bots(1..=1));
    assert_eq!(m.log.unread, 0);
    assert_eq!(m.read_conversation(), Some(s2));
    assert!(fx.contains(&Effect::SaveRead(1)), "recorded for s2 from now on: {fx:?}");
    update(&mut m, frame(s, ServerMessage::Bot(conv("n", 2, "new"))));
    assert_eq!(m.log.unread, 1, "seq 2 of s2 is unread although s1 had read further");
    // Another tab's record for another conversation changes nothing here.
    let fx = update(&mut m, Event::ReadElsewhere { conversation: s1, seq: 99 });
    assert!(fx.is_empty(), "{fx:?}");
    let fx = update(&mut m, Event::ReadElsewhere { conversation: s2, seq: 2 });
    assert_eq!(fx, [Effect::Notify(Notice::Unread(0))]);
}

#[test]
fn a_signed_in_user_s_reading_is_recorded_once_the_hub_names_the_user() {
    let user = conversation_of(welcome(None, Some("42")));
    let anon = conversation_of(welcome(Some("s1"), None));
    let mut m = Model::new(Init {
        seed: 3,
        online: true,
        session: Some("s1".into()),
        token: Some("t".into()),
        read: Some(ReadMark { conversation: anon, seq: 10 }),
        ..Init::default()
    });
    assert_eq!(m.read_conversation(), None, "a token's user is only known from the welcome");
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    // Another signed-in tab records its reading before this one is welcomed.
    update(&mut m, Event::ReadElsewhere { conversation: user, seq: 1 });
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("42"))));
    assert_eq!(m.read_conversation(), Some(user));
    update(&mut m, frame(s, ServerMessage::History(bots(1..=3))));
    assert_eq!(m.log.unread, 2, "the user's record, not the anonymous session's seq 10");
}

#[test]
fn logout_forgets_what_was_read() {
    let anon = conversation_of(welcome(Some("s1"), None));
    let (mut m, _, _) = welcomed_with(
        Init {
            session: Some("s1".into()),
            read: Some(ReadMark { conversation: anon, seq: 3 }),
            ..Init::default()
        },
        welcome(Some("s1"), None),
        bots(1..=3),
    );
    let fx = update(&mut m, Event::Logout);
    assert!(fx.contains(&Effect::ForgetConversation));
    assert_eq!(m.read_conversation(), None, "no conversation until the hub issues a new session");
    let s = socket_of(&fx).expect("reconnects");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(Some("s9"), None)));
    let fresh = m.read_conversation().expect("the new session's");
    assert_ne!(fresh, anon);
    // A record another tab wrote for the forgotten session before it heard of the logout.
    update(&mut m, Event::ReadElsewhere { conversation: anon, seq: 50 });
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    update(&mut m, frame(s, ServerMessage::Bot(conv("hello", 1, "welcome back"))));
    assert_eq!(m.log.unread, 1);
}

#[test]
fn the_read_record_reads_back_and_rejects_anything_else() {
    let mark = ReadMark { conversation: 0xdead_beef_0123_4567, seq: 42 };
    assert_eq!(ReadMark::parse(&mark.text()), Some(mark));
    for bad in ["", "42", "x 1", "1 x", "-1 2", "1  2", "42 16045690984503098046 extra"] {
        assert_eq!(ReadMark::parse(bad), None, "{bad:?}");
    }
}

// Where the site's refusal, the identity and the delivery events meet.

/// A model with identity `token` (or none), started, that learnt on its HTTP fallback that the
/// hub refuses the page's origin.
fn refused_with(token: Option<&str>) -> Model {
    let mut m =
        Model::new(Init { seed: 7, online: true, token: token.map(str::to_string), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    fail_opens(&mut m, s, WS_FAILURES_BEFORE_FALLBACK);
    let poll = m.link.running_poll().expect("the fallback polls");
    update(&mut m, Event::PollRefused { poll, error: forbidden() });
    assert_eq!(m.link.status(), Status::Unavailable);
    m
}

fn refusal(code: ErrorCode) -> ErrorFrame {
    ErrorFrame { code, message: "why".into(), id: None, retry_after_ms: None, room: None }
}

#[test]
fn forbidden_for_an_identity_is_not_a_refused_site() {
    // A 403 `forbidden` (a token's `rooms` claim) is about what the user may do, not where the
    // page is: it fails the message it answers, and the link carries on.
    let mut m = model();
    into_http(&mut m);
    update(&mut m, Event::Send(out("a", "one")));
    let fx = update(
        &mut m,
        Event::Posted { id: "a".into(), reply: Some(ServerMessage::Error(refusal(ErrorCode::Forbidden))) },
    );
    assert_eq!(refusals(&fx), 0);
    assert_eq!(deliveries(&fx), [d("a", Delivery::Failed, None, false)]);
    assert_eq!(m.link.status(), Status::HttpFallback);
    // The same code on a poll is retried like any passing refusal.
    let poll = m.link.running_poll().expect("poll");
    let fx = update(&mut m, Event::PollRefused { poll, error: refusal(ErrorCode::Forbidden) });
    assert_eq!(refusals(&fx), 0);
    assert!(has_timer(&fx, Timer::Poll).is_some(), "{fx:?}");
    assert_ne!(m.link.status(), Status::Unavailable);
}

#[test]
fn identity_refusals_on_a_poll_read_like_on_a_socket() {
    // A session the hub did not issue: forgotten, and the poll tries again (without it, so the
    // hub issues a new one).
    let mut m = Model::new(Init { seed: 1, online: true, session: Some("stale".into()), ..Init::default() });
    into_http(&mut m);
    let poll = m.link.running_poll().expect("poll");
    let fx = update(&mut m, Event::PollRefused { poll, error: refusal(ErrorCode::BadSession) });
    assert_eq!(m.identity.session, None);
    assert!(fx.contains(&Effect::SaveSession) && has_timer(&fx, Timer::Poll).is_some(), "{fx:?}");
    assert_eq!(refusals(&fx), 0);
    // A refused token: the link holds (no poll again, no post with the refused token) and the
    // page is asked for a fresh one.
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    into_http(&mut m);
    update(&mut m, Event::Send(out("a", "typed before the refusal came")));
    let poll = m.link.running_poll().expect("poll");
    let fx = update(&mut m, Event::PollRefused { poll, error: refusal(ErrorCode::Unauthorized) });
    assert!(fx.contains(&Effect::RenewToken { reason: "why".into() }), "{fx:?}");
    assert_eq!(has_timer(&fx, Timer::Poll), None);
    assert_eq!(m.link.status(), Status::SignInNeeded);
    assert_eq!(m.link.running_poll(), None);
}

#[test]
fn a_held_link_posts_nothing_until_a_fresh_token_comes() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    into_http(&mut m);
    let fx = update(&mut m, Event::Send(out("a", "hello")));
    assert!(fx.iter().any(|e| matches!(e, Effect::Post(o) if o.id == "a")));
    let refused = Some(ServerMessage::Error(refusal(ErrorCode::Unauthorized)));
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: refused });
    assert!(fx.contains(&Effect::RenewToken { reason: "why".into() }));
    // The resend timer finds the link held: nothing goes out with the refused token.
    let fx = update(&mut m, Event::TimerFired(Timer::Resend));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Post(_))), "{fx:?}");
    assert_eq!(deliveries(&fx), [], "still pending, not failed");
    // A fresh token: the link polls again, and once HTTP answers the message goes out.
    let fx = update(&mut m, Event::Identify { token: "fresh".into(), sub: None });
    let poll = fx
        .iter()
        .find_map(|e| match e {
            Effect::Poll { poll, .. } => Some(*poll),
            _ => None,
        })
        .expect("polls again");
    let fx = update(&mut m, Event::PollDone { poll, history: Some(history(vec![], 0)) });
    assert!(fx.iter().any(|e| matches!(e, Effect::Post(o) if o.id == "a")), "{fx:?}");
}

#[test]
fn a_message_carried_through_a_token_renewal_is_told_pending_then_sent() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("old".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    update(&mut m, frame(s, welcome(None, Some("42"))));
    let mut told = deliveries(&update(&mut m, Event::Send(out("a", "sent as the token expires"))));
    // The token expires before the hub stored it: 4401, renewal, a new socket.
    told.extend(deliveries(&update(&mut m, frame(s, identity_error(ErrorCode::Unauthorized)))));
    told.extend(deliveries(&update(&mut m, Event::SocketClosed { socket: s, code: close::UNAUTHORIZED })));
    let fx = update(&mut m, Event::Identify { token: "fresh".into(), sub: Some("42".into()) });
    told.extend(deliveries(&fx));
    let s2 = socket_of(&fx).expect("reconnects");
    update(&mut m, Event::SocketOpened { socket: s2 });
    let fx = update(&mut m, frame(s2, welcome(None, Some("42"))));
    assert_eq!(sent_on_socket(&fx), ["a"]);
    let ack = ServerMessage::Ack(Ack { id: "a".into(), seq: 1, ..Default::default() });
    told.extend(deliveries(&update(&mut m, frame(s2, ack))));
    // No "failed" on the way: the renewal is not the message's fault.
    assert_eq!(told, [d("a", Delivery::Pending, None, false), d("a", Delivery::Sent, Some(1), false)]);
}

#[test]
fn logout_tells_the_page_the_waiting_messages_it_drops() {
    let (mut m, s) = connected();
    update(&mut m, Event::Send(out("p", "pending at logout")));
    update(&mut m, Event::Send(out("f", "failed before")));
    update(
        &mut m,
        frame(s, ServerMessage::Error(ErrorFrame { id: Some("f".into()), ..refusal(ErrorCode::TooLarge) })),
    );
    let fx = update(&mut m, Event::Logout);
    // The pending one ends as failed (it will never be sent); the failed one was told already.
    assert_eq!(deliveries(&fx), [d("p", Delivery::Failed, None, false)]);
    assert!(m.log.outbox.entries().is_empty() && fx.contains(&Effect::ForgetConversation));
}

#[test]
fn a_refused_site_stays_stopped_through_login_and_logout_until_the_visitor_retries() {
    let mut m = refused_with(None);
    update(&mut m, Event::Send(out("a", "anyone?")));
    // A login changes who the visitor is, not where the page is: the token is kept, nothing
    // knocks on the hub, the status still says why.
    let fx = update(&mut m, Event::Identify { token: "t".into(), sub: None });
    assert_eq!(socket_of(&fx), None);
    assert!(!fx.iter().any(|e| matches!(e, Effect::Poll { .. } | Effect::Post(_))), "{fx:?}");
    assert_eq!(m.identity.token.as_deref(), Some("t"));
    assert_eq!(m.link.status(), Status::Unavailable);
    // The visitor's retry is the one fresh attempt, and it says who the visitor is now.
    let fx = update(&mut m, Event::Retry { id: "a".into() });
    let s = socket_of(&fx).expect("a retry knocks once");
    let fx = update(&mut m, Event::SocketOpened { socket: s });
    assert!(fx.contains(&Effect::Authenticate { after: None }));

    // Logout on a refused page: the conversation is forgotten, the page stays stopped.
    let mut m = refused_with(Some("t"));
    let fx = update(&mut m, Event::Logout);
    assert_eq!(socket_of(&fx), None);
    assert!(!fx.iter().any(|e| matches!(e, Effect::Poll { .. } | Effect::Post(_))), "{fx:?}");
    assert_eq!((m.identity.token.as_deref(), m.link.status()), (None, Status::Unavailable));
    assert_eq!(refusals(&fx), 0, "said once, at the refusal");
}

#[test]
fn two_tabs_issued_sessions_at_once_settle_on_the_smaller_id() {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("socket");
    update(&mut m, Event::SocketOpened { socket: s });
    // No session of its own yet: another tab's is not taken (this tab is being issued one).
    assert!(update(&mut m, Event::SessionElsewhere { session: "a.tag".into() }).is_empty());
    let fx = update(&mut m, frame(s, welcome(Some("mine.tag"), None)));
    assert!(fx.contains(&Effect::SaveSession));
    update(&mut m, frame(s, ServerMessage::History(history(vec![], 0))));
    update(&mut m, Event::Send(out("p", "typed in this tab")));
    // The other tab's id is the larger: this tab keeps its own (that tab takes this one's).
    assert!(update(&mut m, Event::SessionElsewhere { session: "zed.tag".into() }).is_empty());
    assert_eq!(m.identity.session.as_deref(), Some("mine.tag"));
    // The other tab's is the smaller: this tab takes it, shows that conversation from its
    // start, and what it typed goes there.
    let theirs = "b-theirs.tag";
    let fx = update(&mut m, Event::SessionElsewhere { session: theirs.into() });
    assert_eq!(m.identity.session.as_deref(), Some(theirs));
    let s2 = socket_of(&fx).expect("connects again with the stored session");
    let fx = [fx, update(&mut m, Event::SocketOpened { socket: s2 })].concat();
    assert_eq!(resumes_after(&fx), [None, None], "{fx:?}");
    assert_eq!(ids(&m), ["p"]);
    // The same session again, or a signed-in user, changes nothing.
    assert!(update(&mut m, Event::SessionElsewhere { session: theirs.into() }).is_empty());
    let mut signed = Model::new(Init { seed: 1, online: true, token: Some("t".into()), ..Init::default() });
    update(&mut signed, Event::Start);
    assert!(update(&mut signed, Event::SessionElsewhere { session: "x.tag".into() }).is_empty());
}

#[test]
fn another_tab_logging_out_forgets_the_conversation_here_and_leaves_storage_to_it() {
    let anon = conversation_of(welcome(Some("s1"), None));
    let (mut m, s, _) = welcomed_with(
        Init {
            session: Some("s1".into()),
            read: Some(ReadMark { conversation: anon, seq: 1 }),
            ..Init::default()
        },
        welcome(Some("s1"), None),
        bots(1..=3),
    );
    assert_eq!(m.log.unread, 2);
    update(&mut m, Event::Send(out("p", "typed here before the logout there")));

    let fx = update(&mut m, Event::ForgottenElsewhere);
    // The forgotten conversation's messages and unread count go; the waiting message is told
    // failed and dropped, never sent as the next visitor.
    assert!(m.log.messages.is_empty());
    assert_eq!(m.log.unread, 0);
    assert!(fx.contains(&Effect::Notify(Notice::Unread(0))));
    assert_eq!(deliveries(&fx), [d("p", Delivery::Failed, None, false)]);
    assert!(m.log.outbox.entries().is_empty());
    assert_eq!(m.identity.session, None);
    // Storage is the other tab's: it was cleared there, and may hold its new session already.
    assert!(!fx.contains(&Effect::ForgetConversation) && !fx.contains(&Effect::SaveSession));
    // A new visitor's connection, on a fresh socket.
    let fresh = socket_of(&fx).expect("reconnects");
    assert_ne!(fresh, s);
    update(&mut m, Event::SocketOpened { socket: fresh });
    let fx = update(&mut m, frame(fresh, welcome(Some("s9"), None)));
    assert!(fx.contains(&Effect::SaveSession), "the runtime then takes the session stored first");
    // Frames of the old socket are not the new conversation's.
    update(&mut m, frame(s, ServerMessage::Bot(conv("late", 4, "for the old visitor"))));
    assert!(m.log.messages.is_empty());
}
