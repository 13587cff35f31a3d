//! The widget's state machine: every change goes through [`update`], which takes an [`Event`]
//! and returns the [`Effect`]s the web layer must carry out.
//!
//! This module is plain Rust with no browser API, so the rules that matter most — when to
//! reconnect, when to fall back to HTTP and back, what goes out of the outbox and in which
//! order, what counts as unread, when to chime, how duplicates are dropped — are unit-tested
//! natively. The web layer only turns DOM / socket / fetch / timer callbacks into events,
//! performs effects, and renders the model.
//!
//! Transport rules (DESIGN.md): the WebSocket is preferred. A socket that fails to open
//! [`WS_FAILURES_BEFORE_FALLBACK`] times in a row (or cannot be constructed at all) switches the
//! link to HTTP (POST to send, long-poll to receive) while the WebSocket keeps being probed in
//! the background with its own backoff; the first probe that opens moves the link back. Every
//! (re)connection carries the last `seq` seen, so the hub replays only what was missed.

use crate::backoff::Backoff;
use crate::outbox::{Outbox, OutboxEntry};
use natter_protocol::{close, ConversationMessage, ErrorFrame, History, Role, ServerMessage};

/// Consecutive failed WebSocket opens after which the link falls back to HTTP.
pub(crate) const WS_FAILURES_BEFORE_FALLBACK: u32 = 3;
/// A socket that has not opened after this long counts as failed (a blackholed port, a proxy
/// that swallows the upgrade).
pub(crate) const WS_OPEN_TIMEOUT_MS: u32 = 8_000;
/// Retryable refusals of one message in a row after which it is shown as failed.
const REFUSALS_BEFORE_FAILED: u32 = 3;
/// The typing indicator is cleared after this long even if the hub never says "stopped".
const TYPING_TIMEOUT_MS: u32 = 20_000;
/// Delay before re-sending after a network failure of an HTTP send, or a retryable refusal
/// without `retryAfterMs`.
const RESEND_DELAY_MS: u32 = 2_000;

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
        }
    }
}

/// Delivery state of a message in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Typed, not yet acknowledged by the hub.
    Pending,
    /// Stored by the hub (or received from it).
    Sent,
    /// Refused or given up on; the visitor can retry.
    Failed,
}

impl Delivery {
    /// The `data-state` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Failed => "failed",
        }
    }
}

/// One entry of the message log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    /// Unique id (client-made for the visitor's messages).
    pub id: String,
    /// Author.
    pub role: Role,
    /// The text, rendered as text.
    pub text: String,
    /// RFC 3339 time (the hub's once stored, the client's while pending).
    pub time: String,
    /// Position in the conversation once stored.
    pub seq: Option<u64>,
    /// Delivery state.
    pub delivery: Delivery,
}

/// Timers the web layer runs for the model; starting one replaces a running one of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Next WebSocket attempt while in WebSocket mode.
    Reconnect,
    /// Next background WebSocket probe while in HTTP mode.
    Probe,
    /// Next long-poll after a failed one.
    Poll,
    /// Gives up on a socket that does not open.
    OpenTimeout,
    /// Clears a typing indicator the hub never cleared.
    Typing,
    /// Re-sends the outbox after a refusal or a failed POST.
    Resend,
}

/// A visitor message to transmit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    /// Client-made id.
    pub id: String,
    /// Text.
    pub text: String,
    /// When it was typed (RFC 3339).
    pub time: String,
}

impl From<&OutboxEntry> for Outgoing {
    fn from(e: &OutboxEntry) -> Self {
        Outgoing { id: e.id.clone(), text: e.text.clone(), time: e.time.clone() }
    }
}

/// Something that happened: a visitor action, a page event, a link event, a timer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// The widget was mounted: start connecting.
    Start,
    /// Open the panel.
    Open,
    /// Close the panel.
    Close,
    /// Open if closed, close if open.
    Toggle,
    /// Flip the mute switch.
    ToggleMute,
    /// The page became hidden (`true`) or visible (`false`).
    PageHidden(bool),
    /// The browser says it is online again.
    Online,
    /// The browser says it is offline.
    Offline,
    /// `pageshow` (back/forward cache restore) or similar: retry now if disconnected.
    Wake,
    /// The visitor sends a message.
    Send(Outgoing),
    /// The visitor asks to retry a failed message.
    Retry(String),
    /// Socket number `0` opened.
    SocketOpened(u32),
    /// Socket number `0` closed (or failed to open) with a close code.
    SocketClosed(u32, u16),
    /// Socket number `0` could not even be created (bad URL, blocked by policy).
    SocketUnavailable(u32),
    /// A frame from socket `socket` (or injected, when `None`).
    Frame(Option<u32>, ServerMessage),
    /// Long-poll number `0` finished: the history it returned, or `None` on failure.
    PollDone(u32, Option<History>),
    /// The HTTP send of message `0` finished: the hub's answer, or `None` on network failure.
    Posted(String, Option<ServerMessage>),
    /// A timer fired.
    TimerFired(Timer),
}

