//! Splitting message text into plain runs and http(s) links, and what a link shows.
//!
//! The DOM layer turns each piece into a text node or an `<a>` built with `createElement`, so no
//! message text is ever parsed as HTML. Only `http://` and `https://` become links: a
//! `javascript:` or `data:` URL stays inert text.
//!
//! A link never lies about where it goes: its text and its `href` are one string, rebuilt
//! ([`Link`]) from the URL as a browser reads it —
//! - userinfo is dropped: `https://paypal.com@evil.example` shows (and goes to)
//!   `https://evil.example`;
//! - bidi controls (U+202E RIGHT-TO-LEFT OVERRIDE and the rest) are removed everywhere, so
//!   nothing inside a link is reordered (the DOM layer also isolates each link with
//!   `dir="ltr"` against overrides around it);
//! - slashes after the scheme collapse and `\` before the query is `/`, as browsers read them;
//! - a host with a label that mixes scripts (`раураl`: Cyrillic letters that look Latin, then a
//!   Latin `l`), that is all Cyrillic or Greek letters that look Latin (`раура`; a Cyrillic
//!   top-level domain such as `.рф` allows them), or that holds anything but letters of a known
//!   script, digits and `-` is shown in punycode, as address bars do. The DOM layer asks the
//!   browser for it (`new URL(…).hostname`: its own IDNA/UTS-46 mapping, exactly the host it
//!   will connect to) rather than carry an IDNA implementation in the widget.
//!
//! A URL whose host holds other ASCII punctuation (`%`, `!`, `,`, …), which browsers decode or
//! refuse, or whose port is not a number, stays plain text; so does an IPv6 literal
//! (`http://[::1]/`), which no visitor needs a link for.

use crate::prelude::*;

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Plain text.
    Text(&'a str),
    /// An http(s) link.
    Link(Link),
}

/// An http(s) link as the widget shows it: `scheme`, then `host` (or the browser's ASCII form
/// of it, when `ascii_host`), then `rest`, joined, are both its text and its `href`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    /// `http://` or `https://`.
    pub(crate) scheme: &'static str,
    /// The host, ASCII letters lowercased.
    pub(crate) host: String,
    /// Whether the host must be shown in punycode (see the module docs).
    pub(crate) ascii_host: bool,
    /// `:port` (when given), path, query and fragment.
    pub(crate) rest: String,
}

/// Splits `text` into text and link segments, in order. Text segments are `text`'s own
/// bytes; a link is rebuilt as [`Link`] says, and a URL that cannot be is left as text.
pub(crate) fn segments(text: &str) -> Vec<Segment<'_>> {
    // Splits with `split_at_checked`: every index here is a char boundary (found by a scan or
    // next to an ASCII character), and the checked form keeps the string-slicing panic
    // machinery (with its Unicode tables) out of the wasm.
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_link_start(rest) {
        let (before, tail) = split(rest, start);
        let end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"')).unwrap_or(tail.len());
        let mut url = split(tail, end).0;
        // Punctuation that ends a sentence is rarely part of the URL.
        loop {
            let unbalanced_paren = url.matches(')').count() > url.matches('(').count();
            let trim = match url.chars().next_back() {
                Some(')') => unbalanced_paren,
                Some('.' | ',' | ';' | ':' | '!' | '?' | '\'' | ']' | '}') => true,
                _ => false,
            };
            if !trim {
                break;
            }
            url = split(url, url.len() - 1).0;
        }
        let https = url.as_bytes().get(4).is_some_and(|c| c.eq_ignore_ascii_case(&b's'));
        let scheme_len = if https { 8 } else { 7 };
        if url.len() <= scheme_len {
            // "http://" alone is not a link; emit it as text and move on.
            let (scheme, after) = split(rest, start + scheme_len);
            out.push(Segment::Text(scheme));
            rest = after;
            continue;
        }
        if !before.is_empty() {
            out.push(Segment::Text(before));
        }
        out.push(match link(split(url, scheme_len).1, https) {
            Some(link) => Segment::Link(link),
            None => Segment::Text(url),
        });
        rest = split(tail, url.len()).1;
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

/// Splits at a char boundary; past the end (which the callers never ask for) gives `(s, "")`.
fn split(s: &str, at: usize) -> (&str, &str) {
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// `s` up to its first `sep` (an ASCII byte, so both sides are whole characters) and what
/// follows that `sep`, or `(s, None)` without one. The widget's one way to split text: a `str`
/// pattern (`split('.')`, `split_once(' ')`) brings a searcher and its iterators into the wasm.
pub(crate) fn cut(s: &str, sep: u8) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == sep) {
        Some(i) => (split(s, i).0, Some(split(s, i + 1).1)),
        None => (s, None),
    }
}

