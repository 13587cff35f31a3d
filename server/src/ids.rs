//! Ids the hub makes: message ids for what it writes itself, and the public member id that
//! stands for a session wherever others can see it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Makes message ids for messages the hub writes itself (bot replies, user messages sent
/// without an id).
///
/// Ids must be unique within a conversation even when several hubs share it through Redis, so
/// each hub starts from a random 64-bit prefix. `RandomState` is seeded from the OS's random
/// source, which spares a dependency on `rand` for one number.
#[derive(Debug)]
pub(crate) struct IdMaker {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for IdMaker {
    fn default() -> Self {
        IdMaker { prefix: RandomState::new().hash_one(0x6e61_7474_6572_u64), counter: AtomicU64::new(0) }
    }
}

impl IdMaker {
    /// A fresh id: `h` + 16 hex digits of this hub's prefix + a counter.
    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("h{:016x}{n:x}", self.prefix)
    }
}

/// The public id of the user behind a session: `u_` + the first 16 hex digits of the SHA-256 of
/// the session id. Room members see this, never the session id, which is a bearer credential.
pub fn member_id(session: &str) -> String {
    let digest = Sha256::digest(session.as_bytes());
    let mut out = String::with_capacity(18);
    out.push_str("u_");
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_is_hash_prefix() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(member_id("abc"), "u_ba7816bf8f01cfea");
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let m = IdMaker::default();
        assert_ne!(m.next(), m.next());
        assert!(natter_protocol::validate_message_id(&m.next()).is_ok());
    }
}
