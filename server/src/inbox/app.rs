//! The inbox web app's files (`/inbox`, `/inbox/app.js`, `/inbox/app.css`), built into the
//! hub binary so that a deployment is one file. Served with a strict Content-Security-Policy
//! (scripts, styles and connections from the hub's own origin only; no framing), so a
//! visitor's text that somehow became markup could still run nothing.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../assets/inbox/index.html");
const SCRIPT: &str = include_str!("../../assets/inbox/app.js");
const STYLE: &str = include_str!("../../assets/inbox/app.css");

/// The policy every inbox file is served with.
const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
media-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /inbox`.
pub(crate) async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /inbox/app.js`.
pub(crate) async fn script() -> Response {
    file("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /inbox/app.css`.
pub(crate) async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE)
}
