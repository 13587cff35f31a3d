//! The widget's DOM: built once into an open shadow root, then kept in step with the model.
//!
//! The shadow root isolates the widget from the page's CSS (and the page from ours); styles are
//! adopted constructable stylesheets, so no `<style>` or `style=""` is ever created. Message
//! text only ever reaches the DOM through text nodes and `textContent`; links are `<a>`
//! elements made with `createElement`. The stable hooks (the `part` attributes, roles and
//! `data-*` attributes) are listed in `npm/README.md` and used by the end-to-end tests.

use super::clock::Clock;
use crate::i18n::{is_rtl, Key, Strings};
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

const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// One node of a static DOM template: depth (0 = top level), tag (`svg` and `path` are made
/// in the SVG namespace), attributes, text. An attribute value or text `$name` is the text of
/// that key in the page's language (`crate::i18n`).
type TNode = (u8, &'static str, &'static [(&'static str, &'static str)], &'static str);

const SVG: &[(&str, &str)] = &[("viewBox", "0 0 24 24"), ("aria-hidden", "true"), ("focusable", "false")];

// The widget, built by one loop from this table rather than by a hundred hand-written
// createElement / setAttribute calls: the table is data, the calls were ~10 KiB of wasm code.
// Icons are outlines in the style of Feather / Lucide.
#[rustfmt::skip]
const WIDGET: &[TNode] = &[
    (0, "div", &[("class", "panel"), ("part", "panel"), ("role", "dialog"), ("aria-labelledby", "natter-title"), ("tabindex", "-1"), ("hidden", "")], ""),
    (1, "div", &[("class", "header")], ""),
    (2, "div", &[("class", "avatar")], ""),
    (3, "svg", SVG, ""),
    (4, "path", &[("d", "M12 2a10 10 0 1 0 0 20 10 10 0 1 0 0-20z")], ""),
    (4, "path", &[("d", "M8 14s1.5 2 4 2 4-2 4-2")], ""),
    (4, "path", &[("d", "M9 9h.01")], ""),
    (4, "path", &[("d", "M15 9h.01")], ""),
    (2, "div", &[("class", "heading")], ""),
    (3, "h2", &[("class", "title"), ("part", "title"), ("id", "natter-title")], ""),
    (3, "div", &[("class", "status"), ("part", "status"), ("role", "status"), ("data-status", "connecting")], ""),
    (4, "span", &[("class", "dot"), ("aria-hidden", "true")], ""),
    (4, "span", &[("class", "label")], "$statusConnecting"),
    (3, "div", &[("class", "availability"), ("part", "availability"), ("hidden", "")], ""),
    (2, "button", &[("type", "button"), ("class", "icon-button mute"), ("part", "mute"), ("aria-pressed", "false"),
        ("aria-label", "$mute"), ("title", "$mute")], ""),
    (3, "svg", &[("class", "icon-on"), ("viewBox", "0 0 24 24"), ("aria-hidden", "true")], ""),
    (4, "path", &[("d", "M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9")], ""),
    (4, "path", &[("d", "M13.73 21a2 2 0 0 1-3.46 0")], ""),
    (3, "svg", &[("class", "icon-off"), ("viewBox", "0 0 24 24"), ("aria-hidden", "true")], ""),
    (4, "path", &[("d", "M13.73 21a2 2 0 0 1-3.46 0M18.63 13A17.9 17.9 0 0 1 18 8M6.26 6.26A5.9 5.9 0 0 0 6 8c0 7-3 9-3 9h14M18 8a6 6 0 0 0-9.33-5M2 2l20 20")], ""),
    (2, "button", &[("type", "button"), ("class", "icon-button close"), ("part", "close"), ("aria-label", "$closeChat"), ("title", "$closeChat")], ""),
    (3, "svg", SVG, ""),
    (4, "path", &[("d", "M18 6 6 18M6 6l12 12")], ""),
    (1, "div", &[("class", "body"), ("part", "body")], ""),
    (2, "div", &[("class", "greeting"), ("part", "greeting")], ""),
    (3, "div", &[("class", "bubble"), ("dir", "auto")], ""),
    (2, "div", &[("class", "log"), ("part", "log"), ("role", "log"), ("aria-live", "polite"), ("aria-label", "$conversation")], ""),
    (2, "div", &[("class", "typing"), ("part", "typing"), ("role", "img"), ("aria-label", "$typing"), ("hidden", "")], ""),
    (2, "div", &[("class", "closed"), ("part", "closed"), ("role", "status"), ("hidden", "")], "$conversationClosed"),
    (3, "span", &[], ""),
    (3, "span", &[], ""),
    (3, "span", &[], ""),
    (1, "div", &[("class", "composer")], ""),
    (2, "textarea", &[("class", "input"), ("part", "input"), ("aria-label", "$message"), ("rows", "1"), ("dir", "auto"),
        ("placeholder", "$placeholder"), ("enterkeyhint", "send"), ("maxlength", "4000")], ""),
    (2, "button", &[("type", "button"), ("class", "send"), ("part", "send"), ("aria-label", "$send"), ("title", "$send"), ("disabled", "")], ""),
    (3, "svg", SVG, ""),
    (4, "path", &[("d", "M22 2 11 13M22 2 15 22l-4-9-9-4z")], ""),
    (1, "div", &[("class", "footer")], "$poweredBy"),
    (0, "button", &[("type", "button"), ("class", "launcher"), ("part", "launcher"), ("aria-label", "$openChat"),
        ("aria-expanded", "false"), ("aria-haspopup", "dialog")], ""),
    (1, "svg", &[("class", "icon-chat"), ("viewBox", "0 0 24 24"), ("aria-hidden", "true")], ""),
    (2, "path", &[("d", "M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z")], ""),
    (1, "svg", &[("class", "icon-close"), ("viewBox", "0 0 24 24"), ("aria-hidden", "true")], ""),
    (2, "path", &[("d", "M18 6 6 18M6 6l12 12")], ""),
    (1, "span", &[("class", "badge"), ("part", "badge"), ("hidden", "")], ""),
];

/// A message row; the web layer fills in its attributes, text and time.
#[rustfmt::skip]
const ROW: &[TNode] = &[
    (0, "div", &[("class", "row")], ""),
    (1, "div", &[("class", "bubble"), ("part", "text"), ("dir", "auto")], ""),
    (1, "div", &[("class", "meta")], ""),
    (2, "time", &[], ""),
    (2, "span", &[("class", "note pending")], "$sending"),
    (2, "span", &[("class", "note failed")], "$notDelivered"),
    (2, "span", &[("class", "author")], ""),
];

/// Builds `tree` under `parent`, with `$name` texts from `strings`; returns every element
/// made, in table order.
fn build(
    doc: &Document,
    parent: &web_sys::Node,
    tree: &[TNode],
    strings: &Strings,
) -> Result<Vec<Element>, JsValue> {
    let text_of = |v: &'static str| match v.strip_prefix('$') {
        Some(name) => strings.by_name(name).unwrap_or(v),
        None => v,
    };
    let mut made: Vec<Element> = Vec::with_capacity(tree.len());
    let mut stack: Vec<web_sys::Node> = vec![parent.clone()];
    for (depth, tag, attrs, text) in tree {
        let e = if matches!(*tag, "svg" | "path") {
            doc.create_element_ns(Some(SVG_NS), tag)?
        } else {
            doc.create_element(tag)?
        };
        for (k, v) in *attrs {
            e.set_attribute(k, text_of(v))?;
        }
        if !text.is_empty() {
            e.set_text_content(Some(text_of(text)));
        }
        let depth = usize::from(*depth);
        stack.truncate(depth + 1);
        if let Some(p) = stack.last() {
            p.append_child(&e)?;
        }
        stack.push(e.clone().into());
        made.push(e);
    }
    Ok(made)
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
    let (shown, full) = clock.label(iso);
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

impl Dom {
    /// Builds the widget and appends its host to `<body>`.
    pub(crate) fn build(options: &Options) -> Result<Dom, JsValue> {
        let doc = web_sys::window().and_then(|w| w.document()).ok_or("natter: no document")?;
        let page_body = doc.body().ok_or("natter: the page has no <body> yet")?;
        let host: HtmlElement = el(&doc, "div", "")?.dyn_into()?;
        let position = match options.position {
            Position::BottomRight => "bottom-right",
            Position::BottomLeft => "bottom-left",
        };
        attrs(
            &host,
            &[("data-natter", ""), ("data-theme", options.theme.as_str()), ("data-position", position)],
        )?;
        let root = host.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?;
        let base = sheet(&crate::style::base_css())?;
        let custom = sheet(&crate::style::options_css(options))?;
        let sheets = js_sys::Array::of2(&base, &custom);
        js_sys::Reflect::set(&root, &"adoptedStyleSheets".into(), &sheets)?;

        let strings = &options.strings;
        build(&doc, &root, WIDGET, strings)?;
        let find = |part: &str| -> Result<Element, JsValue> {
            root.query_selector(&format!("[part={part}]"))?.ok_or_else(|| JsValue::from_str(part))
        };
        let title = find("title")?;
        title.set_text_content(Some(&options.title));
        let greeting = find("greeting")?;
        match &options.greeting {
            Some(text) => {
                if let Some(bubble) = greeting.first_element_child() {
                    fill_text(&doc, &bubble, text)?;
                }
            }
            None => greeting.remove(),
        }
        let status = find("status")?;
        let status_label = status.last_element_child().ok_or("status")?;
        let availability = find("availability")?.dyn_into()?;
        let closed = find("closed")?.dyn_into()?;
        let panel: HtmlElement = find("panel")?.dyn_into()?;
        // The panel speaks its texts' language and, for Arabic or Hebrew, is mirrored; the
        // messages inside follow their own text's direction (`dir="auto"`).
        let dir = if is_rtl(&options.lang) { "rtl" } else { "ltr" };
        attrs(&panel, &[("lang", &options.lang), ("dir", dir)])?;
        let launcher: HtmlButtonElement = find("launcher")?.dyn_into()?;
        launcher.set_attribute("lang", &options.lang)?;
        let badge = find("badge")?.dyn_into()?;
        let mute = find("mute")?.dyn_into()?;
        let close = find("close")?.dyn_into()?;
        let body = find("body")?;
        let log = find("log")?;
        let typing = find("typing")?.dyn_into()?;
        let input = find("input")?.dyn_into()?;
        let send = find("send")?.dyn_into()?;
        page_body.append_child(&host)?;

        Ok(Dom {
            doc,
            host,
            root,
            launcher,
            badge,
            panel,
            status,
            status_label,
            availability,
            closed,
            mute,
            close,
            body,
            log,
            typing,
            input,
            send,
            rows: Vec::new(),
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
            n => n.to_string(),
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
        let doc = &self.doc;
        let frag: web_sys::Node = doc.create_document_fragment().into();
        let made = build(doc, &frag, ROW, &self.strings)?;
        let [row, text, _, time, _, _, author] = made.as_slice() else { return Err("row template".into()) };
        match &m.author {
            Some(name) => author.set_text_content(Some(name)),
            None => author.remove(),
        }
        let role = m.role.as_str();
        row.set_attribute("part", &format!("message {role}"))?;
        row.set_attribute("data-role", role)?;
        row.set_attribute("data-id", &m.id)?;
        row.set_attribute("data-state", m.delivery.as_str())?;
        fill_text(doc, text, &m.text)?;
        set_time(time, &self.clock, &m.time)?;
        let mut r = Row {
            id: m.id.clone(),
            el: row.clone(),
            delivery: m.delivery,
            time: m.time.clone(),
            retry: None,
        };
        update_retry(doc, &mut r, &self.strings)?;
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
