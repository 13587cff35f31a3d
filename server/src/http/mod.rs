//! The HTTP transport: the fallback chat API (`POST /api/chat/messages`, long-poll
//! `GET /api/chat/poll`), the room API ([`rooms`]), `/healthz` and `/metrics`.
//!
//! Every `/api` request has passed `edge::admit` (its client address and budget; a CORS
//! preflight, answered by the CORS layer, `edge::admit_preflight` instead), so a client
//! that asks for one new session after another spends its address's budget like any other.
//! Errors are answered as the same JSON `error` frame the WebSocket sends
//! (`{"type":"error","code":…,"message":…}`) with a fitting status code (see [`crate::edge`]).
//!
//! Credentials come in headers: `Authorization: Bearer <identity token>` for a signed-in user,
//! `X-Natter-Session` for an anonymous visitor (`?session=` and the body's `sessionId` are still
//! read, for clients of the original widget's format). A request without either gets a session
//! issued on the spot, sent back in the `X-Natter-Session` header of the answer.

mod rooms;

pub(crate) use rooms::{create_room, delete_room, list_rooms, put_room, room_info};

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use natter_protocol::{validate_room_id, ChatSend, ErrorCode, Member, ServerMessage, PROTOCOL_VERSION};
use serde::Deserialize;

use crate::client::Posted;
use crate::edge::{
    check_origin, client_of, parse_after, read_body, who, with_session, ApiError, Query, MAX_PAGE_CHARS,
};
use crate::hub::Since;
use crate::hub::{Hub, Refusal, Replay};
use crate::store::ConversationKey;

/// Query of the chat API.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    session: Option<String>,
    after: Option<String>,
    page: Option<String>,
    /// The poll reads this room instead of the session's conversation.
    room: Option<String>,
    /// The poll reads these rooms (comma-separated) instead: see [`poll`].
    rooms: Option<String>,
}

/// `POST /api/chat/messages`: a `user` message (the original widget's JSON, whose `type` may be
/// left out), or a `chat` to a room (the HTTP fallback of a room member); answers with its
/// `ack`.
pub(crate) async fn post_message(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<SessionQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    check_origin(&hub, &headers)?;
    let body = read_body(&hub, body).await?;
    let send = match crate::client::parse_body(&body)? {
        Posted::User(send) => send,
        Posted::Chat(chat) => {
            return post_chat(&hub, &headers, &extensions, q.session.as_deref(), chat).await
        }
    };
    let who = who(&hub, &headers, q.session.as_deref(), send.session_id.as_deref())?;
    let page: Option<String> =
        q.page.filter(|p| !p.is_empty()).map(|p| p.chars().take(MAX_PAGE_CHARS).collect());
    let browser = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    // A refusal keeps the session issued with it too, so the client resends into the same
    // conversation (resent without it, a first message would open, and pay for, another).
    let answer = match hub.post_user(&who, send, page.as_deref(), browser, client_of(&extensions).key()).await
    {
        Ok(ack) => Json(ServerMessage::Ack(ack)).into_response(),
        Err(refusal) => ApiError::from(refusal).into_response(),
    };
    Ok(with_session(&who, answer))
}

/// A room member's message over the HTTP fallback: the room must be one the sender may join
/// (it is created if needed, from the address's `--room-creations-per-hour`); the name is
/// checked like a `join`'s.
async fn post_chat(
    hub: &Hub,
    headers: &HeaderMap,
    extensions: &Extensions,
    session: Option<&str>,
    chat: ChatSend,
) -> Result<Response, ApiError> {
    let in_room = |r: Refusal| r.in_room(Some(&chat.room)).with_id(chat.id.clone());
    checked_room(&chat.room).map_err(in_room)?;
    let who = who(hub, headers, session, None)?;
    hub.identity().may_join(&who, &chat.room).map_err(in_room)?;
    let (name, verified) = hub.identity().member_name(&who, chat.name.clone());
    if !verified {
        crate::client::check_member_name(name.as_deref()).map_err(in_room)?;
    }
    let room: Arc<str> = chat.room.as_str().into();
    let addr = client_of(extensions).key();
    hub.ensure_room(&room, addr).await.map_err(in_room)?;
    let member = Member { id: who.member_id.to_string(), name, verified };
    let ack =
        hub.post_chat(&who.conversation, &room, &member, chat.id.clone(), chat.message.clone(), addr).await;
    let ack = ack.map_err(in_room)?;
    Ok(with_session(&who, Json(ServerMessage::Ack(ack)).into_response()))
}

