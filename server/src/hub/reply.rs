//! Running the reply engine for a visitor's stored message: the bot's typing indicator on
//! (renewed while a slow answer streams), a call slot from the hub's [`CallGate`] (or the
//! fallback at once when every slot is taken and the queue is full, or when the sender's client
//! address holds its quarter of the slots and the queue already; an address calls in at most a
//! quarter of the slots at once, its other messages waiting their turn), the engine asked with the
//! conversation so far under one deadline for the whole reply (`--reply-timeout`), its answer
//! (or the fallback) clipped to `--max-text` and stored as a `bot` message, the indicator off.
//!
//! # Handoff
//! A conversation is handed to a person when an operator answers in it, or when a reply asks for
//! one (a handoff rule, a webhook's `"handoff": true`, the LLM's marker). The bot is silent in
//! it only while at least one operator is online (on any hub); with nobody online the bot keeps
//! answering, and the first time it does so in that stretch it says that a person will follow
//! up ([`ReplyEngine::follow_up`], the rules file's `follow_up` text), unless its answer said
//! so already (a handoff rule's `away_reply`). The stretch ends when an operator answers or the
//! conversation is closed; the record's `follow_up_seq`, claimed atomically in the store, makes
//! sure two answers racing say it once.
//!
//! [`CallGate`]: crate::reply::gate::CallGate
//! [`ReplyEngine::follow_up`]: crate::reply::ReplyEngine::follow_up

use std::sync::Arc;
use std::time::Duration;

use natter_protocol::inbox::ConversationSummary;
use natter_protocol::{ConversationMessage, Role, ServerMessage, TypingNotice};
use tokio::time::Instant;

use super::turns::HeldTurn;
use super::Hub;
use crate::address::AddrKey;
use crate::clock::now_rfc3339;
use crate::identity::VerifiedUser;
use crate::metrics::Metrics;
use crate::reply::{clip, tidy, Identity, Reply, ReplyError, ReplyRequest, Turn};
use crate::store::inbox::RecordChange;
use crate::store::{ConversationKey, Draft};

/// The `category` of the bot's "a person will follow up" message.
const FOLLOW_UP_CATEGORY: &str = "follow_up";

/// How often the bot's `typing` indicator is renewed while a reply takes long (the widget
/// hides one after 20 s without news).
const TYPING_RENEW: Duration = Duration::from_secs(8);

fn bot_typing(active: bool) -> ServerMessage {
    ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active })
}

/// What became of asking the engine.
enum Outcome {
    /// The engine answered (`None`: it chose to stay silent).
    Answered(Option<Reply>),
    /// The engine failed, or the reply's deadline passed.
    Failed(ReplyError),
    /// Not asked: every call slot was taken and the queue full.
    Shed,
}

impl Hub {
    /// Asks the engine and stores its answer (see the module docs). `turn` is the sender's
    /// address's turn (see `hub/turns.rs`): given back while the engine is asked (that waits
    /// on the network, bounded by the reply gate), taken again to store the answer.
    pub(super) async fn reply_to(
        &self,
        key: ConversationKey,
        user: ConversationMessage,
        verified: Option<Arc<VerifiedUser>>,
        addr: AddrKey,
        turn: HeldTurn,
    ) {
        self.publish(key.clone(), bot_typing(true), None).await;
        let started = Instant::now();
        let config = &self.shared.config;
        let engine = self.shared.reply.clone();
        // The conversation so far is read once a call slot is held (below): a reply that is shed
        // is answered by the fallback, which needs none of it, so a flood of messages past the
        // reply gate costs no history read each.
        let request = ReplyRequest {
            session_id: user.session_id.clone(),
            message_id: user.id.clone(),
            message: user.message.clone(),
            // The stored context is JSON text (bounded by --max-context); engines get it parsed.
            context: user.context.as_ref().and_then(|c| c.parse().ok()),
            identity: verified.as_deref().map(|u| Identity {
                id: u.sub.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                avatar: u.avatar.clone(),
            }),
            history: Vec::new(),
            operators_online: self.available(),
        };
        drop(turn);
        let outcome = {
            let work = async {
                // The sender's address first: its quarter of the places, then one of its
                // turns to call (a quarter of the call slots), then a call slot.
                let Some(place) = self.hold_reply(addr) else { return Outcome::Shed };
                let Some(_turn) = place.call_turn().await else { return Outcome::Shed };
                let Ok(_slot) = self.shared.reply_gate.enter().await else {
                    return Outcome::Shed;
                };
                let history = self.reply_history(&key, &user.id, engine.history_window()).await;
                let asked = ReplyRequest { history, ..request.clone() };
                match engine.reply(&asked).await {
                    Ok(answer) => Outcome::Answered(answer),
                    Err(e) => Outcome::Failed(e),
                }
            };
            tokio::pin!(work);
            // One deadline for the whole reply, however the backend paces itself: keep-alive
            // comments or a slow drip of chunks cannot stretch it. Dropping `work` at the
            // deadline drops the call and closes its connection.
            let expired = tokio::time::sleep_until(started + config.reply_timeout);
            tokio::pin!(expired);
            // A streamed LLM answer can take longer than the widget shows a typing indicator
            // without news, so the indicator is renewed while the engine works.
            let mut renew = tokio::time::interval_at(started + TYPING_RENEW, TYPING_RENEW);
            loop {
                tokio::select! {
                    // An answer that is ready wins over a deadline that passed meanwhile.
                    biased;
                    outcome = &mut work => break outcome,
                    () = &mut expired => break Outcome::Failed(ReplyError::Timeout(format!(
                        "no complete answer within {:?} (--reply-timeout)",
                        config.reply_timeout
                    ))),
                    _ = renew.tick() => self.publish(key.clone(), bot_typing(true), None).await,
                }
            }
        };
        // The session id is a credential: logs name its public id instead.
        let visitor = || self.shared.identity.member_of_session(&user.session_id);
        let failures = &self.shared.reply_failures;
        let answer = match outcome {
            Outcome::Answered(answer) => {
                tokio::time::sleep_until(started + config.reply_delay).await;
                answer
            }
            Outcome::Failed(e) => {
                Metrics::add(&self.shared.metrics.reply_failures, 1);
                failures.failed(e.kind(), &e.to_string(), &visitor());
                tokio::time::sleep_until(started + config.reply_delay).await;
                engine.fallback(&request)
            }
            Outcome::Shed => {
                // At once: this visitor gets the fallback without waiting for anything.
                Metrics::add(&self.shared.metrics.reply_shed, 1);
                let why = format!(
                    "{} reply calls in flight and {} waiting (--reply-concurrency, --reply-queue)",
                    config.reply_concurrency, config.reply_queue
                );
                failures.failed("busy", &why, &visitor());
                engine.fallback(&request)
            }
        };
        // Whatever answered, the bot's message is held to the limit a visitor's has, without
        // the control characters and direction overrides a visitor's may not carry.
        let answer = answer.map(|r| Reply { text: clip(&tidy(&r.text), config.max_text), ..r });
        let _turn = self.shared.turns.take(addr).await;
        self.conclude(&key, &user, answer).await;
        self.publish(key, bot_typing(false), None).await;
    }

