//! A link that is dead but not closed, on an injected clock: the model's timers run as the web
//! layer runs them, time is advanced by the test, and the hub says only what each test lets it
//! say. The bounds checked are the documented ones.

use super::super::link::{Transport, POLL_DEADLINE_MS, POST_DEADLINE_MS, WS_OPEN_TIMEOUT_MS};
use super::super::*;
use super::*;
use natter_protocol::{Ack, ErrorCode, ErrorFrame, Pong, Role, TypingNotice};

/// The web layer's timers, with time injected: at most one of each kind, as in the runtime.
#[derive(Default)]
struct Clock {
    now: u64,
    timers: Vec<(Timer, u64)>,
    /// Every effect so far, with the time it happened.
    seen: Vec<(u64, Effect)>,
}

impl Clock {
    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match &e {
                Effect::StartTimer { timer, ms } => {
                    self.timers.retain(|(t, _)| t != timer);
                    self.timers.push((*timer, self.now + u64::from(*ms)));
                }
                Effect::StopTimer(timer) => self.timers.retain(|(t, _)| t != timer),
                _ => {}
            }
            self.seen.push((self.now, e));
        }
    }

    fn event(&mut self, m: &mut Model, e: Event) {
        let fx = update(m, e);
        self.apply(fx);
    }

    /// Fires every timer due up to `until` (in order), then sets the time to `until`.
    fn run_until(&mut self, m: &mut Model, until: u64) {
        loop {
            let next = self.timers.iter().filter(|(_, at)| *at <= until).min_by_key(|(_, at)| *at).copied();
            let Some((timer, at)) = next else { break };
            self.timers.retain(|(t, _)| *t != timer);
            self.now = at;
            self.event(m, Event::TimerFired(timer));
        }
        self.now = until;
    }

    /// When the first effect matching `f` happened at or after `since`.
    fn first(&self, since: u64, f: impl Fn(&Effect) -> bool) -> Option<u64> {
        self.seen.iter().find(|(at, e)| *at >= since && f(e)).map(|(at, _)| *at)
    }

    /// The sockets opened at or after `since`.
    fn opened(&self, since: u64) -> Vec<u32> {
        self.seen
            .iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(_, e)| match e {
                Effect::OpenSocket { socket, .. } => Some(*socket),
                _ => None,
            })
            .collect()
    }

    fn pings(&self, since: u64) -> Vec<u32> {
        self.seen
            .iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(_, e)| match e {
                Effect::Ping { nonce } => Some(*nonce),
                _ => None,
            })
            .collect()
    }
}

fn frame(s: u32, message: ServerMessage) -> Event {
    Event::Frame { socket: Some(s), message }
}

fn empty_history() -> ServerMessage {
    ServerMessage::History(History { room: None, messages: vec![], complete: true, gap: None, last_seq: 0 })
}

fn pong(nonce: u32) -> ServerMessage {
    ServerMessage::Pong(Pong { nonce: Some(serde_json::Value::from(nonce).into()), timestamp: String::new() })
}

fn ack(id: &str, seq: u64) -> ServerMessage {
    ServerMessage::Ack(Ack { id: id.into(), seq, room: None, duplicate: false })
}

fn out(id: &str) -> Outgoing {
    Outgoing { id: id.into(), text: format!("text {id}"), time: "t".into(), context: String::new() }
}

/// The hub's `welcome`: an anonymous visitor's `session`, or a signed-in `user`.
fn welcome(session: Option<&str>, user: Option<&str>) -> ServerMessage {
    ServerMessage::Welcome(natter_protocol::Welcome {
        session: session.map(str::to_string),
        member: "u_1".into(),
        user: user.map(|id| natter_protocol::UserProfile { id: id.into(), ..Default::default() }),
        expires_at: None,
        budgets: None,
    })
}

/// A model whose socket 1 is live at time 0: opened, `auth` sent, welcomed and its history read.
fn live() -> (Model, Clock) {
    live_as(Init::default(), welcome(Some("s1"), None))
}