/// `GET /api/chat/poll?after=`: the messages after `after`, at once when there are some, else
/// when the next one arrives or after `--poll-timeout` (an empty `history`). With `room=`, the
/// same for that room (one the caller may join): a room member's HTTP fallback. With
/// `rooms=a,b&after=3,` (one `after` per room, empty for none), the same for several rooms in
/// one request ([`Hub::poll_rooms`]): a browser holds at most six connections to a host over
/// HTTP/1.1, and a member of five rooms polling each apart left none for sending. Each poll
/// holds a place of its client address (`--max-polls-per-address`) and of the hub's
/// (`--max-polls`) while it lasts.
pub(crate) async fn poll(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    check_origin(&hub, &headers)?;
    if let Some(rooms) = q.rooms.as_deref() {
        if q.room.is_some() {
            return Err(Refusal::new(ErrorCode::InvalidMessage, "give `room` or `rooms`, not both").into());
        }
        let who = who(&hub, &headers, q.session.as_deref(), None)?;
        let polls = room_polls(&hub, &who, rooms, q.after.as_deref())?;
        let addr = client_of(&extensions).key();
        let _held = hub.hold_poll(addr)?;
        let history = hub.poll_rooms(polls, addr).await?;
        return Ok(with_session(&who, json_text(history)));
    }
    let since = parse_after(q.after.as_deref())?;
    let who = who(&hub, &headers, q.session.as_deref(), None)?;
    // A session issued with this request has no history yet: it is not read.
    let fresh = who.issued && q.room.is_none();
    let key = match q.room {
        Some(room) => {
            let in_room = |r: Refusal| r.in_room(Some(&room));
            checked_room(&room).map_err(in_room)?;
            hub.identity().may_join(&who, &room).map_err(in_room)?;
            ConversationKey::Room(room.as_str().into())
        }
        None => ConversationKey::Session(who.conversation.clone()),
    };
    let addr = client_of(&extensions).key();
    let _held = hub.hold_poll(addr)?;
    let history = hub.poll(key, since, addr, fresh).await?;
    Ok(with_session(&who, json_text(history)))
}

/// Bytes of a long-poll's answer handed to the connection at a time.
const BODY_PIECE: usize = 16 * 1024;

/// A `200` whose body is a long-poll's `history`, already written as JSON text, sent in pieces
/// of [`BODY_PIECE`] bytes, each its own allocation: what was handed to the connection is freed
/// as it goes, and the answer's share of `--max-replay-in-flight` (`history.held`) is given
/// back with the last piece, when at most the connection's buffers (`--socket-send-buffer`,
/// hyper's 64 KiB) are left unsent. A client that asks and never reads keeps its address's
/// share taken, not a megabyte of the hub's memory per request.
fn json_text(mut history: Replay) -> Response {
    let json = history.encode();
    let held = history.held.take();
    let length = json.len();
    let pieces: Vec<Bytes> = json.as_bytes().chunks(BODY_PIECE).map(Bytes::copy_from_slice).collect();
    drop(json);
    let body = futures_util::stream::iter(pieces.into_iter().map(move |piece| {
        // The share lives as long as the stream: hyper drops it after the last piece.
        let _ = &held;
        Ok::<_, std::convert::Infallible>(piece)
    }));
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The rooms of a poll of several (`rooms=a,b&after=3,`), each one the caller may join, with
/// what the caller has seen of it: one `after` entry per room, an empty one (or no `after` at
/// all) asking for the room's recent history. At most `--max-rooms-per-connection` rooms, each
/// once.
fn room_polls(
    hub: &Hub,
    who: &crate::identity::Principal,
    rooms: &str,
    after: Option<&str>,
) -> Result<Vec<(ConversationKey, Since)>, Refusal> {
    let bad = |message: String| Refusal::new(ErrorCode::InvalidMessage, message);
    let ids: Vec<&str> = rooms.split(',').collect();
    let most = hub.config().max_rooms_per_connection as usize;
    if ids.len() > most {
        return Err(bad(format!(
            "a poll reads at most {most} rooms (--max-rooms-per-connection), got {}",
            ids.len()
        )));
    }
    let afters: Vec<Option<&str>> = match after {
        None => vec![None; ids.len()],
        Some(a) => a.split(',').map(Some).collect(),
    };
    if afters.len() != ids.len() {
        return Err(bad(format!(
            "`after` must give one seq per room of `rooms`, comma-separated (empty for none): got {} for {} rooms",
            afters.len(),
            ids.len()
        )));
    }
    let mut polls: Vec<(ConversationKey, Since)> = Vec::with_capacity(ids.len());
    for (id, after) in ids.into_iter().zip(afters) {
        let in_room = |r: Refusal| r.in_room(Some(id));
        checked_room(id).map_err(in_room)?;
        if polls.iter().any(|(k, _)| matches!(k, ConversationKey::Room(r) if &**r == id)) {
            return Err(bad(format!("room {id:?} is in `rooms` twice")));
        }
        hub.identity().may_join(who, id).map_err(in_room)?;
        polls.push((ConversationKey::Room(id.into()), parse_after(after).map_err(in_room)?));
    }
    Ok(polls)
}

/// Checks a room id, naming what is wrong.
pub(super) fn checked_room(room: &str) -> Result<(), Refusal> {
    validate_room_id(room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
}

/// `GET /healthz`: `ok`, or `degraded` (503) when the store is unhealthy.
pub(crate) async fn healthz(State(hub): State<Hub>) -> Response {
    let healthy = hub.store_healthy();
    let connections = hub.metrics().connections.load(std::sync::atomic::Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "connections": connections,
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(hub): State<Hub>) -> Response {
    let text = hub.metrics().render(&hub.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
