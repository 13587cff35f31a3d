//! `localStorage`: the session the hub issued, the outbox (and each room's), what has been read
//! and the mute switch. (An identity token is never stored: the page gives it on each load.)
//!
//! Storage can be missing or throw (sandboxed iframes, Safari private mode, a full quota); the
//! widget then works for the life of the page without persistence instead of failing.

use crate::prelude::*;

use crate::outbox::OutboxEntry;
use crate::state::ReadMark;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Storage;

pub(crate) const SESSION_KEY: &str = "natter:session";
const MUTED_KEY: &str = "natter:muted";
/// One outbox per browser profile and site, like the session: what was typed waits here whoever
/// the hub turns out to say the widget is.
const OUTBOX_KEY: &str = "natter:outbox";
/// Each room's outbox, per browser profile and site like the support chat's, under this prefix
/// and the room id (ids are letters, digits and `-_.:` only).
const ROOM_OUTBOX_PREFIX: &str = "natter:room-outbox:";
/// One read record per site, naming its conversation; other tabs watch it (`storage` events).
pub(crate) const READ_KEY: &str = "natter:read";
/// The name the collaboration panel joins rooms with, as the visitor typed it last (the panel,
/// npm/src/rooms-panel.js, keeps it): a person's name, forgotten with the conversation.
#[cfg(feature = "rooms")]
const PANEL_NAME_KEY: &str = "natter.rooms.name";
/// Written (and removed at once) when a tab forgets the conversation, so that the site's other
/// tabs, which watch it (`storage` events), forget it too.
pub(crate) const FORGOTTEN_KEY: &str = "natter:forgotten";

/// A stored message's context, re-written by the browser's JSON: anything but a JSON object
/// (storage is the page's to change) becomes none, so that it can never break the frame it is
/// spliced into (see `context` in page.js).
fn valid_context(text: String) -> String {
    super::page::context(&text)
}

/// Access to `localStorage`, if the page has it.
pub(crate) struct Store {
    storage: Option<Storage>,
}

impl Store {
    /// Opens `localStorage`.
    pub(crate) fn open() -> Store {
        Store { storage: super::page::storage() }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.storage.as_ref()?.get_item(key).ok().flatten()
    }

    fn set(&self, key: &str, value: &str) {
        if let Some(s) = &self.storage {
            // A full quota loses persistence, not the message: it stays in memory.
            let _ = s.set_item(key, value);
        }
    }

    fn remove(&self, key: &str) {
        if let Some(s) = &self.storage {
            let _ = s.remove_item(key);
        }
    }

    /// The session the hub issued on an earlier visit, shared by every tab of this site.
    pub(crate) fn session(&self) -> Option<String> {
        self.get(SESSION_KEY).filter(|id| natter_protocol::validate_session_id(id).is_ok())
    }

    /// Keeps the session the hub issued (forgets it with `None`).
    pub(crate) fn set_session(&self, session: Option<&str>) {
        match session {
            Some(s) => self.set(SESSION_KEY, s),
            None => self.remove(SESSION_KEY),
        }
    }

    /// Whether the visitor muted the chime on an earlier visit.
    pub(crate) fn muted(&self) -> bool {
        self.get(MUTED_KEY).as_deref() == Some("1")
    }

    /// Remembers the mute switch.
    pub(crate) fn set_muted(&self, muted: bool) {
        if muted {
            self.set(MUTED_KEY, "1")
        } else {
            self.remove(MUTED_KEY)
        }
    }

    /// What has been read, and of which conversation (see [`ReadMark`]).
    pub(crate) fn read_mark(&self) -> Option<ReadMark> {
        ReadMark::parse(&self.get(READ_KEY)?)
    }

    /// Records that `conversation` has been read up to `seq` (never moving it back: another tab
    /// may have read further meanwhile).
    pub(crate) fn save_read(&self, conversation: u64, seq: u64) {
        if self.read_mark().is_some_and(|m| m.conversation == conversation && m.seq >= seq) {
            return;
        }
        self.set(READ_KEY, &ReadMark { conversation, seq }.text());
    }

