//! The log half of the model: the conversation as the visitor sees it — the messages, the
//! outbox of what has not reached the hub yet, the unread count, the typing indicator, and
//! the conversation's position (`last_seq`, acknowledged ids).
//!
//! The rules it keeps: nothing is shown twice (a message is known by its id, however often
//! the hub echoes, acknowledges or replays it); stored messages sit in `seq` order ahead of
//! the ones still pending; the history the page loads with is not news, anything after it is.
//!
//! Unread is a position, not a counter: `read_seq` is the newest `seq` the visitor has seen in
//! an open panel, in any tab. It is kept in storage per session ([`Effect::SaveRead`]) and
//! shared by tabs (`Event::ReadElsewhere`), so the badge counts the bot's and operators' messages
//! after it — the true count on the next page and in every tab, until a panel is opened in
//! any of them. Hub notices, which have no `seq`, are counted in this tab only.
//! It knows nothing about transports: the model decides where the outbox goes.

use crate::prelude::*;

use super::{Effect, Notice, Outgoing, Timer, RESEND_DELAY_MS};
use crate::outbox::{Outbox, OutboxEntry};
use natter_protocol::inbox::ConversationState;
use natter_protocol::{ConversationMessage, ErrorFrame, History, Role, ServerMessage};

/// Retryable refusals of one message in a row after which it is shown as failed.
const REFUSALS_BEFORE_FAILED: u32 = 3;
/// The typing indicator is cleared after this long even if the hub never says "stopped".
const TYPING_TIMEOUT_MS: u32 = 20_000;
/// How many acknowledged ids are remembered for cleaning the shared outbox in storage.
const ACKED_KEPT: usize = 200;

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
    /// An operator's display name, on their replies.
    pub author: Option<String>,
}

/// Whether the visitor sees a message arrive; one they do not see is unread and may chime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Attention {
    /// The panel is open and the tab visible.
    pub watching: bool,
    /// The chime is muted.
    pub muted: bool,
}

/// The conversation state of the model.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    /// The messages, in conversation order; those not yet stored are at the end.
    pub messages: Vec<Message>,
    /// What still has to reach the hub.
    pub outbox: Outbox,
    /// Messages that arrived after what the visitor has read (kept up to date by `recount`).
    pub unread: u32,
    /// The newest `seq` read in an open panel of any tab; `None` until known.
    read_seq: Option<u64>,
    /// Hub notices (no `seq`) that arrived while nobody was looking.
    unread_notices: u32,
    /// The bot or an operator is typing.
    pub typing: bool,
    /// The newest `seq` seen; sent as `after` on every (re)connection.
    pub last_seq: Option<u64>,
    /// Ids this tab saw acknowledged (the most recent ones), so that saving the outbox can
    /// drop them from what other tabs left in storage.
    pub acked: Vec<String>,
    /// A history has been read: the next one is a resume, and what it brings is news.
    history_loaded: bool,
    /// Numbers the log's own entries (system notices), which the hub gives no id.
    next_local_id: u64,
    /// The notice for a gap a resume could not fill, in the page's language.
    gap_notice: String,
    /// Whether a person is online to answer, once the hub has said (`availability`); `None`
    /// before that and while the hub has no operators at all (nothing to show).
    pub available: Option<bool>,
    /// When an operator closed the conversation (RFC 3339); `None` while it is open.
    pub closed: Option<String>,
}

impl Log {
    /// A log showing the outbox a previous page left behind (pending or failed); `read_seq` is
    /// what the conversation has read so far, as storage remembers it.
    pub(super) fn restore(entries: Vec<OutboxEntry>, gap_notice: String, read_seq: Option<u64>) -> Self {
        Log::showing(Outbox::restore(entries), gap_notice, read_seq)
    }

