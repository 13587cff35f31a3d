//! Identifier and display-name rules shared by the hub (which refuses bad ones with a 400 /
//! `error` frame) and the widget (which never makes a bad one).

use thiserror::Error;

/// Longest accepted session id, in bytes. The widget's ids are 32 hex digits; the original widget's
/// `session-xxx` style and UUIDs fit easily.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Longest accepted room id, in bytes.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// Longest accepted message id, in bytes.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// Longest room display name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 128;

/// Longest member display name (`join`'s `name`), in characters.
pub const MAX_MEMBER_NAME_CHARS: usize = 64;

/// Largest room `metadata`, in bytes of JSON.
pub const MAX_ROOM_METADATA_BYTES: usize = 8192;

/// Why an identifier or a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of id.
        what: &'static str,
    },
    /// The id is longer than allowed.
    #[error("{what} is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Which kind of id.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name is longer than allowed.
    #[error("{what} is {len} characters long; the limit is {max}")]
    TooManyChars {
        /// Which kind of name.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The id holds a character outside the allowed set.
    #[error("{what} contains {found:?} at byte {at}; only {allowed} are allowed")]
    BadChar {
        /// Which kind of id.
        what: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
        /// Description of the allowed set.
        allowed: &'static str,
    },
}

/// Checks a session id: 1 to [`MAX_SESSION_ID_LEN`] bytes of printable ASCII without spaces
/// (`!` to `~`).
pub fn validate_session_id(id: &str) -> Result<(), IdError> {
    check(id, "session id", MAX_SESSION_ID_LEN, "printable ASCII characters without spaces", |c| {
        c.is_ascii_graphic()
    })
}

/// Checks a room id: 1 to [`MAX_ROOM_ID_LEN`] bytes of ASCII letters, digits, `-`, `_`, `.`
/// and `:` — safe in URLs, logs and Redis keys.
pub fn validate_room_id(id: &str) -> Result<(), IdError> {
    check(id, "room id", MAX_ROOM_ID_LEN, "letters, digits, '-', '_', '.' and ':'", |c| {
        c.is_ascii() && is_room_id_byte(c as u8)
    })
}

/// Whether [`validate_room_id`] accepts `id`, for a caller that needs no error (the widget
/// writes its own message, and a yes or no costs it no error texts).
pub fn is_room_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ROOM_ID_LEN && id.bytes().all(is_room_id_byte)
}

/// A byte of a room id's alphabet (any byte of a non-ASCII character is not).
fn is_room_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

/// Checks a client-made message id: 1 to [`MAX_MESSAGE_ID_LEN`] bytes of printable ASCII
/// without spaces (the session id's alphabet, so ids are safe in logs and storage keys).
pub fn validate_message_id(id: &str) -> Result<(), IdError> {
    check(id, "message id", MAX_MESSAGE_ID_LEN, "printable ASCII characters without spaces", |c| {
        c.is_ascii_graphic()
    })
}

/// Checks a room's display name: 1 to [`MAX_ROOM_NAME_CHARS`] characters, none of them a
/// control character (NUL, newlines, escape sequences), a bidirectional control (which could
/// make text after it read backwards) or a line separator.
pub fn validate_room_name(name: &str) -> Result<(), IdError> {
    check_name(name, "room name", MAX_ROOM_NAME_CHARS)
}

/// Checks a member's display name by the same rules, up to [`MAX_MEMBER_NAME_CHARS`].
pub fn validate_member_name(name: &str) -> Result<(), IdError> {
    check_name(name, "name", MAX_MEMBER_NAME_CHARS)
}

/// Whether `c` may not appear in a display name (see [`validate_room_name`]): a control
/// character, a bidirectional control, a line separator, or a character that shows nothing —
/// zero-width and filler characters (the soft hyphen, U+200B, the Hangul fillers), invisible
/// operators, tags — with which "Ada" and "Ada" followed by a zero-width space look the same,
/// or a name looks empty.
pub fn is_forbidden_in_names(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Most combining marks a display name may stack on one character: enough for any script's
/// accents (Vietnamese stacks two), not for text that runs over the lines around it.
pub const MAX_COMBINING_MARKS: usize = 4;

/// Where a display name breaks the character rules of [`validate_room_name`] (its length and
/// blankness aside): the byte offset and character of the first forbidden character
/// ([`is_forbidden_in_names`]), of a zero-width joiner or non-joiner that does not stand between
/// two characters (they join emoji and write Persian, and show nothing alone), or of a combining
/// mark past [`MAX_COMBINING_MARKS`] in a row. `None` when there is none.
pub fn first_bad_in_name(name: &str) -> Option<(usize, char)> {
    let shows = |c: char| !c.is_whitespace() && !matches!(c, '\u{200C}' | '\u{200D}');
    let mut marks = 0;
    let mut before: Option<char> = None;
    let mut chars = name.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        marks = if is_combining_mark(c) { marks + 1 } else { 0 };
        let joiner = matches!(c, '\u{200C}' | '\u{200D}');
        let alone = joiner && !(before.is_some_and(shows) && chars.peek().is_some_and(|&(_, n)| shows(n)));
        if is_forbidden_in_names(c) || alone || marks > MAX_COMBINING_MARKS {
            return Some((at, c));
        }
        before = Some(c);
    }
    None
}

/// The blocks of combining marks that stack on the letter before them.
fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{0483}'..='\u{0489}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

fn check_name(name: &str, what: &'static str, max: usize) -> Result<(), IdError> {
    if name.trim().is_empty() {
        return Err(IdError::Empty { what });
    }
    let len = name.chars().count();
    if len > max {
        return Err(IdError::TooManyChars { what, len, max });
    }
    match first_bad_in_name(name) {
        Some((at, found)) => Err(IdError::BadChar {
            what,
            found,
            at,
            allowed: "visible characters: no control, bidirectional-control, line-separator or invisible character, \
                      a joiner only between two characters, at most 4 combining marks in a row",
        }),
        None => Ok(()),
    }
}

