//! Static files: the demo page at `/` and the built widget (`/natter.js`, its `.wasm`,
//! `.mjs`/`.js` modules and `.d.ts` types).
//!
//! Where the widget comes from ([`WidgetSource`]): the folder given with `--assets`, read from
//! disk on each request (so `cargo xtask build` while the hub runs is picked up at once); else
//! the copy embedded in the binary when it was compiled (`build.rs`), so the hub serves it
//! wherever it is started; else nowhere, which the hub says at start.
//!
//! A `.gz` copy beside a file (written by `cargo xtask build`) is served instead to browsers
//! that accept gzip. Widget files are served with `Access-Control-Allow-Origin: *` because
//! any site may embed the widget.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;

use crate::config::Config;

mod embedded {
    //! The widget files `build.rs` found in `npm/dist` when the hub was compiled.
    include!(concat!(env!("OUT_DIR"), "/widget_files.rs"));
}

/// The demo page.
pub(crate) const DEMO_HTML: &str = include_str!("../assets/demo.html");
/// The demo page's stylesheet (a file, not inline, so the strict CSP holds).
pub(crate) const DEMO_CSS: &str = include_str!("../assets/demo.css");

/// The demo page's icon (browsers ask for one; a 404 in the console is a poor first look).
pub(crate) const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// What a widget file answers when the hub has no widget at all.
pub(crate) const NOT_BUILT: &str = "the widget is not built into this hub and --assets is not set: \
    run `cargo xtask build` and rebuild natter-hub, or start it with --assets DIR\n";

/// Where the hub serves the widget from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WidgetSource {
    /// `--assets DIR`: read from disk on each request.
    Dir(PathBuf),
    /// The files embedded at compile time.
    Embedded,
    /// Neither: every widget file answers 404 with [`NOT_BUILT`].
    Missing,
}

impl WidgetSource {
    /// `--assets` if given (made absolute, so the start-up log says exactly where), else the
    /// embedded copy if the binary has one.
    pub(crate) fn from_config(config: &Config) -> Self {
        match &config.assets {
            Some(dir) => Self::Dir(std::path::absolute(dir).unwrap_or_else(|_| dir.clone())),
            None if !embedded::EMBEDDED.is_empty() => Self::Embedded,
            None => Self::Missing,
        }
    }

    /// What the start-up log says, and a warning when `/natter.js` will not be found.
    pub(crate) fn describe(&self) -> (String, Option<String>) {
        match self {
            Self::Dir(dir) if dir.join("natter.js").is_file() => (dir.display().to_string(), None),
            Self::Dir(dir) => (
                dir.display().to_string(),
                Some(format!(
                    "--assets {} has no natter.js: pages asking for /natter.js get 404 until the widget is \
                     built there (cargo xtask build writes npm/dist)",
                    dir.display()
                )),
            ),
            Self::Embedded => (format!("embedded in the binary ({} files)", embedded::EMBEDDED.len()), None),
            Self::Missing => ("none".to_string(), Some(NOT_BUILT.trim_end().to_string())),
        }
    }

    /// The bytes of widget file `name` (already checked to be a plain relative path).
    async fn read(&self, name: &str) -> Option<Bytes> {
        match self {
            Self::Dir(dir) => tokio::fs::read(dir.join(name)).await.ok().map(Bytes::from),
            Self::Embedded => embedded::EMBEDDED
                .binary_search_by(|(n, _)| (*n).cmp(name))
                .ok()
                .and_then(|i| embedded::EMBEDDED.get(i))
                .map(|(_, bytes)| Bytes::from_static(bytes)),
            Self::Missing => None,
        }
    }

    /// The body of a 404 for a widget file: says what to do where the operator can act.
    fn not_found(&self) -> &'static str {
        match self {
            Self::Dir(_) => {
                "not found in the widget folder (--assets); is the widget built there? (cargo xtask build)\n"
            }
            Self::Embedded => "not found\n",
            Self::Missing => NOT_BUILT,
        }
    }
}

/// The demo page's Content-Security-Policy: no inline script or style; wasm compilation and
/// same-origin WebSocket/fetch allowed. `host` (already checked to be a plain `host[:port]`) is
/// added as ws:// and wss:// because older browsers do not let `'self'` cover WebSockets.
fn csp(host: Option<&str>) -> String {
    let ws = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{ws}; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

fn plain_host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

/// `GET /`: the demo page, under a strict CSP.
pub(crate) async fn demo(headers: HeaderMap) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DEMO_HTML).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp(plain_host(&headers))) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// `GET /demo.css`.
pub(crate) async fn demo_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], DEMO_CSS).into_response()
}

/// `GET /favicon.svg` and `GET /favicon.ico` (what browsers ask for by themselves).
pub(crate) async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=86400")], FAVICON_SVG)
        .into_response()
}

/// The content type of a widget file, or `None` for a kind the hub does not serve.
fn content_type(name: &str) -> Option<&'static str> {
    if name.ends_with(".d.ts") {
        Some("application/typescript; charset=utf-8")
    } else if name.ends_with(".js") || name.ends_with(".mjs") {
        Some("text/javascript; charset=utf-8")
    } else if name.ends_with(".wasm") {
        Some("application/wasm")
    } else if name.ends_with(".map") || name.ends_with(".json") {
        Some("application/json")
    } else {
        None
    }
}

/// Any other `GET`: a widget file from the [`WidgetSource`], or 404.
pub(crate) async fn widget_file(source: std::sync::Arc<WidgetSource>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    let safe = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    let Some(kind) = content_type(path).filter(|_| safe) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    // `cargo xtask build` writes a gzip -9 copy beside each file; browsers that accept gzip
    // get it as is, with no compression work per request.
    let gzip_ok = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip")));
    if gzip_ok {
        if let Some(bytes) = source.read(&format!("{path}.gz")).await {
            return widget_response(kind, bytes, Some("gzip"));
        }
    }
    match source.read(path).await {
        Some(bytes) => widget_response(kind, bytes, None),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
            source.not_found(),
        )
            .into_response(),
    }
}

fn widget_response(kind: &'static str, bytes: Bytes, encoding: Option<&'static str>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, kind),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::VARY, "Accept-Encoding"),
        ],
        bytes,
    )
        .into_response();
    if let Some(e) = encoding {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_is_strict() {
        let c = csp(Some("127.0.0.1:8080"));
        assert!(!c.contains("unsafe-inline"), "{c}");
        assert!(c.contains("'wasm-unsafe-eval'") && c.contains("ws://127.0.0.1:8080"), "{c}");
    }

    #[test]
    fn serves_only_widget_kinds() {
        assert_eq!(content_type("natter_bg.wasm"), Some("application/wasm"));
        assert_eq!(content_type("natter.d.ts"), Some("application/typescript; charset=utf-8"));
        assert_eq!(content_type("secret.toml"), None);
    }
}
