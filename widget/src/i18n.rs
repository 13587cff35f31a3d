//! Every text the widget shows or speaks: the keys, the built-in English, and the page's
//! overrides.
//!
//! English is built in (the fallback, and what a page that asks for nothing gets). The other
//! built-in languages are JSON files beside this module (`i18n/<lang>.json`, one object of the
//! same keys) that `cargo xtask build` ships as `locales/<lang>.json`: the npm facade picks the
//! page's language (the `locale` option, else `navigator.languages`, matched by language
//! subtag) and downloads only that one file, so a page pays for one language, not nine. It
//! passes the file's strings, with the page's own `strings` over them, as the `strings` option;
//! here they replace the English key by key. A test holds every file to exactly these keys.
//!
//! Times are formatted by the browser's `Intl` in the same locale (`web::clock`); a
//! right-to-left language ([`is_rtl`]) mirrors the panel.
//!
//! The collaboration panel (npm/src/rooms-panel.js, loaded only by pages that use rooms) has
//! texts of its own, keys starting with [`ROOM_PREFIX`]: English is built into that module, the
//! other languages sit in the same `i18n/<lang>.json` files, and `cargo xtask build` ships them
//! as `locales/rooms-<lang>.json` with the widget's texts (a page with the panel fetches that
//! file instead of `<lang>.json`), so a page without rooms never downloads them. In the
//! `strings` option they are the panel's to read: here they are neither used nor reported as
//! unknown.

use crate::prelude::*;

/// One text of the widget. Their names (in `TABLE`, in the same order) are the keys of the
/// `strings` option, listed in npm/README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Panel title (unless the `title` option says otherwise).
    Title,
    /// First bubble (unless the `greeting` option says otherwise).
    Greeting,
    /// The launcher while the panel is closed.
    OpenChat,
    /// The launcher while the panel is open, and the ✕ in the header.
    CloseChat,
    /// The launcher while the panel is closed and messages are unread; `{n}` is the count.
    OpenChatUnread,
    /// The mute button's name, and its tooltip while the sound is on.
    Mute,
    /// The mute button's tooltip while the sound is muted.
    Unmute,
    /// The message log's name.
    Conversation,
    /// The typing indicator's name.
    Typing,
    /// The text box's name.
    Message,
    /// The text box's placeholder.
    Placeholder,
    /// The send button.
    Send,
    /// Under a message not yet acknowledged.
    Sending,
    /// Under a message the hub refused.
    NotDelivered,
    /// The retry button of a refused message.
    Retry,
    /// The footer.
    PoweredBy,
    /// Status: first connection.
    StatusConnecting,
    /// Status: WebSocket open.
    StatusConnected,
    /// Status: lost, trying again.
    StatusReconnecting,
    /// Status: HTTP fallback.
    StatusHttp,
    /// Status: offline.
    StatusOffline,
    /// Status: the hub refuses this site (its origin is not allowed); the link has stopped.
    StatusUnavailable,
    /// Status: the hub refused the signed-in user's identity token; waiting for a fresh one.
    StatusSignIn,
    /// The notice when a resume could not fill a gap.
    Gap,
    /// Under the status, while a person (an operator) is online to answer.
    AvailableOnline,
    /// Under the status, while no operator is online.
    AvailableAway,
    /// After the log, while an operator has closed the conversation.
    ConversationClosed,
}

/// `(name, English)` per key, in [`Key`] order.
const TABLE: [(&str, &str); 27] = [
    ("title", "Chat with us"),
    ("greeting", "Hi there 👋 How can we help?"),
    ("openChat", "Open chat"),
    ("closeChat", "Close chat"),
    ("openChatUnread", "Open chat ({n} unread)"),
    ("mute", "Mute notification sound"),
    ("unmute", "Unmute notification sound"),
    ("conversation", "Conversation"),
    ("typing", "Typing…"),
    ("message", "Message"),
    ("placeholder", "Write a message…"),
    ("send", "Send"),
    ("sending", "Sending…"),
    ("notDelivered", "Not delivered"),
    ("retry", "Retry"),
    ("poweredBy", "Powered by Natter"),
    ("statusConnecting", "Connecting…"),
    ("statusConnected", "Connected"),
    ("statusReconnecting", "Reconnecting…"),
    ("statusHttp", "HTTP fallback"),
    ("statusOffline", "Offline"),
    ("statusUnavailable", "Chat is not available on this site"),
    ("statusSignIn", "Sign-in expired"),
    ("gap", "Some earlier messages could not be loaded."),
    ("availableOnline", "We usually reply in a few minutes"),
    ("availableAway", "Away — leave a message and we'll get back to you"),
    ("conversationClosed", "This conversation was closed. Write to start it again."),
];

impl Key {
    /// The key's name in the `strings` option (`"openChat"`).
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        TABLE[self as usize].0
    }
}

/// The start of every key of the collaboration panel's texts (`roomJoin`, `roomTypingOne`…).
pub(crate) const ROOM_PREFIX: &str = "room";

