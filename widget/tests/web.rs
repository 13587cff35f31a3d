//! The widget in real headless Chromium (wasm-bindgen-test): mounting into a shadow root, the
//! shortcut, Escape, focus, text-not-HTML, safe links that show the host they go to, unread and
//! mute, failed messages and retry, and `destroy()` leaving nothing behind.
//!
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=60
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
//! cargo test -p natter-widget --target wasm32-unknown-unknown` (`cargo xtask test widget-browser`).
//!
//! There is no hub here (the end-to-end tests have one): the widget points at a closed port,
//! and hub frames are fed in with the handle's test-only `inject_frame`.
#![cfg(target_arch = "wasm32")]

use natter_widget::{mount, Natter};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use web_sys::{Document, Element, HtmlElement, KeyboardEvent, KeyboardEventInit, ShadowRoot};

wasm_bindgen_test_configure!(run_in_browser);

fn document() -> Document {
    web_sys::window().and_then(|w| w.document()).expect("a document")
}

fn options(extra: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    // A closed port: the link fails and retries; nothing here needs a hub.
    js_sys::Reflect::set(&o, &"server".into(), &"http://127.0.0.1:9".into()).expect("set");
    for (k, v) in extra {
        js_sys::Reflect::set(&o, &(*k).into(), v).expect("set");
    }
    o.into()
}

/// A mounted widget that is destroyed when the test ends.
struct Mounted {
    handle: Natter,
}

impl Mounted {
    fn new(extra: &[(&str, JsValue)]) -> Mounted {
        let handle = mount(options(extra)).expect("mounts");
        Mounted { handle }
    }

    fn host(&self) -> Element {
        let all = document().query_selector_all("[data-natter]").expect("query");
        assert_eq!(all.length(), 1, "exactly one widget on the page");
        all.get(0).expect("host").dyn_into().expect("element")
    }

    fn root(&self) -> ShadowRoot {
        self.host().shadow_root().expect("an open shadow root")
    }

    fn part(&self, selector: &str) -> HtmlElement {
        self.root()
            .query_selector(selector)
            .expect("query")
            .unwrap_or_else(|| panic!("{selector} in the shadow root"))
            .dyn_into()
            .expect("html element")
    }

    fn panel_open(&self) -> bool {
        !self.part("[part=panel]").hidden()
    }

    fn inject(&self, frame: &str) {
        self.handle.inject_frame(frame).expect("a valid frame");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.handle.destroy();
    }
}

fn key(target: &web_sys::EventTarget, key: &str, code: &str, ctrl: bool, shift: bool) {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_code(code);
    init.set_ctrl_key(ctrl);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    init.set_composed(true);
    let e = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).expect("event");
    target.dispatch_event(&e).expect("dispatch");
}

fn shortcut() {
    key(&document().body().expect("body"), "C", "KeyC", true, true);
}

fn bot(id: &str, seq: u64, text: &str) -> String {
    let text = js_sys::JSON::stringify(&text.into()).expect("json").as_string().expect("string");
    format!(
        r#"{{"type":"bot","id":"{id}","seq":{seq},"message":{text},"timestamp":"2026-01-01T12:34:00Z","sessionId":"s"}}"#
    )
}

/// Counts calls of a JS event listener.
struct Counter {
    count: Rc<Cell<u32>>,
    closure: Closure<dyn FnMut(JsValue)>,
}

impl Counter {
    fn new() -> Counter {
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |_| c.set(c.get() + 1));
        Counter { count, closure }
    }

    fn function(&self) -> js_sys::Function {
        self.closure.as_ref().unchecked_ref::<js_sys::Function>().clone()
    }
}

