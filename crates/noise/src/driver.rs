//! An async driver over any tokio byte stream (feature `tokio`).
//!
//! It only moves frames between the socket and the sans-IO state machines; every decision is
//! theirs. The limits are the same: a frame header is checked before its body is allocated,
//! and a server reads an unauthenticated client's hello into at most
//! [`MAX_HELLO_FRAME_LEN`] bytes.

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

/// An encrypted, framed message stream.
pub struct NoiseStream<S> {
    stream: S,
    transport: Transport,
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
        match read_frame(&mut self.stream, MAX_FRAME_LEN).await? {
            Some(frame) => Ok(Some(self.transport.decrypt(&frame)?)),
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
            },
            NoiseWriter {
                stream: write,
                transport: sender,
            },
        )
    }
}

/// The receiving half of a [`NoiseStream`] after [`NoiseStream::into_split`].
pub struct NoiseReader<R> {
    stream: R,
    transport: TransportReceiver,
}

impl<R> core::fmt::Debug for NoiseReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseReader").finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> NoiseReader<R> {
    /// Receives and decrypts one message; `None` when the peer closed the connection cleanly
    /// between frames. The frame's declared length is checked before its body is read.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, StreamRecvError> {
        match read_frame(&mut self.stream, MAX_FRAME_LEN).await? {
            Some(frame) => Ok(Some(self.transport.decrypt(&frame)?)),
            None => Ok(None),
        }
    }

    /// The handshake hash, for channel binding.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        self.transport.handshake_hash()
    }
}

/// The sending half of a [`NoiseStream`] after [`NoiseStream::into_split`].
pub struct NoiseWriter<W> {
    stream: W,
    transport: TransportSender,
}

impl<W> core::fmt::Debug for NoiseWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> NoiseWriter<W> {
    /// Encrypts and sends one message (at most
    /// [`crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN`] bytes).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), StreamSendError> {
        let ciphertext = self.transport.encrypt(message)?;
        write_frame(&mut self.stream, &ciphertext).await?;
        Ok(())
    }

    /// Shuts down the writing direction of the socket (the peer reads a clean end of stream).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
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
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameIoError::UnexpectedEof,
            _ => FrameIoError::Io(error),
        })?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeyPair;
    use crate::verify::ServerKeyRejected;
    use rand::SeedableRng;

    #[tokio::test]
    async fn split_halves_talk_in_both_directions_at_once() {
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
                b"hi",
                &mut client_rng,
            )
            .await
            .expect("connect")
        };
        let ((server_stream, identity), (client_stream, _server)) = tokio::join!(server, client);
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
    async fn split_reader_refuses_a_tampered_frame() {
        let mut rng = rand::rng();
        let server_config = ServerConfig::new(StaticKeyPair::generate(&mut rng), b"c".to_vec())
            .expect("server config");
        let client_config = ClientConfig::new(StaticKeyPair::generate(&mut rng));
        let verifier = |_key: &PublicKey, _certificate: &[u8]| Ok(());
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let mut server_rng = rand::rngs::StdRng::from_rng(&mut rng);
        let mut client_rng = rand::rngs::StdRng::from_rng(&mut rng);
        let (server, client) = tokio::join!(
            async move { accept(server_io, &server_config, &mut server_rng).await },
            async move {
                connect(
                    client_io,
                    &client_config,
                    None,
                    &verifier,
                    b"",
                    &mut client_rng,
                )
                .await
            }
        );
        let (server_stream, _) = server.expect("accept");
        let (client_stream, _) = client.expect("connect");
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
