//! Noise Pipes for Confianza's client–server link, as sans-IO state machines.
//!
//! # Protocols
//!
//! * `Noise_XX_25519_AESGCM_SHA256` on first contact: the client knows nothing of the server.
//! * `Noise_IK_25519_AESGCM_SHA256` to resume: the client cached the server's static key.
//! * `Noise_XXfallback_25519_AESGCM_SHA256` when the IK message does not decrypt at the server
//!   (its key changed, or the client's cache is wrong). The server switches to XXfallback and
//!   **initiates** it, with the client's IK ephemeral key as the pre-message `<- e`; the client
//!   responds. This is the role reversal of the Noise spec (rev34 §10.2) and of noise-c, so the
//!   crate passes the published fallback vectors byte for byte.
//!
//! The handshake is implemented here (spec §5) on RustCrypto's `x25519-dalek`, `aes-gcm`,
//! `sha2` and `hmac`, not on `snow`: snow 0.10 parses the `fallback` modifier, but its builder
//! always starts with no remote ephemeral key and has no setter for one, so the `<- e`
//! pre-message of XXfallback cannot be expressed and the fallback vectors cannot pass. snow would
//! also pull in `ring` and a second, older generation of the RustCrypto crates. The handshake
//! state machine is small (`handshake.rs`, `symmetric.rs`) and is checked against every
//! published vector for these three suites.
//!
//! # Wire format
//!
//! Everything travels in **frames**: a 2-byte big-endian length, then that many bytes, at most
//! 65 535 ([`limits::MAX_FRAME_LEN`], the Noise maximum). One frame carries one message.
//! [`FrameDecoder`] checks a declared length before allocating for it.
//!
//! Each **handshake** frame starts with a 1-byte message type, then the Noise message:
//!
//! | type | direction | contents | Noise payload |
//! | --- | --- | --- | --- |
//! | `0x01` [`wire::XX_HELLO`] | C → S | XX message 1: `e` | empty |
//! | `0x02` [`wire::IK_HELLO`] | C → S | IK message 1: `e, es, s, ss` | empty (encrypted) |
//! | `0x11` [`wire::XX_RESPONSE`] | S → C | XX message 2: `e, ee, s, es` | server certificate |
//! | `0x12` [`wire::IK_RESPONSE`] | S → C | IK message 2: `e, ee, se` | server certificate |
//! | `0x13` [`wire::FALLBACK_RESPONSE`] | S → C | XXfallback message 1: `e, ee, s, se` | server certificate |
//! | `0x21` [`wire::XX_FINISH`] | C → S | XX message 3: `s, se` | client payload |
//! | `0x22` [`wire::IK_FINISH`] | C → S | first IK transport message | client payload |
//! | `0x23` [`wire::FALLBACK_FINISH`] | C → S | XXfallback message 2: `s, es` | client payload |
//!
//! Every handshake is three frames: hello, response, finish. **Transport** frames that follow
//! are bare Noise transport messages (ciphertext and 16-byte tag), with no type byte. The
//! prologue defaults to [`wire::DEFAULT_PROLOGUE`].
//!
//! # Guarantees
//!
//! * **The server is authenticated through the PKI.** The server's handshake payload is its
//!   certificate (opaque here); [`UnauthenticatedServer::authenticate`] hands key and
//!   certificate to a [`ServerKeyVerifier`] and only an accepted server yields
//!   [`AuthenticatedServer`] and a [`Transport`]. The client's payload is sent only after that.
//! * **The client is authenticated by its static key**, which [`ClientIdentity`] reports after
//!   the final message; matching it against registered devices is the server's job.
//! * **Replaying an IK hello has no effect.** The IK hello carries no payload (no 0-RTT data),
//!   [`ServerHandshake::accept`] stores nothing, and the handshake completes only with the
//!   client's finish message, which needs the client's ephemeral and static private keys. A
//!   replayer gets a response it cannot read and a handshake it cannot finish.
//! * **Transport messages** use the Noise nonce counter: replayed, reordered or altered
//!   messages fail without changing state; a direction stops after `2^64 - 1` messages.
//! * No IO, clock or global RNG: randomness comes in as `&mut impl CryptoRng`. The optional
//!   `tokio` feature adds an async driver (module `driver`: `connect`, `accept`,
//!   `NoiseStream`) with the same frame limits.
//!
//! # Example
//!
//! ```
//! use confianza_noise::{
//!     ClientConfig, ClientHandshake, ServerConfig, ServerHandshake, ServerKeyRejected,
//!     StaticKeyPair, PublicKey,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand::rng();
//! let server_key = StaticKeyPair::generate(&mut rng);
//! let server = ServerConfig::new(server_key, b"certificate for chat.example.org".to_vec())?;
//! let client = ClientConfig::new(StaticKeyPair::generate(&mut rng));
//!
//! // The PKI check, done by the caller (here: accept one certificate).
//! let verifier = |_key: &PublicKey, certificate: &[u8]| {
//!     if certificate == b"certificate for chat.example.org" { Ok(()) }
//!     else { Err(ServerKeyRejected::new("unknown certificate")) }
//! };
//!
//! // First contact: XX.
//! let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng)?;
//! let (pending, response) = ServerHandshake::accept(&server, &hello, &mut rng)?;
//! let unverified = handshake.read_response(&response)?;
//! let mut client_end = unverified.authenticate(&verifier, b"device 1")?;
//! let mut server_end = pending.finish(&client_end.final_message)?;
//! assert_eq!(server_end.client.payload(), b"device 1");
//!
//! let ciphertext = client_end.transport.encrypt(b"hello")?;
//! assert_eq!(server_end.transport.decrypt(&ciphertext)?, b"hello");
//!
//! // Next time: IK with the cached key.
//! let cached = *client_end.server.static_key();
//! let (handshake, hello) = ClientHandshake::start(&client, Some(cached), &mut rng)?;
//! let (pending, response) = ServerHandshake::accept(&server, &hello, &mut rng)?;
//! let client_end = handshake.read_response(&response)?.authenticate(&verifier, b"")?;
//! pending.finish(&client_end.final_message)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
mod frame;
pub mod fuzzing;
mod handshake;
mod keys;
pub mod limits;
mod pipes;
mod symmetric;
mod transport;
mod verify;
pub mod wire;

#[cfg(feature = "tokio")]
pub mod driver;

#[cfg(test)]
mod tests;

pub use error::{
    AcceptError, AuthenticateError, DecodeFrameError, EncodeFrameError, FinishError,
    FrameLimitError, HandshakeMessageError, ReadResponseError, ReceiveError, SendError,
    ServerConfigError, StartError,
};
pub use frame::{FrameDecoder, check_frame_header, encode_frame, frame_header};
pub use keys::{PUBLIC_KEY_LEN, PublicKey, StaticKeyPair};
pub use pipes::client::{
    AuthenticatedServer, ClientConfig, ClientEstablished, ClientHandshake, UnauthenticatedServer,
};
pub use pipes::server::{ClientIdentity, ServerConfig, ServerEstablished, ServerHandshake};
pub use transport::{Transport, TransportReceiver, TransportSender};
pub use verify::{ServerKeyRejected, ServerKeyVerifier};
pub use wire::HandshakePattern;
