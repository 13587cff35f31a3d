//! Mount options: what the host page passes to `mount(options)` or as `data-*` attributes.
//!
//! Both sources arrive as one JS object; the script tag's attributes are all strings, npm
//! callers pass real booleans and numbers, so every field accepts either. Anything that ends up
//! in CSS (colours, z-index) is validated here, because it is written into a stylesheet.
//!
//! Texts come from `crate::i18n`: English, with the `strings` option (the page's language as
//! the npm facade downloaded it, and the page's own overrides) over it.
//!
//! The web layer reads the JS object property by property (`Reflect.get`) rather than through
//! serde: an untagged "string or bool or number" serde enum costs kilobytes of wasm for a
//! handful of fields.

use crate::prelude::*;

use crate::i18n::{Key, Strings};

/// A value that may come as a string (from a `data-*` attribute) or as itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Flex {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

impl Flex {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Flex::Bool(b) => Some(*b),
            Flex::Num(n) => Some(*n != 0.0),
            // `data-open` with no value means true, like a boolean HTML attribute.
            Flex::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "" | "true" | "yes" | "1" | "open" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            },
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Flex::Num(n) if n.is_finite() => Some(*n as i64),
            Flex::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<String> {
        match self {
            Flex::Str(s) => Some(s.clone()),
            Flex::Bool(false) => Some(String::new()),
            _ => None,
        }
    }
}

/// The options object as the page gave it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawOptions {
    /// `server`.
    pub server: Option<String>,
    /// `position`.
    pub position: Option<String>,
    /// `zIndex`.
    pub z_index: Option<Flex>,
    /// `title`.
    pub title: Option<String>,
    /// `greeting`.
    pub greeting: Option<String>,
    /// `shortcut`.
    pub shortcut: Option<Flex>,
    /// `theme`.
    pub theme: Option<String>,
    /// `open`.
    pub open: Option<Flex>,
    /// `accent`.
    pub accent: Option<String>,
    /// `colors`, in the object's property order.
    pub colors: Vec<(String, String)>,
    /// `locale` (the web layer puts the browser's language here when the page gives none).
    pub locale: Option<String>,
    /// `textsLocale`, from the npm facade: the language the texts are in, when it is not
    /// `locale` (English texts for a locale the widget has none for).
    pub texts_locale: Option<String>,
    /// `strings`: `(key, text)` overrides, in the object's property order.
    pub strings: Vec<(String, String)>,
    /// `identityToken` (`data-identity-token`).
    pub identity_token: Option<String>,
}

/// Which corner the launcher sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// Bottom right (default).
    BottomRight,
    /// Bottom left.
    BottomLeft,
}

/// Colour scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Theme {
    /// Follows `prefers-color-scheme` (default).
    Auto,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl Theme {
    /// The host's `data-theme` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// A keyboard shortcut such as `Ctrl+Shift+C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shortcut {
    /// Ctrl held.
    pub ctrl: bool,
    /// Shift held.
    pub shift: bool,
    /// Alt / Option held.
    pub alt: bool,
    /// Meta / Cmd held.
    pub meta: bool,
    /// The key, lower case (`"c"`, `"/"`, `"f1"`).
    pub key: String,
}

impl Shortcut {
    /// Parses `"Ctrl+Shift+C"`; `None` for an empty or unparsable text.
    pub(crate) fn parse(text: &str) -> Option<Shortcut> {
        let mut s = Shortcut { ctrl: false, shift: false, alt: false, meta: false, key: String::new() };
        let mut parts = Some(text);
        while let Some(rest) = parts {
            let (part, next) = crate::text::cut(rest, b'+');
            parts = next;
            match part.trim().to_ascii_lowercase().as_str() {
                "ctrl" | "control" => s.ctrl = true,
                "shift" => s.shift = true,
                "alt" | "option" => s.alt = true,
                "meta" | "cmd" | "command" | "super" => s.meta = true,
                "" => return None,
                // A space cannot be written as itself between `+` signs and trimming.
                "space" if s.key.is_empty() => s.key = " ".to_string(),
                key if s.key.is_empty() => s.key = key.to_string(),
                _ => return None,
            }
        }
        (!s.key.is_empty()).then_some(s)
    }

