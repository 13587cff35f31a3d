//! The link to the hub: one WebSocket at a time, and the HTTP fallback (POST to send, GET
//! long-poll to receive). These functions only move frames; what to do with them is decided by
//! `state::update`.
//!
//! Inbound JSON is parsed by the browser (`JSON.parse`, `Response.json()`) and read into
//! protocol types by [`decode`]; outbound frames are written by `crate::wire`. No JSON text
//! parser and no serde machinery ends up in the wasm binary.

use super::frame::decode;
use super::listen::Listener;
use super::promise::settle;
#[cfg(feature = "rooms")]
use super::rooms::{decode_relay, Relayed};
use crate::state::Outgoing;
use natter_protocol::{History, ServerMessage, SESSION_HEADER};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
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
                crate::compose::join(&[&u.origin(), path.trim_end_matches('/')])
            })
            .unwrap_or_else(|_| server.trim_end_matches('/').to_string());
        let ws = if let Some(rest) = http.strip_prefix("https://") {
            crate::compose::join(&["wss://", rest])
        } else if let Some(rest) = http.strip_prefix("http://") {
            crate::compose::join(&["ws://", rest])
        } else {
            http.clone()
        };
        Endpoint { http, ws }
    }

    /// The WebSocket URL: no credentials and no resume point in it (the `auth` frame carries
    /// them, so that no proxy log holds a session or a token).
    pub(crate) fn socket_url(&self) -> String {
        crate::compose::join(&[&self.ws, "/ws/chat"])
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
        set("authorization", &crate::compose::join(&["Bearer ", t]))?;
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

/// An open (or opening) WebSocket and its listeners; dropping it closes it and removes them.
pub(crate) struct Socket {
    ws: WebSocket,
    /// `open`, `message` and `close`. (Removed after `close()` in `drop`: the close event is
    /// dispatched later, in a task of its own, so it is never reported.)
    _listeners: [Listener; 3],
}

/// What a socket reports.
pub(crate) enum SocketEvent {
    /// It opened.
    Open,
    /// A frame arrived.
    Frame(ServerMessage),
    /// A room member's `cursor_position` / `chain_update` arrived.
    #[cfg(feature = "rooms")]
    Relay(Relayed),
    /// It closed (or failed to open) with this code.
    Closed(u16),
}

impl Socket {
    /// Opens a WebSocket to `url`; `report` hears about it.
    pub(crate) fn open(url: &str, report: impl Fn(SocketEvent) + Clone + 'static) -> Result<Socket, JsValue> {
        let ws = WebSocket::new(url)?;
        let r = report.clone();
        let on_open = Listener::new(&ws, "open", false, move |_| r(SocketEvent::Open));
        let r = report.clone();
        let on_message = Listener::new(&ws, "message", false, move |e| {
            let Some(text) = e.unchecked_ref::<MessageEvent>().data().as_string() else { return };
            let Ok(v) = js_sys::JSON::parse(&text) else { return };
            if let Some(msg) = decode(&v) {
                return r(SocketEvent::Frame(msg));
            }
            #[cfg(feature = "rooms")]
            if let Some(relay) = decode_relay(&v) {
                return r(SocketEvent::Relay(relay));
            }
            // A frame this version does not understand (a newer hub), or a room's on a widget
            // built without rooms: skip it.
            web_sys::console::debug_1(&"natter: ignored an unknown frame".into());
        });
        let on_close = Listener::new(&ws, "close", false, move |e| {
            report(SocketEvent::Closed(e.unchecked_ref::<CloseEvent>().code()))
        });
        Ok(Socket { ws, _listeners: [on_open, on_message, on_close] })
    }

    /// Sends a text frame; a failure shows up as a close.
    pub(crate) fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(natter_protocol::close::NORMAL);
        }
    }
}

/// What [`poll`] and [`post`] call back with, once.
pub(crate) type AnswerTo = Box<dyn FnOnce(Answer)>;

