//! `Client`: one connection's protocol state (who it is, its rooms, its client address and
//! frame budget) and what each client message does. Transport-agnostic: the WebSocket layer
//! feeds it text frames and sends what lands in its [`Outbox`]; it never sees a socket.
//!
//! Every frame is paid for from the connection's [`FrameBudget`] before it is handled (see
//! `budget`); messages, joins and token renewals also take one request from the client
//! address's budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use natter_protocol::{
    close, validate_member_name, validate_room_id, Auth, ChatSend, ClientMessage, ErrorCode, Member, Pong,
    RelayNotice, Role, ServerMessage, TypingNotice, UserSend,
};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::address::AddrKey;
use crate::budget::{self, FrameBudget, Payment};
use crate::clock::now_rfc3339;
use crate::hub::{encode, Hub, Outbox, Payer, Refusal, Since, Slot};
use crate::identity::Principal;
use crate::metrics::Limit;
use crate::store::ConversationKey;

/// The reason of the 4029 close, for a connection that spent far past its frame budget.
pub(crate) const CUT_REASON: &str = "sending far too much: reconnect later";

/// What a `join` costs on top of its frame: the `room_info` and `history` it is answered with.
const JOIN_COST: usize = natter_protocol::JOIN_COST as usize;

/// Identity-token renewals (an `auth` on an open connection) one connection may send at once.
/// A page that calls `identify()` on every route change sends one each time; the budget lets
/// that through and stops a loop of signature checks.
pub(crate) const RENEWAL_BURST: u32 = 10;

/// One more renewal after this long.
pub(crate) const RENEWAL_EVERY: Duration = Duration::from_secs(6);

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Client {
    hub: Hub,
    outbox: Outbox,
    /// Who the connection is: their conversation, public member id, verified user.
    who: Principal,
    page: Option<String>,
    /// The browser's `User-Agent`, shown to operators (boxed: it is in every idle connection).
    browser: Option<Box<str>>,
    /// Joined rooms, with the member as shown in each (the name given on join).
    rooms: Joined,
    /// The use of its own conversation this connection holds for its address
    /// (`--max-conversations-per-address`); boxed, as every byte here is in every idle
    /// connection (see `ws::tests::idle_connection_stays_small`).
    _session: Option<Box<Slot>>,
    /// The client address, whose budget messages and joins draw on.
    addr: AddrKey,
    /// What the connection may still make the hub send.
    budget: FrameBudget,
    /// When the renewal budget is back to full, give or take: the theoretical arrival time of
    /// a GCRA limiter ([`RENEWAL_BURST`] at once, one per [`RENEWAL_EVERY`]), one instant per
    /// connection.
    renewals: Instant,
}

/// What the transport learnt about a connection as it opened, besides who it is.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The page the widget is on.
    pub(crate) page: Option<String>,
    /// The browser's `User-Agent`.
    pub(crate) browser: Option<Box<str>>,
    /// Where its history starts.
    pub(crate) since: Since,
    /// Its client address.
    pub(crate) addr: AddrKey,
    /// Its frame budget, with what frames before `auth` spent already.
    pub(crate) budget: FrameBudget,
}

impl Client {
    /// Subscribes the connection to its conversation and queues its `history`, then whether an
    /// operator is online and whether the conversation was closed.
    pub(crate) async fn start(
        hub: Hub,
        outbox: Outbox,
        who: Principal,
        opened: Opened,
    ) -> Result<Client, Refusal> {
        let Opened { page, browser, since, addr, mut budget } = opened;
        let mut payer = Payer::connection(addr, &mut budget);
        let session = hub
            .attach_session(&who.conversation, since, &outbox, &who.member_id, &mut payer, who.issued)
            .await?;
        hub.greet_visitor(&who.conversation, &outbox, who.issued).await;
        let renewals = Instant::now();
        Ok(Client {
            hub,
            outbox,
            who,
            page,
            browser,
            rooms: Joined::default(),
            _session: session.map(Box::new),
            addr,
            budget,
            renewals,
        })
    }

