//! The widget's DOM: built once into an open shadow root, then kept in step with the model.
//!
//! The shadow root isolates the widget from the page's CSS (and the page from ours); styles are
//! adopted constructable stylesheets, so no `<style>` or `style=""` is ever created. Message
//! text only ever reaches the DOM through text nodes and `textContent`; links are `<a>`
//! elements made with `createElement`. The stable hooks (the `part` attributes, roles and
//! `data-*` attributes) are listed in `npm/README.md` and used by the end-to-end tests.
//!
//! The browser calls are JavaScript beside this module (`view.js`, bundled into the glue): made
//! from Rust, each of them was an import in the wasm, its glue and a call site, a few KiB to
//! download. What the DOM shows is decided here: the texts in the page's language, which part
//! of a message is a link (`crate::text`), what the model says; `view.js` gets plain values.

use crate::prelude::*;

use super::clock::Clock;
use super::listen::Callback;
use crate::i18n::{is_rtl, Key, Strings};
use crate::markup::{LABELS, PICKED, ROW, WIDGET};
use crate::options::{Options, Position};
use crate::state::link::Status;
use crate::state::Model;
use crate::text::{segments, Segment};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/view.js")]
extern "C" {
    /// One widget's elements in the page (see view.js).
    pub(crate) type View;

    /// Builds the host, its shadow root, the markup and the row template (see view.js for the
    /// arguments); throws a string when the page cannot hold the widget.
    #[wasm_bindgen(constructor, catch)]
    fn new(
        widget: &str,
        row: &str,
        picked: &str,
        trusted_html: Option<&js_sys::Function>,
        css: &str,
        custom: &str,
        theme: &str,
        position: &str,
        title: &str,
        greeting: bool,
        sending: &str,
        failed: &str,
        retry: &str,
        clock: Clock,
    ) -> Result<View, JsValue>;

    /// Sets `selector`'s `attr` (its text when `attr` is empty) to `text`.
    #[wasm_bindgen(method)]
    fn label(this: &View, selector: &str, attr: &str, text: &str);

    /// Gives the panel its language and direction and appends the host to `<body>`.
    #[wasm_bindgen(method)]
    fn attach(this: &View, lang: &str, dir: &str);

    /// Calls `report` with `[n, data]` for each event the runtime handles (see
    /// `runtime::Runtime::heard`), until [`View::unlisten`].
    #[wasm_bindgen(method)]
    pub(crate) fn listen(this: &View, report: &Callback);

    /// Removes the listeners of [`View::listen`].
    #[wasm_bindgen(method)]
    pub(crate) fn unlisten(this: &View);

    /// Plain text of the message (or greeting) being filled.
    #[wasm_bindgen(method)]
    fn text(this: &View, text: &str);

    /// A link of the message being filled (see `crate::text::Link`).
    #[wasm_bindgen(method)]
    fn link(this: &View, scheme: &str, host: &str, ascii: bool, rest: &str);

    /// The launcher, the header and the status; rows follow.
    #[wasm_bindgen(method)]
    fn render(
        this: &View,
        open: bool,
        launcher_label: &str,
        unread: u32,
        status_key: &str,
        status_text: &str,
        muted: bool,
        mute_title: &str,
        available: &str,
        online: bool,
        closed: bool,
    );

    /// The next message's row; `true` when it was made and its text is to be filled.
    #[wasm_bindgen(method)]
    fn row(this: &View, id: &str, role: &str, state: &str, time: &str, author: Option<&str>) -> bool;

    /// After the rows: drops stale ones, shows the typing dots, scrolls.
    #[wasm_bindgen(method)]
    fn end(this: &View, typing: bool, own_last: bool);

    /// Remembers where focus was and focuses the chat box (the dialog on a touch screen).
    #[wasm_bindgen(method, js_name = focusIn)]
    pub(crate) fn focus_in(this: &View);

    /// Gives focus back to where it was before the panel opened, if it is still ours.
    #[wasm_bindgen(method, js_name = focusOut)]
    pub(crate) fn focus_out(this: &View);

    /// What the chat box holds.
    #[wasm_bindgen(method)]
    fn value(this: &View) -> String;

    /// Empties the chat box and disables the send button.
    #[wasm_bindgen(method)]
    fn clear(this: &View);

    /// Enables the send button, or disables it.
    #[wasm_bindgen(method)]
    fn sendable(this: &View, yes: bool);

    /// Removes the widget from the page.
    #[wasm_bindgen(method)]
    pub(crate) fn remove(this: &View);
}

