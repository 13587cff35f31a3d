//! The operators' side of the hub: conversation records kept up to date as messages are
//! stored, agent replies, notes, status and assignment, the handoff from the bot, the live
//! feed of every operator connection, and operator availability pushed to visitors.
//!
//! Operator connections are not subscribers of conversations: they sit in their own table
//! (`State::operators`) and receive a feed built here from the store's delivery stream, with
//! every session id replaced by the conversation's public id (`c_…`): an operator's screen, URL
//! bar or log never holds a visitor's credential. Frames for operators that are not stored
//! messages (a record changed, a note, availability) travel as [`Event::Inbox`] through the
//! store, so with Redis every hub's operators see them.
//!
//! Availability: each hub counts its own operator connections, records the count in the store
//! with a lease (refreshed every [`AVAILABILITY_EVERY`]) and adds the other hubs' counts. When
//! the answer to "is anyone online" changes, every visitor connection here gets an
//! `availability` frame. While nobody is online the hub also asks the store whether any
//! operator account exists: without one the frame says `online: null` (the widget shows no
//! line), so adding the first operator or removing the last is seen within that interval.
//!
//! Availability also decides the handoff: the bot is silent in a handed-off conversation only
//! while an operator is online (see `hub/reply.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use natter_protocol::inbox::{
    ConversationState, ConversationSummary, InboxEvent, Note, OperatorProfile, VisitorContext,
};
use natter_protocol::{
    Ack, Availability, ConversationMessage, ConversationStatus, ErrorCode, Json, Member, Role, ServerMessage,
    TypingNotice, UserProfile,
};

use super::outbox::Offered;
use super::{encode, Hub, Outbox, Refusal};
use crate::clock::{now_rfc3339, unix_ms};
use crate::metrics::Metrics;
use crate::store::inbox::{InboxStore, OperatorRecord, RecordChange, PREVIEW_CHARS};
use crate::store::{ConversationKey, Draft, Event};

/// How often a hub renews its operators-online lease and re-reads the other hubs' counts.
pub(crate) const AVAILABILITY_EVERY: Duration = Duration::from_secs(5);

/// How long a hub's operators-online count lasts without renewal: a hub that dies stops
/// counting within this.
const ONLINE_LEASE: Duration = Duration::from_secs(15);

/// An operator connection.
#[derive(Debug, Clone)]
pub(super) struct OperatorConnection {
    outbox: Outbox,
    /// The member id their typing carries (`op_` + 16 hex digits, keyed: it does not give away
    /// the sign-in name), so their own feed skips it.
    member_id: Arc<str>,
}

fn now_ms() -> u64 {
    u64::try_from(unix_ms(SystemTime::now())).unwrap_or(0)
}

/// The fields of a visitor's `context` the inbox shows (whatever JSON each holds; only strings
/// are shown). Every other field is skipped unread.
#[derive(Debug, Default, serde::Deserialize)]
struct Shown {
    page: Option<Json>,
    title: Option<Json>,
}

/// What a visitor's message tells the inbox about them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Visit {
    /// Their public member id.
    pub(crate) visitor: String,
    /// The connection's `User-Agent`.
    pub(crate) browser: Option<String>,
    /// Their verified identity.
    pub(crate) user: Option<UserProfile>,
}

