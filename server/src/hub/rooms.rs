//! Named rooms: join and leave, presence (`user_joined` / `user_left`, members on this hub and
//! on others), room info and the room list.

use std::sync::Arc;

use natter_protocol::{
    ErrorCode, ErrorFrame, Member, Presence, RawJson, RoomInfo, RoomList, RoomSummary, ServerMessage,
};

use super::outbox::Frame;
use super::{Hub, Outbox, Payer, Refusal, Since, Slot};
use crate::address::AddrKey;
use crate::clock::now_rfc3339;
use crate::store::{ConversationKey, RoomRecord, StoreError};

/// Room presence to register with a subscription (see `Hub::attach`).
pub(super) struct Joining<'a> {
    pub(super) member: &'a Member,
    record: &'a RoomRecord,
    /// Members present on other hubs.
    remote: Vec<Member>,
}

impl Joining<'_> {
    /// The `room_info` the joining connection gets: this hub's members and the remote ones.
    pub(super) fn info(self, local: Vec<Member>, last_seq: u64) -> RoomInfo {
        room_info(self.record, merge_members(local, self.remote), last_seq)
    }
}

impl Hub {
    /// The room's record, created first if it does not exist (a `join`, or a message sent to it
    /// over the HTTP fallback), from `creator`'s budget of room creations.
    pub(crate) async fn ensure_room(&self, room: &Arc<str>, creator: AddrKey) -> Result<RoomRecord, Refusal> {
        let store = &self.shared.store;
        if let Some(r) = store.room(room).await? {
            return Ok(r);
        }
        if self.shared.config.room_creation == crate::config::RoomCreation::Api {
            return Err(Refusal::new(
                ErrorCode::UnknownRoom,
                format!("there is no room {room:?}, and on this hub only the site makes rooms (--room-creation api)"),
            ));
        }
        self.charge_room_creation(creator, room)?;
        let record = RoomRecord {
            room: room.to_string(),
            name: None,
            metadata: RawJson::empty_object(),
            created_at: now_rfc3339(),
        };
        store.create_room(record.clone()).await?;
        // Another hub or request may have created it meanwhile; theirs wins.
        Ok(store.room(room).await?.unwrap_or(record))
    }

    /// Joins a room: creates it if needed (from `payer`'s address's budget of room creations),
    /// subscribes, queues `room_info` + `history` (paid for by `payer`), and announces the member to the others when
    /// this is their first connection in it. Returns the use of the room's conversation held
    /// for `payer`'s address (`--max-conversations-per-address`; taken before anything else, so
    /// a join past it creates no room), for the connection to keep while it is in the room
    /// (`None` when there is no limit).
    pub(crate) async fn join_room(
        &self,
        room: &Arc<str>,
        member: &Member,
        since: Since,
        outbox: &Outbox,
        payer: &mut Payer<'_>,
    ) -> Result<Option<Slot>, Refusal> {
        let store = &self.shared.store;
        let held = self.hold_conversations(payer.addr, 1)?;
        let record = self.ensure_room(room, payer.addr).await?;
        // Presence is recorded before this member is told it joined (and before the other
        // members are asked for), so someone joining through another hub right after sees it.
        // Recording it again for a second tab only refreshes the same entry.
        if let Err(e) = store.presence_join(room, member).await {
            tracing::warn!(%room, error = %e, "presence_join failed");
        }
        let remote = store.remote_members(room).await.unwrap_or_default();
        let key = ConversationKey::Room(room.clone());
        let member_id: Arc<str> = member.id.as_str().into();
        let joining = Joining { member, record: &record, remote };
        let attached =
            self.attach(&key, since, Some((outbox, &member_id)), Some(joining), payer, false).await;
        let first = match attached {
            Ok((_, first)) => first,
            Err(refusal) => {
                // Refused after its presence was recorded (a history it could not pay for, a
                // busy store): take that back, unless another connection has the member here.
                let here = self.lock().conversations.get(&key).is_some_and(|c| c.has_member(&member.id));
                if !here {
                    if let Err(e) = store.presence_leave(room, &member.id).await {
                        tracing::warn!(%room, error = %e, "presence_leave failed");
                    }
                }
                return Err(refusal);
            }
        };
        if first && self.announces_presence(&key) {
            let notice = ServerMessage::UserJoined(presence(room, member));
            self.publish(key, notice, Some(member.id.clone())).await;
        }
        Ok(held)
    }

