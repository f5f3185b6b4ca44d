//! A call's phases as types, and the UDP driver that moves SRTP packets between them.
//!
//! ```text
//! caller:   start_call ──► OutgoingCall ──await_answer──► ConnectedCall ──send_audio──► SendReport
//!               │ CallInvitation (in an end-to-end encrypted message)
//!               ▼
//! answerer: CallInvitation::answer ──► IncomingCall ──receive_audio──► ReceivedAudio
//! ```
//!
//! The answerer proves it holds the call's keys by sending SRTP "ready" packets (callee → caller
//! keys) to the caller's media address; the caller sends its audio to the address those
//! authentic packets came from, so the answerer needs no address of its own in the invitation
//! and may sit behind a NAT.

use std::net::SocketAddr;
use std::time::Duration;

use confianza_protocol::call::{
    CallKeyDecodeError, CallKeyMessage, CallMasterSecret, CallRole, CallSrtpKeys,
};
use rand_core::CryptoRng;
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::limits::{
    END_MARKER_REPEATS, MAX_SRTP_PACKET_LEN, PACKET_DURATION, READY_INTERVAL, REORDER_GRACE,
};
use super::media::{
    CONTROL_PAYLOAD_TYPE, MediaError, MediaEvent, Packetizer, Reassembler, parse_ready,
    ready_payload,
};
use super::srtp::rtp::RtpHeader;
use super::srtp::{ProtectError, SrtpReceiver, SrtpSender, UnprotectError};
use super::wav::{Wav, WavError};
use crate::content;

/// Why a call invitation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The call-key message is malformed.
    #[error("invalid call key: {0}")]
    Key(#[from] CallKeyDecodeError),
    /// The media address is not `host:port` with a literal IP address.
    #[error("invalid media address")]
    Address,
    /// The media address cannot be sent to (unspecified IP or port 0).
    #[error("unusable media address {0}")]
    UnusableAddress(SocketAddr),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The socket or a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The audio file is not 16-bit PCM WAV.
    #[error("audio file: {0}")]
    Wav(#[from] WavError),
    /// The local side could not protect a packet.
    #[error("SRTP: {0}")]
    Protect(#[from] ProtectError),
    /// No authentic answer arrived in time.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The media stream stopped (no authentic packet for the whole timeout) before its end.
    #[error("the call went silent for {timeout:?} after {audio_packets} audio packets")]
    Timeout {
        /// The idle timeout.
        timeout: Duration,
        /// Audio packets received before it.
        audio_packets: u64,
    },
    /// The authenticated peer sent a stream that cannot be accepted.
    #[error("media stream refused: {0}")]
    Media(#[from] MediaError),
}

/// What the caller sends the answerer in an end-to-end encrypted message: the call's key
/// and where the caller receives media.
#[derive(Clone)]
pub struct CallInvitation {
    key: CallKeyMessage,
    media_address: SocketAddr,
}

impl std::fmt::Debug for CallInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The master secret is never printed.
        f.debug_struct("CallInvitation")
            .field("call_id", &self.key.call_id())
            .field("media_address", &self.media_address)
            .finish_non_exhaustive()
    }
}

/// Two invitations are equal when they carry the same call id, secret and address (the
/// secret compared in constant time).
impl PartialEq for CallInvitation {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        let (mine, theirs) = (self.key.encode(), other.key.encode());
        let same_key: bool = mine.as_slice().ct_eq(theirs.as_slice()).into();
        same_key && self.media_address == other.media_address
    }
}

impl Eq for CallInvitation {}

fn usable(address: SocketAddr) -> Result<SocketAddr, OfferError> {
    if address.ip().is_unspecified() || address.port() == 0 {
        return Err(OfferError::UnusableAddress(address));
    }
    Ok(address)
}

