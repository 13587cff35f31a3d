//! What JS sees: the exported [`Natter`] handle and [`mount`], the options object read
//! property by property, and the JS shapes of the widget's state and of a message.
//!
//! This is the whole wasm-bindgen surface; everything behind it is crate-private.

use super::frame;
use super::runtime::Runtime;
use crate::options::{Flex, RawOptions};
use crate::state::link::Transport;
use crate::state::log::Message;
use crate::state::{Event, Model};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// `{connected, transport, open, unread, status, muted}`, as `state` and the `ready` and
/// `status` events give it.
pub(super) fn state_js(m: &Model) -> JsValue {
    let o = js_sys::Object::new();
    let transport = m.link.transport();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
    };
    set("connected", (transport != Transport::None).into());
    set("transport", transport.as_str().into());
    set("open", m.open.into());
    set("unread", m.log.unread.into());
    set("status", m.link.status().label().into());
    set("muted", m.muted.into());
    let user = match &m.identity.user {
        Some((id, name)) => {
            let u = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&u, &"id".into(), &id.as_str().into());
            let _ = js_sys::Reflect::set(
                &u,
                &"name".into(),
                &name.as_deref().map_or(JsValue::NULL, JsValue::from),
            );
            u.into()
        }
        None => JsValue::NULL,
    };
    set("user", user);
    o.into()
}

/// `{id, role, text, time, state, seq}`, as the `message` event gives it.
pub(super) fn message_js(m: &Message) -> JsValue {
    let o = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
    };
    set("id", m.id.as_str().into());
    set("role", m.role.as_str().into());
    set("text", m.text.as_str().into());
    set("time", m.time.as_str().into());
    set("state", m.delivery.as_str().into());
    set("seq", m.seq.map_or(JsValue::NULL, |s| JsValue::from_f64(s as f64)));
    o.into()
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
    /// fresh token at any time): the widget reconnects as that user, whose conversation it then
    /// shows. Nothing in the outbox is lost.
    pub fn identify(&self, token: &str) {
        let token = token.trim();
        if !token.is_empty() {
            self.rt.dispatch(Event::Identify { token: token.to_string() });
        }
    }

    /// Logs out: forgets the conversation on this device (its messages, outbox and session) and
    /// starts a new, empty anonymous one.
    pub fn logout(&self) {
        self.rt.dispatch(Event::Logout);
    }

    /// Calls `f` on `event`: `ready`, `open`, `close`, `message`, `unread`, `status`, `sound`,
    /// `tokenExpired`.
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

/// Reads the options object property by property (see `options`).
fn read_options(o: &JsValue) -> RawOptions {
    let get = |k: &str| {
        if !o.is_object() {
            return None;
        }
        js_sys::Reflect::get(o, &k.into()).ok().filter(|v| !v.is_undefined() && !v.is_null())
    };
    let string = |k: &str| get(k).and_then(|v| v.as_string());
    let flex = |k: &str| {
        let v = get(k)?;
        if let Some(b) = v.as_bool() {
            Some(Flex::Bool(b))
        } else if let Some(n) = v.as_f64() {
            Some(Flex::Num(n))
        } else {
            v.as_string().map(Flex::Str)
        }
    };
    let colors = get("colors")
        .and_then(|c| c.dyn_into::<js_sys::Object>().ok())
        .map(|c| {
            js_sys::Object::entries(&c)
                .iter()
                .filter_map(|pair| {
                    let pair: js_sys::Array = pair.dyn_into().ok()?;
                    Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
                })
                .collect()
        })
        .unwrap_or_default();
    RawOptions {
        server: string("server"),
        position: string("position"),
        z_index: flex("zIndex"),
        title: string("title"),
        greeting: string("greeting"),
        shortcut: flex("shortcut"),
        theme: string("theme"),
        open: flex("open"),
        accent: string("accent"),
        colors,
        identity_token: string("identityToken"),
    }
}

/// Mounts a widget on the page: `mount({server, position, zIndex, title, greeting, shortcut,
/// theme, open, accent, colors, identityToken})`.
#[wasm_bindgen]
pub fn mount(options: JsValue) -> Result<Natter, JsValue> {
    console_error_panic_hook::set_once();
    // (`tokenExpired` is the npm module's: it listens to the `tokenExpired` event and calls
    // `identify` with what the option gives.)
    let options = read_options(&options).resolve();
    let rt = Runtime::mount(options)?;
    Ok(Natter { rt })
}
