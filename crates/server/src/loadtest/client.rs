//! The client side of one connection, as the load generator and the crash test need it: Noise
//! Pipes (XX) to the server, the server pinned to the data directory's Noise key and
//! certificate, enrollment with an RA code, requests, and the frames the server pushes.
//!
//! It speaks the protocol of `confianza_api` over `confianza_noise` directly, so the server
//! crate does not depend on `confianza-client` (the two meet only in `api`). It carries no
//! Signal sessions: bodies are opaque bytes to the server, which is what a relay measures.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use confianza_api::{
    ApiError, ClientFrame, Delivery, EncodeError, EnrollRequest, KyberPreKey, KyberPublicKey,
    PreKeyUpload, RequestBody, Response, ResponseBody, ServerFrame, SignedPreKey, proof_message,
};
use confianza_noise::driver::{ConnectError, FrameIoError, StreamRecvError, StreamSendError};
use confianza_noise::limits::{FRAME_HEADER_LEN, MAX_FRAME_LEN};
use confianza_noise::{
    ClientConfig, ClientHandshake, DecodeFrameError, PublicKey, ServerKeyRejected, StaticKeyPair,
    Transport, check_frame_header, frame_header,
};
use confianza_protocol::kem::KemKeyPair;
use confianza_protocol::keys::{IdentityKeyPair, KeyPair};
use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a TCP connect plus Noise handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Connection::request`] waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Id of the signed prekey and of the last-resort Kyber key a load device uploads.
const SIGNED_PRE_KEY_ID: u32 = 1;
const LAST_RESORT_KYBER_ID: u32 = 1;

/// A connection failed or the server refused something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The Noise handshake failed (or the server is not the pinned one).
    #[error("Noise handshake: {0}")]
    Handshake(#[from] ConnectError),
    /// Connect, handshake or an answer took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// Writing a frame failed.
    #[error("sending: {0}")]
    Send(#[from] StreamSendError),
    /// A frame we built breaks a protocol limit.
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    /// The connection ended; the reason, when the server or the reader gave one.
    #[error("connection closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    /// The server refused the request.
    #[error("refused: {0}")]
    Refused(ApiError),
    /// The server answered with the wrong kind of response.
    #[error("unexpected answer to {0}")]
    UnexpectedAnswer(&'static str),
}

/// The keys a load device generates for enrollment: identity, Noise static key, a signed
/// prekey and a last-resort Kyber key (no one-time prekeys: nobody fetches bundles here).
pub struct DeviceKeys {
    /// The identity key pair certified at enrollment.
    pub identity: IdentityKeyPair,
    /// The device's Noise static key.
    pub noise: StaticKeyPair,
    /// The Signal registration id.
    pub registration_id: u32,
    upload: PreKeyUpload,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("registration_id", &self.registration_id)
            .finish_non_exhaustive()
    }
}

impl DeviceKeys {
    /// Fresh keys from `rng`.
    pub fn generate(rng: &mut StdRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let noise = StaticKeyPair::generate(rng);
        // Signal's registration ids are 14 bits, never zero.
        let registration_id = 1 + rand::RngExt::random_range(rng, 0..16_380);
        let signed = KeyPair::generate(rng).public.serialize();
        let kyber = KemKeyPair::generate(rng).public.serialize();
        let upload = PreKeyUpload {
            signed_pre_key: Some(SignedPreKey {
                id: SIGNED_PRE_KEY_ID,
                public_key: signed,
                signature: identity.sign(&signed, rng),
            }),
            one_time_pre_keys: Vec::new(),
            kyber_pre_keys: Vec::new(),
            kyber_last_resort: KyberPublicKey::from_slice(&kyber).map(|public_key| KyberPreKey {
                id: LAST_RESORT_KYBER_ID,
                signature: identity.sign(&kyber, rng),
                public_key,
            }),
        };
        Self {
            identity,
            noise,
            registration_id,
            upload,
        }
    }
}

/// Who the client expects at the other end: the data directory's Noise key and the
/// certificate binding it to the server's name.
#[derive(Debug, Clone)]
pub struct ServerPin {
    /// The server's Noise static public key.
    pub static_key: [u8; 32],
    /// The Noise certificate the server presents in its handshake payload (DER).
    pub certificate: Vec<u8>,
}

/// Bytes a connection reads from its socket at once to begin with: what an idle connection
/// (one of 10 000 held) keeps.
const INITIAL_READ_BUFFER: usize = 2 * 1_024;

/// The most a connection's read buffer grows to: one frame of the largest size with its
/// header, so any frame fits; a busy connection reads a whole burst of frames at once.
const MAX_READ_BUFFER: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

/// Capacity the write buffer keeps between flushes (a window refill of default sends is
/// about 5 KiB).
const RETAINED_WRITE_BUFFER: usize = 16 * 1_024;

/// One client connection, driven by the task that uses it: no reader task, no channel, and
/// no lock on a split socket. After the handshake it frames and encrypts with the Noise
/// crate's sans-IO [`Transport`] itself, into a read buffer that grows while reads fill it
/// (so a burst of frames costs one read) and one write buffer per burst of requests: the
/// load generator shares its cores with the server it measures, so every system call and
/// copy it saves is left to the server.
pub struct Connection {
    socket: TcpStream,
    transport: Transport,
    incoming: Incoming,
    /// Encrypted frames queued and not yet written.
    outgoing: Vec<u8>,
    /// Frames received while [`Connection::request`] waited for its answer.
    backlog: VecDeque<(ServerFrame, Instant)>,
    /// Why the stream ended, once it has: every later read reports it.
    closed: Option<Option<String>>,
    next_id: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` with the device key `noise` (Noise XX) and checks the server
    /// against `pin`.
    pub async fn connect(
        addr: SocketAddr,
        noise: &StaticKeyPair,
        pin: &ServerPin,
    ) -> Result<Self, ClientError> {
        let verifier = |key: &PublicKey, payload: &[u8]| {
            let presented =
                confianza_api::ServerHandshakePayload::decode(payload).map_err(|error| {
                    ServerKeyRejected::new(format!("bad handshake payload: {error}"))
                })?;
            if key.as_bytes() == &pin.static_key && presented.certificate == pin.certificate {
                Ok(())
            } else {
                Err(ServerKeyRejected::new(
                    "not the data directory's Noise key and certificate",
                ))
            }
        };
        let handshake = async {
            let mut socket = TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect { addr, source })?;
            // Frames are small and latency is measured: no Nagle delay.
            socket
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect { addr, source })?;
            let mut rng: StdRng = rand::make_rng();
            let config = ClientConfig::new(noise.clone());
            let (handshake, hello) =
                ClientHandshake::start(&config, None, &mut rng).map_err(ConnectError::from)?;
            write_handshake_frame(&mut socket, &hello).await?;
            let response = read_handshake_frame(&mut socket).await?;
            let established = handshake
                .read_response(&response)
                .map_err(ConnectError::from)?
                .authenticate(&verifier, b"")
                .map_err(ConnectError::from)?;
            write_handshake_frame(&mut socket, &established.final_message).await?;
            Ok::<_, ClientError>((socket, established.transport))
        };
        let (socket, transport) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::Timeout("connect and handshake"))??;
        Ok(Self {
            socket,
            transport,
            incoming: Incoming::new(),
            outgoing: Vec::new(),
            backlog: VecDeque::new(),
            closed: None,
            next_id: 1,
        })
    }

    /// Sends one client frame (with any frames queued before it, in one write).
    pub async fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.queue_frame(frame)?;
        self.flush().await
    }

    /// Encrypts one client frame into the connection's buffer without writing it: it leaves
    /// with the next [`Connection::flush`] or [`Connection::send_frame`].
    pub fn queue_frame(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let bytes = frame.encode()?;
        let ciphertext = self
            .transport
            .encrypt(&bytes)
            .map_err(StreamSendError::from)?;
        let header = frame_header(ciphertext.len())
            .map_err(|error| StreamSendError::from(FrameIoError::from(error)))?;
        self.outgoing.extend_from_slice(&header);
        self.outgoing.extend_from_slice(&ciphertext);
        Ok(())
    }

    /// Writes every queued frame, in one write.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.socket
            .write_all(&self.outgoing)
            .await
            .map_err(|error| StreamSendError::from(FrameIoError::from(error)))?;
        self.outgoing.clear();
        if self.outgoing.capacity() > RETAINED_WRITE_BUFFER {
            self.outgoing.shrink_to(RETAINED_WRITE_BUFFER);
        }
        Ok(())
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_request(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.queue_request(body)?;
        self.flush().await?;
        Ok(id)
    }

    /// Queues a request (see [`Connection::queue_frame`]); returns its id.
    pub fn queue_request(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_request_id();
        self.queue_frame(&ClientFrame::request(id, body))?;
        Ok(id)
    }

    /// A fresh request id, for a request frame the caller builds and queues itself. Ids grow
    /// by one from 1.
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Acknowledges deliveries (at most `confianza_api::limits::MAX_ACKS_PER_FRAME` ids).
    pub async fn ack(&mut self, delivery_ids: Vec<u64>) -> Result<(), ClientError> {
        self.send_frame(&ClientFrame::Ack { delivery_ids }).await
    }

    /// Queues an acknowledgement (see [`Connection::queue_frame`]).
    pub fn queue_ack(&mut self, delivery_ids: Vec<u64>) -> Result<(), ClientError> {
        self.queue_frame(&ClientFrame::Ack { delivery_ids })
    }

    /// The next frame from the server, oldest first, with the instant it was read;
    /// `Err(Closed)` once the connection ended.
    ///
    /// Cancelling the call (a timeout, a `select!`) loses nothing: bytes read are kept in the
    /// connection's buffer until their frame is whole.
    pub async fn next_frame(&mut self) -> Result<(ServerFrame, Instant), ClientError> {
        if let Some(frame) = self.backlog.pop_front() {
            return Ok(frame);
        }
        self.read_frame().await
    }

    /// The next frame if it has arrived already (read from the socket with an earlier frame),
    /// without waiting and without a system call.
    pub fn try_next_frame(&mut self) -> Option<(ServerFrame, Instant)> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        if self.closed.is_some() || matches!(self.incoming.whole_frame(), Ok(None)) {
            return None;
        }
        // A whole frame is buffered: this completes at its first poll.
        // An end of the stream is recorded in `closed`: the next `next_frame` reports it.
        futures_util::FutureExt::now_or_never(self.read_frame())?.ok()
    }

    /// Reads and decodes one frame from the socket; the end of the stream is remembered.
    async fn read_frame(&mut self) -> Result<(ServerFrame, Instant), ClientError> {
        if let Some(reason) = &self.closed {
            return Err(ClientError::Closed(reason.clone()));
        }
        let ending = loop {
            match self.incoming.whole_frame() {
                Ok(Some(body)) => {
                    let decrypted = self.transport.decrypt(&self.incoming.bytes[body.clone()]);
                    self.incoming.consume(body.end);
                    match decrypted {
                        Ok(plaintext) => match ServerFrame::decode(&plaintext) {
                            Ok(frame) => return Ok((frame, Instant::now())),
                            Err(error) => break Some(format!("undecodable server frame: {error}")),
                        },
                        Err(error) => break Some(StreamRecvError::from(error).to_string()),
                    }
                }
                Ok(None) => match self.incoming.read_from(&mut self.socket).await {
                    Ok(0) if self.incoming.is_empty() => break None,
                    Ok(0) => break Some(FrameIoError::UnexpectedEof.to_string()),
                    Ok(_) => {}
                    Err(error) => break Some(FrameIoError::from(error).to_string()),
                },
                Err(error) => break Some(FrameIoError::from(error).to_string()),
            }
        };
        self.closed = Some(ending.clone());
        Err(ClientError::Closed(ending))
    }

    /// Sends a request and waits for its answer; frames that arrive meanwhile are kept for
    /// [`Connection::next_frame`].
    pub async fn request(&mut self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        let id = self.send_request(body).await?;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.read_frame())
                .await
                .map_err(|_| ClientError::Timeout("an answer"))?;
            match next? {
                (ServerFrame::Response(Response { id: got, result }), _) if got == id => {
                    return result.map_err(ClientError::Refused);
                }
                (
                    ServerFrame::Response(Response {
                        id: 0,
                        result: Err(error),
                    }),
                    _,
                ) => return Err(ClientError::Closed(Some(error.to_string()))),
                (frame, at) => self.backlog.push_back((frame, at)),
            }
        }
    }

    /// Enrolls this connection's device as `address` with an RA enrollment `code`; returns
    /// the device id. `keys.noise` must be the key this connection was opened with.
    pub async fn enroll(
        &mut self,
        address: &str,
        code: &str,
        keys: &DeviceKeys,
        rng: &mut StdRng,
    ) -> Result<u32, ClientError> {
        let ResponseBody::EnrollChallenge { challenge, .. } =
            self.request(RequestBody::EnrollChallenge).await?
        else {
            return Err(ClientError::UnexpectedAnswer("EnrollChallenge"));
        };
        let identity_key = keys.identity.identity_key().serialize();
        let noise_key = *keys.noise.public_key().as_bytes();
        let proof = keys.identity.sign(
            &proof_message(address, &challenge, &identity_key, &noise_key),
            rng,
        );
        let request = EnrollRequest {
            address: address.to_owned(),
            enrollment_code: code.to_owned(),
            registration_id: keys.registration_id,
            device_noise_key: noise_key,
            identity_key,
            challenge,
            proof,
            pre_keys: keys.upload.clone(),
        };
        match self.request(RequestBody::Enroll(Box::new(request))).await? {
            ResponseBody::Enrolled { device_id, .. } => Ok(device_id),
            _ => Err(ClientError::UnexpectedAnswer("Enroll")),
        }
    }

    /// Waits up to `patience` for the next delivery, acknowledging nothing; other frames
    /// are dropped. `Ok(None)` when nothing arrived in time.
    pub async fn next_delivery(
        &mut self,
        patience: Duration,
    ) -> Result<Option<Delivery>, ClientError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match tokio::time::timeout_at(deadline, self.next_frame()).await {
                Err(_) => return Ok(None),
                Ok(Err(error)) => return Err(error),
                Ok(Ok((ServerFrame::Delivery(delivery), _))) => return Ok(Some(delivery)),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Closes the sending direction (the server sees a clean end of stream).
    pub async fn close(mut self) {
        if self.flush().await.is_ok() {
            let _ = self.socket.shutdown().await;
        }
    }
}

