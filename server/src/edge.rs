//! What both transports do at the hub's edge: the client's address and its budget, the origin
//! check, reading credentials (a bearer token, a session), the page and the resume point from a
//! request, reading a body in bounded time, the HTTP error answer, and counting every refusal
//! once, where it leaves the hub.
//!
//! Counting: a [`Refusal`] made anywhere inside the hub travels up unchanged. On HTTP it
//! becomes an [`ApiError`] response that carries its code in the response's extensions, and
//! the [`count_refusals`] middleware counts it as the response leaves; on a WebSocket the
//! connection counts it as it queues the `error` frame. Nothing inside the hub counts one.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::{ErrorCode, SESSION_HEADER};

use crate::address::{client_addr, ClientAddr, Peer};
use crate::hub::{Hub, Refusal, Since};
use crate::identity::Principal;

/// Longest `page` kept from a query, in characters.
pub(crate) const MAX_PAGE_CHARS: usize = 512;

/// An error answer: a status and the `error` frame as body, with `Retry-After` when the
/// refusal says how long to wait.
#[derive(Debug, Clone)]
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
    /// `refusal`, answered with `status` instead of its code's usual one.
    pub(crate) fn with_status(status: StatusCode, refusal: Refusal) -> Self {
        ApiError { status, refusal }
    }

    /// The HTTP status it is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The whole answer as HTTP/1.1 bytes (status line, `Content-Type`, `Retry-After` when the
    /// refusal says how long to wait, `Connection: close`, the `error` frame as body), for a
    /// connection answered before any request was read from it (see `accept`). Not counted
    /// here: the caller counts it, since no middleware sees it.
    pub(crate) fn to_http1(&self) -> Vec<u8> {
        let body = serde_json::to_string(&self.refusal.frame()).unwrap_or_default();
        let retry = self
            .refusal
            .retry_after_ms
            .map(|ms| format!("Retry-After: {}\r\n", ms.div_ceil(1000).max(1)))
            .unwrap_or_default();
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n{retry}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }
}

/// A query string that does not parse (a repeated `session=`, a value of the wrong kind) is a
/// refusal like any other: a JSON `error` frame naming the problem, counted once. axum's own
/// rejection would be plain text and never counted.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(t)) => Ok(Query(t)),
            Err(e) => {
                Err(Refusal::new(ErrorCode::InvalidMessage, format!("bad query string: {}", e.body_text()))
                    .into())
            }
        }
    }
}

