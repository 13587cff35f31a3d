//! The HTTP transport: the fallback chat API (`POST /api/chat/messages`, long-poll
//! `GET /api/chat/poll`), the room API, `/healthz` and `/metrics`.
//!
//! Every `/api` request has passed `edge::admit` (its client address and budget). Errors are
//! answered as the same JSON `error` frame the WebSocket sends
//! (`{"type":"error","code":…,"message":…}`) with a fitting status code (see [`crate::edge`]).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::{
    validate_room_id, validate_room_name, CreateRoom, ErrorCode, RoomInfo, RoomList, ServerMessage, UserSend,
    MAX_ROOM_METADATA_BYTES, PROTOCOL_VERSION, ROOM_PAGE_DEFAULT, ROOM_PAGE_MAX,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::edge::{check_origin, client_of, parse_after, parse_session, read_body, ApiError, MAX_PAGE_CHARS};
use crate::hub::{Hub, Refusal};

/// Query of the chat API.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    session: Option<String>,
    after: Option<String>,
    page: Option<String>,
}

/// The `type` of a `POST /api/chat/messages` body, which may be left out; the rest of the
/// body is skipped.
#[derive(Debug, Deserialize)]
struct BodyType<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

/// `POST /api/chat/messages`: a `user` message (the original widget's JSON); answers with its
/// `ack`.
pub(crate) async fn post_message(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
    body: Body,
) -> Result<Json<ServerMessage>, ApiError> {
    check_origin(hub.config(), &headers)?;
    let body = read_body(&hub, body).await?;
    // The `type` first (skipping the rest), then the message itself: `context` stays JSON text.
    match serde_json::from_slice::<BodyType<'_>>(&body) {
        Ok(BodyType { kind: None }) => {}
        Ok(BodyType { kind: Some(k) }) if k == "user" => {}
        Ok(BodyType { kind: Some(k) }) => {
            let shown: String = k.chars().take(40).collect();
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("this endpoint takes `user` messages only, not {shown:?}"),
            )
            .into());
        }
        Err(_) => return Err(crate::client::diagnose_user_body(&body).into()),
    }
    let send =
        serde_json::from_slice::<UserSend>(&body).map_err(|_| crate::client::diagnose_user_body(&body))?;
    let session = parse_session(
        q.session.as_deref().or(send.session_id.as_deref()),
        "`?session=<id>` or `sessionId` in the body",
    )?;
    let page: Option<String> =
        q.page.filter(|p| !p.is_empty()).map(|p| p.chars().take(MAX_PAGE_CHARS).collect());
    let ack = hub.post_user(&session, send, page.as_deref()).await?;
    Ok(Json(ServerMessage::Ack(ack)))
}

/// `GET /api/chat/poll?session=&after=`: the messages after `after`, at once when there are
/// some, else when the next one arrives or after `--poll-timeout` (an empty `history`). Each
/// poll holds a place of its client address (`--max-polls-per-address`) and of the hub's
/// (`--max-polls`) while it lasts.
pub(crate) async fn poll(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<SessionQuery>,
) -> Result<Json<ServerMessage>, ApiError> {
    check_origin(hub.config(), &headers)?;
    let session = parse_session(q.session.as_deref(), "`?session=<id>`")?;
    let since = parse_after(q.after.as_deref())?;
    let _held = hub.hold_poll(client_of(&extensions).key())?;
    let history = hub.poll(&session, since).await?;
    Ok(Json(ServerMessage::History(history)))
}

