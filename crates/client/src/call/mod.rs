//! Calls: SRTP audio over UDP, keyed by the call-key message (ARCHITECTURE.md, flow 6).
//!
//! The caller draws a 32-byte master secret ([`confianza_protocol::call`]) and sends it, with
//! its UDP media address, in a [`CallInvitation`] inside a normal end-to-end encrypted message.
//! Both sides derive one SRTP master key and salt per direction, and media flows as SRTP
//! packets (RFC 3711, `AES_CM_128_HMAC_SHA1_80`), byte-compatible with libsrtp.
//!
//! Layers, sans-IO first:
//! * [`srtp`]: protect / unprotect, index estimation, replay window, RTP header parsing.
//! * [`media`]: L16 packetizing, the ready and end control packets, reassembly.
//! * [`wav`]: 16-bit PCM WAV files.
//! * [`session`]: the call's phases as types and the tokio UDP driver.
//! * [`signaling`]: the offer and the answer as end-to-end encrypted messages through the
//!   server ([`crate::account::Client::send_call_offer`], [`ClientEvent::CallOffer`](crate::messaging::ClientEvent::CallOffer)).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use confianza_client::call::{self, CallInvitation};
//! use tokio::net::UdpSocket;
//!
//! // Caller.
//! let socket = UdpSocket::bind("127.0.0.1:0").await?;
//! let (invitation, outgoing) = call::start_call(&mut rand::rng(), socket.local_addr()?)?;
//! let content = invitation.to_content(); // send end-to-end encrypted to the answerer
//!
//! // Answerer, on receiving `content`.
//! let answerer_socket = UdpSocket::bind("127.0.0.1:0").await?;
//! let incoming = CallInvitation::from_content(&content)?.answer();
//! let receiving = tokio::spawn(async move {
//!     call::receive_audio(&answerer_socket, incoming, "out.wav".as_ref(), Duration::from_secs(5)).await
//! });
//!
//! // Caller, once the answerer's authentic "ready" packet arrives.
//! let connected = outgoing.await_answer(&socket, Duration::from_secs(30)).await?;
//! call::send_audio(&socket, connected, "in.wav".as_ref()).await?;
//! let received = receiving.await??;
//! assert_eq!(received.missing_packets, 0);
//! # Ok(()) }
//! ```

pub mod limits;
pub mod media;
pub mod session;
pub mod signaling;
pub mod srtp;
pub mod wav;

pub use session::{
    CallError, CallInvitation, ConnectedCall, IncomingCall, OfferError, OutgoingCall,
    ReceivedAudio, RefusedPackets, SendReport, read_wav, receive_audio, send_audio, start_call,
};
pub use srtp::{ProtectError, SrtpReceiver, SrtpSender, UnprotectError, UnprotectedPacket};
pub use wav::{AudioFormat, Wav, WavError};