/// Languages written right to left (by primary subtag).
const RTL: [&str; 8] = ["ar", "he", "fa", "ur", "ps", "yi", "dv", "ckb"];

/// Whether `locale` (a BCP 47 tag such as `he-IL`) is written right to left.
pub(crate) fn is_rtl(locale: &str) -> bool {
    // A byte scan: `split(['-', '_'])` brought a `str` pattern searcher into the wasm.
    let end = locale.bytes().position(|b| b == b'-' || b == b'_').unwrap_or(locale.len());
    // (`get`, not `[..end]`: a slice's panic would bring its formatting into the wasm.)
    let lang = locale.get(..end).unwrap_or_default().to_ascii_lowercase();
    RTL.contains(&lang.as_str())
}

/// The widget's texts: English, with the page's strings over it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Strings {
    texts: Vec<String>,
}

impl Default for Strings {
    fn default() -> Self {
        Strings { texts: TABLE.iter().map(|(_, en)| en.to_string()).collect() }
    }
}

impl Strings {
    /// English with `overrides` (`(name, text)`) applied; returns the names it does not know,
    /// so the web layer can say so. Blank texts are ignored (a label must say something), and
    /// so are the collaboration panel's keys ([`ROOM_PREFIX`]), which the panel reads itself.
    pub(crate) fn with(overrides: &[(String, String)]) -> (Strings, Vec<String>) {
        let mut s = Strings::default();
        let mut unknown = Vec::new();
        for (name, text) in overrides {
            match TABLE.iter().position(|(n, _)| n == name) {
                Some(i) if !text.trim().is_empty() => s.texts[i] = text.clone(),
                Some(_) => {}
                None if name.starts_with(ROOM_PREFIX) => {}
                None => unknown.push(name.clone()),
            }
        }
        (s, unknown)
    }

    /// The text of `key`.
    pub(crate) fn get(&self, key: Key) -> &str {
        &self.texts[key as usize]
    }