    /// Whether a keydown with these properties is this shortcut. `code` (`"KeyC"`) is
    /// checked too, so a letter shortcut works on any keyboard layout.
    ///
    /// A punctuation key (ASCII: `/`, `?`, `!`) is the character itself, whichever keys the layout
    /// types it with: `?` is Shift+/ on a US keyboard and `/` is Shift+7 on a German one, so
    /// Shift is not compared for it. `Shift+/` (Shift said explicitly) is the key that types
    /// `/` on a US keyboard, held with Shift (`code` `Slash`), or a `/` typed with Shift.
    pub(crate) fn matches(
        &self,
        key: &str,
        code: &str,
        ctrl: bool,
        shift: bool,
        alt: bool,
        meta: bool,
    ) -> bool {
        if (ctrl, alt, meta) != (self.ctrl, self.alt, self.meta) {
            return false;
        }
        let mut chars = self.key.chars();
        let single = match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        };
        // (ASCII punctuation only: Unicode's tables would add kilobytes to the download.)
        if let Some(c) = single.filter(char::is_ascii_punctuation) {
            return if self.shift {
                shift && (key == self.key || us_code(c) == Some(code))
            } else {
                key == self.key
            };
        }
        if shift != self.shift {
            return false;
        }
        if key.eq_ignore_ascii_case(&self.key) {
            return true;
        }
        match single {
            Some(c) if c.is_ascii_alphabetic() => {
                code.strip_prefix("Key").is_some_and(|k| k.eq_ignore_ascii_case(&self.key))
            }
            Some(c) if c.is_ascii_digit() => {
                code.strip_prefix("Digit").is_some_and(|d| d.len() == 1 && d.starts_with(c))
            }
            _ => false,
        }
    }
}

/// The `KeyboardEvent.code` of the key that types `c` without Shift on a US keyboard (the
/// layout `code` names keys after).
fn us_code(c: char) -> Option<&'static str> {
    Some(match c {
        '/' => "Slash",
        '.' => "Period",
        ',' => "Comma",
        ';' => "Semicolon",
        '\'' => "Quote",
        '[' => "BracketLeft",
        ']' => "BracketRight",
        '\\' => "Backslash",
        '-' => "Minus",
        '=' => "Equal",
        '`' => "Backquote",
        _ => return None,
    })
}

/// Validated options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// Hub base URL without a trailing slash (`https://chat.example.com`); empty means the
    /// page's own origin.
    pub server: String,
    /// Corner.
    pub position: Position,
    /// CSS z-index of the widget.
    pub z_index: i64,
    /// Panel title.
    pub title: String,
    /// First bubble shown in an empty conversation; none when empty.
    pub greeting: Option<String>,
    /// BCP 47 tag for `Intl` (`"he-IL"`): how times are written.
    pub locale: String,
    /// BCP 47 tag of the language the texts are in: the panel's `lang` and writing direction.
    /// `locale`, unless the widget has no texts for it and the page gave none (then `en`: an
    /// English panel mirrored for a Persian visitor would put every `…` at the wrong end).
    pub lang: String,
    /// Every text of the widget in the page's language.
    pub strings: Strings,
    /// Names in the `strings` option that are not keys (the web layer warns about them).
    pub unknown_strings: Vec<String>,
    /// Toggle shortcut; none when disabled.
    pub shortcut: Option<Shortcut>,
    /// The `shortcut` option as given, when it could not be read (the default is used; the web
    /// layer says so on the console).
    pub bad_shortcut: Option<String>,
    /// Colour scheme.
    pub theme: Theme,
    /// Open the panel at mount (without taking focus).
    pub open: bool,
    /// CSS custom properties to set on the host (`--natter-accent` → `#4f46e5`).
    pub colors: Vec<(String, String)>,
    /// The signed-in user's identity token (a JWT from the site's backend); none for an
    /// anonymous visitor.
    pub identity_token: Option<String>,
}

/// Default z-index: above nearly everything, below the 32-bit maximum so a page can still
/// put something over the widget.
pub(crate) const DEFAULT_Z_INDEX: i64 = 2_147_483_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            server: String::new(),
            position: Position::BottomRight,
            z_index: DEFAULT_Z_INDEX,
            title: Strings::default().get(Key::Title).into(),
            greeting: Some(Strings::default().get(Key::Greeting).into()),
            locale: "en".into(),
            lang: "en".into(),
            strings: Strings::default(),
            unknown_strings: Vec::new(),
            shortcut: Shortcut::parse("Ctrl+Shift+C"),
            bad_shortcut: None,
            theme: Theme::Auto,
            open: false,
            colors: Vec::new(),
            identity_token: None,
        }
    }
}

