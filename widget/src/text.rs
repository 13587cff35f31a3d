//! Splitting message text into plain runs and http(s) links.
//!
//! The DOM layer turns each piece into a text node or an `<a>` built with `createElement`, so no
//! message text is ever parsed as HTML. Only `http://` and `https://` become links: a
//! `javascript:` or `data:` URL stays inert text.

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Plain text.
    Text(&'a str),
    /// An http(s) URL to render as an anchor.
    Link(&'a str),
}

/// Splits `text` into text and link segments, in order, covering every byte of it.
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
        let scheme_len =
            if url.as_bytes().get(4).is_some_and(|c| c.eq_ignore_ascii_case(&b's')) { 8 } else { 7 };
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
        out.push(Segment::Link(url));
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

#[cfg(test)]
mod tests {
    use super::Segment::{Link, Text};
    use super::*;

    #[test]
    fn plain_text_is_one_segment() {
        assert_eq!(segments("hello <b>there</b>"), [Text("hello <b>there</b>")]);
        assert_eq!(segments(""), []);
    }

    #[test]
    fn finds_links_and_strips_trailing_punctuation() {
        assert_eq!(
            segments("see https://example.com/a?b=1, or http://x.io."),
            [Text("see "), Link("https://example.com/a?b=1"), Text(", or "), Link("http://x.io"), Text(".")]
        );
        assert_eq!(
            segments("(https://en.wikipedia.org/wiki/Rust_(language))"),
            [Text("("), Link("https://en.wikipedia.org/wiki/Rust_(language)"), Text(")")]
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
            [Link("https://a.io/x"), Text("\"><img src=x onerror=alert(1)>")]
        );
    }

    #[test]
    fn segments_cover_the_whole_text() {
        let s = "a https://b.c/d e HTTPS://F.G h";
        let joined: String = segments(s)
            .into_iter()
            .map(|seg| match seg {
                Text(t) | Link(t) => t,
            })
            .collect();
        assert_eq!(joined, s);
    }
}
