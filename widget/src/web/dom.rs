//! The widget's DOM: built once into an open shadow root, then kept in step with the model.
//!
//! The shadow root isolates the widget from the page's CSS (and the page from ours); styles are
//! adopted constructable stylesheets, so no `<style>` or `style=""` is ever created. Message
//! text only ever reaches the DOM through text nodes and `textContent`; links are `<a>`
//! elements made with `createElement`. The stable hooks (the `part` attributes, roles and
//! `data-*` attributes) are listed in `npm/README.md` and used by the end-to-end tests.

use super::clock::Clock;
use crate::i18n::{is_rtl, Key, Strings};
use crate::markup::{LABELS, PICKED, ROW, WIDGET};
use crate::options::{Options, Position};
use crate::state::link::Status;
use crate::state::log::{Delivery, Message};
use crate::state::Model;
use crate::text::{segments, Segment};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    CssStyleSheet, Document, Element, HtmlButtonElement, HtmlElement, HtmlTextAreaElement, ShadowRoot,
    ShadowRootInit, ShadowRootMode,
};

/// Sets `e`'s `attr` to `text`, or its text when `attr` is empty.
fn label(e: &Element, attr: &str, text: &str) -> Result<(), JsValue> {
    if attr.is_empty() {
        e.set_text_content(Some(text));
        Ok(())
    } else {
        e.set_attribute(attr, text)
    }
}

/// One rendered message row and what it currently shows.
struct Row {
    id: String,
    el: Element,
    delivery: Delivery,
    time: String,
    retry: Option<Element>,
}

/// Handles to the widget's elements.
pub(crate) struct Dom {
    doc: Document,
    /// The `<div data-natter>` appended to `<body>`.
    pub host: HtmlElement,
    /// Its open shadow root.
    pub root: ShadowRoot,
    /// `button[part=launcher]`.
    pub launcher: HtmlButtonElement,
    badge: HtmlElement,
    /// `[part=panel]`.
    pub panel: HtmlElement,
    status: Element,
    status_label: Element,
    /// `[part=availability]`: whether a person is online, under the status.
    availability: HtmlElement,
    /// `[part=closed]`: shown after the log while an operator has closed the conversation.
    closed: HtmlElement,
    /// `button[part=mute]`.
    pub mute: HtmlButtonElement,
    /// `button[part=close]`.
    pub close: HtmlButtonElement,
    body: Element,
    /// `[part=log]`.
    pub log: Element,
    typing: HtmlElement,
    /// `textarea[part=input]`.
    pub input: HtmlTextAreaElement,
    /// `button[part=send]`.
    pub send: HtmlButtonElement,
    rows: Vec<Row>,
    /// The message row every new row is cloned from ([`ROW`], labelled).
    row_template: Element,
    was_open: bool,
    /// The page's language.
    strings: Strings,
    /// Times in that language.
    clock: Clock,
    /// What the launcher's label says now (it follows the panel and the unread count).
    launcher_label: String,
}

fn el(doc: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let e = doc.create_element(tag)?;
    if !class.is_empty() {
        e.set_attribute("class", class)?;
    }
    Ok(e)
}

fn attrs(e: &Element, list: &[(&str, &str)]) -> Result<(), JsValue> {
    for (k, v) in list {
        e.set_attribute(k, v)?;
    }
    Ok(())
}

fn sheet(css: &str) -> Result<CssStyleSheet, JsValue> {
    let s = CssStyleSheet::new()?;
    s.replace_sync(css)?;
    Ok(s)
}

/// Appends `text` to `parent` as text nodes and safe anchors. An anchor shows exactly its
/// `href` (see `text.rs`: the real host, no userinfo, no bidi controls), with a host that
/// needs it in the browser's own punycode, and `dir="ltr"` isolates it, so a right-to-left
/// override in the text around it cannot reorder it.
fn fill_text(doc: &Document, parent: &Element, text: &str) -> Result<(), JsValue> {
    for seg in segments(text) {
        let link = match seg {
            Segment::Text(t) => {
                parent.append_child(&doc.create_text_node(t))?;
                continue;
            }
            Segment::Link(link) => link,
        };
        let mut url = String::from(link.scheme);
        url.push_str(&link.host);
        // The browser's IDNA (UTS-46) ToASCII: the host it will really connect to. A host it
        // refuses makes no link.
        let anchor = !link.ascii_host
            || match web_sys::Url::new(&url) {
                Ok(parsed) => {
                    url.truncate(link.scheme.len());
                    url.push_str(&parsed.hostname());
                    true
                }
                Err(_) => false,
            };
        url.push_str(&link.rest);
        if !anchor {
            parent.append_child(&doc.create_text_node(&url))?;
            continue;
        }
        let a = el(doc, "a", "")?;
        attrs(&a, &[("href", &url), ("dir", "ltr"), ("rel", "noopener noreferrer"), ("target", "_blank")])?;
        a.set_text_content(Some(&url));
        parent.append_child(&a)?;
    }
    Ok(())
}

