//! The widget's markup: the HTML of the panel and launcher, parsed once into the shadow root
//! (`innerHTML`), and of a message row, parsed once and cloned per message.
//!
//! One string is a few hundred bytes of gzip, where building the DOM element by element was a
//! table of pointers and a builder loop in the wasm, and a JS import per DOM method. The markup
//! is static and trusted: a constant, never formatted, so no text from the page or the visitor
//! is ever parsed as HTML. The page's language goes in afterwards by `setAttribute` /
//! `textContent` ([`LABELS`]), and so do the title and the greeting; message text only ever
//! reaches the DOM as text nodes (`web::dom`). Empty `aria-label=""`-style attributes hold the
//! place of those labels, so the attributes come out in the order the DOM contract (the `part`
//! names, roles and `data-*` attributes listed in npm/README.md) has always had. No `style`
//! attribute, no `<style>`, no script and no event-handler attribute: a strict CSP without
//! `'unsafe-inline'` has nothing to refuse (the CSS is in `style`).
//!
//! `web::dom` picks up every element with a `part` (and the status label) in document order
//! with one query ([`PICKED`]); a test holds the markup to that order. Icons are outlines in
//! the style of Feather / Lucide.

use crate::i18n::Key;

/// What `web::dom` picks out of [`WIDGET`] with one query: every element with a `part`, and
/// the status's text label.
pub(crate) const PICKED: &str = "[part],.label";

/// What [`PICKED`] finds, in document order (`web::dom` names them in this order): the `part`
/// names, and `.label` for the status label.
#[cfg(test)]
const PICKED_ORDER: [&str; 16] = [
    "panel",
    "title",
    "status",
    ".label",
    "availability",
    "mute",
    "close",
    "body",
    "greeting",
    "log",
    "typing",
    "closed",
    "input",
    "send",
    "launcher",
    "badge",
];

/// The panel and the launcher.
#[rustfmt::skip]
pub(crate) const WIDGET: &str = concat!(
    r#"<div class="panel" part="panel" role="dialog" aria-labelledby="natter-title" tabindex="-1" hidden>"#,
    r#"<div class="header">"#,
    r#"<div class="avatar"><svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">"#,
    r#"<path d="M12 2a10 10 0 1 0 0 20 10 10 0 1 0 0-20z"></path><path d="M8 14s1.5 2 4 2 4-2 4-2"></path>"#,
    r#"<path d="M9 9h.01"></path><path d="M15 9h.01"></path></svg></div>"#,
    r#"<div class="heading">"#,
    r#"<h2 class="title" part="title" id="natter-title"></h2>"#,
    r#"<div class="status" part="status" role="status" data-status="connecting">"#,
    r#"<span class="dot" aria-hidden="true"></span><span class="label"></span></div>"#,
    r#"<div class="availability" part="availability" hidden></div>"#,
    r#"</div>"#,
    r#"<button type="button" class="icon-button mute" part="mute" aria-pressed="false" aria-label="" title="">"#,
    r#"<svg class="icon-on" viewBox="0 0 24 24" aria-hidden="true">"#,
    r#"<path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"></path><path d="M13.73 21a2 2 0 0 1-3.46 0"></path></svg>"#,
    r#"<svg class="icon-off" viewBox="0 0 24 24" aria-hidden="true">"#,
    r#"<path d="M13.73 21a2 2 0 0 1-3.46 0M18.63 13A17.9 17.9 0 0 1 18 8M6.26 6.26A5.9 5.9 0 0 0 6 8c0 7-3 9-3 9h14M18 8a6 6 0 0 0-9.33-5M2 2l20 20"></path></svg>"#,
    r#"</button>"#,
    r#"<button type="button" class="icon-button close" part="close" aria-label="" title="">"#,
    r#"<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M18 6 6 18M6 6l12 12"></path></svg></button>"#,
    r#"</div>"#,
    r#"<div class="body" part="body">"#,
    r#"<div class="greeting" part="greeting"><div class="bubble" dir="auto"></div></div>"#,
    r#"<div class="log" part="log" role="log" aria-live="polite" aria-label=""></div>"#,
    r#"<div class="typing" part="typing" role="img" aria-label="" hidden><span></span><span></span><span></span></div>"#,
    r#"<div class="closed" part="closed" role="status" hidden></div>"#,
    r#"</div>"#,
    r#"<div class="composer">"#,
    r#"<textarea class="input" part="input" aria-label="" rows="1" dir="auto" placeholder="" enterkeyhint="send" maxlength="4000"></textarea>"#,
    r#"<button type="button" class="send" part="send" aria-label="" title="" disabled>"#,
    r#"<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M22 2 11 13M22 2 15 22l-4-9-9-4z"></path></svg></button>"#,
    r#"</div>"#,
    r#"<div class="footer"></div>"#,
    r#"</div>"#,
    r#"<button type="button" class="launcher" part="launcher" aria-label="" aria-expanded="false" aria-haspopup="dialog">"#,
    r#"<svg class="icon-chat" viewBox="0 0 24 24" aria-hidden="true">"#,
    r#"<path d="M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z"></path></svg>"#,
    r#"<svg class="icon-close" viewBox="0 0 24 24" aria-hidden="true"><path d="M18 6 6 18M6 6l12 12"></path></svg>"#,
    r#"<span class="badge" part="badge" hidden></span>"#,
    r#"</button>"#,
);

