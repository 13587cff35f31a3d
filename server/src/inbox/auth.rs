//! Who an inbox request is: the operator session cookie, checked against the store on every
//! request; and the defences every state-changing request passes.
//!
//! - **The cookie** (`natter_operator`) holds 32 random bytes (hex). The store keeps only its
//!   SHA-256, so a copy of the database signs nobody in. `HttpOnly` (page scripts cannot read
//!   it), `SameSite=Strict` (no other site's page sends it), `Path=/inbox`, `Secure` with
//!   `--secure-cookies` or behind a proxy that says `X-Forwarded-Proto: https`.
//! - **CSRF**: a state-changing request (and the operator WebSocket's upgrade) must come from
//!   the hub's own origin — `Origin` present and naming the host the request was sent to, and
//!   `Sec-Fetch-Site`, when the browser sends it, `same-origin` — and carry the session's
//!   CSRF token in `X-Natter-Csrf`. The token is the SHA-256 of the cookie under a label: it
//!   proves the caller could read a same-origin answer (`/inbox/api/me`), which another site
//!   cannot, and it needs no storage.
//! - Only the cookie counts: a visitor's session header or identity token sent here is not
//!   looked at, so it can never reach an operator endpoint.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use natter_protocol::inbox::{OperatorProfile, CSRF_HEADER};
use natter_protocol::ErrorCode;
use sha2::{Digest, Sha256};

use crate::address::AddrKey;
use crate::edge::ApiError;
use crate::hub::{Hub, Refusal};
use crate::metrics::Limit;
use crate::store::inbox::OperatorRecord;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "natter_operator";

/// Random bytes in a session token.
const TOKEN_BYTES: usize = 32;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new session token (hex), `None` only when the OS has no randomness.
pub(crate) fn new_token() -> Option<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

/// What the store keeps for `token`.
pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::new().chain_update(b"natter operator session\0").chain_update(token.as_bytes()).finalize())
}

/// The CSRF token of the session `token`.
pub(crate) fn csrf_of(token: &str) -> String {
    hex(&Sha256::new().chain_update(b"natter operator csrf\0").chain_update(token.as_bytes()).finalize())
}

/// The value of `name` in the request's cookies.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the cookie should be `Secure` for this request.
fn secure(hub: &Hub, headers: &HeaderMap) -> bool {
    hub.config().secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that signs `token` in for `max_age` seconds (0 signs out).
pub(crate) fn set_cookie(hub: &Hub, headers: &HeaderMap, token: &str, max_age: u64) -> HeaderValue {
    let secure = if secure(hub, headers) { "; Secure" } else { "" };
    let value =
        format!("{COOKIE}={token}; Path=/inbox; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("natter_operator=; Max-Age=0"))
}

fn unauthorized(why: &str) -> ApiError {
    Refusal::new(ErrorCode::Unauthorized, format!("{why}; sign in at /inbox")).into()
}

fn forbidden(why: String) -> ApiError {
    ApiError::with_status(StatusCode::FORBIDDEN, Refusal::new(ErrorCode::Forbidden, why))
}

/// Refuses a request that does not come from a page of the hub's own origin (see the module
/// docs): `Origin` must be present and name the request's `Host`.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" {
            return Err(forbidden(format!(
                "a {site} request cannot change anything in the inbox; use the inbox at /inbox"
            )));
        }
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err(forbidden("a state-changing inbox request must carry an Origin header".into()));
    };
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest.trim_end_matches('/'));
    if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
        return Err(forbidden(format!(
            "origin {origin:?} is not this hub's ({host:?}); the inbox only takes requests from its own pages"
        )));
    }
    Ok(())
}

/// A signed-in operator (from the session cookie).
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// Their account.
    pub(crate) record: OperatorRecord,
    /// The store's key of their session.
    pub(crate) token_hash: String,
    /// Their session's CSRF token.
    pub(crate) csrf: String,
}

impl Operator {
    /// How the inbox shows them.
    pub(crate) fn profile(&self) -> OperatorProfile {
        OperatorProfile { name: self.record.name.clone(), display_name: self.record.display_name.clone() }
    }

