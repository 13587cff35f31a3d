//! Composing texts without `core::fmt`: whole numbers in decimal, and parts joined.
//!
//! `format!`, `to_string()` and `{}` on a number bring the formatting machinery into the wasm
//! (`Formatter`, padding, the `Display` of each integer type): kilobytes a visitor downloads
//! for a seq, a count or a z-index. The widget writes numbers with [`push_decimal`] and builds
//! its few composed texts with [`join`] instead; the tests hold them to what `format!` writes.

use crate::prelude::*;

/// Appends `n` in decimal to `out`.
pub(crate) fn push_decimal(out: &mut String, n: u64) {
    // Most significant digit first; at most 20 deep. (No digit buffer: indexing one would
    // bring the bounds-check panic and its formatting back.)
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// The parts, one after another.
pub(crate) fn join(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_format_writes_them() {
        for n in [0, 1, 7, 9, 10, 99, 100, 4_096, 2_147_483_647, 9_007_199_254_740_991, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, format!("{n}"));
        }
        let mut s = String::from("seq ");
        push_decimal(&mut s, 42);
        assert_eq!(s, "seq 42");
    }

    #[test]
    fn join_concatenates() {
        assert_eq!(join(&["wss://", "hub.example", "/ws/chat"]), "wss://hub.example/ws/chat");
        assert_eq!(join(&["a", "", "bc", "\u{e9}"]), "abc\u{e9}");
        assert_eq!(join(&[]), "");
    }
}
