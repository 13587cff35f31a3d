//! The browser layer (wasm32 only): everything that touches a browser API, kept thin — it
//! turns browser callbacks into `state::Event`s and carries out `state::Effect`s, and the
//! decisions stay in the natively tested `state` module.
//!
//! # Layout
//! - `api`: what JS sees — the exported [`Natter`] handle, [`mount`], reading the options
//!   object, the JS shapes of the state and of a message.
//! - `runtime`: one mounted widget — the event loop around `state::update`, and the owner of
//!   every listener, timer, socket and request.
//! - `dom`: the Shadow DOM and its rendering; `clock`: message times with `Intl`; `keys`:
//!   reading key presses and where they went.
//! - `listen`: the one closure type the widget hands the browser; `timeout`: timeouts that
//!   cancel themselves.
//! - `link`: the WebSocket and the HTTP fallback; `frame`: reading hub frames.
//! - `rooms` (feature `rooms`): rooms at the JS boundary (snapshots, events, the `joinRoom`
//!   options) and reading relayed collaboration frames.
//! - `storage`: `localStorage`; `random`: ids and the jitter seed; `sound`: the chime.
//! - `promise`: waiting for a JS promise (a fetch, the audio context) with a callback.
//!
//! The clusters of browser calls are JavaScript beside their module (`dom.js`, the Shadow DOM
//! and the page's events; `link.js`, the WebSocket and `fetch`; `clock.js`, the `Intl`
//! formatters; `chime.js`, the Web Audio graph), bundled into the glue: made from Rust, each call
//! was an import in the wasm and in the glue, and the wasm passes plain values (texts, numbers,
//! flags) across one narrow boundary instead.

mod api;
mod clock;
mod dom;
mod frame;
mod keys;
mod link;
mod listen;
mod page;
mod promise;
mod random;
#[cfg(feature = "rooms")]
mod rooms;
mod runtime;
mod sound;
mod storage;
mod timeout;

pub use api::{mount, Natter};

/// The allocator: talc rather than Rust's default for wasm (dlmalloc). The widget makes many
/// small, short-lived allocations (frames, strings, effects); talc serves them at least as fast,
/// and the module a page downloads is 6.8 KB smaller with it (2.4 KB gzip).
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
