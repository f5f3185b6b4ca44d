//! One module per subcommand group, and what the server-backed ones share ([`profile`]).

pub mod call;
pub mod cert;
pub mod chat;
pub mod demo;
pub mod group;
pub mod history;
pub mod init;
pub mod profile;
pub mod receive;
pub mod send;
pub mod textbook;
pub mod transcript;
pub mod verify;
