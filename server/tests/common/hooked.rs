//! The memory store with a test's hooks in front of its writes and history reads: a busy
//! database held still, a writer slowed down, a backend that refuses writes. Everything a hook
//! does not touch is the memory store's.

use std::sync::Arc;

use natter_hub::store::memory::MemoryStore;
use natter_hub::store::{
    Appended, BoxFuture, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError,
};
use tokio::sync::mpsc;

/// What a test does before the memory store acts (each hook does nothing unless overridden).
pub trait StoreHooks: Send + Sync + 'static {
    /// Before `draft` is stored; an `Err` is the write's answer instead.
    fn before_append<'a>(&'a self, _draft: &'a Draft) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Before a history read (`history` and `recent`).
    fn before_read(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// How many history reads the store runs at once ([`Store::read_turns`]): two unless
    /// overridden, whatever the machine's CPUs, so that a test sees the same on every machine.
    fn read_turns(&self) -> usize {
        2
    }
}

/// A fresh memory store behind `hooks`.
pub struct Hooked<H> {
    pub store: MemoryStore,
    pub hooks: H,
}

impl<H: StoreHooks> Hooked<H> {
    pub fn new(hooks: H) -> Arc<Hooked<H>> {
        Arc::new(Hooked { store: MemoryStore::new(), hooks })
    }
}

impl<H: StoreHooks> Store for Hooked<H> {
    fn append(&self, key: &ConversationKey, draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            self.hooks.before_append(&draft).await?;
            self.store.append(&key, draft).await
        })
    }

    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            self.hooks.before_read().await;
            self.store.history(&key, after, limit).await
        })
    }

    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            self.hooks.before_read().await;
            self.store.recent(&key, limit).await
        })
    }

    fn read_turns(&self) -> usize {
        self.hooks.read_turns()
    }

    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.publish_ephemeral(event)
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        self.store.subscribe()
    }

    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.store.create_room(room)
    }

    fn put_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.store.put_room(room)
    }

    fn delete_room(&self, room: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.store.delete_room(room)
    }

    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>> {
        self.store.room(room)
    }

    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>> {
        self.store.rooms(after, limit)
    }

    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.store.expire_empty_rooms(created_before, keep)
    }
}