/// Something the model wants to be told about from outside.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Notice {
    /// The panel opened.
    Open,
    /// The panel closed.
    Close,
    /// A message was added to the log (not the history replayed at load).
    Message(Message),
    /// The unread count changed.
    Unread(u32),
    /// The connection status changed.
    Status(Status),
}

/// What the web layer must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Create WebSocket number `socket`, resuming after `after`.
    OpenSocket { socket: u32, after: Option<u64> },
    /// Close the current WebSocket (normal closure) and forget it.
    CloseSocket,
    /// Send a visitor message on the open WebSocket.
    SendSocket(Outgoing),
    /// Start long-poll number `poll` after `after`.
    Poll { poll: u32, after: Option<u64> },
    /// Abort a running long-poll.
    AbortPoll,
    /// Send a visitor message with HTTP POST.
    Post(Outgoing),
    /// Start (or restart) a timer.
    StartTimer(Timer, u32),
    /// Stop a timer.
    StopTimer(Timer),
    /// Play the notification chime.
    Chime,
    /// Persist the outbox.
    SaveOutbox,
    /// Persist the mute switch.
    SaveMuted,
    /// Remember where focus was and move it to the input.
    FocusInput,
    /// Put focus back where it was before the panel opened.
    RestoreFocus,
    /// Tell the host page (JS `on(...)` listeners).
    Notify(Notice),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    WebSocket,
    Http,
}

/// The WebSocket's life. A socket only counts as working once the hub has said something on it
/// (it always sends `history` first): a proxy or firewall that accepts the upgrade and then
/// drops it must count as a failure, or the widget would never fall back to HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    Closed,
    Opening(u32),
    /// Open, no frame yet.
    Open(u32),
    /// The hub has spoken: this socket carries the conversation.
    Live(u32),
}

/// How the widget starts: what the page and storage say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Init {
    /// Random seed for backoff jitter.
    pub seed: u64,
    /// Mute remembered from a previous visit.
    pub muted: bool,
    /// `navigator.onLine`.
    pub online: bool,
    /// `document.hidden`.
    pub hidden: bool,
    /// Option `open`.
    pub open: bool,
    /// The outbox a previous page left.
    pub outbox: Vec<OutboxEntry>,
}

/// Everything the widget knows.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    /// Panel open.
    pub open: bool,
    /// Chime muted.
    pub muted: bool,
    /// The tab is hidden.
    pub page_hidden: bool,
    /// Messages that arrived while the visitor was not looking.
    pub unread: u32,
    /// The bot or an operator is typing.
    pub typing: bool,
    /// The log, in conversation order; messages not yet stored are at the end.
    pub messages: Vec<Message>,
    /// What still has to reach the hub.
    pub outbox: Outbox,
    /// The newest `seq` seen; sent as `after` on every (re)connection.
    pub last_seq: Option<u64>,
    /// Ids this tab saw acknowledged (the most recent ones), so that saving the outbox can
    /// drop them from what other tabs left in storage.
    pub acked: Vec<String>,
    online: bool,
    gave_up: bool,
    history_loaded: bool,
    mode: Mode,
    socket: Socket,
    next_socket: u32,
    ws_failures: u32,
    ever_connected: bool,
    http_ok: bool,
    poll: Option<u32>,
    next_poll: u32,
    posting: Option<String>,
    reconnect: Backoff,
    probe: Backoff,
    poll_backoff: Backoff,
    next_local_id: u64,
    rng: u64,
}

