//! `MemoryStore`: the [`Store`] engine that keeps everything in this process.
//!
//! For tests and for running without a database. Append, sequencing and publication happen
//! under one lock, so the delivery stream is in `seq` order per conversation by construction.
//! An optional retention cap (messages kept per conversation) lets tests produce the "older than
//! what exists" case that a real engine reaches through retention days or stream trimming.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use natter_protocol::ServerMessage;
use tokio::sync::mpsc;

use super::{
    Appended, BoxFuture, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError,
    StoredFrame,
};

/// An in-process [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Messages kept per conversation; `None` keeps all.
    retention: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    conversations: HashMap<ConversationKey, Log>,
    rooms: BTreeMap<String, RoomRecord>,
    /// Subscribers of the delivery stream; closed ones are dropped on the next send.
    subscribers: Vec<mpsc::UnboundedSender<Event>>,
}

/// One conversation's stored messages.
#[derive(Debug, Default)]
struct Log {
    /// Kept messages, oldest first; their seqs are contiguous and end at `last_seq`.
    messages: VecDeque<StoredFrame>,
    last_seq: u64,
    /// sender → id → seq of every message ever stored here, so de-duplication outlives
    /// retention (see [`Draft::sender`]).
    ids: HashMap<String, HashMap<String, u64>>,
}

impl Log {
    fn first_available(&self) -> u64 {
        self.messages.front().map_or(self.last_seq + 1, |m| m.seq)
    }

    fn page(&self, messages: Vec<StoredFrame>) -> HistoryPage {
        HistoryPage { messages, last_seq: self.last_seq, first_available: self.first_available() }
    }
}

impl MemoryStore {
    /// A store that keeps every message.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps only the newest `per_conversation` messages of each conversation.
    pub fn with_retention(per_conversation: usize) -> Self {
        MemoryStore { inner: Mutex::default(), retention: Some(per_conversation.max(1)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than losing the process, so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn publish(&mut self, event: Event) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

/// Sets the `seq` of a stored frame.
fn with_seq(mut message: ServerMessage, seq: u64) -> ServerMessage {
    match &mut message {
        ServerMessage::User(m) | ServerMessage::Bot(m) | ServerMessage::Agent(m) => m.seq = seq,
        ServerMessage::Chat(m) => m.seq = seq,
        _ => {}
    }
    message
}

impl Store for MemoryStore {
    fn append(&self, key: &ConversationKey, draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>> {
        if draft.message.seq().is_none() {
            return ready(Err(StoreError::Backend(format!(
                "a {} frame cannot be stored",
                draft.message.kind()
            ))));
        }
        let mut inner = self.lock();
        let log = inner.conversations.entry(key.clone()).or_default();
        let sender = draft.sender().into_owned();
        if let Some(&seq) = log.ids.get(&sender).and_then(|ids| ids.get(&draft.id)) {
            return ready(Ok(Appended { seq, duplicate: true }));
        }
        log.last_seq += 1;
        let seq = log.last_seq;
        log.ids.entry(sender).or_default().insert(draft.id, seq);
        let message = with_seq(draft.message, seq);
        // Checked above: a stored kind, so it encodes.
        if let Some(frame) = StoredFrame::encode(&message) {
            log.messages.push_back(frame);
        }
        if let Some(cap) = self.retention {
            while log.messages.len() > cap {
                log.messages.pop_front();
            }
        }
        inner.publish(Event::Stored { key: key.clone(), message });
        ready(Ok(Appended { seq, duplicate: false }))
    }

    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let inner = self.lock();
        let page = match inner.conversations.get(key) {
            Some(log) => {
                log.page(log.messages.iter().filter(|m| m.seq > after).take(limit).cloned().collect())
            }
            None => HistoryPage { messages: Vec::new(), last_seq: 0, first_available: 1 },
        };
        ready(Ok(page))
    }

    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let inner = self.lock();
        let page = match inner.conversations.get(key) {
            Some(log) => {
                let skip = log.messages.len().saturating_sub(limit);
                log.page(log.messages.iter().skip(skip).cloned().collect())
            }
            None => HistoryPage { messages: Vec::new(), last_seq: 0, first_available: 1 },
        };
        ready(Ok(page))
    }

    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>> {
        self.lock().publish(event);
        ready(Ok(()))
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().subscribers.push(tx);
        rx
    }

    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut inner = self.lock();
        if inner.rooms.contains_key(&room.room) {
            return ready(Ok(false));
        }
        inner.rooms.insert(room.room.clone(), room);
        ready(Ok(true))
    }

    fn put_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut inner = self.lock();
        match inner.rooms.get_mut(&room.room) {
            Some(kept) => {
                kept.name = room.name;
                kept.metadata = room.metadata;
                ready(Ok(false))
            }
            None => {
                inner.rooms.insert(room.room.clone(), room);
                ready(Ok(true))
            }
        }
    }

    fn delete_room(&self, room: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut inner = self.lock();
        // The messages and their ids go; the seq counter stays, so a room made again under this
        // id numbers on from where the deleted one stopped (see `Store::delete_room`).
        if let Some(log) = inner.conversations.get_mut(&ConversationKey::Room(room.into())) {
            log.messages.clear();
            log.ids.clear();
        }
        ready(Ok(inner.rooms.remove(room).is_some()))
    }

    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>> {
        ready(Ok(self.lock().rooms.get(room).cloned()))
    }

    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let inner = self.lock();
        let start = after.map_or(Unbounded, |a| Excluded(a.to_owned()));
        ready(Ok(inner.rooms.range((start, Unbounded)).take(limit).map(|(_, r)| r.clone()).collect()))
    }

    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut inner = self.lock();
        let Inner { rooms, conversations, .. } = &mut *inner;
        let before = rooms.len();
        rooms.retain(|id, r| {
            let empty = conversations
                .get(&ConversationKey::Room(id.as_str().into()))
                .is_none_or(|log| log.messages.is_empty());
            !(r.created_at < created_before && empty && !keep.contains(id))
        });
        ready(Ok((before - rooms.len()) as u64))
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::ConversationMessage;

