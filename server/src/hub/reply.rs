//! Running the reply engine for a visitor's stored message: the bot's typing indicator on
//! (renewed while a slow answer streams), the engine asked with the conversation so far, its
//! answer (or the fallback) stored as a `bot` message, the indicator off.

use std::time::Duration;

use natter_protocol::{ConversationMessage, Role, ServerMessage, TypingNotice};
use tokio::time::Instant;

use super::Hub;
use crate::clock::now_rfc3339;
use crate::metrics::Metrics;
use crate::reply::{ReplyRequest, Turn};
use crate::store::{ConversationKey, Draft};

/// How often the bot's `typing` indicator is renewed while a reply takes long (the widget
/// hides one after 20 s without news).
const TYPING_RENEW: Duration = Duration::from_secs(8);

fn bot_typing(active: bool) -> ServerMessage {
    ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active })
}

impl Hub {
    /// Answers a stored visitor message in the background.
    pub(super) fn spawn_reply(&self, key: ConversationKey, user: ConversationMessage) {
        let hub = self.clone();
        tokio::spawn(async move { hub.reply_to(key, user).await });
    }

    async fn reply_to(&self, key: ConversationKey, user: ConversationMessage) {
        self.publish(key.clone(), bot_typing(true), None).await;
        let started = Instant::now();
        let engine = self.shared.reply.clone();
        let history = self.reply_history(&key, &user.id, engine.history_window()).await;
        let request = ReplyRequest {
            session_id: user.session_id.clone(),
            message_id: user.id.clone(),
            message: user.message.clone(),
            // The stored context is JSON text (bounded by --max-context); engines get it parsed.
            context: user.context.as_ref().and_then(|c| c.parse().ok()),
            history,
        };
        // A streamed LLM answer can take longer than the widget shows a typing indicator
        // without news, so the indicator is renewed while the engine works.
        let answer = {
            let work = engine.reply(&request);
            tokio::pin!(work);
            let mut renew = tokio::time::interval_at(started + TYPING_RENEW, TYPING_RENEW);
            loop {
                tokio::select! {
                    answer = &mut work => break answer,
                    _ = renew.tick() => self.publish(key.clone(), bot_typing(true), None).await,
                }
            }
        };
        let answer = answer.unwrap_or_else(|e| {
            Metrics::add(&self.shared.metrics.reply_failures, 1);
            let fallback = engine.fallback(&request);
            let then = if fallback.is_some() { "answering with the fallback" } else { "no reply" };
            // The session id is a credential: log its public id instead.
            let visitor = crate::ids::member_id(&user.session_id);
            tracing::warn!(error = %e, %visitor, "reply engine failed; {then}");
            fallback
        });
        tokio::time::sleep_until(started + self.shared.config.reply_delay).await;
        if let Some(reply) = answer {
            let id = self.shared.ids.next();
            let bot = ConversationMessage {
                id: id.clone(),
                seq: 0,
                message: reply.text,
                timestamp: now_rfc3339(),
                session_id: user.session_id.clone(),
                context: None,
                author: engine.author().map(str::to_string),
                category: reply.category,
                reply_to: Some(user.id.clone()),
            };
            match self.shared.store.append(&key, Draft { id, message: ServerMessage::Bot(bot) }).await {
                Ok(_) => Metrics::add(&self.shared.metrics.replies, 1),
                Err(e) => tracing::warn!(error = %e, "storing the bot reply failed"),
            }
        }
        self.publish(key, bot_typing(false), None).await;
    }

    /// Up to `window` messages of `key` before the message `current`, oldest first, for a reply
    /// engine that wants the conversation so far. A store failure only costs the context.
    async fn reply_history(&self, key: &ConversationKey, current: &str, window: usize) -> Vec<Turn> {
        if window == 0 {
            return Vec::new();
        }
        let page = match self.shared.store.recent(key, window.saturating_add(1)).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reading the conversation for the reply engine failed");
                return Vec::new();
            }
        };
        turns(page.messages, current, window)
    }
}

/// The conversation's messages as reply-engine turns: stored user, bot and agent messages
/// other than `current`, the newest `window` of them, oldest first.
fn turns(messages: Vec<ServerMessage>, current: &str, window: usize) -> Vec<Turn> {
    let mut turns: Vec<Turn> = messages
        .into_iter()
        .filter_map(|m| {
            let (role, m) = match m {
                ServerMessage::User(m) => (Role::User, m),
                ServerMessage::Bot(m) => (Role::Bot, m),
                ServerMessage::Agent(m) => (Role::Agent, m),
                _ => return None,
            };
            (m.id != current).then_some(Turn { role, text: m.message })
        })
        .collect();
    let extra = turns.len().saturating_sub(window);
    turns.drain(..extra);
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: fn(ConversationMessage) -> ServerMessage, id: &str) -> ServerMessage {
        kind(ConversationMessage { id: id.into(), message: format!("text {id}"), ..Default::default() })
    }

    #[test]
    fn turns_skip_the_current_message_and_keep_the_newest() {
        let messages = vec![
            msg(ServerMessage::User, "u1"),
            msg(ServerMessage::Bot, "b1"),
            msg(ServerMessage::Agent, "a1"),
            msg(ServerMessage::User, "u2"),
        ];
        let t = turns(messages.clone(), "u2", 2);
        assert_eq!(
            t.iter().map(|t| (t.role, t.text.as_str())).collect::<Vec<_>>(),
            [(Role::Bot, "text b1"), (Role::Agent, "text a1")]
        );
        assert_eq!(turns(messages, "u2", 10).len(), 3);
    }
}
