//! The link to the hub: one WebSocket at a time, and the HTTP fallback (POST to send, GET
//! long-poll to receive). These functions only move frames; what to do with them is decided by
//! `state::update`.
//!
//! Inbound JSON is parsed by the browser (`JSON.parse`, `Response.json()`) and read into
//! protocol types by [`decode`]; outbound frames are written by `crate::wire`. No JSON text
//! parser and no serde machinery ends up in the wasm binary.
//!
//! The browser calls themselves (the WebSocket, `fetch`, the page's location) are JavaScript
//! beside this module (`page.js`, bundled into the glue): made from Rust, each was an import in
//! the wasm, its glue and a call site.

use crate::prelude::*;

use super::frame::decode;
use super::listen::Callback;
use super::promise::settle;
#[cfg(feature = "rooms")]
use super::rooms::decode_relay;
#[cfg(feature = "rooms")]
use crate::state::rooms::Relayed;
use crate::state::Outgoing;
use natter_protocol::{History, ServerMessage, SESSION_HEADER};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortSignal;

#[wasm_bindgen(module = "/src/web/page.js")]
extern "C" {
    /// The hub's HTTP base for the configured server, resolved against the page's URL.
    fn endpoint(server: &str) -> String;

    /// Where the page is now (see [`page_now`]).
    #[wasm_bindgen(js_name = pageNow)]
    pub(crate) fn page_now() -> String;

    /// One GET (`body` `None`) or POST to the hub; fulfils with `[json, ok, issued session]`.
    fn call(
        url: &str,
        body: Option<&str>,
        signal: &AbortSignal,
        name: &str,
        value: &str,
        issued: &str,
    ) -> js_sys::Promise;

    /// An open (or opening) WebSocket reporting to a callback (see page.js).
    #[wasm_bindgen(js_name = Socket)]
    type Ws;

    #[wasm_bindgen(constructor, catch, js_class = "Socket")]
    fn new(url: &str, report: &Callback) -> Result<Ws, JsValue>;

    #[wasm_bindgen(method)]
    fn send(this: &Ws, text: &str);

    #[wasm_bindgen(method)]
    fn close(this: &Ws, code: u16);
}

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
        // The http(s) origin and path of `server` (the page's own origin when empty), without a
        // trailing slash; `server` as written when it is no http(s) or ws(s) URL or path.
        let http = endpoint(server);
        // `http://…` → `ws://…`, `https://…` → `wss://…`.
        let ws = match http.strip_prefix("http") {
            Some(rest) => crate::compose::join(&["ws", rest]),
            None => http.clone(),
        };
        Endpoint { http, ws }
    }

    /// The WebSocket URL: no credentials and no resume point in it (the `auth` frame carries
    /// them, so that no proxy log holds a session or a token).
    pub(crate) fn socket_url(&self) -> String {
        crate::compose::join(&[&self.ws, "/ws/chat"])
    }
}

// `page_now` (page.js): where the page is now (a single-page app moves), the `auth` frame's
// `page` for clients of the hub that send no context of their own. The path, and the route of
// an app that routes by hash (`/app#/checkout`, `#!/cart`), as the npm facade's context has it;
// never a query or another fragment, which may hold private data (an OAuth token).

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
    ws: Ws,
    /// Hears `open`, `message` and `close`. (Unhooked by `close()` in `drop`: the close event
    /// is dispatched later, in a task of its own, so it is never reported.)
    _report: Callback,
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
        // -1: it opened; another number: it closed with that code; an object: a frame (JSON
        // text that is no object is skipped in page.js).
        let callback = Callback::new(move |v: JsValue| match v.as_f64() {
            Some(n) if n < 0.0 => report(SocketEvent::Open),
            Some(code) => report(SocketEvent::Closed(code as u16)),
            None => {
                if let Some(msg) = decode(&v) {
                    return report(SocketEvent::Frame(msg));
                }
                #[cfg(feature = "rooms")]
                if let Some(relay) = decode_relay(&v) {
                    return report(SocketEvent::Relay(relay));
                }
                // A frame this version does not understand (a newer hub), or a room's on a
                // widget built without rooms: skip it.
                web_sys::console::debug_1(&"natter: ignored an unknown frame".into());
            }
        });
        let ws = Ws::new(url, &callback)?;
        Ok(Socket { ws, _report: callback })
    }

    /// Sends a text frame; a failure shows up as a close.
    pub(crate) fn send(&self, text: &str) {
        self.ws.send(text);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.close(natter_protocol::close::NORMAL);
    }
}

/// What [`poll`] and [`post`] call back with, once.
pub(crate) type AnswerTo = Box<dyn FnOnce(Answer)>;

/// Fetches `url` (a GET, or a POST of `body`) as `who` and calls `then` with the answer: its
/// frame, status and issued session. Who the widget is goes in a header, never in the URL.
fn fetch_json(url: &str, body: Option<&str>, who: &Credentials, signal: &AbortSignal, then: AnswerTo) {
    let bearer;
    let (name, value) = match (&who.token, &who.session) {
        (Some(t), _) => {
            bearer = crate::compose::join(&["Bearer ", t]);
            ("authorization", bearer.as_str())
        }
        (None, Some(s)) => (SESSION_HEADER, s.as_str()),
        (None, None) => ("", ""),
    };
    settle(
        &call(url, body, signal, name, value, SESSION_HEADER),
        Box::new(move |answer| {
            // `call` always fulfils: `[json, ok, session]`.
            let answer: js_sys::Array = answer.unwrap_or_default().unchecked_into();
            then(Answer {
                frame: decode(&answer.get(0)),
                ok: answer.get(1).as_bool() == Some(true),
                session: answer.get(2).as_string(),
            })
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

/// One long-poll of `rooms` (a room member on the HTTP fallback), each after its newest `seq`
/// (none: its recent history): `?rooms=a,b&after=3,` — as [`poll`], answered with the first
/// room that has news. (Room ids are letters, digits, `-`, `_`, `.` and `:`: nothing to escape,
/// and no comma.)
#[cfg(feature = "rooms")]
pub(crate) fn poll_rooms(
    end: &Endpoint,
    who: &Credentials,
    rooms: &[(String, Option<u64>)],
    signal: &AbortSignal,
    then: AnswerTo,
) {
    let mut url = crate::compose::join(&[&end.http, "/api/chat/poll?rooms="]);
    let mut after = String::from("&after=");
    for (i, (room, seq)) in rooms.iter().enumerate() {
        if i > 0 {
            url.push(',');
            after.push(',');
        }
        url.push_str(room);
        if let Some(s) = seq {
            crate::compose::push_decimal(&mut after, *s);
        }
    }
    url.push_str(&after);
    long_poll(&url, who, signal, then);
}

/// The long-poll of [`poll`] and `poll_room` at `url`.
fn long_poll(url: &str, who: &Credentials, signal: &AbortSignal, then: AnswerTo) {
    fetch_json(
        url,
        None,
        who,
        signal,
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
    fetch_json(
        &crate::compose::join(&[&end.http, "/api/chat/messages"]),
        Some(body),
        who,
        signal,
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