    /// When the connection's identity token has expired (`now` in seconds since the epoch),
    /// give or take the clock skew forgiven when it was accepted (a token the connect accepted
    /// must not be cut on the next beat): queues an `unauthorized` error and the close that tells
    /// the client to come back with a fresh token, and returns `true`.
    pub(crate) fn expire_if_due(&self, now: u64) -> bool {
        let leeway = crate::identity::token::LEEWAY_SECS;
        if self.who.expires_at().is_none_or(|exp| exp.saturating_add(leeway) >= now) {
            return false;
        }
        self.refuse(Refusal::new(
            ErrorCode::Unauthorized,
            "the identity token expired; reconnect with a fresh one (or send a fresh `auth` before it expires)",
        ));
        self.close_after_queue(close::UNAUTHORIZED, "identity token expired");
        true
    }

    /// Takes one renewal from the connection's budget ([`RENEWAL_BURST`], then one per
    /// [`RENEWAL_EVERY`]); a refusal says how long to wait. Each renewal is a signature check
    /// and a `welcome`: without this one connection could loop them at the address's whole
    /// request rate, spending what every tab behind that address shares.
    fn take_renewal(&mut self) -> Result<(), Refusal> {
        let now = Instant::now();
        let tat = self.renewals.max(now);
        let tolerance = RENEWAL_EVERY * (RENEWAL_BURST - 1);
        if let Some(allowed_from) = tat.checked_sub(tolerance).filter(|from| *from > now) {
            self.hub.metrics().limited(Limit::Renewals);
            let wait = allowed_from - now;
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "this connection renews its identity token too often ({RENEWAL_BURST} at once, then one every \
                     {} s); keep using the current token and send the fresh one in {ms} ms",
                    RENEWAL_EVERY.as_secs()
                ),
            );
            r.retry_after_ms = Some(ms);
            return Err(r);
        }
        self.renewals = tat + RENEWAL_EVERY;
        Ok(())
    }

    /// A later `auth` on an open connection: a signed-in user renewing their token (the same
    /// `sub`, a later `exp`). Anything else is refused: who a connection is does not change.
    fn renew(&mut self, auth: Auth) -> Result<(), Refusal> {
        let (Some(token), Some(current)) = (auth.token.as_deref(), self.who.user.as_ref()) else {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "this connection has said who it is already; only a signed-in user's fresh token can follow (open a new connection to change who you are)",
            ));
        };
        match self.hub.identity().user(token) {
            Ok(renewed) if renewed.user.as_ref().is_some_and(|u| u.sub == current.sub) => {
                self.who.user = renewed.user;
                let mut welcome = self.who.welcome();
                welcome.budgets = Some(self.hub.config().budgets());
                self.send(&ServerMessage::Welcome(welcome));
                Ok(())
            }
            Ok(_) => Err(Refusal::new(
                ErrorCode::Unauthorized,
                "the fresh token is for another user; open a new connection to switch users",
            )),
            // A renewal that does not verify (garbled, expired, signed with another key) is the
            // app's mistake, not the end of an identity that is still valid: the connection
            // carries on with the token it has, and closes with 4401 when that one expires.
            Err(refusal) => Err(Refusal::new(
                refusal.code,
                format!(
                    "{}; this connection carries on with its current token until that expires",
                    refusal.message
                ),
            )),
        }
    }

    /// Queues a frame for this connection (never waits; see [`Outbox::send`]).
    fn send(&self, message: &ServerMessage) {
        self.outbox.send(encode(message));
    }

    /// Answers a refusal with an `error` frame, counting it: this is where it leaves the hub.
    fn refuse(&self, refusal: Refusal) {
        self.hub.metrics().refusal(refusal.code);
        tracing::debug!(connection = self.outbox.id, code = refusal.code.as_str(), message = %refusal.message, "refused");
        self.send(&refusal.frame());
    }

    /// Handles one text frame, once it is paid for.
    pub(crate) async fn on_text(&mut self, text: &str) {
        match parse(text) {
            Ok(message) => {
                // A refusal names the room (and a `chat`'s id), so a client in several rooms
                // can tell which call failed.
                let room = message.room().map(str::to_owned);
                let cost = budget::cost(text.len() + self.extra(&message), self.audience(&message));
                if !self.pay(cost, message_id(&message), room.as_deref()) {
                    return;
                }
                let chat_id = match &message {
                    ClientMessage::Chat(c) => c.id.clone(),
                    _ => None,
                };
                if let Err(mut r) = self.handle(message).await {
                    if r.id.is_none() {
                        r.id = chat_id;
                    }
                    self.refuse(r.in_room(room.as_deref()));
                }
            }
            Err(r) => {
                if self.pay(budget::cost(text.len(), 1), None, None) {
                    self.refuse(r);
                }
            }
        }
    }

    /// A binary frame: the protocol is JSON text.
    pub(crate) fn on_binary(&mut self, len: usize) {
        if self.pay(budget::cost(len, 1), None, None) {
            self.refuse(Refusal::new(
                ErrorCode::BadJson,
                "binary frames are not accepted; send JSON text frames",
            ));
        }
    }

    /// Pays `cost` from the frame budget; `false` when the frame must not be handled: it was
    /// refused (`rate_limited`, with how long to wait, naming the frame's `id` and `room`), or
    /// the connection owes so much that it is closed with 4029.
    fn pay(&mut self, cost: u64, id: Option<String>, room: Option<&str>) -> bool {
        match self.budget.pay(&self.hub, self.addr, cost, id) {
            Payment::Paid => true,
            Payment::Refused(r) => {
                self.refuse(r.in_room(room));
                false
            }
            Payment::Cut => {
                tracing::info!(connection = self.outbox.id, "frame budget exhausted: closing with 4029");
                self.outbox.close_after_queue(close::RATE_LIMITED, CUT_REASON);
                false
            }
        }
    }

    /// How many connections a message reaches: the room's (or the session's, with the operators
    /// watching the inbox) subscribers on this hub, at least one (the sender's own answer).
    fn audience(&self, message: &ClientMessage) -> usize {
        let room = match message {
            ClientMessage::Chat(c) => Some(c.room.as_str()),
            ClientMessage::Join(j) => Some(j.room.as_str()),
            ClientMessage::Leave(l) => Some(l.room.as_str()),
            ClientMessage::Typing(t) if t.room.is_some() => t.room.as_deref(),
            ClientMessage::CursorPosition(r) | ClientMessage::ChainUpdate(r) => Some(r.room.as_str()),
            // Typing in the support conversation reaches every operator connection.
            ClientMessage::User(_) | ClientMessage::Typing(_) => {
                return self.hub.audience(&ConversationKey::Session(self.who.conversation.clone()))
            }
            ClientMessage::Ping(_) | ClientMessage::Auth(_) => None,
        };
        // A room this connection is not in reaches nobody but itself (it is refused).
        match room.and_then(|r| self.rooms.get_key_value(r)) {
            Some((room, _)) => self.hub.audience(&ConversationKey::Room(room.clone())),
            None => 1,
        }
    }

    /// What a message costs beyond its own bytes.
    fn extra(&self, message: &ClientMessage) -> usize {
        if matches!(message, ClientMessage::Join(_)) {
            JOIN_COST
        } else {
            0
        }
    }

    /// A frame over `--max-frame`, refused unread.
    pub(crate) fn on_too_large(&mut self) {
        let max = self.hub.config().max_frame;
        self.refuse(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "frame larger than the hub's limit of {max} bytes; it was not read and the connection closes"
            ),
        ));
    }

    /// Queues a close frame after what is already queued (the writer sends both, then ends).
    pub(crate) fn close_after_queue(&self, code: u16, reason: &'static str) {
        self.outbox.close_after_queue(code, reason);
    }

    fn joined(&self, room: &str) -> Result<(Arc<str>, Member), Refusal> {
        match self.rooms.get_key_value(room) {
            Some((k, m)) => Ok((k.clone(), m.clone())),
            None => Err(Refusal::new(
                ErrorCode::NotInRoom,
                format!("this connection has not joined room {room:?}; send a join first"),
            )),
        }
    }

    async fn handle(&mut self, message: ClientMessage) -> Result<(), Refusal> {
        // Rooms the operator deleted: the hub has taken this connection out of them already
        // (and told it, with `room_deleted`).
        for room in self.outbox.take_removed_rooms() {
            self.rooms.remove(&room);
        }
        match message {
            ClientMessage::Ping(p) => {
                self.send(&ServerMessage::Pong(Pong { nonce: p.nonce, timestamp: now_rfc3339() }));
            }
            ClientMessage::Auth(auth) => {
                // Verifying a token costs more than its bytes say (a signature check): it draws
                // on the connection's renewals and on its address's requests.
                self.take_renewal()?;
                self.hub.charge_address(self.addr)?;
                self.renew(auth)?;
                self.leave_rooms_no_longer_granted().await;
            }
            ClientMessage::User(send) => {
                self.hub.charge_address(self.addr).map_err(|r| r.with_id(send.id.clone()))?;
                // The connection's identity wins over the body's `sessionId`: a tab cannot write
                // into another conversation.
                let ack = self
                    .hub
                    .post_user(&self.who, send, self.page.as_deref(), self.browser.as_deref(), self.addr)
                    .await?;
                self.send(&ServerMessage::Ack(ack));
            }
            ClientMessage::Chat(chat) => {
                check_room(&chat.room)?;
                let (room, member) = self.joined(&chat.room)?;
                self.hub.charge_address(self.addr).map_err(|r| r.with_id(chat.id.clone()))?;
                let ack = self
                    .hub
                    .post_chat(&self.who.conversation, &room, &member, chat.id, chat.message, self.addr)
                    .await?;
                self.send(&ServerMessage::Ack(ack));
            }
            ClientMessage::Join(join) => {
                check_room(&join.room)?;
                self.hub.identity().may_join(&self.who, &join.room)?;
                let (name, verified) = self.hub.identity().member_name(&self.who, join.name);
                if !verified {
                    check_member_name(name.as_deref())?;
                }
                if self.rooms.contains_key(join.room.as_str()) {
                    // Answering a re-join with the room's info again cost a read of the store
                    // each time, for nothing the first join did not give.
                    return Err(Refusal::new(
                        ErrorCode::InvalidMessage,
                        format!(
                            "this connection has joined room {:?} already (its room_info and history came then); \
                             send leave first to join again",
                            join.room
                        ),
                    ));
                }
                let most = self.hub.config().max_rooms_per_connection;
                if self.rooms.len() >= most as usize {
                    self.hub.metrics().limited(Limit::RoomsPerConnection);
                    return Err(Refusal::new(
                        ErrorCode::InvalidMessage,
                        format!(
                            "this connection is in {most} rooms already, the most it may join \
                             (--max-rooms-per-connection); leave one before joining room {:?}",
                            join.room
                        ),
                    ));
                }
                self.hub.charge_address(self.addr)?;
                self.hub.rate_limit(&self.who.conversation)?;
                let room: Arc<str> = join.room.as_str().into();
                let member = Member { id: self.who.member_id.to_string(), name, verified };
                let since = join.after.map_or(Since::Recent, Since::After);
                let mut payer = Payer::connection(self.addr, &mut self.budget);
                let held = self.hub.join_room(&room, &member, since, &self.outbox, &mut payer).await?;
                self.rooms.insert(room, member, held);
            }
            ClientMessage::Leave(leave) => {
                check_room(&leave.room)?;
                let (room, member) = self.joined(&leave.room)?;
                self.rooms.remove(&room);
                self.hub.leave_room(&room, &member, self.outbox.id).await;
            }
            ClientMessage::Typing(t) => {
                // In the support conversation the audience is the operators (the visitor's own
                // tabs are skipped); in a room, the other members.
                if t.room.is_none() {
                    let notice = ServerMessage::Typing(TypingNotice {
                        room: None,
                        role: Role::User,
                        from: None,
                        active: t.active,
                    });
                    let key = ConversationKey::Session(self.who.conversation.clone());
                    self.hub.publish(key, notice, Some(self.who.member_id.to_string())).await;
                } else if let Some(room) = t.room {
                    check_room(&room)?;
                    let (room, member) = self.joined(&room)?;
                    let notice = ServerMessage::Typing(TypingNotice {
                        room: Some(room.to_string()),
                        role: Role::User,
                        from: Some(member.clone()),
                        active: t.active,
                    });
                    self.hub.publish(ConversationKey::Room(room), notice, Some(member.id)).await;
                }
            }
            ClientMessage::CursorPosition(r) | ClientMessage::ChainUpdate(r) if r.room.is_empty() => {
                return Err(Refusal::new(ErrorCode::InvalidMessage, "`room` is empty"));
            }
            ClientMessage::CursorPosition(r) => self.relay(r, true).await?,
            ClientMessage::ChainUpdate(r) => self.relay(r, false).await?,
        }
        Ok(())
    }

    /// After a renewal: a fresh token's `rooms` claim may be narrower than the one the rooms
    /// were joined with. Each room it no longer covers is left (its members see `user_left`
    /// where this was the member's last connection) and named to the client in a `forbidden`
    /// error, as a join of it would be refused now.
    async fn leave_rooms_no_longer_granted(&mut self) {
        let identity = self.hub.identity();
        let lost: Vec<(Arc<str>, Member, Refusal)> = self
            .rooms
            .iter()
            .filter_map(|(room, member)| {
                identity.may_join(&self.who, room).err().map(|r| (room.clone(), member.clone(), r))
            })
            .collect();
        for (room, member, refusal) in lost {
            self.rooms.remove(&room);
            self.hub.leave_room(&room, &member, self.outbox.id).await;
            let message =
                format!("{}; your renewed token took it away, so this connection left it", refusal.message);
            self.refuse(Refusal::new(refusal.code, message).in_room(Some(&room)));
        }
    }

    async fn relay(&mut self, r: natter_protocol::RelaySend, cursor: bool) -> Result<(), Refusal> {
        check_room(&r.room)?;
        let (room, member) = self.joined(&r.room)?;
        let notice = RelayNotice { room: room.to_string(), from: member.clone(), data: r.data };
        let message =
            if cursor { ServerMessage::CursorPosition(notice) } else { ServerMessage::ChainUpdate(notice) };
        self.hub.publish(ConversationKey::Room(room), message, Some(member.id)).await;
        Ok(())
    }

    /// The connection ended: leave every room (announcing `user_left` where it was the
    /// member's last connection) and unsubscribe from the session.
    pub(crate) async fn finish(mut self) {
        for room in self.outbox.take_removed_rooms() {
            self.rooms.remove(&room);
        }
        for (room, member) in self.rooms.iter() {
            self.hub.leave_room(room, member, self.outbox.id).await;
        }
        self.hub.detach_session(&self.who.conversation, self.outbox.id);
    }
}

