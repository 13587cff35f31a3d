//! The widget's state machine: every change goes through [`update`], which takes an [`Event`]
//! and returns the [`Effect`]s the web layer must carry out.
//!
//! This module is plain Rust with no browser API, so the rules that matter most — when to
//! reconnect, when to fall back to HTTP and back, what goes out of the outbox and in which
//! order, what counts as unread, when to chime, how duplicates are dropped — are unit-tested
//! natively. The web layer only turns DOM / socket / fetch / timer callbacks into events,
//! performs effects, and renders the model.
//!
//! The [`Model`] is split by what changes together:
//! - [`link`]: the transport — WebSocket or HTTP, the socket's phase, backoffs, the long-poll,
//!   the HTTP send in flight; it derives the [`Status`] and [`Transport`](link::Transport) the
//!   page sees.
//! - [`log`]: the conversation — messages, outbox, unread count, typing, `last_seq`.
//! - [`identity`]: who the widget is to the hub — the issued session, the identity token, the
//!   renewal of a refused token.
//! - the model itself: the panel (open, muted, tab hidden), and the few rules that need both
//!   halves (what to send over which transport, what the visitor sees arrive).

pub(crate) mod identity;
pub(crate) mod link;
pub(crate) mod log;

use crate::outbox::OutboxEntry;
use identity::Identity;
use link::{Heard, Link, Status};
use log::{Attention, Log, Message};
use natter_protocol::{close, ErrorCode, ErrorFrame, History, ServerMessage};

/// Delay before re-sending after a network failure of an HTTP send, or a retryable refusal
/// without `retryAfterMs`.
const RESEND_DELAY_MS: u32 = 2_000;

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
///
/// Sockets and long-polls are numbered by the model when it asks for them, and every report
/// about one names it, so a late report about one the model has moved on from is ignored.
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
    /// The page became hidden or visible.
    PageHidden { hidden: bool },
    /// The browser says it is online again.
    Online,
    /// The browser says it is offline.
    Offline,
    /// `pageshow` (back/forward cache restore) or similar: retry now if disconnected.
    Wake,
    /// The visitor sends a message.
    Send(Outgoing),
    /// The visitor asks to retry the failed message `id`.
    Retry { id: String },
    /// The socket opened.
    SocketOpened { socket: u32 },
    /// The socket closed (or failed to open) with a close code.
    SocketClosed { socket: u32, code: u16 },
    /// The socket could not even be created (bad URL, blocked by policy).
    SocketUnavailable { socket: u32 },
    /// A hub frame from `socket`, or injected when `None`.
    Frame { socket: Option<u32>, message: ServerMessage },
    /// The long-poll finished: the history it returned, or `None` on failure.
    PollDone { poll: u32, history: Option<History> },
    /// The HTTP send of message `id` finished: the hub's answer, or `None` on network failure.
    Posted { id: String, reply: Option<ServerMessage> },
    /// A timer fired.
    TimerFired(Timer),
    /// The page gave an identity token: after a login (`identify()`), or a fresh one after the
    /// hub refused the last (`tokenExpired`).
    Identify { token: String },
    /// The visitor logged out: forget the conversation on this device, start a new one.
    Logout,
    /// The hub issued a session over HTTP (the `X-Natter-Session` header of an answer).
    SessionIssued { session: String },
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
    /// Start (or restart) `timer` to fire in `ms` milliseconds.
    StartTimer { timer: Timer, ms: u32 },
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
    /// Say who the widget is on the socket that just opened (or renew the token on a live one):
    /// an `auth` frame with the identity's token or session, resuming after `after`.
    Authenticate { after: Option<u64> },
    /// Persist the identity's session (remove it from storage when there is none).
    SaveSession,
    /// Remove the outbox from storage (a logout).
    ForgetOutbox,
    /// The hub refused the identity token: ask the page for a fresh one (`tokenExpired`),
    /// saying why.
    RenewToken { reason: String },
    /// Tell the developer, on the console, why the hub refused the widget's identity.
    Warn(String),
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
    /// The session the hub issued on an earlier visit.
    pub session: Option<String>,
    /// Option `identityToken`.
    pub token: Option<String>,
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
    /// The transport.
    pub link: Link,
    /// The conversation.
    pub log: Log,
    /// Who the widget is to the hub.
    pub identity: Identity,
}

impl Model {
    /// A fresh model; [`Event::Start`] makes it connect.
    pub(crate) fn new(init: Init) -> Self {
        Model {
            open: init.open,
            muted: init.muted,
            page_hidden: init.hidden,
            link: Link::new(init.seed, init.online),
            log: Log::restore(init.outbox),
            identity: Identity::new(init.session, init.token),
        }
    }

    /// Whether the visitor would see a message arrive now.
    fn attention(&self) -> Attention {
        Attention { watching: self.open && !self.page_hidden, muted: self.muted }
    }

