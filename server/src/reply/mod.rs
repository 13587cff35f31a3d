//! The reply engine: what answers a visitor's message.
//!
//! The hub calls a [`ReplyEngine`] for every newly stored `user` message (never for a
//! duplicate re-send), shows `typing {role: "bot"}` while it works, and stores the answer as a
//! `bot` message through the store so that it gets a `seq` and reaches every tab. Engines are
//! async and object-safe: [`rules`] (the default), [`webhook`] (the customer's own HTTP
//! endpoint) and [`llm`] (an OpenAI-compatible chat server, streamed) all sit behind it.
//!
//! When a backend fails (HTTP error, timeout, malformed answer) the hub counts it in
//! `natter_reply_failures_total`, logs it (`failure_log`: the first failure at once, the rest
//! as one summary line a minute) and stores [`ReplyEngine::fallback`] instead, so a visitor is
//! never left without an answer unless the operator chose `--reply-fallback silent`.
//!
//! Whatever an engine answers, the hub clips it with [`clip`] to `--max-text` characters (the
//! limit a visitor's own message has), and `gate` bounds how many engine calls run at once.

pub mod llm;
pub mod prompt;
pub mod rules;
pub mod sse;
pub mod webhook;

pub(crate) mod failure_log;
pub(crate) mod gate;

use std::borrow::Cow;
use std::sync::Arc;

use natter_protocol::{Json, Role};
use thiserror::Error;
use unicode_segmentation::UnicodeSegmentation as _;

use crate::store::BoxFuture;

pub use llm::LlmEngine;
pub use rules::RulesEngine;
pub use webhook::WebhookEngine;

/// What the engine is asked to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyRequest {
    /// The session (conversation) the message belongs to.
    pub session_id: String,
    /// The visitor message's id (so a webhook can de-duplicate deliveries).
    pub message_id: String,
    /// The visitor's message text.
    pub message: String,
    /// The page context sent with the message (`{"page": "/pricing"}`), or built from the
    /// connection's `page` parameter. Written by the visitor's browser: unverified.
    pub context: Option<Json>,
    /// The signed-in user who wrote the message, from an identity token the hub verified; `None`
    /// for an anonymous visitor. Unlike `context`, this can be trusted.
    pub identity: Option<Identity>,
    /// Earlier messages of the conversation, oldest first, without this one: at most
    /// [`ReplyEngine::history_window`] of them (empty for engines that want none).
    pub history: Vec<Turn>,
    /// Whether an operator is online now: a reply that asks for a person can say whether one
    /// comes now or will follow up.
    pub operators_online: bool,
}

/// A signed-in user as their verified identity token describes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The user's id at the site (the token's `sub`).
    pub id: String,
    /// Their name (`name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their e-mail address (`email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their avatar URL (`avatar`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// One earlier message of the conversation, as a reply engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Who wrote it: [`Role::User`] (the visitor), [`Role::Bot`] or [`Role::Agent`].
    pub role: Role,
    /// Its text.
    pub text: String,
}

impl ReplyRequest {
    /// The `page` of the context, when it has one.
    pub fn page(&self) -> Option<&str> {
        self.context.as_ref()?.get("page")?.as_str()
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text to store as the `bot` message.
    pub text: String,
    /// Why this answer was chosen (the rule category), shown as `category` on the wire.
    pub category: Option<String>,
    /// The answer asks for a person: the conversation is marked for operators and handed over
    /// (until it is closed, the bot falls silent in it whenever an operator is online). While
    /// nobody is online the bot keeps answering, and the hub says once that a person will follow
    /// up (see [`ReplyEngine::follow_up`]).
    pub handoff: bool,
    /// The text itself tells the visitor that a person will follow up (a handoff rule's
    /// `away_reply`), so the hub adds no [`ReplyEngine::follow_up`] message of its own.
    pub says_follow_up: bool,
}

/// What the bot says when it answers in a conversation handed to a person while nobody is
/// online, when the rules file sets no `follow_up` text of its own.
pub const DEFAULT_FOLLOW_UP: &str = "Nobody from our team is online right now. A person will follow up here \
as soon as they're back; until then, I'll keep answering.";

/// Why an engine could not answer. The hub logs it and stores [`ReplyEngine::fallback`]. Each
/// message names the backend and its URL; [`ReplyError::kind`] sorts failures for the log
/// summary.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The backend could not be reached, or the connection broke before the answer was whole.
    #[error("{0}")]
    Unreachable(String),
    /// The backend answered an HTTP error status.
    #[error("{0}")]
    Status(String),
    /// The answer is not in the backend's format, is empty, or is over a size limit.
    #[error("{0}")]
    Malformed(String),
    /// The backend was silent for longer than `--reply-idle-timeout`, or the whole answer took
    /// longer than `--reply-timeout`.
    #[error("{0}")]
    Timeout(String),
}

impl ReplyError {
    /// A short name of the kind of failure (`unreachable`, `http error`, `malformed`,
    /// `timeout`), as the log summary counts them.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplyError::Unreachable(_) => "unreachable",
            ReplyError::Status(_) => "http error",
            ReplyError::Malformed(_) => "malformed",
            ReplyError::Timeout(_) => "timeout",
        }
    }
}

