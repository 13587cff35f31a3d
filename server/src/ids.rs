//! Ids the hub makes for messages it writes itself. (Session ids and public member ids are
//! keyed with the hub's secret: see `identity::session`.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let m = IdMaker::default();
        assert_ne!(m.next(), m.next());
        assert!(natter_protocol::validate_message_id(&m.next()).is_ok());
    }
}
