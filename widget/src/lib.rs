//! # natter-widget — the Natter chat widget, Rust compiled to WebAssembly
//!
//! # Layout
//! - `state`: the state machine — one `update(model, event) -> effects`, plain Rust,
//!   unit-tested natively (`cargo test -p natter-widget`). Its model has two halves:
//!   `state::link` (the transport: WebSocket or HTTP fallback, backoffs, status) and
//!   `state::log` (the conversation: messages, outbox, unread, typing).
//! - `backoff`, `outbox`, `text`, `style`, `markup`, `options`, `wire`, `keys`, `compose`: the
//!   pieces it and the DOM use (reconnect delays, unacknowledged messages, link detection, CSS,
//!   the HTML templates, option parsing, the JSON the widget writes, when a shortcut or an Enter
//!   counts, texts composed without `core::fmt`), also native.
//! - `web` (wasm32 only): the thin browser layer — `web::api` (the exported `Natter` handle
//!   and `mount`), `web::runtime` (the event loop that feeds `update` and owns every listener,
//!   timer and socket), DOM rendering into an open Shadow DOM, the WebSocket / HTTP link,
//!   storage, random ids, the chime. Its browser calls are small JavaScript modules beside the
//!   Rust that uses them (`web/*.js`, bundled into the wasm-bindgen glue), handed plain values.
//!
//! The JS world sees one handle (`mount(options)` → `Natter`); everything else is crate-private.
#![deny(clippy::unwrap_used)]
// Without the `std` feature (the shipped build) the widget links no `std`: see `web::panic`.
#![cfg_attr(all(not(feature = "std"), not(test)), no_std)]
// Natively only the tests use the state logic; the web layer that drives it is wasm32-only.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

extern crate alloc;

/// What `std`'s prelude would bring, for the modules of a `no_std` crate.
mod prelude {
    // Which of them a build uses depends on its features.
    #[allow(unused_imports)]
    pub(crate) use alloc::{
        boxed::Box,
        string::{String, ToString},
        vec::Vec,
    };
}

mod backoff;
mod compose;
mod i18n;
mod keys;
mod markup;
mod options;
mod outbox;
#[cfg(feature = "rooms")]
mod panel_style;
mod state;
mod style;
mod text;
mod wire;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
pub use web::{mount, Natter};
