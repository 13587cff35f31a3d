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
    Outgoing { id: id.into(), text: text.into(), time: "2026-01-01T00:00:00Z".into() }
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
        OutboxEntry { id: "a".into(), text: "one".into(), time: "t".into(), failed: false, refusals: 0 },
        OutboxEntry { id: "b".into(), text: "two".into(), time: "t".into(), failed: false, refusals: 0 },
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

// Identity: the issued session, the token, their refusals, login and logout.

fn welcome(session: Option<&str>, user: Option<&str>) -> ServerMessage {
    ServerMessage::Welcome(natter_protocol::Welcome {
        session: session.map(str::to_string),
        member: "u_1".into(),
        user: user.map(|id| natter_protocol::UserProfile { id: id.into(), ..Default::default() }),
        expires_at: user.map(|_| 1),
    })
}

fn identity_error(code: ErrorCode) -> ServerMessage {
    ServerMessage::Error(ErrorFrame { code, message: "why".into(), id: None, retry_after_ms: None })
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
    let fx = update(&mut m, Event::Identify { token: "fresh".into() });
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
    let s2 = socket_of(&update(&mut m, Event::Identify { token: "t".into() })).expect("reconnect");
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
    assert!(fx.contains(&Effect::SaveSession) && fx.contains(&Effect::ForgetOutbox));
    assert!(m.log.messages.is_empty() && m.log.outbox.entries().is_empty());
    assert_eq!((m.identity.token.as_deref(), m.identity.session.as_deref()), (None, None));
    let s3 = socket_of(&fx).expect("reconnects as a new visitor");
    assert!(fx.iter().any(|e| matches!(e, Effect::OpenSocket { after: None, .. })));
    update(&mut m, Event::SocketOpened { socket: s3 });
    let fx = update(&mut m, frame(s3, welcome(Some("new.tag"), None)));
    assert!(fx.contains(&Effect::SaveSession));
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
    };
    let fx = update(&mut m, Event::Posted { id: "a".into(), reply: Some(ServerMessage::Error(e)) });
    assert!(fx.contains(&Effect::RenewToken { reason: "expired".into() }));
    assert_eq!(m.log.messages[0].delivery, Delivery::Pending);
    let fx = update(&mut m, Event::SessionIssued { session: "ignored.tag".into() });
    assert!(!fx.contains(&Effect::SaveSession), "a signed-in user needs no session");
}
