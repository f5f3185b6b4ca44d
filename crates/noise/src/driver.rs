//! An async driver over any tokio byte stream (feature `tokio`).
//!
//! It only moves frames between the socket and the sans-IO state machines; every decision is
//! theirs. The limits are the same: a frame header is checked before its body is allocated,
//! and a server reads an unauthenticated client's hello into at most
//! [`MAX_HELLO_FRAME_LEN`] bytes.
//!
//! After the handshake both directions batch their system calls: a reader fills a small buffer
//! ([`READ_BUFFER_LEN`]) and takes every whole frame out of it before reading again, and a
//! writer can [`NoiseWriter::feed`] several messages and write them with one
//! [`NoiseWriter::flush`].

use rand_core::CryptoRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::error::{
    AcceptError, AuthenticateError, DecodeFrameError, EncodeFrameError, FinishError,
    ReadResponseError, ReceiveError, SendError, StartError,
};
use crate::frame::{check_frame_header, frame_header};
use crate::keys::PublicKey;
use crate::limits::{FRAME_HEADER_LEN, MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN};
use crate::pipes::client::{AuthenticatedServer, ClientConfig, ClientHandshake};
use crate::pipes::server::{ClientIdentity, ServerConfig, ServerHandshake};
use crate::transport::{Transport, TransportReceiver, TransportSender};
use crate::verify::ServerKeyVerifier;