impl Model {
    /// A fresh model; [`Event::Start`] makes it connect.
    pub(crate) fn new(init: Init) -> Self {
        let outbox = Outbox::restore(init.outbox);
        let messages = outbox
            .entries()
            .iter()
            .map(|e| Message {
                id: e.id.clone(),
                role: Role::User,
                text: e.text.clone(),
                time: e.time.clone(),
                seq: None,
                delivery: if e.failed { Delivery::Failed } else { Delivery::Pending },
            })
            .collect();
        Model {
            open: init.open,
            muted: init.muted,
            page_hidden: init.hidden,
            unread: 0,
            typing: false,
            messages,
            outbox,
            last_seq: None,
            acked: Vec::new(),
            online: init.online,
            gave_up: false,
            history_loaded: false,
            mode: Mode::WebSocket,
            socket: Socket::Closed,
            next_socket: 1,
            ws_failures: 0,
            ever_connected: false,
            http_ok: false,
            poll: None,
            next_poll: 1,
            posting: None,
            reconnect: Backoff::new(500, 30_000),
            // Probing is one cheap attempt; a short cap moves a visitor back to the WebSocket
            // soon after a network lets it through again.
            probe: Backoff::new(2_000, 20_000),
            poll_backoff: Backoff::new(1_000, 30_000),
            next_local_id: 0,
            // xorshift needs a non-zero state.
            rng: init.seed | 1,
        }
    }

    /// What the status dot says.
    pub(crate) fn status(&self) -> Status {
        if self.gave_up || !self.online {
            Status::Offline
        } else if matches!(self.socket, Socket::Live(_)) {
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
        if matches!(self.socket, Socket::Live(_)) {
            Transport::WebSocket
        } else if self.mode == Mode::Http && self.http_ok && self.online {
            Transport::Http
        } else {
            Transport::None
        }
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

    fn connect(&mut self, fx: &mut Vec<Effect>) {
        if self.socket != Socket::Closed || !self.online || self.gave_up {
            return;
        }
        let id = self.next_socket;
        self.next_socket += 1;
        self.socket = Socket::Opening(id);
        fx.push(Effect::OpenSocket { socket: id, after: self.last_seq });
        fx.push(Effect::StartTimer(Timer::OpenTimeout, WS_OPEN_TIMEOUT_MS));
    }

    fn start_poll(&mut self, fx: &mut Vec<Effect>) {
        if self.poll.is_some() || self.mode != Mode::Http || !self.online || self.gave_up {
            return;
        }
        let id = self.next_poll;
        self.next_poll += 1;
        self.poll = Some(id);
        fx.push(Effect::Poll { poll: id, after: self.last_seq });
    }

    fn stop_poll(&mut self, fx: &mut Vec<Effect>) {
        if self.poll.take().is_some() {
            fx.push(Effect::AbortPoll);
        }
        fx.push(Effect::StopTimer(Timer::Poll));
    }

    fn enter_http(&mut self, fx: &mut Vec<Effect>) {
        self.mode = Mode::Http;
        self.http_ok = false;
        self.poll_backoff.reset();
        self.start_poll(fx);
        let u = self.random();
        let delay = self.probe.next_delay_ms(u).max(1_000);
        fx.push(Effect::StartTimer(Timer::Probe, delay));
    }

    /// Sends what is sendable over whatever works now.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        if matches!(self.socket, Socket::Live(_)) {
            fx.extend(self.outbox.sendable().map(|e| Effect::SendSocket(e.into())));
        } else {
            self.post_next(fx);
        }
    }

    /// HTTP sends one message at a time so the hub stores them in typing order.
    fn post_next(&mut self, fx: &mut Vec<Effect>) {
        if self.posting.is_some() || self.mode != Mode::Http || !self.http_ok || !self.online {
            return;
        }
        if let Some(e) = self.outbox.first_sendable() {
            self.posting = Some(e.id.clone());
            fx.push(Effect::Post(e.into()));
        }
    }

    fn socket_lost(&mut self, was_live: bool, fx: &mut Vec<Effect>) {
        self.socket = Socket::Closed;
        fx.push(Effect::StopTimer(Timer::OpenTimeout));
        if !was_live {
            self.ws_failures = self.ws_failures.saturating_add(1);
        }
        match self.mode {
            Mode::WebSocket if self.ws_failures >= WS_FAILURES_BEFORE_FALLBACK => self.enter_http(fx),
            Mode::WebSocket => {
                let u = self.random();
                let delay = self.reconnect.next_delay_ms(u);
                fx.push(Effect::StartTimer(Timer::Reconnect, delay));
            }
            Mode::Http => {
                let u = self.random();
                let delay = self.probe.next_delay_ms(u).max(1_000);
                fx.push(Effect::StartTimer(Timer::Probe, delay));
            }
        }
    }

    fn socket_live(&mut self, id: u32, fx: &mut Vec<Effect>) {
        self.socket = Socket::Live(id);
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
        self.flush(fx);
    }

