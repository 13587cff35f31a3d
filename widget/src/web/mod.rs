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
//! The clusters of browser calls are JavaScript in three modules beside these (`view.js`: the
//! Shadow DOM, the page's events, the `Intl` formatters and the Web Audio graph; `page.js`: the
//! page's state, key presses, the WebSocket and `fetch`; `api.js`: the objects the page sees),
//! bundled into the glue: made from Rust, each call was an import in the wasm and in the glue,
//! and the wasm passes plain values (texts, numbers, flags) across one narrow boundary instead.
//! Three modules, not one per Rust module: the wasm-bindgen test page loads them unbundled, and
//! its HTTP server hangs on more than about four new connections at once (see view.js).

mod api;
mod clock;
mod dom;
mod frame;
mod keys;
mod link;
mod listen;
mod page;
mod panic;
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