/// Query of `GET /api/rooms`; strings so that bad values get our own clear message.
#[derive(Debug, Deserialize)]
pub(crate) struct RoomsQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/rooms[?limit=N&cursor=C]`: one page of rooms by id (`limit` default 50, at most
/// 200) and, when there are more, the `next` cursor to pass back.
pub(crate) async fn list_rooms(
    State(hub): State<Hub>,
    Query(q): Query<RoomsQuery>,
) -> Result<Json<RoomList>, ApiError> {
    let limit = match q.limit.as_deref() {
        None | Some("") => ROOM_PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=ROOM_PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(Refusal::new(
                    ErrorCode::InvalidMessage,
                    format!("`limit` must be a whole number from 1 to {ROOM_PAGE_MAX}, got {l:?}"),
                )
                .into())
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            let shown: String = c.chars().take(40).collect();
            Refusal::new(
                ErrorCode::InvalidMessage,
                format!("`cursor` {shown:?} is not one this hub gave out; start again without it"),
            )
        })?),
    };
    let mut list = hub.rooms(after.as_deref(), limit).await?;
    list.next = list.next.map(|room| encode_cursor(&room));
    Ok(Json(list))
}

/// The cursor of the page after `room`: opaque to clients (hex of the last room id, so a
/// later change of what it holds breaks nobody who treats it as opaque).
fn encode_cursor(room: &str) -> String {
    room.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The room id a cursor stands for, if it is one this hub made.
fn decode_cursor(cursor: &str) -> Option<String> {
    if cursor.len() % 2 != 0 || cursor.len() > 2 * natter_protocol::MAX_ROOM_ID_LEN {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok()).collect();
    let room = String::from_utf8(bytes?).ok()?;
    validate_room_id(&room).ok()?;
    Some(room)
}

fn checked_room(room: &str) -> Result<(), Refusal> {
    validate_room_id(room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
}

/// Checks `Authorization: Bearer <key>` against `--api-key`. Without the flag, creating rooms
/// over HTTP is refused: anybody could otherwise fill the database with rooms.
fn check_api_key(hub: &Hub, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(key) = hub.config().api_key.as_deref().filter(|k| !k.is_empty()) else {
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            "creating rooms over HTTP is turned off on this hub: start it with --api-key (NATTER_API_KEY) and send \
             `Authorization: Bearer <key>`; rooms are also made by a `join`",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same_secret(g, key) => Ok(()),
        Some(_) => {
            Err(Refusal::new(ErrorCode::Unauthorized, "the API key does not match this hub's --api-key"))
        }
        None => Err(Refusal::new(
            ErrorCode::Unauthorized,
            "creating a room needs the hub's API key: send `Authorization: Bearer <key>`",
        )),
    }
}

/// Compares two secrets in time that does not depend on where they differ (their hashes, so
/// the length does not show either).
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/rooms` (with `Authorization: Bearer <--api-key>`): 201 with the room's info, 409
/// when it exists, 400 for a bad id, name or metadata, 401 without the key.
pub(crate) async fn create_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    check_origin(hub.config(), &headers)?;
    check_api_key(&hub, &headers)?;
    let body = read_body(&hub, body).await?;
    let create: CreateRoom = serde_json::from_slice(&body)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room body: {e}")))?;
    checked_room(&create.room)?;
    if let Some(name) = &create.name {
        validate_room_name(name)
            .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room `name`: {e}")))?;
    }
    if let Some(metadata) = &create.metadata {
        if !metadata.is_object() {
            return Err(Refusal::new(ErrorCode::InvalidMessage, "`metadata` must be a JSON object").into());
        }
        let size = metadata.to_string().len();
        if size > MAX_ROOM_METADATA_BYTES {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("`metadata` is {size} bytes of JSON; the limit is {MAX_ROOM_METADATA_BYTES}"),
            )
            .into());
        }
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
    Path(room): Path<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    checked_room(&room)?;
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
    let (conversations, rooms, ring_bytes) = hub.gauges();
    let text = hub.metrics().render(conversations, rooms, ring_bytes);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_the_hub_did_not_make() {
        assert_eq!(decode_cursor(&encode_cursor("team:a-1")), Some("team:a-1".into()));
        for bad in ["", "7", "zz", "2f2f", &"61".repeat(65)] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("k3y", "k3y"));
        assert!(!same_secret("k3y", "k3z"));
        assert!(!same_secret("k3y", "k3y-longer"));
    }
}