#[wasm_bindgen_test]
fn mounts_into_an_open_shadow_root_with_the_dom_contract() {
    let w = Mounted::new(&[("title", "Support".into())]);
    let host = w.host();
    assert_eq!(host.parent_element().map(|p| p.tag_name()), Some("BODY".into()));
    let launcher = w.part("button[part=launcher]");
    assert_eq!(launcher.get_attribute("aria-label").as_deref(), Some("Open chat"));
    assert_eq!(launcher.get_attribute("aria-expanded").as_deref(), Some("false"));
    assert!(w.part("[part=badge]").hidden(), "no unread badge at 0");
    let panel = w.part("[part=panel]");
    assert!(panel.hidden());
    assert_eq!(panel.get_attribute("role").as_deref(), Some("dialog"));
    let title = w.part("[part=title]");
    assert_eq!(title.text_content().as_deref(), Some("Support"));
    assert_eq!(panel.get_attribute("aria-labelledby"), title.get_attribute("id"));
    let status = w.part("[part=status]");
    assert_eq!(status.get_attribute("role").as_deref(), Some("status"));
    let label = status.text_content().unwrap_or_default();
    assert!(["Connecting…", "Reconnecting…", "Offline"].contains(&label.as_str()), "{label}");
    let log = w.part("[part=log]");
    assert_eq!(log.get_attribute("role").as_deref(), Some("log"));
    assert_eq!(log.get_attribute("aria-live").as_deref(), Some("polite"));
    assert_eq!(w.part("textarea[part=input]").get_attribute("aria-label").as_deref(), Some("Message"));
    w.part("button[part=send]");
    w.part("button[part=mute]");
    w.part("button[part=close]");
    assert!(w.part("[part=typing]").hidden());
    // Styles come only from adopted stylesheets: no <style>, no style attribute anywhere.
    let adopted = js_sys::Reflect::get(&w.root(), &"adoptedStyleSheets".into()).expect("adopted");
    assert_eq!(js_sys::Array::from(&adopted).length(), 2);
    assert!(w.root().query_selector("style, [style]").expect("query").is_none());
    assert!(document().query_selector("style, [data-natter][style]").expect("query").is_none());
    // Mounting does not take focus.
    assert_eq!(document().active_element(), document().body().map(Into::into));
}

#[wasm_bindgen_test]
fn the_shortcut_toggles_from_anywhere_on_the_page() {
    let w = Mounted::new(&[]);
    shortcut();
    assert!(w.panel_open());
    assert_eq!(w.part("[part=launcher]").get_attribute("aria-expanded").as_deref(), Some("true"));
    assert_eq!(
        js_sys::Reflect::get(&w.handle.state(), &"open".into()).ok().and_then(|v| v.as_bool()),
        Some(true)
    );
    shortcut();
    assert!(!w.panel_open());
    // Without Shift it is not the shortcut.
    key(&document().body().expect("body"), "c", "KeyC", true, false);
    assert!(!w.panel_open());
}

#[wasm_bindgen_test]
fn the_shortcut_is_configurable() {
    let w = Mounted::new(&[("shortcut", "Alt+K".into())]);
    shortcut();
    assert!(!w.panel_open(), "the default no longer toggles");
    let init = KeyboardEventInit::new();
    init.set_key("k");
    init.set_code("KeyK");
    init.set_alt_key(true);
    init.set_bubbles(true);
    let e = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).expect("event");
    document().dispatch_event(&e).expect("dispatch");
    assert!(w.panel_open());
}

#[wasm_bindgen_test]
fn escape_closes_and_focus_goes_back_where_it_was() {
    let doc = document();
    let button: HtmlElement = doc.create_element("button").expect("button").dyn_into().expect("html");
    button.set_text_content(Some("page button"));
    doc.body().expect("body").append_child(&button).expect("append");
    button.focus().expect("focus");
    let w = Mounted::new(&[]);
    shortcut();
    assert!(w.panel_open());
    let active = w.root().active_element().expect("focus inside the widget");
    assert_eq!(active.get_attribute("part").as_deref(), Some("input"));
    key(&active, "Escape", "Escape", false, false);
    assert!(!w.panel_open());
    assert_eq!(doc.active_element(), Some(button.clone().into()), "focus is back on the page button");
    // The close button does the same.
    shortcut();
    w.part("[part=close]").click();
    assert!(!w.panel_open());
    assert_eq!(doc.active_element(), Some(button.clone().into()));
    drop(w);
    button.remove();
}