/// Starts a call: draws a fresh master secret and call id, and returns the invitation to send
/// and the caller's side of the call. `media_address` is where the answerer can reach the
/// caller's UDP socket.
pub fn start_call(
    rng: &mut impl CryptoRng,
    media_address: SocketAddr,
) -> Result<(CallInvitation, OutgoingCall), OfferError> {
    let media_address = usable(media_address)?;
    let key = CallKeyMessage::new(rng.next_u64(), CallMasterSecret::generate(rng));
    let keys = CallSrtpKeys::derive(&key, CallRole::Caller);
    let outgoing = OutgoingCall {
        call_id: key.call_id(),
        sender: SrtpSender::new(&keys.send),
        receiver: SrtpReceiver::new(&keys.receive),
    };
    Ok((CallInvitation { key, media_address }, outgoing))
}

impl CallInvitation {
    /// The call's id.
    pub fn call_id(&self) -> u64 {
        self.key.call_id()
    }

    /// Where the caller receives media.
    pub fn media_address(&self) -> SocketAddr {
        self.media_address
    }

    /// The message content to send (end-to-end encrypted) to the answerer.
    pub fn to_content(&self) -> content::CallOffer {
        content::CallOffer {
            call_key: self.key.encode().to_vec(),
            media_address: self.media_address.to_string(),
        }
    }

    /// Reads a received invitation.
    pub fn from_content(offer: &content::CallOffer) -> Result<Self, OfferError> {
        let key = CallKeyMessage::decode(&offer.call_key)?;
        let media_address = offer
            .media_address
            .parse::<SocketAddr>()
            .map_err(|_| OfferError::Address)?;
        Ok(Self {
            key,
            media_address: usable(media_address)?,
        })
    }

    /// The answerer's side of the call.
    pub fn answer(&self) -> IncomingCall {
        let keys = CallSrtpKeys::derive(&self.key, CallRole::Callee);
        IncomingCall {
            call_id: self.key.call_id(),
            caller: self.media_address,
            sender: SrtpSender::new(&keys.send),
            receiver: SrtpReceiver::new(&keys.receive),
        }
    }
}

/// Errors a UDP receive reports for an earlier datagram (an ICMP "port unreachable" from a
/// peer not listening yet or any more), which must not end the call.
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
    )
}

/// Random values drawn without holding the (non-`Send`) thread RNG across an await.
fn random_u32s<const N: usize>() -> [u32; N] {
    let mut rng = rand::rng();
    std::array::from_fn(|_| rand::Rng::next_u32(&mut rng))
}

/// Counts of packets refused while waiting or receiving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedPackets {
    /// Failed authentication (tampered, or not from the call's key holder).
    pub authentication: u64,
    /// Replayed, or behind the replay window.
    pub replay: u64,
    /// Malformed, too long, of another stream, or not meaningful here.
    pub other: u64,
}

impl RefusedPackets {
    fn count(&mut self, error: &UnprotectError) {
        match error {
            UnprotectError::Authentication => self.authentication += 1,
            UnprotectError::Replayed { .. } | UnprotectError::TooOld { .. } => self.replay += 1,
            _ => self.other += 1,
        }
    }
}

/// The caller's side before the answerer is reachable.
pub struct OutgoingCall {
    call_id: u64,
    sender: SrtpSender,
    receiver: SrtpReceiver,
}

impl OutgoingCall {
    /// The call's id.
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// Waits on `socket` for the answerer's authentic "ready" packet for this call, and
    /// returns the connected call addressed to where it came from.
    pub async fn await_answer(
        mut self,
        socket: &UdpSocket,
        timeout: Duration,
    ) -> Result<ConnectedCall, CallError> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; MAX_SRTP_PACKET_LEN + 1];
        let mut refused = RefusedPackets::default();
        loop {
            let Ok(received) = timeout_at(deadline, socket.recv_from(&mut buf)).await else {
                return Err(CallError::NoAnswer(timeout));
            };
            let (len, from) = match received {
                Ok(datagram) => datagram,
                Err(error) if is_transient(&error) => continue,
                Err(error) => return Err(error.into()),
            };
            match self.receiver.unprotect(&buf[..len]) {
                Ok(packet) => match parse_ready(&packet.packet) {
                    Ok(id) if id == self.call_id => {
                        tracing::debug!(%from, "call answered");
                        return Ok(ConnectedCall {
                            peer: from,
                            sender: self.sender,
                            refused_before_answer: refused,
                        });
                    }
                    _ => refused.other += 1,
                },
                Err(error) => {
                    tracing::debug!(%from, %error, "packet refused while awaiting the answer");
                    refused.count(&error);
                }
            }
        }
    }
}