/// Turns `accentText` / `accent-text` into `accent-text`; `None` if it has other characters.
fn property_name(key: &str) -> Option<String> {
    let key = key.trim();
    let key = key.strip_prefix("--natter-").or_else(|| key.strip_prefix("--")).unwrap_or(key);
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    let mut out = String::from("--natter-");
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Accepts colour-like values only (`#fff`, `rgb(1 2 3 / .5)`, `hsl(…)`, `tomato`): no `;`,
/// braces, quotes, `url(` or comments that could break out of the declaration or load anything.
pub(crate) fn is_safe_css_value(v: &str) -> bool {
    let v = v.trim();
    // No `*` is allowed, so no comment can open; `url(` is the one function that loads.
    !v.is_empty()
        && v.len() <= 100
        && v.bytes().all(|c| c.is_ascii_alphanumeric() || b" #%(),./+-_".contains(&c))
        && !v.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"url("))
}

/// `s` without the `/`s it ends with (a loop: `trim_end_matches` brought a `str` pattern
/// searcher into the wasm).
fn without_trailing_slashes(mut s: &str) -> &str {
    while let Some(rest) = s.strip_suffix('/') {
        s = rest;
    }
    s
}

impl RawOptions {
    /// Validates; bad values fall back to the defaults (a typo in a `data-*` attribute must
    /// not break the host page).
    pub(crate) fn resolve(self) -> Options {
        let d = Options::default();
        // Checked as they are gathered (one loop: a filter_map/filter/collect chain was more
        // iterator code in the wasm).
        let mut colors = Vec::new();
        let mut add = |k: &str, v: &str| {
            let v = v.trim();
            if let Some(k) = property_name(k).filter(|_| is_safe_css_value(v)) {
                colors.push((k, v.to_string()));
            }
        };
        if let Some(accent) = &self.accent {
            add("accent", accent);
        }
        for (k, v) in &self.colors {
            add(k, v);
        }
        let (strings, unknown_strings) = Strings::with(&self.strings);
        // `false`, `""`, `"none"` and `"off"` turn the shortcut off; a text that is no shortcut
        // (`"Ctrl+Shfit+C"`) keeps the default rather than silently leaving the visitor without
        // one, and is named on the console.
        let (shortcut, bad_shortcut) = match self.shortcut.map(|f| f.as_string().ok_or(f)) {
            None => (d.shortcut, None),
            Some(Ok(s))
                if matches!(s.trim().to_ascii_lowercase().as_str(), "" | "none" | "off" | "false") =>
            {
                (None, None)
            }
            Some(Ok(s)) => match Shortcut::parse(&s) {
                Some(sc) => (Some(sc), None),
                None => (d.shortcut, Some(s)),
            },
            // `true`: the default shortcut, as if none were given.
            Some(Err(Flex::Bool(_))) => (d.shortcut, None),
            Some(Err(_)) => (d.shortcut, Some("a number".to_string())),
        };
        Options {
            server: self.server.map(|s| without_trailing_slashes(s.trim()).to_string()).unwrap_or_default(),
            position: match self.position.as_deref().map(str::trim) {
                Some("bottom-left" | "left") => Position::BottomLeft,
                _ => Position::BottomRight,
            },
            z_index: self.z_index.and_then(|z| z.as_i64()).map_or(d.z_index, |z| z.clamp(0, 2_147_483_647)),
            title: self
                .title
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| strings.get(Key::Title).into()),
            greeting: match self.greeting {
                Some(g) if g.trim().is_empty() => None,
                Some(g) => Some(g),
                None => Some(strings.get(Key::Greeting).into()),
            },
            lang: self
                .texts_locale
                .or_else(|| self.locale.clone())
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .unwrap_or(d.lang),
            locale: self.locale.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).unwrap_or(d.locale),
            strings,
            unknown_strings,
            shortcut,
            bad_shortcut,
            theme: match self.theme.as_deref().map(str::trim) {
                Some("light") => Theme::Light,
                Some("dark") => Theme::Dark,
                _ => Theme::Auto,
            },
            open: self.open.and_then(|o| o.as_bool()).unwrap_or(false),
            colors,
            identity_token: self.identity_token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o = RawOptions::default().resolve();
        assert_eq!(o, Options::default());
        assert_eq!(o.shortcut.as_ref().map(|s| (s.ctrl, s.shift, s.key.as_str())), Some((true, true, "c")));
    }

    #[test]
    fn strings_from_data_attributes() {
        let raw = RawOptions {
            server: Some("https://hub.example/ ".into()),
            position: Some("bottom-left".into()),
            z_index: Some(Flex::Str("50".into())),
            open: Some(Flex::Str(String::new())),
            shortcut: Some(Flex::Str("Alt+K".into())),
            theme: Some("dark".into()),
            greeting: Some(" ".into()),
            ..Default::default()
        };
        let o = raw.resolve();
        assert_eq!(o.server, "https://hub.example");
        assert_eq!(o.position, Position::BottomLeft);
        assert_eq!(o.z_index, 50);
        assert!(o.open);
        assert_eq!(o.theme, Theme::Dark);
        assert_eq!(o.greeting, None);
        assert_eq!(o.shortcut, Shortcut::parse("alt+k"));
    }

    #[test]
    fn shortcut_can_be_disabled() {
        for off in [Flex::Bool(false), Flex::Str(String::new()), Flex::Str("none".into())] {
            let o = RawOptions { shortcut: Some(off.clone()), ..Default::default() }.resolve();
            assert!(o.shortcut.is_none(), "{off:?}");
        }
    }

    #[test]
    fn shortcut_matching() {
        let s = Shortcut::parse("Ctrl+Shift+C").expect("parses");
        assert!(s.matches("C", "KeyC", true, true, false, false));
        assert!(s.matches("c", "KeyC", true, true, false, false));
        // Another layout reports another key for the same physical key.
        assert!(s.matches("С", "KeyC", true, true, false, false));
        assert!(!s.matches("C", "KeyC", true, false, false, false));
        assert!(!s.matches("V", "KeyV", true, true, false, false));
        assert_eq!(Shortcut::parse("Ctrl+"), None);
        assert_eq!(Shortcut::parse("Ctrl+A+B"), None);
        let digit = Shortcut::parse("alt+1").expect("parses");
        assert!(digit.matches("¡", "Digit1", false, false, true, false));
    }

    #[test]
    fn colours_are_validated_and_named() {
        let colors = vec![
            ("--natter-user-bubble".to_string(), "rgb(1 2 3 / 50%)".to_string()),
            ("accentText".to_string(), "#fff".to_string()),
            ("bg".to_string(), "red; } body { display: none".to_string()),
            ("x{".to_string(), "blue".to_string()),
        ];
        let o =
            RawOptions { accent: Some("hsl(250, 80%, 60%)".into()), colors, ..Default::default() }.resolve();
        assert_eq!(
            o.colors,
            [
                ("--natter-accent".to_string(), "hsl(250, 80%, 60%)".to_string()),
                ("--natter-user-bubble".to_string(), "rgb(1 2 3 / 50%)".to_string()),
                ("--natter-accent-text".to_string(), "#fff".to_string()),
            ]
        );
        assert!(!is_safe_css_value("url(https://x)"));
        assert!(!is_safe_css_value("red /* */"));
    }

    #[test]
    fn strings_and_locale() {
        let raw = RawOptions {
            locale: Some(" ar ".into()),
            strings: vec![("title".into(), "مرحبا".into()), ("bogus".into(), "x".into())],
            ..Default::default()
        };
        let o = raw.resolve();
        assert_eq!(o.locale, "ar");
        assert_eq!(o.lang, "ar", "the texts are in the locale unless the facade says otherwise");
        assert_eq!(o.title, "مرحبا", "the title comes from the strings unless the option sets it");
        assert_eq!(o.unknown_strings, ["bogus"]);
        let o = RawOptions { title: Some("Support".into()), ..Default::default() }.resolve();
        assert_eq!(o.title, "Support");
        assert_eq!(o.locale, "en");
        let o =
            RawOptions { locale: Some("fa".into()), texts_locale: Some("en".into()), ..Default::default() }
                .resolve();
        assert_eq!((o.locale.as_str(), o.lang.as_str()), ("fa", "en"));
    }

    #[test]
    fn a_shortcut_that_cannot_be_read_keeps_the_default_and_is_named() {
        for (given, named) in [
            (Flex::Str("Ctrl+Shfit+C".into()), Some("Ctrl+Shfit+C")),
            (Flex::Str("Ctrl+".into()), Some("Ctrl+")),
            (Flex::Num(5.0), Some("a number")),
            (Flex::Bool(true), None),
        ] {
            let o = RawOptions { shortcut: Some(given.clone()), ..Default::default() }.resolve();
            assert_eq!(o.shortcut, Options::default().shortcut, "{given:?}");
            assert_eq!(o.bad_shortcut.as_deref(), named, "{given:?}");
        }
        let o = RawOptions { shortcut: Some(Flex::Str("?".into())), ..Default::default() }.resolve();
        assert_eq!(o.shortcut, Shortcut::parse("?"));
        assert_eq!(o.bad_shortcut, None);
    }

    #[test]
    fn z_index_is_clamped() {
        let o = RawOptions { z_index: Some(Flex::Num(1e12)), ..Default::default() }.resolve();
        assert_eq!(o.z_index, 2_147_483_647);
        let o = RawOptions { z_index: Some(Flex::Str("abc".into())), ..Default::default() }.resolve();
        assert_eq!(o.z_index, DEFAULT_Z_INDEX);
    }
}
