//! `Ring`: the last N stored messages of one conversation, kept in memory so that a resume
//! (`after=<seq>`) and a new tab's recent history are answered without asking the store.
//!
//! The ring holds a *contiguous* run of seqs ending at the newest one this hub has seen. It is
//! fed by the fan-out (every stored message passes through it) and warmed from the store when a
//! conversation is first used. When it cannot answer exactly, it says so (`None`) and the hub
//! asks the store: a cache never decides what a client misses.

use std::collections::VecDeque;

use natter_protocol::ServerMessage;

use crate::store::HistoryPage;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Ring {
    capacity: usize,
    /// `(seq, frame)`, oldest first, seqs contiguous.
    entries: VecDeque<(u64, ServerMessage)>,
    /// The seq the next stored message will have; 0 while unknown (nothing seen, not warmed).
    next: u64,
    /// The ring holds everything the store still has: nothing older exists.
    whole: bool,
}

impl Ring {
    /// An empty ring that knows nothing yet.
    pub(crate) fn new(capacity: usize) -> Self {
        Ring { capacity: capacity.max(1), entries: VecDeque::new(), next: 0, whole: false }
    }

    /// The newest seq known, when known.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        (self.next > 0).then(|| self.next - 1)
    }

    fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next, |e| e.0)
    }

    /// Records a newly stored message (from the fan-out, in seq order).
    pub(crate) fn push(&mut self, seq: u64, message: ServerMessage) {
        if self.next != 0 && seq < self.next {
            return; // already seen
        }
        if self.next != 0 && seq > self.next {
            // A hole (a message this hub never saw): start again from here rather than keep a
            // run that is not contiguous.
            self.entries.clear();
            self.whole = false;
        }
        if self.next == 0 {
            // The first message this ring sees: it holds everything only if nothing came before.
            self.whole = seq == 1;
        }
        self.entries.push_back((seq, message));
        self.next = seq + 1;
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
            self.whole = false;
        }
    }

    /// Every message after `after`, if the ring holds all of them.
    pub(crate) fn since(&self, after: u64) -> Option<Vec<ServerMessage>> {
        let last = self.last_seq()?;
        if after >= last {
            return Some(Vec::new());
        }
        if after + 1 < self.first_seq() {
            return None;
        }
        Some(self.entries.iter().filter(|e| e.0 > after).map(|e| e.1.clone()).collect())
    }

    /// The newest `n` messages, if the ring can tell.
    pub(crate) fn recent(&self, n: usize) -> Option<Vec<ServerMessage>> {
        self.last_seq()?;
        if self.entries.len() < n && !self.whole {
            return None;
        }
        let skip = self.entries.len().saturating_sub(n);
        Some(self.entries.iter().skip(skip).map(|e| e.1.clone()).collect())
    }

    /// Merges a page read from the store (before this hub's fan-out entries, or overlapping
    /// them). Returns `false` when page and ring leave a hole between them, so the caller reads
    /// again.
    pub(crate) fn merge(&mut self, page: &HistoryPage) -> bool {
        let page_last = page.messages.last().and_then(ServerMessage::seq);
        let Some(page_last) = page_last else {
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
            let skip = page.messages.len().saturating_sub(self.capacity);
            for m in page.messages.iter().skip(skip) {
                if let Some(seq) = m.seq() {
                    self.entries.push_back((seq, m.clone()));
                }
            }
            self.next = page_last + 1;
            self.whole = self.entries.front().is_some_and(|e| e.0 == page.first_available);
            return true;
        }
        let first = self.first_seq();
        if page_last + 1 < first {
            return false;
        }
        for m in page.messages.iter().rev() {
            let Some(seq) = m.seq() else { continue };
            if seq >= first {
                continue;
            }
            if self.entries.len() >= self.capacity || seq + 1 != self.first_seq() {
                break;
            }
            self.entries.push_front((seq, m.clone()));
        }
        self.whole = self.entries.front().is_some_and(|e| e.0 == page.first_available);
        true
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::ConversationMessage;

    use super::*;

    fn msg(seq: u64) -> ServerMessage {
        ServerMessage::User(ConversationMessage { id: format!("m{seq}"), seq, ..Default::default() })
    }

    fn seqs(v: Option<Vec<ServerMessage>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().filter_map(ServerMessage::seq).collect())
    }

    #[test]
    fn answers_only_what_it_holds() {
        let mut r = Ring::new(3);
        assert_eq!(seqs(r.since(0)), None, "knows nothing yet");
        for s in 1..=5 {
            r.push(s, msg(s));
        }
        assert_eq!(seqs(r.since(2)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(r.since(5)), Some(vec![]));
        assert_eq!(seqs(r.since(1)), None, "seq 2 was evicted");
        assert_eq!(seqs(r.recent(2)), Some(vec![4, 5]));
        assert_eq!(seqs(r.recent(10)), None, "older ones may exist");
        let mut r = Ring::new(3);
        r.push(1, msg(1));
        assert_eq!(seqs(r.recent(10)), Some(vec![1]), "seq 1 first: nothing older exists");
    }

    #[test]
    fn warms_from_the_store() {
        let mut r = Ring::new(10);
        r.push(4, msg(4));
        let page = HistoryPage { messages: (1..=3).map(msg).collect(), last_seq: 3, first_available: 1 };
        assert!(r.merge(&page));
        assert_eq!(seqs(r.since(0)), Some(vec![1, 2, 3, 4]));
        assert_eq!(seqs(r.recent(10)), Some(vec![1, 2, 3, 4]), "whole conversation held");
        let mut r = Ring::new(10);
        r.push(9, msg(9));
        assert!(!r.merge(&page), "hole between 3 and 9");
        let mut r = Ring::new(10);
        assert!(r.merge(&HistoryPage { messages: vec![], last_seq: 0, first_available: 1 }));
        assert_eq!(seqs(r.recent(5)), Some(vec![]), "empty conversation is known empty");
        r.push(1, msg(1));
        assert_eq!(seqs(r.since(0)), Some(vec![1]));
    }
}
