//! Placeholder; replaced by the hub.
fn main() {}
