//! Noise Pipes: which pattern runs when, and who plays initiator.

pub(crate) mod client;
pub(crate) mod server;
