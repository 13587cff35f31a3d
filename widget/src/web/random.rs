//! Random ids and the jitter seed, from the browser's `crypto.getRandomValues`.
//!
//! Session ids and message ids must be unique across tabs and devices (the hub
//! de-duplicates re-sends by message id, and a session id is the key to a conversation);
//! the backoff jitter only needs a seed that differs from page to page, so that the tabs of a
//! mass reconnect spread out instead of retrying in step.

use crate::prelude::*;

/// 128 random bits as 32 lower-case hex digits: a session id or a message id.
pub(crate) fn hex_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// A seed for the state machine's backoff jitter.
pub(crate) fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Fills `buf` from `crypto.getRandomValues`; falls back to `Math.random` only if the page has
/// no Web Crypto at all (ids stay unique enough for de-duplication; the hub never trusts them).
fn fill(buf: &mut [u8]) {
    if !super::page::random(buf) {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}
