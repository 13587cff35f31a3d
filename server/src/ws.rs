//! The WebSocket transport: `GET /ws/chat[?page=][&after=]`, then an `auth` frame.
//!
//! The upgrade handler checks the origin (403) and the query (400) *before* upgrading, and
//! configures tungstenite with small buffers and the `--max-frame` limit. Credentials normally
//! come in the first frame (`auth`: a token, a session, or neither for a new session), so they
//! never sit in a URL that proxies log; a client that can do nothing else may put them in the
//! URL (`?token=`, or the original widget's `?session=`), and then they are checked before the
//! upgrade (401 / 400). See `identity` for what is accepted. The upgraded socket is read through
//! the meter on the wire (`crate::wire`), which charges every frame — pings, pongs and
//! continuation fragments included, which tungstenite handles without showing them here —
//! before tungstenite parses it. After the upgrade,
//! [`drive`] runs the connection over anything that is both a `Sink` and a `Stream` of
//! messages (the axum `testing-websockets` pattern), so it can be driven over channels in unit
//! tests.
//!
//! One task per connection does everything: it feeds the client's frames to the [`Client`],
//! drains the connection's queue to the socket (several frames per flush), pings every
//! `--ping-interval`, and closes with 4002 (stale) when no ping was answered for
//! `--idle-timeout`, 4001 (slow consumer) when the fan-out found the queue full, 4029 when the
//! client spent far past its frame budget (frames sent before `auth` included), 4401 when its
//! identity token expires, 1009 after an oversized frame and 1001 at shutdown.
//!
//! Liveness is judged by pongs only: a pong is the one frame that proves the peer reads (every
//! WebSocket client answers pings as it reads). Each ping carries 8 bytes no peer can guess, and
//! only a pong echoing one of the last three counts: pongs are free to send unasked (RFC 6455
//! allows an unsolicited pong as a heartbeat), so a client that never reads could otherwise stay
//! alive on pongs alone. The payloads are not stored: each is a keyed hash of the connection and
//! the ping round (see `Hub::ping_payload`), so checking a pong costs an idle connection nothing.
//! A client that keeps sending — pings, messages, pongs of its own — but never reads is closed
//! like a silent one, instead of pinning its kernel buffers for ever. Every write and flush also
//! has a deadline, at the socket (`crate::socket`): one that makes no progress for
//! `--idle-timeout` ends the connection.
//!
//! An earlier version `split()` the socket and read it in a second task; that task, its future
//! and the lock between the halves were about a third of an idle connection's memory. With one
//! task the client's own answers cannot wait for room in the queue this task drains, so they
//! never wait (see `hub/outbox.rs`); the queue is drained before the next frame is read, which
//! keeps them bounded.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use natter_protocol::{close, Auth, ClientMessage, ErrorCode, ServerMessage};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::address::{AddrKey, ClientAddr};
use crate::budget::{self, FrameBudget, Payment};
use crate::client::{Client, Opened};
use crate::edge::{bearer, check_origin, client_of, parse_after, ApiError, Query, MAX_PAGE_CHARS};
use crate::hub::{Control, Frame, Hub, Outgoing, Receiver, Refusal, Since, Slot};
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::wire;
use tungstenite::protocol::WebSocketConfig;

/// How long a socket opened without credentials in its URL may take to send its `auth` frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the hub waits for a close frame to be written to a peer that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Upper bound of tungstenite's write buffer (a history frame can be a few MiB at most).
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;

/// How long a connection that is let go without a close handshake (an oversized frame, a peer
/// that does not read, one cut for sending far too much) is held open after the close frame, so
/// the peer can read it before the socket closes under it.
const LINGER: Duration = Duration::from_secs(2);

/// tungstenite's read buffer per connection (its 128 KiB default costs ~130 KB each). It is
/// allocated and zero-filled for every connection up front, idle or not, so it was the largest
/// single item of an idle connection's memory; client frames are small (a bigger one grows the
/// buffer for that connection only).
const READ_BUFFER: usize = 512;

/// Frames are buffered up to this many bytes and written together on flush: under load a
/// connection's queue holds several frames, and one `write` per frame was the largest cost of
/// a delivery. Allocated only once something is written.
const WRITE_BUFFER: usize = 8 * 1024;

/// Most frames taken from the queue per flush (keeps one busy connection from holding its
/// worker thread for long).
const MAX_BATCH: usize = 64;

