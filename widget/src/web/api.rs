//! What JS sees: the exported [`Natter`] handle and [`mount`], the options object read
//! property by property, and the JS shapes of the widget's state and of a message.
//!
//! This is the whole wasm-bindgen surface; everything behind it is crate-private.

use crate::prelude::*;

use super::frame;
use super::runtime::Runtime;
use crate::options::{Flex, RawOptions};
use crate::state::link::Transport;
use crate::state::log::Message;
#[cfg(feature = "rooms")]
use crate::state::{rooms::RelayKind, RoomCall};
use crate::state::{Event, Model};
use alloc::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/web/api.js")]
extern "C" {
    /// `{connected, transport, open, unread, status, muted, user}` (see api.js).
    #[wasm_bindgen(js_name = state)]
    fn state_object(
        connected: bool,
        transport: &str,
        open: bool,
        unread: u32,
        status: &str,
        muted: bool,
        id: Option<&str>,
        name: Option<&str>,
    ) -> JsValue;

    /// `{id, role, text, time, state, seq, author}`, with `retried` when given (see api.js).
    #[wasm_bindgen(js_name = message)]
    fn message_object(
        id: &str,
        role: &str,
        text: &str,
        time: &str,
        state: &str,
        seq: Option<f64>,
        author: Option<&str>,
        retried: Option<bool>,
    ) -> JsValue;

    /// The options object's values, in the order `read_options` takes them (see api.js).
    fn options(o: &JsValue) -> js_sys::Array;
}

/// `{connected, transport, open, unread, status, muted, user}`, as `state` and the `ready` and
/// `status` events give it (`user`: `{id, name}` of a signed-in user, `name` possibly null;
/// null otherwise).
pub(super) fn state_js(m: &Model) -> JsValue {
    let transport = m.link.transport();
    let user = m.identity.user.as_ref();
    state_object(
        transport != Transport::None,
        transport.as_str(),
        m.open,
        m.log.unread,
        m.link.status().label(),
        m.muted,
        user.map(|(id, _)| id.as_str()),
        user.and_then(|(_, name)| name.as_deref()),
    )
}

/// `{id, role, text, time, state, seq, author}`, as the `message` event gives it (`author`:
/// an operator's display name, on their replies; `null` otherwise), and with `retried` as the
/// `delivery` event gives it: one of this tab's messages changed state (`retried`: pending
/// again because the visitor retried).
pub(super) fn message_js(m: &Message, retried: Option<bool>) -> JsValue {
    message_object(
        &m.id,
        m.role.as_str(),
        &m.text,
        &m.time,
        m.delivery.as_str(),
        m.seq.map(|s| s as f64),
        m.author.as_deref(),
        retried,
    )
}

/// A mounted chat widget: the one object the page holds.
#[wasm_bindgen]
pub struct Natter {
    rt: Rc<Runtime>,
}

#[wasm_bindgen]
impl Natter {
    /// Opens the panel and moves focus to the input.
    pub fn open(&self) {
        self.rt.dispatch(Event::Open);
    }

    /// Closes the panel and gives focus back to where it was.
    pub fn close(&self) {
        self.rt.dispatch(Event::Close);
    }

    /// Opens the panel if closed, closes it if open.
    pub fn toggle(&self) {
        self.rt.dispatch(Event::Toggle);
    }

    /// Sends `text` as the visitor; returns the message id (undefined for blank text).
    pub fn send(&self, text: &str) -> Option<String> {
        self.rt.send_text(text)
    }

    /// Signs the visitor in with an identity token from the site's backend (after a login, or a
    /// fresh token at any time). A token for the user already signed in renews the connection
    /// in place; any other connects again as that user, whose conversation the widget then shows
    /// from its start. Nothing the visitor typed is lost, except that one signed-in user's
    /// unsent messages never go out as another's (they fail). A page whose origin the hub
    /// refuses stays stopped: the visitor's retry of a failed message is what tries again.
    ///
    /// `sub` is the `sub` claim the token says it is for, which the npm module reads (without
    /// verifying it: the hub does) so the widget can tell a renewal from a login.
    pub fn identify(&self, token: &str, sub: Option<String>) {
        let token = token.trim();
        if !token.is_empty() {
            self.rt.dispatch(Event::Identify { token: token.to_string(), sub });
        }
    }

    /// Logs out: forgets the conversation on this device (its messages, outbox and session) and
    /// starts a new, empty anonymous one. Messages not yet stored are dropped, each told `failed`
    /// on `delivery`.
    pub fn logout(&self) {
        self.rt.dispatch(Event::Logout);
    }

    /// Calls `f` on `event`: `ready`, `open`, `close`, `message`, `delivery`, `unread`,
    /// `status`, `sound`, `tokenExpired`, `room` (every room event, `{ type, room, … }`).
    pub fn on(&self, event: &str, f: js_sys::Function) {
        self.rt.on(event, f);
    }

