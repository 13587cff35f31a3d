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
//! - [`liveness`]: what the live socket owes (a pong, acks) and by when, so that a link that is
//!   dead but not closed is noticed.
//! - [`identity`]: who the widget is to the hub — the issued session, the identity token, the
//!   renewal of a refused token — and so which conversation is shown.
//! - `rooms` (feature `rooms`): the named rooms joined on the same connection — their
//!   messages, members, typing, unread and outbox; joined again, resuming, whenever the link
//!   comes back. Without the feature (the support-only build) the model has no rooms and no
//!   room events, effects or timers exist.
//! - the model itself: the panel (open, muted, tab hidden), and the few rules that need both
//!   halves (what to send over which transport, what the visitor sees arrive).

use crate::prelude::*;

pub(crate) mod identity;
pub(crate) mod link;
pub(crate) mod liveness;
pub(crate) mod log;
#[cfg(feature = "rooms")]
pub(crate) mod rooms;

use crate::outbox::OutboxEntry;
use identity::Identity;
use link::{Heard, Link, Status};
use liveness::Liveness;
use log::{Attention, Log, Message};
use natter_protocol::{close, ErrorCode, ErrorFrame, History, ServerMessage};
#[cfg(feature = "rooms")]
use rooms::{RelayKind, RoomNotice, Rooms};

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
    /// Re-sends the rooms' waiting messages and joins after a retryable refusal.
    #[cfg(feature = "rooms")]
    RoomResend,
    /// Refills the rooms' pacing budgets and sends what waited for them.
    #[cfg(feature = "rooms")]
    RoomPace,
    /// Clears room typing indicators nobody renewed.
    #[cfg(feature = "rooms")]
    RoomTyping,
    /// Restarts the rooms' failed long-polls (HTTP fallback).
    #[cfg(feature = "rooms")]
    RoomPoll,
    /// The live socket has been quiet for a while: ping the hub.
    Quiet,
    /// An awaited pong or ack is overdue: the socket is dead.
    ReplyDeadline,
    /// The long-poll has outlived any answer the hub would give: it is dead.
    PollDeadline,
    /// The HTTP send has had no answer for too long: give up on it and send again.
    PostDeadline,
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
    /// The page context as it was when the message was written: a JSON object's text
    /// (`{"page":"/checkout","title":"Checkout"}`), or empty for none.
    pub context: String,
}

impl From<&OutboxEntry> for Outgoing {
    fn from(e: &OutboxEntry) -> Self {
        Outgoing { id: e.id.clone(), text: e.text.clone(), time: e.time.clone(), context: e.context.clone() }
    }
}