    /// The launcher's label for a closed panel with `unread` messages.
    pub(crate) fn open_label(&self, unread: u32) -> String {
        if unread == 0 {
            return self.get(Key::OpenChat).to_string();
        }
        // `{n}` filled in by hand: `str::replace` brings a substring searcher and the
        // slicing-panic formatting along, kilobytes of wasm for one placeholder.
        let mut out = String::new();
        let (mut parts, mut first) = (Some(self.get(Key::OpenChatUnread)), true);
        while let Some(text) = parts {
            let (part, next) = crate::text::cut(text, b'{');
            parts = next;
            let later = !core::mem::replace(&mut first, false);
            match part.strip_prefix("n}") {
                Some(rest) if later => {
                    crate::compose::push_decimal(&mut out, u64::from(unread));
                    out.push_str(rest);
                }
                _ => {
                    if later {
                        out.push('{');
                    }
                    out.push_str(part);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Key; 27] = [
        Key::Title,
        Key::Greeting,
        Key::OpenChat,
        Key::CloseChat,
        Key::OpenChatUnread,
        Key::Mute,
        Key::Unmute,
        Key::Conversation,
        Key::Typing,
        Key::Message,
        Key::Placeholder,
        Key::Send,
        Key::Sending,
        Key::NotDelivered,
        Key::Retry,
        Key::PoweredBy,
        Key::StatusConnecting,
        Key::StatusConnected,
        Key::StatusReconnecting,
        Key::StatusHttp,
        Key::StatusOffline,
        Key::StatusUnavailable,
        Key::StatusSignIn,
        Key::Gap,
        Key::AvailableOnline,
        Key::AvailableAway,
        Key::ConversationClosed,
    ];

    /// The built-in languages besides English, as shipped.
    const LOCALES: [(&str, &str); 9] = [
        ("de", include_str!("i18n/de.json")),
        ("fr", include_str!("i18n/fr.json")),
        ("es", include_str!("i18n/es.json")),
        ("pt", include_str!("i18n/pt.json")),
        ("ja", include_str!("i18n/ja.json")),
        ("zh", include_str!("i18n/zh.json")),
        ("zh-Hant", include_str!("i18n/zh-Hant.json")),
        ("ar", include_str!("i18n/ar.json")),
        ("he", include_str!("i18n/he.json")),
    ];

    #[test]
    fn every_key_has_a_distinct_name_in_order() {
        for (i, k) in ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(k.name(), TABLE[i].0);
        }
        let mut names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
    }

    /// The collaboration panel's English texts, `(key, text)`, as its module defines them (the
    /// `STRINGS` object of npm/src/rooms-panel.js, one `key: 'text',` a line).
    fn room_texts() -> Vec<(&'static str, &'static str)> {
        let js = include_str!("../../npm/src/rooms-panel.js");
        let start = js.find("const STRINGS = {\n").expect("rooms-panel.js defines STRINGS") + 18;
        let end = start + js[start..].find("\n};").expect("STRINGS ends");
        js[start..end]
            .lines()
            .map(|line| {
                let (key, text) = line.trim().split_once(": '").unwrap_or_else(|| panic!("{line:?}"));
                (key, text.strip_suffix("',").unwrap_or_else(|| panic!("{line:?} ends with ',")))
            })
            .collect()
    }

    #[test]
    fn the_rooms_panel_keys_are_its_own() {
        let rooms = room_texts();
        assert!(rooms.len() > 20, "{rooms:?}");
        for (key, en) in &rooms {
            assert!(key.starts_with(ROOM_PREFIX), "{key}");
            assert!(!en.trim().is_empty(), "{key}");
        }
        for (name, _) in TABLE {
            assert!(!name.starts_with(ROOM_PREFIX), "the widget's {name} would be taken for the panel's");
        }
        // The page's strings for the panel are the panel's business, not unknown texts.
        let (s, unknown) =
            Strings::with(&[("roomJoin".into(), "Entrer".into()), ("send".into(), "Go".into())]);
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(s.get(Key::Send), "Go");
    }

    #[test]
    fn every_locale_file_has_exactly_the_keys_and_keeps_the_placeholders() {
        let rooms = room_texts();
        let all: Vec<(&str, &str)> = TABLE.iter().copied().chain(rooms.iter().copied()).collect();
        for (lang, text) in LOCALES {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{lang}.json: {e}"));
            let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            keys.sort_unstable();
            expected.sort_unstable();
            assert_eq!(keys, expected, "{lang}.json has exactly the widget's and the rooms panel's keys");
            for (name, en) in &all {
                let t = map[*name].as_str().unwrap_or_else(|| panic!("{lang}.{name} is a string"));
                assert!(!t.trim().is_empty(), "{lang}.{name} is not blank");
                for slot in ["{n}", "{a}", "{b}"] {
                    assert_eq!(t.contains(slot), en.contains(slot), "{lang}.{name} keeps {slot}");
                }
            }
            // Translated, not copied: the panel's longer texts differ from the English.
            for key in ["roomJoinLabel", "roomNone", "roomRefused", "roomBadName"] {
                let en = rooms.iter().find(|(k, _)| *k == key).map(|(_, en)| *en);
                assert_ne!(map[key].as_str(), en, "{lang}.{key} is translated");
            }
            let overrides: Vec<(String, String)> =
                map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
            let (s, unknown) = Strings::with(&overrides);
            assert!(unknown.is_empty());
            assert_ne!(
                s.get(Key::Placeholder),
                Strings::default().get(Key::Placeholder),
                "{lang} is translated"
            );
        }
    }

    #[test]
    fn no_word_has_to_agree_with_the_unread_count() {
        // French, Portuguese, Arabic and Hebrew inflect a word that follows a number ("1 non
        // lu", "2 non lus"): their unread labels (the launcher's, the rooms panel's) put the
        // count after a colon, where it reads right for every count ("messages non lus : 1").
        for (lang, text) in LOCALES.iter().filter(|(l, _)| ["fr", "pt", "ar", "he"].contains(l)) {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{lang}.json: {e}"));
            for key in ["openChatUnread", "roomUnread"] {
                let label = map[key].as_str().unwrap_or_default();
                assert!(label.contains(": {n}"), "{lang}.{key}: {label}");
            }
        }
    }

    #[test]
    fn the_npm_readme_lists_every_key_with_its_english_text() {
        let readme = include_str!("../../npm/README.md");
        for (name, en) in TABLE.iter().copied().chain(room_texts()) {
            assert!(readme.contains(&format!("| `{name}` | {en}")), "npm/README.md lists `{name}`");
        }
    }

    #[test]
    fn overrides_replace_english_key_by_key_and_unknown_names_are_reported() {
        let (s, unknown) = Strings::with(&[
            ("placeholder".into(), "Ask us anything".into()),
            ("send".into(), "  ".into()),
            ("nope".into(), "x".into()),
        ]);
        assert_eq!(s.get(Key::Placeholder), "Ask us anything");
        assert_eq!(s.get(Key::Send), "Send", "blank is ignored");
        assert_eq!(s.get(Key::Retry), "Retry");
        assert_eq!(unknown, ["nope"]);
        assert_eq!(s.open_label(0), "Open chat");
        assert_eq!(s.open_label(3), "Open chat (3 unread)");
        let (s, _) = Strings::with(&[("openChatUnread".into(), "{x} {n} of {n}".into())]);
        assert_eq!(s.open_label(12), "{x} 12 of 12");
    }

    #[test]
    fn right_to_left_by_language_subtag() {
        for rtl in ["ar", "ar-EG", "he", "he-IL", "fa-IR", "HE"] {
            assert!(is_rtl(rtl), "{rtl}");
        }
        for ltr in ["en", "de-DE", "ja", "zh-Hant-TW", "", "hr"] {
            assert!(!is_rtl(ltr), "{ltr}");
        }
    }
}