/// The HTTP status that answers a refusal with `code`.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotInRoom | ErrorCode::ForbiddenOrigin | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::UnknownRoom | ErrorCode::RoomDeleted => StatusCode::NOT_FOUND,
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
        if self.refusal.code == ErrorCode::ForbiddenOrigin {
            // The page that was refused may read why (the CORS layer gives a refused origin
            // nothing): the widget can then tell "not allowed on this site" from "the hub is
            // down", say so, and stop retrying. The body names only the page's own origin.
            response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
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

/// Middleware on every route but the inbox's, which admits its own the same way for all but
/// signed-in operators (`inbox::auth::admit`): `/api/*`, `/ws/chat`, health, metrics, the demo
/// page and the widget's files: works out the client's address (`crate::address`), puts it
/// into the request's extensions as a [`ClientAddr`], and takes one request from its budget
/// (`--address-rate-*`), answering `429` with `Retry-After` when it is spent.
pub(crate) async fn admit(State(hub): State<Hub>, mut request: Request, next: Next) -> Response {
    let client = client_of_request(&hub, request.extensions(), request.headers());
    if let Err(refusal) = hub.charge_address(client.key()) {
        return ApiError::from(refusal).into_response();
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Middleware outside the CORS layer of `/api`, which answers preflights itself: takes a CORS
/// preflight (`OPTIONS`) from its address's preflight bucket (`Hub::charge_preflight`: as large
/// as `--address-rate-*`, kept apart from it), answering `429` with `Retry-After` when it is
/// spent; every other request passes on to [`admit`]. Without it one address sent 9,930
/// preflights a second, every one answered. The browser caches a preflight for
/// [`PREFLIGHT_MAX_AGE`], per URL.
pub(crate) async fn admit_preflight(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::OPTIONS {
        let client = client_of_request(&hub, request.extensions(), request.headers());
        if let Err(refusal) = hub.charge_preflight(client.key()) {
            return ApiError::from(refusal).into_response();
        }
    }
    next.run(request).await
}

/// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`): the widget's
/// sends (one URL) and an idle tab's re-polls (the same URL until a message arrives) are then
/// not preflighted again. Ten minutes: a hub upgrade that changes what it allows reaches every
/// browser soon.
pub(crate) const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The client address of a request (the socket's peer, or the address a `--trusted-proxy`
/// names), worked out without charging its budget: for routes that keep budgets of their own
/// (the inbox's sign-in).
pub(crate) fn client_of_request(
    hub: &Hub,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> ClientAddr {
    let peer = extensions.get::<Peer>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let config = hub.config();
    let client = client_addr(peer, headers, &config.trusted_proxies, config.forwarded_header);
    let forwards = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
    if forwards && !crate::address::is_trusted(&config.trusted_proxies, peer) {
        untrusted_forwarding(peer);
    }
    client
}

/// Says once that a peer forwards for clients without being trusted to: behind a proxy that
/// is not a `--trusted-proxy`, every client shares the proxy's budget.
fn untrusted_forwarding(peer: IpAddr) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "a request carries X-Forwarded-For or Forwarded from a peer that is not a --trusted-proxy; budgets per address \
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
/// at once. Too big is `413 too_large` — at once, from the `Content-Length` header, when that
/// says so (waiting for a body the hub will refuse anyway held the connection until the
/// timeout, then said 408); too slow `408`.
pub(crate) async fn read_body(hub: &Hub, body: Body) -> Result<Bytes, ApiError> {
    let config = hub.config();
    let max = config.max_frame;
    let announced = axum::body::HttpBody::size_hint(&body).lower();
    if announced > u64::try_from(max).unwrap_or(u64::MAX) {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "Content-Length {announced} is larger than the hub's limit of {max} bytes (--max-frame); \
                 the body was not read"
            ),
        )
        .into());
    }
    match tokio::time::timeout(config.header_timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large =
                std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                Refusal::new(
                    ErrorCode::TooLarge,
                    format!("body larger than the hub's limit of {max} bytes (--max-frame)"),
                )
                .into()
            } else {
                Refusal::new(ErrorCode::BadJson, format!("could not read the body: {e}")).into()
            })
        }
        Err(_) => Err(ApiError::with_status(
            StatusCode::REQUEST_TIMEOUT,
            Refusal::new(
                ErrorCode::InvalidMessage,
                format!("the body did not arrive within {:?} (--header-timeout)", config.header_timeout),
            ),
        )),
    }
}

/// Refuses a browser request whose `Origin` is not on `--allowed-origin` (403, before any
/// upgrade). No allow-list means every origin; no `Origin` header means a non-browser client.
/// The refused value is clipped in the answer and the log, and logged at most once a minute
/// (see `origin_log`).
pub(crate) fn check_origin(hub: &Hub, headers: &HeaderMap) -> Result<(), ApiError> {
    let allowed = &hub.config().allowed_origins;
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("<not text>");
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let shown = crate::origin_log::clip(origin, crate::origin_log::MAX_LOGGED_CHARS);
    hub.refused_origins().log(&shown);
    Err(Refusal::new(
        ErrorCode::ForbiddenOrigin,
        format!("origin {shown:?} is not allowed to use this hub (see --allowed-origin)"),
    )
    .into())
}

/// The bearer token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string()).filter(|t| !t.is_empty())
}

/// Who an HTTP request is: the user of its bearer token, else the visitor of its session (the
/// `X-Natter-Session` header, else `query` — `?session=` — else `body`'s `sessionId`, the last
/// two for clients written against the original widget's format), else a new visitor with a
/// session issued now (which the answer must carry back, see [`with_session`]).
pub(crate) fn who(
    hub: &Hub,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<Principal, Refusal> {
    let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).or(query).or(body);
    hub.identity().authenticate(bearer(headers).as_deref(), session)
}

/// Adds the `X-Natter-Session` header to `response` when `who`'s session was issued just now,
/// so the client can keep it.
pub(crate) fn with_session(who: &Principal, mut response: Response) -> Response {
    if let (true, Some(session)) = (who.issued, who.session.as_deref()) {
        if let Ok(v) = HeaderValue::from_str(session) {
            response.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    response
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
    fn bearer_tokens_and_after_are_read_with_clear_refusals() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        assert_eq!(bearer(&headers).as_deref(), Some("abc.def.ghi"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  x "));
        assert_eq!(bearer(&headers).as_deref(), Some("x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert_eq!(bearer(&headers), None);

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
