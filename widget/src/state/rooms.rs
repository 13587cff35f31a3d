//! The rooms half of the model: the named rooms this tab has joined on the widget's one
//! connection — for each, its messages (in `seq` order, de-duplicated by id), the members
//! present, who is typing, the unread count, an outbox of messages not yet stored, and the
//! calls made before the hub confirmed the join.
//!
//! The rules it keeps, whatever the transport does underneath:
//! - **Joined means confirmed.** A room is `joining` until the hub answers the `join` with
//!   `room_info`. Until then `chat` waits in the room's outbox, and `typing` and `chain_update`
//!   calls wait in order (the latest `cursor_position` only: a stale cursor is noise).
//! - **Rejoin without a gap or a duplicate.** When the link drops every room becomes
//!   `rejoining`; when it is back each one is joined again with `after` = the newest `seq` it
//!   has seen, so the hub replays exactly what was missed, and the outbox is re-sent with the
//!   same ids (the hub acknowledges a re-send it already stored rather than storing it twice).
//!   Messages are known by id, so a replayed or echoed one is never shown twice.
//! - **The HTTP fallback carries messages.** While the link is on HTTP, the rooms are
//!   long-polled together, in one request (a browser holds six connections to a host over
//!   HTTP/1.1: one poll a room left none for sending from the fifth room on), and each room's
//!   messages are posted one at a time (in typing order); members, typing,
//!   cursors and updates are the WebSocket's (they are not stored, so there is nothing to poll):
//!   typing and updates wait for it, like calls before a join.
//! - **What is written survives a reload.** A room's outbox is kept in storage (shared by the
//!   site's tabs, like the support chat's); when a later page joins the room again, what was
//!   left there shows as the visitor's and goes out once the join is confirmed.
//! - **One unanswered join a room.** The hub answers a `join` with `room_info` or an error
//!   naming the room, in order; while that answer is due nothing else about the room is sent. A
//!   room left meanwhile is left once the answer says it was joined; joined again meanwhile (under
//!   another name too), it takes that answer over and ends joined as the page asked last.
//! - **Within the hub's budgets.** Joins, messages and relays go out at the session's message
//!   rate and the connection's frame budget (`welcome`'s `budgets`): they wait rather than be
//!   refused; what is refused anyway (`rate_limited`) is retried after the wait asked, never
//!   made `refused` or `failed` for it.
//! - **The first history is not news.** What the hub replays when a room is first joined is the
//!   room so far; messages after it (live, or replayed on a rejoin) count as unread unless the
//!   room is being watched, and never the visitor's own.
//!
//! It knows nothing about sockets, JSON or the DOM: it reads decoded hub frames and says what to
//! write ([`RoomOut`]) and what to tell the page ([`RoomNotice`]) through the model's
//! [`Effect`]s (pushed straight into the model's list: an effect type of their own, converted
//! afterwards, cost a conversion and a second drop glue in the wasm).

use crate::prelude::*;

use crate::outbox::{Outbox, OutboxEntry};
use crate::state::log::Delivery;
use crate::state::{Effect, Notice, Outgoing, Timer};
use natter_protocol::{
    is_room_id, Budgets, ErrorCode, ErrorFrame, History, Member, RoomInfo, RoomMessage, ServerMessage,
    FRAME_OVERHEAD, JOIN_COST,
};

/// Retryable refusals of one room message in a row after which it is shown as failed.
const REFUSALS_BEFORE_FAILED: u32 = 3;
/// Delay before re-sending a room message the hub refused with a retryable error and no
/// `retryAfterMs`.
const RESEND_DELAY_MS: u32 = 2_000;
/// A member's typing indicator is cleared this long after their last `typing` frame (a sender
/// renews it while the person types; a closed tab never says "stopped").
pub(crate) const TYPING_TIMEOUT_MS: u32 = 6_000;
/// How many `chain_update` calls of a room wait (for the join, or for the hub's budgets); older
/// ones beyond it are dropped (and said so with an `error` notice each) rather than growing
/// memory without bound.
pub(crate) const UPDATES_KEPT: usize = 500;
/// What the room says when a waiting update is dropped (written out, not made at run time; a
/// test checks that the number is [`UPDATES_KEPT`]).
const UPDATES_DROPPED: &str = "more than 500 updates waited to be sent; the oldest was dropped";
/// How often the pacing budgets refill while frames wait or they are not full, in ms.
const PACE_TICK_MS: u32 = 100;
/// The share of the hub's budgets the rooms pace themselves to: the support chat, pings and
/// the site's other tabs (sharing the session) spend the same ones.
const PACE_SHARE: f64 = 0.9;
/// How many messages a room keeps in memory; the oldest go first (the hub keeps the rest).
const MESSAGES_KEPT: usize = 1_000;
/// How many ids of a room's stored messages are remembered for cleaning its outbox in storage,
/// which the site's other tabs share.
const DONE_KEPT: usize = 100;

/// How long to wait before trying again after the retryable refusal `e`: what the hub asks
/// (at most a minute), else [`RESEND_DELAY_MS`].
fn retry_delay(e: &ErrorFrame) -> u32 {
    e.retry_after_ms.map_or(RESEND_DELAY_MS, |ms| ms.min(60_000) as u32)
}

/// Which relayed collaboration payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayKind {
    /// `cursor_position`: where a member's pointer is; only the latest matters.
    Cursor,
    /// `chain_update`: an edit of shared state; every one matters, in order.
    Update,
}

/// A frame to write for a room, on whatever carries the connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RoomOut {
    /// `join`, resuming after `after`.
    Join { room: String, name: Option<String>, after: Option<u64> },
    /// `leave`.
    Leave { room: String },
    /// `chat`.
    Chat { room: String, out: Outgoing },
    /// `typing` in a room.
    Typing { room: String, active: bool },
    /// `cursor_position` / `chain_update`; `data` is JSON text.
    Relay { room: String, kind: RelayKind, data: String },
}

/// An HTTP request for a room (the link is on the HTTP fallback).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RoomHttp {
    /// Start long-poll number `poll` of `rooms`, each after its newest `seq` (none: its recent
    /// history), in this order (the hub answers the first with news).
    Poll { rooms: Vec<(String, Option<u64>)>, poll: u32 },
    /// Abort the rooms' long-poll.
    StopPoll,
    /// POST a message to `room` as `name`.
    Post { room: String, out: Outgoing, name: Option<String> },
}

/// A room's state as the page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomStatus {
    /// `join` sent (or waiting for the link), not yet confirmed.
    Joining,
    /// The hub confirmed the join; calls go out at once.
    Joined,
    /// The link is on the HTTP fallback: messages go both ways; members, typing, cursors and
    /// updates wait for the WebSocket.
    Http,
    /// The link dropped; the room is joined again when it is back.
    Rejoining,
    /// The hub refused the join for good (see the `error` notice): a bad id or name, no access,
    /// the connection's room cap; nothing is retried. Being asked to wait is not a refusal.
    Refused,
    /// Left by the page.
    Left,
}

