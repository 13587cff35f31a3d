//! Reading keyboard events for the rules in `crate::keys`: the press itself, and whether it
//! went to a place where the visitor types.
//!
//! The reads are JavaScript beside this module (`page.js`): a dozen `KeyboardEvent` and element
//! reads made from Rust were as many imports in the wasm and its glue.

use crate::keys::KeyPress;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/web/page.js")]
extern "C" {
    /// `[key, code, modifier bits, keyCode]` (see page.js).
    #[wasm_bindgen(js_name = press)]
    fn read(e: &web_sys::Event) -> JsValue;

    /// Whether the event's target is an editable place (through open shadow roots).
    #[wasm_bindgen(js_name = inEditable)]
    pub(crate) fn in_editable(e: &web_sys::Event) -> bool;
}

/// The parts of a `keydown` the rules look at.
pub(crate) fn press(e: &web_sys::Event) -> KeyPress {
    let v: js_sys::Array = read(e).unchecked_into();
    let bits = v.get(2).as_f64().unwrap_or_default() as u32;
    let on = |bit: u32| bits & bit != 0;
    KeyPress {
        key: v.get(0).as_string().unwrap_or_default(),
        code: v.get(1).as_string().unwrap_or_default(),
        ctrl: on(1),
        shift: on(2),
        alt: on(4),
        meta: on(8),
        alt_graph: on(16),
        repeat: on(32),
        is_composing: on(64),
        key_code: v.get(3).as_f64().unwrap_or_default() as u32,
    }
}
