//! Static files: the demo page at `/` (embedded in the binary) and the built widget
//! (`/natter.js`, its `.wasm`, `.mjs`/`.js` modules and `.d.ts` types) from `--assets`.
//!
//! A `.gz` copy beside a file (written by `cargo xtask build`) is served instead to browsers
//! that accept gzip. The widget files are read from disk on each request, so `cargo xtask build` while the hub
//! runs is picked up at once. They are served with `Access-Control-Allow-Origin: *` because
//! any site may embed the widget.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::hub::Hub;

/// The demo page.
pub(crate) const DEMO_HTML: &str = include_str!("../assets/demo.html");
/// The demo page's stylesheet (a file, not inline, so the strict CSP holds).
pub(crate) const DEMO_CSS: &str = include_str!("../assets/demo.css");

/// What a missing widget file answers.
pub(crate) const NOT_BUILT: &str = "widget not built: run `cargo xtask build`\n";

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

/// Any other `GET`: a widget file from `--assets`, or 404.
pub(crate) async fn widget_file(State(hub): State<Hub>, request: Request) -> Response {
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
    let file = hub.config().assets.join(path);
    // `cargo xtask build` writes a gzip -9 copy beside each file; browsers that accept gzip
    // get it as is, with no compression work per request.
    let gzip_ok = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip")));
    if gzip_ok {
        let mut gz = file.clone().into_os_string();
        gz.push(".gz");
        if let Ok(bytes) = tokio::fs::read(&gz).await {
            return widget_response(kind, bytes, Some("gzip"));
        }
    }
    match tokio::fs::read(&file).await {
        Ok(bytes) => widget_response(kind, bytes, None),
        Err(_) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
            NOT_BUILT,
        )
            .into_response(),
    }
}

fn widget_response(kind: &'static str, bytes: Vec<u8>, encoding: Option<&'static str>) -> Response {
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