/// The rooms a connection joined, each with an [`InRoom`]. Most connections (a visitor's
/// support chat) join none, so the table exists only from the first join on: every idle
/// connection's task is smaller by an empty map (see `ws::tests::idle_connection_stays_small`).
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // on purpose: 8 bytes inline instead of an empty map's 48
struct Joined(Option<Box<HashMap<Arc<str>, InRoom>>>);

/// One joined room: the member as shown in it (the name given on join), and the use of its
/// conversation held for the connection's address (`--max-conversations-per-address`; `None`
/// when there is no limit), given back when the room is left.
type InRoom = (Member, Option<Slot>);

impl Joined {
    fn get_key_value(&self, room: &str) -> Option<(&Arc<str>, &Member)> {
        self.0.as_ref()?.get_key_value(room).map(|(k, (m, _))| (k, m))
    }

    fn contains_key(&self, room: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(room))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    fn insert(&mut self, room: Arc<str>, member: Member, held: Option<Slot>) {
        self.0.get_or_insert_with(Box::default).insert(room, (member, held));
    }

    fn remove(&mut self, room: &str) {
        if let Some(map) = &mut self.0 {
            map.remove(room);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Member)> {
        self.0.iter().flat_map(|m| m.iter()).map(|(k, (m, _))| (k, m))
    }
}

/// The client-made id of a message that has one (for refusals to carry).
fn message_id(message: &ClientMessage) -> Option<String> {
    match message {
        ClientMessage::User(u) => u.id.clone(),
        ClientMessage::Chat(c) => c.id.clone(),
        _ => None,
    }
}

fn check_room(room: &str) -> Result<(), Refusal> {
    validate_room_id(room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
}

/// Parses a client frame, telling apart bad JSON, an unknown type and a bad message, each with
/// a message naming what is wrong.
///
/// A good frame is parsed once, straight into its type: this is every message's path. Only a
/// frame that fails takes the slower walk through a `serde_json::Value` that finds out why.
pub(crate) fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    ClientMessage::from_json(text).or_else(|_| diagnose(text))
}

/// Works out why `text` is not a client message (see [`parse`]).
fn diagnose(text: &str) -> Result<ClientMessage, Refusal> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("frame is not valid JSON: {e}")))?;
    diagnose_value(value, "frame")
}

