//! Confianza's client library: a profile's sealed local store, the Noise link to the server,
//! enrollment, the trust checks on every identity, and one-to-one messaging.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`profile`] | where a profile lives (`$CONFIANZA_HOME/NAME`, else `$XDG_DATA_HOME/confianza/NAME`) |
//! | [`sealing`] | the store key: AES-256-GCM per secret row, wrapped with Argon2id under a passphrase or kept in a 0600 key file |
//! | [`store`] | one SQLite database per profile: account, pinned CA, sealed keys and sessions, contacts, history |
//! | [`trust`] | the pinned root; identity certificates in bundles (path, revocation by stapled OCSP or CRL, key binding, prekey signatures); the server's Noise certificate |
//! | [`connection`] | Noise Pipes over TCP (IK with the cached server key, XX on first contact), requests multiplexed by id, deliveries and notices |
//! | [`account`] | `init` (keys, enrollment with an RA code, root pinning), `open`, `connect`, prekey replenishment, certificate renewal |
//! | [`messaging`] | sessions from certified bundles, `send_text`, receiving (decrypt, store, then acknowledge), changed identities, safety numbers |
//! | [`attachments`] | files encrypted as a stream, uploaded in resumable chunks, pointers in messages; downloads verified before decryption, saved under sanitised names |
//! | [`groups`] | group membership through the server, sender keys distributed pairwise, one ciphertext fanned out |
//! | [`content`] | the decrypted message content (`proto/content.proto`) |
//!
//! # Guarantees
//!
//! * **No session without a certified bundle.** A bundle is used only after
//!   [`trust::PinnedCa::verify_bundle`]: its certificate chains to the root pinned at
//!   enrollment (checked against the fingerprint the user gave, or trusted on first use and
//!   printed), names the address asked for, is not revoked (stapled OCSP, else CRLs), and
//!   certifies the bundle's identity key, whose signatures cover the prekeys. A changed
//!   identity key for a known contact is refused until the user accepts it.
//! * **The server is authenticated through the PKI**: its Noise key must be the key its
//!   certificate binds to its name under the pinned root.
//! * **Acknowledge after commit.** A delivery is acknowledged only after its plaintext, the
//!   advanced session and the removal of a used one-time prekey are committed in one SQLite
//!   transaction; a redelivered message (same sender and client message id) is dropped.
//!   Outgoing sessions are saved before a send, so no message key is ever used twice.
//! * **Secrets at rest are sealed**; a wrong passphrase or key file is a typed error that
//!   changes nothing, and a damaged store is [`store::StoreError::Corrupt`] or a sealing error,
//!   never a panic.
//!
//! # Example
//!
//! ```no_run
//! use confianza_client::account::{Client, InitOptions};
//! use confianza_client::sealing::Passphrase;
//! use confianza_client::store::Protection;
//! use confianza_pki::seal::SealParams;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = confianza_client::profile::profile_dir("default")?;
//! let (mut alice, enrolled) = Client::init(InitOptions {
//!     dir,
//!     protection: Protection::Passphrase(Passphrase::new("correct horse")?, SealParams::RECOMMENDED),
//!     server: "chat.example.org:7443".into(),
//!     server_name: None,
//!     address: "alice@example.org".into(),
//!     code: "the code from the RA".into(),
//!     expected_ca_fingerprint: None,
//! })
//! .await?;
//! println!("pinned root, compare out of band: {}", enrolled.root_fingerprint);
//! alice.connect().await?;
//! alice.send_text("bob@example.org", "hello").await?;
//! for event in alice.receive_pending().await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod account;
pub mod attachments;
pub mod call;
pub mod connection;
pub mod content;
pub mod groups;
pub mod limits;
pub mod messaging;
pub mod profile;
pub mod sealing;
pub mod store;
pub mod trust;