/// The labels of [`WIDGET`] in the page's language: the element (a selector), the attribute
/// (`""`: its text) and the text.
#[rustfmt::skip]
pub(crate) const LABELS: &[(&str, &str, Key)] = &[
    (".label", "", Key::StatusConnecting),
    ("[part=mute]", "aria-label", Key::Mute),
    ("[part=mute]", "title", Key::Mute),
    ("[part=close]", "aria-label", Key::CloseChat),
    ("[part=close]", "title", Key::CloseChat),
    ("[part=log]", "aria-label", Key::Conversation),
    ("[part=typing]", "aria-label", Key::Typing),
    ("[part=closed]", "", Key::ConversationClosed),
    ("[part=input]", "aria-label", Key::Message),
    ("[part=input]", "placeholder", Key::Placeholder),
    ("[part=send]", "aria-label", Key::Send),
    ("[part=send]", "title", Key::Send),
    (".footer", "", Key::PoweredBy),
    ("[part=launcher]", "aria-label", Key::OpenChat),
];

/// The content of a message row (`<div class="row">`): parsed once per widget (its notes
/// filled in the page's language) and cloned for each message; the web layer fills in the row's
/// attributes, its text and its time.
pub(crate) const ROW: &str = concat!(
    r#"<div class="bubble" part="text" dir="auto"></div><div class="meta"><time></time>"#,
    r#"<span class="note pending"></span><span class="note failed"></span><span class="author"></span></div>"#,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of `name="…"` attributes in `html`, in order.
    fn values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
        let needle = format!(" {name}=\"");
        html.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &html[at + needle.len()..];
                &rest[..rest.find('"').expect("a closed attribute")]
            })
            .collect()
    }

    #[test]
    fn picked_elements_are_in_the_order_the_dom_reads_them() {
        // Each start tag's part, or `.label` for the element of that class.
        let picked: Vec<String> = WIDGET
            .split('<')
            .filter(|tag| !tag.is_empty() && !tag.starts_with('/'))
            .filter_map(|tag| {
                let tag = &tag[..tag.find('>').expect("a closed tag")];
                let part = values(&format!(" {tag}"), "part").first().map(|p| p.to_string());
                part.or_else(|| {
                    values(&format!(" {tag}"), "class").contains(&"label").then(|| ".label".into())
                })
            })
            .collect();
        assert_eq!(picked, PICKED_ORDER);
        assert_eq!(PICKED, "[part],.label");
        assert_eq!(values(ROW, "part"), ["text"]);
    }

    #[test]
    fn every_label_has_its_element_and_an_empty_place() {
        for (selector, attr, _) in LABELS {
            let found = match selector.strip_prefix(".") {
                Some(class) => {
                    values(WIDGET, "class").iter().filter(|c| c.split(' ').any(|c| c == class)).count()
                }
                None => {
                    let part = selector.trim_start_matches("[part=").trim_end_matches(']');
                    values(WIDGET, "part").iter().filter(|p| **p == part).count()
                }
            };
            assert_eq!(found, 1, "{selector} names one element");
            if !attr.is_empty() {
                assert!(WIDGET.contains(&format!(" {attr}=\"\"")), "{selector} has an empty {attr}");
            }
        }
    }

    #[test]
    fn the_markup_is_inert_and_balanced() {
        for html in [WIDGET, ROW] {
            for banned in ["<script", "<style", " style=", " on", "$", "{", "javascript:"] {
                assert!(!html.contains(banned), "{banned} in the markup");
            }
            // Every element the markup opens it closes (the HTML parser would otherwise guess).
            for tag in ["div", "button", "span", "svg", "path", "h2", "textarea", "time"] {
                let opened =
                    html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count();
                assert_eq!(opened, html.matches(&format!("</{tag}>")).count(), "<{tag}>");
            }
        }
    }
}
