//! An async driver over any tokio byte stream (feature `tokio`).
//!
//! It only moves frames between the socket and the sans-IO state machines; every decision is
//! theirs. The limits are the same: a frame header is checked before its body is allocated,
//! and a server reads an unauthenticated client's hello into at most
//! [`MAX_HELLO_FRAME_LEN`] bytes.

use rand_core::CryptoRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{
    AcceptError, AuthenticateError, DecodeFrameError, EncodeFrameError, FinishError,
    ReadResponseError, ReceiveError, SendError, StartError,
};
use crate::frame::{check_frame_header, frame_header};
use crate::keys::PublicKey;
use crate::limits::{FRAME_HEADER_LEN, MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN};
use crate::pipes::client::{AuthenticatedServer, ClientConfig, ClientHandshake};
use crate::pipes::server::{ClientIdentity, ServerConfig, ServerHandshake};
use crate::transport::Transport;
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