    fn give_up(&mut self, fx: &mut Vec<Effect>) {
        self.gave_up = true;
        self.socket = Socket::Closed;
        self.stop_poll(fx);
        for t in [Timer::Reconnect, Timer::Probe, Timer::OpenTimeout] {
            fx.push(Effect::StopTimer(t));
        }
    }

    fn see_seq(&mut self, seq: u64) {
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
    }

    fn local_id(&mut self, prefix: &str) -> String {
        self.next_local_id += 1;
        format!("{prefix}-{}", self.next_local_id)
    }

    /// Something arrived the visitor may not have seen: count it, maybe chime.
    fn attention(&mut self, fx: &mut Vec<Effect>) {
        if !self.open || self.page_hidden {
            self.unread = self.unread.saturating_add(1);
            if !self.muted {
                fx.push(Effect::Chime);
            }
        }
    }

    fn stored(&mut self, role: Role, m: ConversationMessage, live: bool, fx: &mut Vec<Effect>) {
        self.see_seq(m.seq);
        if role == Role::User {
            self.acknowledge(&m.id, fx);
        }
        if matches!(role, Role::Bot | Role::Agent) && self.typing {
            self.typing = false;
            fx.push(Effect::StopTimer(Timer::Typing));
        }
        if let Some(existing) = self.messages.iter_mut().find(|x| x.id == m.id) {
            // Already shown (our own message, or a duplicate delivery): only firm it up.
            existing.seq = Some(m.seq);
            existing.delivery = Delivery::Sent;
            return;
        }
        let msg = Message {
            id: m.id,
            role,
            text: m.message,
            time: m.timestamp,
            seq: Some(m.seq),
            delivery: Delivery::Sent,
        };
        let at = self
            .messages
            .iter()
            .position(|x| x.seq.is_none_or(|s| s > m.seq) && x.role != Role::System)
            .unwrap_or(self.messages.len());
        self.messages.insert(at, msg.clone());
        if live {
            if role != Role::User {
                self.attention(fx);
            }
            fx.push(Effect::Notify(Notice::Message(msg)));
        }
    }

    /// `id` is stored by the hub: out of the outbox, and remembered so that saving the outbox
    /// also drops it where another tab of the session left it in storage.
    fn acknowledge(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if !self.acked.iter().any(|a| a == id) {
            if self.acked.len() >= 200 {
                self.acked.remove(0);
            }
            self.acked.push(id.to_string());
        }
        if self.outbox.acknowledge(id) {
            fx.push(Effect::SaveOutbox);
        }
    }