/// Fetches `url` and calls `then` with the answer: its frame, status and issued session.
fn fetch_json(url: &str, init: &RequestInit, then: AnswerTo) {
    let failed = || Answer { frame: None, ok: false, session: None };
    let Some(window) = web_sys::window() else { return then(failed()) };
    settle(
        &window.fetch_with_str_and_init(url, init),
        Box::new(move |resp| {
            // A fetch fulfils with a Response, or rejects (network failure, aborted).
            let Ok(resp) = resp.map(JsCast::unchecked_into::<Response>) else { return then(failed()) };
            let session = resp.headers().get(SESSION_HEADER).ok().flatten();
            let ok = resp.ok();
            match resp.json() {
                Ok(body) => settle(
                    &body,
                    Box::new(move |body| {
                        then(Answer { frame: body.ok().as_ref().and_then(decode), ok, session })
                    }),
                ),
                Err(_) => then(Answer { frame: None, ok, session }),
            }
        }),
    );
}

/// One long-poll, answering `then` with: a 2xx answer's `history`, the `error` of a refusal (a
/// 4xx), or nothing when the network failed. A refused origin's 403 (`forbidden_origin`) is
/// readable too, with or without credential headers: the hub lets any page's preflight through
/// and marks that one refusal readable, so the widget can tell "not allowed on this site" from
/// an outage.
pub(crate) fn poll(
    end: &Endpoint,
    who: &Credentials,
    after: Option<u64>,
    signal: &AbortSignal,
    then: AnswerTo,
) {
    let mut url = crate::compose::join(&[&end.http, "/api/chat/poll"]);
    if let Some(a) = after {
        url.push_str("?after=");
        crate::compose::push_decimal(&mut url, a);
    }
    long_poll(&url, who, signal, then);
}

/// One long-poll of `room` (a room member on the HTTP fallback): as [`poll`].
#[cfg(feature = "rooms")]
pub(crate) fn poll_room(
    end: &Endpoint,
    who: &Credentials,
    room: &str,
    after: Option<u64>,
    signal: &AbortSignal,
    then: AnswerTo,
) {
    let room = String::from(js_sys::encode_uri_component(room));
    let mut url = crate::compose::join(&[&end.http, "/api/chat/poll?room=", &room]);
    if let Some(a) = after {
        url.push_str("&after=");
        crate::compose::push_decimal(&mut url, a);
    }
    long_poll(&url, who, signal, then);
}

/// The long-poll of [`poll`] and `poll_room` at `url`.
fn long_poll(url: &str, who: &Credentials, signal: &AbortSignal, then: AnswerTo) {
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(signal));
    if let Some(h) = headers(who, false) {
        init.set_headers(&h);
    }
    fetch_json(
        url,
        &init,
        Box::new(move |mut answer| {
            answer.frame = match answer.frame {
                Some(ServerMessage::History(h)) if answer.ok => Some(ServerMessage::History(h)),
                Some(e @ ServerMessage::Error(_)) if !answer.ok => Some(e),
                _ => None,
            };
            then(answer)
        }),
    );
}

/// One HTTP send, answering `then` with the hub's `ack` or `error`, or no frame when the network
/// failed (or the answer was not a frame, e.g. a proxy's error page) — the message is then
/// re-sent later.
pub(crate) fn post(end: &Endpoint, who: &Credentials, out: &Outgoing, signal: &AbortSignal, then: AnswerTo) {
    post_frame(end, who, &crate::wire::user_message(out), signal, then);
}

/// One HTTP send of a room message (`body`: its JSON text): as [`post`].
#[cfg(feature = "rooms")]
pub(crate) fn post_room(end: &Endpoint, who: &Credentials, body: &str, signal: &AbortSignal, then: AnswerTo) {
    post_frame(end, who, body, signal, then);
}

/// The HTTP send of [`post`] and `post_room`: `body` (a frame's JSON text) to the hub.
fn post_frame(end: &Endpoint, who: &Credentials, body: &str, signal: &AbortSignal, then: AnswerTo) {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_signal(Some(signal));
    init.set_body(&JsValue::from_str(body));
    if let Some(h) = headers(who, true) {
        init.set_headers(&h);
    }
    fetch_json(
        &crate::compose::join(&[&end.http, "/api/chat/messages"]),
        &init,
        Box::new(move |mut answer| {
            answer.frame =
                answer.frame.filter(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error(_)));
            then(answer)
        }),
    );
}

/// The `History` of a poll's answer.
pub(crate) fn history_of(frame: Option<ServerMessage>) -> Option<History> {
    match frame {
        Some(ServerMessage::History(h)) => Some(h),
        _ => None,
    }
}