    /// Stores the answer (if it has text), records a request for a person, and says that a
    /// person will follow up when the conversation is handed over, nobody is online and that
    /// has not been said yet in this stretch (see the module docs).
    async fn conclude(&self, key: &ConversationKey, user: &ConversationMessage, answer: Option<Reply>) {
        let away = !self.available();
        let mut changes = Vec::new();
        if answer.as_ref().is_some_and(|r| r.handoff) {
            changes.extend([RecordChange::WantsHuman, RecordChange::Handoff { on: true }]);
        }
        if away {
            // A no-op unless the conversation is (now) handed over; claimed for this answer.
            changes.push(RecordChange::FollowUp { seq: user.seq });
        }
        let said = answer.as_ref().is_some_and(|r| r.says_follow_up);
        let record = match answer {
            Some(reply) if !reply.text.is_empty() => self.store_bot(key, user, reply, changes).await,
            // No text (the engine chose silence, or a webhook only asked for a person): the
            // record still learns of it, and a visitor with nobody to answer hears so.
            _ if !changes.is_empty() => {
                let id = self.shared.identity.conversation_id(&user.session_id);
                self.change_record(&id, changes).await.ok()
            }
            _ => None,
        };
        let first = record.is_some_and(|r| r.handoff && r.follow_up_seq == user.seq);
        if away && first && !said {
            let notice = Reply {
                text: clip(self.shared.reply.follow_up(), self.shared.config.max_text),
                category: Some(FOLLOW_UP_CATEGORY.to_string()),
                handoff: false,
                says_follow_up: true,
            };
            self.store_bot(key, user, notice, Vec::new()).await;
        }
    }

    /// Stores `reply` as the bot's answer to `user`, and records it in the conversation's inbox
    /// record with `extra` changes; returns the record after them.
    async fn store_bot(
        &self,
        key: &ConversationKey,
        user: &ConversationMessage,
        reply: Reply,
        extra: Vec<RecordChange>,
    ) -> Option<ConversationSummary> {
        let id = self.shared.ids.next();
        let mut bot = ConversationMessage {
            id: id.clone(),
            seq: 0,
            message: reply.text,
            timestamp: now_rfc3339(),
            session_id: user.session_id.clone(),
            context: None,
            author: self.shared.reply.author().map(str::to_string),
            category: reply.category,
            reply_to: Some(user.id.clone()),
        };
        match self
            .shared
            .store
            .append(key, Draft { id, message: ServerMessage::Bot(bot.clone()), operator: None })
            .await
        {
            Ok(appended) => {
                Metrics::add(&self.shared.metrics.replies, 1);
                bot.seq = appended.seq;
                self.record_activity(&user.session_id, &bot, Role::Bot, extra, None).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "storing the bot reply failed");
                None
            }
        }
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
        match page.parsed() {
            Ok(messages) => turns(messages, current, window),
            Err(e) => {
                tracing::warn!(error = %e, "reading the conversation for the reply engine failed");
                Vec::new()
            }
        }
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