/// The query of `/ws/chat`; strings so that bad values get our own clear message.
#[derive(Deserialize)]
pub(crate) struct ChatQuery {
    session: Option<String>,
    token: Option<String>,
    page: Option<String>,
    after: Option<String>,
}

/// Validated connection parameters.
#[derive(Debug)]
pub(crate) struct Params {
    /// Who the connection is, when the URL (or an `Authorization` header) said so; `None` means
    /// the first frame must be an `auth`.
    who: Option<Box<Principal>>,
    /// Send `welcome` before the history: the client presented a token or asked for a session.
    /// A connection that gave the original widget's `?session=` starts with `history`, as before.
    welcome: bool,
    /// The page the widget is on (the original widget's `page` parameter), at most
    /// `MAX_PAGE_CHARS` characters.
    page: Option<String>,
    /// The browser's `User-Agent` (shown to operators); boxed, as every byte here is in every
    /// idle connection (see `idle_connection_stays_small`).
    browser: Option<Box<str>>,
    /// Resume point, or the recent history.
    since: Since,
    /// The client's address (its budget key).
    addr: AddrKey,
    /// The connection's place among its forwarded address's (`--max-connections-per-address`
    /// behind a `--trusted-proxy`; a direct client's socket holds one already).
    held: Option<Slot>,
    /// The connection's frame budget, from the upgrade on: frames sent before `auth` draw on it
    /// too, and the client carries on with what is left.
    budget: FrameBudget,
}

fn clip_page(page: Option<String>) -> Option<String> {
    page.filter(|p| !p.is_empty()).map(|p| p.chars().take(MAX_PAGE_CHARS).collect())
}

impl ChatQuery {
    /// Checks the query (and a bearer token); a refusal becomes a 400 or 401.
    fn validate(self, hub: &Hub, headers: &HeaderMap, client: ClientAddr) -> Result<Params, Refusal> {
        let since = parse_after(self.after.as_deref())?;
        let page = clip_page(self.page);
        let addr = client.key();
        let budget = FrameBudget::full(hub.config().frame_budget, Instant::now());
        let token = self.token.or_else(|| bearer(headers));
        let browser = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|b| b.chars().take(256).collect::<String>().into_boxed_str());
        if token.is_none() && self.session.is_none() {
            return Ok(Params { who: None, welcome: true, page, browser, since, addr, held: None, budget });
        }
        let who = hub.identity().authenticate(token.as_deref(), self.session.as_deref())?;
        Ok(Params {
            welcome: token.is_some(),
            who: Some(Box::new(who)),
            page,
            browser,
            since,
            addr,
            held: None,
            budget,
        })
    }
}

/// `GET /ws/chat`.
pub(crate) async fn upgrade(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<ChatQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&hub, &headers)?;
    let client = client_of(&extensions);
    let mut params = query.validate(&hub, &headers, client)?;
    let ws = ws.map_err(|e| {
        // Most often a reverse proxy that does not pass the `Upgrade` header on.
        ApiError::with_status(
            StatusCode::UPGRADE_REQUIRED,
            Refusal::new(
                ErrorCode::InvalidMessage,
                format!(
                    "/ws/chat is a WebSocket endpoint and this request is not a WebSocket upgrade ({}); \
                     a proxy in front of the hub must pass the Upgrade and Connection headers on",
                    e.body_text()
                ),
            ),
        )
    })?;
    if client.forwarded && hub.limits().connections_per_address() > 0 {
        params.held = Some(hub.hold_connection(client.key())?);
    }
    // axum's upgrade has checked the request; the socket is built here, over the meter that
    // charges every frame before tungstenite parses it (`crate::wire`).
    drop(ws);
    let max = hub.config().max_frame;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Queued frames are fed into this buffer and flushed together (see `send_batch`); the
        // cap only bounds a pathological case.
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_frame_size(Some(max))
        .max_message_size(Some(max));
    let h = hub.clone();
    let addr = Some(params.addr);
    Ok(wire::accept(&hub, &headers, &extensions, addr, config, move |socket| {
        drive(socket, h, Box::new(params))
    })?)
}

/// Whether a read error is tungstenite refusing an oversized frame or message.
fn is_too_large(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Capacity(_))
}

/// What a connection does after a step of its loop or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Carry on.
    Continue,
    /// Send a close frame with this code and reason, then end.
    Close {
        /// The close code (see `natter_protocol::close`).
        code: u16,
        /// The close frame's reason.
        reason: &'static str,
    },
    /// The socket is gone (the peer left, a write failed): end without a close frame.
    Gone,
}