/// [`live`] for a widget that starts with `init`'s identity, welcomed with `welcomed`.
fn live_as(init: Init, welcomed: ServerMessage) -> (Model, Clock) {
    let mut m = Model::new(Init { seed: 7, online: true, ..init });
    let mut c = Clock::default();
    c.event(&mut m, Event::Start);
    c.event(&mut m, Event::SocketOpened { socket: 1 });
    c.event(&mut m, frame(1, welcomed));
    c.event(&mut m, frame(1, empty_history()));
    assert_eq!(m.link.status(), Status::Connected);
    (m, c)
}

/// Brings the socket opened last to life: opened, welcomed as `welcomed`, its history read.
fn revive_as(m: &mut Model, c: &mut Clock, welcomed: ServerMessage) -> u32 {
    let s = *c.opened(0).last().expect("a socket was opened");
    c.event(m, Event::SocketOpened { socket: s });
    c.event(m, frame(s, welcomed));
    c.event(m, frame(s, empty_history()));
    assert_eq!(m.link.status(), Status::Connected);
    s
}

/// [`revive_as`] for the anonymous visitor of [`live`].
fn revive(m: &mut Model, c: &mut Clock) -> u32 {
    revive_as(m, c, welcome(Some("s1"), None))
}

/// The `auth` frame the web layer writes for each [`Effect::Authenticate`] seen at or after
/// `since`, from the identity as it is then (as the runtime does).
fn auth_frames(m: &Model, c: &Clock, since: u64) -> Vec<String> {
    c.seen
        .iter()
        .filter(|(at, _)| *at >= since)
        .filter_map(|(_, e)| match e {
            Effect::Authenticate { after } => Some(crate::wire::auth(
                m.identity.token.as_deref(),
                m.identity.session.as_deref(),
                *after,
                "/",
            )),
            _ => None,
        })
        .collect()
}

/// Runs to `until` in one-second steps, a healthy hub answering every ping on `socket` at once.
fn run_answering(m: &mut Model, c: &mut Clock, socket: u32, until: u64) {
    while c.now < until {
        let t = (c.now + 1_000).min(until);
        let seen = c.pings(0).len();
        c.run_until(m, t);
        for nonce in c.pings(0)[seen..].to_vec() {
            c.event(m, frame(socket, pong(nonce)));
        }
    }
}

#[test]
fn an_idle_dead_socket_is_noticed_within_the_idle_bound() {
    let (mut m, mut c) = live();
    // The hub is never heard from again.
    c.run_until(&mut m, u64::from(BOUND_IDLE_S) * 1000);
    assert_eq!(c.first(0, |e| matches!(e, Effect::Ping { .. })), Some(u64::from(QUIET_MS)));
    let dropped = c.first(0, |e| *e == Effect::CloseSocket).expect("the dead socket is dropped");
    assert!(dropped <= u64::from(BOUND_IDLE_S) * 1000, "noticed at {dropped} ms");
    // A fresh socket at once, resuming; the status says so meanwhile.
    assert_eq!(c.opened(1), [2]);
    assert_eq!(c.first(dropped, |e| matches!(e, Effect::OpenSocket { .. })), Some(dropped));
    assert_eq!(m.link.status(), Status::Reconnecting);
    assert!(c.seen.contains(&(dropped, Effect::Notify(Notice::Status(Status::Reconnecting)))));
}

#[test]
fn a_healthy_idle_link_only_pings() {
    let (mut m, mut c) = live();
    // Ten minutes of a hub that answers every ping at once.
    run_answering(&mut m, &mut c, 1, 600_000);
    assert_eq!(c.opened(1), Vec::<u32>::new(), "no reconnect");
    assert_eq!(m.link.status(), Status::Connected);
    let pings = c.pings(0);
    assert_eq!(pings.len(), 600 / (QUIET_MS as usize / 1000), "one ping per quiet period");
    assert_eq!(pings[..3], [0, 1, 2], "each with its own nonce");
}

