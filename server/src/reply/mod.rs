//! The reply engine: what answers a visitor's message.
//!
//! The hub calls a [`ReplyEngine`] for every newly stored `user` message (never for a
//! duplicate re-send), shows `typing {role: "bot"}` while it works, and stores the answer as a
//! `bot` message through the store so that it gets a `seq` and reaches every tab. Engines are
//! async and object-safe: [`rules`] (the default), [`webhook`] (the customer's own HTTP
//! endpoint) and [`llm`] (an OpenAI-compatible chat server, streamed) all sit behind it.
//!
//! When a backend fails (HTTP error, timeout, malformed answer) the hub logs it, counts it in
//! `natter_reply_failures_total` and stores [`ReplyEngine::fallback`] instead, so a visitor is
//! never left without an answer unless the operator chose `--reply-fallback silent`.

pub mod llm;
pub mod rules;
pub mod webhook;

use std::sync::Arc;

use natter_protocol::{Json, Role};
use thiserror::Error;

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
}

/// Why an engine could not answer. The hub logs it and stores [`ReplyEngine::fallback`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The backend (webhook, LLM) failed or timed out.
    #[error("reply backend failed: {0}")]
    Backend(String),
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
            Fallback::Rules(rules) => {
                let (category, text) = rules.answer(&request.message, request.page());
                Some(Reply { text, category: Some(category.unwrap_or("fallback").to_string()) })
            }
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
}

/// Cuts `text` to at most `max` characters (not bytes), ending with "…" when it was cut, at
/// the last word boundary when there is one in the last fifth, so a reply does not stop
/// mid-word.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let cut: String = text.chars().take(keep).collect();
    let floor = keep - keep / 5;
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if cut[..i].chars().count() >= floor => cut[..i].trim_end().to_string(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_and_prefers_word_ends() {
        assert_eq!(clip("  short  ", 10), "short");
        assert_eq!(clip("héllo wörld", 11), "héllo wörld");
        assert_eq!(clip("héllo wörld again", 12), "héllo wörld…");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("ab cdefghijkl", 8), "ab cdef…", "a far-away space is not used");
        assert!(clip(&"x".repeat(50), 10).chars().count() <= 10);
    }
}
