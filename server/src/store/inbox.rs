//! What the operator inbox keeps: operators and their sign-in sessions, each support
//! conversation's record (status, assignee, unread count, last activity, visitor context),
//! private notes, canned replies, and how many operators each hub has online.
//!
//! The [`InboxStore`] trait is implemented by the durable engines (`sqlite` for one hub,
//! `redis` for many, so operators on one hub see conversations whose visitors are on another).
//! A conversation record changes by [`RecordChange`]s applied atomically inside the engine (the
//! SQLite writer thread, one Redis script), never read-modified-written by the hub, so two hubs
//! touching one conversation at once cannot lose each other's change: [`apply`] is the rule,
//! and the Redis script mirrors it.

use natter_protocol::inbox::{CannedReply, ConversationState, ConversationSummary, Note, VisitorContext};
use natter_protocol::Role;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, StoreError};

/// An operator account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorRecord {
    /// Sign-in name (1–64 of `a-z`, `0-9`, `.`, `-`, `_`).
    pub name: String,
    /// The name visitors see on replies.
    pub display_name: String,
    /// The argon2id hash of the password, in PHC string format.
    pub password_hash: String,
    /// When the account was made (ms since the Unix epoch).
    pub created_ms: u64,
}

impl std::fmt::Debug for OperatorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorRecord")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// A signed-in operator's session, stored under the SHA-256 of its cookie value (so the
/// database never holds a usable cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorSession {
    /// The operator's sign-in name.
    pub operator: String,
    /// When it stops being valid (ms since the Unix epoch).
    pub expires_ms: u64,
}

/// One change to a conversation record. Several are applied together, in order, atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RecordChange {
    /// A message was stored: newest activity (applied only when `seq` is newer than what the
    /// record has, so two hubs racing keep the newest), one more unread for a visitor message,
    /// a visitor message to a closed conversation opens it again, and an operator's message
    /// means a person followed up (the bot may say again that one will, should they leave).
    Activity {
        /// Its seq.
        seq: u64,
        /// When (ms since the epoch).
        at_ms: u64,
        /// Who wrote it.
        role: Role,
        /// Its first characters.
        preview: String,
    },
    /// The visitor's page, title, browser and identity, as of their newest message.
    Context(VisitorContext),
    /// Open or close. Closing ends the handoff (the bot answers again) and the request for a
    /// person.
    Status {
        /// The new status.
        status: ConversationState,
    },
    /// Assign to an operator, or to nobody.
    Assignee {
        /// The operator's sign-in name.
        assignee: Option<String>,
    },
    /// An operator answered (`true`: the bot falls silent), or the handoff ended.
    Handoff {
        /// Whether the bot is silent.
        on: bool,
    },
    /// The visitor asked for a person.
    WantsHuman,
    /// The bot answers the visitor message `seq` in a handed-off conversation while nobody is
    /// online: claims "tell them a person will follow up" for that answer, unless it was told
    /// already (see `ConversationSummary::follow_up_seq`). Nothing happens without a handoff.
    /// Applied atomically, so of two answers racing only one claims it.
    FollowUp {
        /// The visitor message's seq.
        seq: u64,
    },
    /// An operator read the conversation.
    Read,
}

/// Longest preview kept, in characters.
pub const PREVIEW_CHARS: usize = 140;

/// Applies `changes` to `record` (the rule every engine follows; see the module docs).
pub fn apply(record: &mut ConversationSummary, changes: &[RecordChange]) {
    for change in changes {
        match change {
            RecordChange::Activity { seq, at_ms, role, preview } => {
                if *seq > record.last_seq {
                    record.last_seq = *seq;
                    record.last_activity_ms = *at_ms;
                    record.last_role = Some(*role);
                    record.preview = Some(preview.chars().take(PREVIEW_CHARS).collect());
                    if *role == Role::User {
                        record.unread = record.unread.saturating_add(1);
                        if record.status == ConversationState::Closed {
                            record.status = ConversationState::Open;
                        }
                    }
                    if *role == Role::Agent {
                        record.follow_up_seq = 0;
                    }
                }
            }
            RecordChange::Context(context) => {
                let c = &mut record.context;
                c.page = context.page.clone().or(c.page.take());
                c.title = context.title.clone().or(c.title.take());
                c.browser = context.browser.clone().or(c.browser.take());
                c.user = context.user.clone().or(c.user.take());
            }
            RecordChange::Status { status } => {
                record.status = *status;
                if *status == ConversationState::Closed {
                    record.handoff = false;
                    record.wants_human = false;
                    record.follow_up_seq = 0;
                    record.unread = 0;
                }
            }
            RecordChange::Assignee { assignee } => record.assignee = assignee.clone(),
            RecordChange::Handoff { on } => record.handoff = *on,
            RecordChange::WantsHuman => record.wants_human = true,
            RecordChange::FollowUp { seq } => {
                if record.handoff && record.follow_up_seq == 0 {
                    record.follow_up_seq = *seq;
                }
            }
            RecordChange::Read => record.unread = 0,
        }
    }
}

