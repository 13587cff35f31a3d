//! The link to the hub: one WebSocket at a time, and the HTTP fallback (POST to send, GET
//! long-poll to receive). These functions only move frames; what to do with them is decided by
//! `state::update`.
//!
//! Inbound JSON is parsed by the browser (`JSON.parse`, `Response.json()`) and read into
//! protocol types by [`decode`]; outbound frames are written by `crate::wire`. No JSON text
//! parser and no serde machinery ends up in the wasm binary.

use super::frame::decode;
use crate::state::Outgoing;
use natter_protocol::{ErrorFrame, History, ServerMessage};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, CloseEvent, MessageEvent, RequestInit, Response, WebSocket};

/// Where the hub is and who we are.
pub(crate) struct Endpoint {
    /// `https://hub.example` (no trailing slash).
    pub http: String,
    /// `wss://hub.example`.
    pub ws: String,
    /// The session id.
    pub session: String,
    /// The page path sent as context.
    pub page: String,
}

impl Endpoint {
    /// Resolves the configured server against the page's URL.
    pub(crate) fn new(server: &str, session: String) -> Endpoint {
        let location = web_sys::window().map(|w| w.location());
        let href = location.as_ref().and_then(|l| l.href().ok()).unwrap_or_default();
        let page = location.as_ref().and_then(|l| l.pathname().ok()).unwrap_or_else(|| "/".into());
        let base = if server.is_empty() { "/" } else { server };
        let http = web_sys::Url::new_with_base(base, &href)
            .map(|u| {
                let path = u.pathname();
                format!("{}{}", u.origin(), path.trim_end_matches('/'))
            })
            .unwrap_or_else(|_| server.trim_end_matches('/').to_string());
        let ws = if let Some(rest) = http.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = http.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            http.clone()
        };
        Endpoint { http, ws, session, page }
    }

    fn query(&self, after: Option<u64>) -> String {
        let mut q = format!("session={}", enc(&self.session));
        if let Some(a) = after {
            q.push_str(&format!("&after={a}"));
        }
        q
    }

    /// The WebSocket URL, resuming after `after`.
    pub(crate) fn socket_url(&self, after: Option<u64>) -> String {
        format!("{}/ws/chat?{}&page={}", self.ws, self.query(after), enc(&self.page))
    }

    /// The JSON text of a visitor message.
    pub(crate) fn encode(&self, out: &Outgoing) -> String {
        crate::wire::user_message(out, &self.session, &self.page)
    }
}

fn enc(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// An open (or opening) WebSocket and its handlers; dropping it detaches them and closes it.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// What a socket reports.
pub(crate) enum SocketEvent {
    /// It opened.
    Open,
    /// A frame arrived.
    Frame(ServerMessage),
    /// It closed (or failed to open) with this code.
    Closed(u16),
}

impl Socket {
    /// Opens a WebSocket to `url`; `report` hears about it.
    pub(crate) fn open(url: &str, report: impl Fn(SocketEvent) + Clone + 'static) -> Result<Socket, JsValue> {
        let ws = WebSocket::new(url)?;
        let r = report.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || r(SocketEvent::Open));
        let r = report.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let Some(text) = e.data().as_string() else { return };
            match js_sys::JSON::parse(&text).ok().as_ref().and_then(decode) {
                Some(msg) => r(SocketEvent::Frame(msg)),
                // A frame this version does not understand (a newer hub): skip it.
                _ => web_sys::console::debug_1(&"natter: ignored an unknown frame".into()),
            }
        });
        let on_close =
            Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| report(SocketEvent::Closed(e.code())));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a text frame; a failure shows up as a close.
    pub(crate) fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(natter_protocol::close::NORMAL);
        }
    }
}

async fn fetch_json(url: &str, init: &RequestInit) -> Result<(bool, JsValue), JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let resp: Response = JsFuture::from(window.fetch_with_str_and_init(url, init)).await?.dyn_into()?;
    let ok = resp.ok();
    let body = JsFuture::from(resp.json()?).await?;
    Ok((ok, body))
}

/// One long-poll: the `history` the hub answers with; `Err(Some(error))` when the hub refused
/// with an `error` frame the page could read (a refused origin's 403 is readable: it is a
/// simple GET, without a preflight); `Err(None)` on any other failure.
pub(crate) async fn poll(
    end: &Endpoint,
    after: Option<u64>,
    signal: &AbortSignal,
) -> Result<History, Option<ErrorFrame>> {
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(signal));
    let url = format!("{}/api/chat/poll?{}", end.http, end.query(after));
    let (ok, body) = fetch_json(&url, &init).await.map_err(|_| None)?;
    match decode(&body) {
        Some(ServerMessage::History(h)) if ok => Ok(h),
        Some(ServerMessage::Error(e)) if !ok => Err(Some(e)),
        _ => Err(None),
    }
}

/// One HTTP send: the hub's `ack` or `error`, or `None` when the network failed (or the answer
/// was not a frame, e.g. a proxy's error page) — the message is then re-sent later.
pub(crate) async fn post(end: &Endpoint, out: &Outgoing, signal: &AbortSignal) -> Option<ServerMessage> {
    let body = end.encode(out);
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_signal(Some(signal));
    init.set_body(&JsValue::from_str(&body));
    let headers = js_sys::Object::new();
    js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into()).ok()?;
    init.set_headers(&headers);
    let url = format!("{}/api/chat/messages", end.http);
    let (_, body) = fetch_json(&url, &init).await.ok()?;
    match decode(&body)? {
        m @ (ServerMessage::Ack(_) | ServerMessage::Error(_)) => Some(m),
        _ => None,
    }
}