#[wasm_bindgen_test]
fn opening_at_mount_does_not_steal_focus() {
    let w = Mounted::new(&[("open", true.into())]);
    assert!(w.panel_open());
    assert_eq!(document().active_element(), document().body().map(Into::into));
}

#[wasm_bindgen_test]
fn message_text_is_text_never_html() {
    let w = Mounted::new(&[]);
    let evil = r#"<img src=x onerror="window.__natterPwned=1"><b>bold</b>"#;
    w.inject(&bot("b1", 1, evil));
    let text = w.part("[part~=message][data-id=b1] [part=text]");
    assert_eq!(text.text_content().as_deref(), Some(evil));
    assert!(w.root().query_selector("img, b").expect("query").is_none(), "no element made from the text");
    let pwned =
        js_sys::Reflect::get(&web_sys::window().expect("window"), &"__natterPwned".into()).expect("get");
    assert!(pwned.is_undefined());
    let row = w.part("[part~=message][data-id=b1]");
    assert_eq!(row.get_attribute("data-role").as_deref(), Some("bot"));
    assert_eq!(row.get_attribute("data-state").as_deref(), Some("sent"));
    assert!(row.query_selector("time").expect("query").is_some());
}

#[wasm_bindgen_test]
fn http_links_become_safe_anchors_and_nothing_else_does() {
    let w = Mounted::new(&[]);
    let msg = "docs: https://example.com/a?b=1. Not javascript:alert(1) nor data:text/html,x";
    w.inject(&bot("b2", 1, msg));
    let text = w.part("[part~=message][data-id=b2] [part=text]");
    assert_eq!(text.text_content().as_deref(), Some(msg), "every character is still there");
    let anchors = text.query_selector_all("a").expect("query");
    assert_eq!(anchors.length(), 1);
    let a: Element = anchors.get(0).expect("a").dyn_into().expect("element");
    assert_eq!(a.get_attribute("href").as_deref(), Some("https://example.com/a?b=1"));
    assert_eq!(a.get_attribute("rel").as_deref(), Some("noopener noreferrer"));
    assert_eq!(a.get_attribute("target").as_deref(), Some("_blank"));
}

#[wasm_bindgen_test]
fn links_show_the_host_the_browser_goes_to() {
    let w = Mounted::new(&[]);
    let msg = "log in at https://раураl.com/login, https://paypal.com@evil.example/x, \u{202e}see \
               https://evil.example/\u{202e}fdp.exe and https://münchen.de/";
    w.inject(&bot("b3", 1, msg));
    let text = w.part("[part~=message][data-id=b3] [part=text]");
    let anchors = text.query_selector_all("a").expect("query");
    let links: Vec<web_sys::HtmlAnchorElement> =
        (0..anchors.length()).filter_map(|i| anchors.get(i)?.dyn_into().ok()).collect();
    let seen: Vec<(String, String)> =
        links.iter().map(|a| (a.text_content().unwrap_or_default(), a.hostname())).collect();
    // The text of each link, and where the browser itself says its href goes.
    assert_eq!(
        seen,
        [
            // Cyrillic "раура" and a Latin "l": the browser's punycode, shown as it is.
            ("https://xn--l-7sba6dbr.com/login".to_string(), "xn--l-7sba6dbr.com".to_string()),
            // Userinfo is not shown (nor sent): the host is evil.example.
            ("https://evil.example/x".to_string(), "evil.example".to_string()),
            // The override inside the link is gone.
            ("https://evil.example/fdp.exe".to_string(), "evil.example".to_string()),
            // One script, readable: shown in Unicode, the same host as the browser's punycode.
            ("https://münchen.de/".to_string(), "xn--mnchen-3ya.de".to_string()),
        ]
    );
    for a in &links {
        assert_eq!(a.get_attribute("href"), a.text_content(), "a link shows exactly where it goes");
        assert_eq!(a.username(), "");
        // Isolated: the override in the text before it cannot reorder it.
        assert_eq!(a.dir(), "ltr");
    }
}