/// Moving a frame failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame, or before the handshake ended.
    #[error("connection closed unexpectedly")]
    UnexpectedEof,
    /// The peer announced an oversized frame.
    #[error(transparent)]
    Decode(#[from] DecodeFrameError),
    /// We tried to send an oversized frame.
    #[error(transparent)]
    Encode(#[from] EncodeFrameError),
}

/// [`connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(transparent)]
    Frame(#[from] FrameIoError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Response(#[from] ReadResponseError),
    #[error(transparent)]
    Authenticate(#[from] AuthenticateError),
}

/// [`accept`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptStreamError {
    #[error(transparent)]
    Frame(#[from] FrameIoError),
    #[error(transparent)]
    Hello(#[from] AcceptError),
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// [`NoiseStream::send`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSendError {
    #[error(transparent)]
    Encrypt(#[from] SendError),
    #[error(transparent)]
    Frame(#[from] FrameIoError),
}

/// [`NoiseStream::recv`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamRecvError {
    #[error(transparent)]
    Decrypt(#[from] ReceiveError),
    #[error(transparent)]
    Frame(#[from] FrameIoError),
}

/// Bytes a reader asks the socket for at once after the handshake. A typical frame (a request,
/// a message of a few hundred bytes, an acknowledgement) and the frames queued behind it then
/// cost one read system call together; a larger frame is read straight into its own buffer
/// once its header has been checked. Every connection holds one, so it is kept small:
/// 10 000 connections hold 20 MB.
pub const READ_BUFFER_LEN: usize = 2_048;

/// Capacity a writer keeps between flushes. A burst of fed frames may grow its buffer beyond
/// this; the flush that ends the burst gives the excess back, so idle connections stay small.
pub const RETAINED_WRITE_BUFFER: usize = 16 * 1_024;

/// Capacity a writer keeps for encoding one message ([`NoiseWriter::feed_with`]): typical
/// messages are reused in place, a rare large one gives its buffer back.
const RETAINED_MESSAGE_BUFFER: usize = 4 * 1_024;

/// An encrypted, framed message stream.
pub struct NoiseStream<S> {
    stream: S,
    transport: Transport,
    incoming: FrameBuffer,
}

impl<S> core::fmt::Debug for NoiseStream<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseStream").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NoiseStream<S> {
    /// Encrypts and sends one message (at most
    /// [`crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN`] bytes).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), StreamSendError> {
        let ciphertext = self.transport.encrypt(message)?;
        write_frame(&mut self.stream, &ciphertext).await?;
        Ok(())
    }

    /// Receives and decrypts one message; `None` when the peer closed the connection cleanly
    /// between frames.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, StreamRecvError> {
        match self.incoming.next(&mut self.stream, MAX_FRAME_LEN).await? {
            Some(mut frame) => {
                self.transport.decrypt_in_place(&mut frame)?;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// The handshake hash, for channel binding.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        self.transport.handshake_hash()
    }

    /// Shuts down the writing half.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// Splits the stream into a receiving and a sending half that can be used from two tasks
    /// at once (a server pushes deliveries while requests come in). Each half owns its
    /// direction's cipher state; the socket is shared through [`tokio::io::split`].
    pub fn into_split(self) -> (NoiseReader<ReadHalf<S>>, NoiseWriter<WriteHalf<S>>) {
        let (read, write) = tokio::io::split(self.stream);
        let (sender, receiver) = self.transport.split();
        (
            NoiseReader {
                stream: read,
                transport: receiver,
                incoming: self.incoming,
            },
            NoiseWriter {
                stream: write,
                transport: sender,
                pending: Vec::new(),
                message: Vec::new(),
            },
        )
    }
}

/// The receiving half of a [`NoiseStream`] after [`NoiseStream::into_split`].
pub struct NoiseReader<R> {
    stream: R,
    transport: TransportReceiver,
    incoming: FrameBuffer,
}

impl<R> core::fmt::Debug for NoiseReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseReader").finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> NoiseReader<R> {
    /// Receives and decrypts one message; `None` when the peer closed the connection cleanly
    /// between frames. The frame's declared length is checked before its body is read.
    ///
    /// Frames that arrived together are taken from the buffer without another read, so a
    /// caller can drain a burst cheaply. Cancelling the call (dropping the future) loses
    /// nothing while the frame fits [`READ_BUFFER_LEN`]; cancelling the read of a larger frame
    /// loses the stream's framing, so drop the reader afterwards.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, StreamRecvError> {
        match self.incoming.next(&mut self.stream, MAX_FRAME_LEN).await? {
            Some(mut frame) => {
                self.transport.decrypt_in_place(&mut frame)?;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// The handshake hash, for channel binding.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        self.transport.handshake_hash()
    }

    /// Whether a whole frame (or a header [`NoiseReader::recv`] refuses) has already been
    /// read from the socket, so that the next `recv` completes without waiting for it: a
    /// caller drains a burst with this and never cancels a read half-way.
    #[must_use]
    pub fn has_buffered_frame(&self) -> bool {
        self.incoming.has_whole_frame(MAX_FRAME_LEN)
    }
}

/// The sending half of a [`NoiseStream`] after [`NoiseStream::into_split`].
pub struct NoiseWriter<W> {
    stream: W,
    transport: TransportSender,
    /// Frames fed and not yet written.
    pending: Vec<u8>,
    /// Where [`NoiseWriter::feed_with`] has a message encoded, kept between calls.
    message: Vec<u8>,
}

impl<W> core::fmt::Debug for NoiseWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> NoiseWriter<W> {
    /// Encrypts and sends one message (at most
    /// [`crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN`] bytes).
    /// Equivalent to [`NoiseWriter::feed`] then [`NoiseWriter::flush`]: frames fed before it
    /// leave in the same write.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), StreamSendError> {
        self.feed(message)?;
        self.flush().await?;
        Ok(())
    }

    /// Encrypts one message (at most [`crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN`] bytes) and
    /// appends its frame to the writer's buffer without writing anything: the frame is sent
    /// by the next [`NoiseWriter::flush`] (or [`NoiseWriter::send`]). The nonce is used
    /// now, so frames go out in the order they were fed.
    ///
    /// The buffer is not bounded here: a caller feeding a queue flushes when the queue is
    /// empty or when [`NoiseWriter::buffered`] passes its own threshold.
    pub fn feed(&mut self, message: &[u8]) -> Result<(), StreamSendError> {
        let frame_start = self.pending.len();
        // The header's place, filled in once the ciphertext's length is known.
        self.pending.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        self.pending.extend_from_slice(message);
        let message_start = frame_start + FRAME_HEADER_LEN;
        // Encrypted where it lies: no ciphertext allocation per frame.
        let framed = self
            .transport
            .encrypt_in_place(&mut self.pending, message_start)
            .map_err(StreamSendError::from)
            .and_then(|()| {
                // The plaintext limit keeps the ciphertext within a frame; checked all the same.
                frame_header(self.pending.len() - message_start)
                    .map_err(|error| StreamSendError::Frame(FrameIoError::from(error)))
            });
        match framed {
            Ok(header) => {
                self.pending[frame_start..message_start].copy_from_slice(&header);
                Ok(())
            }
            Err(error) => {
                self.pending.truncate(frame_start);
                Err(error)
            }
        }
    }

    /// As [`NoiseWriter::feed`], for a message that `encode` writes into the (empty) buffer it
    /// is given. The buffer is the writer's and is reused, so encoding a message costs no
    /// allocation. If `encode` fails nothing is fed and no nonce is used.
    pub fn feed_with<E: From<StreamSendError>>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut message = std::mem::take(&mut self.message);
        message.clear();
        let result = match encode(&mut message) {
            Ok(()) => self.feed(&message).map_err(E::from),
            Err(error) => Err(error),
        };
        if message.capacity() > RETAINED_MESSAGE_BUFFER {
            message = Vec::new();
        }
        self.message = message;
        result
    }

    /// Bytes fed and not yet written.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Writes every frame fed so far and flushes the stream. After an error the connection
    /// is unusable (part of a frame may have been written).
    pub async fn flush(&mut self) -> Result<(), FrameIoError> {
        if !self.pending.is_empty() {
            self.stream.write_all(&self.pending).await?;
            self.pending.clear();
            if self.pending.capacity() > RETAINED_WRITE_BUFFER {
                self.pending.shrink_to(RETAINED_WRITE_BUFFER);
            }
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Shuts down the writing direction of the socket (the peer reads a clean end of stream).
    /// Frames still fed and not flushed are written first.
    pub async fn shutdown(&mut self) -> Result<(), FrameIoError> {
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Runs the client side of Noise Pipes over `stream`: IK if `cached_server_key` is given (with
/// XXfallback if the server's key changed), XX otherwise.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &ClientConfig,
    cached_server_key: Option<PublicKey>,
    verifier: &impl ServerKeyVerifier,
    client_payload: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(NoiseStream<S>, AuthenticatedServer), ConnectError> {
    let (handshake, hello) = ClientHandshake::start(config, cached_server_key, rng)?;
    write_frame(&mut stream, &hello).await?;
    let response = read_frame(&mut stream, MAX_FRAME_LEN)
        .await?
        .ok_or(FrameIoError::UnexpectedEof)?;
    let established = handshake
        .read_response(&response)?
        .authenticate(verifier, client_payload)?;
    write_frame(&mut stream, &established.final_message).await?;
    Ok((
        NoiseStream {
            stream,
            transport: established.transport,
            incoming: FrameBuffer::new(),
        },
        established.server,
    ))
}

/// Runs the server side of Noise Pipes over `stream`.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    config: &ServerConfig,
    rng: &mut impl CryptoRng,
) -> Result<(NoiseStream<S>, ClientIdentity), AcceptStreamError> {
    let hello = read_frame(&mut stream, MAX_HELLO_FRAME_LEN)
        .await?
        .ok_or(FrameIoError::UnexpectedEof)?;
    let (handshake, response) = ServerHandshake::accept(config, &hello, rng)?;
    write_frame(&mut stream, &response).await?;
    let finish = read_frame(&mut stream, MAX_FRAME_LEN)
        .await?
        .ok_or(FrameIoError::UnexpectedEof)?;
    let established = handshake.finish(&finish)?;
    Ok((
        NoiseStream {
            stream,
            transport: established.transport,
            incoming: FrameBuffer::new(),
        },
        established.client,
    ))
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> Result<(), FrameIoError> {
    let header = frame_header(message.len())?;
    stream.write_all(&header).await?;
    stream.write_all(message).await?;
    stream.flush().await?;
    Ok(())
}

/// Frames read ahead: bytes `start..end` of `bytes` arrived and are not consumed yet.
///
/// The handshake reads frame by frame (exactly what each message needs, see [`read_frame`]),
/// so nothing is read ahead before the transport phase starts with an empty buffer.
struct FrameBuffer {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameBuffer {
    fn new() -> Self {
        Self {
            bytes: vec![0u8; READ_BUFFER_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Whether [`FrameBuffer::next`] would return without reading: a whole frame is
    /// buffered, or a header that breaks `max_len` is.
    fn has_whole_frame(&self, max_len: usize) -> bool {
        let available = self.end - self.start;
        if available < FRAME_HEADER_LEN {
            return false;
        }
        let header = [self.bytes[self.start], self.bytes[self.start + 1]];
        check_frame_header(header, max_len).map_or(true, |len| available - FRAME_HEADER_LEN >= len)
    }

    /// The next frame of at most `max_len` bytes; `None` on a clean end of stream before it.
    async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        max_len: usize,
    ) -> Result<Option<Vec<u8>>, FrameIoError> {
        loop {
            let available = self.end - self.start;
            if available >= FRAME_HEADER_LEN {
                let header = [self.bytes[self.start], self.bytes[self.start + 1]];
                // Checked before a byte of the body is kept or allocated for.
                let len = check_frame_header(header, max_len)?;
                let body_start = self.start + FRAME_HEADER_LEN;
                if available - FRAME_HEADER_LEN >= len {
                    let body = self.bytes[body_start..body_start + len].to_vec();
                    self.start = body_start + len;
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(Some(body));
                }
                if FRAME_HEADER_LEN + len > self.bytes.len() {
                    // Larger than the buffer: what arrived moves into the frame's own buffer
                    // and the rest is read straight into it.
                    let mut body = vec![0u8; len];
                    let have = self.end - body_start;
                    body[..have].copy_from_slice(&self.bytes[body_start..self.end]);
                    self.start = 0;
                    self.end = 0;
                    stream
                        .read_exact(&mut body[have..])
                        .await
                        .map_err(eof_is_unexpected)?;
                    return Ok(Some(body));
                }
            }
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Room is left: a partial frame that fits the buffer is shorter than it.
            let read = stream.read(&mut self.bytes[self.end..]).await?;
            if read == 0 {
                return if self.end == 0 {
                    Ok(None)
                } else {
                    Err(FrameIoError::UnexpectedEof)
                };
            }
            self.end += read;
        }
    }
}

fn eof_is_unexpected(error: std::io::Error) -> FrameIoError {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameIoError::UnexpectedEof,
        _ => FrameIoError::Io(error),
    }
}

/// Reads one frame of at most `max_len` bytes; `None` on a clean end of stream before it.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_len: usize,
) -> Result<Option<Vec<u8>>, FrameIoError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < FRAME_HEADER_LEN {
        let read = stream.read(&mut header[filled..]).await?;
        if read == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameIoError::UnexpectedEof)
            };
        }
        filled += read;
    }
    // Checked before the body's buffer exists.
    let len = check_frame_header(header, max_len)?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(eof_is_unexpected)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeyPair;
    use crate::verify::ServerKeyRejected;
    use rand::SeedableRng;
    use tokio::io::DuplexStream;

    type Pair = (
        (NoiseStream<DuplexStream>, ClientIdentity),
        (NoiseStream<DuplexStream>, AuthenticatedServer),
    );

    /// A server and a client after an XX handshake over an in-memory pipe: the server presents
    /// the certificate `b"server cert"` (the only one the client accepts) and the client sends
    /// `payload`.
    async fn connected_pair(payload: &'static [u8]) -> Pair {
        let mut rng = rand::rng();
        let server_config =
            ServerConfig::new(StaticKeyPair::generate(&mut rng), b"server cert".to_vec())
                .expect("server config");
        let client_config = ClientConfig::new(StaticKeyPair::generate(&mut rng));
        let verifier = |_key: &PublicKey, certificate: &[u8]| {
            if certificate == b"server cert" {
                Ok(())
            } else {
                Err(ServerKeyRejected::new("unexpected certificate"))
            }
        };
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let mut server_rng = rand::rngs::StdRng::from_rng(&mut rng);
        let mut client_rng = rand::rngs::StdRng::from_rng(&mut rng);
        let server = async move {
            accept(server_io, &server_config, &mut server_rng)
                .await
                .expect("accept")
        };
        let client = async move {
            connect(
                client_io,
                &client_config,
                None,
                &verifier,
                payload,
                &mut client_rng,
            )
            .await
            .expect("connect")
        };
        tokio::join!(server, client)
    }

    #[tokio::test]
    async fn split_halves_talk_in_both_directions_at_once() {
        let ((server_stream, identity), (client_stream, _server)) = connected_pair(b"hi").await;
        assert_eq!(identity.payload(), b"hi");
        assert_eq!(
            server_stream.handshake_hash(),
            client_stream.handshake_hash()
        );

        let (mut server_reader, mut server_writer) = server_stream.into_split();
        let (mut client_reader, mut client_writer) = client_stream.into_split();
        assert_eq!(
            server_reader.handshake_hash(),
            client_reader.handshake_hash()
        );

        // Both directions carry many messages concurrently; each arrives in order.
        const COUNT: u32 = 200;
        let pushes = async {
            for i in 0..COUNT {
                server_writer.send(&i.to_be_bytes()).await.expect("push");
            }
            server_writer.shutdown().await.expect("shutdown");
        };
        let requests = async {
            for i in 0..COUNT {
                client_writer
                    .send(&(i + 1_000).to_be_bytes())
                    .await
                    .expect("request");
            }
            client_writer.shutdown().await.expect("shutdown");
        };
        let pulls = async {
            let mut seen = 0u32;
            while let Some(message) = client_reader.recv().await.expect("recv") {
                assert_eq!(message, seen.to_be_bytes());
                seen += 1;
            }
            seen
        };
        let reads = async {
            let mut seen = 0u32;
            while let Some(message) = server_reader.recv().await.expect("recv") {
                assert_eq!(message, (seen + 1_000).to_be_bytes());
                seen += 1;
            }
            seen
        };
        let ((), (), pulled, read) = tokio::join!(pushes, requests, pulls, reads);
        assert_eq!((pulled, read), (COUNT, COUNT));
    }

    #[tokio::test]
    async fn buffered_frames_are_reported_before_they_are_taken() {
        let ((server_stream, _), (client_stream, _)) = connected_pair(b"").await;
        let (_server_reader, mut server_writer) = server_stream.into_split();
        let (mut client_reader, _client_writer) = client_stream.into_split();

        assert!(!client_reader.has_buffered_frame(), "nothing read yet");
        server_writer.feed(b"one").expect("feed");
        server_writer.feed(b"two").expect("feed");
        server_writer.flush().await.expect("flush");
        // The first read brings both frames: the second is then waiting in the buffer.
        assert_eq!(
            client_reader.recv().await.expect("recv"),
            Some(b"one".to_vec())
        );
        assert!(client_reader.has_buffered_frame());
        assert_eq!(
            client_reader.recv().await.expect("recv"),
            Some(b"two".to_vec())
        );
        assert!(!client_reader.has_buffered_frame());

        // A frame larger than the read buffer is never reported as buffered.
        server_writer
            .send(&vec![7u8; READ_BUFFER_LEN * 2])
            .await
            .expect("send");
        assert!(!client_reader.has_buffered_frame());
        let large = client_reader.recv().await.expect("recv").expect("a frame");
        assert_eq!(large.len(), READ_BUFFER_LEN * 2);
    }

    #[tokio::test]
    async fn split_reader_refuses_a_tampered_frame() {
        let ((server_stream, _), (client_stream, _)) = connected_pair(b"").await;
        let (mut reader, _writer) = server_stream.into_split();
        // A frame of garbage where a transport message belongs: a decryption error, no panic.
        let mut raw = client_stream.stream;
        raw.write_all(&[0x00, 20]).await.expect("write");
        raw.write_all(&[0xAA; 20]).await.expect("write");
        assert!(matches!(
            reader.recv().await,
            Err(StreamRecvError::Decrypt(ReceiveError::Decrypt))
        ));
    }

    #[tokio::test]
    async fn read_frame_checks_the_header_before_reading_the_body() {
        // A header announcing 98 bytes, with no body behind it: refused at the header.
        let (mut near, mut far) = tokio::io::duplex(1024);
        near.write_all(&[0x00, 98]).await.expect("write");
        let result = read_frame(&mut far, MAX_HELLO_FRAME_LEN).await;
        assert!(matches!(
            result,
            Err(FrameIoError::Decode(DecodeFrameError::TooLong {
                len: 98,
                max: 97
            }))
        ));

        near.write_all(&[0x00, 97]).await.expect("write");
        near.write_all(&[7u8; 97]).await.expect("write");
        let frame = read_frame(&mut far, MAX_HELLO_FRAME_LEN)
            .await
            .expect("read")
            .expect("a frame");
        assert_eq!(frame.len(), 97);

        near.write_all(&[0x00]).await.expect("write");
        drop(near);
        assert!(matches!(
            read_frame(&mut far, MAX_FRAME_LEN).await,
            Err(FrameIoError::UnexpectedEof)
        ));
    }
}
