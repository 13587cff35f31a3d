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

/// Whether `c` may not appear in a display name (see [`validate_room_name`]).
pub fn is_forbidden_in_names(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

fn check_name(name: &str, what: &'static str, max: usize) -> Result<(), IdError> {
    if name.trim().is_empty() {
        return Err(IdError::Empty { what });
    }
    let len = name.chars().count();
    if len > max {
        return Err(IdError::TooManyChars { what, len, max });
    }
    match name.char_indices().find(|&(_, c)| is_forbidden_in_names(c)) {
        Some((at, found)) => Err(IdError::BadChar {
            what,
            found,
            at,
            allowed: "characters that are not control, bidirectional-control or line-separator characters",
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
    fn messages_name_the_bad_value() {
        let e = validate_session_id("bad id").unwrap_err().to_string();
        assert!(e.contains("' '") && e.contains("byte 3"), "{e}");
    }
}