/// Something that answers visitors' messages.
pub trait ReplyEngine: Send + Sync + 'static {
    /// Answers `request`; `Ok(None)` means "stay silent" (an operator will answer).
    fn reply<'a>(&'a self, request: &'a ReplyRequest) -> BoxFuture<'a, Result<Option<Reply>, ReplyError>>;

    /// The author name shown on replies (`author` on the wire).
    fn author(&self) -> Option<&str> {
        None
    }

    /// How many earlier messages of the conversation the engine wants in
    /// [`ReplyRequest::history`]; 0 (the default) spares the hub reading them.
    fn history_window(&self) -> usize {
        0
    }

    /// The answer to store when [`ReplyEngine::reply`] failed; `None` stays silent.
    fn fallback(&self, _request: &ReplyRequest) -> Option<Reply> {
        None
    }

    /// Said once (as a `bot` message with category `follow_up`) when the bot answers in a
    /// conversation handed to a person while no operator is online: that a person will follow
    /// up. The rules file's `follow_up` text, else [`DEFAULT_FOLLOW_UP`].
    fn follow_up(&self) -> &str {
        DEFAULT_FOLLOW_UP
    }
}

/// What a network backend answers with when it fails (`--reply-fallback`).
#[derive(Debug, Clone)]
pub enum Fallback {
    /// The rules engine's answer (a matching rule's, else its `fallback` text).
    Rules(Arc<RulesEngine>),
    /// No answer: typing stops and nothing is stored (an operator is expected to step in).
    Silent,
}

impl Fallback {
    /// The fallback answer for `request`.
    pub fn answer(&self, request: &ReplyRequest) -> Option<Reply> {
        match self {
            Fallback::Rules(rules) => rules.fallback(request),
            Fallback::Silent => None,
        }
    }

    /// The bot's display name: the rules file's `author`, which names the bot whatever answers.
    pub fn author(&self) -> Option<&str> {
        match self {
            Fallback::Rules(rules) => rules.author(),
            Fallback::Silent => None,
        }
    }

    /// The "a person will follow up" text: the rules file's, which speaks for the bot whatever
    /// answers, else [`DEFAULT_FOLLOW_UP`].
    pub fn follow_up(&self) -> &str {
        match self {
            Fallback::Rules(rules) => rules.follow_up(),
            Fallback::Silent => DEFAULT_FOLLOW_UP,
        }
    }
}

/// A backend's reply made fit to show: control characters dropped but tabs and newlines (a NUL,
/// the escape sequences that recolour a terminal showing a log or an export), line and paragraph
/// separators made newlines, and bidirectional embeddings and overrides dropped (they could make
/// the text after them read backwards). A reply comes from a service the hub does not control, or
/// from a model a visitor may have talked into writing anything.
pub fn tidy(text: &str) -> Cow<'_, str> {
    let unfit = |c: char| {
        (c.is_control() && !matches!(c, '\t' | '\n'))
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}')
    };
    if !text.chars().any(unfit) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\r' => {}
            c if unfit(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Cuts `text` (trimmed) to at most `max` characters — Unicode scalar values, the unit
/// `--max-text` counts — ending with "…" when it was cut. The cut falls between grapheme
/// clusters, so no character is split and neither is an emoji sequence, a flag or a letter with
/// its accents; and at the last word boundary when there is one in the last fifth, so a reply
/// does not stop mid-word. `max == 0` gives an empty string.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    // Room for the "…".
    let keep = max - 1;
    let mut end = 0;
    let mut chars = 0;
    for (i, g) in text.grapheme_indices(true) {
        let n = g.chars().count();
        if chars + n > keep {
            break;
        }
        chars += n;
        end = i + g.len();
    }
    let cut = &text[..end];
    let floor = keep - keep / 5;
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if cut[..i].chars().count() >= floor => cut[..i].trim_end(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_drops_what_a_reply_should_not_carry() {
        assert!(matches!(tidy("plain\ttext\nover lines"), Cow::Borrowed(_)));
        assert_eq!(tidy("a\0b\u{1b}[31mred\u{7}"), "ab[31mred");
        assert_eq!(tidy("one\u{2028}two\u{2029}three\r\n"), "one\ntwo\nthree\n");
        assert_eq!(tidy("safe \u{202E}gpj.exe\u{202C} ok"), "safe gpj.exe ok");
        assert_eq!(tidy("c1 \u{85}\u{9B}31m"), "c1 31m");
        assert_eq!(tidy("שלום 👩\u{200D}💻"), "שלום 👩\u{200D}💻");
    }

    #[test]
    fn clip_counts_characters_and_prefers_word_ends() {
        assert_eq!(clip("  short  ", 10), "short");
        assert_eq!(clip("héllo wörld", 11), "héllo wörld");
        assert_eq!(clip("héllo wörld again", 12), "héllo wörld…");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("ab cdefghijkl", 8), "ab cdef…", "a far-away space is not used");
        assert!(clip(&"x".repeat(50), 10).chars().count() <= 10);
        assert_eq!(clip("abc", 0), "");
    }

    #[test]
    fn clip_never_splits_a_grapheme() {
        // A family emoji is 7 scalar values joined by ZWJ; a flag is two regional indicators;
        // "é" here is "e" plus a combining acute accent.
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        let text = format!("ab{family}cd");
        let bounds: Vec<usize> = text.grapheme_indices(true).map(|(i, _)| i).collect();
        for max in 1..text.chars().count() {
            let cut = clip(&text, max);
            assert!(cut.chars().count() <= max, "{max}: {cut:?}");
            let kept = cut.strip_suffix('…').expect("cut text ends with …");
            assert!(text.starts_with(kept) && bounds.contains(&kept.len()), "{max}: {cut:?}");
        }
        assert_eq!(clip(&text, 9), "ab…", "the family is kept whole or not at all");
        assert_eq!(clip(&text, 10), format!("ab{family}…"));
        assert_eq!(clip("🇫🇷🇩🇪🇮🇹", 4), "🇫🇷…");
        assert_eq!(clip("cafe\u{301}s!", 5), "caf…", "the accent stays with its letter");
        assert_eq!(clip("cafe\u{301}s!", 6), "cafe\u{301}…");
    }
}
