//! What the widget reads from the page: whether it is online and shown, its origin, `localStorage`, Web Crypto and the browser's JSON.
//!
//! The reads are JavaScript beside this module (`page.js`): made from Rust, each went through
//! the window object's lookup (`web_sys::window()`) and a web-sys import of its own.

use crate::prelude::*;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/page.js")]
extern "C" {
    /// `[navigator.onLine, document.hidden]`.
    #[wasm_bindgen(js_name = state)]
    fn read() -> js_sys::Array;

    /// The page's origin (`https://shop.example`).
    pub(crate) fn origin() -> String;

    /// `localStorage`, or `None` where the page has none or may not use it.
    pub(crate) fn storage() -> Option<web_sys::Storage>;

    /// Fills `buf` from `crypto.getRandomValues`; `false` where the page has no Web Crypto.
    pub(crate) fn random(buf: &mut [u8]) -> bool;

    /// `text` (a stored message's context) re-written by the browser's JSON if it is a JSON
    /// object; `""` otherwise.
    pub(crate) fn context(text: &str) -> String;
}

/// The page when the widget mounts.
pub(crate) struct Page {
    /// `navigator.onLine`.
    pub online: bool,
    /// `document.hidden`: another tab is in front, or the window is minimised.
    pub hidden: bool,
}

/// Reads [`Page`].
pub(crate) fn now() -> Page {
    let v = read();
    Page { online: v.get(0).as_bool() != Some(false), hidden: v.get(1).as_bool() == Some(true) }
}
