//! Placeholder until the hub lands; its owner replaces this file.
