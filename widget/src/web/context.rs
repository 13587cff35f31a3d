//! The page context a visitor message carries: where the visitor is when they write it.
//!
//! Read at the moment the message is written — not at mount (single-page apps change
//! `location` with `history.pushState` and the title with it) and not when an outbox re-send
//! finally goes out (the message was written on the page it was written on): `page`
//! (`location.pathname`) and `title` (`document.title`), plus the app's own fields set with
//! `natter.setContext({...})`. The npm facade merges and checks `setContext` calls and passes
//! the fields here as the JSON text of one object; the JSON of a message's context is then
//! written by `crate::wire::page_context`.

use wasm_bindgen::prelude::*;

/// The most JSON the app's own context fields may take. Documented in npm/README.md.
pub(crate) const MAX_APP_CONTEXT_BYTES: usize = 2048;
/// Titles and paths longer than this (in characters) are cut: they are hints for the reply
/// engine, and a frame over the hub's size limit would be refused.
const MAX_CHARS: usize = 300;

/// The app's context fields.
#[derive(Default)]
pub(crate) struct PageContext {
    /// The JSON text of an object, `{...}`, or empty.
    app: String,
}

/// `s` cut to [`MAX_CHARS`] characters (at a character boundary, without a panicking slice).
fn cut(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_CHARS) {
        s.truncate(at);
    }
    s
}

impl PageContext {
    /// Replaces the app's fields with `json`, the JSON text of one object as the npm facade
    /// makes it with `JSON.stringify` after checking it (`""` clears them).
    ///
    /// # Errors
    /// A `TypeError` when `json` is not `{…}` or is over [`MAX_APP_CONTEXT_BYTES`]; the fields
    /// set before are kept.
    pub(crate) fn set(&mut self, json: String) -> Result<(), JsValue> {
        let json = json.trim();
        let object = json.starts_with('{') && json.ends_with('}');
        if !(json.is_empty() || object) || json.len() > MAX_APP_CONTEXT_BYTES {
            return Err(js_sys::TypeError::new(
                "natter.setContext: expected an object's JSON, 2048 bytes at most",
            )
            .into());
        }
        self.app = json.to_string();
        Ok(())
    }

    /// The context of a message written now, as JSON text.
    pub(crate) fn snapshot(&self) -> String {
        let Some(window) = web_sys::window() else { return String::new() };
        let page = cut(window.location().pathname().unwrap_or_default());
        let title = cut(window.document().map(|d| d.title()).unwrap_or_default());
        crate::wire::page_context(&page, &title, &self.app)
    }
}