impl RoomStatus {
    /// The name the JS API reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Joining => "joining",
            RoomStatus::Joined => "joined",
            RoomStatus::Http => "http",
            RoomStatus::Rejoining => "rejoining",
            RoomStatus::Refused => "refused",
            RoomStatus::Left => "left",
        }
    }
}

/// One message of a room.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoomLine {
    /// Unique id (client-made for the visitor's own).
    pub id: String,
    /// Position in the room once stored.
    pub seq: Option<u64>,
    /// The text, rendered as text.
    pub text: String,
    /// RFC 3339 time (the hub's once stored, the client's while pending).
    pub time: String,
    /// Who wrote it (for a pending own message: the visitor as they joined).
    pub from: Member,
    /// Written by this visitor (this tab or another of theirs).
    pub mine: bool,
    /// Delivery state.
    pub delivery: Delivery,
}

/// Something the page hears about one room.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RoomNotice {
    /// A message was added (live, a resumed one, or the visitor's own, pending).
    Message(RoomLine),
    /// The delivery state of the visitor's message `id` changed.
    Delivery { id: String, delivery: Delivery, seq: Option<u64> },
    /// A member joined (`true`) or left.
    Presence { member: Member, joined: bool },
    /// The member list was replaced (the hub's `room_info`, on every join and rejoin).
    Members,
    /// A history was read (the room so far after a join, what was missed after a rejoin or
    /// a long-poll): `messages` may have changed without a `Message` notice.
    History,
    /// A member started or stopped typing.
    Typing { member: Member, active: bool },
    /// A member's `cursor_position` or `chain_update`; `data` is JSON text.
    Relay { kind: RelayKind, from: Member, data: String },
    /// The room's status changed.
    Status(RoomStatus),
    /// The unread count changed.
    Unread(u32),
    /// The hub refused something in this room, or could not replay messages `gap` (`from`..=`to`).
    Error { code: ErrorCode, message: String },
}

/// `list.remove(i)`, with one panic location for the whole room model: each `Vec::remove` call
/// site carries its own (16 bytes of the wasm that compress badly, and the code passing them).
/// `i` is always in range here: every caller has just found it, or checked the list.
fn remove_at<T>(list: &mut Vec<T>, i: usize) -> T {
    list.remove(i)
}

/// A relayed `cursor_position` / `chain_update` from the hub (read in `web::rooms`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relayed {
    /// The room.
    pub room: String,
    /// Which one.
    pub kind: RelayKind,
    /// Who sent it.
    pub from: Member,
    /// Its `data`, as JSON text.
    pub data: String,
}

/// One joined room.
#[derive(Debug, Clone)]
pub(crate) struct Room {
    /// The room id.
    pub id: String,
    /// The name the visitor joined with (the hub uses a signed-in user's verified name instead).
    pub name: Option<String>,
    /// The room's display name, from `room_info`.
    pub title: Option<String>,
    /// Where the room is.
    pub status: RoomStatus,
    /// Messages in room order; the visitor's pending ones at the end.
    pub messages: Vec<RoomLine>,
    /// Members present (as of the last `room_info`, `user_joined` and `user_left`).
    pub members: Vec<Member>,
    /// Ids of members the page was told joined, whom a rejoin's `room_info` no longer listed
    /// (after a hub restart, those not back yet): their `user_joined` when they come back is
    /// not a second join for the page (the list changes, `Members`), their `user_left` still
    /// tells it they left.
    away: Vec<String>,
    /// The true number of members (the list holds at most the hub's first 100).
    pub member_count: usize,
    /// Members typing now, by member id.
    pub typing: Vec<Member>,
    /// Messages of others that arrived while the room was not watched.
    pub unread: u32,
    /// The newest `seq` seen; `after` of the next join.
    pub last_seq: Option<u64>,
    /// The visitor as the hub lists them here (a signed-in user's verified name, not the one
    /// the page gave), once a `room_info` has said so: the author of their own messages.
    me_as: Option<Member>,
    /// The visitor's messages the hub has not stored yet.
    outbox: Outbox,
    /// Ids this tab has seen stored (or dropped), newest last: removed from the outbox in
    /// storage even where another tab had left them.
    pub done: Vec<String>,
    /// Calls waiting for the join, in call order.
    /// (Kept as the frames they make: the typing state, at most one, and the updates.)
    queued: Vec<RoomOut>,
    /// The latest cursor waiting for the join.
    cursor: Option<String>,
    /// A history has been read: what later ones bring is news.
    history_loaded: bool,
    /// The id of the message whose HTTP send is in flight (one at a time keeps the order).
    posting: Option<String>,
    /// A `join` is on the wire and the hub has not answered it (`room_info` or an error): the
    /// next answer about the room is that join's, so nothing else about it is sent meanwhile.
    answer_due: bool,
    /// Retryable refusals of the join in a row: the delay before the next doubles.
    join_refusals: u32,
    /// The name the join on the wire (or the last one answered) was made with.
    sent_name: Option<String>,
}

impl Room {
    fn new(id: String, name: Option<String>) -> Self {
        Room {
            id,
            name,
            title: None,
            status: RoomStatus::Joining,
            messages: Vec::new(),
            members: Vec::new(),
            away: Vec::new(),
            member_count: 0,
            typing: Vec::new(),
            unread: 0,
            last_seq: None,
            me_as: None,
            outbox: Outbox::default(),
            done: Vec::new(),
            queued: Vec::new(),
            cursor: None,
            history_loaded: false,
            posting: None,
            answer_due: false,
            join_refusals: 0,
            sent_name: None,
        }
    }

    /// Sends the join (resuming after the newest `seq` seen); its answer is due.
    fn send_join(&mut self, fx: &mut Vec<Effect>) {
        self.answer_due = true;
        self.sent_name = self.name.clone();
        fx.push(Effect::SendRoom(self.join_frame()));
    }

    /// The room rides on the HTTP fallback: its waiting messages posted (the rooms' poll, which
    /// [`Rooms::poll`] starts, reads it).
    fn go_http(&mut self, fx: &mut Vec<Effect>) {
        self.set_status(RoomStatus::Http, fx);
        self.post_next(fx);
    }

    /// Posts the oldest waiting message, if none is in flight.
    fn post_next(&mut self, fx: &mut Vec<Effect>) {
        if self.posting.is_some() || self.status != RoomStatus::Http {
            return;
        }
        if let Some(e) = self.outbox.first_sendable() {
            self.posting = Some(e.id.clone());
            let (room, name) = (self.id.clone(), self.name.clone());
            fx.push(Effect::RoomHttp(RoomHttp::Post { room, out: e.into(), name }));
        }
    }

    fn note(&self, notice: RoomNotice, fx: &mut Vec<Effect>) {
        fx.push(Effect::Notify(Notice::Room { room: self.id.clone(), notice }));
    }

    fn set_status(&mut self, status: RoomStatus, fx: &mut Vec<Effect>) {
        if self.status != status {
            self.status = status;
            self.note(RoomNotice::Status(status), fx);
        }
    }

    fn see_seq(&mut self, seq: u64) {
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
    }

    fn join_frame(&self) -> RoomOut {
        RoomOut::Join { room: self.id.clone(), name: self.name.clone(), after: self.last_seq }
    }

