//! Confianza's client–server protocol: the frames a client and a server exchange inside a Noise
//! Pipes channel, as typed and validated Rust values.
//!
//! # Frames
//!
//! One frame travels in one Noise transport message (at most
//! [`limits::MAX_FRAME_PAYLOAD_LEN`] = 65 519 bytes). A client sends [`ClientFrame`]s: a
//! [`Request`] with a client-chosen id, or an [`ClientFrame::Ack`] of a delivery. A server sends
//! [`ServerFrame`]s: a [`Response`] echoing the request id (a [`ResponseBody`] or an
//! [`ApiError`] with its [`ErrorCode`]), a [`Delivery`] pushed from the device's mailbox (an
//! [`Envelope`] or a [`DeliveryReceipt`], each acknowledged by id once handled durably), or a
//! [`Notice`] (membership changed, prekeys low, certificate expiring, mailbox drained). The
//! schema is `proto/api.proto` (package `confianza.api.v1`); its generated types stay private.
//!
//! Before any frame, the server's Noise handshake message carries a [`ServerHandshakePayload`]:
//! its Noise certificate and the CA chain, so a client authenticates the server before it sends
//! anything.
//!
//! | area | requests |
//! | --- | --- |
//! | enrollment | `EnrollChallenge`, `Enroll` (RA code, keys, [`proof_message`] signed by the identity key) |
//! | prekeys | `UploadPreKeys`, `GetPreKeyCount`, `FetchBundle` (bundles with certificate and stapled OCSP) |
//! | messages | `Send` (one envelope per recipient device), `SendGroup` (one sender-key ciphertext) |
//! | groups | `GroupCreate`, `GroupAddMembers`, `GroupRemoveMembers`, `GroupLeave`, `GroupList`, `GroupGet` |
//! | blobs | `BlobCreate`, `BlobUpload`, `BlobStatus` (resume), `BlobDownload` |
//! | certificates | `RenewCertificate`, `RevokeCertificate` |
//! | account | `WhoAmI`, `ListDevices` |
//!
//! # Conversation rules
//!
//! * Requests may be pipelined; responses can come in any order and are matched by id
//!   ([`ResponseBody::answers`] checks that a response fits its request).
//! * A device's first connection enrolls: `EnrollChallenge`, then `Enroll` with the Noise
//!   static key the connection was authenticated with. Every other request comes from a
//!   registered device's Noise key; the server answers `Unauthenticated` otherwise.
//! * The server pushes deliveries as they arrive, then [`Notice::MailboxDrained`] once the
//!   backlog queued at connection time is out. The client acknowledges each delivery after it
//!   has decrypted and stored it ([`ClientFrame::Ack`], batched); the server deletes only then,
//!   and pushes at most [`limits::MAX_ACKS_PER_FRAME`] unacknowledged deliveries at a time.
//! * A send is acknowledged (`Sent`) only after the server has stored it durably; resending
//!   with the same client message id stores nothing new (`duplicates`).
//!
//! # Guarantees
//!
//! * **Decoding validates everything** and never panics: the buffer length before parsing,
//!   required fields, fixed byte lengths (33-byte keys, 1 569-byte Kyber keys, 64-byte
//!   signatures, 16-byte ids), enumerations, ranges and every count and length in [`limits`].
//!   A [`DecodeError`] means the peer broke the protocol and its connection should be closed,
//!   with two exceptions for newer peers: [`DecodeError::UnknownRequest`] (answer
//!   [`ErrorCode::Unsupported`] with its id) and [`DecodeError::UnknownNotice`] (ignore it).
//! * **Encoding runs the same checks**, so a frame that encodes always decodes; one that would
//!   not fit a Noise message is refused with [`EncodeError::FrameTooLarge`] before it is sent.
//! * Keys, certificates and Signal messages are opaque bytes here: verifying them is the job of
//!   `confianza-pki` and `confianza-protocol`. No IO, no clock, no randomness.
//!
//! # Example
//!
//! ```
//! use confianza_api::{ClientFrame, DeviceSelector, Request, RequestBody};
//!
//! let frame = ClientFrame::Request(Request {
//!     id: 7,
//!     body: RequestBody::FetchBundle {
//!         address: "bob@example.org".into(),
//!         device: DeviceSelector::All,
//!     },
//! });
//! let bytes = frame.encode()?;
//! assert_eq!(ClientFrame::decode(&bytes)?, frame);
//!
//! // Anything else is refused with a typed error, never a panic.
//! assert!(ClientFrame::decode(b"\xff\xff not a frame").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod check;
mod codec;
mod error;
mod frames;
mod handshake;
pub mod limits;
mod proto;
mod types;

pub use codec::{decode_client_frame, decode_server_frame};
pub use error::{ApiError, DecodeError, EncodeError, ErrorCode, FieldError, MismatchedDevices};
pub use frames::*;
pub use handshake::ServerHandshakePayload;
pub use types::*;

#[cfg(test)]
mod limits_tests;
