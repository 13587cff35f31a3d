//! The link on its own: status and transport derived from the socket's phase and the HTTP
//! fallback, stale reports, giving up, the one-at-a-time HTTP send, jitter.

use super::*;
use natter_protocol::close;

/// What the browser reports for a socket that failed or dropped without a close frame.
const ABNORMAL: u16 = 1006;

fn link() -> Link {
    Link::new(7, true)
}

/// Connects and returns the new socket's number.
fn connect(l: &mut Link) -> u32 {
    let mut fx = Vec::new();
    l.connect(None, &mut fx);
    match fx.first() {
        Some(Effect::OpenSocket { socket, .. }) => *socket,
        other => panic!("expected a socket to open, got {other:?}"),
    }
}

/// Fails opens until the link falls back to HTTP; returns the poll it started.
fn fall_back(l: &mut Link) -> u32 {
    for _ in 0..WS_FAILURES_BEFORE_FALLBACK {
        let s = connect(l);
        l.socket_closed(s, ABNORMAL, None, &mut Vec::new());
    }
    assert_eq!(l.mode, Mode::Http);
    l.poll.expect("polling")
}

fn started_timer(fx: &[Effect], t: Timer) -> Option<u32> {
    fx.iter().find_map(|e| match e {
        Effect::StartTimer { timer, ms } if *timer == t => Some(*ms),
        _ => None,
    })
}

#[test]
fn status_and_transport_follow_the_socket() {
    let mut l = link();
    assert_eq!((l.status(), l.transport()), (Status::Connecting, Transport::None));
    let s = connect(&mut l);
    l.socket_opened(s);
    assert_eq!(l.status(), Status::Connecting, "open is not connected until the hub speaks");
    l.socket_live(s, &mut Vec::new());
    assert_eq!((l.status(), l.transport()), (Status::Connected, Transport::WebSocket));
    l.socket_closed(s, close::GOING_AWAY, None, &mut Vec::new());
    assert_eq!((l.status(), l.transport()), (Status::Reconnecting, Transport::None));
    l.offline(&mut Vec::new());
    assert_eq!((l.status(), l.transport()), (Status::Offline, Transport::None));
}

#[test]
fn http_fallback_is_shown_only_while_http_answers() {
    let mut l = link();
    let poll = fall_back(&mut l);
    assert_eq!(l.status(), Status::Connecting, "nothing has worked yet");
    assert!(l.poll_finished(poll, &mut Vec::new()));
    assert!(l.poll_answered(), "HTTP has just come back");
    assert_eq!((l.status(), l.transport()), (Status::HttpFallback, Transport::Http));
    assert!(!l.poll_answered(), "answering again is not a recovery");
    l.poll_failed(&mut Vec::new());
    assert_eq!((l.status(), l.transport()), (Status::Reconnecting, Transport::None));
    // Offline wins over everything.
    l.poll_answered();
    l.offline(&mut Vec::new());
    assert_eq!((l.status(), l.transport()), (Status::Offline, Transport::None));
}

#[test]
fn frames_are_told_apart_by_socket() {
    let mut l = link();
    assert_eq!(l.heard(None), Heard::Current, "injected frames are always read");
    let s = connect(&mut l);
    assert_eq!(l.heard(Some(s)), Heard::Stale, "a socket that has not opened cannot speak");
    l.socket_opened(s);
    assert_eq!(l.heard(Some(s)), Heard::First(s));
    l.socket_live(s, &mut Vec::new());
    assert_eq!(l.heard(Some(s)), Heard::Current);
    assert_eq!(l.heard(Some(s + 1)), Heard::Stale);
}

#[test]
fn reports_about_an_abandoned_socket_are_ignored() {
    let mut l = link();
    let s = connect(&mut l);
    let mut fx = Vec::new();
    l.timer_fired(Timer::OpenTimeout, None, &mut fx);
    assert!(fx.contains(&Effect::CloseSocket));
    let mut fx = Vec::new();
    l.socket_opened(s);
    l.socket_closed(s, ABNORMAL, None, &mut fx);
    l.socket_unavailable(s, None, &mut fx);
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(l.socket, SocketPhase::Closed);
}