fn check(
    id: &str,
    what: &'static str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { what });
    }
    if id.len() > max {
        return Err(IdError::TooLong { what, len: id.len(), max });
    }
    match id.char_indices().find(|&(_, c)| !ok(c)) {
        Some((at, found)) => Err(IdError::BadChar { what, found, at, allowed }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        assert!(validate_session_id("session-xxx").is_ok());
        assert!(validate_session_id("0123456789abcdef0123456789abcdef").is_ok());
        assert_eq!(validate_session_id(""), Err(IdError::Empty { what: "session id" }));
        assert!(matches!(validate_session_id(&"a".repeat(129)), Err(IdError::TooLong { len: 129, .. })));
        assert!(validate_session_id(&"a".repeat(128)).is_ok());
        assert!(matches!(validate_session_id("a b"), Err(IdError::BadChar { found: ' ', at: 1, .. })));
        assert!(matches!(validate_session_id("a\u{7}"), Err(IdError::BadChar { .. })));
        assert!(matches!(validate_session_id("é"), Err(IdError::BadChar { .. })));
    }

    #[test]
    fn room_ids() {
        assert!(validate_room_id("general").is_ok());
        assert!(validate_room_id("team:design.v2_a-b").is_ok());
        assert!(validate_room_id("a/b").is_err());
        assert!(validate_room_id("").is_err());
        assert!(validate_room_id(&"r".repeat(65)).is_err());
    }

    #[test]
    fn the_yes_or_no_room_id_check_agrees_with_the_validation() {
        let long = "r".repeat(64);
        let too_long = "r".repeat(65);
        for id in
            ["general", "team:design.v2_a-b", "a/b", "", "a b", "é", "room\u{0}", "Z9", &long, &too_long]
        {
            assert_eq!(is_room_id(id), validate_room_id(id).is_ok(), "{id:?}");
        }
    }

    #[test]
    fn message_ids() {
        assert!(validate_message_id("c-01").is_ok());
        assert!(validate_message_id(&"m".repeat(128)).is_ok());
        assert!(matches!(validate_message_id(&"m".repeat(129)), Err(IdError::TooLong { len: 129, .. })));
        assert_eq!(validate_message_id(""), Err(IdError::Empty { what: "message id" }));
        assert!(matches!(validate_message_id("a b"), Err(IdError::BadChar { found: ' ', .. })));
    }

    #[test]
    fn display_names() {
        assert!(validate_room_name("Design review ✏️").is_ok());
        assert!(validate_member_name("Zoë 👨‍👩‍👧").is_ok(), "emoji sequences keep their joiners");
        assert_eq!(validate_room_name(" "), Err(IdError::Empty { what: "room name" }));
        for bad in ["a\0b", "two\nlines", "\u{1b}[31mred", "evil\u{202E}gpj.exe", "x\u{2066}y", "a\u{2028}b"]
        {
            assert!(matches!(validate_room_name(bad), Err(IdError::BadChar { .. })), "{bad:?}");
        }
        assert!(matches!(
            validate_room_name(&"é".repeat(129)),
            Err(IdError::TooManyChars { len: 129, max: 128, .. })
        ));
        assert!(validate_room_name(&"é".repeat(128)).is_ok(), "characters, not bytes");
        assert!(matches!(validate_member_name(&"n".repeat(65)), Err(IdError::TooManyChars { .. })));
    }

    #[test]
    fn names_that_show_nothing_or_hide_a_difference_are_refused() {
        // Each refused at the character named (byte offset, character).
        for (name, at, found) in [
            ("Ada\u{200B}", 3, '\u{200B}'),
            ("\u{3164}", 0, '\u{3164}'),
            ("Ad\u{00AD}a", 2, '\u{00AD}'),
            ("a\u{E0041}\u{E007F}", 1, '\u{E0041}'),
            ("Ada\u{2060}", 3, '\u{2060}'),
            // A joiner with nothing to join on one side.
            ("Ada\u{200D}", 3, '\u{200D}'),
            ("\u{200C}Ada", 0, '\u{200C}'),
            ("a \u{200D}b", 2, '\u{200D}'),
            ("a\u{200D}\u{200D}b", 1, '\u{200D}'),
            // The fifth combining mark in a row.
            ("e\u{301}\u{301}\u{301}\u{301}\u{301}", 9, '\u{301}'),
        ] {
            assert_eq!(first_bad_in_name(name), Some((at, found)), "{name:?}");
            assert!(
                matches!(validate_member_name(name), Err(IdError::BadChar { found: f, at: a, .. }) if f == found && a == at),
                "{name:?}"
            );
        }
        // Joiners between two characters, and a few marks, are names' own.
        for good in [
            "Ada 👩\u{200D}💻",
            "🏳\u{FE0F}\u{200D}🌈",
            "\u{0645}\u{06CC}\u{200C}\u{062E}",
            "Nguye\u{0302}\u{0303}n",
            "e\u{301}\u{301}\u{301}\u{301}",
        ] {
            assert_eq!(validate_member_name(good), Ok(()), "{good:?}");
        }
        let e = validate_member_name("Ada\u{200B}").unwrap_err().to_string();
        assert!(e.contains("invisible"), "{e}");
    }

    #[test]
    fn messages_name_the_bad_value() {
        let e = validate_session_id("bad id").unwrap_err().to_string();
        assert!(e.contains("' '") && e.contains("byte 3"), "{e}");
    }
}