/// Where the next `http://` or `https://` (any case) starting a word is. A byte scan: a
/// substring searcher would cost more wasm than the rest of this module.
fn find_link_start(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let starts = |i: usize, p: &[u8]| b.get(i..i + p.len()).is_some_and(|t| t.eq_ignore_ascii_case(p));
    (0..b.len()).find(|&i| {
        let word_start = i == 0 || b.get(i - 1).is_some_and(|c| !c.is_ascii_alphanumeric());
        word_start && (starts(i, b"http://") || starts(i, b"https://"))
    })
}

/// The link for `after_scheme` (the URL after `http://` or `https://`), or `None` when its host
/// or port is not one a browser would take for what it looks like. Byte scans throughout: the
/// `str` pattern searchers cost more wasm than this whole module.
fn link(after_scheme: &str, https: bool) -> Option<Link> {
    // (Pushed one by one: a filter/collect is more iterator code in the wasm.)
    let mut clean = String::new();
    for c in after_scheme.chars() {
        if !is_bidi_control(c) {
            clean.push(c);
        }
    }
    let b = clean.as_bytes();
    // Browsers skip every `/` and `\` after an http(s) scheme, and end the host at the first
    // `/`, `\`, `?` or `#`.
    let start = b.iter().position(|&c| c != b'/' && c != b'\\').unwrap_or(b.len());
    let end = b
        .iter()
        .skip(start)
        .position(|&c| matches!(c, b'/' | b'\\' | b'?' | b'#'))
        .map_or(b.len(), |i| start + i);
    let (authority, path) = split(split(&clean, start).1, end - start);
    // Userinfo ends at the authority's last `@`: it is never shown.
    let at = authority.bytes().rposition(|c| c == b'@').map_or(0, |i| i + 1);
    let host_port = split(authority, at).1;
    let (host, port) = match host_port.bytes().rposition(|c| c == b':') {
        Some(i) => (split(host_port, i).0, split(host_port, i + 1).1),
        None => (host_port, ""),
    };
    if host.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let tld = split(host, host.bytes().rposition(|c| c == b'.').map_or(0, |i| i + 1)).1;
    let cyrillic_tld = tld.chars().any(|c| script(c) == Some(CYRILLIC));
    let mut ascii_host = false;
    let mut labels = Some(host);
    while let Some(rest) = labels {
        let (label, next) = cut(rest, b'.');
        labels = next;
        if !label.is_ascii() {
            ascii_host |= !readable(label, cyrillic_tld);
        } else if !label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return None;
        }
    }
    let mut rest = String::with_capacity(port.len() + 1 + path.len());
    if !port.is_empty() {
        rest.push(':');
        rest.push_str(port);
    }
    let mut in_path = true;
    for c in path.chars() {
        in_path &= !matches!(c, '?' | '#');
        rest.push(if in_path && c == '\\' { '/' } else { c });
    }
    let scheme = if https { "https://" } else { "http://" };
    Some(Link { scheme, host: host.to_ascii_lowercase(), ascii_host, rest })
}

const LATIN: u8 = 0;
const GREEK: u8 = 1;
const CYRILLIC: u8 = 2;
const HAN: u8 = 3;
const HIRAGANA: u8 = 4;
const KATAKANA: u8 = 5;
const HANGUL: u8 = 6;
/// The Indic scripts get one id per 128-character block from U+0900 (Devanagari) to U+0DFF
/// (Sinhala), from `INDIC` up.
const INDIC: u8 = 12;

/// Letters allowed in a host shown in Unicode, by script: inclusive ranges. Letters that look
/// like punctuation or like another Latin letter (`ı`, `ĸ`, `ſ`, the katakana middle dot) are
/// left out, so a label holding one is shown in punycode.
const SCRIPTS: &[(u16, u16, u8)] = &[
    (0xC0, 0xD6, LATIN),
    (0xD8, 0xF6, LATIN),
    (0xF8, 0x130, LATIN),
    (0x132, 0x137, LATIN),
    (0x139, 0x148, LATIN),
    (0x14A, 0x17E, LATIN),
    (0x218, 0x21B, LATIN),
    (0x1E00, 0x1EFF, LATIN),
    (0x386, 0x386, GREEK),
    (0x388, 0x3CE, GREEK),
    (0x400, 0x481, CYRILLIC),
    (0x48A, 0x52F, CYRILLIC),
    (0x531, 0x556, 7), // Armenian
    (0x561, 0x587, 7),
    (0x5D0, 0x5EA, 8), // Hebrew
    (0x620, 0x64A, 9), // Arabic
    (0x671, 0x6D3, 9),
    (0xE01, 0xE3A, 10), // Thai
    (0xE40, 0xE4E, 10),
    (0x10D0, 0x10FF, 11), // Georgian
    (0x3041, 0x309F, HIRAGANA),
    (0x30A1, 0x30FA, KATAKANA),
    (0x30FC, 0x30FE, KATAKANA),
    (0x3400, 0x4DBF, HAN),
    (0x4E00, 0x9FFF, HAN),
    (0xAC00, 0xD7A3, HANGUL),
];

