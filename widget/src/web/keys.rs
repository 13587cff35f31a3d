//! Reading keyboard events for the rules in `crate::keys`: the press itself, and whether it
//! went to a place where the visitor types.

use crate::keys::KeyPress;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, KeyboardEvent};

/// The parts of a `keydown` the rules look at.
pub(crate) fn press(e: &KeyboardEvent) -> KeyPress {
    KeyPress {
        key: e.key(),
        code: e.code(),
        ctrl: e.ctrl_key(),
        shift: e.shift_key(),
        alt: e.alt_key(),
        meta: e.meta_key(),
        alt_graph: e.get_modifier_state("AltGraph"),
        repeat: e.repeat(),
        is_composing: e.is_composing(),
        key_code: e.key_code(),
    }
}

/// Input types that take no typed text (a key on them is not a character being written).
const NOT_TEXT: &[&str] =
    &["button", "checkbox", "color", "file", "hidden", "image", "radio", "range", "reset", "submit"];

fn is_editable(el: &Element) -> bool {
    match el.tag_name().as_str() {
        "TEXTAREA" | "SELECT" => true,
        "INPUT" => {
            let kind = el.get_attribute("type").unwrap_or_default().to_ascii_lowercase();
            !NOT_TEXT.contains(&kind.as_str())
        }
        _ => {
            el.dyn_ref::<HtmlElement>().is_some_and(HtmlElement::is_content_editable)
                || matches!(el.get_attribute("role").as_deref(), Some("textbox" | "searchbox" | "combobox"))
        }
    }
}

/// Whether the event's target is an editable place. `composedPath()` is read rather than
/// `target`, which a shadow root retargets to its host: an input inside another component's
/// (open) shadow root, or inside ours, is seen as what it is.
pub(crate) fn in_editable(e: &web_sys::Event) -> bool {
    e.composed_path().iter().filter_map(|n| n.dyn_into::<Element>().ok()).any(|el| is_editable(&el))
}