/// The widget's elements (in `view.js`) and the texts they show.
pub(crate) struct Dom {
    /// The elements.
    pub view: View,
    /// The page's language.
    strings: Strings,
}

/// Appends `text` to the message (or greeting) being filled, as text nodes and safe anchors
/// (see `crate::text` and `View.link` in view.js).
fn fill_text(view: &View, text: &str) {
    for seg in segments(text) {
        match seg {
            Segment::Text(t) => view.text(t),
            Segment::Link(l) => view.link(l.scheme, &l.host, l.ascii_host, &l.rest),
        }
    }
}

/// The text of the status label.
fn status_text(strings: &Strings, status: Status) -> &str {
    strings.get(match status {
        Status::Connecting => Key::StatusConnecting,
        Status::Connected => Key::StatusConnected,
        Status::Reconnecting => Key::StatusReconnecting,
        Status::HttpFallback => Key::StatusHttp,
        Status::Offline => Key::StatusOffline,
        Status::Unavailable => Key::StatusUnavailable,
        Status::SignInNeeded => Key::StatusSignIn,
    })
}

impl Dom {
    /// Builds the widget and appends its host to `<body>`. `trusted_html` (the npm facade's, on a
    /// page with Trusted Types) turns the widget's constant markup into `TrustedHTML`.
    pub(crate) fn build(options: &Options, trusted_html: Option<&js_sys::Function>) -> Result<Dom, JsValue> {
        let strings = &options.strings;
        let position = match options.position {
            Position::BottomRight => "bottom-right",
            Position::BottomLeft => "bottom-left",
        };
        let view = View::new(
            WIDGET,
            ROW,
            PICKED,
            trusted_html,
            &crate::style::base_css(),
            &crate::style::options_css(options),
            options.theme.as_str(),
            position,
            &options.title,
            options.greeting.is_some(),
            strings.get(Key::Sending),
            strings.get(Key::NotDelivered),
            strings.get(Key::Retry),
            Clock::new(&options.locale),
        )?;
        for (selector, attr, key) in LABELS {
            view.label(selector, attr, strings.get(*key));
        }
        if let Some(text) = &options.greeting {
            fill_text(&view, text);
        }
        // The panel speaks its texts' language and, for Arabic or Hebrew, is mirrored; the
        // messages inside follow their own text's direction (`dir="auto"`).
        view.attach(&options.lang, if is_rtl(&options.lang) { "rtl" } else { "ltr" });
        Ok(Dom { view, strings: strings.clone() })
    }

    /// The chat box's text, if it holds something to send; empties it then.
    pub(crate) fn take_input(&self) -> Option<String> {
        let text = self.view.value();
        if text.trim().is_empty() {
            return None;
        }
        self.view.clear();
        Some(text)
    }

    /// Enables the send button when there is something to send; returns whether there is.
    pub(crate) fn sync_send_button(&self) -> bool {
        let typed = !self.view.value().trim().is_empty();
        self.view.sendable(typed);
        typed
    }

    /// Brings every element in line with `model`.
    pub(crate) fn render(&self, model: &Model) {
        let open = model.open;
        let s = &self.strings;
        // The launcher says what a press does now: close, or open (and how much is unread).
        let label = if open { s.get(Key::CloseChat).to_string() } else { s.open_label(model.log.unread) };
        let status = model.link.status();
        // Whether a person is online (hubs without an operator inbox, or without operators, say
        // nothing: no line).
        let available = match model.log.available {
            Some(true) => s.get(Key::AvailableOnline),
            Some(false) => s.get(Key::AvailableAway),
            None => "",
        };
        self.view.render(
            open,
            &label,
            model.log.unread,
            status.key(),
            status_text(s, status),
            model.muted,
            s.get(if model.muted { Key::Unmute } else { Key::Mute }),
            available,
            model.log.available == Some(true),
            model.log.closed.is_some(),
        );
        let messages = &model.log.messages;
        for m in messages {
            let author = m.author.as_deref();
            if self.view.row(&m.id, m.role.as_str(), m.delivery.as_str(), &m.time, author) {
                fill_text(&self.view, &m.text);
            }
        }
        let own_last = messages.last().is_some_and(|m| m.role == natter_protocol::Role::User);
        self.view.end(model.log.typing, own_last);
    }
}