/// The script of a non-ASCII letter allowed in a readable host, if it is one.
fn script(c: char) -> Option<u8> {
    let c = u32::from(c);
    if (0x900..=0xDFF).contains(&c) {
        // In 0..=9: the id fits a u8.
        return u8::try_from((c - 0x900) / 0x80).ok().map(|block| INDIC + block);
    }
    SCRIPTS.iter().find(|(lo, hi, _)| (u32::from(*lo)..=u32::from(*hi)).contains(&c)).map(|&(_, _, s)| s)
}

/// Cyrillic and Greek letters that look like Latin ones (after Chromium's list): a label made
/// only of these passes for Latin.
const LOOKALIKES: &str = "аысԁеԍһіюјӏорԛѕԝхуъЬҽпгѵѡАВЕКМНОРСТХЅІЈҮαγεικνορτυχωϲΑΒΕΖΗΙΚΜΝΟΡΤΥΧ";

/// Whether a non-ASCII label can be shown as it is: letters of one script (Latin may mix with
/// Chinese and Japanese, or with Chinese and Korean), digits and `-`, and not all Cyrillic or
/// Greek lookalikes of Latin letters (unless the top-level domain is Cyrillic).
fn readable(label: &str, cyrillic_tld: bool) -> bool {
    let mut scripts = 0u32;
    let mut lookalikes_only = true;
    for c in label.chars() {
        if c.is_ascii_digit() || c == '-' {
            continue;
        }
        let s = if c.is_ascii_alphabetic() {
            LATIN
        } else {
            match script(c) {
                Some(s) => s,
                None => return false,
            }
        };
        scripts |= 1 << s;
        // A scan, not `str::contains`: for a non-ASCII char that builds a substring searcher
        // (and pulls string-slicing panic machinery into the wasm).
        lookalikes_only &= LOOKALIKES.chars().any(|l| l == c);
    }
    let han = 1 << HAN;
    let japanese = 1 << LATIN | han | 1 << HIRAGANA | 1 << KATAKANA;
    let korean = 1 << LATIN | han | 1 << HANGUL;
    if scripts.count_ones() > 1 && scripts & !japanese != 0 && scripts & !korean != 0 {
        return false;
    }
    let cyrillic_lookalike = scripts == 1 << CYRILLIC && !cyrillic_tld;
    !(lookalikes_only && (cyrillic_lookalike || scripts == 1 << GREEK))
}