    fn chat_frame(&self, out: Outgoing) -> RoomOut {
        RoomOut::Chat { room: self.id.clone(), out }
    }

    /// Everything the outbox holds that is not failed, in typing order.
    fn send_outbox(&self, fx: &mut Vec<Effect>) {
        for e in self.outbox.sendable() {
            fx.push(Effect::SendRoom(self.chat_frame(e.into())));
        }
    }

    /// The join is confirmed: what waited goes out, in call order.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        self.send_outbox(fx);
        // Taken from the front one by one (at most a typing state and the bounded updates): the
        // `remove` the room already has, rather than one more consuming iterator in the wasm.
        while !self.queued.is_empty() {
            fx.push(Effect::SendRoom(remove_at(&mut self.queued, 0)));
        }
        if let Some(data) = self.cursor.take() {
            fx.push(Effect::SendRoom(RoomOut::Relay {
                room: self.id.clone(),
                kind: RelayKind::Cursor,
                data,
            }));
        }
    }

    fn set_delivery(&mut self, id: &str, delivery: Delivery, seq: Option<u64>, fx: &mut Vec<Effect>) {
        let Some(m) = self.messages.iter_mut().find(|m| m.id == id) else { return };
        let seq = seq.or(m.seq);
        if m.delivery == delivery && m.seq == seq {
            return;
        }
        m.delivery = delivery;
        m.seq = seq;
        self.note(RoomNotice::Delivery { id: id.to_string(), delivery, seq }, fx);
    }

    /// What waits in the outbox, for persisting.
    pub(crate) fn outbox_entries(&self) -> &[OutboxEntry] {
        self.outbox.entries()
    }

    fn save_outbox(&self, fx: &mut Vec<Effect>) {
        fx.push(Effect::SaveRoomOutbox { room: self.id.clone() });
    }

    /// Takes `id` out of the outbox for good (stored, or dropped); returns whether it was there.
    fn take_out(&mut self, id: &str, fx: &mut Vec<Effect>) -> bool {
        if !self.outbox.acknowledge(id) {
            return false;
        }
        if self.done.len() >= DONE_KEPT {
            remove_at(&mut self.done, 0);
        }
        self.done.push(id.to_string());
        self.save_outbox(fx);
        true
    }

    /// What a previous page of the site left in this room's outbox: shown as the visitor's
    /// (pending, or failed as it was left), sent once the join is confirmed.
    fn restore(&mut self, saved: Vec<OutboxEntry>, me: Option<&str>, fx: &mut Vec<Effect>) {
        for e in saved {
            if self.outbox.contains(&e.id) || self.messages.iter().any(|m| m.id == e.id) {
                continue;
            }
            self.hold(e, me, fx);
        }
    }

    /// Keeps `e` in the outbox and shows it as the visitor's own message: pending, or failed
    /// as it was left.
    fn hold(&mut self, e: OutboxEntry, me: Option<&str>, fx: &mut Vec<Effect>) {
        let line = RoomLine {
            id: e.id.clone(),
            seq: None,
            text: e.text.clone(),
            time: e.time.clone(),
            from: self.author(me),
            mine: true,
            delivery: if e.failed { Delivery::Failed } else { Delivery::Pending },
        };
        self.outbox.push(e);
        self.messages.push(line.clone());
        self.note(RoomNotice::Message(line), fx);
    }

    fn acknowledged(&mut self, id: &str, seq: u64, fx: &mut Vec<Effect>) {
        self.take_out(id, fx);
        self.see_seq(seq);
        self.set_delivery(id, Delivery::Sent, Some(seq), fx);
    }

    /// The author of the visitor's own messages: as the hub lists them, else as they joined.
    fn author(&self, me: Option<&str>) -> Member {
        self.me_as.clone().unwrap_or_else(|| Member {
            id: me.unwrap_or_default().to_string(),
            name: self.name.clone(),
            verified: false,
        })
    }

    /// A stored `chat`; `live` unless it is part of the room as first loaded.
    fn stored(&mut self, m: RoomMessage, me: Option<&str>, live: bool, watching: bool, fx: &mut Vec<Effect>) {
        self.see_seq(m.seq);
        let mine_by_outbox = self.take_out(&m.id, fx);
        if let Some(x) = self.messages.iter_mut().find(|x| x.id == m.id) {
            // Already shown: our own pending message, or a duplicate delivery. Firm it up.
            x.from = m.from;
            x.time = m.timestamp;
            self.set_delivery(&m.id, Delivery::Sent, Some(m.seq), fx);
            return;
        }
        let mine = mine_by_outbox || me.is_some_and(|me| me == m.from.id);
        let line = RoomLine {
            id: m.id,
            seq: Some(m.seq),
            text: m.message,
            time: m.timestamp,
            from: m.from,
            mine,
            delivery: Delivery::Sent,
        };
        // Stored messages sit in seq order, ahead of the ones still pending.
        let at =
            self.messages.iter().position(|x| x.seq.is_none_or(|s| s > m.seq)).unwrap_or(self.messages.len());
        self.messages.insert(at, line.clone());
        if self.messages.len() > MESSAGES_KEPT {
            remove_at(&mut self.messages, 0);
        }
        if !mine {
            // A message ends its author's typing: what they typed is here. (Their client may
            // never say "stopped"; without this the indicator stayed up until it expired.)
            self.stop_typing(&line.from.id, fx);
        }
        if live {
            if !mine && !watching {
                self.unread = self.unread.saturating_add(1);
                self.note(RoomNotice::Unread(self.unread), fx);
            }
            self.note(RoomNotice::Message(line), fx);
        }
    }

    fn info(&mut self, info: RoomInfo, me: Option<&str>, fx: &mut Vec<Effect>) {
        self.title = info.name;
        // How the hub shows the visitor here: their own messages, pending ones included, are
        // shown as the others see them.
        if let Some(m) = info.members.iter().find(|m| Some(m.id.as_str()) == me) {
            self.me_as = Some(m.clone());
            // (A plain `if`: `iter_mut().filter(..)` instantiated a `Filter` iterator.)
            for line in &mut self.messages {
                if line.mine && line.seq.is_none() {
                    line.from = m.clone();
                }
            }
        }
        self.member_count = info.member_count.max(info.members.len());
        // Whoever is typing and no longer here has stopped (in place: a list of the gone would
        // be one more collecting loop in the wasm).
        let mut i = 0;
        while let Some(t) = self.typing.get(i) {
            if info.members.iter().any(|m| m.id == t.id) {
                i += 1;
            } else {
                let member = remove_at(&mut self.typing, i);
                self.note(RoomNotice::Typing { member, active: false }, fx);
            }
        }
        // The members present now replace the list (after a rejoin, the one from before the
        // drop); the page hears the change as one `members` notice, not a join per member.
        for m in &self.members {
            if !info.members.iter().any(|n| n.id == m.id) && !self.away.contains(&m.id) {
                self.away.push(m.id.clone());
            }
        }
        self.away.retain(|id| !info.members.iter().any(|n| n.id == *id));
        self.members = info.members;
        self.note(RoomNotice::Members, fx);
        self.set_status(RoomStatus::Joined, fx);
        self.flush(fx);
    }

    fn presence(&mut self, member: Member, joined: bool, fx: &mut Vec<Effect>) {
        let known = self.members.iter().position(|m| m.id == member.id);
        let was_away = self.away.iter().position(|id| *id == member.id).map(|i| remove_at(&mut self.away, i));
        match (joined, known) {
            (true, None) => {
                self.members.push(member.clone());
                self.member_count = self.member_count.max(self.members.len() - 1) + 1;
                if was_away.is_some() {
                    // Back after a hub restart: listed again, not a second join.
                    return self.note(RoomNotice::Members, fx);
                }
            }
            (true, Some(_)) => return,
            (false, Some(i)) => {
                remove_at(&mut self.members, i);
                self.member_count = self.member_count.saturating_sub(1).max(self.members.len());
                self.stop_typing(&member.id, fx);
            }
            // Someone beyond the listed members left.
            (false, None) => self.member_count = self.member_count.saturating_sub(1).max(self.members.len()),
        }
        self.note(RoomNotice::Presence { member, joined }, fx);
    }

    /// Nobody is typing any more (as far as this tab can know).
    fn clear_typing(&mut self, fx: &mut Vec<Effect>) {
        // From the front, as with the queued calls in `flush`.
        while !self.typing.is_empty() {
            let member = remove_at(&mut self.typing, 0);
            self.note(RoomNotice::Typing { member, active: false }, fx);
        }
    }

    fn stop_typing(&mut self, member_id: &str, fx: &mut Vec<Effect>) {
        if let Some(i) = self.typing.iter().position(|t| t.id == member_id) {
            let member = remove_at(&mut self.typing, i);
            self.note(RoomNotice::Typing { member, active: false }, fx);
        }
    }

    fn typing_notice(&mut self, member: Member, active: bool, fx: &mut Vec<Effect>) {
        if !active {
            return self.stop_typing(&member.id, fx);
        }
        fx.push(Effect::StartTimer { timer: Timer::RoomTyping, ms: TYPING_TIMEOUT_MS });
        if !self.typing.iter().any(|t| t.id == member.id) {
            self.typing.push(member.clone());
            self.note(RoomNotice::Typing { member, active: true }, fx);
        }
    }

    fn history(&mut self, h: History, me: Option<&str>, watching: bool, fx: &mut Vec<Effect>) {
        let live = self.history_loaded;
        self.history_loaded = true;
        let empty = h.messages.is_empty();
        for m in h.messages {
            if let ServerMessage::Chat(m) = m {
                self.stored(m, me, live, watching, fx);
            }
        }
        if let (false, Some(gap)) = (h.complete, h.gap) {
            let mut message = String::from("messages ");
            crate::compose::push_decimal(&mut message, gap.from);
            message.push_str(" to ");
            crate::compose::push_decimal(&mut message, gap.to);
            message.push_str(" of this room could not be loaded");
            self.note(RoomNotice::Error { code: ErrorCode::Unavailable, message }, fx);
        }
        self.see_seq(h.last_seq);
        if !live || !empty {
            self.note(RoomNotice::History, fx);
        }
    }

    /// The hub refused the join for good: the room is `refused` and says why; what waited to be
    /// said there fails (the visitor may retry it by hand if the room is joined again), and the
    /// typing, updates and cursor that waited are dropped.
    fn refuse(&mut self, code: ErrorCode, message: String, fx: &mut Vec<Effect>) {
        self.set_status(RoomStatus::Refused, fx);
        self.fail_waiting(fx);
        self.note(RoomNotice::Error { code, message }, fx);
    }

    /// Fails every message still waiting to be sent and drops the calls waiting: nothing more
    /// can be said in this room (refused, or deleted by the site).
    fn fail_waiting(&mut self, fx: &mut Vec<Effect>) {
        // Each failed entry leaves the sendable ones, so the first sendable is the next.
        let mut failed = false;
        while let Some(id) = self.outbox.first_sendable().map(|e| e.id.clone()) {
            self.outbox.set_failed(&id, true);
            self.set_delivery(&id, Delivery::Failed, None, fx);
            failed = true;
        }
        if failed {
            self.save_outbox(fx);
        }
        self.queued.clear();
        self.cursor = None;
    }

    /// A refusal of the visitor's message `id`; retryable ones are re-sent later, a few times.
    ///
    /// A `rate_limited` one is re-sent after the wait the hub asks, however many times: it is
    /// only asked to wait, like the support chat's messages.
    fn refused(&mut self, id: &str, e: &ErrorFrame, fx: &mut Vec<Effect>) {
        if e.code == ErrorCode::RateLimited
            || e.code.is_retryable() && self.outbox.refused(id) < REFUSALS_BEFORE_FAILED
        {
            let ms = retry_delay(e);
            fx.push(Effect::StartTimer { timer: Timer::RoomResend, ms });
            return;
        }
        self.outbox.set_failed(id, true);
        self.save_outbox(fx);
        self.set_delivery(id, Delivery::Failed, None, fx);
        self.note(RoomNotice::Error { code: e.code, message: e.message.clone() }, fx);
    }
}