#[wasm_bindgen_test]
fn a_message_arriving_while_closed_is_unread_and_mute_is_remembered() {
    // Whether the chime plays depends on the browser's autoplay policy and the visitor's
    // gestures, and `sound` is told only when it does: tests/e2e/specs/sound.spec.js checks
    // that with a real hub. Here: the badge, the launcher's label and the mute switch.
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten()).expect("storage");
    storage.remove_item("natter:muted").expect("clear");
    // What other tests' widgets read must not count here.
    storage.remove_item("natter:read").expect("clear");
    let w = Mounted::new(&[]);
    w.inject(&bot("c1", 1, "first"));
    let badge = w.part("[part=badge]");
    assert!(!badge.hidden());
    assert_eq!(badge.text_content().as_deref(), Some("1"));
    let launcher = w.part("[part=launcher]");
    assert_eq!(launcher.get_attribute("aria-label").as_deref(), Some("Open chat (1 unread)"));

    let mute = w.part("button[part=mute]");
    mute.click();
    assert_eq!(mute.get_attribute("aria-pressed").as_deref(), Some("true"));
    assert_eq!(mute.get_attribute("title").as_deref(), Some("Unmute notification sound"));
    assert_eq!(storage.get_item("natter:muted").expect("get").as_deref(), Some("1"), "mute is remembered");
    w.inject(&bot("c2", 2, "second"));
    assert_eq!(badge.text_content().as_deref(), Some("2"), "still counted as unread");

    mute.click();
    w.handle.open();
    assert!(badge.hidden(), "opening reads everything");
    assert_eq!(launcher.get_attribute("aria-label").as_deref(), Some("Close chat"));
    w.inject(&bot("c3", 3, "third"));
    assert!(badge.hidden(), "open and visible: read as it arrives");
    // The same message delivered twice is shown once.
    w.inject(&bot("c3", 3, "third"));
    assert_eq!(w.root().query_selector_all("[data-id=c3]").expect("query").length(), 1);
    storage.remove_item("natter:muted").expect("clear");
}