    /// Sends what is sendable over whatever works now.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        if self.link.is_live() {
            fx.extend(self.log.outbox.sendable().map(|e| Effect::SendSocket(e.into())));
        } else {
            self.post_next(fx);
        }
    }

    /// HTTP sends one message at a time so the hub stores them in typing order.
    fn post_next(&mut self, fx: &mut Vec<Effect>) {
        if !self.link.can_post() {
            return;
        }
        if let Some(e) = self.log.outbox.first_sendable() {
            self.link.post_started(e.id.clone());
            fx.push(Effect::Post(e.into()));
        }
    }

    fn open_panel(&mut self, fx: &mut Vec<Effect>) {
        if !self.open {
            self.open = true;
            self.log.mark_read();
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

    fn toggle_mute(&mut self, fx: &mut Vec<Effect>) {
        self.muted = !self.muted;
        fx.push(Effect::SaveMuted);
    }

    fn set_page_hidden(&mut self, hidden: bool, fx: &mut Vec<Effect>) {
        self.page_hidden = hidden;
        if !hidden {
            if self.open {
                self.log.mark_read();
            }
            self.link.wake(self.log.last_seq, fx);
        }
    }

    /// The visitor typed a message: shown, queued, and sent over whatever works now.
    fn send(&mut self, out: Outgoing, fx: &mut Vec<Effect>) {
        if !self.log.write(&out, fx) {
            return;
        }
        if self.link.is_live() {
            fx.push(Effect::SendSocket(out));
        } else {
            self.post_next(fx);
        }
    }

    /// The visitor retries a failed message.
    fn retry(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if !self.log.retry(id, fx) {
            return;
        }
        if self.link.is_live() {
            if let Some(e) = self.log.outbox.entries().iter().find(|e| e.id == id) {
                fx.push(Effect::SendSocket(e.into()));
            }
        } else {
            self.post_next(fx);
        }
    }

    /// A hub frame from a socket (or injected): read unless the socket is stale.
    fn frame(&mut self, socket: Option<u32>, message: ServerMessage, fx: &mut Vec<Effect>) {
        let heard = self.link.heard(socket);
        if heard == Heard::Stale {
            return;
        }
        // The hub has accepted who the widget is once it welcomes it (or, for a hub that
        // predates `auth`, sends the history): only then does the socket carry the conversation.
        let accepted = matches!(message, ServerMessage::Welcome(_) | ServerMessage::History(_));
        match message {
            ServerMessage::Welcome(w) => {
                let welcomed = self.identity.welcomed(&w);
                if welcomed.new_session {
                    fx.push(Effect::SaveSession);
                }
                if welcomed.other_conversation {
                    self.log.start_over(true);
                }
            }
            ServerMessage::Error(e) if e.id.is_none() && is_identity_refusal(e.code) => {
                self.identity_refused(&e, fx);
            }
            message => self.log.receive(message, true, self.attention(), fx),
        }
        if let (Heard::First(socket), true) = (heard, accepted) {
            self.link.socket_live(socket, fx);
            self.flush(fx);
        }
    }

    /// The hub refused the widget's identity: a session it did not issue is forgotten (the
    /// next connection gets a new one); a refused token holds the link until the page gives a
    /// fresh one. The outbox waits either way.
    fn identity_refused(&mut self, e: &ErrorFrame, fx: &mut Vec<Effect>) {
        fx.push(Effect::Warn(e.message.clone()));
        if e.code == ErrorCode::BadSession {
            self.identity.session_refused();
            fx.push(Effect::SaveSession);
        } else if self.identity.token.is_some() {
            self.link.hold(fx);
            if self.identity.token_refused() {
                fx.push(Effect::RenewToken { reason: e.message.clone() });
            }
        }
    }

    /// The socket closed: a 4401 ("get a fresh token") holds the link like an `unauthorized`
    /// error does (the close can come without one); everything else is the link's business.
    fn socket_closed(&mut self, socket: u32, code: u16, fx: &mut Vec<Effect>) {
        let after = self.log.last_seq;
        self.link.socket_closed(socket, code, after, fx);
        if close::advice(code) == close::Advice::FreshToken && self.identity.token.is_some() {
            self.link.hold(fx);
            if self.identity.token_refused() {
                fx.push(Effect::RenewToken {
                    reason: "the hub closed the connection: identity token expired".into(),
                });
            }
        }
    }

    /// The page gave a token: a fresh one for the same user, or a login. Either way the link
    /// connects again with it; a `welcome` for another conversation then starts the log over.
    fn identify(&mut self, token: String, fx: &mut Vec<Effect>) {
        self.identity.set_token(token);
        self.link.reconnect_now(self.log.last_seq, fx);
    }

    /// Logged out: the conversation, its outbox and the session are forgotten on this device,
    /// and a new anonymous one starts.
    fn logout(&mut self, fx: &mut Vec<Effect>) {
        self.identity.forget();
        self.log.start_over(false);
        fx.push(Effect::SaveSession);
        fx.push(Effect::ForgetOutbox);
        self.link.reconnect_now(None, fx);
    }

    /// A long-poll ended: read its history, then poll again (and probe the WebSocket if HTTP
    /// has just come back).
    fn poll_done(&mut self, poll: u32, history: Option<History>, fx: &mut Vec<Effect>) {
        if !self.link.poll_finished(poll) {
            return;
        }
        let Some(history) = history else { return self.link.poll_failed(fx) };
        let recovered = self.link.poll_answered();
        self.log.history(history, self.attention(), fx);
        if self.link.on_http() {
            let after = self.log.last_seq;
            self.link.start_poll(after, fx);
            self.post_next(fx);
            if recovered {
                self.link.probe_now(after, fx);
            }
        }
    }

    /// An HTTP send ended: next message, a resend later, or a refusal to record.
    fn posted(&mut self, id: String, reply: Option<ServerMessage>, fx: &mut Vec<Effect>) {
        self.link.post_finished(&id);
        match reply {
            Some(ServerMessage::Error(e)) if is_identity_refusal(e.code) => {
                // Not the message's fault: it stays pending until the identity is sorted out.
                self.identity_refused(&e, fx);
                fx.push(Effect::StartTimer { timer: Timer::Resend, ms: RESEND_DELAY_MS });
            }
            Some(ServerMessage::Ack(a)) => {
                self.log.acknowledged(&a.id, a.seq, fx);
                self.post_next(fx);
            }
            Some(ServerMessage::Error(mut e)) => {
                // An HTTP answer is about the message just posted, even without an id.
                e.id.get_or_insert(id);
                // A failed message steps aside for the next one; a retryable refusal waits for
                // the resend timer rather than being posted again at once.
                if self.log.refused(&e, fx) {
                    self.post_next(fx);
                }
            }
            _ => fx.push(Effect::StartTimer { timer: Timer::Resend, ms: RESEND_DELAY_MS }),
        }
    }

    fn timer_fired(&mut self, timer: Timer, fx: &mut Vec<Effect>) {
        match timer {
            Timer::Typing => self.log.typing_expired(),
            Timer::Resend => self.flush(fx),
            Timer::Reconnect | Timer::Probe | Timer::Poll | Timer::OpenTimeout => {
                self.link.timer_fired(timer, self.log.last_seq, fx)
            }
        }
    }

    /// One method per event. `after` is the newest `seq` seen, which the link sends on every
    /// (re)connection.
    fn step(&mut self, event: Event, fx: &mut Vec<Effect>) {
        let after = self.log.last_seq;
        match event {
            Event::Start => self.link.connect(after, fx),
            Event::Open => self.open_panel(fx),
            Event::Close => self.close_panel(fx),
            Event::Toggle if self.open => self.close_panel(fx),
            Event::Toggle => self.open_panel(fx),
            Event::ToggleMute => self.toggle_mute(fx),
            Event::PageHidden { hidden } => self.set_page_hidden(hidden, fx),
            Event::Online => self.link.online(after, fx),
            Event::Offline => self.link.offline(fx),
            Event::Wake => self.link.wake(after, fx),
            Event::Send(out) => self.send(out, fx),
            Event::Retry { id } => self.retry(&id, fx),
            Event::SocketOpened { socket } => {
                if self.link.socket_opened(socket) {
                    fx.push(Effect::Authenticate { after });
                }
            }
            Event::SocketClosed { socket, code } => self.socket_closed(socket, code, fx),
            Event::SocketUnavailable { socket } => self.link.socket_unavailable(socket, after, fx),
            Event::Frame { socket, message } => self.frame(socket, message, fx),
            Event::PollDone { poll, history } => self.poll_done(poll, history, fx),
            Event::Posted { id, reply } => self.posted(id, reply, fx),
            Event::TimerFired(timer) => self.timer_fired(timer, fx),
            Event::Identify { token } => self.identify(token, fx),
            Event::Logout => self.logout(fx),
            Event::SessionIssued { session } => {
                if self.identity.issued(session) {
                    fx.push(Effect::SaveSession);
                }
            }
        }
    }
}

/// Whether a refusal is about who the widget is rather than about a message.
fn is_identity_refusal(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unauthorized | ErrorCode::BadSession)
}

/// Applies `event` to `model` and returns what must happen as a result, including the
/// `status` / `unread` notices derived from the change.
pub(crate) fn update(model: &mut Model, event: Event) -> Vec<Effect> {
    let (status, unread) = (model.link.status(), model.log.unread);
    let mut fx = Vec::new();
    model.step(event, &mut fx);
    if model.log.unread != unread {
        fx.push(Effect::Notify(Notice::Unread(model.log.unread)));
    }
    let now = model.link.status();
    if now != status {
        fx.push(Effect::Notify(Notice::Status(now)));
    }
    fx
}

#[cfg(test)]
mod tests;
