//! The write path: a visitor's message into their support conversation, a member's message
//! into a room. Both are checked ([`admission`](super::admission)), appended to the store
//! (which numbers and de-duplicates them) and acknowledged; delivery comes back through the
//! fan-out like every other stored message. A visitor's message also updates the
//! conversation's inbox record, which says whether the conversation was handed to a person.

use std::sync::Arc;

use natter_protocol::{
    Ack, ConversationMessage, Member, RawJson, Role, RoomMessage, ServerMessage, UserSend,
};

use super::inbox::Visit;
use super::pace::{Entry, FIRST_WAIT};
use super::{Hub, Refusal};
use crate::address::AddrKey;
use crate::clock::now_rfc3339;
use crate::identity::Principal;
use crate::metrics::{Limit, Metrics};
use crate::store::{Appended, ConversationKey, Draft};

/// What storing a message costs on top of the bytes of its fields, charged to its address's
/// `--address-store-bytes-per-day`: the field names and quoting of its JSON, its row's other
/// columns and its share of the indexes.
pub(crate) const STORED_OVERHEAD: usize = 256;

/// The bytes `message` takes in the store, as charged to its sender's address
/// (`--address-store-bytes-per-day`): every field's length plus [`STORED_OVERHEAD`]. Counted, not
/// serialised, so it costs nothing.
fn stored_size(message: &ServerMessage) -> usize {
    let fields = match message {
        ServerMessage::User(m) => {
            json_len(&m.message)
                + json_len(&m.id)
                + m.timestamp.len()
                + json_len(&m.session_id)
                + m.context.as_ref().map_or(0, RawJson::len)
                + m.author.as_deref().map_or(0, json_len)
        }
        ServerMessage::Chat(m) => {
            json_len(&m.message)
                + json_len(&m.id)
                + m.timestamp.len()
                + json_len(&m.room)
                + json_len(&m.from.id)
                + m.from.name.as_deref().map_or(0, json_len)
        }
        _ => 0,
    };
    fields + STORED_OVERHEAD
}

/// The bytes `s` takes inside a JSON string as the hub stores it (serde_json's escapes): `"`,
/// `\` and the short-escaped controls take two, other controls six (`\u001f`), the rest one per
/// byte. A text of 4,000 `"` is 8,000 bytes stored, and is charged so.
fn json_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