    fn acknowledged(&mut self, id: &str, seq: u64, fx: &mut Vec<Effect>) {
        self.acknowledge(id, fx);
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.seq = Some(seq);
            m.delivery = Delivery::Sent;
        }
    }

    /// Handles a refusal of one of our messages; returns whether it is now marked failed.
    fn refused(&mut self, e: &ErrorFrame, fx: &mut Vec<Effect>) -> bool {
        let Some(id) = e.id.as_deref() else { return false };
        if !self.outbox.contains(id) {
            return false;
        }
        if e.code.is_retryable() && self.outbox.refused(id) < REFUSALS_BEFORE_FAILED {
            let delay = e.retry_after_ms.map_or(RESEND_DELAY_MS, |ms| ms.min(60_000) as u32);
            fx.push(Effect::StartTimer(Timer::Resend, delay));
            return false;
        }
        self.outbox.set_failed(id, true);
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.delivery = Delivery::Failed;
        }
        fx.push(Effect::SaveOutbox);
        true
    }

    fn system(&mut self, text: String, time: String, live: bool, fx: &mut Vec<Effect>) {
        let msg = Message {
            id: self.local_id("system"),
            role: Role::System,
            text,
            time,
            seq: None,
            delivery: Delivery::Sent,
        };
        self.messages.push(msg.clone());
        if live {
            fx.push(Effect::Notify(Notice::Message(msg)));
        }
    }

    fn frame(&mut self, msg: ServerMessage, live: bool, fx: &mut Vec<Effect>) {
        match msg {
            ServerMessage::User(m) => self.stored(Role::User, m, live, fx),
            ServerMessage::Bot(m) => self.stored(Role::Bot, m, live, fx),
            ServerMessage::Agent(m) => self.stored(Role::Agent, m, live, fx),
            ServerMessage::System(n) if n.room.is_none() => {
                self.system(n.message, n.timestamp, live, fx);
                if live {
                    self.attention(fx);
                }
            }
            ServerMessage::Typing(t) if t.room.is_none() && matches!(t.role, Role::Bot | Role::Agent) => {
                self.typing = t.active;
                fx.push(if t.active {
                    Effect::StartTimer(Timer::Typing, TYPING_TIMEOUT_MS)
                } else {
                    Effect::StopTimer(Timer::Typing)
                });
            }
            ServerMessage::Ack(a) if a.room.is_none() => self.acknowledged(&a.id, a.seq, fx),
            ServerMessage::History(h) if h.room.is_none() => self.history(h, fx),
            ServerMessage::Error(e) => {
                self.refused(&e, fx);
            }
            _ => {}
        }
    }

    fn history(&mut self, h: History, fx: &mut Vec<Effect>) {
        // The first history of the page is the conversation so far; later ones (resume after a
        // drop) carry messages the visitor has not seen yet.
        let live = self.history_loaded;
        self.history_loaded = true;
        for m in h.messages {
            self.frame(m, live, fx);
        }
        if !h.complete && live {
            self.system("Some earlier messages could not be loaded.".into(), String::new(), false, fx);
        }
        self.see_seq(h.last_seq);
    }

    fn open_panel(&mut self, fx: &mut Vec<Effect>) {
        if !self.open {
            self.open = true;
            self.unread = 0;
            fx.push(Effect::FocusInput);
            fx.push(Effect::Notify(Notice::Open));
        }
    }

    fn close_panel(&mut self, fx: &mut Vec<Effect>) {
        if self.open {
            self.open = false;
            fx.push(Effect::RestoreFocus);
            fx.push(Effect::Notify(Notice::Close));
        }
    }

    fn wake(&mut self, fx: &mut Vec<Effect>) {
        if !self.online || self.gave_up {
            return;
        }
        if self.socket == Socket::Closed {
            self.reconnect.reset();
            fx.push(Effect::StopTimer(Timer::Reconnect));
            fx.push(Effect::StopTimer(Timer::Probe));
            self.connect(fx);
        }
        if self.mode == Mode::Http && self.poll.is_none() {
            fx.push(Effect::StopTimer(Timer::Poll));
            self.start_poll(fx);
        }
    }

    fn step(&mut self, event: Event, fx: &mut Vec<Effect>) {
        match event {
            Event::Start => self.connect(fx),
            Event::Open => self.open_panel(fx),
            Event::Close => self.close_panel(fx),
            Event::Toggle if self.open => self.close_panel(fx),
            Event::Toggle => self.open_panel(fx),
            Event::ToggleMute => {
                self.muted = !self.muted;
                fx.push(Effect::SaveMuted);
            }
            Event::PageHidden(hidden) => {
                self.page_hidden = hidden;
                if !hidden {
                    if self.open {
                        self.unread = 0;
                    }
                    self.wake(fx);
                }
            }
            Event::Online => {
                self.online = true;
                self.wake(fx);
            }
            Event::Offline => {
                self.online = false;
                if self.socket != Socket::Closed {
                    self.socket = Socket::Closed;
                    fx.push(Effect::CloseSocket);
                }
                self.stop_poll(fx);
                self.posting = None;
                for t in [Timer::Reconnect, Timer::Probe, Timer::OpenTimeout] {
                    fx.push(Effect::StopTimer(t));
                }
            }
            Event::Wake => self.wake(fx),
            Event::Send(out) => {
                if out.text.trim().is_empty() {
                    return;
                }
                self.outbox.push(out.id.clone(), out.text.clone(), out.time.clone());
                let msg = Message {
                    id: out.id,
                    role: Role::User,
                    text: out.text,
                    time: out.time,
                    seq: None,
                    delivery: Delivery::Pending,
                };
                self.messages.push(msg.clone());
                fx.push(Effect::SaveOutbox);
                fx.push(Effect::Notify(Notice::Message(msg.clone())));
                if matches!(self.socket, Socket::Live(_)) {
                    fx.push(Effect::SendSocket(Outgoing { id: msg.id, text: msg.text, time: msg.time }));
                } else {
                    self.post_next(fx);
                }
            }
            Event::Retry(id) => {
                if self.outbox.set_failed(&id, false) {
                    if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                        m.delivery = Delivery::Pending;
                    }
                    fx.push(Effect::SaveOutbox);
                    if matches!(self.socket, Socket::Live(_)) {
                        if let Some(e) = self.outbox.entries().iter().find(|e| e.id == id) {
                            fx.push(Effect::SendSocket(e.into()));
                        }
                    } else {
                        self.post_next(fx);
                    }
                }
            }
            Event::SocketOpened(id) => {
                if self.socket == Socket::Opening(id) {
                    self.socket = Socket::Open(id);
                }
            }
            Event::SocketClosed(id, code) => {
                let (opened, live) = match self.socket {
                    Socket::Live(s) if s == id => (true, true),
                    Socket::Open(s) if s == id => (true, false),
                    Socket::Opening(s) if s == id => (false, false),
                    _ => return,
                };
                if opened && !close::should_reconnect(code) {
                    self.give_up(fx);
                    return;
                }
                self.socket_lost(live, fx);
            }
            Event::SocketUnavailable(id) => {
                if self.socket == Socket::Opening(id) {
                    self.ws_failures = self.ws_failures.max(WS_FAILURES_BEFORE_FALLBACK - 1);
                    self.socket_lost(false, fx);
                }
            }
            Event::Frame(socket, msg) => {
                match socket {
                    None => {}
                    Some(s) if self.socket == Socket::Live(s) => {}
                    Some(s) if self.socket == Socket::Open(s) => {
                        // The hub's first frame: this socket now carries the conversation.
                        self.frame(msg, true, fx);
                        self.socket_live(s, fx);
                        return;
                    }
                    Some(_) => return,
                }
                self.frame(msg, true, fx);
            }
            Event::PollDone(id, result) => {
                if self.poll != Some(id) {
                    return;
                }
                self.poll = None;
                match result {
                    Some(history) => {
                        let recovered = !self.http_ok;
                        self.http_ok = true;
                        self.ever_connected = true;
                        self.poll_backoff.reset();
                        self.history(history, fx);
                        if self.mode == Mode::Http {
                            self.start_poll(fx);
                            self.post_next(fx);
                            if recovered && self.socket == Socket::Closed {
                                // HTTP just came back: the hub may be back too, so try the
                                // WebSocket now rather than at the next probe.
                                fx.push(Effect::StopTimer(Timer::Probe));
                                self.connect(fx);
                            }
                        }
                    }
                    None => {
                        self.http_ok = false;
                        if self.mode == Mode::Http && self.online {
                            let u = self.random();
                            let delay = self.poll_backoff.next_delay_ms(u).max(250);
                            fx.push(Effect::StartTimer(Timer::Poll, delay));
                        }
                    }
                }
            }
            Event::Posted(id, reply) => {
                if self.posting.as_deref() == Some(id.as_str()) {
                    self.posting = None;
                }
                match reply {
                    Some(ServerMessage::Ack(a)) => {
                        self.acknowledged(&a.id, a.seq, fx);
                        self.post_next(fx);
                    }
                    Some(ServerMessage::Error(mut e)) => {
                        // An HTTP answer is about the message just posted, even without an id.
                        e.id.get_or_insert(id);
                        // A failed message steps aside for the next one; a retryable refusal
                        // waits for the resend timer rather than being posted again at once.
                        if self.refused(&e, fx) {
                            self.post_next(fx);
                        }
                    }
                    _ => fx.push(Effect::StartTimer(Timer::Resend, RESEND_DELAY_MS)),
                }
            }
            Event::TimerFired(timer) => match timer {
                Timer::Reconnect => {
                    if self.mode == Mode::WebSocket {
                        self.connect(fx)
                    }
                }
                Timer::Probe => {
                    if self.mode == Mode::Http {
                        self.connect(fx)
                    }
                }
                Timer::Poll => self.start_poll(fx),
                Timer::OpenTimeout => {
                    if let Socket::Opening(_) | Socket::Open(_) = self.socket {
                        fx.push(Effect::CloseSocket);
                        self.socket_lost(false, fx);
                    }
                }
                Timer::Typing => self.typing = false,
                Timer::Resend => self.flush(fx),
            },
        }
    }
}

/// Applies `event` to `model` and returns what must happen as a result, including the
/// `status` / `unread` notices derived from the change.
pub(crate) fn update(model: &mut Model, event: Event) -> Vec<Effect> {
    let (status, unread) = (model.status(), model.unread);
    let mut fx = Vec::new();
    model.step(event, &mut fx);
    if model.unread != unread {
        fx.push(Effect::Notify(Notice::Unread(model.unread)));
    }
    if model.status() != status {
        fx.push(Effect::Notify(Notice::Status(model.status())));
    }
    fx
}

#[cfg(test)]
mod tests;