impl Hub {
    /// The inbox's storage, or the refusal every inbox request gets when the engine keeps none.
    pub(crate) fn inbox_store(&self) -> Result<&dyn InboxStore, Refusal> {
        self.shared.store.inbox().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Unavailable,
                "this hub's storage engine keeps no operator inbox; run it with SQLite (--db) or Redis (--redis-url)",
            )
        })
    }

    /// Publishes a frame for every hub's operators.
    async fn publish_inbox(&self, event: InboxEvent) {
        if let Err(e) = self.shared.store.publish_ephemeral(Event::Inbox(event)).await {
            tracing::warn!(error = %e, "inbox publish failed");
        }
    }

    /// Records a stored message of `conversation` in its record and tells every operator;
    /// returns the record (none when the engine keeps no inbox or the write failed: the
    /// message itself is stored either way).
    pub(super) async fn record_activity(
        &self,
        conversation: &str,
        message: &ConversationMessage,
        role: Role,
        mut extra: Vec<RecordChange>,
        visit: Option<&Visit>,
    ) -> Option<ConversationSummary> {
        let store = self.shared.store.inbox()?;
        let id = self.shared.identity.conversation_id(conversation);
        let mut changes = vec![RecordChange::Activity {
            seq: message.seq,
            at_ms: now_ms(),
            role,
            preview: message.message.chars().take(PREVIEW_CHARS).collect(),
        }];
        if let Some(visit) = visit {
            // The context is kept as text; only the two fields the inbox shows are read out of
            // it (each a string, else nothing), never the whole tree.
            let shown = message.context.as_ref().and_then(|c| c.parse::<Shown>().ok()).unwrap_or_default();
            let text = |field: Option<Json>| {
                field.as_ref().and_then(Json::as_str).map(|s| s.chars().take(512).collect::<String>())
            };
            changes.push(RecordChange::Context(VisitorContext {
                page: text(shown.page),
                title: text(shown.title),
                browser: visit.browser.as_ref().map(|b| b.chars().take(256).collect()),
                user: visit.user.clone(),
            }));
        }
        changes.append(&mut extra);
        let visitor =
            visit.map_or_else(|| self.shared.identity.member_of_session(conversation), |v| v.visitor.clone());
        match store.change_conversation(&id, conversation, &visitor, now_ms(), changes).await {
            Ok(record) => {
                self.publish_inbox(InboxEvent::Conversation { conversation: record.clone() }).await;
                Some(record)
            }
            Err(e) => {
                tracing::warn!(error = %e, "updating the conversation's inbox record failed");
                None
            }
        }
    }

    /// The session conversation of the public id `id`, and its record.
    pub(crate) async fn inbox_conversation(
        &self,
        id: &str,
    ) -> Result<(ConversationSummary, Arc<str>), Refusal> {
        let store = self.inbox_store()?;
        match store.conversation(id).await? {
            Some((record, conversation)) => Ok((record, conversation.into())),
            None => Err(Refusal::new(ErrorCode::InvalidMessage, format!("no conversation {id:?}")).missing()),
        }
    }

    /// Changes a conversation's record (status, assignment, read) and tells every operator; a
    /// status change also tells the visitor's widget.
    pub(crate) async fn change_record(
        &self,
        id: &str,
        changes: Vec<RecordChange>,
    ) -> Result<ConversationSummary, Refusal> {
        let (before, conversation) = self.inbox_conversation(id).await?;
        let store = self.inbox_store()?;
        let record = store.update_conversation(id, changes).await?.ok_or_else(|| {
            Refusal::new(ErrorCode::InvalidMessage, format!("no conversation {id:?}")).missing()
        })?;
        if record.status != before.status {
            let status = ServerMessage::ConversationStatus(ConversationStatus {
                status: record.status,
                timestamp: now_rfc3339(),
            });
            self.publish(ConversationKey::Session(conversation), status, None).await;
        }
        self.publish_inbox(InboxEvent::Conversation { conversation: record.clone() }).await;
        Ok(record)
    }

    /// Stores an operator's reply as an `agent` message with their display name: the bot falls
    /// silent in this conversation until it is closed, and an unassigned conversation becomes
    /// theirs.
    pub(crate) async fn post_agent(
        &self,
        operator: &OperatorRecord,
        id: &str,
        msg_id: Option<String>,
        text: String,
    ) -> Result<Ack, Refusal> {
        self.check_text_of(&msg_id, &text, "the reply (`text`)")?;
        let (record, conversation) = self.inbox_conversation(id).await?;
        let key = ConversationKey::Session(conversation.clone());
        let msg_id = msg_id.unwrap_or_else(|| self.shared.ids.next());
        let mut agent = ConversationMessage {
            id: msg_id.clone(),
            seq: 0,
            message: text,
            timestamp: now_rfc3339(),
            session_id: conversation.to_string(),
            context: None,
            author: Some(operator.display_name.clone()),
            category: None,
            reply_to: None,
        };
        let appended = self
            .shared
            .store
            .append(
                &key,
                Draft {
                    id: msg_id.clone(),
                    message: ServerMessage::Agent(agent.clone()),
                    operator: Some(operator.name.clone()),
                },
            )
            .await
            .map_err(|e| Refusal::from(e).with_id(Some(msg_id.clone())))?;
        if !appended.duplicate {
            Metrics::add(&self.shared.metrics.agent_replies, 1);
            agent.seq = appended.seq;
            let mut extra = vec![RecordChange::Handoff { on: true }, RecordChange::Read];
            if record.assignee.is_none() {
                extra.push(RecordChange::Assignee { assignee: Some(operator.name.clone()) });
            }
            self.record_activity(&conversation, &agent, Role::Agent, extra, None).await;
        }
        Ok(Ack { id: msg_id, seq: appended.seq, room: None, duplicate: appended.duplicate })
    }

    /// A page of `key`'s history for the inbox: up to `limit` messages before seq `before`
    /// (the newest without it), oldest first.
    pub(crate) async fn history_page(
        &self,
        key: &ConversationKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<crate::store::HistoryPage, Refusal> {
        let store = &self.shared.store;
        Ok(match before {
            None => store.recent(key, limit).await?,
            Some(before) => {
                let first = before.saturating_sub(u64::try_from(limit).unwrap_or(u64::MAX)).max(1);
                let n = usize::try_from(before.saturating_sub(first)).unwrap_or(0);
                if n == 0 {
                    let mut page = store.recent(key, 1).await?;
                    page.messages.clear();
                    page
                } else {
                    store.history(key, first - 1, n).await?
                }
            }
        })
    }

    /// Checks an operator's text like a visitor's (not blank, at most `--max-text`); `what`
    /// names it in the refusal ("the canned reply (`text`)").
    pub(crate) fn check_text(&self, text: &str, what: &str) -> Result<(), Refusal> {
        self.check_text_of(&None, text, what)
    }

    /// Adds a private note (stored with the conversation's record, sent to operators only).
    pub(crate) async fn add_note(
        &self,
        operator: &OperatorRecord,
        id: &str,
        text: String,
    ) -> Result<Note, Refusal> {
        self.check_text(&text, "the note (`text`)")?;
        self.inbox_conversation(id).await?;
        let note =
            Note { id: self.shared.ids.next(), author: operator.name.clone(), text, created_ms: now_ms() };
        self.inbox_store()?.add_note(id, note.clone()).await?;
        self.publish_inbox(InboxEvent::Note { conversation: id.to_string(), note: note.clone() }).await;
        Ok(note)
    }

    /// An operator typing in conversation `id`: the visitor sees `typing {role: "agent"}`.
    pub(crate) async fn operator_typing(
        &self,
        operator: &OperatorProfile,
        id: &str,
        active: bool,
    ) -> Result<(), Refusal> {
        let (_, conversation) = self.inbox_conversation(id).await?;
        let member = self.identity().member_of_operator(&operator.name);
        let notice = ServerMessage::Typing(TypingNotice {
            room: None,
            role: Role::Agent,
            from: Some(Member {
                id: member.clone(),
                name: Some(operator.display_name.clone()),
                verified: true,
            }),
            active,
        });
        self.publish(ConversationKey::Session(conversation), notice, Some(member)).await;
        Ok(())
    }

    /// Registers an operator connection for the live feed; returns how many operators are
    /// online now (on every hub).
    pub(crate) async fn attach_operator(&self, outbox: &Outbox, operator: &OperatorProfile) -> u32 {
        {
            let mut state = self.lock();
            state.operators.insert(
                outbox.id,
                OperatorConnection {
                    outbox: outbox.clone(),
                    member_id: self.identity().member_of_operator(&operator.name).into(),
                },
            );
        }
        self.operators_changed().await
    }

    /// Removes an operator connection.
    pub(crate) async fn detach_operator(&self, outbox_id: u64) {
        let removed = self.lock().operators.remove(&outbox_id).is_some();
        if removed {
            self.operators_changed().await;
        }
    }

    /// This hub's operator count changed: record it, tell every hub's operators, push the
    /// availability to visitors here if it changed. Returns the count online everywhere.
    async fn operators_changed(&self) -> u32 {
        let online = self.refresh_availability().await;
        self.publish_inbox(InboxEvent::Availability { online }).await;
        online
    }

    /// Renews this hub's operators-online lease, reads the other hubs' counts (and, while
    /// nobody is online, whether any operator account exists), and pushes `availability` to
    /// every visitor here when what they are shown changed. Returns the total online.
    pub(super) async fn refresh_availability(&self) -> u32 {
        // Operators, not their connections: one with the inbox open in three tabs is one.
        let local = {
            let state = self.lock();
            let people: std::collections::HashSet<&str> =
                state.operators.values().map(|c| &*c.member_id).collect();
            u32::try_from(people.len()).unwrap_or(u32::MAX)
        };
        let lease = u64::try_from(ONLINE_LEASE.as_millis()).unwrap_or(u64::MAX);
        let (elsewhere, exist) = match self.shared.store.inbox() {
            Some(store) => {
                if let Err(e) = store.set_online(local, lease).await {
                    tracing::warn!(error = %e, "recording operators online failed");
                }
                let elsewhere = store.online_elsewhere().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading operators online failed");
                    0
                });
                // Someone online has an account; only an empty inbox needs the store asked.
                let exist = if local.saturating_add(elsewhere) > 0 {
                    true
                } else {
                    store.has_operators().await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "reading whether operators exist failed");
                        self.lock().operators_exist
                    })
                };
                (elsewhere, exist)
            }
            None => (0, false),
        };
        let online = local.saturating_add(elsewhere);
        let shown = {
            let mut state = self.lock();
            let was = shown(&state);
            state.available = online > 0;
            state.operators_exist = exist;
            let now = shown(&state);
            (was != now).then_some(now)
        };
        if let Some(shown) = shown {
            self.push_availability(shown);
        }
        online
    }

    /// Works availability out once before the hub serves, so the first visitors are told the
    /// truth (whether operators exist, whether one is online) rather than a default.
    pub(crate) async fn learn_availability(&self) {
        if self.shared.store.inbox().is_some() {
            self.refresh_availability().await;
        }
    }

    /// Whether an operator is online (as last worked out): the bot is silent in a handed-off
    /// conversation only while this holds.
    pub(crate) fn available(&self) -> bool {
        self.lock().available
    }

    /// Queues `availability` to every visitor connection of this hub.
    fn push_availability(&self, online: Option<bool>) {
        let frame = encode(&ServerMessage::Availability(Availability { online }));
        let state = self.lock();
        for (key, conv) in &state.conversations {
            if matches!(key, ConversationKey::Session(_)) {
                for sub in conv.subscribers.values() {
                    sub.outbox.offer(frame.clone());
                }
            }
        }
    }

    /// Queues what a visitor's widget shows in its header and log on connect: whether anyone is
    /// online, and that the conversation was closed (when it was). A conversation of a session
    /// issued with this connection (`fresh`) has no record yet: it is not looked up.
    pub(crate) async fn greet_visitor(&self, conversation: &str, outbox: &Outbox, fresh: bool) {
        let Some(store) = self.shared.store.inbox() else { return };
        let online = shown(&self.lock());
        outbox.send(encode(&ServerMessage::Availability(Availability { online })));
        if fresh {
            return;
        }
        let id = self.shared.identity.conversation_id(conversation);
        if let Ok(Some((record, _))) = store.conversation(&id).await {
            if record.status == ConversationState::Closed {
                let status = ConversationStatus {
                    status: ConversationState::Closed,
                    timestamp: crate::clock::rfc3339_at(
                        SystemTime::UNIX_EPOCH + Duration::from_millis(record.last_activity_ms),
                    ),
                };
                outbox.send(encode(&ServerMessage::ConversationStatus(status)));
            }
        }
    }

    /// The fan-out's share for operators: a stored support-conversation message, or a typing
    /// notice in one, becomes a feed frame for every operator connection (but the one typing).
    pub(super) fn feed_operators(&self, key: &ConversationKey, message: &ServerMessage, from: Option<&str>) {
        let ConversationKey::Session(conversation) = key else { return };
        if self.lock().operators.is_empty() {
            return;
        }
        let id = self.shared.identity.conversation_id(conversation);
        let event = match message {
            ServerMessage::User(_) | ServerMessage::Bot(_) | ServerMessage::Agent(_) => {
                let mut message = message.clone();
                if let ServerMessage::User(c) | ServerMessage::Bot(c) | ServerMessage::Agent(c) = &mut message
                {
                    c.session_id.clone_from(&id);
                }
                InboxEvent::Message { conversation: id, message }
            }
            ServerMessage::Typing(t) if t.role != Role::Bot => InboxEvent::Typing {
                conversation: id,
                role: t.role,
                name: t.from.as_ref().and_then(|f| f.name.clone()),
                active: t.active,
            },
            _ => return,
        };
        self.deliver_operators(&event, from);
    }

    /// Queues `event` to every operator connection here, except those of member `skip`.
    /// A typing notice is left out of a queue already half full rather than closing it
    /// ([`super::Outbox::offer_passing`]): visitors flooding typing cannot get operators cut.
    pub(super) fn deliver_operators(&self, event: &InboxEvent, skip: Option<&str>) {
        let frame = super::fanout::encode_any(event);
        let passing = matches!(event, InboxEvent::Typing { .. });
        let state = self.lock();
        let mut sent = 0;
        for op in state.operators.values() {
            if skip.is_some_and(|s| *s == *op.member_id) {
                continue;
            }
            let offered =
                if passing { op.outbox.offer_passing(frame.clone()) } else { op.outbox.offer(frame.clone()) };
            if let Offered::Queued = offered {
                sent += 1;
            }
        }
        Metrics::add(&self.shared.metrics.messages_out, sent);
    }
}

/// What visitors are told (`availability.online`): nothing (`None`) without operator
/// accounts, else whether one is online.
fn shown(state: &super::State) -> Option<bool> {
    (state.operators_exist || state.available).then_some(state.available)
}

/// Renews this hub's operators-online lease and notices other hubs' operators coming and
/// going (a hub that died stops counting when its lease ends), until shutdown.
pub(super) async fn availability(hub: Hub) {
    let mut tick = tokio::time::interval(AVAILABILITY_EVERY);
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if hub.shared.store.inbox().is_some() {
                    hub.refresh_availability().await;
                }
            }
            _ = super::stopped(&mut shutdown) => return,
        }
    }
}