    /// Removes a listener added with `on`.
    pub fn off(&self, event: &str, f: &js_sys::Function) {
        self.rt.off(event, f);
    }

    /// `{connected, transport, open, unread, status, muted, user}`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> JsValue {
        self.rt.state()
    }

    /// The anonymous session the hub issued (kept in `localStorage`); undefined until it has.
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> Option<String> {
        self.rt.session()
    }

    /// Removes every node, listener, timer, socket and request of this widget.
    pub fn destroy(&self) {
        self.rt.destroy();
    }
}

/// The room export, only in the build with rooms: the support-only module has no `room`
/// method, and the npm module says which option turns rooms on when a page calls one.
#[cfg(feature = "rooms")]
#[wasm_bindgen]
impl Natter {
    /// One call of a `Room` object of the npm module (one export rather than one per method:
    /// each export costs glue in the wasm and in the JS), by number (npm/src/rooms.js names
    /// them): what `arg` / `id` carry for each `op`: 0 `snapshot` (answers `{ status, title,
    /// messages, members, memberCount, typing, unread }`, or null), 1 `join` (`arg`: the name,
    /// or undefined), 2 `leave`, 3 `send` (`arg`: the text, `id`: the message id the npm module
    /// made), 4 `retry` (`id`), 5 `typing` (`arg`: true / false), 6 `cursor` / 7 `update` (`arg`:
    /// the data as JSON text, which the npm module has written and checked), 8 `read`, 9 `watch`
    /// (`room` on screen; `""` for none), 10 `panelCss` (answers the collaboration panel's
    /// stylesheet, which npm/src/index.js hands the panel; `room` is ignored), 11 `clock`
    /// (answers the widget's message-time formatters, `{ label(iso), full(iso) }` in its
    /// locale, so the panel shows room times as the support chat does; `room` is ignored), 12
    /// `nameOk` (`arg`: a name; answers whether the hub takes it as a member's name, by the
    /// protocol's own rule: 1–64 characters, none of them control, bidirectional-control or
    /// line-separator characters, so the panel refuses a bad one before joining; `room` is
    /// ignored). Throws a `TypeError` for an unknown `op`.
    pub fn room(&self, op: u32, room: String, arg: JsValue, id: Option<String>) -> JsValue {
        let call = match op {
            0 => return self.rt.room_snapshot(&room),
            1 => {
                let name = arg.as_string().filter(|n| !n.trim().is_empty());
                let saved = self.rt.saved_room_outbox(&room);
                RoomCall::Join { room, name, saved }
            }
            2 => RoomCall::Leave { room },
            3 => {
                let text = arg.as_string().unwrap_or_default();
                Runtime::room_send(room, text, id.unwrap_or_else(super::random::hex_id))
            }
            4 => RoomCall::Retry { room, id: id.unwrap_or_default() },
            5 => RoomCall::Typing { room, active: arg.is_truthy() },
            6 | 7 => {
                let kind = if op == 6 { RelayKind::Cursor } else { RelayKind::Update };
                let data = arg.as_string().unwrap_or_else(|| "null".into());
                RoomCall::Relay { room, kind, data }
            }
            8 => RoomCall::Read { room },
            9 => RoomCall::Watch { room: (!room.is_empty()).then_some(room) },
            10 => return crate::panel_style::PANEL_CSS.into(),
            11 => return self.rt.clock(),
            12 => return arg.as_string().is_some_and(|n| member_name_ok(&n)).into(),
            // Thrown from here (no `Result`: its glue is larger); nothing is held to drop but
            // the room id, and only a caller outside the npm module can get here.
            _ => wasm_bindgen::throw_val(js_sys::TypeError::new("natter: no such room call").into()),
        };
        self.rt.dispatch(Event::Room(call));
        JsValue::UNDEFINED
    }
}

/// Whether the hub takes `name` as a member's name: `natter_protocol::validate_member_name`'s
/// rule as a yes or no, in one pass over the characters (its errors' texts, and the fast
/// character count of `chars().count()`, would cost the wasm a kilobyte a yes or no does not
/// need; a browser test holds the two to the same answers).
#[cfg(feature = "rooms")]
fn member_name_ok(name: &str) -> bool {
    let mut chars = 0;
    for _ in name.chars() {
        chars += 1;
    }
    chars <= natter_protocol::MAX_MEMBER_NAME_CHARS
        && !name.trim().is_empty()
        && natter_protocol::first_bad_in_name(name).is_none()
}

impl Natter {
    /// Feeds a hub frame (JSON text) to the widget as if it came from the link. For the
    /// browser tests, which have no hub; not part of the JS API.
    #[doc(hidden)]
    pub fn inject_frame(&self, json: &str) -> Result<(), JsValue> {
        let v = js_sys::JSON::parse(json)?;
        let msg = frame::decode(&v).ok_or("not a frame the widget understands")?;
        self.rt.dispatch(Event::Frame { socket: None, message: msg });
        Ok(())
    }
}

