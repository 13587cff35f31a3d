//! The HTTP transport: the fallback chat API (`POST /api/chat/messages`, long-poll
//! `GET /api/chat/poll`), the room API, `/healthz` and `/metrics`, and the origin check shared
//! with the WebSocket upgrade.
//!
//! Errors are answered as the same JSON `error` frame the WebSocket sends
//! (`{"type":"error","code":…,"message":…}`) with a fitting status code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::{
    validate_room_id, validate_session_id, CreateRoom, ErrorCode, ServerMessage, UserSend, PROTOCOL_VERSION,
};
use serde::Deserialize;

use crate::hub::{Hub, Refusal, Since};

/// An error answer: a status and the `error` frame as body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    refusal: Refusal,
}

impl ApiError {
    /// A 400 with `code` and `message`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, refusal: Refusal::new(code, message) }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.refusal.code
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match refusal.code {
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotInRoom | ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
            ErrorCode::UnknownRoom => StatusCode::NOT_FOUND,
            ErrorCode::RoomExists => StatusCode::CONFLICT,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError { status, refusal }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.refusal.frame())).into_response();
        if let Some(ms) = self.refusal.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Refuses a browser request whose `Origin` is not on `--allowed-origin` (403, before any
/// upgrade). No allow-list means every origin; no `Origin` header means a non-browser client.
pub fn check_origin(hub: &Hub, headers: &HeaderMap) -> Result<(), ApiError> {
    let allowed = &hub.config().allowed_origins;
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("<not text>");
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    hub.metrics().error(ErrorCode::ForbiddenOrigin);
    tracing::info!(%origin, "refused origin");
    Err(ApiError {
        status: StatusCode::FORBIDDEN,
        refusal: Refusal::new(
            ErrorCode::ForbiddenOrigin,
            format!("origin {origin:?} is not allowed to use this hub (see --allowed-origin)"),
        ),
    })
}

fn counted(hub: &Hub, e: impl Into<ApiError>) -> ApiError {
    let e = e.into();
    hub.metrics().error(e.code());
    e
}

/// Query of the chat API.
#[derive(Debug, Deserialize)]
pub struct SessionQuery {
    session: Option<String>,
    after: Option<String>,
    page: Option<String>,
}

fn session_of(id: Option<String>) -> Result<Arc<str>, ApiError> {
    let Some(id) = id else {
        return Err(ApiError::bad_request(
            ErrorCode::BadSession,
            "no session: give `?session=<id>` or `sessionId` in the body",
        ));
    };
    validate_session_id(&id)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadSession, format!("session id: {e}")))?;
    Ok(id.into())
}

/// `POST /api/chat/messages`: a `user` message (seed 003's JSON); answers with its `ack`.
pub async fn post_message(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ServerMessage>, ApiError> {
    check_origin(&hub, &headers)?;
    let body = body.map_err(|e| {
        let refusal = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::new(
                ErrorCode::TooLarge,
                format!("body larger than the hub's limit of {} bytes", hub.config().max_frame),
            )
        } else {
            Refusal::new(ErrorCode::BadJson, format!("could not read the body: {e}"))
        };
        counted(&hub, refusal)
    })?;
    let mut value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        counted(&hub, ApiError::bad_request(ErrorCode::BadJson, format!("body is not valid JSON: {e}")))
    })?;
    if let Some(object) = value.as_object_mut() {
        // The body is a `user` message; `type` may be left out.
        object.entry("type").or_insert_with(|| "user".into());
    }
    let send: UserSend = match crate::client::parse(&value.to_string()) {
        Ok(natter_protocol::ClientMessage::User(u)) => u,
        Ok(_) => {
            return Err(counted(
                &hub,
                ApiError::bad_request(ErrorCode::UnknownType, "this endpoint takes `user` messages only"),
            ))
        }
        Err(r) => return Err(counted(&hub, r)),
    };
    let session =
        session_of(q.session.clone().or_else(|| send.session_id.clone())).map_err(|e| counted(&hub, e))?;
    let page = q.page.filter(|p| !p.is_empty());
    let ack = hub.post_user(&session, send, page.as_deref()).await.map_err(|r| counted(&hub, r))?;
    Ok(Json(ServerMessage::Ack(ack)))
}

/// `GET /api/chat/poll?session=&after=`: the messages after `after`, at once when there are
/// some, else when the next one arrives or after `--poll-timeout` (an empty `history`).
pub async fn poll(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
) -> Result<Json<ServerMessage>, ApiError> {
    check_origin(&hub, &headers)?;
    let session = session_of(q.session).map_err(|e| counted(&hub, e))?;
    let since = match q.after.as_deref() {
        None | Some("") => Since::Recent,
        Some(a) => Since::After(a.parse().map_err(|_| {
            counted(
                &hub,
                ApiError::bad_request(
                    ErrorCode::InvalidMessage,
                    format!("`after` must be the last seq seen (a whole number), got {a:?}"),
                ),
            )
        })?),
    };
    let history = hub.poll(&session, since).await.map_err(|r| counted(&hub, r))?;
    Ok(Json(ServerMessage::History(history)))
}

/// `GET /api/rooms`.
pub async fn list_rooms(State(hub): State<Hub>) -> Result<Json<natter_protocol::RoomList>, ApiError> {
    Ok(Json(hub.rooms().await.map_err(|r| counted(&hub, r))?))
}

/// `POST /api/rooms`: 201 with the room's info, 409 when it exists, 400 for a bad id.
pub async fn create_room(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Result<Json<CreateRoom>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<natter_protocol::RoomInfo>), ApiError> {
    check_origin(&hub, &headers)?;
    let Json(create) = body.map_err(|e| {
        counted(
            &hub,
            ApiError::bad_request(ErrorCode::InvalidMessage, format!("bad room body: {}", e.body_text())),
        )
    })?;
    validate_room_id(&create.room).map_err(|e| {
        counted(
            &hub,
            ApiError::bad_request(ErrorCode::InvalidMessage, format!("bad room {:?}: {e}", create.room)),
        )
    })?;
    if let Some(m) = &create.metadata {
        if !m.is_object() {
            return Err(counted(
                &hub,
                ApiError::bad_request(ErrorCode::InvalidMessage, "`metadata` must be a JSON object"),
            ));
        }
    }
    let room = create.room.clone();
    match hub.create_room(create.room, create.name, create.metadata).await.map_err(|r| counted(&hub, r))? {
        Some(info) => Ok((StatusCode::CREATED, Json(info))),
        None => {
            Err(counted(&hub, Refusal::new(ErrorCode::RoomExists, format!("room {room:?} already exists"))))
        }
    }
}

/// `GET /api/rooms/{room}`: the room's info with its members.
pub async fn room_info(
    State(hub): State<Hub>,
    Path(room): Path<String>,
) -> Result<Json<natter_protocol::RoomInfo>, ApiError> {
    validate_room_id(&room).map_err(|e| {
        counted(&hub, ApiError::bad_request(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
    })?;
    match hub.room_info(&room).await.map_err(|r| counted(&hub, r))? {
        Some(info) => Ok(Json(info)),
        None => Err(counted(&hub, Refusal::new(ErrorCode::UnknownRoom, format!("no room {room:?}")))),
    }
}

/// `GET /healthz`: `ok`, or `degraded` (503) when the store is unhealthy.
pub async fn healthz(State(hub): State<Hub>) -> Response {
    let healthy = hub.store().healthy();
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
pub async fn metrics(State(hub): State<Hub>) -> Response {
    let (conversations, rooms) = hub.gauges();
    let text = hub.metrics().render(conversations, rooms);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
