//! One client connection: the Noise handshake, then a reader loop (requests and
//! acknowledgements, answered in order of arrival, sends answered after their commit) beside a
//! socket writer task (responses, deliveries, notices). A peer that breaks the protocol gets an
//! error frame (request id 0 when no request is to blame) and is disconnected; nobody else
//! notices.

use std::net::SocketAddr;
use std::sync::Arc;

use confianza_api::{
    ApiError, ClientFrame, DecodeError, EncodeError, ErrorCode, RequestBody, ServerFrame,
};
use confianza_noise::ServerConfig;
use confianza_noise::driver::{NoiseReader, NoiseWriter, StreamSendError, accept};
use rand::rngs::StdRng;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::limits::{HANDSHAKE_TIMEOUT, OUTBOUND_QUEUE_LEN, SHUTDOWN_GRACE};
use super::session::Session;
use super::state::{Shared, unix_ms};
use crate::store::MessageStore;

/// Request id of an error frame that answers no particular request (a frame that does not
/// decode, a displaced connection): clients treat it as the reason the connection closes.
pub const CONNECTION_ERROR_ID: u64 = 0;

/// Bytes of outgoing frame buffered per connection under the Noise driver: a handshake message
/// (its length, then its bytes) leaves in one write system call instead of two. After the
/// handshake the driver hands over whole batches of frames (see [`write_frames`]), which pass
/// through in one write as well. Held by every connection, so kept small: 10 000 connections
/// hold 20 MB.
const SOCKET_WRITE_BUFFER: usize = 2_048;

/// Bytes of frames encrypted before they are written, when more are queued: large enough that
/// a burst costs few system calls, small enough to start writing a long burst early.
const MAX_COALESCED_WRITE: usize = 64 * 1_024;

/// Why the reader loop ended.
enum Ending {
    /// The client closed the connection.
    ClientClosed,
    /// The server is shutting down.
    Shutdown,
    /// The client broke the protocol; the error frame has been queued.
    Violation(ApiError),
    /// The socket or the channel failed.
    Broken(String),
}

/// Serves one accepted TCP connection until it closes or `shutdown` is cancelled.
pub async fn serve<S, T>(
    shared: Arc<Shared<S>>,
    noise: Arc<ServerConfig>,
    socket: T,
    peer: SocketAddr,
    shutdown: CancellationToken,
) where
    S: MessageStore + Clone,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut rng: StdRng = rand::make_rng();
    // The Noise driver writes a frame's length and its ciphertext, then flushes: through this
    // buffer a frame of up to its size leaves in one write system call instead of two.
    let socket = BufWriter::with_capacity(SOCKET_WRITE_BUFFER, socket);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(socket, &noise, &mut rng));
    let (stream, client) = match handshake.await {
        Ok(Ok(established)) => established,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    let noise_key = *client.static_key().as_bytes();
    let device = match shared.store.device_by_noise_key(&noise_key).await {
        Ok(device) => device,
        Err(error) => {
            tracing::error!(%peer, %error, "looking up the device failed");
            return;
        }
    };
    if let Some(device) = &device {
        let now = unix_ms(std::time::SystemTime::now());
        if let Err(error) = shared.store.touch(&device.address, now).await {
            tracing::warn!(%error, "recording last_seen failed");
        }
    }
    tracing::debug!(
        %peer,
        address = device.as_ref().map(|d| d.address.address.as_str()).unwrap_or("-"),
        device = device.as_ref().map(|d| d.address.device_id).unwrap_or(0),
        "client connected"
    );

    shared.metrics.connections_total.inc();
    shared.metrics.connections_open.inc();
    let (reader, writer) = stream.into_split();
    let (outbound, outbound_receiver) = mpsc::channel(OUTBOUND_QUEUE_LEN);
    let socket_writer = tokio::spawn(write_frames(writer, outbound_receiver));

    let mut session = Session::new(shared.clone(), noise_key, device, outbound.clone());
    session.start_delivery();
    let ending = read_frames(&mut session, reader, &shutdown).await;
    match &ending {
        Ending::ClientClosed => tracing::debug!(%peer, "client closed the connection"),
        Ending::Shutdown => tracing::debug!(%peer, "closing for shutdown"),
        Ending::Violation(error) => {
            shared.metrics.connections_refused.inc();
            tracing::info!(%peer, code = %error.code, reason = %error.message, "closing a connection that broke the protocol");
        }
        Ending::Broken(reason) => tracing::debug!(%peer, %reason, "connection failed"),
    }

    // Finish what is in flight: the pump stops; sends waiting for their commit hold the
    // outbound queue open until the writer has answered them (the client gets its `Sent`),
    // and the socket writer flushes everything queued before it ends.
    session.stop_delivery().await;
    drop(session);
    drop(outbound);
    let mut socket_writer = socket_writer;
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut socket_writer).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "connection writer failed"),
        Err(_) => {
            tracing::warn!(%peer, "answers still pending at close");
            socket_writer.abort();
        }
    }
    shared.metrics.connections_open.dec();
}

