//! The HTTP transport: the fallback chat API (`POST /api/chat/messages`, long-poll
//! `GET /api/chat/poll`), the room API, `/healthz` and `/metrics`.
//!
//! Errors are answered as the same JSON `error` frame the WebSocket sends
//! (`{"type":"error","code":…,"message":…}`) with a fitting status code (see [`crate::edge`]).
//!
//! Credentials come in headers: `Authorization: Bearer <identity token>` for a signed-in user,
//! `X-Natter-Session` for an anonymous visitor (`?session=` and the body's `sessionId` are still
//! read, for clients of the original widget's format). A request without either gets a session
//! issued on the spot, sent back in the `X-Natter-Session` header of the answer.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::{
    validate_room_id, ChatSend, CreateRoom, ErrorCode, Member, RoomInfo, RoomList, ServerMessage, UserSend,
    PROTOCOL_VERSION,
};
use serde::Deserialize;
use std::sync::Arc;

use crate::config::RoomAccess;
use crate::edge::{bearer, check_origin, parse_after, who, with_session, ApiError, Query};
use crate::hub::{Hub, Refusal};
use crate::identity::Principal;
use crate::store::ConversationKey;

/// Query of the chat API.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    session: Option<String>,
    after: Option<String>,
    page: Option<String>,
    /// The poll reads this room instead of the session's conversation.
    room: Option<String>,
}

/// The body of `POST /api/chat/messages`: a `user` message, whose `type` may be left out.
#[derive(Debug, Deserialize)]
struct PostBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    send: UserSend,
}

/// `POST /api/chat/messages`: a `user` message (the original widget's JSON), or a `chat` to a
/// room (the HTTP fallback of a room member); answers with its `ack`.
pub(crate) async fn post_message(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_origin(hub.config(), &headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::new(
                ErrorCode::TooLarge,
                format!("body larger than the hub's limit of {} bytes", hub.config().max_frame),
            )
        } else {
            Refusal::new(ErrorCode::BadJson, format!("could not read the body: {e}"))
        }
    })?;
    // A good body is parsed once.
    let send = match serde_json::from_slice::<PostBody>(&body) {
        Ok(PostBody { kind: None, send }) => send,
        Ok(PostBody { kind: Some(k), send }) if k == UserSend::KIND => send,
        Ok(PostBody { kind: Some(k), .. }) if k == ChatSend::KIND => {
            let chat = serde_json::from_slice::<ChatSend>(&body)
                .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad `chat` message: {e}")))?;
            return post_chat(&hub, &headers, q.session.as_deref(), chat).await;
        }
        Ok(PostBody { kind: Some(k), .. }) => {
            let shown: String = k.chars().take(40).collect();
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("this endpoint takes `user` and `chat` messages, not {shown:?}"),
            )
            .into());
        }
        // Only a body that fails is looked at again, to say why (or to read what JSON allows
        // and serde's strict parse does not).
        Err(_) => crate::client::parse_user_body(&body)?,
    };
    let who = who(&hub, &headers, q.session.as_deref(), send.session_id.as_deref())?;
    let page = q.page.filter(|p| !p.is_empty());
    let browser = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let ack = hub.post_user(&who, send, page.as_deref(), browser).await?;
    Ok(with_session(&who, Json(ServerMessage::Ack(ack)).into_response()))
}

/// A room member's message over the HTTP fallback: the room must be one the sender may join
/// (it is created if needed); the name is checked like a `join`'s.
async fn post_chat(
    hub: &Hub,
    headers: &HeaderMap,
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
    hub.ensure_room(&room).await.map_err(in_room)?;
    let member = Member { id: who.member_id.to_string(), name, verified };
    let ack = hub.post_chat(&who.conversation, &room, &member, chat.id.clone(), chat.message.clone()).await;
    let ack = ack.map_err(in_room)?;
    Ok(with_session(&who, Json(ServerMessage::Ack(ack)).into_response()))
}

/// `GET /api/chat/poll?session=&after=`: the messages after `after`, at once when there are
/// some, else when the next one arrives or after `--poll-timeout` (an empty `history`). With
/// `room=`, the same for that room (one the caller may join): a room member's HTTP fallback.
pub(crate) async fn poll(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    check_origin(hub.config(), &headers)?;
    let since = parse_after(q.after.as_deref())?;
    let who = who(&hub, &headers, q.session.as_deref(), None)?;
    let key = match q.room {
        Some(room) => {
            let in_room = |r: Refusal| r.in_room(Some(&room));
            checked_room(&room).map_err(in_room)?;
            hub.identity().may_join(&who, &room).map_err(in_room)?;
            ConversationKey::Room(room.as_str().into())
        }
        None => ConversationKey::Session(who.conversation.clone()),
    };
    let history = hub.poll(key, since).await?;
    Ok(with_session(&who, Json(ServerMessage::History(history)).into_response()))
}

/// Who may use the room API: anyone with `--room-access open` (`None`); with `identified`, the
/// signed-in user of the request's bearer token, whose `rooms` claim the caller then checks.
fn room_user(hub: &Hub, headers: &HeaderMap) -> Result<Option<Principal>, Refusal> {
    if hub.config().room_access() == RoomAccess::Open {
        return Ok(None);
    }
    let Some(token) = bearer(headers) else {
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            "the room API of this hub is for signed-in users: send `Authorization: Bearer <identity token>`",
        ));
    };
    hub.identity().user(&token).map(Some)
}

/// `GET /api/rooms`: every room, or with `--room-access identified` the rooms the caller's
/// `rooms` claim covers.
pub(crate) async fn list_rooms(
    State(hub): State<Hub>,
    headers: HeaderMap,
) -> Result<Json<RoomList>, ApiError> {
    let user = room_user(&hub, &headers)?;
    let mut list = hub.rooms().await?;
    if let Some(user) = &user {
        list.rooms.retain(|r| hub.identity().may_join(user, &r.room).is_ok());
    }
    Ok(Json(list))
}

fn checked_room(room: &str) -> Result<(), Refusal> {
    validate_room_id(room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
}

/// `POST /api/rooms`: 201 with the room's info, 409 when it exists, 400 for a bad id.
pub(crate) async fn create_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Result<Json<CreateRoom>, JsonRejection>,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    check_origin(hub.config(), &headers)?;
    let Json(create) = body
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room body: {}", e.body_text())))?;
    checked_room(&create.room)?;
    if let Some(user) = room_user(&hub, &headers)? {
        hub.identity().may_join(&user, &create.room)?;
    }
    if create.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(Refusal::new(ErrorCode::InvalidMessage, "`metadata` must be a JSON object").into());
    }
    let room = create.room.clone();
    match hub.create_room(create.room, create.name, create.metadata).await? {
        Some(info) => Ok((StatusCode::CREATED, Json(info))),
        None => Err(Refusal::new(ErrorCode::RoomExists, format!("room {room:?} already exists")).into()),
    }
}

/// `GET /api/rooms/{room}`: the room's info with its members.
pub(crate) async fn room_info(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    checked_room(&room)?;
    if let Some(user) = room_user(&hub, &headers)? {
        hub.identity().may_join(&user, &room)?;
    }
    match hub.room_info(&room).await? {
        Some(info) => Ok(Json(info)),
        None => Err(Refusal::new(ErrorCode::UnknownRoom, format!("no room {room:?}")).into()),
    }
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
