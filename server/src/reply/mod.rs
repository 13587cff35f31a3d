//! The reply engine: what answers a visitor's message.
//!
//! The hub calls a [`ReplyEngine`] for every newly stored `user` message (never for a
//! duplicate re-send), shows `typing {role: "bot"}` while it works, and stores the answer as a
//! `bot` message through the store so that it gets a `seq` and reaches every tab. Engines are
//! async and object-safe so that a webhook or an LLM backend can be added beside [`rules`]
//! without touching the hub.

pub mod rules;

use natter_protocol::Json;
use thiserror::Error;

use crate::store::BoxFuture;

pub use rules::RulesEngine;

/// What the engine is asked to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyRequest {
    /// The session (conversation) the message belongs to.
    pub session_id: String,
    /// The visitor's message text.
    pub message: String,
    /// The page context sent with the message (`{"page": "/pricing"}`), or built from the
    /// connection's `page` parameter.
    pub context: Option<Json>,
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

/// Why an engine could not answer. The hub logs it and stores nothing.
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
}