/// Which conversations a list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationFilter {
    /// Open ones.
    Open,
    /// Open ones assigned to this operator.
    Mine(String),
    /// Open ones assigned to nobody.
    Unassigned,
    /// Closed ones.
    Closed,
}

impl ConversationFilter {
    /// Whether `c` belongs in the list.
    pub fn matches(&self, c: &ConversationSummary) -> bool {
        match self {
            ConversationFilter::Open => c.status == ConversationState::Open,
            ConversationFilter::Mine(me) => {
                c.status == ConversationState::Open && c.assignee.as_deref() == Some(me.as_str())
            }
            ConversationFilter::Unassigned => c.status == ConversationState::Open && c.assignee.is_none(),
            ConversationFilter::Closed => c.status == ConversationState::Closed,
        }
    }
}

/// A place in the conversation list, which runs by last activity, newest first, and among
/// conversations active in the same millisecond by public id, highest first (byte order): a
/// page that starts after it holds the conversations that sort after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    /// The conversation's last activity (ms since the Unix epoch).
    pub last_activity_ms: u64,
    /// Its public id.
    pub id: String,
}

impl ListPosition {
    /// Where `c` stands in the list.
    pub fn of(c: &ConversationSummary) -> ListPosition {
        ListPosition { last_activity_ms: c.last_activity_ms, id: c.id.clone() }
    }

    /// Whether a conversation active at `last_activity_ms` with public id `id` sorts after
    /// this place (so belongs on a page that starts here).
    pub fn is_before(&self, last_activity_ms: u64, id: &str) -> bool {
        last_activity_ms < self.last_activity_ms
            || (last_activity_ms == self.last_activity_ms && id.as_bytes() < self.id.as_bytes())
    }
}

/// One page of the conversation list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationPage {
    /// The records of this page, in list order (see [`ListPosition`]).
    pub conversations: Vec<ConversationSummary>,
    /// Where the next page starts; `None` on the last page. A page may hold fewer records
    /// than asked for and still have a next one (an engine that filters as it scans stops
    /// after a bounded number of records).
    pub next: Option<ListPosition>,
}

/// The inbox's storage. See the module docs.
pub trait InboxStore: Send + Sync {
    /// Adds an operator; `Ok(false)` when the name is taken.
    fn add_operator(&self, operator: OperatorRecord) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Replaces an operator's password hash and ends all their sessions; `Ok(false)` when there
    /// is no such operator.
    fn set_password(&self, name: &str, password_hash: String) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// One operator.
    fn operator(&self, name: &str) -> BoxFuture<'_, Result<Option<OperatorRecord>, StoreError>>;

    /// Every operator, by name.
    fn operators(&self) -> BoxFuture<'_, Result<Vec<OperatorRecord>, StoreError>>;