    /// Unsubscribes a connection from a room; announces `user_left` when it was the member's
    /// last connection there.
    pub(crate) async fn leave_room(&self, room: &Arc<str>, member: &Member, outbox_id: u64) {
        let key = ConversationKey::Room(room.clone());
        let last = {
            let mut state = self.lock();
            let Some(conv) = state.conversations.get_mut(&key) else { return };
            conv.subscribers.remove(&outbox_id);
            conv.last_active = tokio::time::Instant::now();
            conv.remove_member(&member.id)
        };
        if !last {
            return;
        }
        if let Err(e) = self.shared.store.presence_leave(room, &member.id).await {
            tracing::warn!(%room, error = %e, "presence_leave failed");
        }
        if self.announces_presence(&key) {
            let notice = ServerMessage::UserLeft(presence(room, member));
            self.publish(key, notice, Some(member.id.clone())).await;
        }
    }

    /// Whether joins and leaves in this room are announced to every member: not in rooms larger
    /// than `--presence-announce-limit`, where that traffic would grow with the square of the
    /// room size.
    fn announces_presence(&self, key: &ConversationKey) -> bool {
        let state = self.lock();
        let members = state.conversations.get(key).map_or(0, |c| c.member_count());
        members <= self.shared.config.presence_announce_limit
    }

    /// A room's info with its members (here and on other hubs); `None` for an unknown room.
    pub(crate) async fn room_info(&self, room: &str) -> Result<Option<RoomInfo>, Refusal> {
        let Some(record) = self.shared.store.room(room).await? else {
            return Ok(None);
        };
        let remote = self.shared.store.remote_members(room).await.unwrap_or_default();
        let key = ConversationKey::Room(room.into());
        let last_seq = self.last_seq(&key).await?;
        let local = {
            let state = self.lock();
            state.conversations.get(&key).map(|c| c.members()).unwrap_or_default()
        };
        Ok(Some(room_info(&record, merge_members(local, remote), last_seq)))
    }

    /// One page of rooms after `after` (at most `limit`), with the members present on this hub
    /// and where the next page starts.
    pub(crate) async fn rooms(&self, after: Option<&str>, limit: usize) -> Result<RoomList, Refusal> {
        // One more than asked for says whether there is a next page.
        let mut records = self.shared.store.rooms(after, limit + 1).await?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next = if more { records.last().map(|r| r.room.clone()) } else { None };
        let mut rooms = Vec::with_capacity(records.len());
        for r in records {
            let key = ConversationKey::Room(r.room.as_str().into());
            let last_seq = self.last_seq(&key).await?;
            let member_count = {
                let state = self.lock();
                state.conversations.get(&key).map_or(0, |c| c.member_count())
            };
            rooms.push(RoomSummary { room: r.room, name: r.name, member_count, last_seq });
        }
        Ok(RoomList { rooms, next })
    }

    /// Deletes the rooms older than `--empty-room-ttl` that hold no message and have nobody in
    /// them (housekeeping); returns how many went.
    pub(super) async fn expire_empty_rooms(&self) -> Result<u64, StoreError> {
        let ttl = self.shared.config.empty_room_ttl;
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(ttl).filter(|_| !ttl.is_zero()) else {
            return Ok(0);
        };
        let keep: Vec<String> = {
            let state = self.lock();
            state
                .conversations
                .iter()
                .filter_map(|(k, c)| match k {
                    ConversationKey::Room(r) if c.has_members() => Some(r.to_string()),
                    _ => None,
                })
                .collect()
        };
        self.shared.store.expire_empty_rooms(crate::clock::rfc3339_at(cutoff), keep).await
    }

    /// Whether room `room` exists (in the store, on any hub).
    pub(crate) async fn room_exists(&self, room: &str) -> Result<bool, Refusal> {
        Ok(self.shared.store.room(room).await?.is_some())
    }

    /// Creates a room; `Ok(None)` when it exists already.
    pub(crate) async fn create_room(
        &self,
        room: String,
        name: Option<String>,
        metadata: Option<RawJson>,
    ) -> Result<Option<RoomInfo>, Refusal> {
        let record = RoomRecord {
            room,
            name,
            metadata: metadata.unwrap_or_else(RawJson::empty_object),
            created_at: now_rfc3339(),
        };
        if !self.shared.store.create_room(record.clone()).await? {
            return Ok(None);
        }
        Ok(Some(room_info(&record, Vec::new(), 0)))
    }

    /// Creates room `room`, or replaces the name and metadata of the one that exists, whoever
    /// made it (`PUT /api/rooms/{room}`, the operator's servers only); returns its info and
    /// whether it was created. Members present get the new `room_info` (on every hub).
    pub(crate) async fn put_room(
        &self,
        room: String,
        name: Option<String>,
        metadata: Option<RawJson>,
    ) -> Result<(RoomInfo, bool), Refusal> {
        let record = RoomRecord {
            room: room.clone(),
            name,
            metadata: metadata.unwrap_or_else(RawJson::empty_object),
            created_at: now_rfc3339(),
        };
        let created = self.shared.store.put_room(record.clone()).await?;
        // Deleted again meanwhile (a DELETE racing this PUT): what was written is the answer.
        let info = self.room_info(&room).await?.unwrap_or_else(|| room_info(&record, Vec::new(), 0));
        if !created {
            self.publish(
                ConversationKey::Room(room.as_str().into()),
                ServerMessage::RoomInfo(info.clone()),
                None,
            )
            .await;
        }
        Ok((info, created))
    }