/// The `type` of an HTTP body: absent (`None`), or whatever JSON is there, `null` included (a
/// plain `Option` would read `null` as absent). The rest of the body is skipped unread.
#[derive(Debug, Deserialize)]
struct BodyType<'a> {
    #[serde(default, rename = "type", borrow, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// What `POST /api/chat/messages` carries: a visitor's message to their support conversation,
/// or a room member's message (the HTTP fallback of a room).
#[derive(Debug)]
pub(crate) enum Posted {
    /// A `user` message (its `type` may be left out, as in the original widget's format).
    User(UserSend),
    /// A `chat` message to a room.
    Chat(ChatSend),
}

/// Reads the body of `POST /api/chat/messages`: a `user` message whose `type` may be left out,
/// or a `chat` message.
///
/// A good body is parsed straight into its type (`context` stays JSON text). Only one that
/// fails is read again, like [`parse`] reads a frame, to say why it is not a message this
/// endpoint takes, or to read it by JSON's looser rules where those accept it (a repeated key,
/// whose last value wins, as on the WebSocket).
pub(crate) fn parse_body(body: &[u8]) -> Result<Posted, Refusal> {
    let posted = match serde_json::from_slice::<BodyType<'_>>(body) {
        Ok(BodyType { kind: None }) => Some(UserSend::KIND),
        Ok(BodyType { kind: Some(raw) }) => match serde_json::from_str::<String>(raw.get()) {
            Ok(k) if k == UserSend::KIND => Some(UserSend::KIND),
            Ok(k) if k == ChatSend::KIND => Some(ChatSend::KIND),
            Ok(k) => {
                let shown: String = k.chars().take(40).collect();
                return Err(Refusal::new(
                    ErrorCode::UnknownType,
                    format!("this endpoint takes `user` and `chat` messages, not {shown:?}"),
                ));
            }
            // Not a string: said below.
            Err(_) => None,
        },
        Err(_) => None,
    };
    match posted {
        Some(UserSend::KIND) => {
            if let Ok(send) = serde_json::from_slice::<UserSend>(body) {
                return Ok(Posted::User(send));
            }
        }
        Some(_) => {
            if let Ok(chat) = serde_json::from_slice::<ChatSend>(body) {
                return Ok(Posted::Chat(chat));
            }
        }
        None => {}
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("body is not valid JSON: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        match object.get("type") {
            None => {
                object.insert("type".into(), UserSend::KIND.into());
            }
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                return Err(Refusal::new(
                    ErrorCode::UnknownType,
                    format!(
                        "the body's \"type\" must be \"user\", \"chat\" or left out, got {}",
                        kind(other)
                    ),
                ))
            }
        }
    }
    match diagnose_value(value, "body")? {
        ClientMessage::User(send) => Ok(Posted::User(send)),
        ClientMessage::Chat(chat) => Ok(Posted::Chat(chat)),
        // Another kind of message (a `join` is missing the `message` a `user` needs).
        other => Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("this endpoint takes `user` and `chat` messages, not {:?}", other.kind()),
        )),
    }
}

