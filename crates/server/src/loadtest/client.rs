//! The client side of one connection, as the load generator and the crash test need it: Noise
//! Pipes (XX) to the server, the server pinned to the data directory's Noise key and
//! certificate, enrollment with an RA code, requests, and the frames the server pushes.
//!
//! It speaks the protocol of `confianza_api` over `confianza_noise` directly, so the server
//! crate does not depend on `confianza-client` (the two meet only in `api`). It carries no
//! Signal sessions: bodies are opaque bytes to the server, which is what a relay measures.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confianza_api::{
    ApiError, ClientFrame, Delivery, EncodeError, EnrollRequest, KyberPreKey, KyberPublicKey,
    PreKeyUpload, RequestBody, Response, ResponseBody, ServerFrame, SignedPreKey, proof_message,
};
use confianza_noise::driver::{ConnectError, NoiseReader, NoiseWriter, StreamSendError, connect};
use confianza_noise::{ClientConfig, PublicKey, ServerKeyRejected, StaticKeyPair};
use confianza_protocol::kem::KemKeyPair;
use confianza_protocol::keys::{IdentityKeyPair, KeyPair};
use rand::rngs::StdRng;
use tokio::io::{ReadHalf, WriteHalf};
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

/// One client connection. It reads the socket itself, in the task that uses it: no reader
/// task and no channel per connection, so a load client costs the machine (whose cores it
/// shares with the server it measures) as little as it can.
pub struct Connection {
    writer: NoiseWriter<WriteHalf<TcpStream>>,
    reader: NoiseReader<ReadHalf<TcpStream>>,
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
            let socket = TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect { addr, source })?;
            // Frames are small and latency is measured: no Nagle delay.
            socket
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect { addr, source })?;
            let mut rng: StdRng = rand::make_rng();
            let config = ClientConfig::new(noise.clone());
            let (stream, _server) =
                connect(socket, &config, None, &verifier, b"", &mut rng).await?;
            Ok::<_, ClientError>(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::Timeout("connect and handshake"))??;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            writer,
            reader,
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
        self.writer.feed(&bytes)?;
        Ok(())
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.writer
            .flush()
            .await
            .map_err(|error| ClientError::Send(error.into()))
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_request(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.queue_request(body)?;
        self.flush().await?;
        Ok(id)
    }

    /// Queues a request (see [`Connection::queue_frame`]); returns its id.
    pub fn queue_request(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.queue_frame(&ClientFrame::request(id, body))?;
        Ok(id)
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
    /// Cancelling the call (a timeout, a `select!`) loses nothing while frames fit the
    /// driver's read buffer (2 KiB: every frame of a load run with the default payload);
    /// after cancelling the read of a larger frame, drop the connection.
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
        if self.closed.is_some() || !self.reader.has_buffered_frame() {
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
        let ending = match self.reader.recv().await {
            Ok(Some(bytes)) => match ServerFrame::decode(&bytes) {
                Ok(frame) => return Ok((frame, Instant::now())),
                Err(error) => Some(format!("undecodable server frame: {error}")),
            },
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
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
        let _ = self.writer.shutdown().await;
    }
}