/// Fills a message's `<time>`: the time in the visitor's language, the full date as tooltip.
fn set_time(t: &Element, clock: &Clock, iso: &str) -> Result<(), JsValue> {
    let (shown, full) = (clock.label(iso), clock.full(iso));
    t.set_attribute("datetime", iso)?;
    t.set_attribute("title", &full)?;
    t.set_text_content(Some(&shown));
    Ok(())
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

/// Sets `target.innerHTML` to `html`, one of the widget's constant templates (`markup`), through
/// `trusted_html` when there is one: a page that enforces Trusted Types accepts only
/// `TrustedHTML` there.
fn set_markup(
    target: &JsValue,
    html: &'static str,
    trusted_html: Option<&js_sys::Function>,
) -> Result<(), JsValue> {
    let value = match trusted_html {
        Some(policy) => policy.call1(&JsValue::UNDEFINED, &JsValue::from_str(html))?,
        None => JsValue::from_str(html),
    };
    js_sys::Reflect::set(target, &"innerHTML".into(), &value).map(drop)
}

/// The host's attributes, the shadow root's stylesheets and markup with its labels, and the
/// message row template (`row`, an empty `<div>`) with its notes.
fn fill_widget(
    host: &Element,
    root: &ShadowRoot,
    row: &Element,
    options: &Options,
    trusted_html: Option<&js_sys::Function>,
) -> Result<(), JsValue> {
    let position = match options.position {
        Position::BottomRight => "bottom-right",
        Position::BottomLeft => "bottom-left",
    };
    attrs(host, &[("data-natter", ""), ("data-theme", options.theme.as_str()), ("data-position", position)])?;
    let base = sheet(&crate::style::base_css())?;
    let custom = sheet(&crate::style::options_css(options))?;
    js_sys::Reflect::set(root, &"adoptedStyleSheets".into(), &js_sys::Array::of2(&base, &custom))?;
    set_markup(root, WIDGET, trusted_html)?;
    let strings = &options.strings;
    for (selector, attr, key) in LABELS {
        if let Some(e) = root.query_selector(selector)? {
            label(&e, attr, strings.get(*key))?;
        }
    }
    row.set_attribute("class", "row")?;
    set_markup(row, ROW, trusted_html)?;
    for (selector, key) in [(".pending", Key::Sending), (".failed", Key::NotDelivered)] {
        if let Some(note) = row.query_selector(selector)? {
            note.set_text_content(Some(strings.get(key)));
        }
    }
    Ok(())
}

/// What the options put into the widget: the title, the greeting (or none), the language.
fn fill_parts(
    doc: &Document,
    panel: &Element,
    launcher: &Element,
    title: &Element,
    greeting: &Element,
    options: &Options,
) -> Result<(), JsValue> {
    title.set_text_content(Some(&options.title));
    match (&options.greeting, greeting.first_element_child()) {
        (Some(text), Some(bubble)) => fill_text(doc, &bubble, text)?,
        (Some(_), None) => {}
        (None, _) => greeting.remove(),
    }
    // The panel speaks its texts' language and, for Arabic or Hebrew, is mirrored; the
    // messages inside follow their own text's direction (`dir="auto"`).
    let dir = if is_rtl(&options.lang) { "rtl" } else { "ltr" };
    attrs(panel, &[("lang", &options.lang), ("dir", dir)])?;
    launcher.set_attribute("lang", &options.lang)
}

impl Dom {
    /// Builds the widget and appends its host to `<body>`. `trusted_html` (the npm facade's, on a
    /// page with Trusted Types) turns the widget's constant markup into `TrustedHTML`.
    pub(crate) fn build(options: &Options, trusted_html: Option<&js_sys::Function>) -> Result<Dom, JsValue> {
        let doc = web_sys::window().and_then(|w| w.document()).ok_or("natter: no document")?;
        let page_body = doc.body().ok_or("natter: the page has no <body> yet")?;
        let host: HtmlElement = doc.create_element("div")?.unchecked_into();
        let root = host.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?;
        let row_template = doc.create_element("div")?;
        // (The fallible steps take references only: each `?` then has nothing to release, where
        // one per element built was a copy of the release code in the wasm.)
        fill_widget(&host, &root, &row_template, options, trusted_html)?;
        let nodes = root.query_selector_all(PICKED)?;
        let picked: Vec<Element> =
            (0..nodes.length()).filter_map(|i| nodes.item(i)).map(JsCast::unchecked_into).collect();
        // In `markup::PICKED` order.
        let [panel, title, status, status_label, availability, mute, close, body, greeting, log, typing, closed, input, send, launcher, badge] =
            <[Element; 16]>::try_from(picked).map_err(|_| "natter: the widget template lost an element")?;
        let strings = &options.strings;
        fill_parts(&doc, &panel, &launcher, &title, &greeting, options)?;
        page_body.append_child(&host)?;

        Ok(Dom {
            doc,
            host,
            root,
            launcher: launcher.unchecked_into(),
            badge: badge.unchecked_into(),
            panel: panel.unchecked_into(),
            status,
            status_label,
            availability: availability.unchecked_into(),
            closed: closed.unchecked_into(),
            mute: mute.unchecked_into(),
            close: close.unchecked_into(),
            body,
            log,
            typing: typing.unchecked_into(),
            input: input.unchecked_into(),
            send: send.unchecked_into(),
            rows: Vec::new(),
            row_template,
            was_open: false,
            strings: strings.clone(),
            clock: Clock::new(&options.locale),
            launcher_label: strings.get(Key::OpenChat).to_string(),
        })
    }

    /// Removes the widget from the page.
    pub(crate) fn remove(&self) {
        self.host.remove();
    }

    /// Whether focus is inside the widget.
    pub(crate) fn has_focus(&self) -> bool {
        self.doc.active_element().is_some_and(|a| &a == self.host.as_ref() as &Element)
    }

    /// The element focused on the page, unless it is the widget itself.
    pub(crate) fn page_focus(&self) -> Option<HtmlElement> {
        let active = self.doc.active_element()?;
        let body: Option<Element> = self.doc.body().map(Into::into);
        if &active == self.host.as_ref() as &Element || Some(&active) == body.as_ref() {
            return None;
        }
        active.dyn_into().ok()
    }

    /// Enables the send button when there is something to send.
    pub(crate) fn sync_send_button(&self) {
        self.send.set_disabled(self.input.value().trim().is_empty());
    }

    /// Brings every element in line with `model`.
    pub(crate) fn render(&mut self, model: &Model) -> Result<(), JsValue> {
        let open = model.open;
        set_bool_attr(&self.launcher, "aria-expanded", open)?;
        // The launcher says what a press does now: close, or open (and how much is unread).
        let label = if open {
            self.strings.get(Key::CloseChat).to_string()
        } else {
            self.strings.open_label(model.log.unread)
        };
        if label != self.launcher_label {
            self.launcher.set_attribute("aria-label", &label)?;
            self.launcher_label = label;
        }
        if open {
            self.host.set_attribute("data-open", "")?;
        } else {
            self.host.remove_attribute("data-open")?;
        }
        self.panel.set_hidden(!open);
        let unread = match model.log.unread {
            0 => String::new(),
            n if n > 99 => "99+".to_string(),
            n => crate::compose::decimal(u64::from(n)),
        };
        if self.badge.text_content().unwrap_or_default() != unread {
            self.badge.set_text_content(Some(&unread));
        }
        self.badge.set_hidden(model.log.unread == 0);

        let status = model.link.status();
        self.status.set_attribute("data-status", status.key())?;
        let text = status_text(&self.strings, status);
        if self.status_label.text_content().as_deref() != Some(text) {
            self.status_label.set_text_content(Some(text));
        }
        set_bool_attr(&self.mute, "aria-pressed", model.muted)?;
        // The name stays "Mute …" (a toggle button's state is `aria-pressed`); the tooltip says
        // what a click does now.
        self.mute
            .set_attribute("title", self.strings.get(if model.muted { Key::Unmute } else { Key::Mute }))?;

        // Whether a person is online (hubs without an operator inbox, or without operators, say
        // nothing: no line).
        let available = match model.log.available {
            Some(true) => self.strings.get(Key::AvailableOnline),
            Some(false) => self.strings.get(Key::AvailableAway),
            None => "",
        };
        if self.availability.text_content().as_deref() != Some(available) {
            self.availability.set_text_content(Some(available));
            self.availability.set_attribute(
                "data-online",
                if model.log.available == Some(true) { "true" } else { "false" },
            )?;
        }
        self.availability.set_hidden(available.is_empty());
        let closed_changed = self.closed.hidden() == model.log.closed.is_some();
        self.closed.set_hidden(model.log.closed.is_none());

        let near_bottom = self.body.scroll_height() - self.body.scroll_top() - self.body.client_height() < 80
            || !self.was_open;
        let added = self.render_log(&model.log.messages)?;
        let typing_changed = self.typing.hidden() == model.log.typing;
        self.typing.set_hidden(!model.log.typing);
        let own_message =
            added && model.log.messages.last().is_some_and(|m| m.role == natter_protocol::Role::User);
        if open
            && ((added || typing_changed || closed_changed) && near_bottom || own_message || !self.was_open)
        {
            self.body.set_scroll_top(self.body.scroll_height());
        }
        self.was_open = open;
        Ok(())
    }

    /// Syncs the rows with the model's messages; returns whether a row was added.
    fn render_log(&mut self, messages: &[Message]) -> Result<bool, JsValue> {
        let mut added = false;
        let mut prev: Option<web_sys::Node> = None;
        for (i, m) in messages.iter().enumerate() {
            // Rows are almost always in model order: look where the last one was first.
            let guess = self.rows.len().min(i);
            let at = match self.rows.get(guess).filter(|r| r.id == m.id) {
                Some(_) => guess,
                None => match self.rows.iter().position(|r| r.id == m.id) {
                    Some(at) => at,
                    None => {
                        let row = self.row(m)?;
                        self.rows.push(row);
                        added = true;
                        self.rows.len() - 1
                    }
                },
            };
            let row = &mut self.rows[at];
            if row.delivery != m.delivery {
                row.el.set_attribute("data-state", m.delivery.as_str())?;
                row.delivery = m.delivery;
                update_retry(&self.doc, row, &self.strings)?;
            }
            if row.time != m.time {
                if let Some(t) = row.el.query_selector("time")? {
                    set_time(&t, &self.clock, &m.time)?;
                }
                row.time = m.time.clone();
            }
            let expected = match &prev {
                Some(p) => p.next_sibling(),
                None => self.log.first_child(),
            };
            let node: &web_sys::Node = row.el.as_ref();
            if expected.as_ref() != Some(node) {
                self.log.insert_before(node, expected.as_ref())?;
            }
            prev = Some(node.clone());
        }
        // Rows of messages the log no longer has: the conversation was replaced (a login, a
        // logout). Only then can there be more rows than messages.
        if self.rows.len() > messages.len() {
            self.rows.retain(|r| {
                let keep = messages.iter().any(|m| m.id == r.id);
                if !keep {
                    r.el.remove();
                }
                keep
            });
        }
        Ok(added)
    }

    fn row(&self, m: &Message) -> Result<Row, JsValue> {
        let el: Element = self.row_template.clone_node_with_deep(true)?.unchecked_into();
        let found = el.query_selector_all("[part=text],time,.author")?;
        let found: Vec<Element> =
            (0..found.length()).filter_map(|i| found.item(i)).map(JsCast::unchecked_into).collect();
        let [text, time, author] =
            <[Element; 3]>::try_from(found).map_err(|_| "natter: the row template lost an element")?;
        match &m.author {
            Some(name) => author.set_text_content(Some(name)),
            None => author.remove(),
        }
        let role = m.role.as_str();
        el.set_attribute("part", &crate::compose::join(&["message ", role]))?;
        el.set_attribute("data-role", role)?;
        el.set_attribute("data-id", &m.id)?;
        el.set_attribute("data-state", m.delivery.as_str())?;
        fill_text(&self.doc, &text, &m.text)?;
        set_time(&time, &self.clock, &m.time)?;
        let mut r = Row { id: m.id.clone(), el, delivery: m.delivery, time: m.time.clone(), retry: None };
        update_retry(&self.doc, &mut r, &self.strings)?;
        Ok(r)
    }
}

fn update_retry(doc: &Document, row: &mut Row, strings: &Strings) -> Result<(), JsValue> {
    match (row.delivery == Delivery::Failed, &row.retry) {
        (true, None) => {
            let b = el(doc, "button", "retry")?;
            attrs(&b, &[("type", "button"), ("part", "retry")])?;
            b.set_text_content(Some(strings.get(Key::Retry)));
            if let Some(meta) = row.el.query_selector(".meta")? {
                meta.append_child(&b)?;
            }
            row.retry = Some(b);
        }
        (false, Some(b)) => {
            b.remove();
            row.retry = None;
        }
        _ => {}
    }
    Ok(())
}

fn set_bool_attr(e: &Element, name: &str, value: bool) -> Result<(), JsValue> {
    e.set_attribute(name, if value { "true" } else { "false" })
}