    /// The outbox a previous page left behind.
    pub(crate) fn outbox(&self) -> Vec<OutboxEntry> {
        self.entries(OUTBOX_KEY)
    }

    /// The outbox of `room` a previous page left behind.
    #[cfg(feature = "rooms")]
    pub(crate) fn room_outbox(&self, room: &str) -> Vec<OutboxEntry> {
        self.entries(&crate::compose::join(&[ROOM_OUTBOX_PREFIX, room]))
    }

    /// Persists the outbox of `room` like [`Store::save_outbox`] (`done`: ids this tab saw
    /// stored or dropped); `None` removes it (the room was left).
    #[cfg(feature = "rooms")]
    pub(crate) fn save_room_outbox(&self, room: &str, outbox: Option<(&[OutboxEntry], &[String])>) {
        let key = crate::compose::join(&[ROOM_OUTBOX_PREFIX, room]);
        let Some((entries, done)) = outbox else { return self.remove(&key) };
        self.save_entries(&key, entries, done);
    }

    /// The outbox entries stored under `key` (none when missing or not what the widget wrote).
    fn entries(&self, key: &str) -> Vec<OutboxEntry> {
        let Some(text) = self.get(key) else { return Vec::new() };
        let Ok(list) = js_sys::JSON::parse(&text).and_then(|v| v.dyn_into::<js_sys::Array>()) else {
            return Vec::new();
        };
        let read = |v: &JsValue, k: &str| js_sys::Reflect::get(v, &JsValue::from_str(k)).ok();
        let entry = |e: &JsValue| {
            Some(OutboxEntry {
                id: read(e, "id")?.as_string()?,
                text: read(e, "text")?.as_string()?,
                time: read(e, "time")?.as_string().unwrap_or_default(),
                context: read(e, "context")
                    .and_then(|c| c.as_string())
                    .map(valid_context)
                    .unwrap_or_default(),
                failed: read(e, "failed").and_then(|f| f.as_bool()).unwrap_or(false),
                refusals: 0,
            })
        };
        // Pushed one by one: `filter_map(..).collect()` was a kilobyte of iterator code.
        let mut entries = Vec::new();
        for e in list.iter() {
            if let Some(e) = entry(&e) {
                entries.push(e);
            }
        }
        entries
    }

    /// Persists this tab's outbox, keeping what other tabs left there unless this tab saw it
    /// acknowledged (removes the key when nothing is left).
    pub(crate) fn save_outbox(&self, entries: &[OutboxEntry], acked: &[String]) {
        self.save_entries(OUTBOX_KEY, entries, acked);
    }

    /// Writes `entries` and what storage holds under `key`, minus `acked`, there (removes the
    /// key when nothing is left): the support outbox's and each room's, one way.
    fn save_entries(&self, key: &str, entries: &[OutboxEntry], acked: &[String]) {
        let all = crate::outbox::merge_for_storage(entries, self.entries(key), acked);
        if all.is_empty() {
            return self.remove(key);
        }
        self.set(key, &crate::wire::outbox(&all));
    }

    /// Forgets the outbox, the rooms' outboxes, the panel's remembered name and what was read
    /// (a logout: what the user typed is not sent as the next visitor, and nothing of the
    /// conversation, nor who they said they were, stays on the device),
    /// and tells the site's other tabs: a `storage` event on [`FORGOTTEN_KEY`] (set, then
    /// removed, so the next time is a change again).
    pub(crate) fn forget_conversation(&self) {
        self.remove(OUTBOX_KEY);
        self.remove(READ_KEY);
        #[cfg(feature = "rooms")]
        self.remove(PANEL_NAME_KEY);
        let Some(s) = &self.storage else { return };
        let len = s.length().unwrap_or(0);
        // (Pushed one by one: an iterator chain is more code in the wasm.)
        let mut rooms = Vec::new();
        for i in 0..len {
            if let Some(k) = s.key(i).ok().flatten().filter(|k| k.starts_with(ROOM_OUTBOX_PREFIX)) {
                rooms.push(k);
            }
        }
        for key in rooms {
            self.remove(&key);
        }
        self.set(FORGOTTEN_KEY, "1");
        self.remove(FORGOTTEN_KEY);
    }
}