/// The bidi formatting characters: marks, embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::Segment::Text;
    use super::*;

    /// A link shown as it is (no punycode needed).
    fn plain(url: &str) -> Segment<'static> {
        let (scheme, rest) = url.split_at(url.find("://").expect("scheme") + 3);
        let scheme = if scheme == "https://" { "https://" } else { "http://" };
        let end = rest.find(['/', ':', '?', '#']).unwrap_or(rest.len());
        let (host, rest) = rest.split_at(end);
        Segment::Link(Link { scheme, host: host.into(), ascii_host: false, rest: rest.into() })
    }

    /// The one link in `text`: what it shows (before the browser's punycode) and whether its
    /// host is shown in punycode.
    fn shown(text: &str) -> Option<(String, bool)> {
        segments(text).into_iter().find_map(|s| match s {
            Segment::Link(l) => Some((format!("{}{}{}", l.scheme, l.host, l.rest), l.ascii_host)),
            Text(_) => None,
        })
    }

    fn as_is(url: &str) -> Option<(String, bool)> {
        Some((url.to_string(), false))
    }

    #[test]
    fn plain_text_is_one_segment() {
        assert_eq!(segments("hello <b>there</b>"), [Text("hello <b>there</b>")]);
        assert_eq!(segments(""), []);
    }

    #[test]
    fn finds_links_and_strips_trailing_punctuation() {
        assert_eq!(
            segments("see https://example.com/a?b=1, or http://x.io."),
            [
                Text("see "),
                plain("https://example.com/a?b=1"),
                Text(", or "),
                plain("http://x.io"),
                Text(".")
            ]
        );
        assert_eq!(
            segments("(https://en.wikipedia.org/wiki/Rust_(language))"),
            [Text("("), plain("https://en.wikipedia.org/wiki/Rust_(language)"), Text(")")]
        );
    }

    #[test]
    fn other_schemes_stay_text() {
        assert_eq!(segments("javascript:alert(1)"), [Text("javascript:alert(1)")]);
        assert_eq!(segments("xhttp://a.b"), [Text("xhttp://a.b")]);
        assert_eq!(segments("http:// nothing"), [Text("http://"), Text(" nothing")]);
    }

    #[test]
    fn link_stops_before_markup_characters() {
        assert_eq!(
            segments("https://a.io/x\"><img src=x onerror=alert(1)>"),
            [plain("https://a.io/x"), Text("\"><img src=x onerror=alert(1)>")]
        );
    }

    #[test]
    fn ordinary_links_are_shown_as_written() {
        let s = "a https://b.c/d e https://medium.com/@user/post?q=a@b#x h http://127.0.0.1:8080/x \
                 https://例子.中国/路径 http://host:8443";
        let joined: String = segments(s)
            .into_iter()
            .map(|seg| match seg {
                Text(t) => t.to_string(),
                Segment::Link(l) => {
                    assert!(!l.ascii_host, "{l:?}");
                    format!("{}{}{}", l.scheme, l.host, l.rest)
                }
            })
            .collect();
        assert_eq!(joined, s);
        for url in [
            "https://münchen.de/straße",
            "https://пример.рф/",
            "https://пример.com/",
            "https://ドメイン名例.jp",
        ] {
            assert_eq!(shown(url), as_is(url));
        }
        assert_eq!(shown("HTTPS://Example.COM/Path"), as_is("https://example.com/Path"));
        assert_eq!(shown("https://host:/x"), as_is("https://host/x"), "an empty port is no port");
    }

    #[test]
    fn userinfo_is_never_shown_as_the_host() {
        assert_eq!(shown("https://paypal.com@evil.example"), as_is("https://evil.example"));
        assert_eq!(shown("https://paypal.com:443@evil.example/login"), as_is("https://evil.example/login"));
        assert_eq!(shown("https://a@paypal.com@evil.example/"), as_is("https://evil.example/"));
        // After the host, `@` is path: the host is still the first thing shown.
        assert_eq!(shown("https://evil.example/@paypal.com"), as_is("https://evil.example/@paypal.com"));
        // A backslash ends the host for browsers: shown as the `/` they read.
        assert_eq!(shown("https://evil.example\\@paypal.com"), as_is("https://evil.example/@paypal.com"));
        assert_eq!(shown("https:///\\evil.example/x"), as_is("https://evil.example/x"));
        assert_eq!(
            shown("https://e.example/a?b=\\c"),
            as_is("https://e.example/a?b=\\c"),
            "a query keeps `\\`"
        );
    }

    #[test]
    fn mixed_script_and_lookalike_hosts_are_shown_in_punycode() {
        let punycode = |url: &str| Some((url.to_string(), true));
        // Cyrillic р, а, у, р, а and a Latin l.
        assert_eq!(shown("https://раураl.com/login"), punycode("https://раураl.com/login"));
        assert_eq!(shown("https://раураl.example.com"), punycode("https://раураl.example.com"));
        // All Cyrillic, all lookalikes of Latin letters; Greek ones too.
        assert_eq!(shown("https://раура.com/"), punycode("https://раура.com/"));
        assert_eq!(shown("https://ναι.com/"), punycode("https://ναι.com/"));
        // Letters that pass for another letter, invisible characters, symbols, other scripts
        // mixed in.
        for url in [
            "https://lınkedin.com",
            "https://apple\u{200b}.com",
            "https://ｐａｙｐａｌ.com",
            "https://pay€.com",
            "https://exаmple例.com",
        ] {
            assert_eq!(shown(url), punycode(url), "{url}");
        }
    }

    #[test]
    fn bidi_controls_are_removed_from_links() {
        assert_eq!(
            shown("https://evil.example/\u{202e}fdp.exe\u{202c}?a=\u{2067}b\u{2069}#\u{200f}"),
            as_is("https://evil.example/fdp.exe?a=b#")
        );
        // In the host too: the link goes where it shows.
        assert_eq!(shown("https://paypal\u{202e}.com\u{061c}/"), as_is("https://paypal.com/"));
    }

    #[test]
    fn hosts_and_ports_browsers_would_read_otherwise_stay_text() {
        for url in [
            "https://%65vil.example/",
            "https://evil.example%2epaypal.com/",
            "https://a!b.example/",
            "https://host:80x/",
            "https://host:123456/",
            "https://[::1]/",
            "https://[::1]:8080/",
            "https://@/",
            "https://:80/",
        ] {
            assert_eq!(segments(url), [Text(url)], "{url}");
        }
    }
}