impl Next {
    /// Close with `code` and its usual reason.
    fn close(code: u16) -> Next {
        Next::Close { code, reason: reason(code) }
    }
}

/// Runs one connection until it ends: [`open`], then [`Connection::serve`], then
/// [`Connection::finish`]. Generic over the socket so tests can use channels.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// moves its arguments into locals of its state machine, and the socket then took its space
/// twice in every connection's task; the parameters come boxed, so the task keeps 8 bytes for
/// them rather than all of them. For the same reason the socket stays here and the rest
/// borrows it, and every await that is not part of an idle connection's wait is boxed: an
/// idle connection's memory is this future's size, which `tests::idle_connection_stays_small`
/// pins.
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(crate) fn drive<S>(
    mut socket: S,
    hub: Hub,
    params: Box<Params>,
) -> impl std::future::Future<Output = ()> + Send
where
    S: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send,
{
    async move {
        // The connection's place goes with its queue; the rest of the box goes to `open`, which
        // frees it: an idle connection keeps none of it.
        let mut params = params;
        let held = params.held.take();
        let (outbox, rx, control, _live) = hub.open_connection(held.map(Box::new), Some(params.addr));
        let id = outbox.id;
        tracing::debug!(connection = id, "connected");
        let Some(client) = Box::pin(open(&mut socket, &hub, outbox, params)).await else { return };
        let mut connection = Connection {
            socket: &mut socket,
            shutdown: hub.shutdown_signal(),
            hub: &hub,
            rx,
            control,
            client: Some(client),
            id,
        };
        let next = connection.serve().await;
        // Boxed: the close phase's timers would otherwise widen every idle connection's state.
        Box::pin(connection.finish(next)).await;
    }
}

/// Learns who the connection is (from the URL, or from its `auth` frame), queues the
/// `welcome`, subscribes the connection to its conversation and queues its history; when any of
/// that fails, tells the peer why (an `error` frame and a close) and returns `None`.
async fn open<S>(
    socket: &mut S,
    hub: &Hub,
    outbox: crate::hub::Outbox,
    mut params: Box<Params>,
) -> Option<Client>
where
    S: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let who = match params.who.take() {
        Some(who) => *who,
        None => authenticate(socket, hub, &mut params).await?,
    };
    if params.welcome || who.issued {
        let mut welcome = who.welcome();
        welcome.budgets = Some(hub.config().budgets());
        outbox.send(crate::hub::encode(&ServerMessage::Welcome(welcome)));
    }
    let Params { page, browser, since, addr, budget, .. } = *params;
    let opened = Opened { page, browser, since, addr, budget };
    match Client::start(hub.clone(), outbox, who, opened).await {
        Ok(client) => Some(client),
        Err(refusal) => {
            // A resume refused by `--max-replay-in-flight`, an address past
            // `--max-conversations-per-address`, or a conversation past `--max-conversations`,
            // is a busy hub, not a fault: the close says to come back after a delay rather than
            // at once.
            let (code, reason) = match refusal.code {
                ErrorCode::RateLimited => (close::RATE_LIMITED, "busy for this client: reconnect later"),
                ErrorCode::Unavailable => (close::GOING_AWAY, "the hub is full: reconnect later"),
                _ => (close::INTERNAL, "could not read history"),
            };
            refuse_and_close(socket, hub, &refusal, code, reason).await;
            None
        }
    }
}