/// Works out why `value` is not a client message; `what` names it (`frame`, `body`).
fn diagnose_value(value: serde_json::Value, what: &str) -> Result<ClientMessage, Refusal> {
    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
    let Some(object) = value.as_object() else {
        return Err(Refusal::new(
            ErrorCode::BadJson,
            format!("{what} must be a JSON object, got {}", kind(&value)),
        ));
    };
    let kinds = ClientMessage::KINDS.join(", ");
    let ty = match object.get("type") {
        None => {
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("{what} has no \"type\"; expected one of {kinds}"),
            )
            .with_id(id))
        }
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("\"type\" must be a string, got {}; expected one of {kinds}", kind(other)),
            )
            .with_id(id))
        }
    };
    if !ClientMessage::KINDS.contains(&ty.as_str()) {
        let shown: String = ty.chars().take(40).collect();
        return Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown type {shown:?}; expected one of {kinds}"),
        )
        .with_id(id));
    }
    // Written out again and read by the one decoder: a `RawJson` cannot be read out of a tree.
    let text = value.to_string();
    ClientMessage::from_json(&text)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad {ty:?} message: {e}")).with_id(id))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A name a visitor gives in a room (on `join`, or with a message over the HTTP fallback):
/// the protocol's rules for member names (at most 64 characters; no control, bidirectional or
/// line-separator characters, which could make a name read as something else).
pub(crate) fn check_member_name(name: Option<&str>) -> Result<(), Refusal> {
    match name {
        Some(name) => validate_member_name(name)
            .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad `name`: {e}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> (ErrorCode, String) {
        let r = parse(text).unwrap_err();
        (r.code, r.message)
    }

    #[test]
    fn tells_bad_input_apart() {
        assert_eq!(code("{nope").0, ErrorCode::BadJson);
        assert_eq!(code("[1]").0, ErrorCode::BadJson);
        assert_eq!(code("{\"message\":\"x\"}").0, ErrorCode::UnknownType);
        let (c, m) = code("{\"type\":\"shout\"}");
        assert_eq!(c, ErrorCode::UnknownType);
        assert!(m.contains("\"shout\""), "{m}");
        let (c, m) = code("{\"type\":\"user\"}");
        assert_eq!(c, ErrorCode::InvalidMessage);
        assert!(m.contains("message"), "{m}");
        let (c, m) = code("{\"type\":\"chat\",\"room\":5,\"message\":\"x\"}");
        assert_eq!(c, ErrorCode::InvalidMessage);
        assert!(m.contains("integer"), "{m}");
    }

    #[test]
    fn the_original_format_parses() {
        let original = r#"{"type":"user","message":"hello","timestamp":"2025-08-23T10:00:00Z","sessionId":"session-xxx","context":{"page":"/"}}"#;
        assert!(matches!(parse(original), Ok(ClientMessage::User(_))));
    }

    /// The decoder under property tests: anything at all, JSON of every shape, and valid frames
    /// broken in every way, is answered — a message or a refusal naming a known code — and
    /// never panics; what it accepts reads back the same after writing it out.
    mod fuzz {
        use natter_protocol::ErrorCode;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed};
        use serde_json::Value;

        use super::super::{parse, parse_body};
        use natter_protocol::ClientMessage;

        /// Seeded, so every run tries the same cases; a few thousand in all, well under a second.
        fn config() -> Config {
            Config {
                cases: 1024,
                rng_seed: RngSeed::Fixed(0x6e61_7474_6572),
                failure_persistence: None,
                ..Config::default()
            }
        }

        /// Keys a frame may have, and some it may not.
        const KEYS: &[&str] = &[
            "type",
            "id",
            "message",
            "room",
            "name",
            "after",
            "active",
            "data",
            "nonce",
            "context",
            "sessionId",
            "timestamp",
            "x",
            "",
        ];

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                prop::sample::select(ClientMessage::KINDS.to_vec()).prop_map(Value::from),
                ".{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..8).prop_map(
                        |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    ),
                ]
            })
        }

        /// A valid frame of every kind.
        fn frame() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                r#"{"type":"user","id":"m1","message":"hi","context":{"page":"/"}}"#,
                r#"{"type":"chat","room":"r","id":"c-01","message":"hello"}"#,
                r#"{"type":"join","room":"r","name":"Ada","after":3}"#,
                r#"{"type":"leave","room":"r"}"#,
                r#"{"type":"typing","room":"r","active":false}"#,
                r#"{"type":"cursor_position","room":"r","data":{"x":1,"y":[2,3]}}"#,
                r#"{"type":"chain_update","room":"r","data":null}"#,
                r#"{"type":"ping","nonce":{"n":1}}"#,
                r#"{"type":"auth","token":"a.b.c","session":"s","after":2,"page":"/"}"#,
            ])
            .prop_map(str::to_owned)
        }

        fn answered(text: &str) {
            match parse(text) {
                Ok(message) => {
                    let written = serde_json::to_string(&message).expect("a message writes out");
                    assert_eq!(parse(&written).ok(), Some(message), "{text} → {written}");
                }
                Err(r) => {
                    assert!(ErrorCode::ALL.contains(&r.code), "{r:?}");
                    assert!(!r.message.is_empty());
                }
            }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_text_is_answered(text in ".{0,200}") {
                answered(&text);
                let _ = parse_body(text.as_bytes());
            }

            #[test]
            fn any_json_is_answered(value in json()) {
                answered(&value.to_string());
                let _ = parse_body(value.to_string().as_bytes());
            }

            #[test]
            fn broken_frames_are_answered(frame in frame(), cut in 0usize..80, at in 0usize..80, byte in any::<u8>()) {
                let mut bytes = frame.into_bytes();
                if let Some(b) = bytes.get_mut(at) {
                    *b = byte;
                }
                bytes.truncate(bytes.len().saturating_sub(cut % 8));
                let text = String::from_utf8_lossy(&bytes);
                answered(&text);
            }
        }
    }

    #[test]
    fn http_bodies_are_diagnosed_like_frames() {
        assert_eq!(user_body(b"{nope").unwrap_err().code, ErrorCode::BadJson);
        let r = user_body(br#"{"sessionId":"s"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::InvalidMessage);
        assert!(r.message.contains("message"), "{}", r.message);
        let r = user_body(br#"{"type":"join","room":"r"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnknownType);
        assert!(r.message.contains("\"join\""), "{}", r.message);
        // A body is called a body, not a frame.
        let r = user_body(b"[1]").unwrap_err();
        assert_eq!(r.code, ErrorCode::BadJson);
        assert!(r.message.starts_with("body must be a JSON object"), "{}", r.message);
        // `null` is not "left out": it is refused, naming the field.
        let r = user_body(br#"{"type":null,"message":"hi"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnknownType);
        assert!(r.message.contains("\"type\"") && r.message.contains("null"), "{}", r.message);
        let r = user_body(br#"{"type":7,"message":"hi"}"#).unwrap_err();
        assert!(r.message.contains("a number"), "{}", r.message);
        // Left out or `user`: the message, its context kept as text.
        for body in [&br#"{"message":"hi","context":{"page":"/"}}"#[..], br#"{"type":"user","message":"hi"}"#]
        {
            assert_eq!(user_body(body).map(|u| u.message), Ok("hi".to_string()));
        }
        // A `chat` body is a room member's message, and says what it lacks.
        let r = parse_body(br#"{"type":"chat","message":"hi"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::InvalidMessage);
        assert!(r.message.contains("room"), "{}", r.message);
        let chat = parse_body(br#"{"type":"chat","room":"r","message":"hi","name":"Ann"}"#);
        assert!(matches!(&chat, Ok(Posted::Chat(c)) if c.room == "r" && c.message == "hi"), "{chat:?}");
    }

    /// A body that must be a visitor's `user` message.
    fn user_body(body: &[u8]) -> Result<UserSend, Refusal> {
        parse_body(body).map(|p| match p {
            Posted::User(u) => u,
            Posted::Chat(c) => panic!("read as a chat: {c:?}"),
        })
    }

    /// JSON allows a repeated key (the last one wins); serde's derived parsers refuse it. A
    /// frame and an HTTP body read it alike, and a body is never told it is "not `user`" when
    /// it is one.
    #[test]
    fn a_repeated_key_is_read_like_json_reads_it() {
        let frame = r#"{"type":"user","message":"first","message":"second"}"#;
        assert!(matches!(parse(frame), Ok(ClientMessage::User(u)) if u.message == "second"));
        let body = br#"{"message":"first","message":"second"}"#;
        assert_eq!(user_body(body).map(|u| u.message), Ok("second".to_string()));
    }
}