impl Hub {
    /// Stores a visitor's message in their conversation and starts the reply. Shared by the
    /// WebSocket and the HTTP fallback; `page` is the connection's page, used as context when the
    /// message brings none, and `browser` its `User-Agent` (shown to operators). A signed-in
    /// user's message carries their verified name as `author`. The bot answers unless the
    /// conversation was handed to a person and an operator is online. `addr` is the sender's
    /// client address, whose share of the reply engine the reply takes and whose
    /// `--address-conversations-per-hour` a first message draws on (`rate_limited` past it).
    pub(crate) async fn post_user(
        &self,
        who: &Principal,
        send: UserSend,
        page: Option<&str>,
        browser: Option<&str>,
        addr: AddrKey,
    ) -> Result<Ack, Refusal> {
        let conversation = &who.conversation;
        self.check_message(&send.id, &send.message)?;
        self.check_context(&send.id, send.context.as_ref())?;
        self.rate_limit(conversation).map_err(|r| r.with_id(send.id.clone()))?;
        let key = ConversationKey::Session(conversation.clone());
        {
            // Make sure the conversation is held, so its ring sees the fan-out of this message.
            let mut state = self.lock();
            let conv = self.conversation(&mut state, &key).map_err(|r| r.with_id(send.id.clone()))?;
            if who.issued {
                // A session issued with this request has nothing stored: no read to find out.
                conv.ring.known_empty();
            }
        }
        // Sessions are free to make: a message that would open a conversation (none stored
        // yet; a resend of the first message finds it stored) is one of the address's
        // openings, so one address cannot bury honest visitors' conversations in the inbox.
        // Whether it would is the ring's to say once the conversation is warm (or new with this
        // request); a cold one costs one read of its newest seq, only while the budget or the
        // pace below is on.
        // A first message also takes a turn in the hub-wide pace of new conversations
        // (`--new-conversations-*`, see `hub/pace.rs`), after its address has paid, so that an
        // address past its budget takes no one's turn. It waits for it at most
        // `pace::FIRST_WAIT`, then is stored and acknowledged anyway, and its follow-up (inbox
        // record, the bot's answer) waits for the turn instead: nobody is refused for it.
        let paced = self.shared.new_conversations.clone();
        let budgeted = self.shared.config.address_conversations_per_hour > 0;
        let mut ticket = None;
        if (budgeted || paced.is_some())
            && self.last_seq(&key).await.map_err(|r| r.with_id(send.id.clone()))? == 0
        {
            if budgeted {
                self.charge_conversation_opening(addr).map_err(|r| r.with_id(send.id.clone()))?;
            }
            match paced.map(|pace| pace.enter(addr)) {
                None | Some(Entry::Now) => {}
                Some(Entry::Full) => self.shared.metrics.limited(Limit::NewConversations),
                Some(Entry::Wait(mut waiting)) => {
                    if !waiting.within(FIRST_WAIT).await {
                        ticket = Some(waiting);
                    }
                }
            }
        }
        let id = send.id.unwrap_or_else(|| self.shared.ids.next());
        let context = send.context.or_else(|| page.map(|p| RawJson::from(serde_json::json!({ "page": p }))));
        let stored = ConversationMessage {
            id: id.clone(),
            seq: 0,
            message: send.message,
            timestamp: now_rfc3339(),
            session_id: conversation.to_string(),
            context,
            author: who.user.as_ref().and_then(|u| u.name.clone()),
            category: None,
            reply_to: None,
        };
        let draft = Draft { id: id.clone(), message: ServerMessage::User(stored.clone()), operator: None };
        let appended = self.append_from_client(&key, draft, addr, self.reply_allowance()).await?;
        if !appended.duplicate {
            let stored = ConversationMessage { seq: appended.seq, ..stored };
            let visit = Visit {
                visitor: who.member_id.to_string(),
                browser: browser.map(str::to_string),
                user: who.welcome().user,
            };
            let (hub, conversation, verified) = (self.clone(), conversation.clone(), who.user.clone());
            // Off the acknowledgement's path: the record is written, then the bot answers unless
            // the conversation was handed to a person (until it is closed) and one is online to
            // answer. With nobody online the visitor is never left in silence: the bot answers,
            // and says a person will follow up (see `hub/reply.rs`).
            // It takes turns with the follow-ups of other addresses (see `hub/turns.rs`), so a
            // burst of messages from one address waits behind its own; a new conversation's
            // first whose pace turn has not come yet waits for it before that.
            tokio::spawn(async move {
                if let Some(ticket) = ticket {
                    ticket.wait().await;
                }
                let turn = hub.shared.turns.take(addr).await;
                let record =
                    hub.record_activity(&conversation, &stored, Role::User, Vec::new(), Some(&visit)).await;
                if !(record.is_some_and(|r| r.handoff) && hub.available()) {
                    hub.reply_to(key, stored, verified, addr, turn).await;
                }
            });
        }
        Ok(Ack { id, seq: appended.seq, room: None, duplicate: appended.duplicate })
    }