/// Sends an `error` frame and a close, counting the refusal (this is where it leaves the hub).
async fn refuse_and_close<S>(socket: &mut S, hub: &Hub, refusal: &Refusal, code: u16, reason: &'static str)
where
    S: Sink<Message> + Unpin,
{
    hub.metrics().refusal(refusal.code);
    let frame = Message::Text(crate::hub::encode(&refusal.frame()));
    if socket.send(frame).await.is_ok() {
        let _ = socket.send(close_message(code, reason)).await;
    }
}

/// Reads frames until the `auth` frame, for at most [`AUTH_TIMEOUT`]: who the connection is,
/// with its `after` and `page` taken into `params`. Frames before it are refused (`error`,
/// the connection carries on); a refused `auth` closes the connection with the close code that
/// says what to do (4401: a fresh token; 4003: a new session). `None` when it ended.
async fn authenticate<S>(socket: &mut S, hub: &Hub, params: &mut Params) -> Option<Principal>
where
    S: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + AUTH_TIMEOUT;
    let mut shutdown = hub.shutdown_signal();
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = tokio::time::sleep_until(deadline) => {
                let r = Refusal::new(ErrorCode::Unauthorized, "no `auth` frame within 10 s of connecting");
                refuse_and_close(socket, hub, &r, close::POLICY, "no auth frame").await;
                return None;
            }
            _ = crate::hub::stopped(&mut shutdown) => {
                let _ = socket.send(close_message(close::GOING_AWAY, reason(close::GOING_AWAY))).await;
                return None;
            }
        };
        let len = match &frame {
            Some(Ok(Message::Text(text))) => Some(text.len()),
            Some(Ok(Message::Binary(b))) => Some(b.len()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) if wire::is_cut(e) => None,
            _ => return None,
        };
        let Some(len) = len else {
            // Cut by the meter on the wire (`crate::wire`).
            let _ = socket.send(close_message(close::RATE_LIMITED, crate::client::CUT_REASON)).await;
            return None;
        };
        // Frames before `auth` draw on the connection's budget like every other frame.
        match params.budget.pay(hub, params.addr, budget::cost(len, 1), None) {
            Payment::Paid => {}
            Payment::Refused(r) => {
                hub.metrics().refusal(r.code);
                if socket.send(Message::Text(crate::hub::encode(&r.frame()))).await.is_err() {
                    return None;
                }
                continue;
            }
            Payment::Cut => {
                let _ = socket.send(close_message(close::RATE_LIMITED, crate::client::CUT_REASON)).await;
                linger(socket, &mut shutdown).await;
                return None;
            }
        }
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            _ => {
                let r =
                    Refusal::new(ErrorCode::BadJson, "binary frames are not accepted; send JSON text frames");
                hub.metrics().refusal(r.code);
                if socket.send(Message::Text(crate::hub::encode(&r.frame()))).await.is_err() {
                    return None;
                }
                continue;
            }
        };
        let auth: Auth = match crate::client::parse(text.as_str()) {
            Ok(ClientMessage::Auth(auth)) => auth,
            Ok(other) => {
                let r = Refusal::new(
                    ErrorCode::BadSession,
                    format!(
                        "this connection has not said who it is: send an `auth` frame first ({{\"type\":\"auth\"}} for a new session, with \"session\" to resume one the hub issued, with \"token\" for a signed-in user), not {:?}",
                        other.kind()
                    ),
                );
                let r = match &other {
                    ClientMessage::User(u) => r.with_id(u.id.clone()),
                    ClientMessage::Chat(c) => r.with_id(c.id.clone()),
                    _ => r,
                };
                hub.metrics().refusal(r.code);
                if socket.send(Message::Text(crate::hub::encode(&r.frame()))).await.is_err() {
                    return None;
                }
                continue;
            }
            Err(r) => {
                hub.metrics().refusal(r.code);
                if socket.send(Message::Text(crate::hub::encode(&r.frame()))).await.is_err() {
                    return None;
                }
                continue;
            }
        };
        if let Some(after) = auth.after {
            params.since = Since::After(after);
        }
        if auth.page.is_some() {
            params.page = clip_page(auth.page);
        }
        return match hub.identity().authenticate(auth.token.as_deref(), auth.session.as_deref()) {
            Ok(who) => Some(who),
            Err(r) => {
                let (code, why) = if r.code == ErrorCode::BadSession {
                    (close::BAD_SESSION, "session refused: connect without one for a new session")
                } else {
                    (close::UNAUTHORIZED, "identity refused: reconnect with a fresh token")
                };
                refuse_and_close(socket, hub, &r, code, why).await;
                None
            }
        };
    }
}

/// Connection `id`'s ping for the beat's current round (see `Hub::ping_payload`). Not async
/// and never inlined, so none of its work takes room in an idle connection's future.
#[inline(never)]
fn ping_message(hub: &Hub, id: u64, beat: &watch::Receiver<crate::hub::Beat>) -> Message {
    let round = beat.borrow().pings;
    Message::Ping(hub.ping_payload(id, round).to_vec().into())
}

/// Whether a pong's `payload` echoes one of connection `id`'s recent pings: the one proof that
/// the peer reads (see the module docs). Never inlined, like [`ping_message`].
#[inline(never)]
fn proves_reading(
    hub: &Hub,
    id: u64,
    beat: &watch::Receiver<crate::hub::Beat>,
    payload: axum::body::Bytes,
) -> bool {
    let round = beat.borrow().pings;
    hub.answers_ping(id, round, &payload)
}