/// What the sender did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Audio packets sent.
    pub audio_packets: u64,
    /// Sample frames sent.
    pub frames: u64,
    /// Packets refused while waiting for the answer.
    pub refused_before_answer: RefusedPackets,
}

impl std::fmt::Debug for OutgoingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingCall")
            .field("call_id", &self.call_id)
            .finish_non_exhaustive()
    }
}

/// The caller's side once the answerer is reachable.
pub struct ConnectedCall {
    peer: SocketAddr,
    sender: SrtpSender,
    refused_before_answer: RefusedPackets,
}

impl ConnectedCall {
    /// Where the media goes.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends `wav` as SRTP, paced in real time (one packet per 20 ms of audio), then the end
    /// marker [`END_MARKER_REPEATS`] times.
    pub async fn send_audio(
        mut self,
        socket: &UdpSocket,
        wav: &Wav,
    ) -> Result<SendReport, CallError> {
        // RFC 3550 §5.1: random SSRC, first sequence number and first timestamp.
        let [ssrc, sequence, timestamp] = random_u32s();
        let mut packetizer = Packetizer::new(wav, ssrc, sequence as u16, timestamp);
        let start = Instant::now();
        let mut audio_packets = 0;
        loop {
            sleep_until(start + packetizer.duration_of(packetizer.frames_sent())).await;
            let Some(packet) = packetizer.next_audio() else {
                break;
            };
            socket
                .send_to(&self.sender.protect(&packet)?, self.peer)
                .await?;
            audio_packets += 1;
        }
        for _ in 0..END_MARKER_REPEATS {
            let packet = self.sender.protect(&packetizer.next_end_marker())?;
            socket.send_to(&packet, self.peer).await?;
            tokio::time::sleep(PACKET_DURATION).await;
        }
        Ok(SendReport {
            audio_packets,
            frames: packetizer.frames_sent(),
            refused_before_answer: self.refused_before_answer,
        })
    }
}

impl std::fmt::Debug for ConnectedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedCall")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// What the answerer received.
#[derive(Debug, Clone)]
pub struct ReceivedAudio {
    /// The audio, with silence where packets were lost.
    pub wav: Wav,
    /// Audio packets received and used.
    pub audio_packets: u64,
    /// Audio packets that never arrived (replaced by silence).
    pub missing_packets: u64,
    /// Packets refused.
    pub refused: RefusedPackets,
}