    /// A log of no conversation yet, showing `outbox` (pending or failed).
    fn showing(outbox: Outbox, gap_notice: String, read_seq: Option<u64>) -> Self {
        // (Pushed one by one: a map/collect is more iterator code in the wasm.)
        let mut messages = Vec::new();
        for e in outbox.entries() {
            messages.push(Message {
                id: e.id.clone(),
                role: Role::User,
                text: e.text.clone(),
                time: e.time.clone(),
                seq: None,
                delivery: if e.failed { Delivery::Failed } else { Delivery::Pending },
                author: None,
            });
        }
        Log {
            messages,
            outbox,
            unread: 0,
            read_seq,
            unread_notices: 0,
            typing: false,
            last_seq: None,
            acked: Vec::new(),
            history_loaded: false,
            next_local_id: 0,
            gap_notice,
            available: None,
            closed: None,
        }
    }

    /// Another conversation is shown from now on (a login, a logout, another user): the
    /// messages, the position, what has been read and the unread count start over. With
    /// `keep_outbox`, what the visitor typed and the hub has not stored stays, shown as
    /// pending, and goes out in the new conversation; without it (a logout) it is dropped too.
    pub(super) fn start_over(&mut self, keep_outbox: bool) {
        let outbox = if keep_outbox { core::mem::take(&mut self.outbox) } else { Outbox::default() };
        let gap_notice = core::mem::take(&mut self.gap_notice);
        *self = Log::showing(outbox, gap_notice, None);
    }

    /// What has been read of the conversation shown, as storage remembers it for that
    /// conversation (`None`: nothing recorded). Unlike [`Log::read_elsewhere`] it may move the
    /// position back: it replaces one that belonged to another conversation.
    pub(super) fn read_from(&mut self, read_seq: Option<u64>) {
        self.read_seq = read_seq;
        self.recount();
    }

    /// The visitor has seen everything (a panel is open in a visible tab).
    pub(super) fn mark_read(&mut self, fx: &mut Vec<Effect>) {
        self.unread_notices = 0;
        if let Some(seq) = self.last_seq {
            self.read_up_to(seq, fx);
        }
        self.recount();
    }

    /// The visitor has read up to `seq` here: remembered for the other tabs and pages.
    fn read_up_to(&mut self, seq: u64, fx: &mut Vec<Effect>) {
        if self.read_seq.is_none_or(|r| seq > r) {
            self.read_seq = Some(seq);
            fx.push(Effect::SaveRead(seq));
        }
    }

    /// Another tab has read up to `seq`.
    pub(super) fn read_elsewhere(&mut self, seq: u64) {
        if self.read_seq.is_none_or(|r| seq > r) {
            self.read_seq = Some(seq);
            self.recount();
        }
    }

    /// Brings `unread` in line with what has been read.
    fn recount(&mut self) {
        let read = self.read_seq;
        // Counted in a plain loop: two `filter`s and a `count` were more iterator code.
        let mut after = 0u32;
        for m in &self.messages {
            if matches!(m.role, Role::Bot | Role::Agent) && m.seq.is_some_and(|s| read.is_none_or(|r| s > r))
            {
                after += 1;
            }
        }
        self.unread = self.unread_notices.saturating_add(after);
    }

    /// The hub never said the typing stopped; stop showing it anyway.
    pub(super) fn typing_expired(&mut self) {
        self.typing = false;
    }

    /// The visitor typed `out`: shown as pending and queued in the outbox. Returns `false` for
    /// blank text, which is not a message.
    pub(super) fn write(&mut self, out: &Outgoing, fx: &mut Vec<Effect>) -> bool {
        if out.text.trim().is_empty() {
            return false;
        }
        self.outbox.push(OutboxEntry::from(out));
        let msg = Message {
            id: out.id.clone(),
            role: Role::User,
            text: out.text.clone(),
            time: out.time.clone(),
            seq: None,
            delivery: Delivery::Pending,
            author: None,
        };
        self.messages.push(msg.clone());
        fx.push(Effect::SaveOutbox);
        fx.push(Effect::Notify(Notice::Message(msg.clone())));
        fx.push(Effect::Notify(Notice::Delivery { message: msg, retried: false }));
        true
    }

    /// The visitor asks to retry message `id`: pending again. Returns whether it is still in
    /// the outbox, so there is something to send.
    pub(super) fn retry(&mut self, id: &str, fx: &mut Vec<Effect>) -> bool {
        if !self.outbox.set_failed(id, false) {
            return false;
        }
        self.set_delivery(id, Delivery::Pending, None, fx);
        fx.push(Effect::SaveOutbox);
        true
    }