/// Every room this tab has joined, and who the visitor is in them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rooms {
    /// The rooms, in the order they were joined.
    pub list: Vec<Room>,
    /// The visitor's public member id (from `welcome`), to tell their own messages and presence
    /// from others'.
    pub me: Option<String>,
    /// The room being looked at (the collaboration panel open on it, the tab visible): what
    /// arrives there is not unread.
    pub watching: Option<String>,
    /// The link carries room frames now (a live socket whose hub has welcomed us).
    live: bool,
    /// The link is on the HTTP fallback, which carries the rooms' messages.
    http: bool,
    /// Numbers the rooms' long-polls, so a late answer of an aborted one is recognised.
    next_poll: u32,
    /// The running long-poll of the rooms on HTTP: its number and the rooms it reads.
    polling: Option<(u32, Vec<String>)>,
    /// The room the last poll answered about: the next poll lists it last, so that a busy room
    /// cannot keep the others' news waiting (the hub answers the first room with news).
    answered: Option<String>,
    /// What the hub holds this connection to (its `welcome` says; its defaults until then).
    pub budgets: Budgets,
    /// Rooms the page left while their join was unanswered (as they were left: the name the
    /// join was made with): the answer is theirs (a `room_info` is followed by a `leave`), not
    /// a later join's.
    left_due: Vec<Room>,
    /// Frames waiting for the budgets, in the order they were made (see [`Rooms::pace`]).
    paced: Vec<RoomOut>,
    /// Messages (joins, room messages) spent of the session's burst, not yet refilled.
    messages_spent: f64,
    /// Bytes spent of the connection's frame budget burst, not yet refilled.
    bytes_spent: f64,
    /// The pacing timer runs.
    ticking: bool,
}

