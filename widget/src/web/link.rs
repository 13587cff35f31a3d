//! The link to the hub: one WebSocket at a time, and the HTTP fallback (POST to send, GET
//! long-poll to receive). These functions only move frames; what to do with them is decided by
//! `state::update`.
//!
//! Inbound JSON is parsed by the browser (`JSON.parse`, `Response.json()`) and read into
//! protocol types by [`decode`]; outbound frames are written by `crate::wire`. No JSON text
//! parser and no serde machinery ends up in the wasm binary.

use super::frame::decode;
use super::rooms::{decode_relay, Relayed};
use crate::state::Outgoing;
use natter_protocol::{History, ServerMessage, SESSION_HEADER};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, CloseEvent, MessageEvent, RequestInit, Response, WebSocket};

/// Where the hub is.
pub(crate) struct Endpoint {
    /// `https://hub.example` (no trailing slash).
    pub http: String,
    /// `wss://hub.example`.
    pub ws: String,
}

/// Who the widget is on an HTTP request: sent as `Authorization: Bearer` (a signed-in user) or
/// `X-Natter-Session` (a visitor), never in the URL.
pub(crate) struct Credentials {
    /// The identity token.
    pub token: Option<String>,
    /// The session the hub issued.
    pub session: Option<String>,
}

impl Endpoint {
    /// Resolves the configured server against the page's URL.
    pub(crate) fn new(server: &str) -> Endpoint {
        let location = web_sys::window().map(|w| w.location());
        let href = location.as_ref().and_then(|l| l.href().ok()).unwrap_or_default();
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
        Endpoint { http, ws }
    }

    /// The WebSocket URL: no credentials and no resume point in it (the `auth` frame carries
    /// them, so that no proxy log holds a session or a token).
    pub(crate) fn socket_url(&self) -> String {
        format!("{}/ws/chat", self.ws)
    }
}

/// Where the page is now (a single-page app moves): the `auth` frame's `page`, for clients of
/// the hub that send no context of their own. The path, and the route of an app that routes by
/// hash (`/app#/checkout`, `#!/cart`), as the npm facade's context has it; never a query or
/// another fragment, which may hold private data (an OAuth token).
pub(crate) fn page_now() -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return "/".into() };
    let mut page = location.pathname().unwrap_or_else(|_| "/".into());
    let hash = location.hash().unwrap_or_default();
    if hash.starts_with("#/") || hash.starts_with("#!/") {
        page.push_str(hash.split('?').next().unwrap_or_default());
    }
    page
}

/// The request headers carrying `who`, and the JSON content type when `json`.
fn headers(who: &Credentials, json: bool) -> Option<js_sys::Object> {
    let headers = js_sys::Object::new();
    let set = |k: &str, v: &str| js_sys::Reflect::set(&headers, &k.into(), &v.into()).ok();
    if json {
        set("content-type", "application/json")?;
    }
    if let Some(t) = &who.token {
        set("authorization", &format!("Bearer {t}"))?;
    } else if let Some(s) = &who.session {
        set(SESSION_HEADER, s)?;
    }
    Some(headers)
}