async fn read_frames<S, T>(
    session: &mut Session<S>,
    mut reader: NoiseReader<ReadHalf<T>>,
    shutdown: &CancellationToken,
) -> Ending
where
    S: MessageStore + Clone,
    T: AsyncRead + Unpin,
{
    // Taken once the device's pump runs (at once, or after enrollment); it never changes after.
    let mut displaced: Option<CancellationToken> = None;
    loop {
        if displaced.is_none() {
            displaced = session
                .delivering
                .as_ref()
                .map(|delivering| delivering.displaced.clone());
        }
        let received = if reader.has_buffered_frame() {
            // The rest of a burst already read from the socket: taken without waiting, and
            // without setting up the waits below for every frame of it (shutdown and
            // displacement are looked at again once the burst is done).
            reader.recv().await
        } else {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ending::Shutdown,
                () = async {
                    match &displaced {
                        Some(token) => token.cancelled().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let error = ApiError::new(
                        ErrorCode::Conflict,
                        "another connection of this device took over",
                    );
                    let _ = session
                        .outbound
                        .send(ServerFrame::error(CONNECTION_ERROR_ID, error.clone()))
                        .await;
                    return Ending::Violation(error);
                }
                received = reader.recv() => received,
            }
        };
        let bytes = match received {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ending::ClientClosed,
            Err(error) => {
                // A frame that does not decrypt or is malformed at the Noise layer: the
                // channel can no longer be trusted, but the sending direction still works.
                let error = ApiError::new(ErrorCode::BadRequest, format!("bad frame: {error}"));
                let _ = session
                    .outbound
                    .send(ServerFrame::error(CONNECTION_ERROR_ID, error.clone()))
                    .await;
                return Ending::Violation(error);
            }
        };
        let frame = match ClientFrame::decode(&bytes) {
            Ok(frame) => frame,
            Err(DecodeError::UnknownRequest { request_id }) => {
                let error = ApiError::new(ErrorCode::Unsupported, "unknown request kind");
                if session
                    .outbound
                    .send(ServerFrame::error(request_id, error))
                    .await
                    .is_err()
                {
                    return Ending::Broken("outbound closed".to_owned());
                }
                continue;
            }
            Err(error) => {
                let error = ApiError::new(ErrorCode::BadRequest, format!("bad frame: {error}"));
                let _ = session
                    .outbound
                    .send(ServerFrame::error(CONNECTION_ERROR_ID, error.clone()))
                    .await;
                return Ending::Violation(error);
            }
        };
        match frame {
            ClientFrame::Request(request) => {
                if session.device.is_none()
                    && !matches!(
                        request.body,
                        RequestBody::EnrollChallenge | RequestBody::Enroll(_)
                    )
                {
                    let error = ApiError::new(
                        ErrorCode::Unauthenticated,
                        "this connection's key is not a registered device: enroll first",
                    );
                    let _ = session
                        .outbound
                        .send(ServerFrame::error(request.id, error.clone()))
                        .await;
                    return Ending::Violation(error);
                }
                if let Err(error) = session.dispatch(request).await {
                    return Ending::Violation(error);
                }
            }
            ClientFrame::Ack { delivery_ids } => match session.acknowledge(delivery_ids).await {
                Ok(()) => {}
                Err(Failure::Refused(error)) => {
                    // A storage failure: the entries stay and are delivered again later.
                    tracing::warn!(message = %error.message, "acknowledgement not applied");
                }
                Err(Failure::Close(error)) => {
                    let _ = session
                        .outbound
                        .send(ServerFrame::error(CONNECTION_ERROR_ID, error.clone()))
                        .await;
                    return Ending::Violation(error);
                }
            },
        }
        if session.outbound.is_closed() {
            return Ending::Broken("the socket writer stopped".to_owned());
        }
    }
}

