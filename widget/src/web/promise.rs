//! Waiting for a JS promise without an async executor: [`settle`] calls back once with what the
//! promise settled to, [`soon`] once the current callback has returned.
//!
//! The widget waits on a promise in five places (a fetch and its body, the audio context
//! resuming, a microtask for releasing values and for `ready`). `wasm-bindgen-futures` for them
//! was an executor, its task queue, `JsFuture` and a state machine per `async fn`: about 1 KiB of
//! gzip for every visitor. `Promise.allSettled` turns either outcome into one fulfilment, so one
//! self-releasing closure per promise is enough, and every caller shares its one closure type.

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// What a promise settled to: `Ok(value)` when fulfilled, `Err(reason)` when rejected.
pub(crate) type Settled = Result<JsValue, JsValue>;

/// Calls `then` once, in a later microtask, with what `promise` settles to.
pub(crate) fn settle(promise: &Promise, then: Box<dyn FnOnce(Settled)>) {
    // Released by wasm-bindgen after its one call; `allSettled` always fulfils, so it is called.
    let callback = Closure::once_into_js(move |outcomes: JsValue| {
        let outcome = Reflect::get(&outcomes, &JsValue::from_f64(0.0)).unwrap_or_default();
        let field = |name: &str| Reflect::get(&outcome, &JsValue::from_str(name)).unwrap_or_default();
        let fulfilled = field("status").as_string().as_deref() == Some("fulfilled");
        then(if fulfilled { Ok(field("value")) } else { Err(field("reason")) })
    });
    let all = Promise::all_settled(&Array::of1(promise));
    // `all.then(callback)`, through `Reflect`: js-sys's `then` wants a closure kept alive by its
    // caller, this one releases itself.
    if let Ok(then) = Reflect::get(&all, &JsValue::from_str("then")) {
        let _ = then.unchecked_into::<Function>().call1(&all, &callback);
    }
}

/// Calls `then` in a microtask: after the callback that is running now has returned.
pub(crate) fn soon(then: Box<dyn FnOnce()>) {
    settle(&Promise::resolve(&JsValue::UNDEFINED), Box::new(move |_| then()));
}
