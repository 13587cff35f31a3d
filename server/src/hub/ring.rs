//! `Ring`: the last N stored messages of one conversation, kept in memory so that a resume
//! (`after=<seq>`) and a new tab's recent history are answered without asking the store.
//!
//! Bounded twice: by count (`--ring-size`) and by bytes (`--ring-bytes`, measured with
//! [`weight`]), so a conversation of a few huge messages holds no more memory than one of many
//! small ones. The newest message is always kept, whatever its size.
//!
//! The ring holds a *contiguous* run of seqs ending at the newest one this hub has seen. It is
//! fed by the fan-out (every stored message passes through it) and warmed from the store when a
//! conversation is first used. When it cannot answer exactly, it says so (`None`) and the hub
//! asks the store: a cache never decides what a client misses.

use std::collections::VecDeque;

use crate::store::{HistoryPage, StoredFrame};

/// About how many bytes a stored message holds in memory, and costs to send: its frame's JSON
/// text plus a fixed allowance for the entry that holds it.
pub(crate) fn weight(message: &StoredFrame) -> usize {
    const FIXED: usize = 64;
    FIXED + message.json.len()
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Ring {
    capacity: usize,
    /// Most bytes (by [`weight`]) the entries may hold together; the newest is kept regardless.
    max_bytes: usize,
    /// The entries' total weight.
    bytes: usize,
    /// Oldest first, seqs contiguous.
    entries: VecDeque<StoredFrame>,
    /// The seq the next stored message will have; 0 while unknown (nothing seen, not warmed).
    next: u64,
    /// The ring holds everything the store still has: nothing older exists.
    whole: bool,
}

impl Ring {
    /// An empty ring of at most `capacity` messages and `max_bytes` bytes that knows nothing yet.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Ring {
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            entries: VecDeque::new(),
            next: 0,
            whole: false,
        }
    }

    /// The bytes (by [`weight`]) the ring holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether one more message of `weight` bytes fits in front of what is held.
    fn fits_in_front(&self, weight: usize) -> bool {
        self.entries.len() < self.capacity && self.bytes + weight <= self.max_bytes
    }

    /// Drops the oldest entries until both bounds hold (the newest always stays).
    fn trim(&mut self) {
        while self.entries.len() > 1 && (self.entries.len() > self.capacity || self.bytes > self.max_bytes) {
            if let Some(m) = self.entries.pop_front() {
                self.bytes -= weight(&m);
                self.whole = false;
            }
        }
    }

    /// The newest seq known, when known.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        (self.next > 0).then(|| self.next - 1)
    }

    fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next, |e| e.seq)
    }

    /// Records a newly stored message (from the fan-out, in seq order).
    pub(crate) fn push(&mut self, message: StoredFrame) {
        let seq = message.seq;
        if self.next != 0 && seq < self.next {
            return; // already seen
        }
        if self.next != 0 && seq > self.next {
            // A hole (a message this hub never saw): start again from here rather than keep a
            // run that is not contiguous.
            self.entries.clear();
            self.bytes = 0;
            self.whole = false;
        }
        if self.next == 0 {
            // The first message this ring sees: it holds everything only if nothing came before.
            self.whole = seq == 1;
        }
        self.bytes += weight(&message);
        self.entries.push_back(message);
        self.next = seq + 1;
        self.trim();
    }

    /// Every message after `after`, if the ring holds all of them.
    pub(crate) fn since(&self, after: u64) -> Option<Vec<StoredFrame>> {
        let last = self.last_seq()?;
        if after >= last {
            return Some(Vec::new());
        }
        if after + 1 < self.first_seq() {
            return None;
        }
        Some(self.entries.iter().filter(|e| e.seq > after).cloned().collect())
    }

    /// The newest `n` messages, if the ring can tell.
    pub(crate) fn recent(&self, n: usize) -> Option<Vec<StoredFrame>> {
        self.last_seq()?;
        if self.entries.len() < n && !self.whole {
            return None;
        }
        let skip = self.entries.len().saturating_sub(n);
        Some(self.entries.iter().skip(skip).cloned().collect())
    }

    /// Records that the conversation has no message at all (a session issued just now, which
    /// nobody else knows yet), so the ring answers for it without a read from the store. Does
    /// nothing once the ring knows where the conversation is.
    pub(crate) fn known_empty(&mut self) {
        let empty = HistoryPage { messages: Vec::new(), last_seq: 0, first_available: 1 };
        self.merge(&empty);
    }

    /// Merges a page read from the store (before this hub's fan-out entries, or overlapping
    /// them). Returns `false` when page and ring leave a hole between them, so the caller reads
    /// again.
    pub(crate) fn merge(&mut self, page: &HistoryPage) -> bool {
        let Some(page_last) = page.newest() else {
            if self.next == 0 {
                self.next = page.last_seq + 1;
                self.whole = page.first_available > page.last_seq;
            }
            return true;
        };
        if self.next == 0 {
            if page_last != page.last_seq {
                // The page stops before the conversation's end (a capped resume); it is not
                // the tail, so the ring does not adopt it.
                return true;
            }
            // The newest that fit, taken from the end.
            for m in page.messages.iter().rev() {
                let w = weight(m);
                if !self.entries.is_empty() && !self.fits_in_front(w) {
                    break;
                }
                self.entries.push_front(m.clone());
                self.bytes += w;
            }
            self.next = page_last + 1;
            self.whole = self.entries.front().is_some_and(|e| e.seq == page.first_available);
            return true;
        }
        let first = self.first_seq();
        if page_last + 1 < first {
            return false;
        }
        for m in page.messages.iter().rev() {
            if m.seq >= first {
                continue;
            }
            let w = weight(m);
            if !self.fits_in_front(w) || m.seq + 1 != self.first_seq() {
                break;
            }
            self.entries.push_front(m.clone());
            self.bytes += w;
        }
        self.whole = self.entries.front().is_some_and(|e| e.seq == page.first_available);
        true
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::{ConversationMessage, ServerMessage};

    use super::*;

    fn stored(m: ConversationMessage) -> StoredFrame {
        StoredFrame::encode(&ServerMessage::User(m)).expect("a stored kind")
    }

    fn msg(seq: u64) -> StoredFrame {
        stored(ConversationMessage { id: format!("m{seq}"), seq, ..Default::default() })
    }

    fn seqs(v: Option<Vec<StoredFrame>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|m| m.seq).collect())
    }

    #[test]
    fn a_ring_told_its_conversation_is_empty_answers_without_the_store() {
        let mut ring = Ring::new(10, 1 << 20);
        assert_eq!(seqs(ring.recent(5)), None, "a ring that knows nothing cannot answer");
        ring.known_empty();
        assert_eq!((seqs(ring.since(0)), seqs(ring.recent(5))), (Some(vec![]), Some(vec![])));
        ring.push(msg(1));
        assert_eq!(seqs(ring.since(0)), Some(vec![1]));
        // Once the ring knows where the conversation is, being told again changes nothing.
        ring.known_empty();
        assert_eq!((ring.last_seq(), seqs(ring.recent(5))), (Some(1), Some(vec![1])));
    }

    #[test]
    fn answers_only_what_it_holds() {
        let mut r = Ring::new(3, usize::MAX);
        assert_eq!(seqs(r.since(0)), None, "knows nothing yet");
        for s in 1..=5 {
            r.push(msg(s));
        }
        assert_eq!(seqs(r.since(2)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(r.since(5)), Some(vec![]));
        assert_eq!(seqs(r.since(1)), None, "seq 2 was evicted");
        assert_eq!(seqs(r.recent(2)), Some(vec![4, 5]));
        assert_eq!(seqs(r.recent(10)), None, "older ones may exist");
        let mut r = Ring::new(3, usize::MAX);
        r.push(msg(1));
        assert_eq!(seqs(r.recent(10)), Some(vec![1]), "seq 1 first: nothing older exists");
    }

    #[test]
    fn bounded_by_bytes_as_well_as_count() {
        let big = |seq: u64| {
            stored(ConversationMessage {
                id: format!("m{seq}"),
                seq,
                message: "x".repeat(1000),
                ..Default::default()
            })
        };
        let each = weight(&big(10));
        let mut r = Ring::new(100, each * 3);
        for s in 1..=10 {
            r.push(big(s));
        }
        assert_eq!(seqs(r.since(7)), Some(vec![8, 9, 10]), "three fit");
        assert_eq!(seqs(r.since(6)), None, "the rest is the store's to answer");
        assert_eq!(r.bytes(), weight(&big(8)) + weight(&big(9)) + weight(&big(10)));
        // One message larger than the whole bound is still kept: the newest always is.
        let mut r = Ring::new(100, 10);
        r.push(big(1));
        assert_eq!(seqs(r.recent(5)), Some(vec![1]));
        // Warming from the store stops at the bound too.
        let mut r = Ring::new(100, weight(&big(5)) * 2);
        let page = HistoryPage { messages: (1..=5).map(big).collect(), last_seq: 5, first_available: 1 };
        assert!(r.merge(&page));
        assert_eq!(seqs(r.since(3)), Some(vec![4, 5]));
        assert_eq!(seqs(r.recent(5)), None);
    }

    #[test]
    fn warms_from_the_store() {
        let mut r = Ring::new(10, usize::MAX);
        r.push(msg(4));
        let page = HistoryPage { messages: (1..=3).map(msg).collect(), last_seq: 3, first_available: 1 };
        assert!(r.merge(&page));
        assert_eq!(seqs(r.since(0)), Some(vec![1, 2, 3, 4]));
        assert_eq!(seqs(r.recent(10)), Some(vec![1, 2, 3, 4]), "whole conversation held");
        let mut r = Ring::new(10, usize::MAX);
        r.push(msg(9));
        assert!(!r.merge(&page), "hole between 3 and 9");
        let mut r = Ring::new(10, usize::MAX);
        assert!(r.merge(&HistoryPage { messages: vec![], last_seq: 0, first_available: 1 }));
        assert_eq!(seqs(r.recent(5)), Some(vec![]), "empty conversation is known empty");
        r.push(msg(1));
        assert_eq!(seqs(r.since(0)), Some(vec![1]));
    }
}