impl Rooms {
    /// The room `id`, if joined.
    pub(crate) fn get(&self, id: &str) -> Option<&Room> {
        self.list.iter().find(|r| r.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Room> {
        self.list.iter_mut().find(|r| r.id == id)
    }

    fn is_watched(&self, id: &str) -> bool {
        self.watching.as_deref() == Some(id)
    }

    /// The page joins `id` as `name`. Joining a room already joined changes nothing but the
    /// name used from the next join on (returns `false`); a room refused or left is joined
    /// afresh. An id the hub would refuse is refused here, without asking it (the room is
    /// listed as `refused`, with an `error` notice naming the id).
    ///
    /// `saved` is what an earlier page of the site left in this room's outbox (storage): a room
    /// joined anew shows it as the visitor's and sends it once joined, like the support chat's
    /// outbox after a reload.
    pub(crate) fn join(
        &mut self,
        id: String,
        name: Option<String>,
        saved: Vec<OutboxEntry>,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let bad = !is_room_id(&id);
        let at = match self.list.iter().position(|r| r.id == id) {
            // (A room with a bad id is there only as refused: it stays so.)
            Some(_) if bad => return false,
            Some(at) => {
                let Some(room) = self.list.get_mut(at) else { return false };
                if name.is_some() {
                    room.name = name;
                }
                if room.status != RoomStatus::Refused {
                    return false;
                }
                room.set_status(RoomStatus::Joining, fx);
                at
            }
            None => {
                // Left while its join was unanswered: that join's answer is this room's now
                // (a different name is put right once it comes: leave, join again).
                let revived =
                    self.left_due.iter().position(|r| r.id == id).map(|i| remove_at(&mut self.left_due, i));
                let mut room = Room::new(id, name);
                if let Some(ghost) = revived {
                    room.answer_due = true;
                    room.sent_name = ghost.sent_name;
                }
                if bad {
                    // (Not the protocol error's own text: its `{:?}` of a character would bring
                    // Rust's debug escaping into the wasm for one message.)
                    let message = crate::compose::join(&[
                        "bad room id \"",
                        &room.id,
                        "\": 1 to 64 letters, digits, '-', '_', '.' or ':'",
                    ]);
                    room.refuse(ErrorCode::InvalidMessage, message, fx);
                    self.list.push(room);
                    return false;
                }
                room.restore(saved, self.me.as_deref(), fx);
                self.list.push(room);
                self.list.len() - 1
            }
        };
        if let Some(room) = self.list.get_mut(at) {
            if self.live {
                if !room.answer_due {
                    room.send_join(fx);
                }
            } else if self.http {
                room.go_http(fx);
                self.poll(fx);
            }
        }
        true
    }

    /// The page leaves `id`: told to the hub if the link is up (a dropped link has left it
    /// already), and forgotten with whatever was still waiting, in storage too.
    pub(crate) fn leave(&mut self, id: &str, fx: &mut Vec<Effect>) -> bool {
        let Some(at) = self.list.iter().position(|r| r.id == id) else { return false };
        let mut room = remove_at(&mut self.list, at);
        if !room.outbox.entries().is_empty() {
            room.save_outbox(fx);
        }
        let unsent =
            self.paced.iter().position(|o| matches!(o, RoomOut::Join { room: r, .. } if *r == room.id));
        if let Some(i) = unsent {
            // Its join never went out: there is nothing to leave.
            remove_at(&mut self.paced, i);
        } else if room.answer_due {
            // The hub answers the join first; a `leave` now could cross it (see `left_due`).
        } else if self.live && room.status != RoomStatus::Refused {
            fx.push(Effect::SendRoom(RoomOut::Leave { room: room.id.clone() }));
        }
        room.posting = None;
        room.set_status(RoomStatus::Left, fx);
        // Polled without it from now on.
        self.poll(fx);
        if self.is_watched(id) {
            self.watching = None;
        }
        if room.answer_due && unsent.is_none() {
            self.left_due.push(room);
        }
        true
    }

    /// The visitor writes `out` in room `id`: shown as pending at once, sent now if the room is
    /// joined, else when it is. Returns `false` (nothing happens) for blank text, an unknown
    /// or refused room, or an id already used.
    pub(crate) fn send(&mut self, id: &str, out: Outgoing, fx: &mut Vec<Effect>) -> bool {
        let me = self.me.clone();
        let Some(room) = self.get_mut(id) else { return false };
        if room.status == RoomStatus::Refused
            || out.text.trim().is_empty()
            || room.outbox.contains(&out.id)
            || room.messages.iter().any(|m| m.id == out.id)
        {
            return false;
        }
        // (The outbox is saved when the effects run, after this step: it holds the entry then.)
        room.save_outbox(fx);
        // (A room message has no page context: `out.context` is empty.)
        room.hold(OutboxEntry::from(&out), me.as_deref(), fx);
        match room.status {
            RoomStatus::Joined => fx.push(Effect::SendRoom(room.chat_frame(out))),
            RoomStatus::Http => room.post_next(fx),
            _ => {}
        }
        true
    }

    /// The visitor asks to retry their failed message `id` in room `room` (not in a room the
    /// hub refused: it would wait there for ever).
    pub(crate) fn retry(&mut self, room: &str, id: &str, fx: &mut Vec<Effect>) -> bool {
        let Some(r) = self.get_mut(room) else { return false };
        if r.status == RoomStatus::Refused || !r.outbox.set_failed(id, false) {
            return false;
        }
        r.save_outbox(fx);
        r.set_delivery(id, Delivery::Pending, None, fx);
        if r.status == RoomStatus::Joined {
            if let Some(e) = r.outbox.entries().iter().find(|e| e.id == id) {
                fx.push(Effect::SendRoom(r.chat_frame(e.into())));
            }
        }
        r.post_next(fx);
        true
    }

    /// The visitor starts or stops typing in `id`. Before the join is confirmed only the
    /// latest state waits.
    pub(crate) fn typing(&mut self, id: &str, active: bool, fx: &mut Vec<Effect>) -> bool {
        let Some(room) = self.get_mut(id) else { return false };
        if room.status == RoomStatus::Joined {
            fx.push(Effect::SendRoom(RoomOut::Typing { room: room.id.clone(), active }));
        } else {
            // At most one typing state waits (each replaces the last).
            if let Some(i) = room.queued.iter().position(|q| matches!(q, RoomOut::Typing { .. })) {
                remove_at(&mut room.queued, i);
            }
            room.queued.push(RoomOut::Typing { room: room.id.clone(), active });
        }
        true
    }

    /// A `cursor_position` or `chain_update` from the page (`data`: JSON text). Before the join
    /// is confirmed, updates wait in order and only the latest cursor waits.
    pub(crate) fn relay(&mut self, id: &str, kind: RelayKind, data: String, fx: &mut Vec<Effect>) -> bool {
        let Some(room) = self.get_mut(id) else { return false };
        if room.status == RoomStatus::Joined {
            fx.push(Effect::SendRoom(RoomOut::Relay { room: room.id.clone(), kind, data }));
            return true;
        }
        match kind {
            RelayKind::Cursor => room.cursor = Some(data),
            RelayKind::Update => {
                // (The only relays that wait are updates: the cursor waits apart.)
                let updates = room.queued.iter().filter(|q| matches!(q, RoomOut::Relay { .. })).count();
                if updates >= UPDATES_KEPT {
                    if let Some(i) = room.queued.iter().position(|q| matches!(q, RoomOut::Relay { .. })) {
                        remove_at(&mut room.queued, i);
                    }
                    let message = UPDATES_DROPPED.to_string();
                    room.note(RoomNotice::Error { code: ErrorCode::TooLarge, message }, fx);
                }
                room.queued.push(RoomOut::Relay { room: room.id.clone(), kind, data });
            }
        }
        true
    }

    /// Another person uses the widget from now on (a logout, a login as someone else, either
    /// in another tab of the site): what the previous one typed and the hub has not stored
    /// fails, rather than going out under the next one's name, and every room is left (each
    /// told `left`; the hub tells the other members), so that the next person is never shown,
    /// nor present, in the previous one's rooms under their name.
    ///
    /// The caller replaces the connection right after (the next person's is another): closing
    /// the socket is what leaves the rooms at the hub, which tells the other members at once,
    /// so no `leave` frame is made (one would wait for the pacing and reach the next socket).
    pub(crate) fn leave_all(&mut self, fx: &mut Vec<Effect>) {
        self.fail_waiting(fx);
        // The connection's memberships and whatever waited to go out on it end with it.
        self.live = false;
        self.paced.clear();
        self.left_due.clear();
        while let Some(id) = self.list.first().map(|r| r.id.clone()) {
            self.leave(&id, fx);
        }
    }

    /// What the visitor typed and the hub has not stored fails (see [`Rooms::leave_all`]).
    fn fail_waiting(&mut self, fx: &mut Vec<Effect>) {
        for room in &mut self.list {
            // Each entry taken out leaves the outbox, so the first is the next.
            while let Some(id) = room.outbox.entries().first().map(|e| e.id.clone()) {
                room.take_out(&id, fx);
                room.set_delivery(&id, Delivery::Failed, None, fx);
            }
            room.posting = None;
        }
    }

    /// The visitor has seen everything in `id`.
    pub(crate) fn mark_read(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if let Some(room) = self.get_mut(id) {
            if room.unread != 0 {
                room.unread = 0;
                room.note(RoomNotice::Unread(0), fx);
            }
        }
    }

    /// The room the visitor is looking at (or none); it is read at once.
    pub(crate) fn watch(&mut self, id: Option<String>, fx: &mut Vec<Effect>) {
        if let Some(id) = &id {
            self.mark_read(id, fx);
        }
        self.watching = id;
    }

    /// The link carries the connection again (the hub welcomed a new socket): every room not
    /// refused is joined again, resuming after its newest `seq`.
    pub(crate) fn link_up(&mut self, fx: &mut Vec<Effect>) {
        self.http_down(fx);
        self.live = true;
        // A new connection: its frame budget is full.
        self.bytes_spent = 0.0;
        for room in &mut self.list {
            if matches!(room.status, RoomStatus::Joining | RoomStatus::Rejoining) {
                room.send_join(fx);
            }
        }
    }

    /// The link is on the HTTP fallback and it answers: every room not refused is long-polled
    /// (resuming after its newest `seq`) and its waiting messages are posted.
    pub(crate) fn http_up(&mut self, fx: &mut Vec<Effect>) {
        if self.http {
            return;
        }
        self.link_down(fx);
        self.http = true;
        for room in &mut self.list {
            if matches!(room.status, RoomStatus::Joining | RoomStatus::Rejoining) {
                room.go_http(fx);
            }
        }
        self.poll(fx);
    }

    /// Starts the rooms' long-poll when rooms are on HTTP and no poll reads exactly them (after
    /// stopping one that reads others): one request for every room, each after its newest
    /// `seq`, in the order joined from the one after the last answered.
    fn poll(&mut self, fx: &mut Vec<Effect>) {
        let mut rooms = Vec::new();
        let mut ids = Vec::new();
        let after = self.answered.as_ref().and_then(|id| self.list.iter().position(|r| r.id == *id));
        let start = after.map_or(0, |i| i + 1);
        for k in 0..self.list.len() {
            let room = &self.list[(start + k) % self.list.len()];
            if room.status == RoomStatus::Http {
                rooms.push((room.id.clone(), room.last_seq));
                ids.push(room.id.clone());
            }
        }
        if self.polling.as_ref().is_some_and(|(_, polled)| *polled == ids) {
            return;
        }
        if self.polling.take().is_some() {
            fx.push(Effect::RoomHttp(RoomHttp::StopPoll));
        }
        if !ids.is_empty() {
            self.next_poll += 1;
            self.polling = Some((self.next_poll, ids));
            fx.push(Effect::RoomHttp(RoomHttp::Poll { rooms, poll: self.next_poll }));
        }
    }

    /// The HTTP fallback stopped carrying the rooms (it failed, or the WebSocket is back).
    fn http_down(&mut self, fx: &mut Vec<Effect>) {
        if !self.http {
            return;
        }
        self.http = false;
        if self.polling.take().is_some() {
            fx.push(Effect::RoomHttp(RoomHttp::StopPoll));
        }
        for room in &mut self.list {
            room.posting = None;
            if room.status == RoomStatus::Http {
                room.set_status(RoomStatus::Rejoining, fx);
            }
        }
    }

    /// The rooms' long-poll `poll` answered (`None`: it failed): the history of the room it
    /// names is read (none: the poll timed out with nothing new), and the rooms are polled
    /// again, the answered one last.
    pub(crate) fn poll_done(&mut self, poll: u32, history: Option<History>, fx: &mut Vec<Effect>) {
        if self.polling.as_ref().is_none_or(|(running, _)| *running != poll) {
            return;
        }
        self.polling = None;
        let Some(h) = history else {
            return fx.push(Effect::StartTimer { timer: Timer::RoomPoll, ms: RESEND_DELAY_MS });
        };
        if let Some(id) = h.room.clone() {
            let me = self.me.clone();
            let watching = self.is_watched(&id);
            if let Some(r) = self.list.iter_mut().find(|r| r.id == id && r.status == RoomStatus::Http) {
                r.history(h, me.as_deref(), watching, fx);
            }
            self.answered = Some(id);
        }
        self.poll(fx);
    }

    /// Polls the rooms on HTTP again after a failed long-poll.
    pub(crate) fn repoll(&mut self, fx: &mut Vec<Effect>) {
        self.poll(fx);
    }

    /// The HTTP send of message `id` to `room` answered (`None`: the network failed).
    pub(crate) fn posted(
        &mut self,
        room: &str,
        id: &str,
        reply: Option<ServerMessage>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(r) = self.get_mut(room) else { return };
        if r.posting.as_deref() == Some(id) {
            r.posting = None;
        }
        match reply {
            Some(ServerMessage::Ack(a)) => r.acknowledged(&a.id, a.seq, fx),
            // An HTTP answer is about the message just posted, even without an id.
            Some(ServerMessage::Error(e)) if r.outbox.contains(id) => {
                r.refused(id, &e, fx);
                if !e.code.is_retryable() {
                    r.post_next(fx);
                }
                return;
            }
            _ => {
                fx.push(Effect::StartTimer { timer: Timer::RoomResend, ms: RESEND_DELAY_MS });
                return;
            }
        }
        r.post_next(fx);
    }

    /// The link dropped: every joined room waits for it to come back. Who was typing is
    /// unknown now; the hub re-sends the members on the rejoin.
    pub(crate) fn link_down(&mut self, fx: &mut Vec<Effect>) {
        self.http_down(fx);
        if !self.live {
            return;
        }
        self.live = false;
        // The connection's memberships are gone with it: nothing is due from it.
        self.left_due.clear();
        for room in &mut self.list {
            room.answer_due = false;
            if room.status == RoomStatus::Joined {
                room.set_status(RoomStatus::Rejoining, fx);
            }
            room.clear_typing(fx);
        }
        // What waited for the budget: joins and messages go again after the rejoin (the
        // outbox keeps the messages); updates and the latest cursor wait for it, in order, as
        // calls made before a join do.
        while !self.paced.is_empty() {
            let o = remove_at(&mut self.paced, 0);
            if let RoomOut::Relay { room, kind, data } = &o {
                if let Some(r) = self.list.iter_mut().find(|r| r.id == *room) {
                    // (Each waits as a call made before the join would; the room's queue was
                    // empty while it was joined.)
                    match kind {
                        RelayKind::Cursor => r.cursor = Some(data.clone()),
                        RelayKind::Update => r.queued.push(o),
                    }
                }
            }
        }
    }

    /// After a retryable refusal: re-sends every joined room's waiting messages (the hub
    /// acknowledges one it stored already), and the joins still waiting whose answer is not due.
    pub(crate) fn resend(&mut self, fx: &mut Vec<Effect>) {
        for room in &mut self.list {
            match room.status {
                RoomStatus::Http => room.post_next(fx),
                _ if !self.live => {}
                RoomStatus::Joined => room.send_outbox(fx),
                RoomStatus::Joining | RoomStatus::Rejoining if !room.answer_due => room.send_join(fx),
                RoomStatus::Joining | RoomStatus::Rejoining => {}
                RoomStatus::Refused | RoomStatus::Left => {}
            }
        }
    }

    /// Routes the room frames among `fx` (made by one step of the model) through the budgets
    /// the hub holds the connection to: each goes out in order as soon as the session's
    /// message rate (joins, room messages) and the connection's frame budget (bytes times the
    /// members reached) allow, rather than be refused or get the connection cut. While frames
    /// wait, a later cursor of the same room replaces the waiting one (latest wins), a message
    /// already waiting is not queued twice, and a room's updates wait in order, at most
    /// [`UPDATES_KEPT`]: beyond that the oldest is dropped with an `error` notice.
    pub(crate) fn pace(&mut self, fx: &mut Vec<Effect>) {
        if self.ticking && !fx.iter().any(|e| matches!(e, Effect::SendRoom(_))) {
            return;
        }
        let mut i = 0;
        while i < fx.len() {
            if matches!(fx[i], Effect::SendRoom(_)) {
                if let Effect::SendRoom(o) = remove_at(fx, i) {
                    self.wait(o, fx);
                }
            } else {
                i += 1;
            }
        }
        self.drain(fx);
    }

    /// The pacing timer: the budgets have refilled by [`PACE_TICK_MS`]' worth.
    pub(crate) fn pace_tick(&mut self) {
        self.ticking = false;
        let b = self.budgets;
        let ms = f64::from(PACE_TICK_MS);
        self.messages_spent =
            (self.messages_spent - f64::from(b.messages_per_minute) * PACE_SHARE * ms / 60_000.0).max(0.0);
        self.bytes_spent = (self.bytes_spent - b.frame_budget as f64 * PACE_SHARE * ms / 1_000.0).max(0.0);
        // (What may go now goes in `pace`, at the end of this step.)
    }

    fn wait(&mut self, o: RoomOut, fx: &mut Vec<Effect>) {
        // One pass: a waiting cursor of the room (replaced: the latest wins) or the same
        // message (sent once), and the room's waiting updates (the oldest, how many).
        let (mut oldest, mut updates) = (None, 0);
        for (i, q) in self.paced.iter_mut().enumerate() {
            let same = match (&*q, &o) {
                (RoomOut::Relay { room: a, kind: k, .. }, RoomOut::Relay { room: b, kind: l, .. })
                    if a == b =>
                {
                    if *k == RelayKind::Update && *l == RelayKind::Update {
                        oldest = oldest.or(Some(i));
                        updates += 1;
                    }
                    *k == RelayKind::Cursor && *l == RelayKind::Cursor
                }
                (RoomOut::Chat { out: x, .. }, RoomOut::Chat { out: y, .. }) => x.id == y.id,
                _ => false,
            };
            if same {
                *q = o;
                return;
            }
        }
        if let (Some(i), true) = (oldest, updates >= UPDATES_KEPT) {
            if let RoomOut::Relay { room, .. } = remove_at(&mut self.paced, i) {
                if let Some(r) = self.get(&room) {
                    let message = UPDATES_DROPPED.to_string();
                    r.note(RoomNotice::Error { code: ErrorCode::TooLarge, message }, fx);
                }
            }
        }
        self.paced.push(o);
    }

    /// Sends what the budgets allow, in order; ticks while anything waits or they refill.
    fn drain(&mut self, fx: &mut Vec<Effect>) {
        let b = self.budgets;
        let message_burst = f64::from(b.message_burst) * PACE_SHARE;
        // Four seconds' worth, as the hub allows.
        let byte_burst = b.frame_budget as f64 * 4.0 * PACE_SHARE;
        while let Some(o) = self.paced.first() {
            let (messages, bytes) = self.cost(o);
            let messages_ok = b.messages_per_minute == 0 || self.messages_spent + messages <= message_burst;
            // (A frame costing more than the whole burst goes when the budget is full: the
            // hub says why it refuses it.)
            let bytes_ok =
                b.frame_budget == 0 || self.bytes_spent + bytes <= byte_burst || self.bytes_spent == 0.0;
            if !(messages_ok && bytes_ok) {
                break;
            }
            self.messages_spent += messages;
            self.bytes_spent += bytes;
            fx.push(Effect::SendRoom(remove_at(&mut self.paced, 0)));
        }
        if !self.ticking && (!self.paced.is_empty() || self.messages_spent > 0.0 || self.bytes_spent > 0.0) {
            self.ticking = true;
            fx.push(Effect::StartTimer { timer: Timer::RoomPace, ms: PACE_TICK_MS });
        }
    }

    /// What frame `o` costs: messages of the session's rate, bytes of the frame budget (its
    /// length, estimated from what it carries, plus the hub's overhead, times the members it
    /// reaches).
    fn cost(&self, o: &RoomOut) -> (f64, f64) {
        let (room, messages, len) = match o {
            RoomOut::Join { room, name, .. } => {
                (room, 1.0, 80 + name.as_ref().map_or(0, String::len) + JOIN_COST as usize)
            }
            RoomOut::Leave { room } => (room, 0.0, 40),
            RoomOut::Chat { room, out } => (room, 1.0, 80 + out.id.len() + out.text.len()),
            RoomOut::Typing { room, .. } => (room, 0.0, 50),
            RoomOut::Relay { room, data, .. } => (room, 0.0, 50 + data.len()),
        };
        // (A join reaches nobody but the joiner yet.)
        let audience = match o {
            RoomOut::Join { .. } => 1,
            _ => self.get(room).map_or(1, |r| r.member_count.max(1)),
        };
        (messages, ((len + room.len()) as u64 + FRAME_OVERHEAD) as f64 * audience as f64)
    }

    /// Nobody typing has said anything for [`TYPING_TIMEOUT_MS`]: clear every indicator.
    pub(crate) fn typing_expired(&mut self, fx: &mut Vec<Effect>) {
        for room in &mut self.list {
            room.clear_typing(fx);
        }
    }

    /// A relayed `cursor_position` / `chain_update` from another member of `room`.
    pub(crate) fn relayed(
        &mut self,
        room: &str,
        kind: RelayKind,
        from: Member,
        data: String,
        fx: &mut Vec<Effect>,
    ) {
        if self.me.as_deref() == Some(from.id.as_str()) {
            // Another tab of this visitor: the page already knows what it sent.
            return;
        }
        if let Some(r) = self.get(room) {
            r.note(RoomNotice::Relay { kind, from, data }, fx);
        }
    }

    /// Reads a hub frame. Returns it back when it is not about a room (the support
    /// conversation's, or an error of nobody's room message).
    pub(crate) fn receive(&mut self, msg: ServerMessage, fx: &mut Vec<Effect>) -> Option<ServerMessage> {
        let me = self.me.clone();
        let me = me.as_deref();
        match msg {
            ServerMessage::Chat(m) => {
                let watching = self.is_watched(&m.room);
                if let Some(r) = self.get_mut(&m.room) {
                    r.stored(m, me, true, watching, fx);
                }
            }
            ServerMessage::RoomInfo(info) => {
                if let Some(i) = self.left_due.iter().position(|r| r.id == info.room) {
                    // The answer to a join the page has left since: leave now.
                    remove_at(&mut self.left_due, i);
                    fx.push(Effect::SendRoom(RoomOut::Leave { room: info.room }));
                    return None;
                }
                if let Some(r) = self.get_mut(&info.room) {
                    r.answer_due = false;
                    r.join_refusals = 0;
                    if r.sent_name != r.name {
                        // Joined under the name of a join the page has replaced: as the last one.
                        fx.push(Effect::SendRoom(RoomOut::Leave { room: info.room }));
                        r.send_join(fx);
                    } else if r.status != RoomStatus::Refused {
                        r.info(info, me, fx);
                    }
                }
            }
            ServerMessage::UserJoined(p) => {
                if let Some(r) = self.get_mut(&p.room) {
                    r.presence(p.user, true, fx);
                }
            }
            ServerMessage::UserLeft(p) => {
                if let Some(r) = self.get_mut(&p.room) {
                    r.presence(p.user, false, fx);
                }
            }
            ServerMessage::Typing(t) if t.room.is_some() => {
                let (Some(room), Some(from)) = (t.room, t.from) else { return None };
                if me == Some(from.id.as_str()) {
                    return None;
                }
                if let Some(r) = self.get_mut(&room) {
                    r.typing_notice(from, t.active, fx);
                }
            }
            ServerMessage::Ack(a) if a.room.is_some() => {
                if let Some(r) = a.room.as_deref().and_then(|room| self.get_mut(room)) {
                    r.acknowledged(&a.id, a.seq, fx);
                }
            }
            ServerMessage::History(mut h) if h.room.is_some() => {
                let room = h.room.take().unwrap_or_default();
                let watching = self.is_watched(&room);
                if let Some(r) = self.get_mut(&room) {
                    r.history(h, me, watching, fx);
                }
            }
            ServerMessage::System(n) if n.room.is_some() => {}
            ServerMessage::Error(e) => return self.error(e, fx),
            other => return Some(other),
        }
        None
    }

    /// The site deleted room `id` (a `room_deleted` error): the hub has taken this connection
    /// out of it, so it is not joined again (that would make a new room). It goes to `left`,
    /// as if the page had left it, after an `error` notice with the reason; what was still
    /// waiting to be sent fails.
    fn deleted(&mut self, id: &str, message: String, fx: &mut Vec<Effect>) {
        let Some(at) = self.list.iter().position(|r| r.id == id) else { return };
        let mut room = remove_at(&mut self.list, at);
        self.paced.retain(|o| !matches!(o, RoomOut::Join { room: r, .. } if r == id));
        room.fail_waiting(fx);
        room.posting = None;
        room.note(RoomNotice::Error { code: ErrorCode::RoomDeleted, message }, fx);
        room.set_status(RoomStatus::Left, fx);
        self.poll(fx);
        if self.is_watched(id) {
            self.watching = None;
        }
    }

    /// An `error` frame. The hub names the room of a refused room frame (and a `chat`'s id):
    /// a refused message is retried or marked failed, a refused join leaves the room
    /// `refused`, anything else is told to the room's listeners. Errors about no room are
    /// returned, for the support conversation.
    fn error(&mut self, e: ErrorFrame, fx: &mut Vec<Effect>) -> Option<ServerMessage> {
        let live = self.live;
        let Some(room_id) = e.room.clone() else {
            return Some(ServerMessage::Error(e));
        };
        // The answer to a join of a room the page has left since: it was not joined.
        if let Some(i) = self.left_due.iter().position(|r| r.id == room_id) {
            remove_at(&mut self.left_due, i);
            return None;
        }
        if e.code == ErrorCode::RoomDeleted {
            self.deleted(&room_id, e.message, fx);
            return None;
        }
        // A room left since: nothing to tell anyone.
        let room = self.get_mut(&room_id)?;
        if let Some(id) = e.id.as_deref().filter(|id| room.outbox.contains(id)) {
            room.refused(id, &e, fx);
            return None;
        }
        let waiting = matches!(room.status, RoomStatus::Joining | RoomStatus::Rejoining);
        match e.code {
            // The hub lost track of the membership (a relay raced a leave, or a hub restarted
            // under us): join again.
            ErrorCode::NotInRoom if room.status == RoomStatus::Joined => {
                room.set_status(RoomStatus::Rejoining, fx);
                if live && !room.answer_due {
                    room.send_join(fx);
                }
            }
            // The answer to a join made under a name the page has replaced since: the one that
            // counts is the join under the new name.
            _ if waiting && live && room.sent_name != room.name => room.send_join(fx),
            // A join refused for now: try again after the delay the hub asks, doubled each
            // time in a row (at most a minute).
            code if waiting && code.is_retryable() => {
                room.answer_due = false;
                let ms = retry_delay(&e).saturating_mul(1 << room.join_refusals.min(5)).min(60_000);
                room.join_refusals += 1;
                fx.push(Effect::StartTimer { timer: Timer::RoomResend, ms });
            }
            // A join refused for good: a bad room id or name, or the `rooms` claim / the hub's
            // room access does not let this visitor in.
            code if waiting => {
                room.answer_due = false;
                // Refused before the session's message rate was spent (a bad name, the room
                // cap): the hub did not count it, so neither does the pacing.
                self.messages_spent = (self.messages_spent - 1.0).max(0.0);
                let room = self.get_mut(&room_id)?;
                room.refuse(code, e.message, fx);
            }
            code => room.note(RoomNotice::Error { code, message: e.message }, fx),
        }
        None
    }
}

#[cfg(test)]
mod tests;