/// One open connection: its socket, its queue, its protocol state.
struct Connection<'a, S> {
    socket: &'a mut S,
    hub: &'a Hub,
    rx: Receiver,
    control: Arc<Control>,
    /// For sends in progress (the loop itself learns of shutdown from the beat).
    shutdown: watch::Receiver<bool>,
    /// `Some` while the peer's side is open: frames are read only then, and the client is
    /// finished (rooms left, session detached) as soon as that side ends.
    client: Option<Client>,
    id: u64,
}

impl<S> Connection<'_, S>
where
    S: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send,
{
    /// The connection's loop: pings on the hub's beat, the queue drained to the socket, the
    /// client's frames read, until something says close or the peer is gone with nothing left
    /// to send.
    async fn serve(&mut self) -> Next {
        let idle_timeout = self.hub.config().idle_timeout;
        let mut heard = Instant::now();
        // Shared by all connections (see `Hub::beat`): the first ping comes within one
        // interval, and silence is still noticed within `--idle-timeout` + one interval.
        let mut beat = self.hub.beat();
        if beat.borrow().stopping {
            // Shutdown began before this connection subscribed: the first `changed` says so.
            beat.mark_changed();
        }
        loop {
            let next = tokio::select! {
                biased;
                changed = beat.changed() => {
                    if changed.is_err() || beat.borrow_and_update().stopping {
                        Next::close(close::GOING_AWAY)
                    } else if heard.elapsed() > idle_timeout {
                        Metrics::add(&self.hub.metrics().stale_closed, 1);
                        Next::close(close::STALE)
                    } else if self.client.as_ref().is_some_and(|c| c.expire_if_due(crate::clock::unix_secs())) {
                        // The identity token expired (checked on the beat, so within one ping
                        // interval): the error and the 4401 close are queued, the loop sends them.
                        Next::Continue
                    } else {
                        let ping = ping_message(self.hub, self.id, &beat);
                        Box::pin(send(self.socket, ping, &self.control, &mut self.shutdown)).await
                    }
                }
                // Before reading: the answers to one frame are written before the next is read,
                // which bounds what a client can queue for itself (see `Outbox::send`).
                item = self.rx.recv() => match item {
                    Some(Outgoing::Text(frame, held)) => {
                        Box::pin(send_batch(self.socket, frame, held, &mut self.rx, &self.control, &mut self.shutdown))
                            .await
                    }
                    Some(Outgoing::Close(code, reason)) => Next::Close { code, reason },
                    // The fan-out found the queue full (4001): close without draining it.
                    Some(Outgoing::Stop(code)) => Next::close(code),
                    None => Next::Gone,
                },
                frame = self.socket.next(), if self.client.is_some() => {
                    match frame {
                        // Only a pong echoing one of our pings proves the peer reads (see the
                        // module docs); the client has nothing to do with pongs. Taken by value:
                        // a borrowed frame would stay in every idle connection's future.
                        Some(Ok(Message::Pong(payload))) => {
                            if proves_reading(self.hub, self.id, &beat, payload) {
                                heard = Instant::now();
                            }
                        }
                        frame => {
                            if let Some(c) = self.client.as_mut() {
                                if !Box::pin(on_frame(c, frame)).await {
                                    // The peer's side ended; an oversized frame left an answer
                                    // and a close in the queue, which the loop still sends.
                                    if let Some(c) = self.client.take() {
                                        Box::pin(c.finish()).await;
                                    }
                                }
                            }
                        }
                    }
                    Next::Continue
                }
            };
            if next != Next::Continue {
                return next;
            }
            if self.client.is_none() && self.rx.is_empty() {
                // The peer is gone and nothing is left to send.
                return Next::Gone;
            }
        }
    }

    /// Closes the connection: the close frame, the handshake or the 1009 linger, then the
    /// client's cleanup (rooms left, session detached) and the socket.
    async fn finish(self, next: Next) {
        let Connection { socket, mut client, mut shutdown, id, rx, .. } = self;
        // Nothing more is queued: answers made from here on are dropped at once.
        drop(rx);
        // A peer that answered no ping for the idle timeout does not read, one whose queue
        // filled up (4001, or cut to make room for others' history) reads too slowly, and one
        // cut for sending far too much has cost enough: none gets a close handshake, during
        // which its frames would still be handled (and a deaf peer's socket, kernel buffers and
        // unwritten frames kept another CLOSE_GRACE while it goes on sending). Their close
        // frame waits behind what they have not read, so it gets LINGER to be written, and
        // only if it was are their frames read and dropped for at most LINGER, so a peer that
        // does read sees the close frame rather than a reset. A deaf reader cut to make room
        // used to hold its unwritten answer for 10 s more.
        let let_go = matches!(
            next,
            Next::Close { code: close::STALE | close::RATE_LIMITED | close::SLOW_CONSUMER, .. }
        );
        if let Next::Close { code, reason } = next {
            tracing::debug!(connection = id, code, reason, "closing");
            let grace = if let_go { LINGER } else { CLOSE_GRACE };
            let sent = tokio::time::timeout(grace, socket.send(close_message(code, reason))).await.is_ok();
            if let_go {
                if sent {
                    Box::pin(linger(socket, &mut shutdown)).await;
                }
            } else if code == close::TOO_BIG {
                // The oversized frame's payload was never read, so reading cannot go on; and
                // closing the socket with it unread makes the kernel send a reset, which can
                // destroy our error and close frames before the peer reads them. Linger (like an
                // HTTP server's lingering close) so the peer reads them and closes first.
                tokio::select! {
                    _ = tokio::time::sleep(LINGER) => {}
                    _ = crate::hub::stopped(&mut shutdown) => {}
                }
            } else if let Some(c) = client.as_mut() {
                // The close handshake: give the peer time to read our close frame and answer it,
                // rather than cutting the TCP connection under it. Frames it sent meanwhile are
                // still handled, as they would be had they arrived just before.
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    while Box::pin(on_frame(c, socket.next().await)).await {}
                })
                .await;
            }
        }
        if let Some(c) = client.take() {
            Box::pin(c.finish()).await;
        }
        if !let_go {
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.close()).await;
        }
        tracing::debug!(connection = id, "disconnected");
    }
}