#[wasm_bindgen_test]
fn a_refused_message_shows_failed_with_retry() {
    let w = Mounted::new(&[]);
    let id = w.handle.send("too long, say").expect("an id");
    let row = w.part(&format!("[part~=message][data-id=\"{id}\"]"));
    assert_eq!(row.get_attribute("data-role").as_deref(), Some("user"));
    assert_eq!(row.get_attribute("data-state").as_deref(), Some("pending"));
    assert!(row.query_selector("[part=retry]").expect("query").is_none());
    w.inject(&format!(r#"{{"type":"error","code":"too_large","message":"too big","id":"{id}"}}"#));
    assert_eq!(row.get_attribute("data-state").as_deref(), Some("failed"));
    let retry: HtmlElement =
        row.query_selector("button[part=retry]").expect("query").expect("retry").dyn_into().expect("html");
    retry.click();
    assert_eq!(row.get_attribute("data-state").as_deref(), Some("pending"));
    w.inject(&format!(r#"{{"type":"ack","id":"{id}","seq":7}}"#));
    assert_eq!(row.get_attribute("data-state").as_deref(), Some("sent"));
    assert!(row.query_selector("[part=retry]").expect("query").is_none());
}

#[wasm_bindgen_test]
fn the_typing_indicator_follows_the_bot() {
    let w = Mounted::new(&[]);
    w.inject(r#"{"type":"typing","role":"bot","active":true}"#);
    assert!(!w.part("[part=typing]").hidden());
    // Its three bouncing dots (empty, it would be a blank bubble); the closed notice is text.
    let dots = w.root().query_selector_all("[part=typing] > span").expect("query");
    assert_eq!(dots.length(), 3);
    assert_eq!(w.part("[part=closed]").child_element_count(), 0);
    w.inject(&bot("t1", 1, "done"));
    assert!(w.part("[part=typing]").hidden());
}

#[wasm_bindgen_test]
fn destroy_leaves_nothing_behind() {
    let opened = Counter::new();
    let handle = mount(options(&[])).expect("mounts");
    handle.on("open", opened.function());
    assert!(document().query_selector("[data-natter]").expect("query").is_some());
    handle.destroy();
    assert!(document().query_selector("[data-natter]").expect("query").is_none(), "no host node");
    // Its page listeners are gone: the shortcut does nothing, nothing comes back.
    shortcut();
    assert_eq!(opened.count.get(), 0);
    assert!(document().query_selector("[data-natter]").expect("query").is_none());
    // The handle stays safe to call.
    handle.open();
    handle.destroy();
    assert_eq!(handle.send("after destroy"), None);
    assert_eq!(opened.count.get(), 0);
}

#[wasm_bindgen_test]
fn a_history_frame_fills_the_log_in_order_without_duplicates() {
    let w = Mounted::new(&[]);
    let history = format!(
        r#"{{"type":"history","messages":[{},{},{}],"complete":false,"gap":{{"from":1,"to":2}},"lastSeq":5}}"#,
        bot("h5", 5, "five"),
        r#"{"type":"user","id":"h3","seq":3,"message":"three","timestamp":"2026-01-01T12:00:00Z","sessionId":"s"}"#,
        r#"{"type":"agent","id":"h4","seq":4,"message":"four","timestamp":"2026-01-01T12:01:00Z","sessionId":"s","author":"Ann"}"#,
    );
    w.inject(&history);
    w.inject(&history);
    let rows = w.root().query_selector_all("[part~=message]:not([data-role=system])").expect("query");
    let ids: Vec<String> = (0..rows.length())
        .filter_map(|i| rows.get(i))
        .filter_map(|n| n.dyn_into::<Element>().ok())
        .filter_map(|e| e.get_attribute("data-id"))
        .collect();
    assert_eq!(ids, ["h3", "h4", "h5"], "by seq, each once");
    // The second delivery counts as a resume: its gap is told to the visitor, once.
    let notes = w.root().query_selector_all("[part~=message][data-role=system]").expect("query");
    assert_eq!(notes.length(), 1);
    assert_eq!(w.part("[data-id=h4]").get_attribute("data-role").as_deref(), Some("agent"));
    assert_eq!(w.part("[data-id=h3]").get_attribute("data-role").as_deref(), Some("user"));
}

/// The `room` export, called as the npm module calls it (from JavaScript): a call number it
/// does not know is a `TypeError` thrown at the caller, and the widget carries on.
#[cfg(feature = "rooms")]
#[wasm_bindgen_test]
fn an_unknown_room_call_throws_a_type_error() {
    let handle: JsValue = mount(options(&[])).expect("mounts").into();
    let method = |name: &str| -> js_sys::Function {
        js_sys::Reflect::get(&handle, &name.into()).expect("get").dyn_into().expect("a method")
    };
    let call = |op: u32| {
        let args = js_sys::Array::of2(&op.into(), &"r".into());
        js_sys::Reflect::apply(&method("room"), &handle, &args)
    };
    let thrown = call(99).expect_err("an unknown call throws");
    let error: js_sys::Error = thrown.dyn_into().expect("an Error");
    assert_eq!(error.name(), "TypeError");
    assert_eq!(error.message(), "natter: no such room call");
    assert!(call(0).expect("a known call answers").is_null(), "no snapshot of a room not joined");
    js_sys::Reflect::apply(&method("destroy"), &handle, &js_sys::Array::new()).expect("destroys");
}
