//! One conversation as held in memory: its [`Ring`] of recent messages, the connections
//! subscribed to it, and, for a room, the members present on this hub.
//!
//! Plain data with no locking or I/O of its own: the hub holds these in its table under one
//! mutex. Presence is counted per member, not per connection, so a member with three tabs joins
//! once and leaves once.

use std::collections::HashMap;
use std::sync::Arc;

use natter_protocol::Member;
use tokio::sync::watch;
use tokio::time::Instant;

use super::admission::Bucket;
use super::outbox::Outbox;
use super::Ring;

/// A connection subscribed to a conversation.
#[derive(Debug, Clone)]
pub(super) struct Subscriber {
    pub(super) outbox: Outbox,
    /// The public member id of the connection's user, to skip their own ephemeral frames.
    pub(super) member_id: Arc<str>,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct Conversation {
    pub(super) ring: Ring,
    /// Subscribed connections by connection number.
    pub(super) subscribers: HashMap<u64, Subscriber>,
    /// Room members present on this hub: member id → (member, connections).
    members: HashMap<Arc<str>, (Member, usize)>,
    /// The newest seq delivered here; long-polls wait on it. Made by the first long-poll: a
    /// watch channel is ~350 bytes, and a session used only over WebSocket never needs it.
    pub(super) delivered: Option<watch::Sender<u64>>,
    /// The session's rate limit (sessions only).
    pub(super) bucket: Option<Bucket>,
    pub(super) last_active: Instant,
}

impl Conversation {
    pub(super) fn new(ring_size: usize, ring_bytes: usize) -> Self {
        Conversation {
            ring: Ring::new(ring_size, ring_bytes),
            subscribers: HashMap::new(),
            members: HashMap::new(),
            delivered: None,
            bucket: None,
            last_active: Instant::now(),
        }
    }

    /// The members present on this hub, by id.
    pub(super) fn members(&self) -> Vec<Member> {
        let mut m: Vec<Member> = self.members.values().map(|(m, _)| m.clone()).collect();
        m.sort_by(|a, b| a.id.cmp(&b.id));
        m
    }

    /// How many members are present on this hub.
    pub(super) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `member_id` is present on this hub (through any connection).
    pub(super) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub(super) fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Counts one more connection of `member`; `true` when it is their first here (the moment
    /// to announce `user_joined`).
    pub(super) fn add_member(&mut self, member: &Member) -> bool {
        let entry = self.members.entry(member.id.as_str().into()).or_insert_with(|| (member.clone(), 0));
        entry.1 += 1;
        entry.1 == 1
    }

    /// Counts one connection of `member_id` less; `true` when it was their last here (the moment
    /// to announce `user_left`). A member not present is not an error: nothing changes.
    pub(super) fn remove_member(&mut self, member_id: &str) -> bool {
        let Some(entry) = self.members.get_mut(member_id) else { return false };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 > 0 {
            return false;
        }
        self.members.remove(member_id);
        true
    }

    /// Whether nobody is connected to, present in or waiting on (a long-poll) this
    /// conversation: holding it is then only a cache of its recent messages.
    pub(super) fn is_unused(&self) -> bool {
        self.subscribers.is_empty()
            && self.members.is_empty()
            && self.delivered.as_ref().is_none_or(|d| d.receiver_count() == 0)
    }

    /// Whether nothing keeps this conversation in memory any longer: unused, and no use for
    /// `idle`.
    pub(super) fn is_idle(&self, now: Instant, idle: std::time::Duration) -> bool {
        self.is_unused() && now.duration_since(self.last_active) >= idle
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ada() -> Member {
        Member { id: "u_ada".into(), name: Some("Ada".into()), verified: false }
    }

    #[test]
    fn presence_counts_members_not_connections() {
        let mut c = Conversation::new(4, 1 << 20);
        assert!(c.add_member(&ada()), "first tab joins");
        assert!(!c.add_member(&ada()), "second tab does not join again");
        assert!(c.add_member(&Member { id: "u_bob".into(), name: None, verified: false }));
        assert_eq!(c.member_count(), 2);
        assert_eq!(c.members().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["u_ada", "u_bob"]);
        assert!(!c.remove_member("u_ada"), "one tab of two left");
        assert!(c.remove_member("u_ada"), "the last tab left");
        assert!(!c.remove_member("u_ada"), "leaving again changes nothing");
        assert!(!c.remove_member("u_nobody"));
        assert_eq!(c.member_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_only_without_connections_or_members() {
        let mut c = Conversation::new(4, 1 << 20);
        let idle = Duration::from_secs(600);
        assert!(!c.is_idle(Instant::now(), idle));
        tokio::time::advance(idle).await;
        assert!(c.is_idle(Instant::now(), idle));
        c.add_member(&ada());
        assert!(!c.is_idle(Instant::now(), idle), "a member keeps a room");
    }
}