/// Writes queued frames to the socket until every sender is gone, then shuts the socket down.
///
/// Every frame queued by the time the writer runs is encrypted into one buffer and the lot
/// leaves with one write: a burst of deliveries and answers costs one system call. The writer
/// yields once before it looks (the tasks woken with it go first), but a lone frame does not
/// wait for company beyond that.
async fn write_frames<T: AsyncWrite + Unpin>(
    mut writer: NoiseWriter<WriteHalf<T>>,
    mut frames: mpsc::Receiver<ServerFrame>,
) {
    while let Some(frame) = frames.recv().await {
        // Let the tasks already woken run first: a writer commit wakes this connection for its
        // `Sent` answers and its pump for deliveries at once, and both then leave in one write
        // (one system call, and one wake-up of the client) instead of two.
        tokio::task::yield_now().await;
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let Err(error) = feed(&mut writer, frame) {
                tracing::debug!(%error, "encrypting for a client failed");
                frames.close();
                return;
            }
            if writer.buffered() >= MAX_COALESCED_WRITE {
                break;
            }
            next = frames.try_recv().ok();
        }
        if let Err(error) = writer.flush().await {
            tracing::debug!(%error, "writing to a client failed");
            // Stop reading the queue: senders see a closed channel and give up.
            frames.close();
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Encodes `frame` and feeds it to the writer (no IO), straight into the writer's buffers. A
/// frame of ours that breaks a limit is a server bug: the client is told about the request
/// rather than left waiting.
fn feed<T: AsyncWrite + Unpin>(
    writer: &mut NoiseWriter<WriteHalf<T>>,
    frame: ServerFrame,
) -> Result<(), StreamSendError> {
    let answering = match &frame {
        ServerFrame::Response(response) => Some(response.id),
        ServerFrame::Delivery(_) | ServerFrame::Notice(_) => None,
    };
    match writer.feed_with(|buffer: &mut Vec<u8>| frame.encode_into(buffer).map_err(Feed::Encode)) {
        Ok(()) => Ok(()),
        Err(Feed::Send(error)) => Err(error),
        Err(Feed::Encode(error)) => {
            tracing::error!(%error, "a server frame does not encode");
            let Some(id) = answering else {
                return Ok(());
            };
            let fallback = ServerFrame::error(
                id,
                ApiError::new(ErrorCode::Internal, "the answer does not fit a frame"),
            );
            match writer.feed_with(|buffer: &mut Vec<u8>| {
                fallback.encode_into(buffer).map_err(Feed::Encode)
            }) {
                Ok(()) | Err(Feed::Encode(_)) => Ok(()),
                Err(Feed::Send(error)) => Err(error),
            }
        }
    }
}

/// Why feeding a frame failed: ours did not encode, or the channel refused it.
enum Feed {
    Encode(EncodeError),
    Send(StreamSendError),
}

impl From<StreamSendError> for Feed {
    fn from(error: StreamSendError) -> Self {
        Self::Send(error)
    }
}