/// Reads the options object (see `options` in api.js and `crate::options`), and the npm
/// facade's two internal functions: the one that makes a message's page context (`contextOf`)
/// and its Trusted Types policy for the widget's own markup (`trustedHtml`).
fn read_options(o: &JsValue) -> (RawOptions, Option<js_sys::Function>, Option<js_sys::Function>) {
    let v = options(o);
    let string = |i: u32| v.get(i).as_string();
    let flex = |i: u32| {
        let x = v.get(i);
        if let Some(b) = x.as_bool() {
            Some(Flex::Bool(b))
        } else if let Some(n) = x.as_f64() {
            Some(Flex::Num(n))
        } else {
            x.as_string().map(Flex::Str)
        }
    };
    // `{name: text}` pairs (the npm facade has parsed a `data-strings` attribute's JSON), as
    // `[name, text, …]`.
    let pairs = |i: u32| -> Vec<(String, String)> {
        let list: js_sys::Array = v.get(i).unchecked_into();
        let text = |j: u32| list.get(j).as_string().unwrap_or_default();
        // (Pushed one by one: a map/collect is more iterator code in the wasm.)
        let mut pairs = Vec::new();
        for j in 0..list.length() / 2 {
            pairs.push((text(2 * j), text(2 * j + 1)));
        }
        pairs
    };
    let function = |i: u32| Some(v.get(i)).filter(|f| f.is_function()).map(JsCast::unchecked_into);
    let raw = RawOptions {
        server: string(0),
        position: string(1),
        z_index: flex(2),
        title: string(3),
        greeting: string(4),
        shortcut: flex(5),
        theme: string(6),
        open: flex(7),
        accent: string(8),
        colors: pairs(9),
        // Without a `locale` option, the browser's language.
        locale: string(10),
        texts_locale: string(11),
        strings: pairs(12),
        identity_token: string(13),
    };
    (raw, function(14), function(15))
}

/// Mounts a widget on the page: `mount({server, position, zIndex, title, greeting, shortcut,
/// theme, open, accent, colors})`. While one is mounted, returns a handle to it instead (with a
/// console warning): one widget, one socket per page.
#[wasm_bindgen]
pub fn mount(options: JsValue) -> Result<Natter, JsValue> {
    super::panic::install();
    if let Some(rt) = Runtime::current() {
        web_sys::console::warn_1(
            // Short: the npm module says it at length before it gets here (a page mounting
            // through the module never reaches this); this is for the glue used directly.
            &"natter: already mounted; mount() returns the same handle".into(),
        );
        return Ok(Natter { rt });
    }
    // (`tokenExpired` is the npm module's: it listens to the `tokenExpired` event and calls
    // `identify` with what the option gives.)
    let (raw, context_of, trusted_html) = read_options(&options);
    let options = raw.resolve();
    if let Some(bad) = &options.bad_shortcut {
        web_sys::console::warn_2(
            &"natter: this shortcut option is not a shortcut, so Ctrl+Shift+C is used (write it like \"Alt+K\" or \"?\"; \"none\" turns it off):".into(),
            &bad.as_str().into(),
        );
    }
    for name in &options.unknown_strings {
        web_sys::console::warn_1(
            &crate::compose::join(&[
                "natter: \"",
                name,
                "\" in the strings option is not a text of the widget",
            ])
            .into(),
        );
    }
    let rt = Runtime::mount(options, context_of, trusted_html)?;
    Ok(Natter { rt })
}

#[cfg(all(test, feature = "rooms"))]
mod tests {
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn the_panel_s_name_check_is_the_hub_s() {
        let long = "é".repeat(64);
        let too_long = "é".repeat(65);
        for name in [
            "Ada",
            "עדה",
            " Ada ",
            "",
            "   ",
            "\t",
            "Ada\u{0}",
            "Ada\tL",
            "Ada\u{200F}",
            "Ada\u{202E}",
            "\u{2066}x",
            "a\u{2028}b",
            "\u{FEFF}Ada",
            "a\u{061C}",
            "🙂",
            // Invisible: a zero-width space, a Hangul filler alone, a joiner at the end, a tag.
            "Ada\u{200B}",
            "\u{3164}",
            "Ada\u{200D}",
            "\u{200C}Ada",
            "a\u{E0041}",
            // A joiner between two characters (an emoji sequence, Persian) is a name's own.
            "Ada 👩\u{200D}💻",
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
            // Vietnamese stacks two marks; five in a row run over the lines around the name.
            "e\u{0302}\u{0301}",
            "e\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}",
            &long,
            &too_long,
        ] {
            let hub = natter_protocol::validate_member_name(name).is_ok();
            assert_eq!(super::member_name_ok(name), hub, "{name:?}");
        }
    }
}