/// Bytes read from the socket and not yet taken as frames: `bytes[start..end]`.
struct Incoming {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl Incoming {
    fn new() -> Self {
        Self {
            bytes: vec![0u8; INITIAL_READ_BUFFER],
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Where the body of the next frame lies in `bytes`, once it has arrived whole; an error
    /// for a header announcing more than a frame may hold (checked before anything else).
    fn whole_frame(&self) -> Result<Option<Range<usize>>, DecodeFrameError> {
        let available = self.end - self.start;
        let Some(header) = self.bytes.get(self.start..self.start + FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        if available < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = check_frame_header([header[0], header[1]], MAX_FRAME_LEN)?;
        let body = self.start + FRAME_HEADER_LEN;
        Ok((available - FRAME_HEADER_LEN >= len).then(|| body..body + len))
    }

    /// The bytes up to `end` are taken.
    fn consume(&mut self, end: usize) {
        self.start = end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// One read from `socket` after what is buffered; `Ok(0)` at the end of the stream.
    /// Cancelling it loses nothing: the bytes of a read that completed are kept.
    async fn read_from(&mut self, socket: &mut TcpStream) -> std::io::Result<usize> {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // What is buffered is less than a frame, and a frame fits MAX_READ_BUFFER.
        if self.end == self.bytes.len() {
            self.grow();
        }
        let room = self.bytes.len() - self.end;
        if room == 0 {
            return Err(std::io::Error::other(
                "a frame does not fit the read buffer",
            ));
        }
        let read = socket.read(&mut self.bytes[self.end..]).await?;
        self.end += read;
        // A read that filled the buffer may have left more behind: read more at once next time.
        if read == room {
            self.grow();
        }
        Ok(read)
    }

    fn grow(&mut self) {
        let grown = (self.bytes.len() * 2).min(MAX_READ_BUFFER);
        self.bytes.resize(grown, 0);
    }
}

/// Writes one handshake message in its frame.
async fn write_handshake_frame(socket: &mut TcpStream, message: &[u8]) -> Result<(), ClientError> {
    let header = frame_header(message.len())
        .map_err(|error| ClientError::Handshake(ConnectError::from(FrameIoError::from(error))))?;
    let mut frame = Vec::with_capacity(header.len() + message.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(message);
    socket
        .write_all(&frame)
        .await
        .map_err(|error| ClientError::Handshake(ConnectError::from(FrameIoError::from(error))))
}

/// Reads exactly one handshake frame (nothing after it: the transport phase reads its own).
async fn read_handshake_frame(socket: &mut TcpStream) -> Result<Vec<u8>, ClientError> {
    let failed = |error: FrameIoError| ClientError::Handshake(ConnectError::from(error));
    let eof = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameIoError::UnexpectedEof,
        _ => FrameIoError::Io(error),
    };
    let mut header = [0u8; FRAME_HEADER_LEN];
    socket
        .read_exact(&mut header)
        .await
        .map_err(|error| failed(eof(error)))?;
    let len = check_frame_header(header, MAX_FRAME_LEN)
        .map_err(|error| failed(FrameIoError::from(error)))?;
    let mut body = vec![0u8; len];
    socket
        .read_exact(&mut body)
        .await
        .map_err(|error| failed(eof(error)))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered(bytes: &[u8]) -> Incoming {
        let mut incoming = Incoming::new();
        incoming.bytes[..bytes.len()].copy_from_slice(bytes);
        incoming.end = bytes.len();
        incoming
    }

    #[test]
    fn a_frame_is_taken_once_it_is_whole() {
        assert_eq!(buffered(&[0]).whole_frame().ok(), Some(None));
        assert_eq!(buffered(&[0, 3, 1, 2]).whole_frame().ok(), Some(None));
        let mut incoming = buffered(&[0, 3, 1, 2, 3, 0, 2, 9]);
        assert_eq!(incoming.whole_frame().ok(), Some(Some(2..5)));
        incoming.consume(5);
        // The next header has arrived, one byte of its body has not.
        assert_eq!(incoming.whole_frame().ok(), Some(None));
        assert!(!incoming.is_empty());
        let mut incoming = buffered(&[0, 0]);
        assert_eq!(incoming.whole_frame().ok(), Some(Some(2..2)));
        incoming.consume(2);
        assert!(incoming.is_empty());
    }

    #[test]
    fn the_read_buffer_grows_to_one_largest_frame_and_no_more() {
        let mut incoming = Incoming::new();
        for _ in 0..64 {
            incoming.grow();
        }
        assert_eq!(incoming.bytes.len(), MAX_READ_BUFFER);
    }
}
