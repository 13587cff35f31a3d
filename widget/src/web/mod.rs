//! The browser layer (wasm32 only): everything that touches a browser API, kept thin — it
//! turns browser callbacks into `state::Event`s and carries out `state::Effect`s, and the
//! decisions stay in the natively tested `state` module.
//!
//! # Layout
//! - `api`: what JS sees — the exported [`Natter`] handle, [`mount`], reading the options
//!   object, the JS shapes of the state and of a message.
//! - `runtime`: one mounted widget — the event loop around `state::update`, and the owner of
//!   every listener, timer, socket and request.
//! - `dom`: the Shadow DOM and its rendering; `clock`: message times with `Intl`; `listen`: listeners that remove themselves;
//!   `keys`: reading key presses and where they went.
//! - `link`: the WebSocket and the HTTP fallback; `frame`: reading hub frames.
//! - `rooms`: rooms at the JS boundary (snapshots, events, options through
//!   `serde_wasm_bindgen`) and reading relayed collaboration frames.
//! - `storage`: `localStorage`; `random`: ids and the jitter seed; `sound`: the chime.

mod api;
mod clock;
mod dom;
mod frame;
mod keys;
mod link;
mod listen;
mod random;
mod rooms;
mod runtime;
mod sound;
mod storage;

pub use api::{mount, Natter};

/// The allocator: talc rather than Rust's default for wasm (dlmalloc). The widget makes many
/// small, short-lived allocations (frames, strings, effects); talc serves them at least as fast,
/// and the module a page downloads is 6.8 KB smaller with it (2.4 KB gzip).
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