/// What an HTTP call to the hub answered: the frame (`None` when the network failed or the answer
/// was not a frame), whether the status was 2xx, and a session the hub issued.
pub(crate) struct Answer {
    /// The hub's frame.
    pub frame: Option<ServerMessage>,
    /// 2xx.
    pub ok: bool,
    /// The `X-Natter-Session` header: a session the hub issued for this request.
    pub session: Option<String>,
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
    /// A room member's `cursor_position` / `chain_update` arrived.
    Relay(Relayed),
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
            let Ok(v) = js_sys::JSON::parse(&text) else { return };
            if let Some(msg) = decode(&v) {
                r(SocketEvent::Frame(msg));
            } else if let Some(relay) = decode_relay(&v) {
                r(SocketEvent::Relay(relay));
            } else {
                // A frame this version does not understand (a newer hub): skip it.
                web_sys::console::debug_1(&"natter: ignored an unknown frame".into());
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

async fn fetch_json(url: &str, init: &RequestInit) -> Answer {
    let failed = Answer { frame: None, ok: false, session: None };
    let Some(window) = web_sys::window() else { return failed };
    let Ok(resp) = JsFuture::from(window.fetch_with_str_and_init(url, init)).await else { return failed };
    let Ok(resp) = resp.dyn_into::<Response>() else { return failed };
    let session = resp.headers().get(SESSION_HEADER).ok().flatten();
    let body = match resp.json() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    Answer { frame: body.as_ref().and_then(decode), ok: resp.ok(), session }
}

/// One long-poll: a 2xx answer's `history`, the `error` of a refusal (a 4xx), or nothing when
/// the network failed. A refused origin's 403 (`forbidden_origin`) is readable too, with or
/// without credential headers: the hub lets any page's preflight through and marks that one
/// refusal readable, so the widget can tell "not allowed on this site" from an outage.
pub(crate) async fn poll(
    end: &Endpoint,
    who: &Credentials,
    after: Option<u64>,
    signal: &AbortSignal,
) -> Answer {
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(signal));
    if let Some(h) = headers(who, false) {
        init.set_headers(&h);
    }
    let after = after.map(|a| format!("?after={a}")).unwrap_or_default();
    let mut answer = fetch_json(&format!("{}/api/chat/poll{after}", end.http), &init).await;
    answer.frame = match answer.frame {
        Some(ServerMessage::History(h)) if answer.ok => Some(ServerMessage::History(h)),
        Some(e @ ServerMessage::Error(_)) if !answer.ok => Some(e),
        _ => None,
    };
    answer
}

/// One HTTP send: the hub's `ack` or `error`, or no frame when the network failed (or the answer
/// was not a frame, e.g. a proxy's error page) — the message is then re-sent later.
pub(crate) async fn post(end: &Endpoint, who: &Credentials, out: &Outgoing, signal: &AbortSignal) -> Answer {
    let body = crate::wire::user_message(out);
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_signal(Some(signal));
    init.set_body(&JsValue::from_str(&body));
    if let Some(h) = headers(who, true) {
        init.set_headers(&h);
    }
    let mut answer = fetch_json(&crate::wire::cat(&[&end.http, "/api/chat/messages"]), &init).await;
    answer.frame = answer.frame.filter(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error(_)));
    answer
}

/// One long-poll of `room` (a room member on the HTTP fallback): as [`poll`].
pub(crate) async fn poll_room(
    end: &Endpoint,
    who: &Credentials,
    room: &str,
    after: Option<u64>,
    signal: &AbortSignal,
) -> Answer {
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(signal));
    if let Some(h) = headers(who, false) {
        init.set_headers(&h);
    }
    let room = String::from(js_sys::encode_uri_component(room));
    let mut url = crate::wire::cat(&[&end.http, "/api/chat/poll?room=", &room]);
    if let Some(a) = after {
        url.push_str("&after=");
        crate::wire::push_u64(&mut url, a);
    }
    let mut answer = fetch_json(&url, &init).await;
    answer.frame = match answer.frame {
        Some(ServerMessage::History(h)) if answer.ok => Some(ServerMessage::History(h)),
        Some(e @ ServerMessage::Error(_)) if !answer.ok => Some(e),
        _ => None,
    };
    answer
}

/// One HTTP send of a room message (`body`: its JSON text): the hub's `ack` or `error`, or no
/// frame when the network failed.
pub(crate) async fn post_room(end: &Endpoint, who: &Credentials, body: &str, signal: &AbortSignal) -> Answer {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_signal(Some(signal));
    init.set_body(&JsValue::from_str(body));
    if let Some(h) = headers(who, true) {
        init.set_headers(&h);
    }
    let mut answer = fetch_json(&crate::wire::cat(&[&end.http, "/api/chat/messages"]), &init).await;
    answer.frame = answer.frame.filter(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error(_)));
    answer
}

/// The `History` of a poll's answer.
pub(crate) fn history_of(frame: Option<ServerMessage>) -> Option<History> {
    match frame {
        Some(ServerMessage::History(h)) => Some(h),
        _ => None,
    }
}