    /// Deletes room `room` with its stored history (`DELETE /api/rooms/{room}`, the operator's
    /// servers only); `false` for an unknown room. Every connection in it, on every hub, gets a
    /// `room_deleted` error naming the room and is no longer in it (see [`Hub::evict_room`]).
    pub(crate) async fn delete_room(&self, room: &str) -> Result<bool, Refusal> {
        if !self.shared.store.delete_room(room).await? {
            return Ok(false);
        }
        let notice = ServerMessage::Error(ErrorFrame {
            code: ErrorCode::RoomDeleted,
            message: format!(
                "the site deleted room {room:?} with its history; this connection is no longer in it \
                 (a join makes a new, empty room)"
            ),
            id: None,
            retry_after_ms: None,
            room: Some(room.to_owned()),
        });
        self.publish(ConversationKey::Room(room.into()), notice, None).await;
        Ok(true)
    }

    /// A deleted room on this hub: every subscribed connection is told (`frame`, the
    /// `room_deleted` error) and taken out of it, and the room's messages held in memory,
    /// members and long-polls go (a waiting long-poll answers at once).
    pub(super) fn evict_room(&self, room: &Arc<str>, frame: &Frame) {
        let key = ConversationKey::Room(room.clone());
        let Some(conv) = self.lock().conversations.remove(&key) else { return };
        for sub in conv.subscribers.values() {
            // Taken out before it is told, so a frame it sends after reading this one is
            // refused as `not_in_room`.
            sub.outbox.remove_room(room.clone());
            sub.outbox.send(frame.clone());
        }
        let members = conv.members();
        if members.is_empty() {
            return;
        }
        // Presence records of this hub (a shared engine refreshes them until told).
        let store = self.shared.store.clone();
        let room = room.clone();
        tokio::spawn(async move {
            for m in members {
                if let Err(e) = store.presence_leave(&room, &m.id).await {
                    tracing::debug!(%room, error = %e, "presence_leave of a deleted room failed");
                }
            }
        });
    }
}

/// The room-deleted notice a frame is, if it is one (an `error` with code `room_deleted`).
pub(super) fn deletion(message: &ServerMessage) -> Option<&ErrorFrame> {
    match message {
        ServerMessage::Error(e) if e.code == ErrorCode::RoomDeleted => Some(e),
        _ => None,
    }
}

fn presence(room: &str, member: &Member) -> Presence {
    Presence { room: room.to_string(), user: member.clone(), timestamp: now_rfc3339() }
}

/// This hub's members followed by the other hubs' members it does not list already.
fn merge_members(mut local: Vec<Member>, remote: Vec<Member>) -> Vec<Member> {
    for m in remote {
        if !local.iter().any(|x| x.id == m.id) {
            local.push(m);
        }
    }
    local
}

/// A room's info: at most [`natter_protocol::ROOM_INFO_MEMBER_LIMIT`] members listed,
/// `memberCount` counting all of them.
fn room_info(record: &RoomRecord, mut members: Vec<Member>, last_seq: u64) -> RoomInfo {
    let member_count = members.len();
    members.truncate(natter_protocol::ROOM_INFO_MEMBER_LIMIT);
    RoomInfo {
        room: record.room.clone(),
        name: record.name.clone(),
        metadata: record.metadata.clone(),
        members,
        member_count,
        last_seq,
        created_at: record.created_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str) -> Member {
        Member { id: id.into(), name: None, verified: false }
    }

    fn record() -> RoomRecord {
        RoomRecord {
            room: "r".into(),
            name: Some("R".into()),
            metadata: RawJson::empty_object(),
            created_at: "t".into(),
        }
    }

    #[test]
    fn remote_members_are_added_once() {
        let merged = merge_members(vec![m("a"), m("b")], vec![m("b"), m("c")]);
        assert_eq!(merged.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn room_info_lists_a_bounded_number_of_members_and_counts_all() {
        let limit = natter_protocol::ROOM_INFO_MEMBER_LIMIT;
        let many: Vec<Member> = (0..limit + 5).map(|i| m(&format!("u{i}"))).collect();
        let info = room_info(&record(), many, 9);
        assert_eq!((info.members.len(), info.member_count, info.last_seq), (limit, limit + 5, 9));
    }
}