/// A message just written, as it waits in an outbox (the support conversation's or a room's,
/// made in one place): not failed, never refused.
impl From<&Outgoing> for OutboxEntry {
    fn from(out: &Outgoing) -> Self {
        OutboxEntry {
            id: out.id.clone(),
            text: out.text.clone(),
            time: out.time.clone(),
            context: out.context.clone(),
            failed: false,
            refusals: 0,
        }
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
    /// The long-poll was answered with the hub's refusal (an `error` frame it could read).
    PollRefused { poll: u32, error: ErrorFrame },
    /// The HTTP send of message `id` finished: the hub's answer, or `None` on network failure.
    Posted { id: String, reply: Option<ServerMessage> },
    /// A timer fired.
    TimerFired(Timer),
    /// Another tab has read `conversation` up to `seq` (its panel was open), as the shared
    /// read record in storage now says.
    ReadElsewhere { conversation: u64, seq: u64 },
    /// The page gave an identity token: after a login (`identify()`), or a fresh one after the
    /// hub refused the last (`tokenExpired`), or before the last expires.
    Identify {
        /// The token.
        token: String,
        /// The `sub` it says it is for, read without verifying (the hub verifies): `None` when
        /// it cannot be read.
        sub: Option<String>,
    },
    /// The visitor logged out: forget the conversation on this device, leave every room, start
    /// a new one.
    Logout,
    /// Another tab of the site forgot the conversation (a logout, or another user signing in
    /// there): this tab forgets it too, leaves every room and starts a new one, leaving storage
    /// to that tab.
    ForgottenElsewhere,
    /// The hub issued a session over HTTP (the `X-Natter-Session` header of an answer).
    SessionIssued { session: String },
    /// The page did something with a room.
    #[cfg(feature = "rooms")]
    Room(RoomCall),
    /// Another member's `cursor_position` / `chain_update` (`data`: JSON text) from `socket`.
    #[cfg(feature = "rooms")]
    Relayed { socket: Option<u32>, relay: rooms::Relayed },
    /// The rooms' long-poll finished: the history of the room it names (none: it timed out),
    /// or `None` on failure.
    #[cfg(feature = "rooms")]
    RoomPollDone { poll: u32, history: Option<History> },
    /// The HTTP send of room message `id` finished: the hub's answer, or `None`.
    #[cfg(feature = "rooms")]
    RoomPosted { room: String, id: String, reply: Option<ServerMessage> },
    /// Another tab of the site was issued a session while this one was issued its own (two tabs
    /// opened at once on a first visit, or connecting anew after a logout): read from storage
    /// when this tab saves its own, or heard in a storage event. The smaller id wins in every
    /// tab, whichever stored last, so the tabs settle on one session and show one conversation;
    /// a larger one is ignored here (that tab takes this one's).
    SessionElsewhere { session: String },
}

/// What the page does with rooms (`natter.joinRoom(…)`, a `Room`'s methods, the panel).
#[cfg(feature = "rooms")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RoomCall {
    /// Join `room` as `name`; `saved`: what an earlier page left in its outbox (storage).
    Join { room: String, name: Option<String>, saved: Vec<crate::outbox::OutboxEntry> },
    /// Leave `room`.
    Leave { room: String },
    /// Write a message in `room`.
    Send { room: String, out: Outgoing },
    /// Retry the failed message `id` of `room`.
    Retry { room: String, id: String },
    /// Started or stopped typing in `room`.
    Typing { room: String, active: bool },
    /// A cursor or an update for `room` (`data`: JSON text).
    Relay { room: String, kind: RelayKind, data: String },
    /// Everything in `room` has been seen.
    Read { room: String },
    /// The room being looked at (the panel), or none.
    Watch { room: Option<String> },
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
    /// One of this tab's visitor messages changed delivery state: pending when typed or
    /// retried (`retried`), sent once stored (with its `seq`), failed when refused.
    Delivery { message: Message, retried: bool },
    /// The hub refused this page (its origin is not allowed): said once, on the console.
    Refused(ErrorFrame),
    /// The unread count changed.
    Unread(u32),
    /// The connection status changed.
    Status(Status),
    /// Something happened in a room.
    #[cfg(feature = "rooms")]
    Room { room: String, notice: RoomNotice },
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
    /// Send a `ping` with this nonce on the open WebSocket.
    Ping { nonce: u32 },
    /// Start long-poll number `poll` after `after`.
    Poll { poll: u32, after: Option<u64> },
    /// Abort a running long-poll.
    AbortPoll,
    /// Send a visitor message with HTTP POST.
    Post(Outgoing),
    /// Abort the HTTP send in flight.
    AbortPost,
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
    /// Persist (and share with the session's other tabs) that everything up to this `seq` has
    /// been read.
    SaveRead(u64),
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
    /// Remove the outbox and the read record from storage, and tell the site's other tabs
    /// (a logout: they forget the conversation too, [`Event::ForgottenElsewhere`]).
    ForgetConversation,
    /// The hub refused the identity token: ask the page for a fresh one (`tokenExpired`),
    /// saying why.
    RenewToken { reason: String },
    /// Tell the developer, on the console, why the hub refused the widget's identity.
    Warn(String),
    /// Write a room frame on the open WebSocket.
    #[cfg(feature = "rooms")]
    SendRoom(rooms::RoomOut),
    /// A room request over the HTTP fallback.
    #[cfg(feature = "rooms")]
    RoomHttp(rooms::RoomHttp),
    /// Persist the outbox of `room` (remove it from storage when the room is not joined).
    #[cfg(feature = "rooms")]
    SaveRoomOutbox { room: String },
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
    /// What the log says when a resume could not fill a gap, in the page's language.
    pub gap_notice: String,
    /// What storage says has been read, and of which conversation.
    pub read: Option<ReadMark>,
    /// The session the hub issued on an earlier visit.
    pub session: Option<String>,
    /// Option `identityToken`.
    pub token: Option<String>,
}

