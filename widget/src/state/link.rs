//! The link half of the model: which transport carries the conversation, the WebSocket's life,
//! the reconnect / probe / poll backoffs, the running long-poll and the HTTP send in flight.
//!
//! The rules: the WebSocket is preferred. A socket that fails to open
//! [`WS_FAILURES_BEFORE_FALLBACK`] times in a row (or cannot be created at all) switches the
//! link to HTTP (POST to send, long-poll to receive) while the WebSocket keeps being probed in
//! the background with its own backoff; the first probe the hub speaks on moves the link back.
//! A hub that refuses the page's origin (which the page learns from the fallback's readable
//! 403, never from a failed upgrade) stops the link altogether until the visitor retries.
//!
//! A link that is dead without being closed is noticed by [`super::liveness`] (for the
//! WebSocket) and by deadlines on the long-poll and the HTTP send ([`POLL_DEADLINE_MS`],
//! [`POST_DEADLINE_MS`]): a request that a dead network swallows never settles by itself.
//!
//! The link knows nothing about messages. Where it needs the conversation's position (`after`,
//! the newest `seq` seen, sent on every (re)connection so the hub replays only what was missed)
//! the model passes it in; what there is to send is the log's business.

use crate::prelude::*;

use super::{Effect, Timer};
use crate::backoff::Backoff;
use natter_protocol::close;

/// Consecutive failed WebSocket opens after which the link falls back to HTTP.
pub(super) const WS_FAILURES_BEFORE_FALLBACK: u32 = 3;
/// A socket the hub has not welcomed this long after it was created counts as failed (a
/// blackholed port, a proxy that swallows the upgrade, an `auth` frame that gets no answer).
/// This is the handshake's deadline: liveness only watches a socket once it is live.
pub(super) const WS_OPEN_TIMEOUT_MS: u32 = 8_000;
/// A long-poll unanswered after this long is dead: the hub answers every poll within its
/// `--poll-timeout` (25 s by default), so only a dead network keeps one open longer.
pub(crate) const POLL_DEADLINE_MS: u32 = 45_000;
/// An HTTP send unanswered after this long is abandoned and sent again (the hub de-duplicates
/// by id, so a send that did arrive is acknowledged, not stored twice).
pub(crate) const POST_DEADLINE_MS: u32 = 15_000;

/// Which transport carries the conversation right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Nothing is connected.
    None,
    /// The WebSocket is open.
    WebSocket,
    /// HTTP POST + long-poll is working.
    Http,
}

impl Transport {
    /// The name the JS API reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::None => "none",
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
        }
    }
}

/// What the status dot and its label say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// First connection attempt(s) of this page.
    Connecting,
    /// The WebSocket is open.
    Connected,
    /// Was connected, lost it, trying again.
    Reconnecting,
    /// The WebSocket does not work; HTTP carries the conversation.
    HttpFallback,
    /// The browser is offline, or the hub told us not to reconnect.
    Offline,
    /// The hub refuses this site (its origin is not on the hub's allow-list): retrying cannot
    /// help, so the link has stopped.
    Unavailable,
    /// The hub refused the identity token; waiting for the page to give a fresh one.
    SignInNeeded,
}

impl Status {
    /// The visible (and screen-reader) label; part of the DOM contract.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Status::Connecting => "Connecting…",
            Status::Connected => "Connected",
            Status::Reconnecting => "Reconnecting…",
            Status::HttpFallback => "HTTP fallback",
            Status::Offline => "Offline",
            Status::Unavailable => "Chat is not available on this site",
            Status::SignInNeeded => "Sign-in expired",
        }
    }

    /// A stable machine name, used for the dot's colour (`data-status`) and the JS API.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Reconnecting => "reconnecting",
            Status::HttpFallback => "http",
            Status::Offline => "offline",
            Status::Unavailable => "unavailable",
            Status::SignInNeeded => "signin",
        }
    }
}

