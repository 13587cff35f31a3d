//! Natter hub library (placeholder until the hub lands: only the store).
pub mod store;
