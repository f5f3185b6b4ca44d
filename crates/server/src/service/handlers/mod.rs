//! Request handlers, one file per area, each an `impl Session` block.

mod account;
mod blobs;
mod enroll;
mod groups;
mod messages;
mod prekeys;

pub use prekeys::check_pre_key_signatures;