    /// Moves message `id` to `delivery` (and `seq`, once stored), telling the page when its
    /// state changes: every visitor message goes pending → sent, or pending → failed →
    /// pending (retried) → …, and each step is one [`Notice::Delivery`].
    fn set_delivery(&mut self, id: &str, delivery: Delivery, seq: Option<u64>, fx: &mut Vec<Effect>) {
        let Some(m) = self.messages.iter_mut().find(|m| m.id == id) else { return };
        if seq.is_some() {
            m.seq = seq;
        }
        if m.delivery == delivery {
            return;
        }
        let retried = m.delivery == Delivery::Failed && delivery == Delivery::Pending;
        m.delivery = delivery;
        if m.role == Role::User {
            fx.push(Effect::Notify(Notice::Delivery { message: m.clone(), retried }));
        }
    }

    fn see_seq(&mut self, seq: u64) {
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
    }

    fn local_id(&mut self, prefix: &str) -> String {
        self.next_local_id += 1;
        let mut id = crate::compose::join(&[prefix, "-"]);
        crate::compose::push_decimal(&mut id, self.next_local_id);
        id
    }

    /// Something arrived that the visitor may not have seen: maybe chime.
    fn arrived(&mut self, eyes: Attention, fx: &mut Vec<Effect>) {
        if !eyes.watching && !eyes.muted {
            fx.push(Effect::Chime);
        }
    }

    /// A stored message; `live` unless it belongs to the history the page loaded with.
    fn stored(
        &mut self,
        role: Role,
        m: ConversationMessage,
        live: bool,
        eyes: Attention,
        fx: &mut Vec<Effect>,
    ) {
        self.see_seq(m.seq);
        if role == Role::User {
            self.acknowledge(&m.id, fx);
        }
        if matches!(role, Role::Bot | Role::Agent) && self.typing {
            self.typing = false;
            fx.push(Effect::StopTimer(Timer::Typing));
        }
        if self.messages.iter().any(|x| x.id == m.id) {
            // Already shown (our own message, or a duplicate delivery): only firm it up.
            return self.set_delivery(&m.id, Delivery::Sent, Some(m.seq), fx);
        }
        if role == Role::User && live {
            // The visitor wrote again: a closed conversation is open again.
            self.closed = None;
        }
        let msg = Message {
            id: m.id,
            role,
            text: m.message,
            time: m.timestamp,
            seq: Some(m.seq),
            delivery: Delivery::Sent,
            author: if role == Role::Agent { m.author } else { None },
        };
        let at = self
            .messages
            .iter()
            .position(|x| x.seq.is_none_or(|s| s > m.seq) && x.role != Role::System)
            .unwrap_or(self.messages.len());
        self.messages.insert(at, msg.clone());
        if live {
            if role != Role::User {
                self.arrived(eyes, fx);
            }
            fx.push(Effect::Notify(Notice::Message(msg)));
        }
    }

    /// `id` is stored by the hub: out of the outbox, and remembered so that saving the outbox
    /// also drops it where another tab of the session left it in storage.
    fn acknowledge(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if !self.acked.iter().any(|a| a == id) {
            if self.acked.len() >= ACKED_KEPT {
                self.acked.remove(0);
            }
            self.acked.push(id.to_string());
        }
        if self.outbox.acknowledge(id) {
            fx.push(Effect::SaveOutbox);
        }
    }

    /// The hub's `ack` of our message `id`, stored as `seq`.
    pub(super) fn acknowledged(&mut self, id: &str, seq: u64, fx: &mut Vec<Effect>) {
        self.acknowledge(id, fx);
        self.set_delivery(id, Delivery::Sent, Some(seq), fx);
    }