#[test]
fn other_frames_count_as_heard() {
    let (mut m, mut c) = live();
    // The bot answers something every 15 s: the link is never quiet long enough to ping.
    for i in 1..=20u64 {
        c.run_until(&mut m, i * 15_000);
        c.event(
            &mut m,
            frame(
                1,
                ServerMessage::Typing(TypingNotice {
                    room: None,
                    role: Role::Bot,
                    from: None,
                    active: false,
                }),
            ),
        );
    }
    assert!(c.pings(0).is_empty());
    assert!(c.opened(1).is_empty());
}

#[test]
fn a_send_on_a_dead_socket_reconnects_within_the_deadline_and_delivers_once() {
    let (mut m, mut c) = live();
    c.run_until(&mut m, 5_000);
    c.event(&mut m, Event::Send(out("a")));
    let sent = c.first(5_000, |e| matches!(e, Effect::SendSocket(o) if o.id == "a"));
    assert_eq!(sent, Some(5_000));
    c.run_until(&mut m, 5_000 + u64::from(BOUND_AFTER_ACTIVITY_S) * 1000);
    assert_eq!(c.first(5_000, |e| *e == Effect::CloseSocket), Some(5_000 + u64::from(REPLY_DEADLINE_MS)));
    assert_eq!(m.link.status(), Status::Reconnecting);
    assert!(c.seen.iter().any(|(_, e)| matches!(e, Effect::OpenSocket { socket: 2, .. })));
    // The fresh socket sends the outbox again, with the same id; the ack settles it.
    let t = c.now;
    let s = revive(&mut m, &mut c);
    assert_eq!(c.first(t, |e| matches!(e, Effect::SendSocket(o) if o.id == "a")), Some(t));
    c.event(&mut m, frame(s, ack("a", 1)));
    assert_eq!(m.log.messages[0].delivery, log::Delivery::Sent);
    assert_eq!(m.log.outbox.sendable().count(), 0);
    // Nothing is owed any more: an hour passes with pongs and no reconnect.
    let before = c.opened(0).len();
    let hour = c.now + 3_600_000;
    run_answering(&mut m, &mut c, s, hour);
    assert_eq!(c.opened(0).len(), before);
}

#[test]
fn a_slow_link_that_keeps_delivering_is_not_dropped() {
    let (mut m, mut c) = live();
    c.event(&mut m, Event::Send(out("a")));
    // The ack takes 30 s, but the hub keeps talking every 5 s meanwhile.
    for i in 1..=6u64 {
        c.run_until(&mut m, i * 5_000);
        c.event(
            &mut m,
            frame(
                1,
                ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active: true }),
            ),
        );
    }
    c.event(&mut m, frame(1, ack("a", 1)));
    run_answering(&mut m, &mut c, 1, 120_000);
    assert!(c.opened(1).is_empty(), "{:?}", c.seen);
    assert!(!c.timers.iter().any(|(t, _)| *t == Timer::ReplyDeadline), "nothing owed, no deadline");
}

#[test]
fn a_refusal_answers_the_message_it_names() {
    let (mut m, mut c) = live();
    c.event(&mut m, Event::Send(out("a")));
    let refusal = ErrorFrame {
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        id: Some("a".into()),
        retry_after_ms: Some(30_000),
        room: None,
    };
    c.event(&mut m, frame(1, ServerMessage::Error(refusal)));
    // The re-send waits 30 s for the rate limit; the link is not suspected meanwhile.
    run_answering(&mut m, &mut c, 1, 29_000);
    assert!(c.opened(1).is_empty());
    assert_eq!(m.link.status(), Status::Connected);
}

#[test]
fn waking_up_pings_a_live_socket_at_once_and_only_once() {
    for wake in [Event::Online, Event::Wake, Event::PageHidden { hidden: false }] {
        let (mut m, mut c) = live();
        c.run_until(&mut m, 3_000);
        c.event(&mut m, Event::PageHidden { hidden: true });
        c.event(&mut m, wake.clone());
        assert_eq!(c.pings(3_000), [0], "{wake:?}");
        // Every page event of the same wake-up: still one ping awaited.
        c.event(&mut m, Event::Online);
        c.event(&mut m, Event::Wake);
        assert_eq!(c.pings(3_000), [0], "{wake:?}");
        c.run_until(&mut m, 3_000 + u64::from(BOUND_AFTER_ACTIVITY_S) * 1000);
        assert_eq!(c.opened(1), [2], "{wake:?}: no pong, so a fresh socket");
    }
}

