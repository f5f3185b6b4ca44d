//! The link to the server: Noise Pipes over TCP, requests multiplexed by id, and a stream of
//! deliveries and notices.
//!
//! Two tasks own the socket: a reader (decrypts frames, completes pending requests by id,
//! forwards deliveries and notices into a bounded channel, so a slow application applies
//! back-pressure to the socket and the rest waits in the server's mailbox) and a writer (sends
//! frames queued by requests and acknowledgements). When either ends, every pending request
//! fails with [`RequestError::Closed`] and the event stream yields [`Event::Closed`]; the
//! caller reconnects and the server pushes again whatever was not acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confianza_api::{
    self as api, ApiError, ClientFrame, Delivery, Notice, ResponseBody, ServerFrame,
};
use confianza_noise::driver::{self, ConnectError};
use confianza_noise::{ClientConfig, PublicKey, ServerKeyVerifier, StaticKeyPair};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::limits::{DELIVERY_BUFFER, MAX_REQUESTS_IN_FLIGHT, REQUEST_TIMEOUT_SECS};

/// How long establishing TCP and the Noise handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The server could not be reached.
    #[error("cannot reach the server at {address}: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("the server at {0} did not answer in time")]
    Timeout(String),
    /// The Noise handshake failed (including a server whose certificate was refused).
    #[error("secure channel: {0}")]
    Handshake(#[from] ConnectError),
}

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server refused it.
    #[error("server refused: {0}")]
    Refused(ApiError),
    /// The frame could not be built (too large, a field out of its limits).
    #[error("request cannot be sent: {0}")]
    Encode(#[from] api::EncodeError),
    /// The connection closed before the answer came.
    #[error("connection to the server lost")]
    Closed,
    /// No answer within [`REQUEST_TIMEOUT_SECS`].
    #[error("the server did not answer in time")]
    Timeout,
    /// The server answered with something that does not answer the request.
    #[error("the server answered a request with an unrelated response")]
    UnexpectedResponse,
}

/// Something the server pushed.
#[derive(Debug)]
pub enum Event {
    /// A delivery to handle and then acknowledge.
    Delivery(Delivery),
    /// A notice (no acknowledgement).
    Notice(Notice),
    /// The connection ended; the reason is for logs.
    Closed(String),
}

/// How long [`Connection::close`] waits for queued frames to be written.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<ResponseBody, ApiError>>>>>;

/// A live connection. Dropping it closes the socket.
pub struct Connection {
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    in_flight: Semaphore,
    events: Mutex<mpsc::Receiver<Event>>,
    server_key: PublicKey,
    handshake_payload: Vec<u8>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server_key", &self.server_key)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        // The writer is not aborted: once `outgoing` is dropped with the connection, it sends
        // what is queued (acknowledgements above all) and closes the stream. A caller that
        // exits right after should use [`Connection::close`], which waits for that.
    }
}

/// A fresh generator for a task (the thread generator cannot cross an `.await`).
pub(crate) fn task_rng() -> StdRng {
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
    StdRng::from_seed(seed)
}