    use super::*;

    fn draft(id: &str) -> Draft {
        Draft {
            id: id.into(),
            message: ServerMessage::User(ConversationMessage {
                id: id.into(),
                message: format!("text {id}"),
                session_id: "s1".into(),
                ..Default::default()
            }),
            operator: None,
        }
    }

    fn chat(from: &str, id: &str) -> Draft {
        Draft {
            id: id.into(),
            message: ServerMessage::Chat(natter_protocol::RoomMessage {
                room: "r".into(),
                id: id.into(),
                message: format!("{from} says {id}"),
                from: natter_protocol::Member { id: from.into(), name: None, verified: false },
                ..Default::default()
            }),
            operator: None,
        }
    }

    #[tokio::test]
    async fn an_id_is_scoped_to_its_sender() {
        let store = MemoryStore::new();
        let mut rx = store.subscribe();
        let key = ConversationKey::Room("r".into());
        assert_eq!(
            store.append(&key, chat("u_m", "c-01")).await.unwrap(),
            Appended { seq: 1, duplicate: false }
        );
        // Another member's message with the same id is a message of its own...
        assert_eq!(
            store.append(&key, chat("u_a", "c-01")).await.unwrap(),
            Appended { seq: 2, duplicate: false }
        );
        // ...while each sender's re-send is still recognised.
        assert_eq!(
            store.append(&key, chat("u_a", "c-01")).await.unwrap(),
            Appended { seq: 2, duplicate: true }
        );
        assert_eq!(
            store.append(&key, chat("u_m", "c-01")).await.unwrap(),
            Appended { seq: 1, duplicate: true }
        );
        let delivered: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|e| match e {
                Event::Stored { message: ServerMessage::Chat(c), .. } => Some(c.message),
                _ => None,
            })
            .collect();
        assert_eq!(delivered, ["u_m says c-01", "u_a says c-01"]);
    }

    #[tokio::test]
    async fn sequences_dedups_and_delivers_in_order() {
        let store = MemoryStore::new();
        let mut rx = store.subscribe();
        let key = ConversationKey::Session("s1".into());
        assert_eq!(store.append(&key, draft("a")).await.unwrap(), Appended { seq: 1, duplicate: false });
        assert_eq!(store.append(&key, draft("b")).await.unwrap(), Appended { seq: 2, duplicate: false });
        assert_eq!(store.append(&key, draft("a")).await.unwrap(), Appended { seq: 1, duplicate: true });
        for want in [1, 2] {
            match rx.recv().await {
                Some(Event::Stored { message, .. }) => assert_eq!(message.seq(), Some(want)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(rx.try_recv().is_err(), "a duplicate must not be delivered");
        let page = store.history(&key, 1, 10).await.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!((page.last_seq, page.first_available), (2, 1));
    }

    #[tokio::test]
    async fn retention_drops_oldest_but_keeps_dedup() {
        let store = MemoryStore::with_retention(2);
        let key = ConversationKey::Room("r".into());
        for id in ["a", "b", "c"] {
            store.append(&key, draft(id)).await.unwrap();
        }
        let page = store.recent(&key, 10).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(page.first_available, 2);
        assert!(store.append(&key, draft("a")).await.unwrap().duplicate);
    }

    /// A deleted room's messages and ids go, its seq counter stays: made again, it numbers on,
    /// and it expires when empty like a room that never had a message.
    #[tokio::test]
    async fn a_deleted_room_numbers_on_and_expires_when_empty_again() {
        let store = MemoryStore::new();
        let key = ConversationKey::Room("r".into());
        let record = RoomRecord {
            room: "r".into(),
            name: None,
            metadata: natter_protocol::RawJson::empty_object(),
            created_at: "2026-11-22T00:00:00Z".into(),
        };
        assert!(store.create_room(record.clone()).await.unwrap());
        for id in ["c-1", "c-2"] {
            store.append(&key, chat("u_m", id)).await.unwrap();
        }
        assert!(store.delete_room("r").await.unwrap());
        let page = store.recent(&key, 10).await.unwrap();
        assert_eq!((page.messages.len(), page.last_seq, page.first_available), (0, 2, 3));
        assert!(store.create_room(record.clone()).await.unwrap());
        assert_eq!(store.expire_empty_rooms("2026-11-23T00:00:00Z".into(), Vec::new()).await.unwrap(), 1);
        assert!(store.create_room(record).await.unwrap());
        assert_eq!(
            store.append(&key, chat("u_m", "c-1")).await.unwrap(),
            Appended { seq: 3, duplicate: false },
            "a new message numbered on, though its id was used before the deletion"
        );
    }
}
