//! What both transports do at the hub's edge: the client's address and its budget, the origin
//! check, reading the session, the page and the resume point from a request, reading a body
//! in bounded time, the HTTP error answer, and counting every refusal once, where it leaves
//! the hub.
//!
//! Counting: a [`Refusal`] made anywhere inside the hub travels up unchanged. On HTTP it
//! becomes an [`ApiError`] response that carries its code in the response's extensions, and
//! the [`count_refusals`] middleware counts it as the response leaves; on a WebSocket the
//! connection counts it as it queues the `error` frame. Nothing inside the hub counts one.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::{validate_session_id, ErrorCode};

use crate::address::{client_addr, ClientAddr, Peer};
use crate::config::Config;
use crate::hub::{Hub, Refusal, Since};

/// Longest `page` kept from a query, in characters.
pub(crate) const MAX_PAGE_CHARS: usize = 512;

/// An error answer: a status and the `error` frame as body, with `Retry-After` when the
/// refusal says how long to wait.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    refusal: Refusal,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError { status: status_of(refusal.code), refusal }
    }
}

impl ApiError {
    /// The same refusal answered with another status (`408` for a body that came too slowly).
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// The HTTP status that answers a refusal with `code`.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotInRoom | ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::UnknownRoom => StatusCode::NOT_FOUND,
        ErrorCode::RoomExists => StatusCode::CONFLICT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Marks a response as a refusal with this code, for [`count_refusals`].
#[derive(Debug, Clone, Copy)]
struct Refused(ErrorCode);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.refusal.frame())).into_response();
        if let Some(ms) = self.refusal.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(Refused(self.refusal.code));
        response
    }
}

/// Middleware: counts every refusal answered over HTTP (the WebSocket upgrade's included) in
/// `natter_errors_total`, once, as it leaves.
pub(crate) async fn count_refusals(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Refused(code)) = response.extensions().get::<Refused>() {
        hub.metrics().refusal(*code);
    }
    response
}

/// Middleware on `/api/*` and `/ws/chat`: works out the client's address (`crate::address`),
/// puts it into the request's extensions as a [`ClientAddr`], and takes one request from its
/// budget (`--address-rate-*`), answering `429` with `Retry-After` when it is spent.
pub(crate) async fn admit(State(hub): State<Hub>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<Peer>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let config = hub.config();
    let client = client_addr(peer, request.headers(), &config.trusted_proxies);
    if !client.forwarded && request.headers().contains_key("x-forwarded-for") {
        untrusted_forwarding(peer);
    }
    if let Err(refusal) = hub.charge_address(client.key()) {
        return ApiError::from(refusal).into_response();
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Says once that a peer forwards for clients without being trusted to: behind a proxy that
/// is not a `--trusted-proxy`, every client shares the proxy's budget.
fn untrusted_forwarding(peer: IpAddr) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "a request carries X-Forwarded-For from a peer that is not a --trusted-proxy; budgets per address \
             count that peer, not the clients behind it. If it is your reverse proxy, start the hub with \
             --trusted-proxy {peer}"
        );
    }
}

/// The request's client address, as [`admit`] found it (the unspecified address for a route it
/// does not cover).
pub(crate) fn client_of(request_extensions: &axum::http::Extensions) -> ClientAddr {
    request_extensions
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr { ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), forwarded: false })
}

/// Reads a request body of at most `--max-frame` bytes within `--header-timeout`: a client
/// that sends a body one byte at a time holds a connection no longer than one that sends it
/// at once. Too big is `413 too_large`; too slow `408`.
pub(crate) async fn read_body(hub: &Hub, body: Body) -> Result<Bytes, ApiError> {
    let config = hub.config();
    let max = config.max_frame;
    match tokio::time::timeout(config.header_timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large =
                std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                Refusal::new(ErrorCode::TooLarge, format!("body larger than the hub's limit of {max} bytes"))
                    .into()
            } else {
                Refusal::new(ErrorCode::BadJson, format!("could not read the body: {e}")).into()
            })
        }
        Err(_) => Err(ApiError::from(Refusal::new(
            ErrorCode::InvalidMessage,
            format!("the body did not arrive within {:?} (--header-timeout)", config.header_timeout),
        ))
        .with_status(StatusCode::REQUEST_TIMEOUT)),
    }
}

/// Refuses a browser request whose `Origin` is not on `--allowed-origin` (403, before any
/// upgrade). No allow-list means every origin; no `Origin` header means a non-browser client.
pub(crate) fn check_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let allowed = &config.allowed_origins;
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("<not text>");
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    tracing::info!(%origin, "refused origin");
    Err(Refusal::new(
        ErrorCode::ForbiddenOrigin,
        format!("origin {origin:?} is not allowed to use this hub (see --allowed-origin)"),
    )
    .into())
}

/// Reads a session id from a request (`?session=` or a body's `sessionId`); `where_` names
/// where it was looked for, for the message when there is none.
pub(crate) fn parse_session(id: Option<&str>, where_: &str) -> Result<Arc<str>, Refusal> {
    let Some(id) = id else {
        return Err(Refusal::new(ErrorCode::BadSession, format!("no session: give {where_}")));
    };
    validate_session_id(id).map_err(|e| Refusal::new(ErrorCode::BadSession, format!("`session`: {e}")))?;
    Ok(id.into())
}

/// Reads `after` (the last seq a client saw); none or empty asks for the recent history.
pub(crate) fn parse_after(after: Option<&str>) -> Result<Since, Refusal> {
    match after {
        None | Some("") => Ok(Since::Recent),
        Some(a) => a.parse().map(Since::After).map_err(|_| {
            Refusal::new(
                ErrorCode::InvalidMessage,
                format!("`after` must be the last seq seen (a whole number), got {a:?}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_after_are_read_with_clear_refusals() {
        assert_eq!(parse_session(Some("s-1"), "?session=").map(|s| s.to_string()), Ok("s-1".into()));
        let none = parse_session(None, "`?session=<id>`").unwrap_err();
        assert_eq!(none.code, ErrorCode::BadSession);
        assert!(none.message.contains("?session=<id>"), "{}", none.message);
        let bad = parse_session(Some("a b"), "").unwrap_err();
        assert_eq!(bad.code, ErrorCode::BadSession);
        assert!(bad.message.contains("' '"), "{}", bad.message);

        assert_eq!(parse_after(None), Ok(Since::Recent));
        assert_eq!(parse_after(Some("")), Ok(Since::Recent));
        assert_eq!(parse_after(Some("42")), Ok(Since::After(42)));
        let bad = parse_after(Some("-1")).unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidMessage);
        assert!(bad.message.contains("\"-1\""), "{}", bad.message);
    }

    #[test]
    fn refusals_answer_with_their_status_and_retry_after() {
        let mut r = Refusal::new(ErrorCode::RateLimited, "slow down");
        r.retry_after_ms = Some(1500);
        let response = ApiError::from(r).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"2"[..]));
        assert!(matches!(response.extensions().get::<Refused>(), Some(Refused(ErrorCode::RateLimited))));
        assert_eq!(status_of(ErrorCode::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_of(ErrorCode::BadJson), StatusCode::BAD_REQUEST);
    }
}
