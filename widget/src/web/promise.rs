//! Waiting for a JS promise without an async executor: [`settle`] calls back once with what the
//! promise settled to, [`soon`] once the current callback has returned.
//!
//! The widget waits on a promise in five places (a fetch and its body, the audio context
//! resuming, a microtask for releasing values and for `ready`). `wasm-bindgen-futures` for them
//! was an executor, its task queue, `JsFuture` and a state machine per `async fn`: about 1 KiB of
//! gzip for every visitor. One self-releasing closure per promise is enough, and every caller
//! shares its one closure type; the `then` itself is JavaScript (`api.js`).

use crate::prelude::*;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/web/api.js")]
extern "C" {
    /// Calls `then` once with `[true, value]` or `[false, reason]` when `value` settles.
    #[wasm_bindgen(js_name = settle)]
    fn when_settled(value: &JsValue, then: &JsValue);
}

/// What a promise settled to: `Ok(value)` when fulfilled, `Err(reason)` when rejected.
pub(crate) type Settled = Result<JsValue, JsValue>;

/// Calls `then` once, in a later microtask, with what `value` (a promise, or any value: then
/// at once) settles to.
fn on(value: &JsValue, then: Box<dyn FnOnce(Settled)>) {
    // Released by wasm-bindgen after its one call; api.js calls it either way.
    let callback = Closure::once_into_js(move |outcome: JsValue| {
        let outcome: Array = outcome.unchecked_into();
        let value = outcome.get(1);
        then(if outcome.get(0).as_bool() == Some(true) { Ok(value) } else { Err(value) })
    });
    when_settled(value, &callback);
}

/// Calls `then` once, in a later microtask, with what `promise` settles to.
pub(crate) fn settle(promise: &Promise, then: Box<dyn FnOnce(Settled)>) {
    on(promise, then);
}

/// Calls `then` in a microtask: after the callback that is running now has returned.
pub(crate) fn soon(then: Box<dyn FnOnce()>) {
    on(&JsValue::UNDEFINED, Box::new(move |_| then()));
}