impl Connection {
    /// Connects to `address` (`HOST:PORT`) with the device's Noise key: IK with
    /// `cached_server_key`, XX otherwise (XXfallback when the cached key is stale). `verifier`
    /// decides, from the server's static key and handshake payload (a
    /// [`api::ServerHandshakePayload`]: certificate and CA chain), whether the server is
    /// acceptable; nothing is sent to a server it refuses.
    pub async fn connect(
        address: &str,
        device_key: &StaticKeyPair,
        cached_server_key: Option<[u8; 32]>,
        verifier: &(impl ServerKeyVerifier + Sync),
    ) -> Result<Self, ConnectionError> {
        let handshake = async {
            let stream = TcpStream::connect(address).await.map_err(|source| {
                ConnectionError::Unreachable {
                    address: address.to_owned(),
                    source,
                }
            })?;
            // Frames are small and latency matters more than batching.
            let _ = stream.set_nodelay(true);
            let config = ClientConfig::new(device_key.clone());
            let mut rng = task_rng();
            let (stream, server) = driver::connect(
                stream,
                &config,
                cached_server_key.map(PublicKey::from_bytes),
                verifier,
                b"",
                &mut rng,
            )
            .await?;
            Ok::<_, ConnectionError>((stream, server))
        };
        let (stream, server) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| ConnectionError::Timeout(address.to_owned()))??;
        let (mut reader, mut writer) = stream.into_split();
        let pending: Pending = Arc::default();
        let (events_tx, events_rx) = mpsc::channel(DELIVERY_BUFFER);
        let (outgoing_tx, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(MAX_REQUESTS_IN_FLIGHT);

        let reader_pending = pending.clone();
        let reader_task = tokio::spawn(async move {
            let reason = loop {
                let frame = match reader.recv().await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break "the server closed the connection".to_owned(),
                    Err(error) => break format!("receive failed: {error}"),
                };
                match ServerFrame::decode(&frame) {
                    Ok(ServerFrame::Response(response)) => {
                        if let Some(waiter) = reader_pending.lock().await.remove(&response.id) {
                            let _ = waiter.send(response.result);
                        } else {
                            tracing::warn!(id = response.id, "response to no pending request");
                        }
                    }
                    Ok(ServerFrame::Delivery(delivery)) => {
                        if events_tx.send(Event::Delivery(delivery)).await.is_err() {
                            break "client closed".to_owned();
                        }
                    }
                    Ok(ServerFrame::Notice(notice)) => {
                        if events_tx.send(Event::Notice(notice)).await.is_err() {
                            break "client closed".to_owned();
                        }
                    }
                    // A newer server's notice needs no answer.
                    Err(api::DecodeError::UnknownNotice) => {}
                    Err(error) => break format!("the server sent a bad frame: {error}"),
                }
            };
            // Fail every waiter; later requests see the closed writer channel or time out.
            reader_pending.lock().await.clear();
            let _ = events_tx.send(Event::Closed(reason)).await;
        });
        let writer_task = tokio::spawn(async move {
            while let Some(frame) = outgoing_rx.recv().await {
                if frame.is_empty() {
                    break; // `close`: everything queued before is written
                }
                if let Err(error) = writer.send(&frame).await {
                    tracing::debug!(%error, "send failed");
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        Ok(Self {
            outgoing: outgoing_tx,
            pending,
            next_id: AtomicU64::new(1),
            in_flight: Semaphore::new(MAX_REQUESTS_IN_FLIGHT),
            events: Mutex::new(events_rx),
            server_key: *server.static_key(),
            handshake_payload: server.certificate().to_vec(),
            reader: reader_task,
            writer: writer_task,
        })
    }

    /// The server's Noise static key (cache it for IK).
    pub fn server_key(&self) -> [u8; 32] {
        *self.server_key.as_bytes()
    }

    /// What the server presented in the handshake (an encoded
    /// [`api::ServerHandshakePayload`]), as the verifier accepted it.
    pub fn handshake_payload(&self) -> &[u8] {
        &self.handshake_payload
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: api::RequestBody) -> Result<ResponseBody, RequestError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| RequestError::Closed)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = ClientFrame::request(id, body);
        let bytes = frame.encode()?;
        let ClientFrame::Request(request) = frame else {
            return Err(RequestError::UnexpectedResponse);
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        if self.outgoing.send(bytes).await.is_err() {
            self.pending.lock().await.remove(&id);
            return Err(RequestError::Closed);
        }
        let answer = tokio::time::timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS), rx).await;
        let result = match answer {
            Err(_) => {
                self.pending.lock().await.remove(&id);
                return Err(RequestError::Timeout);
            }
            Ok(Err(_)) => return Err(RequestError::Closed),
            Ok(Ok(result)) => result,
        };
        let body = result.map_err(RequestError::Refused)?;
        if !body.answers(&request.body) {
            return Err(RequestError::UnexpectedResponse);
        }
        Ok(body)
    }

    /// Acknowledges deliveries (after they were handled durably), in frames of at most
    /// [`api::limits::MAX_ACKS_PER_FRAME`] ids.
    pub async fn ack(&self, delivery_ids: &[u64]) -> Result<(), RequestError> {
        for chunk in delivery_ids.chunks(api::limits::MAX_ACKS_PER_FRAME) {
            let frame = ClientFrame::Ack {
                delivery_ids: chunk.to_vec(),
            }
            .encode()?;
            self.outgoing
                .send(frame)
                .await
                .map_err(|_| RequestError::Closed)?;
        }
        Ok(())
    }

    /// Closes the connection gracefully: every frame already queued (acknowledgements above
    /// all) is written before the stream is shut down, waiting at most [`CLOSE_TIMEOUT`].
    pub async fn close(mut self) {
        // An empty frame (no encoded frame is empty) tells the writer to stop after
        // everything queued before it.
        if self.outgoing.send(Vec::new()).await.is_ok() {
            let writer = std::mem::replace(&mut self.writer, tokio::spawn(async {}));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
        }
    }

    /// The next delivery or notice; [`Event::Closed`] once the connection is gone (and again
    /// on every later call).
    pub async fn next_event(&self) -> Event {
        match self.events.lock().await.recv().await {
            Some(event) => event,
            None => Event::Closed("connection closed".into()),
        }
    }
}