/// Reads and drops what the peer sends until it closes its side, for at most [`LINGER`] (or
/// until shutdown): the peer can read the close frame before the socket closes, and unread data
/// left in the socket would make the kernel answer with a reset that can destroy it.
async fn linger<S>(socket: &mut S, shutdown: &mut watch::Receiver<bool>)
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let drain = async {
        while let Some(Ok(m)) = socket.next().await {
            if matches!(m, Message::Close(_)) {
                return;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        _ = tokio::time::sleep(LINGER) => {}
        _ = crate::hub::stopped(shutdown) => {}
    }
}

/// Hands one read result to the client; `false` when the peer's side has ended (closed, gone,
/// or a read error, after queueing the 1009 answer for an oversized frame).
async fn on_frame(client: &mut Client, next: Option<Result<Message, tungstenite::Error>>) -> bool {
    match next {
        Some(Ok(Message::Text(text))) => client.on_text(text.as_str()).await,
        Some(Ok(Message::Binary(b))) => client.on_binary(b.len()),
        // Pings are answered by the library; raw frames are only ever sent, never read.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
        Some(Ok(Message::Close(_))) | None => return false,
        Some(Err(e)) => {
            if is_too_large(&e) {
                client.on_too_large();
                client.close_after_queue(close::TOO_BIG, "frame too large");
            } else if wire::is_cut(&e) {
                client.close_after_queue(close::RATE_LIMITED, crate::client::CUT_REASON);
            } else {
                tracing::debug!(error = %e, "read error");
            }
            return false;
        }
    }
    true
}

fn reason(code: u16) -> &'static str {
    match code {
        close::SLOW_CONSUMER => "send queue full: reconnect and resume",
        close::STALE => "no answer to pings",
        close::GOING_AWAY => "hub shutting down",
        close::UNAUTHORIZED => "identity token expired or refused",
        _ => "closed by the hub",
    }
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: code.into(), reason: reason.into() }))
}

