//! Ids the hub makes for messages it writes itself. (Session ids and public member ids are
//! keyed with the hub's secret: see `identity::session`.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes message ids for messages the hub writes itself (bot replies, user messages sent
/// without an id).
///
/// Each id is `h` + 32 hex digits of 128 bits from the operating system's random source, so
/// nobody can guess one in advance (a predictable id could be sent ahead of the hub's own
/// message). Ids only need to be unique within a conversation, across every hub sharing it:
/// 128 random bits are, without coordination.
#[derive(Debug)]
pub(crate) struct IdMaker {
    /// Only for the fallback when the OS's random source fails (it does not on any supported
    /// system): a keyed hash of a counter, still unpredictable without the process's key.
    fallback: RandomState,
    counter: AtomicU64,
}

impl Default for IdMaker {
    fn default() -> Self {
        IdMaker { fallback: RandomState::new(), counter: AtomicU64::new(0) }
    }
}

impl IdMaker {
    /// A fresh id: `h` + 32 lowercase hex digits.
    pub(crate) fn next(&self) -> String {
        let mut bits = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut bits) {
            tracing::error!(error = %e, "the OS random source failed; making an id from a keyed hash");
            let n = self.counter.fetch_add(2, Ordering::Relaxed);
            bits[..8].copy_from_slice(&self.fallback.hash_one(n).to_le_bytes());
            bits[8..].copy_from_slice(&self.fallback.hash_one(n + 1).to_le_bytes());
        }
        let mut id = String::with_capacity(33);
        id.push('h');
        push_hex(&mut id, &bits);
        id
    }
}

/// Appends `bytes` as lowercase hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_valid_and_random() {
        let m = IdMaker::default();
        let (a, b) = (m.next(), m.next());
        assert_ne!(a, b);
        assert!(natter_protocol::validate_message_id(&a).is_ok());
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('h') && a[1..].bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        // Not a prefix plus a counter: consecutive ids share no long prefix (a shared run of
        // 16 hex digits by chance is a 2^-64 event).
        assert_ne!(a[..17], b[..17], "{a} / {b}");
    }
}
