//! An event listener that removes itself when dropped (gloo-events style), so tearing the
//! widget down is dropping its values.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;

/// What the widget hands the browser to call: listeners, socket handlers and timeouts alike.
/// One closure type for all of them, because wasm-bindgen makes glue (in the wasm and in the
/// JS) per closure type.
pub(crate) type Callback = Closure<dyn FnMut(JsValue)>;

/// A registered DOM event listener; dropping it unregisters it.
#[must_use = "the listener is removed when this value is dropped"]
pub(crate) struct Listener {
    target: EventTarget,
    kind: &'static str,
    capture: bool,
    closure: Callback,
}

impl Listener {
    /// Adds `f` as a `kind` listener on `target`.
    pub(crate) fn new(
        target: &EventTarget,
        kind: &'static str,
        capture: bool,
        mut f: impl FnMut(web_sys::Event) + 'static,
    ) -> Listener {
        // An event listener is only ever called with an event.
        let closure = Callback::new(move |e: JsValue| f(e.unchecked_into()));
        // addEventListener only throws for a non-callable listener, which this is not.
        let _ =
            target.add_event_listener_with_callback_and_bool(kind, closure.as_ref().unchecked_ref(), capture);
        Listener { target: target.clone(), kind, capture, closure }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.target.remove_event_listener_with_callback_and_bool(
            self.kind,
            self.closure.as_ref().unchecked_ref(),
            self.capture,
        );
    }
}
