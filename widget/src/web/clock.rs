//! Message times in the visitor's language, by the browser's `Intl`: `14:05` (or `2:05 PM`)
//! today, "yesterday 14:05" (`Intl.RelativeTimeFormat`), a short date before that, and the
//! full date and time as the tooltip.
//!
//! The formatters are made once per widget, in JavaScript (view.js): a dozen `Intl` and `Date`
//! calls made from Rust were as many imports in the wasm and its glue. A locale tag `Intl`
//! rejects gets the browser's default locale; a browser without `Intl` shows no times.

use crate::prelude::*;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/view.js")]
extern "C" {
    /// The `Intl` formatters of one widget.
    pub(crate) type Clock;

    /// The formatters for `locale` (a BCP 47 tag).
    #[wasm_bindgen(constructor)]
    pub(crate) fn new(locale: &str) -> Clock;

    /// An RFC 3339 time as shown under a message (empty for an empty or unreadable time).
    #[wasm_bindgen(method)]
    pub(crate) fn label(this: &Clock, iso: &str) -> String;

    /// The same time in full, for the tooltip (empty likewise).
    #[wasm_bindgen(method)]
    pub(crate) fn full(this: &Clock, iso: &str) -> String;
}