#[test]
fn a_final_close_gives_up_only_from_a_socket_that_opened() {
    // A close before the open is the network, not the hub: keep trying.
    let mut l = link();
    let s = connect(&mut l);
    l.socket_closed(s, close::POLICY, None, &mut Vec::new());
    assert_eq!(l.status(), Status::Connecting);
    // The hub saying "do not come back" is final: no reconnect, no wake.
    let mut l = link();
    let s = connect(&mut l);
    l.socket_opened(s);
    let mut fx = Vec::new();
    l.socket_closed(s, close::POLICY, None, &mut fx);
    assert_eq!(l.status(), Status::Offline);
    assert_eq!(started_timer(&fx, Timer::Reconnect), None);
    let mut fx = Vec::new();
    l.wake(None, &mut fx);
    l.online(None, &mut fx);
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn a_socket_that_cannot_be_created_counts_as_the_last_failure() {
    let mut l = link();
    let s = connect(&mut l);
    let mut fx = Vec::new();
    l.socket_unavailable(s, Some(4), &mut fx);
    assert_eq!(l.mode, Mode::Http);
    assert!(fx.iter().any(|e| matches!(e, Effect::Poll { after: Some(4), .. })), "{fx:?}");
    assert!(started_timer(&fx, Timer::Probe).is_some_and(|ms| ms >= 1_000), "{fx:?}");
}

#[test]
fn http_sends_one_at_a_time() {
    let mut l = link();
    assert!(!l.can_post(), "not on HTTP");
    let poll = fall_back(&mut l);
    assert!(!l.can_post(), "HTTP has not answered yet");
    l.poll_finished(poll, &mut Vec::new());
    l.poll_answered();
    assert!(l.can_post());
    l.post_started("a".into());
    assert!(!l.can_post());
    l.post_finished("b");
    assert!(!l.can_post(), "an answer about another message does not free the slot");
    l.post_finished("a");
    assert!(l.can_post());
    l.post_started("a".into());
    l.offline(&mut Vec::new());
    l.online(None, &mut Vec::new());
    l.poll_answered();
    assert!(l.can_post(), "going offline forgets the send in flight");
}

#[test]
fn going_live_leaves_http() {
    let mut l = link();
    let poll = fall_back(&mut l);
    l.poll_finished(poll, &mut Vec::new());
    l.poll_answered();
    l.start_poll(None, &mut Vec::new());
    let mut fx = Vec::new();
    l.probe_now(None, &mut fx);
    let probe = match fx.as_slice() {
        [Effect::StopTimer(Timer::Probe), Effect::OpenSocket { socket, .. }, ..] => *socket,
        other => panic!("expected an immediate probe, got {other:?}"),
    };
    let mut again = Vec::new();
    l.probe_now(None, &mut again);
    assert!(again.is_empty(), "one probe at a time: {again:?}");
    l.socket_opened(probe);
    let mut fx = Vec::new();
    l.socket_live(probe, &mut fx);
    assert_eq!(l.mode, Mode::WebSocket);
    assert!(fx.contains(&Effect::AbortPoll), "{fx:?}");
    assert_eq!(l.poll, None);
    assert_eq!(l.ws_failures, 0);
}

#[test]
fn timers_act_only_in_their_mode() {
    let mut l = link();
    let s = connect(&mut l);
    l.socket_closed(s, ABNORMAL, None, &mut Vec::new());
    let mut fx = Vec::new();
    l.timer_fired(Timer::Probe, None, &mut fx);
    assert!(fx.is_empty(), "no probing in WebSocket mode: {fx:?}");
    l.timer_fired(Timer::Reconnect, Some(9), &mut fx);
    assert!(fx.iter().any(|e| matches!(e, Effect::OpenSocket { after: Some(9), .. })), "{fx:?}");
    let mut fx = Vec::new();
    l.timer_fired(Timer::Typing, None, &mut fx);
    l.timer_fired(Timer::Resend, None, &mut fx);
    assert!(fx.is_empty(), "not the link's timers: {fx:?}");
}

#[test]
fn jitter_is_uniform_and_seeded() {
    let (mut a, mut b) = (Link::new(99, true), Link::new(99, true));
    for _ in 0..1_000 {
        let u = a.random();
        assert!((0.0..1.0).contains(&u), "{u}");
        assert_eq!(u.to_bits(), b.random().to_bits(), "same seed, same draws");
    }
    // A zero seed would stall xorshift at zero forever.
    let mut z = Link::new(0, true);
    assert_ne!(z.random(), z.random());
}