    /// Whether there is any operator account (the hub asks every few seconds while nobody is
    /// online, so widgets show availability only on a site with people to answer). Engines
    /// answer it without reading every account.
    fn has_operators(&self) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Removes an operator and ends their sessions; `Ok(false)` when there was none.
    fn remove_operator(&self, name: &str) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Keeps a session under `token_hash` (hex SHA-256 of the cookie value).
    fn put_session(
        &self,
        token_hash: &str,
        session: OperatorSession,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The session under `token_hash`, if it exists and has not expired at `now_ms`.
    fn session(
        &self,
        token_hash: &str,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Option<OperatorSession>, StoreError>>;

    /// Ends the session under `token_hash`.
    fn remove_session(&self, token_hash: &str) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Applies `changes` to the record of the conversation `id` (public id) whose session
    /// conversation is `conversation`, making it (created at `now_ms`, with `visitor`) when it
    /// does not exist yet. Returns the record after the change.
    fn change_conversation(
        &self,
        id: &str,
        conversation: &str,
        visitor: &str,
        now_ms: u64,
        changes: Vec<RecordChange>,
    ) -> BoxFuture<'_, Result<ConversationSummary, StoreError>>;

    /// Applies `changes` to an existing record; `Ok(None)` when there is no conversation `id`.
    fn update_conversation(
        &self,
        id: &str,
        changes: Vec<RecordChange>,
    ) -> BoxFuture<'_, Result<Option<ConversationSummary>, StoreError>>;

    /// A conversation's record and its session conversation id.
    fn conversation(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<(ConversationSummary, String)>, StoreError>>;

    /// One page of the records matching `filter`, in list order (see [`ListPosition`]):
    /// those after `after` (from the start when `None`), at most `limit`, and where the next
    /// page starts.
    fn conversations(
        &self,
        filter: ConversationFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ConversationPage, StoreError>>;

    /// Adds a private note to conversation `id`.
    fn add_note(&self, id: &str, note: Note) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The notes of conversation `id`, oldest first.
    fn notes(&self, id: &str) -> BoxFuture<'_, Result<Vec<Note>, StoreError>>;

    /// Adds or replaces a canned reply.
    fn put_canned(&self, canned: CannedReply) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every canned reply, by shortcut.
    fn canned(&self) -> BoxFuture<'_, Result<Vec<CannedReply>, StoreError>>;

    /// Removes a canned reply; `Ok(false)` when there was none.
    fn remove_canned(&self, shortcut: &str) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Records that this hub has `count` operators online, for `lease_ms` (refreshed by the hub
    /// well before it ends, so a hub that dies stops counting). Single-hub engines keep nothing.
    fn set_online(&self, _count: u32, _lease_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Operators online on *other* hubs (always 0 for a single-hub engine).
    fn online_elsewhere(&self) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(seq: u64, role: Role) -> RecordChange {
        RecordChange::Activity { seq, at_ms: seq * 10, role, preview: format!("m{seq}") }
    }

    #[test]
    fn activity_keeps_the_newest_and_counts_visitor_messages() {
        let mut r = ConversationSummary::default();
        apply(&mut r, &[activity(2, Role::User), activity(1, Role::User), activity(3, Role::Bot)]);
        assert_eq!(
            (r.last_seq, r.unread, r.preview.as_deref()),
            (3, 1, Some("m3")),
            "an older seq changes nothing"
        );
        apply(&mut r, &[RecordChange::Read]);
        assert_eq!(r.unread, 0);
    }

    #[test]
    fn closing_ends_the_handoff_and_a_visitor_message_reopens() {
        let mut r = ConversationSummary::default();
        apply(
            &mut r,
            &[RecordChange::Handoff { on: true }, RecordChange::WantsHuman, activity(1, Role::User)],
        );
        apply(&mut r, &[RecordChange::Status { status: ConversationState::Closed }]);
        assert!(!r.handoff && !r.wants_human && r.unread == 0 && r.status == ConversationState::Closed);
        apply(&mut r, &[activity(2, Role::Agent)]);
        assert_eq!(r.status, ConversationState::Closed, "only the visitor reopens");
        apply(&mut r, &[activity(3, Role::User)]);
        assert_eq!(r.status, ConversationState::Open);
    }

    #[test]
    fn a_person_will_follow_up_is_claimed_once_per_stretch_without_one() {
        let mut r = ConversationSummary::default();
        apply(&mut r, &[RecordChange::FollowUp { seq: 1 }]);
        assert_eq!(r.follow_up_seq, 0, "no handoff, nothing to promise");
        apply(&mut r, &[RecordChange::Handoff { on: true }, RecordChange::FollowUp { seq: 2 }]);
        assert_eq!(r.follow_up_seq, 2);
        apply(&mut r, &[RecordChange::FollowUp { seq: 4 }]);
        assert_eq!(r.follow_up_seq, 2, "said once, not with every answer");
        // An operator answers: a person followed up; when they are gone again it is said anew.
        apply(&mut r, &[activity(5, Role::Agent)]);
        assert_eq!(r.follow_up_seq, 0);
        apply(&mut r, &[RecordChange::FollowUp { seq: 6 }]);
        assert_eq!(r.follow_up_seq, 6);
        apply(&mut r, &[RecordChange::Status { status: ConversationState::Closed }]);
        assert_eq!((r.follow_up_seq, r.handoff), (0, false), "closing ends it all");
        let json = serde_json::to_value(&r).expect("encodes");
        assert!(json.get("followUpSeq").is_none(), "0 is not written: {json}");
    }

    /// The Redis engine sends changes to its script as this JSON: every variant must encode.
    #[test]
    fn every_change_encodes_as_json() {
        let changes = vec![
            activity(1, Role::User),
            RecordChange::Context(VisitorContext { page: Some("/p".into()), ..Default::default() }),
            RecordChange::Status { status: ConversationState::Closed },
            RecordChange::Assignee { assignee: None },
            RecordChange::Handoff { on: true },
            RecordChange::WantsHuman,
            RecordChange::FollowUp { seq: 7 },
            RecordChange::Read,
        ];
        let json = serde_json::to_string(&changes).expect("encodes");
        assert!(json.contains(r#"{"op":"context","page":"/p"}"#), "{json}");
        let back: Vec<RecordChange> = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, changes);
    }

    #[test]
    fn list_positions_order_by_activity_then_id() {
        let p = ListPosition { last_activity_ms: 10, id: "c_5".into() };
        assert!(p.is_before(9, "c_9"), "older activity comes later");
        assert!(p.is_before(10, "c_4"), "same millisecond: lower id comes later");
        assert!(!p.is_before(10, "c_5"), "not itself");
        assert!(!p.is_before(10, "c_6") && !p.is_before(11, "c_0"));
    }

    #[test]
    fn filters() {
        let mut r = ConversationSummary { assignee: Some("ada".into()), ..Default::default() };
        assert!(ConversationFilter::Mine("ada".into()).matches(&r));
        assert!(!ConversationFilter::Mine("bob".into()).matches(&r));
        assert!(!ConversationFilter::Unassigned.matches(&r));
        r.status = ConversationState::Closed;
        assert!(ConversationFilter::Closed.matches(&r) && !ConversationFilter::Open.matches(&r));
    }
}