#[test]
fn a_closed_socket_owes_nothing() {
    let (mut m, mut c) = live();
    c.event(&mut m, Event::Send(out("a")));
    c.event(&mut m, Event::SocketClosed { socket: 1, code: 1006 });
    assert!(!c.timers.iter().any(|(t, _)| matches!(t, Timer::Quiet | Timer::ReplyDeadline)));
    c.event(&mut m, Event::Offline);
    c.run_until(&mut m, 600_000);
    assert!(c.pings(0).is_empty());
}

// Liveness and identity: a socket says who the widget is (`auth`) and is only live once the
// hub has welcomed it.

#[test]
fn nothing_is_pinged_or_owed_before_the_welcome_and_the_handshake_is_bounded() {
    let mut m = Model::new(Init { seed: 7, online: true, session: Some("s1".into()), ..Init::default() });
    let mut c = Clock::default();
    c.event(&mut m, Event::Start);
    c.event(&mut m, Event::SocketOpened { socket: 1 });
    assert_eq!(auth_frames(&m, &c, 0).len(), 1, "the open socket says who the widget is");
    // The hub does not answer the `auth`. Waking up does not ping a socket the hub has not
    // accepted, and what the visitor types waits for the welcome: no ack is owed yet.
    c.run_until(&mut m, 1_000);
    c.event(&mut m, Event::Online);
    c.event(&mut m, Event::Wake);
    c.event(&mut m, Event::Send(out("a")));
    assert!(c.pings(0).is_empty());
    assert_eq!(c.first(0, |e| matches!(e, Effect::SendSocket(_))), None);
    assert!(!c.timers.iter().any(|(t, _)| matches!(t, Timer::Quiet | Timer::ReplyDeadline)));
    // The open timeout bounds the handshake: the socket counts as failed and another is tried.
    c.run_until(&mut m, u64::from(WS_OPEN_TIMEOUT_MS));
    assert_eq!(c.first(0, |e| *e == Effect::CloseSocket), Some(u64::from(WS_OPEN_TIMEOUT_MS)));
    let retry = c.timers.iter().find(|(t, _)| *t == Timer::Reconnect).expect("a reconnect is planned").1;
    c.run_until(&mut m, retry);
    assert_eq!(c.opened(1), [2], "a new socket after the failed handshake");
    // That one is welcomed: the message goes out and its ack is awaited from then on.
    let t = c.now;
    revive(&mut m, &mut c);
    assert_eq!(c.first(t, |e| matches!(e, Effect::SendSocket(o) if o.id == "a")), Some(t));
    assert!(c
        .timers
        .iter()
        .any(|(timer, at)| *timer == Timer::ReplyDeadline && *at == t + u64::from(REPLY_DEADLINE_MS)));
    assert_eq!(auth_frames(&m, &c, 0).len(), 2);
}

#[test]
fn a_dead_link_reconnects_saying_who_the_widget_is_now() {
    // A signed-in user whose token is renewed on the open socket, which is dead by then (the
    // renewal often comes after a sleep): the renewal makes it answer, and the fresh socket
    // presents the fresh token.
    let (mut m, mut c) =
        live_as(Init { token: Some("old".into()), ..Init::default() }, welcome(None, Some("42")));
    c.event(
        &mut m,
        frame(
            1,
            ServerMessage::History(History {
                room: None,
                messages: vec![],
                complete: true,
                gap: None,
                last_seq: 4,
            }),
        ),
    );
    c.run_until(&mut m, 1_000);
    let t = c.now;
    c.event(&mut m, Event::Identify { token: "fresh".into(), sub: Some("42".into()) });
    assert!(c.opened(t).is_empty(), "a renewal, on the open socket");
    let renewal = auth_frames(&m, &c, t);
    assert!(renewal.len() == 1 && renewal[0].contains("\"token\":\"fresh\""), "{renewal:?}");
    assert_eq!(c.pings(t).len(), 1, "and the socket must answer");
    c.run_until(&mut m, t + u64::from(BOUND_AFTER_ACTIVITY_S) * 1000);
    assert_eq!(c.opened(t), [2], "the dead socket is replaced within the bound");
    let t2 = c.now;
    c.event(&mut m, Event::SocketOpened { socket: 2 });
    let frames = auth_frames(&m, &c, t2);
    assert_eq!(frames.len(), 1);
    assert!(frames[0].contains("\"token\":\"fresh\"") && !frames[0].contains("old"), "{}", frames[0]);
    assert!(frames[0].contains("\"after\":4"), "it resumes: {}", frames[0]);

    // An anonymous visitor: the fresh socket presents the session the hub issued.
    let (mut m, mut c) = live_as(Init::default(), welcome(Some("issued.tag"), None));
    c.run_until(&mut m, u64::from(BOUND_IDLE_S) * 1000);
    assert_eq!(c.opened(1), [2]);
    c.event(&mut m, Event::SocketOpened { socket: 2 });
    let frames = auth_frames(&m, &c, 1);
    assert!(frames[0].contains("\"session\":\"issued.tag\""), "{}", frames[0]);
}

