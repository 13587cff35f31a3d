//! The one closure type the widget hands the browser to call: the page's and the widget's
//! events (`View.listen` in view.js), the socket (page.js) and timeouts alike.
//!
//! Each is owned by a Rust value that releases it (the runtime, the socket, the timeout), so
//! tearing the widget down is dropping its values.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;

/// What the widget hands the browser to call. One closure type for all of them, because
/// wasm-bindgen makes glue (in the wasm and in the JS) per closure type.
pub(crate) type Callback = Closure<dyn FnMut(JsValue)>;