/// Writes `first` and whatever else is already queued (up to [`MAX_BATCH`] frames) with one
/// flush, giving up like [`send`]. A close found in the queue ends the batch and is what comes
/// next. What a frame holds (`first_held`, see [`Outgoing::Text`]) is given back once the flush
/// has handed the batch to the kernel, or when the connection gives up.
async fn send_batch<Si>(
    sink: &mut Si,
    first: Frame,
    first_held: Option<Box<Slot>>,
    rx: &mut Receiver,
    control: &Control,
    shutdown: &mut watch::Receiver<bool>,
) -> Next
where
    Si: Sink<Message> + Unpin,
{
    let work = async {
        let mut held: Vec<Box<Slot>> = first_held.into_iter().collect();
        sink.feed(Message::Text(first)).await.map_err(|_| Next::Gone)?;
        let mut then = Next::Continue;
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(Outgoing::Text(frame, h)) => {
                    held.extend(h);
                    sink.feed(Message::Text(frame)).await.map_err(|_| Next::Gone)?;
                }
                Ok(Outgoing::Close(code, reason)) => {
                    then = Next::Close { code, reason };
                    break;
                }
                Ok(Outgoing::Stop(code)) => {
                    then = Next::close(code);
                    break;
                }
                Err(_) => break,
            }
        }
        sink.flush().await.map_err(|_| Next::Gone)?;
        drop(held);
        Ok::<_, Next>(then)
    };
    tokio::select! {
        r = work => r.unwrap_or_else(|gone| gone),
        code = control.closed() => Next::close(code),
        _ = crate::hub::stopped(shutdown) => Next::close(close::GOING_AWAY),
    }
}

/// Sends one message, giving up when the connection is told to close meanwhile (a peer that
/// does not read would otherwise hold the writer forever).
async fn send<Si>(
    sink: &mut Si,
    message: Message,
    control: &Control,
    shutdown: &mut watch::Receiver<bool>,
) -> Next
where
    Si: Sink<Message> + Unpin,
{
    tokio::select! {
        r = sink.send(message) => if r.is_ok() { Next::Continue } else { Next::Gone },
        code = control.closed() => Next::close(code),
        _ = crate::hub::stopped(shutdown) => Next::close(close::GOING_AWAY),
    }
}

#[cfg(test)]
mod tests {
    //! The connection driven over channels instead of a socket.

    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::{sink, stream};
    use natter_protocol::ServerMessage;
    use tokio::sync::mpsc;

    use super::*;
    use crate::Config;

    /// A socket made of a sink and a stream, like a WebSocket is both.
    struct Duplex<Si, St> {
        sink: Si,
        stream: St,
    }

    impl<Si: Sink<Message> + Unpin, St: Unpin> Sink<Message> for Duplex<Si, St> {
        type Error = Si::Error;

        fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_ready(cx)
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            Pin::new(&mut self.sink).start_send(item)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_flush(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_close(cx)
        }
    }