    /// The operator of the request's session cookie, or a 401 that says to sign in.
    ///
    /// `from` is the client address of a new request: a cookie that names no session (made up,
    /// or ended) costs it one of its lookups (`inbox::limit`), and past them the request is
    /// refused `rate_limited` (429 with `Retry-After`) before the store is read. `None` for a
    /// connection re-checking the session it was opened with.
    pub(crate) async fn from_headers(
        hub: &Hub,
        headers: &HeaderMap,
        from: Option<AddrKey>,
    ) -> Result<Operator, ApiError> {
        let Some(token) = cookie(headers, COOKIE).filter(|t| !t.is_empty()) else {
            return Err(unauthorized("not signed in"));
        };
        if let Some(addr) = from {
            if let Err(wait_ms) = hub.signin_limiter().admit_lookup(addr) {
                hub.metrics().limited(Limit::SessionLookups);
                let mut r = Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many requests from your address with a session cookie that is not signed in; \
                         wait {wait_ms} ms, then sign in at /inbox"
                    ),
                );
                r.retry_after_ms = Some(wait_ms);
                return Err(r.into());
            }
        }
        let found = Operator::lookup(hub, token).await;
        if let (Some(addr), Err(e)) = (from, &found) {
            if e.status() == StatusCode::UNAUTHORIZED {
                hub.signin_limiter().lookup_failed(addr);
            }
        }
        found
    }

    /// The operator whose session `token` is, or a 401.
    async fn lookup(hub: &Hub, token: &str) -> Result<Operator, ApiError> {
        let store = hub.inbox_store()?;
        let token_hash = token_hash(token);
        let now = u64::try_from(crate::clock::unix_ms(std::time::SystemTime::now())).unwrap_or(0);
        let session = store.session(&token_hash, now).await.map_err(Refusal::from)?;
        let Some(session) = session else { return Err(unauthorized("the session has ended")) };
        let Some(record) = store.operator(&session.operator).await.map_err(Refusal::from)? else {
            return Err(unauthorized("the operator no longer exists"));
        };
        Ok(Operator { record, token_hash, csrf: csrf_of(token) })
    }

    /// [`Operator::from_headers`] for a new request, its client address worked out as every
    /// route does; what [`admit`] found already, when it ran.
    pub(crate) async fn of_request(
        hub: &Hub,
        headers: &HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Result<Operator, ApiError> {
        if let Some(Checked(found)) = extensions.get::<Checked>() {
            return found.clone();
        }
        let from = crate::edge::client_of_request(hub, extensions, headers).key();
        Operator::from_headers(hub, headers, Some(from)).await
    }
}

/// What [`admit`] found of a request's session, for the extractors.
#[derive(Debug, Clone)]
struct Checked(Result<Operator, ApiError>);

/// Middleware on every inbox route. A request that carries a live operator session is staff's
/// and draws on no budget of its address (an office of operators shares its address with its
/// visitors). Every other request — the app's page and files, sign-in, an API call without a
/// session or with a cookie that names none — is one request of its address's budget
/// (`--address-rate-*`), as on every other route of the hub: past it `429` with `Retry-After`.
/// A cookie that names no session also draws on the session lookups (`inbox::limit`).
pub(crate) async fn admit(State(hub): State<Hub>, mut request: Request, next: Next) -> Response {
    let client = crate::edge::client_of_request(&hub, request.extensions(), request.headers());
    let found = if cookie(request.headers(), COOKIE).is_some_and(|t| !t.is_empty()) {
        Operator::from_headers(&hub, request.headers(), Some(client.key())).await
    } else {
        Err(unauthorized("not signed in"))
    };
    if found.is_err() {
        if let Err(refusal) = hub.charge_address(client.key()) {
            return ApiError::from(refusal).into_response();
        }
    }
    request.extensions_mut().insert(client);
    request.extensions_mut().insert(Checked(found));
    next.run(request).await
}

impl FromRequestParts<Hub> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        Operator::of_request(hub, &parts.headers, &parts.extensions).await
    }
}

/// A signed-in operator whose request may change something: same origin and the CSRF token
/// checked too.
#[derive(Debug, Clone)]
pub(crate) struct OperatorWrite(pub(crate) Operator);

impl FromRequestParts<Hub> for OperatorWrite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let operator = Operator::of_request(hub, &parts.headers, &parts.extensions).await?;
        check_same_origin(&parts.headers)?;
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        // Not secret-dependent timing worth hiding: the token is bound to a cookie the caller
        // would need already.
        if sent != operator.csrf {
            return Err(forbidden(format!(
                "missing or wrong {CSRF_HEADER} header; take the token from GET /inbox/api/me"
            )));
        }
        Ok(OperatorWrite(operator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; natter_operator=abc ; b=2")]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "natter_operatorx=1")]), COOKIE), None);
    }

    #[test]
    fn only_the_hubs_own_origin_may_change_things() {
        let ok = headers(&[("host", "hub.example:8080"), ("origin", "https://hub.example:8080")]);
        assert!(check_same_origin(&ok).is_ok());
        for bad in [
            headers(&[("host", "hub.example:8080")]),
            headers(&[("host", "hub.example:8080"), ("origin", "https://evil.example")]),
            headers(&[("host", "hub.example"), ("origin", "https://hub.example.evil.example")]),
            headers(&[("host", "hub.example"), ("origin", "null")]),
            headers(&[
                ("host", "hub.example"),
                ("origin", "https://hub.example"),
                ("sec-fetch-site", "cross-site"),
            ]),
        ] {
            assert!(check_same_origin(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_hashes_and_csrf_differ() {
        let t = new_token().expect("random");
        assert_eq!(t.len(), 64);
        assert_ne!(token_hash(&t), csrf_of(&t));
        assert_ne!(token_hash(&t), t);
    }
}