#[test]
fn a_dead_link_while_the_token_is_renewed_waits_for_the_fresh_one() {
    let (mut m, mut c) =
        live_as(Init { token: Some("old".into()), ..Init::default() }, welcome(None, Some("42")));
    c.event(&mut m, Event::Send(out("a")));
    // The hub refuses the token and then the link goes silent: no ack, no close.
    c.run_until(&mut m, 1_000);
    let refused = ErrorFrame {
        code: ErrorCode::Unauthorized,
        message: "expired".into(),
        id: None,
        retry_after_ms: None,
        room: None,
    };
    c.event(&mut m, frame(1, ServerMessage::Error(refused)));
    assert!(c.seen.iter().any(|(_, e)| matches!(e, Effect::RenewToken { .. })));
    assert_eq!(m.link.status(), Status::SignInNeeded);
    // The ack stays owed: the dead socket is dropped, but no socket is opened with the refused
    // token, however long the page waits and whatever it says.
    c.run_until(&mut m, 1_000 + u64::from(REPLY_DEADLINE_MS));
    assert_eq!(c.first(0, |e| *e == Effect::CloseSocket), Some(1_000 + u64::from(REPLY_DEADLINE_MS)));
    c.event(&mut m, Event::Wake);
    c.event(&mut m, Event::Online);
    c.run_until(&mut m, 600_000);
    assert!(c.opened(1).is_empty(), "{:?}", c.opened(1));
    assert_eq!(m.link.status(), Status::SignInNeeded);
    assert!(!c.timers.iter().any(|(t, _)| matches!(t, Timer::Quiet | Timer::ReplyDeadline)));
    // The page gives a fresh token: a socket at once, with it, and the message goes out.
    c.run_until(&mut m, 601_000);
    let t = c.now;
    c.event(&mut m, Event::Identify { token: "fresh".into(), sub: Some("42".into()) });
    assert_eq!(c.opened(t), [2]);
    revive_as(&mut m, &mut c, welcome(None, Some("42")));
    assert!(auth_frames(&m, &c, t)[0].contains("fresh"));
    assert_eq!(c.first(t, |e| matches!(e, Effect::SendSocket(o) if o.id == "a")), Some(t));
}

/// A model on the HTTP fallback (the WebSocket cannot even be created), its first poll answered.
fn on_http() -> (Model, Clock) {
    let mut m = Model::new(Init { seed: 7, online: true, ..Init::default() });
    let mut c = Clock::default();
    c.event(&mut m, Event::Start);
    c.event(&mut m, Event::SocketUnavailable { socket: 1 });
    let poll = c
        .seen
        .iter()
        .find_map(|(_, e)| match e {
            Effect::Poll { poll, .. } => Some(*poll),
            _ => None,
        })
        .expect("polling");
    c.event(
        &mut m,
        Event::PollDone {
            poll,
            history: Some(History { room: None, messages: vec![], complete: true, gap: None, last_seq: 0 }),
        },
    );
    assert_eq!(m.link.transport(), Transport::Http);
    (m, c)
}