    /// Stores a room message from `member`, whose own conversation is `conversation` (for the
    /// rate limit), sent from client address `addr` (whose bytes stored a day it is charged to).
    pub(crate) async fn post_chat(
        &self,
        conversation: &Arc<str>,
        room: &Arc<str>,
        member: &Member,
        id: Option<String>,
        text: String,
        addr: AddrKey,
    ) -> Result<Ack, Refusal> {
        self.check_message(&id, &text)?;
        self.rate_limit(conversation).map_err(|r| r.with_id(id.clone()))?;
        let id = id.unwrap_or_else(|| self.shared.ids.next());
        let key = ConversationKey::Room(room.clone());
        let message = ServerMessage::Chat(RoomMessage {
            room: room.to_string(),
            id: id.clone(),
            seq: 0,
            message: text,
            timestamp: now_rfc3339(),
            from: member.clone(),
        });
        let appended =
            self.append_from_client(&key, Draft { id: id.clone(), message, operator: None }, addr, 0).await?;
        Ok(Ack { id, seq: appended.seq, room: Some(room.to_string()), duplicate: appended.duplicate })
    }

    /// What a visitor message is charged on top of its own size for the answer it brings: the
    /// bot's reply is stored too (the visitor's doing, though it cannot be refused once the
    /// message is stored), so its likely size — `--reply-max-chars` (at most `--max-text`) bytes
    /// and a row — is paid for up front. A message an operator answers instead pays it too.
    fn reply_allowance(&self) -> usize {
        let config = &self.shared.config;
        config.reply_max_chars.min(config.max_text) + STORED_OVERHEAD
    }

    /// Stores a message a client sent from `addr` and counts it as new or as a re-sent
    /// duplicate. Refused while the disk is below `--min-free-disk`. Its size and `extra` bytes
    /// (what storing it brings, such as the bot's answer) are charged to the address's bytes
    /// stored a day first (`--address-store-bytes-per-day`; a re-sent duplicate is charged too,
    /// as the charge comes before the store says it is one). A store failure becomes a refusal carrying the
    /// message's id, so the client resends it; it is counted where the refusal leaves the hub,
    /// not here.
    async fn append_from_client(
        &self,
        key: &ConversationKey,
        draft: Draft,
        addr: AddrKey,
        extra: usize,
    ) -> Result<Appended, Refusal> {
        let id = draft.id.clone();
        self.check_disk().map_err(|r| r.with_id(Some(id.clone())))?;
        self.charge_store(addr, stored_size(&draft.message) + extra)
            .map_err(|r| r.with_id(Some(id.clone())))?;
        let appended =
            self.shared.store.append(key, draft).await.map_err(|e| Refusal::from(e).with_id(Some(id)))?;
        let counter = if appended.duplicate {
            &self.shared.metrics.duplicates
        } else {
            &self.shared.metrics.messages_in
        };
        Metrics::add(counter, 1);
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::{Member, RoomMessage};

    use super::*;

    #[test]
    fn json_len_counts_escapes_as_serde_json_writes_them() {
        for text in [
            "plain",
            "",
            "\"quoted\"",
            "back\\slash",
            "tab\tnew\nline\r",
            "bell\u{7}",
            "ünïcødé ✓",
            "\u{1f}\u{8}\u{c}",
        ] {
            let written = serde_json::to_string(text).expect("json");
            assert_eq!(json_len(text), written.len() - 2, "{text:?} is {written}");
        }
    }

    #[test]
    fn a_message_of_quotes_is_charged_what_it_takes_stored() {
        let chat = |text: &str| {
            ServerMessage::Chat(RoomMessage {
                room: "r".into(),
                id: "c-1".into(),
                seq: 1,
                message: text.into(),
                timestamp: "2026-11-30T00:00:00.000Z".into(),
                from: Member { id: "u_1".into(), name: None, verified: false },
            })
        };
        let plain = stored_size(&chat(&"a".repeat(4000)));
        let quotes = stored_size(&chat(&"\"".repeat(4000)));
        assert_eq!(quotes - plain, 4000, "each quote is two bytes stored");
        let stored = serde_json::to_string(&chat(&"\"".repeat(4000))).expect("json").len();
        assert!(quotes >= stored, "charged {quotes} for {stored} bytes of frame");
    }
}
