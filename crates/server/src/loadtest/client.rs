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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a TCP connect plus Noise handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Connection::request`] waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames decoded ahead of the task that consumes them. The server bounds what it pushes
/// (deliveries in flight, one answer per request), so this only smooths bursts.
const INCOMING_QUEUE_LEN: usize = 4_096;

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

/// What the reader task hands over: a frame with the instant it was read, or why reading
/// stopped.
#[derive(Debug)]
pub enum Incoming {
    /// A decoded frame and when it arrived.
    Frame(ServerFrame, Instant),
    /// The stream ended (`None`: cleanly) or failed.
    Closed(Option<String>),
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
    /// The certificate the server presents in its handshake (DER).
    pub certificate: Vec<u8>,
}

/// One client connection: a writer, and a reader task decoding server frames into a queue.
pub struct Connection {
    writer: NoiseWriter<WriteHalf<TcpStream>>,
    incoming: mpsc::Receiver<Incoming>,
    /// Frames received while [`Connection::request`] waited for its answer.
    backlog: VecDeque<(ServerFrame, Instant)>,
    reader: JoinHandle<()>,
    /// The end of the stream, once [`Connection::try_next_frame`] has taken it off the queue.
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

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
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
        let verifier = |key: &PublicKey, certificate: &[u8]| {
            if key.as_bytes() == &pin.static_key && certificate == pin.certificate.as_slice() {
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
        let (sender, incoming) = mpsc::channel(INCOMING_QUEUE_LEN);
        let reader = tokio::spawn(read_frames(reader, sender));
        Ok(Self {
            writer,
            incoming,
            backlog: VecDeque::new(),
            reader,
            closed: None,
            next_id: 1,
        })
    }

    /// Sends one client frame.
    pub async fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let bytes = frame.encode()?;
        self.writer.send(&bytes).await?;
        Ok(())
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_request(&mut self, body: RequestBody) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&ClientFrame::request(id, body)).await?;
        Ok(id)
    }

    /// Acknowledges deliveries (at most `confianza_api::limits::MAX_ACKS_PER_FRAME` ids).
    pub async fn ack(&mut self, delivery_ids: Vec<u64>) -> Result<(), ClientError> {
        self.send_frame(&ClientFrame::Ack { delivery_ids }).await
    }

    /// The next frame from the server, oldest first; `Err(Closed)` once the connection ended.
    pub async fn next_frame(&mut self) -> Result<(ServerFrame, Instant), ClientError> {
        if let Some(frame) = self.backlog.pop_front() {
            return Ok(frame);
        }
        if let Some(reason) = self.closed.take() {
            return Err(ClientError::Closed(reason));
        }
        match self.incoming.recv().await {
            Some(Incoming::Frame(frame, at)) => Ok((frame, at)),
            Some(Incoming::Closed(reason)) => Err(ClientError::Closed(reason)),
            None => Err(ClientError::Closed(None)),
        }
    }

    /// The next frame if one has arrived already, without waiting.
    pub fn try_next_frame(&mut self) -> Option<(ServerFrame, Instant)> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        match self.incoming.try_recv() {
            Ok(Incoming::Frame(frame, at)) => Some((frame, at)),
            // Leave the end for `next_frame` to report.
            Ok(Incoming::Closed(reason)) => {
                self.closed = Some(reason);
                None
            }
            Err(_) => None,
        }
    }

    /// Sends a request and waits for its answer; frames that arrive meanwhile are kept for
    /// [`Connection::next_frame`].
    pub async fn request(&mut self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        let id = self.send_request(body).await?;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .map_err(|_| ClientError::Timeout("an answer"))?;
            match next {
                Some(Incoming::Frame(ServerFrame::Response(Response { id: got, result }), _))
                    if got == id =>
                {
                    return result.map_err(ClientError::Refused);
                }
                Some(Incoming::Frame(
                    ServerFrame::Response(Response {
                        id: 0,
                        result: Err(error),
                    }),
                    _,
                )) => return Err(ClientError::Closed(Some(error.to_string()))),
                Some(Incoming::Frame(frame, at)) => self.backlog.push_back((frame, at)),
                Some(Incoming::Closed(reason)) => return Err(ClientError::Closed(reason)),
                None => return Err(ClientError::Closed(None)),
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

async fn read_frames(mut reader: NoiseReader<ReadHalf<TcpStream>>, frames: mpsc::Sender<Incoming>) {
    let ending = loop {
        match reader.recv().await {
            Ok(Some(bytes)) => match ServerFrame::decode(&bytes) {
                Ok(frame) => {
                    if frames
                        .send(Incoming::Frame(frame, Instant::now()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => break Some(format!("undecodable server frame: {error}")),
            },
            Ok(None) => break None,
            Err(error) => break Some(error.to_string()),
        }
    };
    let _ = frames.send(Incoming::Closed(ending)).await;
}