/// The transport the link is trying to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The WebSocket, reconnected with backoff when it drops.
    WebSocket,
    /// HTTP send + long-poll, with the WebSocket probed in the background.
    Http,
}

/// The WebSocket's life, each phase naming the socket it is about, so that late callbacks of a
/// socket the link has already given up on are recognised and ignored.
///
/// A socket only counts as working once the hub has accepted the widget on it (its `welcome`
/// after the widget's `auth`, or the `history` of a hub that predates `auth`): a proxy or
/// firewall that accepts the upgrade and then drops it must count as a failure, or the widget
/// would never fall back to HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketPhase {
    /// No socket.
    Closed,
    /// Created, not open yet.
    Opening(u32),
    /// Open, `auth` sent, not welcomed yet.
    Open(u32),
    /// The hub has welcomed it: this socket carries the conversation.
    Live(u32),
}

/// What a frame from a socket means to the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// From the socket that carries the conversation (or injected): read it.
    Current,
    /// A frame on this open socket before it is live: read it, and if it is the welcome,
    /// [`Link::socket_live`].
    First(u32),
    /// From a socket the link has moved on from: drop it.
    Stale,
}

/// The transport state of the model.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// `navigator.onLine`, kept up to date by `online` / `offline` events.
    online: bool,
    /// The hub closed with a code that says "do not come back" (policy).
    gave_up: bool,
    /// The hub refused this page's origin: everything has stopped until the visitor retries.
    refused: bool,
    /// Nothing connects until the page gives a fresh identity token (the hub refused the last).
    held: bool,
    mode: Mode,
    socket: SocketPhase,
    /// Every socket gets a new number, so callbacks of an old one can be told apart.
    next_socket: u32,
    /// Failed opens in a row; reset when a socket goes live.
    ws_failures: u32,
    /// Some transport has worked on this page: a loss now reads "Reconnecting", not "Connecting".
    ever_connected: bool,
    /// The last long-poll answered (in HTTP mode, HTTP is what carries the conversation).
    http_ok: bool,
    /// The long-poll running now, by number.
    poll: Option<u32>,
    next_poll: u32,
    /// The id of the message whose HTTP send is in flight; HTTP sends one at a time.
    posting: Option<String>,
    reconnect: Backoff,
    /// The reconnect delay after a close with 4029 (cut for sending far too much).
    cut: Backoff,
    probe: Backoff,
    poll_backoff: Backoff,
    /// xorshift64* state, for backoff jitter only.
    rng: u64,
}

impl Link {
    /// A link that has not tried anything yet.
    pub(super) fn new(seed: u64, online: bool) -> Self {
        Link {
            online,
            gave_up: false,
            refused: false,
            held: false,
            mode: Mode::WebSocket,
            socket: SocketPhase::Closed,
            next_socket: 1,
            ws_failures: 0,
            ever_connected: false,
            http_ok: false,
            poll: None,
            next_poll: 1,
            posting: None,
            reconnect: Backoff::new(500, 30_000),
            // The hub's budgets refill over seconds (a cut connection owes four seconds'
            // worth): 5–10 s after a first cut, up to one or two minutes.
            cut: Backoff::new(10_000, 120_000),
            // Probing is one cheap attempt; a short cap moves a visitor back to the WebSocket
            // soon after a network lets it through again.
            probe: Backoff::new(2_000, 20_000),
            poll_backoff: Backoff::new(1_000, 30_000),
            // xorshift needs a non-zero state.
            rng: seed | 1,
        }
    }

    /// What the status dot says.
    pub(crate) fn status(&self) -> Status {
        if self.refused {
            Status::Unavailable
        } else if self.held {
            Status::SignInNeeded
        } else if self.gave_up || !self.online {
            Status::Offline
        } else if self.is_live() {
            Status::Connected
        } else if self.mode == Mode::Http && self.http_ok {
            Status::HttpFallback
        } else if self.ever_connected {
            Status::Reconnecting
        } else {
            Status::Connecting
        }
    }

