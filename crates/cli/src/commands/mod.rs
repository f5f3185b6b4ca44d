//! One module per subcommand.

pub mod cert;
pub mod demo;
pub mod textbook;
