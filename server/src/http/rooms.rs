//! The room API: `GET /api/rooms` (in pages), `POST /api/rooms`, `GET /api/rooms/{room}`,
//! `PUT` and `DELETE /api/rooms/{room}`, and who may call it.
//!
//! Three kinds of caller, told apart by `Authorization: Bearer <…>`:
//! - the operator's own servers, with the hub's `--api-key`: every room, and own them all: they
//!   may create rooms, take over any room (`PUT`, whoever made it: a room squatted by a `join`
//!   before the site made it is the site's again) and delete rooms with their history;
//! - a signed-in user, with an identity token: the rooms their token's `rooms` claim covers,
//!   and may create those (each creation drawing on their address's
//!   `--room-creations-per-hour`, like a `join` that makes a room);
//! - anyone else, with no credential: may read when `--room-access` is `open`, never create
//!   (anybody could otherwise fill the database with rooms; a `join` still makes one, within
//!   the same hourly budget).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::Json;
use natter_protocol::{
    validate_room_id, validate_room_name, CreateRoom, ErrorCode, RawJson, RoomInfo, RoomList,
    MAX_ROOM_METADATA_BYTES, ROOM_PAGE_DEFAULT, ROOM_PAGE_MAX,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::checked_room;
use crate::config::{RoomAccess, RoomCreation};
use crate::edge::{bearer, check_origin, client_of, read_body, ApiError, Query};
use crate::hub::{Hub, Refusal};
use crate::identity::Principal;

/// Who is calling the room API (see the module docs).
#[derive(Debug)]
enum Caller {
    /// A server holding the hub's `--api-key`.
    Operator,
    /// A signed-in user.
    User(Principal),
    /// No credential, with `--room-access open`.
    Anyone,
}

/// Works out who is calling from the request's bearer token: the `--api-key` first, else an
/// identity token. A credential that is neither is refused (`401`), never ignored.
fn caller(hub: &Hub, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let api_key = hub.config().api_key.as_deref().filter(|k| !k.is_empty());
    let Some(token) = bearer(headers) else {
        return match hub.config().room_access() {
            RoomAccess::Open => Ok(Caller::Anyone),
            RoomAccess::Identified => Err(Refusal::new(
                ErrorCode::Unauthorized,
                "the room API of this hub is for signed-in users and the operator's servers: send \
                 `Authorization: Bearer <identity token>` (or the hub's --api-key)",
            )),
        };
    };
    if api_key.is_some_and(|key| same_secret(&token, key)) {
        return Ok(Caller::Operator);
    }
    if hub.identity().verifies_tokens() {
        return hub.identity().user(&token).map(Caller::User);
    }
    Err(Refusal::new(
        ErrorCode::Unauthorized,
        if api_key.is_some() {
            "the bearer token is not this hub's --api-key (and this hub verifies no identity tokens)"
        } else {
            "this hub has no --api-key and verifies no identity tokens: send no Authorization header"
        },
    ))
}

/// Compares two secrets in time that does not depend on where they differ (their hashes, so
/// the length does not show either), with `subtle`'s optimiser-proof comparison.
fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

/// Query of `GET /api/rooms`; strings so that bad values get our own clear message.
#[derive(Debug, Deserialize)]
pub(crate) struct RoomsQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/rooms[?limit=N&cursor=C]`: one page of rooms by id (`limit` default 50, at most
/// 200) and, when there are more, the `next` cursor to pass back. A signed-in user sees only
/// the rooms their `rooms` claim covers, so their page may hold fewer than `limit`: follow
/// `next` while there is one (each page still reads at most `limit` rooms).
pub(crate) async fn list_rooms(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<RoomsQuery>,
) -> Result<Json<RoomList>, ApiError> {
    let caller = caller(&hub, &headers)?;
    let limit = match q.limit.as_deref() {
        None | Some("") => ROOM_PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=ROOM_PAGE_MAX).contains(&n) => n,
            _ => {
                let shown: String = l.chars().take(40).collect();
                return Err(Refusal::new(
                    ErrorCode::InvalidMessage,
                    format!("`limit` must be a whole number from 1 to {ROOM_PAGE_MAX}, got {shown:?}"),
                )
                .into());
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
    if let Caller::User(user) = &caller {
        list.rooms.retain(|r| hub.identity().may_join(user, &r.room).is_ok());
    }
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

/// Why a caller without a credential may not create rooms, and what would let it.
fn creation_refused(hub: &Hub) -> Refusal {
    let has_key = hub.config().api_key.as_deref().is_some_and(|k| !k.is_empty());
    let message = if has_key || hub.identity().verifies_tokens() {
        "creating a room over HTTP needs the hub's --api-key or a signed-in user's identity token: send \
         `Authorization: Bearer <key or token>`"
    } else {
        "creating rooms over HTTP is turned off on this hub: start it with --api-key (NATTER_API_KEY) and send \
         `Authorization: Bearer <key>`; rooms are also made by a `join`"
    };
    Refusal::new(ErrorCode::Unauthorized, message)
}

/// `POST /api/rooms` (with `Authorization: Bearer <--api-key or identity token>`): 201 with the
/// room's info, 409 when it exists, 400 for a bad id, name or metadata, 413 for a body over
/// `--max-frame` or metadata over [`MAX_ROOM_METADATA_BYTES`], 401 without a credential, 403
/// for a room the user's `rooms` claim does not cover, 429 past the user's address's
/// `--room-creations-per-hour` (a 409 costs nothing from it).
pub(crate) async fn create_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    check_origin(&hub, &headers)?;
    let caller = caller(&hub, &headers)?;
    if matches!(caller, Caller::Anyone) {
        return Err(creation_refused(&hub).into());
    }
    let body = read_body(&hub, body).await?;
    let create: CreateRoom = serde_json::from_slice(&body)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room body: {e}")))?;
    checked_room(&create.room)?;
    checked_fields(create.name.as_deref(), create.metadata.as_ref())?;
    let room = create.room.clone();
    let exists = || {
        Refusal::new(
            ErrorCode::RoomExists,
            format!(
                "room {room:?} already exists; the operator's servers take it over (its name and metadata, \
                 whoever made it) with `PUT /api/rooms/{room}`, or clear it first (its history and members) \
                 with `DELETE /api/rooms/{room}`"
            ),
        )
    };
    if let Caller::User(user) = &caller {
        if hub.config().room_creation == RoomCreation::Api {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "rooms on this hub are made only by the operator's servers (--room-creation api)",
            )
            .into());
        }
        hub.identity().may_join(user, &create.room)?;
        // A room that exists already is answered as such before the address pays for a
        // creation it does not get (a page that posts its room on every load must not run out).
        if hub.room_exists(&create.room).await? {
            return Err(exists().into());
        }
        hub.charge_room_creation(client_of(&extensions).key(), &create.room)?;
    }
    match hub.create_room(create.room, create.name, create.metadata).await? {
        Some(info) => Ok((StatusCode::CREATED, Json(info))),
        None => Err(exists().into()),
    }
}

/// Checks a room's `name` and `metadata` (a JSON object of at most
/// [`MAX_ROOM_METADATA_BYTES`], measured as the text it arrived as), naming what is wrong.
fn checked_fields(name: Option<&str>, metadata: Option<&RawJson>) -> Result<(), Refusal> {
    if let Some(name) = name {
        validate_room_name(name)
            .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room `name`: {e}")))?;
    }
    if let Some(metadata) = metadata {
        if !metadata.get().trim_start().starts_with('{') {
            return Err(Refusal::new(ErrorCode::InvalidMessage, "`metadata` must be a JSON object"));
        }
        // Kept and served as the text it arrived as, so that text is what the limit measures.
        let size = metadata.len();
        if size > MAX_ROOM_METADATA_BYTES {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("`metadata` is {size} bytes of JSON; the limit is {MAX_ROOM_METADATA_BYTES}"),
            ));
        }
    }
    Ok(())
}

/// Only the operator's servers (the hub's `--api-key`) may `what`: `401` without a credential
/// or with one that is neither the key nor a valid identity token, `403` for a signed-in user.
fn operator_only(hub: &Hub, headers: &HeaderMap, what: &str) -> Result<(), Refusal> {
    let has_key = hub.config().api_key.as_deref().is_some_and(|k| !k.is_empty());
    if bearer(headers).is_none() {
        let message = if has_key {
            format!("{what} needs the hub's --api-key: send `Authorization: Bearer <key>`")
        } else {
            format!("{what} is turned off on this hub: start it with --api-key (NATTER_API_KEY)")
        };
        return Err(Refusal::new(ErrorCode::Unauthorized, message));
    }
    match caller(hub, headers)? {
        Caller::Operator => Ok(()),
        Caller::User(_) | Caller::Anyone => Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{what} is for the operator's servers (the hub's --api-key), not signed-in users"),
        )),
    }
}

/// Body of `PUT /api/rooms/{room}`: a [`CreateRoom`] whose `room` may be left out (the path
/// names it); an empty body is `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRoom {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metadata: Option<RawJson>,
}

/// `PUT /api/rooms/{room}` (with `Authorization: Bearer <--api-key>` only): creates the room,
/// or replaces the name and metadata of the one that exists, whoever made it (a `join`, a
/// signed-in user, an earlier PUT); its history and members stay, and the members present get
/// the new `room_info`. Idempotent. `201` with the room's info when created, `200` when
/// replaced; `400` for a bad id, name or metadata (or a body `room` that is not the path's),
/// `413` for a body over `--max-frame` or metadata over [`MAX_ROOM_METADATA_BYTES`], `401`
/// without the key, `403` for a signed-in user.
pub(crate) async fn put_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    check_origin(&hub, &headers)?;
    operator_only(&hub, &headers, "creating or taking over a room with PUT")?;
    checked_room(&room)?;
    let body = read_body(&hub, body).await?;
    let put: PutRoom = if body.iter().all(u8::is_ascii_whitespace) {
        PutRoom::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room body: {e}")))?
    };
    if let Some(other) = put.room.as_deref().filter(|r| *r != room) {
        let shown: String = other.chars().take(80).collect();
        return Err(Refusal::new(
            ErrorCode::InvalidMessage,
            format!(
                "the body's `room` {shown:?} is not the path's {room:?}; leave it out or make them the same"
            ),
        )
        .into());
    }
    checked_fields(put.name.as_deref(), put.metadata.as_ref())?;
    let (info, created) = hub.put_room(room, put.name, put.metadata).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(info)))
}

/// `DELETE /api/rooms/{room}` (with `Authorization: Bearer <--api-key>` only): deletes the room
/// and its stored history; every connection in it gets an `error` with code `room_deleted` and
/// is no longer in it. A later `join` makes a new, empty room. `204`; `404` for an unknown
/// room, `401` without the key, `403` for a signed-in user.
pub(crate) async fn delete_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_origin(&hub, &headers)?;
    operator_only(&hub, &headers, "deleting a room")?;
    checked_room(&room)?;
    if hub.delete_room(&room).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Refusal::new(ErrorCode::UnknownRoom, format!("no room {room:?}")).into())
    }
}

/// `GET /api/rooms/{room}`: the room's info with its members.
pub(crate) async fn room_info(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    checked_room(&room)?;
    if let Caller::User(user) = caller(&hub, &headers)? {
        hub.identity().may_join(&user, &room)?;
    }
    match hub.room_info(&room).await? {
        Some(info) => Ok(Json(info)),
        None => Err(Refusal::new(ErrorCode::UnknownRoom, format!("no room {room:?}")).into()),
    }
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