    /// Which transport carries messages now.
    pub(crate) fn transport(&self) -> Transport {
        if self.is_live() {
            Transport::WebSocket
        } else if self.mode == Mode::Http && self.http_ok && self.online {
            Transport::Http
        } else {
            Transport::None
        }
    }

    /// Whether messages go out on the WebSocket now.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.socket, SocketPhase::Live(_))
    }

    /// Whether an HTTP send may start now: in HTTP mode, HTTP answering, none in flight, and
    /// nothing that stops the link (given up, or held for a fresh token: a post with the
    /// refused token would only be refused again).
    pub(super) fn can_post(&self) -> bool {
        self.posting.is_none()
            && self.mode == Mode::Http
            && self.http_ok
            && self.online
            && !self.gave_up
            && !self.held
    }

    /// Whether the link waits for a fresh identity token (see [`Link::hold`]).
    pub(super) fn is_held(&self) -> bool {
        self.held
    }

    /// Whether the hub has refused this page (see [`Link::refuse`]).
    pub(super) fn is_refused(&self) -> bool {
        self.refused
    }

    /// The hub refused this page's origin. A browser cannot read why a WebSocket upgrade
    /// failed, so this is learnt from the HTTP fallback's readable 403: stop every socket,
    /// poll, probe and timer — hammering a hub that said no helps nobody. Returns whether
    /// this is news (the page is told once).
    pub(super) fn refuse(&mut self, fx: &mut Vec<Effect>) -> bool {
        if self.refused {
            return false;
        }
        self.refused = true;
        if self.socket != SocketPhase::Closed {
            fx.push(Effect::CloseSocket);
        }
        self.give_up(fx);
        self.posting = None;
        for t in [Timer::Poll, Timer::Resend, Timer::PostDeadline] {
            fx.push(Effect::StopTimer(t));
        }
        true
    }

    /// The visitor asked to retry after a refusal (the site may have been allowed since):
    /// one fresh start, from the WebSocket, as on page load.
    pub(super) fn try_again(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if !self.refused {
            return;
        }
        self.refused = false;
        self.gave_up = false;
        self.mode = Mode::WebSocket;
        self.http_ok = false;
        self.ws_failures = 0;
        self.reconnect.reset();
        self.probe.reset();
        self.poll_backoff.reset();
        self.connect(after, fx);
    }

    /// The HTTP send of `id` has started.
    pub(super) fn post_started(&mut self, id: String) {
        self.posting = Some(id);
    }

    /// The HTTP send of `id` has an answer (or failed); returns whether it was the one in
    /// flight.
    pub(super) fn post_finished(&mut self, id: &str) -> bool {
        let current = self.posting.as_deref() == Some(id);
        if current {
            self.posting = None;
        }
        current
    }

    /// The HTTP send in flight is past its deadline: forget it (the model aborts it and sends
    /// again). Returns whether one was in flight.
    pub(super) fn post_abandoned(&mut self) -> bool {
        self.posting.take().is_some()
    }

    /// A uniform random number in `[0, 1)` (xorshift64*; only used for jitter).
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Opens a new WebSocket unless one is under way (or the link is offline or gave up).
    pub(super) fn connect(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if self.socket != SocketPhase::Closed || !self.online || self.gave_up || self.held {
            return;
        }
        let id = self.next_socket;
        self.next_socket += 1;
        self.socket = SocketPhase::Opening(id);
        fx.push(Effect::OpenSocket { socket: id, after });
        fx.push(Effect::StartTimer { timer: Timer::OpenTimeout, ms: WS_OPEN_TIMEOUT_MS });
    }

    /// Starts a long-poll if the link is on HTTP and none is running.
    pub(super) fn start_poll(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if self.poll.is_some() || self.mode != Mode::Http || !self.online || self.gave_up || self.held {
            return;
        }
        let id = self.next_poll;
        self.next_poll += 1;
        self.poll = Some(id);
        fx.push(Effect::Poll { poll: id, after });
        fx.push(Effect::StartTimer { timer: Timer::PollDeadline, ms: POLL_DEADLINE_MS });
    }

    fn stop_poll(&mut self, fx: &mut Vec<Effect>) {
        if self.poll.take().is_some() {
            fx.push(Effect::AbortPoll);
            fx.push(Effect::StopTimer(Timer::PollDeadline));
        }
        fx.push(Effect::StopTimer(Timer::Poll));
    }

    fn enter_http(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        self.mode = Mode::Http;
        self.http_ok = false;
        self.poll_backoff.reset();
        self.start_poll(after, fx);
        let u = self.random();
        let delay = self.probe.next_delay_ms(u).max(1_000);
        fx.push(Effect::StartTimer { timer: Timer::Probe, ms: delay });
    }

    fn socket_lost(&mut self, was_live: bool, after: Option<u64>, fx: &mut Vec<Effect>) {
        self.socket = SocketPhase::Closed;
        fx.push(Effect::StopTimer(Timer::OpenTimeout));
        if !was_live {
            self.ws_failures = self.ws_failures.saturating_add(1);
        }
        match self.mode {
            Mode::WebSocket if self.ws_failures >= WS_FAILURES_BEFORE_FALLBACK => self.enter_http(after, fx),
            Mode::WebSocket => {
                let u = self.random();
                let delay = self.reconnect.next_delay_ms(u);
                fx.push(Effect::StartTimer { timer: Timer::Reconnect, ms: delay });
            }
            Mode::Http => {
                let u = self.random();
                let delay = self.probe.next_delay_ms(u).max(1_000);
                fx.push(Effect::StartTimer { timer: Timer::Probe, ms: delay });
            }
        }
    }

    /// The hub spoke on socket `id`: it carries the conversation now, and HTTP stops. The
    /// model then sends the outbox on it.
    pub(super) fn socket_live(&mut self, id: u32, fx: &mut Vec<Effect>) {
        self.socket = SocketPhase::Live(id);
        self.ws_failures = 0;
        self.ever_connected = true;
        self.reconnect.reset();
        self.probe.reset();
        for t in [Timer::OpenTimeout, Timer::Reconnect, Timer::Probe] {
            fx.push(Effect::StopTimer(t));
        }
        if self.mode == Mode::Http {
            self.mode = Mode::WebSocket;
            self.http_ok = false;
            self.stop_poll(fx);
            // A POST still in flight gets its answer; a duplicate re-send is acknowledged by id,
            // not stored twice.
            self.posting = None;
        }
    }

    fn give_up(&mut self, fx: &mut Vec<Effect>) {
        self.gave_up = true;
        self.socket = SocketPhase::Closed;
        self.stop_poll(fx);
        for t in [Timer::Reconnect, Timer::Probe, Timer::OpenTimeout] {
            fx.push(Effect::StopTimer(t));
        }
    }

    /// The live socket owes an answer it has not given in time (see [`super::liveness`]): it
    /// is dead without being closed. Drop it without waiting for a close that may take
    /// minutes, and open a fresh one at once; it resumes after `after`.
    pub(super) fn socket_dead(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if !self.is_live() {
            return;
        }
        self.socket = SocketPhase::Closed;
        fx.push(Effect::CloseSocket);
        self.reconnect.reset();
        self.connect(after, fx);
    }

    /// The hub refused the identity: stop connecting and polling until [`Link::reconnect_now`].
    pub(super) fn hold(&mut self, fx: &mut Vec<Effect>) {
        self.held = true;
        self.stop_poll(fx);
        for t in [Timer::Reconnect, Timer::Probe] {
            fx.push(Effect::StopTimer(t));
        }
    }

    /// Connects again now, with whatever the identity is now (a fresh token, a new session, or
    /// another user): the current socket, if any, is closed first. A page whose origin the hub
    /// refused stays stopped: who the visitor is does not change where the page is, so only
    /// the visitor's retry ([`Link::try_again`]) knocks again.
    pub(super) fn reconnect_now(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        self.held = false;
        if self.refused {
            return;
        }
        if self.socket != SocketPhase::Closed {
            self.socket = SocketPhase::Closed;
            fx.push(Effect::CloseSocket);
            fx.push(Effect::StopTimer(Timer::OpenTimeout));
        }
        self.stop_poll(fx);
        self.posting = None;
        self.reconnect.reset();
        self.ws_failures = 0;
        self.wake(after, fx);
    }

    /// Something suggests the network is back (online, tab visible, page shown): retry now
    /// rather than at the next backoff.
    pub(super) fn wake(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if !self.online || self.gave_up {
            return;
        }
        if self.socket == SocketPhase::Closed {
            self.reconnect.reset();
            fx.push(Effect::StopTimer(Timer::Reconnect));
            fx.push(Effect::StopTimer(Timer::Probe));
            self.connect(after, fx);
        }
        if self.mode == Mode::Http && self.poll.is_none() {
            fx.push(Effect::StopTimer(Timer::Poll));
            self.start_poll(after, fx);
        }
    }

    /// The browser says it is online again.
    pub(super) fn online(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        self.online = true;
        self.wake(after, fx);
    }

    /// The browser says it is offline: drop everything in flight until it is back.
    pub(super) fn offline(&mut self, fx: &mut Vec<Effect>) {
        self.online = false;
        if self.socket != SocketPhase::Closed {
            self.socket = SocketPhase::Closed;
            fx.push(Effect::CloseSocket);
        }
        self.stop_poll(fx);
        self.posting = None;
        for t in [Timer::Reconnect, Timer::Probe, Timer::OpenTimeout] {
            fx.push(Effect::StopTimer(t));
        }
    }

    /// Socket `id` opened; returns whether it is the one being opened (and so must now say who
    /// the widget is).
    pub(super) fn socket_opened(&mut self, id: u32) -> bool {
        if self.socket == SocketPhase::Opening(id) {
            self.socket = SocketPhase::Open(id);
            return true;
        }
        false
    }

    /// Socket `id` closed (or failed to open) with `code`.
    pub(super) fn socket_closed(&mut self, id: u32, code: u16, after: Option<u64>, fx: &mut Vec<Effect>) {
        let (opened, live) = match self.socket {
            SocketPhase::Live(s) if s == id => (true, true),
            SocketPhase::Open(s) if s == id => (true, false),
            SocketPhase::Opening(s) if s == id => (false, false),
            _ => return,
        };
        if opened && !close::should_reconnect(code) {
            return self.give_up(fx);
        }
        if code == close::RATE_LIMITED && self.mode == Mode::WebSocket {
            // Cut for sending far too much: the hub's budgets need time to refill, so wait
            // a real while, longer at each cut in a row (whatever the socket did meanwhile),
            // at least half the ceiling so a jitter near 0 is no instant return.
            self.socket = SocketPhase::Closed;
            let ceiling = self.cut.ceiling_ms();
            let u = self.random();
            let delay = ceiling / 2 + self.cut.next_delay_ms(u) / 2;
            fx.push(Effect::StartTimer { timer: Timer::Reconnect, ms: delay });
            return;
        }
        if live {
            // A connection that ended otherwise: the next cut starts from the first delay.
            self.cut.reset();
        }
        self.socket_lost(live, after, fx);
    }

    /// Socket `id` could not even be created: no point trying it the usual number of times.
    pub(super) fn socket_unavailable(&mut self, id: u32, after: Option<u64>, fx: &mut Vec<Effect>) {
        if self.socket == SocketPhase::Opening(id) {
            self.ws_failures = self.ws_failures.max(WS_FAILURES_BEFORE_FALLBACK - 1);
            self.socket_lost(false, after, fx);
        }
    }

    /// Whether a frame from `socket` (`None`: injected) is to be read.
    pub(super) fn heard(&self, socket: Option<u32>) -> Heard {
        match socket {
            None => Heard::Current,
            Some(s) if self.socket == SocketPhase::Live(s) => Heard::Current,
            Some(s) if self.socket == SocketPhase::Open(s) => Heard::First(s),
            Some(_) => Heard::Stale,
        }
    }

    /// Long-poll `id` finished; returns whether it is the one the link is waiting for.
    pub(super) fn poll_finished(&mut self, id: u32, fx: &mut Vec<Effect>) -> bool {
        if self.poll != Some(id) {
            return false;
        }
        self.poll = None;
        fx.push(Effect::StopTimer(Timer::PollDeadline));
        true
    }

    /// The long-poll answered; returns whether HTTP has just come back.
    pub(super) fn poll_answered(&mut self) -> bool {
        let recovered = !self.http_ok;
        self.http_ok = true;
        self.ever_connected = true;
        self.poll_backoff.reset();
        recovered
    }

    /// The long-poll failed: try again after a backoff.
    pub(super) fn poll_failed(&mut self, fx: &mut Vec<Effect>) {
        self.http_ok = false;
        if self.mode == Mode::Http && self.online {
            let u = self.random();
            let delay = self.poll_backoff.next_delay_ms(u).max(250);
            fx.push(Effect::StartTimer { timer: Timer::Poll, ms: delay });
        }
    }

    /// Whether the link is in HTTP mode.
    pub(super) fn on_http(&self) -> bool {
        self.mode == Mode::Http
    }

    /// HTTP has just come back: the hub may be back too, so try the WebSocket now rather than
    /// at the next probe.
    pub(super) fn probe_now(&mut self, after: Option<u64>, fx: &mut Vec<Effect>) {
        if self.socket == SocketPhase::Closed {
            fx.push(Effect::StopTimer(Timer::Probe));
            self.connect(after, fx);
        }
    }

    /// One of the link's timers fired; the others are not its business.
    pub(super) fn timer_fired(&mut self, timer: Timer, after: Option<u64>, fx: &mut Vec<Effect>) {
        match timer {
            Timer::Reconnect if self.mode == Mode::WebSocket => self.connect(after, fx),
            Timer::Probe if self.mode == Mode::Http => self.connect(after, fx),
            Timer::Poll => self.start_poll(after, fx),
            Timer::OpenTimeout => {
                if let SocketPhase::Opening(_) | SocketPhase::Open(_) = self.socket {
                    fx.push(Effect::CloseSocket);
                    self.socket_lost(false, after, fx);
                }
            }
            Timer::PollDeadline => {
                // Dead: give up on it as on a failed one, and poll again after a backoff.
                if self.poll.take().is_some() {
                    fx.push(Effect::AbortPoll);
                    self.poll_failed(fx);
                }
            }
            Timer::Reconnect
            | Timer::Probe
            | Timer::Typing
            | Timer::Resend
            | Timer::Quiet
            | Timer::ReplyDeadline
            | Timer::PostDeadline => {}
            #[cfg(feature = "rooms")]
            Timer::RoomResend | Timer::RoomTyping | Timer::RoomPoll | Timer::RoomPace => {}
        }
    }

    /// The transport mode (for the model's tests).
    #[cfg(test)]
    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// The socket's phase (for the model's tests).
    #[cfg(test)]
    pub(super) fn socket(&self) -> SocketPhase {
        self.socket
    }

    /// The long-poll running now (for the model's tests).
    #[cfg(test)]
    pub(super) fn running_poll(&self) -> Option<u32> {
        self.poll
    }
}

#[cfg(test)]
mod tests;