/// The answerer's side of a call.
pub struct IncomingCall {
    call_id: u64,
    caller: SocketAddr,
    sender: SrtpSender,
    receiver: SrtpReceiver,
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("call_id", &self.call_id)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl IncomingCall {
    /// The call's id.
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// Signals "ready" to the caller (repeating every [`READY_INTERVAL`] until audio flows)
    /// and receives the audio until the end marker. Fails if no authentic packet arrives for
    /// `idle_timeout`.
    pub async fn receive_audio(
        mut self,
        socket: &UdpSocket,
        idle_timeout: Duration,
    ) -> Result<ReceivedAudio, CallError> {
        let [ssrc, sequence] = random_u32s();
        let mut ready_sequence = sequence as u16;
        let mut reassembler = Reassembler::new();
        let mut refused = RefusedPackets::default();
        let mut audio_packets = 0u64;
        let mut buf = vec![0u8; MAX_SRTP_PACKET_LEN + 1];
        let mut idle_deadline = Instant::now() + idle_timeout;
        let mut next_ready = Some(Instant::now());
        let mut grace_deadline: Option<Instant> = None;
        loop {
            if reassembler.missing() == Some(0) {
                break;
            }
            let now = Instant::now();
            if grace_deadline.is_some_and(|grace| now >= grace) {
                break;
            }
            if now >= idle_deadline {
                return Err(CallError::Timeout {
                    timeout: idle_timeout,
                    audio_packets,
                });
            }
            if let Some(due) = next_ready.filter(|due| now >= *due) {
                let ready = RtpHeader::write_simple(
                    false,
                    CONTROL_PAYLOAD_TYPE,
                    ready_sequence,
                    0,
                    ssrc,
                    &ready_payload(self.call_id),
                );
                ready_sequence = ready_sequence.wrapping_add(1);
                socket
                    .send_to(&self.sender.protect(&ready)?, self.caller)
                    .await?;
                next_ready = Some(due + READY_INTERVAL);
            }
            let wake = [Some(idle_deadline), next_ready, grace_deadline]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(idle_deadline);
            let Ok(received) = timeout_at(wake, socket.recv_from(&mut buf)).await else {
                continue;
            };
            let (len, from) = match received {
                Ok(datagram) => datagram,
                Err(error) if is_transient(&error) => continue,
                Err(error) => return Err(error.into()),
            };
            let packet = match self.receiver.unprotect(&buf[..len]) {
                Ok(packet) => packet,
                Err(error) => {
                    tracing::debug!(%from, %error, "SRTP packet refused");
                    refused.count(&error);
                    continue;
                }
            };
            idle_deadline = Instant::now() + idle_timeout;
            match reassembler.accept(&packet) {
                Ok(MediaEvent::Audio) => {
                    audio_packets += 1;
                    next_ready = None;
                }
                Ok(MediaEvent::End) => {
                    next_ready = None;
                    grace_deadline.get_or_insert(Instant::now() + REORDER_GRACE);
                }
                Ok(MediaEvent::Ignored | MediaEvent::Ready(_)) => refused.other += 1,
                Err(
                    error @ (MediaError::TooMuchAudio
                    | MediaError::ConflictingEnd
                    | MediaError::EndMarker(_)),
                ) => return Err(error.into()),
                Err(error) => {
                    tracing::debug!(%from, %error, "media packet refused");
                    refused.other += 1;
                }
            }
        }
        let (wav, missing_packets) = reassembler.finish().ok_or(MediaError::Control)?;
        Ok(ReceivedAudio {
            wav,
            audio_packets,
            missing_packets,
            refused,
        })
    }
}

/// Reads `wav_path` and sends it on a connected call (see [`ConnectedCall::send_audio`]).
pub async fn send_audio(
    socket: &UdpSocket,
    call: ConnectedCall,
    wav_path: &std::path::Path,
) -> Result<SendReport, CallError> {
    let wav = read_wav(wav_path).await?;
    call.send_audio(socket, &wav).await
}

/// Receives a call's audio (see [`IncomingCall::receive_audio`]) and writes it to `out_path`.
pub async fn receive_audio(
    socket: &UdpSocket,
    call: IncomingCall,
    out_path: &std::path::Path,
    idle_timeout: Duration,
) -> Result<ReceivedAudio, CallError> {
    let received = call.receive_audio(socket, idle_timeout).await?;
    tokio::fs::write(out_path, received.wav.to_bytes()).await?;
    Ok(received)
}

/// Reads a 16-bit PCM WAV file, refusing files larger than the call audio limit before
/// reading them whole.
pub async fn read_wav(path: &std::path::Path) -> Result<Wav, CallError> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let cap = super::limits::MAX_CALL_AUDIO_BYTES + super::wav::MAX_WAV_OVERHEAD;
    let mut bytes = Vec::new();
    file.take(cap as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > cap {
        return Err(WavError::TooLong {
            len: bytes.len(),
            max: cap,
        }
        .into());
    }
    Ok(Wav::parse(&bytes)?)
}