#[test]
fn an_http_send_that_never_answers_is_abandoned_and_sent_again() {
    let (mut m, mut c) = on_http();
    c.timers.retain(|(t, _)| *t != Timer::Probe && *t != Timer::PollDeadline);
    c.event(&mut m, Event::Send(out("a")));
    assert_eq!(c.first(0, |e| matches!(e, Effect::Post(o) if o.id == "a")), Some(0));
    c.run_until(&mut m, u64::from(POST_DEADLINE_MS));
    assert_eq!(c.first(0, |e| *e == Effect::AbortPost), Some(u64::from(POST_DEADLINE_MS)));
    // The aborted fetch reports a failure; the re-send follows with the same id.
    c.event(&mut m, Event::Posted { id: "a".into(), reply: None });
    c.run_until(&mut m, u64::from(POST_DEADLINE_MS) + u64::from(RESEND_DELAY_MS));
    let posts = c.seen.iter().filter(|(_, e)| matches!(e, Effect::Post(o) if o.id == "a")).count();
    assert_eq!(posts, 2);
    c.event(&mut m, Event::Posted { id: "a".into(), reply: Some(ack("a", 1)) });
    assert_eq!(m.log.messages[0].delivery, log::Delivery::Sent);
}

#[test]
fn a_long_poll_that_never_answers_is_replaced() {
    let (mut m, mut c) = on_http();
    c.timers.retain(|(t, _)| *t != Timer::Probe);
    let before = c.seen.iter().filter(|(_, e)| matches!(e, Effect::Poll { .. })).count();
    c.run_until(&mut m, u64::from(POLL_DEADLINE_MS) + 35_000);
    assert_eq!(c.first(0, |e| *e == Effect::AbortPoll), Some(u64::from(POLL_DEADLINE_MS)));
    let after = c.seen.iter().filter(|(_, e)| matches!(e, Effect::Poll { .. })).count();
    assert!(after > before, "a new long-poll was started");
}

#[test]
fn the_documented_bounds_are_these() {
    let readme = include_str!("../../../../npm/README.md");
    assert!(readme.contains(&format!("noticed within {BOUND_AFTER_ACTIVITY_S} s")), "npm/README.md");
    assert!(readme.contains(&format!("within {BOUND_IDLE_S} s")), "npm/README.md");
    assert!(readme.contains(&format!("{} s", POST_DEADLINE_MS / 1000)), "npm/README.md");
    assert!(
        readme.contains(&format!("the {} s it has to open and be welcomed", WS_OPEN_TIMEOUT_MS / 1000)),
        "npm/README.md"
    );
}

#[test]
fn a_refused_site_owes_nothing_and_asks_nothing() {
    // On the HTTP fallback, a message in flight and a long-poll running, each with its deadline.
    let (mut m, mut c) = on_http();
    c.timers.retain(|(t, _)| *t != Timer::Probe);
    c.event(&mut m, Event::Send(out("a")));
    let poll = c
        .seen
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Effect::Poll { poll, .. } => Some(*poll),
            _ => None,
        })
        .expect("polling");
    let refusal = ErrorFrame {
        code: ErrorCode::ForbiddenOrigin,
        message: "origin not allowed".into(),
        id: None,
        retry_after_ms: None,
        room: None,
    };
    c.event(&mut m, Event::PollRefused { poll, error: refusal });
    assert_eq!(m.link.status(), Status::Unavailable);
    assert!(c.timers.is_empty(), "no deadline or retry left running: {:?}", c.timers);
    // Ten minutes of waking up: nothing is pinged, opened, polled or posted.
    let (t, before) = (c.now, c.seen.len());
    for i in 1..=10u64 {
        c.event(&mut m, Event::Wake);
        c.event(&mut m, Event::Online);
        c.run_until(&mut m, t + i * 60_000);
    }
    let after = &c.seen[before..];
    assert!(
        !after.iter().any(|(_, e)| matches!(
            e,
            Effect::Ping { .. } | Effect::OpenSocket { .. } | Effect::Poll { .. } | Effect::Post(_)
        )),
        "{after:?}"
    );
}
