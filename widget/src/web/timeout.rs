//! A timeout that is cancelled when dropped (gloo-timers style), so tearing the widget down is
//! dropping its values.
//!
//! Its callback has the same JS-facing type as every other callback the widget hands the
//! browser (`Closure<dyn FnMut(JsValue)>`, see `listen`): wasm-bindgen makes glue, in the wasm
//! and in the JS, per closure type, and one type for everything is what the widget downloads.

use super::listen::Callback;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout, catch)]
    fn set_timeout(handler: &JsValue, ms: i32) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// A running timeout; dropping it cancels it.
#[must_use = "the timeout is cancelled when this value is dropped"]
pub(crate) struct Timeout {
    /// `None` if the browser refused to set it (it never fires then).
    id: Option<JsValue>,
    _callback: Callback,
}

impl Timeout {
    /// Calls `f` once, after `ms` milliseconds.
    pub(crate) fn new(ms: u32, f: impl FnOnce() + 'static) -> Timeout {
        let mut f = Some(f);
        let callback = Callback::new(move |_: JsValue| {
            if let Some(f) = f.take() {
                f()
            }
        });
        // Browsers clamp a longer delay to 2^31 - 1 ms; the widget's are seconds.
        let id = set_timeout(callback.as_ref(), i32::try_from(ms).unwrap_or(i32::MAX)).ok();
        Timeout { id, _callback: callback }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            clear_timeout(id);
        }
    }
}
