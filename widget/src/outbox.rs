//! The outbox: visitor messages not yet acknowledged by the hub, in the order they were typed.
//!
//! It is the single source of truth for "what still has to go out": entries survive a dropped
//! link and (serialised by the web layer into `localStorage`) a reload; they are re-sent with
//! the same id until the hub acknowledges them, and the hub's de-duplication by id makes a
//! re-send of something it already stored harmless.

use crate::prelude::*;

use serde::{Deserialize, Serialize};

/// One message waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutboxEntry {
    /// Client-made id; the hub stores it and de-duplicates re-sends by it.
    pub id: String,
    /// The text as typed.
    pub text: String,
    /// When it was typed (RFC 3339).
    pub time: String,
    /// The page context when it was typed (a JSON object's text; empty for none). Kept with
    /// the message so that a re-send, even from the next page, says where it was written.
    #[serde(default)]
    pub context: String,
    /// Refused by the hub (or given up on); waits for the visitor's "retry".
    #[serde(default)]
    pub failed: bool,
    /// How many times a retryable refusal came back; several in a row make it `failed`.
    #[serde(default, skip)]
    pub refusals: u32,
}

/// Unacknowledged messages in typing order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outbox {
    entries: Vec<OutboxEntry>,
}

impl Outbox {
    /// An outbox holding what a previous page left behind.
    pub(crate) fn restore(entries: Vec<OutboxEntry>) -> Self {
        let mut out = Outbox::default();
        for e in entries {
            if !out.contains(&e.id) {
                out.entries.push(e);
            }
        }
        out
    }

    /// Queues a new message (once per id).
    pub(crate) fn push(&mut self, entry: OutboxEntry) {
        if !self.contains(&entry.id) {
            self.entries.push(entry);
        }
    }

    /// Whether `id` is still waiting.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// Removes `id` once acknowledged (or seen stored); returns whether it was there.
    pub(crate) fn acknowledge(&mut self, id: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        before != self.entries.len()
    }

    /// Entries to send now, oldest first: everything not marked failed.
    pub(crate) fn sendable(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter().filter(|e| !e.failed)
    }

    /// The oldest sendable entry (HTTP sends one at a time to keep the order).
    pub(crate) fn first_sendable(&self) -> Option<&OutboxEntry> {
        self.sendable().next()
    }

    /// Marks `id` failed (or not); returns whether it was there.
    pub(crate) fn set_failed(&mut self, id: &str, failed: bool) -> bool {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.failed = failed;
                e.refusals = 0;
                true
            }
            None => false,
        }
    }

    /// Counts a retryable refusal of `id`; returns the count so far.
    pub(crate) fn refused(&mut self, id: &str) -> u32 {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.refusals += 1;
                e.refusals
            }
            None => 0,
        }
    }

    /// Everything, for persisting.
    pub(crate) fn entries(&self) -> &[OutboxEntry] {
        &self.entries
    }

    /// Number of waiting entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What to write to `localStorage`: this tab's outbox plus the entries other tabs of the
/// session stored there, minus what this tab has seen acknowledged.
///
/// Tabs share one storage key; writing only this tab's outbox would erase a message another
/// offline tab is still holding, and a reload of that tab would then lose it.
pub(crate) fn merge_for_storage(
    mine: &[OutboxEntry],
    stored: Vec<OutboxEntry>,
    acked: &[String],
) -> Vec<OutboxEntry> {
    let mut all = mine.to_vec();
    for e in stored {
        if !acked.contains(&e.id) && !all.iter().any(|x| x.id == e.id) {
            all.push(e);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keeps_other_tabs_messages_until_acknowledged() {
        let entry = |id: &str| new(id, id);
        let mine = [entry("a")];
        let stored = vec![entry("a"), entry("other-tab"), entry("done")];
        let merged = merge_for_storage(&mine, stored, &["done".to_string()]);
        let ids: Vec<&str> = merged.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "other-tab"]);
    }

    fn new(id: &str, text: &str) -> OutboxEntry {
        OutboxEntry {
            id: id.into(),
            text: text.into(),
            time: "t".into(),
            context: String::new(),
            failed: false,
            refusals: 0,
        }
    }

    fn ids(o: &Outbox) -> Vec<&str> {
        o.sendable().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn keeps_order_and_removes_on_ack() {
        let mut o = Outbox::default();
        for id in ["a", "b", "c"] {
            o.push(new(id, &format!("text {id}")));
        }
        assert_eq!(ids(&o), ["a", "b", "c"]);
        assert!(o.acknowledge("b"));
        assert!(!o.acknowledge("b"));
        assert_eq!(ids(&o), ["a", "c"]);
        assert_eq!(o.first_sendable().map(|e| e.id.as_str()), Some("a"));
    }

    #[test]
    fn duplicate_ids_are_kept_once() {
        let mut o = Outbox::default();
        o.push(new("a", "x"));
        o.push(new("a", "y"));
        assert_eq!(o.len(), 1);
        let entries = vec![o.entries()[0].clone(), o.entries()[0].clone()];
        assert_eq!(Outbox::restore(entries).len(), 1);
    }

    #[test]
    fn failed_entries_wait_for_retry() {
        let mut o = Outbox::default();
        o.push(new("a", "x"));
        o.push(new("b", "y"));
        assert!(o.set_failed("a", true));
        assert_eq!(ids(&o), ["b"]);
        assert!(o.set_failed("a", false));
        assert_eq!(ids(&o), ["a", "b"]);
        assert!(!o.set_failed("zz", true));
    }

    #[test]
    fn refusals_count_up() {
        let mut o = Outbox::default();
        o.push(new("a", "x"));
        assert_eq!(o.refused("a"), 1);
        assert_eq!(o.refused("a"), 2);
        assert_eq!(o.refused("nope"), 0);
    }
}