    impl<Si: Unpin, St: Stream + Unpin> Stream for Duplex<Si, St> {
        type Item = St::Item;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
            Pin::new(&mut self.stream).poll_next(cx)
        }
    }

    /// A socket whose frames go to `out` and come from `input`.
    fn duplex(
        out: mpsc::Sender<Message>,
        input: mpsc::Receiver<Result<Message, tungstenite::Error>>,
    ) -> impl Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send {
        let sink = Box::pin(sink::unfold(out, |tx, m: Message| async move {
            tx.send(m).await.map_err(|_| "closed")?;
            Ok::<_, &'static str>(tx)
        }));
        let stream =
            Box::pin(stream::unfold(input, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) }));
        Duplex { sink, stream }
    }

    fn unit_params(hub: &Hub) -> Params {
        let addr = AddrKey::of(std::net::IpAddr::from([127, 0, 0, 1]));
        let budget = FrameBudget::full(hub.config().frame_budget, Instant::now());
        Params {
            who: None,
            welcome: true,
            page: None,
            browser: None,
            since: Since::Recent,
            addr,
            held: None,
            budget,
        }
    }

    fn test_hub() -> Hub {
        test_hub_with(Config::for_tests())
    }

    fn test_hub_with(config: Config) -> Hub {
        Hub::for_tests(config)
    }

    fn text(m: Option<Message>) -> ServerMessage {
        match m {
            Some(Message::Text(t)) => serde_json::from_str(t.as_str()).expect("json"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// An idle connection's memory is mostly its task's future: `drive`'s state machine (the
    /// socket aside, which is the same whatever the code does). Boxing every await that an idle
    /// connection is not waiting in keeps it small; this pins it, with a little headroom, so a
    /// tidy-up cannot undo that silently (before the connection was split into open, serve and
    /// finish it was 736 bytes).
    #[tokio::test]
    async fn idle_connection_stays_small() {
        /// The state machine's size beside the socket when this was written, in bytes.
        const IDLE_FUTURE_BYTES: usize = 640;
        const HEADROOM: usize = 64;
        let hub = test_hub();
        let (out_tx, _out_rx) = mpsc::channel::<Message>(1);
        let (_in_tx, in_rx) = mpsc::channel::<Result<Message, tungstenite::Error>>(1);
        let socket = duplex(out_tx, in_rx);
        let socket_size = std::mem::size_of_val(&socket);
        let params = Box::new(unit_params(&hub));
        let connection = drive(socket, hub, params);
        let own = std::mem::size_of_val(&connection) - socket_size;
        println!("drive future: {own} bytes beside a {socket_size}-byte socket");
        assert!(
            own <= IDLE_FUTURE_BYTES + HEADROOM,
            "an idle connection's future grew to {own} bytes (was {IDLE_FUTURE_BYTES}): box the new await"
        );
    }

    /// A peer that keeps sending (pings here) but never reads answers no ping: it is closed
    /// with 4002 and let go after a short linger, not after a close handshake it will never
    /// complete, during which it could go on sending. Paused time: the clock only moves when
    /// everything waits.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_is_let_go_at_the_idle_timeout() {
        let mut config = Config::for_tests();
        config.ping_interval = Duration::from_secs(1);
        config.idle_timeout = Duration::from_secs(3);
        let hub = test_hub_with(config);
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(1024);
        let (in_tx, in_rx) = mpsc::channel::<Result<Message, tungstenite::Error>>(16);
        let params = Box::new(unit_params(&hub));
        let started = Instant::now();
        let task = tokio::spawn(drive(duplex(out_tx, in_rx), hub.clone(), params));
        in_tx.send(Ok(Message::text(r#"{"type":"auth"}"#))).await.expect("send");
        // It writes every 100 ms and never answers a ping (never reads what the hub sends).
        let pinger = tokio::spawn(async move {
            while in_tx.send(Ok(Message::Ping(Default::default()))).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        task.await.expect("drive ends");
        let took = started.elapsed();
        // The idle timeout, plus at most one ping interval to notice, plus the linger: not a
        // close handshake of CLOSE_GRACE, during which it would go on sending.
        let most = Duration::from_secs(3 + 1) + LINGER + Duration::from_millis(500);
        assert!(took < most, "let go after {took:?}");
        let mut close = None;
        while let Ok(m) = out_rx.try_recv() {
            if let Message::Close(Some(f)) = m {
                close = Some(u16::from(f.code));
            }
        }
        assert_eq!(close, Some(close::STALE));
        pinger.abort();
        assert!(hub.drained(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn drives_a_connection_over_channels() {
        let hub = test_hub();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
        let (in_tx, in_rx) = mpsc::channel::<Result<Message, tungstenite::Error>>(16);
        let task = tokio::spawn(drive(duplex(out_tx, in_rx), hub.clone(), Box::new(unit_params(&hub))));

        // Nothing but `auth` is taken before the connection says who it is.
        in_tx.send(Ok(Message::text(r#"{"type":"ping"}"#))).await.expect("send");
        assert!(
            matches!(text(out_rx.recv().await), ServerMessage::Error(e) if e.code == ErrorCode::BadSession)
        );
        in_tx.send(Ok(Message::text(r#"{"type":"auth"}"#))).await.expect("send");
        let ServerMessage::Welcome(w) = text(out_rx.recv().await) else { panic!("welcome first") };
        assert!(w.session.is_some() && w.user.is_none());
        assert!(matches!(text(out_rx.recv().await), ServerMessage::History(h) if h.messages.is_empty()));
        in_tx.send(Ok(Message::text(r#"{"type":"ping","nonce":1}"#))).await.expect("send");
        assert!(
            matches!(text(out_rx.recv().await), ServerMessage::Pong(p) if p.nonce.as_ref().map(|n| n.get()) == Some("1"))
        );
        in_tx.send(Ok(Message::text("nope"))).await.expect("send");
        assert!(matches!(text(out_rx.recv().await), ServerMessage::Error(_)));

        hub.begin_shutdown();
        loop {
            match out_rx.recv().await {
                Some(Message::Close(Some(f))) => {
                    assert_eq!(u16::from(f.code), close::GOING_AWAY);
                    break;
                }
                Some(_) => continue,
                None => panic!("no close frame"),
            }
        }
        drop(in_tx);
        task.await.expect("drive ends");
        assert!(hub.drained(Duration::from_secs(5)).await);
    }
}