/// What has been read, as the shared record in storage says: the newest `seq` of
/// `conversation` read in an open panel of any tab or page.
///
/// There is one record per site, like the session: the conversation it is about is named so
/// that a record of another one (a refused session, another user, a logout) is never taken for
/// this one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadMark {
    /// [`Identity::conversation`] of the conversation read.
    pub conversation: u64,
    /// The newest `seq` read.
    pub seq: u64,
}

impl ReadMark {
    /// The record as storage keeps it: `"<seq> <conversation>"`.
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        crate::compose::push_decimal(&mut text, self.seq);
        text.push(' ');
        crate::compose::push_decimal(&mut text, self.conversation);
        text
    }

    /// Reads [`ReadMark::text`] back; `None` for anything else (storage is the page's to change).
    pub(crate) fn parse(text: &str) -> Option<ReadMark> {
        let (seq, conversation) = crate::text::cut(text, b' ');
        let conversation = conversation?;
        Some(ReadMark { conversation: conversation.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The `seq` `mark` says has been read of `conversation`, if it is about that one.
    fn of(mark: Option<&ReadMark>, conversation: Option<u64>) -> Option<u64> {
        mark.filter(|m| Some(m.conversation) == conversation).map(|m| m.seq)
    }
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
    /// What the live socket owes, and by when.
    liveness: Liveness,
    /// Who the widget is to the hub.
    pub identity: Identity,
    /// The rooms joined on this connection.
    #[cfg(feature = "rooms")]
    pub rooms: Rooms,
    /// The read record storage holds (one per site, written by whichever tab read last).
    read_mark: Option<ReadMark>,
    /// The conversation the log's read position belongs to (see [`Identity::conversation`]).
    read_for: Option<u64>,
}

impl Model {
    /// A fresh model; [`Event::Start`] makes it connect.
    pub(crate) fn new(init: Init) -> Self {
        let identity = Identity::new(init.session, init.token);
        let read_for = identity.conversation();
        let read_seq = ReadMark::of(init.read.as_ref(), read_for);
        Model {
            open: init.open,
            muted: init.muted,
            page_hidden: init.hidden,
            link: Link::new(init.seed, init.online),
            log: Log::restore(init.outbox, init.gap_notice, read_seq),
            liveness: Liveness::default(),
            identity,
            read_mark: init.read,
            read_for,
            #[cfg(feature = "rooms")]
            rooms: Rooms::default(),
        }
    }

    /// Whether the visitor would see a message arrive now.
    fn attention(&self) -> Attention {
        Attention { watching: self.open && !self.page_hidden, muted: self.muted }
    }

    /// Sends `out` on the live socket; its ack is awaited from now.
    fn send_socket(&mut self, out: Outgoing, fx: &mut Vec<Effect>) {
        self.liveness.sent(&out.id, fx);
        fx.push(Effect::SendSocket(out));
    }

    /// Sends what is sendable over whatever works now.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        if self.link.is_live() {
            for e in self.log.outbox.sendable() {
                self.liveness.sent(&e.id, fx);
                fx.push(Effect::SendSocket(e.into()));
            }
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
            fx.push(Effect::StartTimer { timer: Timer::PostDeadline, ms: link::POST_DEADLINE_MS });
        }
    }

    fn open_panel(&mut self, fx: &mut Vec<Effect>) {
        if !self.open {
            self.open = true;
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
            self.wake(fx);
        }
    }

    /// Something says the network may have changed under the page (online, shown, visible,
    /// resumed): reconnect now if closed, and if a socket looks live, make it prove it.
    fn wake(&mut self, fx: &mut Vec<Effect>) {
        self.link.wake(self.log.last_seq, fx);
        if self.link.is_live() {
            self.liveness.probe(fx);
        }
    }

    /// The visitor typed a message: shown, queued, and sent over whatever works now.
    fn send(&mut self, out: Outgoing, fx: &mut Vec<Effect>) {
        if !self.log.write(&out, fx) {
            return;
        }
        if self.link.is_refused() {
            // Nothing will take it: failed at once (with retry), not "Sending…" for ever.
            return self.log.fail_waiting(fx);
        }
        if self.link.is_live() {
            self.send_socket(out, fx);
        } else {
            self.post_next(fx);
        }
    }

    /// The visitor retries a failed message.
    fn retry(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if !self.log.retry(id, fx) {
            return;
        }
        if self.link.is_refused() {
            // The site may have been allowed since: one fresh attempt; the outbox goes out
            // when the link is back, or fails again if the hub still says no.
            return self.link.try_again(self.log.last_seq, fx);
        }
        if self.link.is_live() {
            if let Some(out) = self.log.outbox.entries().iter().find(|e| e.id == id).map(Outgoing::from) {
                self.send_socket(out, fx);
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
        self.liveness.heard(&message, fx);
        // The hub has accepted who the widget is once it welcomes it (or, for a hub that
        // predates `auth`, sends the history): only then does the socket carry the conversation,
        // and only then is it watched for liveness (until then the open timeout bounds it).
        let accepted = matches!(message, ServerMessage::Welcome(_) | ServerMessage::History(_));
        match message {
            ServerMessage::Welcome(w) => {
                #[cfg(feature = "rooms")]
                if !w.member.is_empty() {
                    self.rooms.me = Some(w.member.clone());
                }
                #[cfg(feature = "rooms")]
                {
                    self.rooms.budgets = w.budgets.unwrap_or_default();
                }
                let welcomed = self.identity.welcomed(&w);
                if welcomed.new_session {
                    fx.push(Effect::SaveSession);
                }
                if welcomed.other_conversation {
                    self.start_over(true);
                }
            }
            ServerMessage::Error(e) if e.id.is_none() && e.room.is_none() && is_identity_refusal(e.code) => {
                self.identity_refused(&e, fx);
            }
            message => {
                // Frames about rooms are the rooms'; the rest (without rooms: every frame) is
                // the support conversation's.
                #[cfg(feature = "rooms")]
                let message = self.rooms.receive(message, fx);
                #[cfg(not(feature = "rooms"))]
                let message = Some(message);
                if let Some(message) = message {
                    self.log.receive(message, true, self.attention(), fx);
                }
            }
        }
        let outbox = &self.log.outbox;
        self.liveness.settle(|id| outbox.contains(id), fx);
        if let (Heard::First(socket), true) = (heard, accepted) {
            self.link.socket_live(socket, fx);
            self.liveness.start(fx);
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
            // The answer to a renewal sent on the open socket: the hub could not verify the
            // fresh token, and the connection carries on with the one it was welcomed with
            // (closed with 4401 when that expires, which holds the link then), so only the
            // page is asked for a good one. Any other refusal holds the link at once.
            let answers_renewal = self.link.is_live() && core::mem::take(&mut self.identity.renewal_sent);
            if !answers_renewal {
                self.link.hold(fx);
            }
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

    /// The page gave a token.
    ///
    /// For the user the hub last welcomed (`sub` says so), it is a renewal: on a live socket it
    /// goes out in an `auth` there (the hub renews the connection, no reconnection); otherwise
    /// the link connects again with it and resumes after the last `seq` seen.
    ///
    /// For anyone else — a login, another user, a token whose `sub` cannot be read — the screen
    /// shows another conversation, and its last `seq` means nothing in theirs: resuming after
    /// it would skip the start of their conversation. The log starts over at once (what the
    /// visitor typed stays in the outbox) and the link connects again from the beginning.
    /// When one signed-in user gives way to another, the first user's unsent messages are
    /// dropped instead (each told `failed`): they must never go out under someone else's name.
    ///
    /// On a page whose origin the hub refuses, the token is kept for the visitor's retry: who
    /// the visitor is does not change where the page is.
    fn identify(&mut self, token: String, sub: Option<String>, fx: &mut Vec<Effect>) {
        let renewal = sub.is_some() && self.identity.user.as_ref().map(|(id, _)| id) == sub.as_ref();
        self.identity.set_token(token);
        if !renewal {
            if self.identity.user.is_some() {
                self.forget_conversation(fx);
            } else {
                self.start_over(true);
            }
        } else if self.link.is_live() {
            self.identity.renewal_sent = true;
            fx.push(Effect::Authenticate { after: self.log.last_seq });
            // A socket that looks live may be dead (the renewal often comes after a sleep):
            // make it answer, so that a dead one is replaced, with the fresh token, at once.
            self.liveness.probe(fx);
            return;
        }
        self.link.reconnect_now(self.log.last_seq, fx);
    }

    /// Logged out: the conversation, its outbox and the session are forgotten on this device,
    /// every room is left (on the socket still open, before it closes), and a new anonymous
    /// one starts. What was still waiting to be stored is dropped with the
    /// outbox, and told `failed` first: every delivery the page heard start ends, none stays
    /// pending for ever.
    fn logout(&mut self, fx: &mut Vec<Effect>) {
        self.identity.forget();
        self.forget_conversation(fx);
        fx.push(Effect::SaveSession);
        self.link.reconnect_now(None, fx);
    }

    /// The conversation shown is given up on this device (a logout, or one signed-in user giving
    /// way to another): what it was still waiting to store is told `failed` and dropped with its
    /// outbox and read record, never sent as whoever comes next, and every room is left.
    fn forget_conversation(&mut self, fx: &mut Vec<Effect>) {
        self.drop_conversation(fx);
        fx.push(Effect::ForgetConversation);
    }

    /// The conversation shown is given up in this tab only (see [`Model::forget_conversation`]).
    fn drop_conversation(&mut self, fx: &mut Vec<Effect>) {
        self.read_mark = None;
        self.log.fail_waiting(fx);
        #[cfg(feature = "rooms")]
        {
            self.rooms.leave_all(fx);
        }
        self.start_over(false);
    }

    /// Another tab forgot the conversation: so does this one, which then connects as a new
    /// visitor. Storage is that tab's: it has cleared the conversation there and may already
    /// have stored its new session, which this tab then takes ([`Event::SessionElsewhere`]),
    /// so the tabs share one conversation again. What this tab was still waiting to send is
    /// told `failed` and never sent as whoever comes next.
    fn forgotten_elsewhere(&mut self, fx: &mut Vec<Effect>) {
        self.identity.forget();
        self.drop_conversation(fx);
        self.link.reconnect_now(None, fx);
    }

    /// The log shows another conversation from now on (see [`Log::start_over`]); what has been
    /// read is taken again from the read record of whichever conversation that is.
    fn start_over(&mut self, keep_outbox: bool) {
        self.log.start_over(keep_outbox);
        self.read_for = None;
    }

    /// Another tab wrote the read record: taken when it is about the conversation shown, kept in
    /// case it becomes the one shown (a tab that learns its user's conversation later).
    fn read_elsewhere(&mut self, conversation: u64, seq: u64) {
        let mark = ReadMark { conversation, seq };
        if Some(conversation) == self.read_for {
            self.log.read_elsewhere(seq);
        }
        self.read_mark = Some(mark);
    }

    /// The conversation shown may have changed (a `welcome` for a new session or a user, a
    /// session issued over HTTP, a logout): what has been read is then that conversation's.
    fn follow_conversation(&mut self) {
        let now = self.identity.conversation();
        if now != self.read_for {
            self.read_for = now;
            self.log.read_from(ReadMark::of(self.read_mark.as_ref(), now));
        }
    }

    /// The conversation the log's read position belongs to; [`Effect::SaveRead`] records it
    /// under this one (nothing is recorded while it is unknown).
    pub(crate) fn read_conversation(&self) -> Option<u64> {
        self.read_for
    }

    /// A long-poll ended: read its history, then poll again (and probe the WebSocket if HTTP
    /// has just come back).
    fn poll_done(&mut self, poll: u32, history: Option<History>, fx: &mut Vec<Effect>) {
        if !self.link.poll_finished(poll, fx) {
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

    /// A long-poll was answered with a refusal: the page's origin is not allowed (the end of
    /// the road until the visitor retries); a refusal of who the widget is, read as the same
    /// refusal on a socket (a forgotten session, or a token to renew while the link holds);
    /// or a passing refusal (rate limit, a hub busy), which is retried like a failure.
    fn poll_refused(&mut self, poll: u32, error: ErrorFrame, fx: &mut Vec<Effect>) {
        if !self.link.poll_finished(poll, fx) {
            return;
        }
        if error.code == ErrorCode::ForbiddenOrigin {
            return self.refused(error, fx);
        }
        if is_identity_refusal(error.code) {
            self.identity_refused(&error, fx);
        }
        if !self.link.is_held() {
            self.link.poll_failed(fx);
        }
    }

    /// The hub refused this page: the link stops, what waits in the outbox is shown failed,
    /// and the page is told why, once.
    fn refused(&mut self, error: ErrorFrame, fx: &mut Vec<Effect>) {
        if self.link.refuse(fx) {
            self.log.fail_waiting(fx);
            fx.push(Effect::Notify(Notice::Refused(error)));
        }
    }

    /// An HTTP send ended: next message, a resend later, or a refusal to record.
    fn posted(&mut self, id: String, reply: Option<ServerMessage>, fx: &mut Vec<Effect>) {
        if self.link.post_finished(&id) {
            fx.push(Effect::StopTimer(Timer::PostDeadline));
        }
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
            Some(ServerMessage::Error(e)) if e.code == ErrorCode::ForbiddenOrigin => self.refused(e, fx),
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

    /// A room call of the page.
    #[cfg(feature = "rooms")]
    fn room(&mut self, call: RoomCall, fx: &mut Vec<Effect>) {
        let rooms = &mut self.rooms;
        match call {
            RoomCall::Join { room, name, saved } => {
                rooms.join(room, name, saved, fx);
            }
            RoomCall::Leave { room } => {
                rooms.leave(&room, fx);
            }
            RoomCall::Send { room, out } => {
                rooms.send(&room, out, fx);
            }
            RoomCall::Retry { room, id } => {
                rooms.retry(&room, &id, fx);
            }
            RoomCall::Typing { room, active } => {
                rooms.typing(&room, active, fx);
            }
            RoomCall::Relay { room, kind, data } => {
                rooms.relay(&room, kind, data, fx);
            }
            RoomCall::Read { room } => rooms.mark_read(&room, fx),
            RoomCall::Watch { room } => rooms.watch(room, fx),
        }
    }

    fn timer_fired(&mut self, timer: Timer, fx: &mut Vec<Effect>) {
        match timer {
            #[cfg(feature = "rooms")]
            Timer::RoomResend => {
                self.rooms.resend(fx);
            }
            #[cfg(feature = "rooms")]
            Timer::RoomPace => self.rooms.pace_tick(),
            #[cfg(feature = "rooms")]
            Timer::RoomTyping => {
                self.rooms.typing_expired(fx);
            }
            #[cfg(feature = "rooms")]
            Timer::RoomPoll => {
                self.rooms.repoll(fx);
            }
            Timer::Typing => self.log.typing_expired(),
            Timer::Resend => self.flush(fx),
            Timer::Quiet => self.liveness.probe(fx),
            Timer::ReplyDeadline => {
                if self.liveness.deadline_passed() {
                    self.liveness.stop(fx);
                    self.link.socket_dead(self.log.last_seq, fx);
                }
            }
            Timer::PostDeadline => {
                if self.link.post_abandoned() {
                    fx.push(Effect::AbortPost);
                    fx.push(Effect::StartTimer { timer: Timer::Resend, ms: RESEND_DELAY_MS });
                }
            }
            Timer::Reconnect | Timer::Probe | Timer::Poll | Timer::OpenTimeout | Timer::PollDeadline => {
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
            Event::Online => {
                self.link.online(after, fx);
                if self.link.is_live() {
                    self.liveness.probe(fx);
                }
            }
            Event::Offline => self.link.offline(fx),
            Event::Wake => self.wake(fx),
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
            Event::PollRefused { poll, error } => self.poll_refused(poll, error, fx),
            Event::Posted { id, reply } => self.posted(id, reply, fx),
            Event::TimerFired(timer) => self.timer_fired(timer, fx),
            Event::ReadElsewhere { conversation, seq } => self.read_elsewhere(conversation, seq),
            Event::Identify { token, sub } => self.identify(token, sub, fx),
            Event::Logout => self.logout(fx),
            Event::ForgottenElsewhere => self.forgotten_elsewhere(fx),
            Event::SessionIssued { session } => {
                if self.identity.issued(session) {
                    fx.push(Effect::SaveSession);
                }
            }
            #[cfg(feature = "rooms")]
            Event::Room(call) => self.room(call, fx),
            #[cfg(feature = "rooms")]
            Event::RoomPollDone { poll, history } => {
                self.rooms.poll_done(poll, history, fx);
            }
            #[cfg(feature = "rooms")]
            Event::RoomPosted { room, id, reply } => {
                self.rooms.posted(&room, &id, reply, fx);
            }
            #[cfg(feature = "rooms")]
            Event::Relayed { socket, relay } => {
                if self.link.heard(socket) != Heard::Stale {
                    self.rooms.relayed(&relay.room, relay.kind, relay.from, relay.data, fx);
                }
            }
            Event::SessionElsewhere { session } => {
                // An anonymous tab takes the other tab's session when it is the smaller and
                // shows its conversation from the start; what it typed meanwhile stays in the
                // outbox and goes there.
                let smaller = self.identity.session.as_deref().is_some_and(|mine| session.as_str() < mine);
                if smaller && self.identity.issued(session) {
                    self.start_over(true);
                    self.link.reconnect_now(None, fx);
                }
            }
        }
        if !self.link.is_live() {
            self.liveness.stop(fx);
        }
    }
}

/// Whether a refusal is about who the widget is rather than about a message.
fn is_identity_refusal(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unauthorized | ErrorCode::BadSession)
}

/// The one console error a refused page logs: whose origin was refused, by which hub, and the
/// hub flag that would allow it (`page_origin` is `location.origin`, `hub` the hub's URL).
///
/// A page opened from a file (`file://`, or `null` in some browsers) or in a sandboxed frame
/// has an opaque origin: the browser sends `Origin: null`, which no `--allowed-origin` entry can
/// name (the hub refuses `null` and `file://` as values), so that page is told how to get an
/// origin instead.
pub(crate) fn refusal_advice(page_origin: &str, hub: &str) -> String {
    // (Plain comparisons: a substring search would bring its searcher into the wasm, ~5 KiB
    // gzip.)
    let opaque = page_origin == "null" || page_origin.ends_with("://");
    if opaque {
        return crate::compose::join(&[
            "natter: the chat hub at ",
            hub,
            " does not allow this page: opened from a file (or in a sandboxed frame), it has no \
             origin --allowed-origin can name. Serve it from a web server (http://localhost \
             works), or leave --allowed-origin out on a development hub.",
        ]);
    }
    crate::compose::join(&[
        "natter: the chat hub at ",
        hub,
        " does not allow pages from ",
        page_origin,
        ", so the chat is not available on this site. To allow it, start the hub with \
         --allowed-origin ",
        page_origin,
        " (or add it to NATTER_ALLOWED_ORIGINS).",
    ])
}

/// Applies `event` to `model` and returns what must happen as a result, including the
/// `status` / `unread` notices derived from the change.
pub(crate) fn update(model: &mut Model, event: Event) -> Vec<Effect> {
    let (status, unread) = (model.link.status(), model.log.unread);
    #[cfg(feature = "rooms")]
    let transport = model.link.transport();
    let mut fx = Vec::new();
    model.step(event, &mut fx);
    // Rooms ride on whatever carries the support conversation: joined again (resuming) whenever
    // a socket goes live, long-polled while HTTP carries it, waiting while nothing does.
    #[cfg(feature = "rooms")]
    if model.link.transport() != transport {
        match model.link.transport() {
            link::Transport::WebSocket => model.rooms.link_up(&mut fx),
            link::Transport::Http => model.rooms.http_up(&mut fx),
            link::Transport::None => model.rooms.link_down(&mut fx),
        }
    }
    // Room frames go out within the hub's budgets (some wait for them).
    #[cfg(feature = "rooms")]
    model.rooms.pace(&mut fx);
    model.follow_conversation();
    if model.attention().watching {
        // A panel open in a visible tab: whatever is in it now has been read.
        model.log.mark_read(&mut fx);
    }
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

#[cfg(all(test, feature = "rooms"))]
mod room_tests;

#[cfg(all(test, feature = "rooms"))]
mod pacing_tests;