    /// Handles a refusal of one of our messages; returns whether it is now marked failed.
    pub(super) fn refused(&mut self, e: &ErrorFrame, fx: &mut Vec<Effect>) -> bool {
        let Some(id) = e.id.as_deref() else { return false };
        if !self.outbox.contains(id) {
            return false;
        }
        if e.code.is_retryable() && self.outbox.refused(id) < REFUSALS_BEFORE_FAILED {
            let delay = e.retry_after_ms.map_or(RESEND_DELAY_MS, |ms| ms.min(60_000) as u32);
            fx.push(Effect::StartTimer { timer: Timer::Resend, ms: delay });
            return false;
        }
        self.outbox.set_failed(id, true);
        self.set_delivery(id, Delivery::Failed, None, fx);
        fx.push(Effect::SaveOutbox);
        true
    }

    /// The hub will not take anything from this page: every message still waiting is shown
    /// as failed (the visitor can retry it), rather than "Sending…" for ever.
    pub(super) fn fail_waiting(&mut self, fx: &mut Vec<Effect>) {
        // (Pushed one by one: a filter/map/collect chain is more iterator code in the wasm.)
        let mut waiting = Vec::new();
        for e in self.outbox.entries() {
            if !e.failed {
                waiting.push(e.id.clone());
            }
        }
        if waiting.is_empty() {
            return;
        }
        for id in &waiting {
            self.outbox.set_failed(id, true);
            self.set_delivery(id, Delivery::Failed, None, fx);
        }
        fx.push(Effect::SaveOutbox);
    }

    fn system(&mut self, text: String, time: String, live: bool, fx: &mut Vec<Effect>) {
        let msg = Message {
            id: self.local_id("system"),
            role: Role::System,
            text,
            time,
            seq: None,
            delivery: Delivery::Sent,
            author: None,
        };
        self.messages.push(msg.clone());
        if live {
            fx.push(Effect::Notify(Notice::Message(msg)));
        }
    }

    /// Reads a hub frame about the support conversation; frames about rooms and frames the log
    /// has no use for are ignored.
    pub(super) fn receive(&mut self, msg: ServerMessage, live: bool, eyes: Attention, fx: &mut Vec<Effect>) {
        match msg {
            ServerMessage::User(m) => self.stored(Role::User, m, live, eyes, fx),
            ServerMessage::Bot(m) => self.stored(Role::Bot, m, live, eyes, fx),
            ServerMessage::Agent(m) => self.stored(Role::Agent, m, live, eyes, fx),
            ServerMessage::System(n) if n.room.is_none() => {
                self.system(n.message, n.timestamp, live, fx);
                if live && !eyes.watching {
                    self.unread_notices = self.unread_notices.saturating_add(1);
                    self.arrived(eyes, fx);
                }
            }
            ServerMessage::Typing(t) if t.room.is_none() && matches!(t.role, Role::Bot | Role::Agent) => {
                self.typing = t.active;
                fx.push(if t.active {
                    Effect::StartTimer { timer: Timer::Typing, ms: TYPING_TIMEOUT_MS }
                } else {
                    Effect::StopTimer(Timer::Typing)
                });
            }
            ServerMessage::Availability(a) => self.available = a.online,
            ServerMessage::ConversationStatus(c) => {
                self.closed = (c.status == ConversationState::Closed).then_some(c.timestamp);
            }
            ServerMessage::Ack(a) if a.room.is_none() => self.acknowledged(&a.id, a.seq, fx),
            ServerMessage::History(h) if h.room.is_none() => self.history(h, eyes, fx),
            ServerMessage::Error(e) => {
                self.refused(&e, fx);
            }
            _ => {}
        }
        self.recount();
    }

    /// Reads a `history` (from a socket or a long-poll).
    pub(super) fn history(&mut self, h: History, eyes: Attention, fx: &mut Vec<Effect>) {
        // The first history of the page is the conversation so far; later ones (resume after a
        // drop) carry messages the visitor has not seen yet.
        let live = self.history_loaded;
        self.history_loaded = true;
        for m in h.messages {
            self.receive(m, live, eyes, fx);
        }
        if !h.complete && live {
            self.system(self.gap_notice.clone(), String::new(), false, fx);
        }
        self.see_seq(h.last_seq);
        if self.read_seq.is_none() {
            // Nothing was ever recorded as read for this session (storage cleared, or a
            // conversation from before the widget kept it): what was there before this page is
            // not news.
            self.read_up_to(h.last_seq, fx);
        }
        self.recount();
    }
}

#[cfg(test)]
mod tests;
