//! The async driver's batching: frames fed to a writer leave in one write at `flush`, and a
//! reader takes every whole frame out of one read, whatever way the bytes were split.
//!
//! The streams under the driver count their system-call-sized operations (`poll_write`,
//! `poll_read` that returned bytes), so these tests would fail on a driver that writes or
//! reads frame by frame.

#![cfg(feature = "tokio")]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use confianza_noise::driver::{
    FrameIoError, NoiseReader, NoiseWriter, READ_BUFFER_LEN, StreamRecvError, accept, connect,
};
use confianza_noise::limits::MAX_TRANSPORT_PLAINTEXT_LEN;
use confianza_noise::{ClientConfig, PublicKey, ServerConfig, StaticKeyPair};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, ReadHalf, WriteHalf};

/// A stream that counts writes and reads carrying data, and hands out at most `read_chunk`
/// bytes per read (to split frames at every possible place).
struct Counted {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
    read_chunk: usize,
    /// Bytes still written through; the rest is silently dropped (a connection cut mid-frame).
    budget: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let chunk = self.read_chunk.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(chunk));
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
        let got = limited.filled().len();
        if let Poll::Ready(Ok(())) = polled {
            buf.advance(got);
            if got > 0 {
                self.reads.fetch_add(1, Ordering::SeqCst);
            }
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let allowed = self.budget.load(Ordering::SeqCst).min(data.len());
        if allowed == 0 {
            return Poll::Ready(Ok(data.len()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, &data[..allowed]);
        if let Poll::Ready(Ok(written)) = polled
            && written > 0
        {
            self.budget.fetch_sub(written, Ordering::SeqCst);
        }
        if let Poll::Ready(Ok(written)) = polled
            && written > 0
        {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The counters of one side's stream.
struct Counters {
    writes: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
    budget: Arc<AtomicUsize>,
}

impl Counters {
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

fn counted(inner: DuplexStream, read_chunk: usize) -> (Counted, Counters) {
    let writes = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(AtomicUsize::new(usize::MAX));
    (
        Counted {
            inner,
            writes: writes.clone(),
            reads: reads.clone(),
            read_chunk,
            budget: budget.clone(),
        },
        Counters {
            writes,
            reads,
            budget,
        },
    )
}

type Reader = NoiseReader<ReadHalf<Counted>>;
type Writer = NoiseWriter<WriteHalf<Counted>>;

/// A connected pair over a 1 MiB in-memory pipe; the server's reads return at most
/// `server_read_chunk` bytes each.
async fn pair(
    seed: u64,
    server_read_chunk: usize,
) -> ((Reader, Writer), (Reader, Writer), Counters, Counters) {
    let mut rng = StdRng::seed_from_u64(seed);
    let server_config = ServerConfig::new(StaticKeyPair::generate(&mut rng), b"cert".to_vec())
        .expect("server config");
    let client_config = ClientConfig::new(StaticKeyPair::generate(&mut rng));
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (client_io, client_counters) = counted(client_io, usize::MAX);
    let (server_io, server_counters) = counted(server_io, server_read_chunk);
    let mut server_rng = StdRng::seed_from_u64(seed + 1);
    let mut client_rng = StdRng::seed_from_u64(seed + 2);
    let verifier = |_key: &PublicKey, _certificate: &[u8]| Ok(());
    let (server, client) = tokio::join!(
        accept(server_io, &server_config, &mut server_rng),
        connect(
            client_io,
            &client_config,
            None,
            &verifier,
            b"",
            &mut client_rng
        )
    );
    let (server, _) = server.expect("accept");
    let (client, _) = client.expect("connect");
    (
        client.into_split(),
        server.into_split(),
        client_counters,
        server_counters,
    )
}

#[tokio::test]
async fn fed_frames_leave_in_one_write_at_flush() {
    let ((_client_reader, mut client_writer), (mut server_reader, _server_writer), client, server) =
        pair(1, usize::MAX).await;
    let handshake_writes = client.writes();
    let messages: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 40 + usize::from(i)]).collect();
    for message in &messages {
        client_writer.feed(message).expect("feed");
    }
    assert_eq!(
        client.writes(),
        handshake_writes,
        "feed wrote to the socket"
    );
    // 2-byte header and a 16-byte tag around every message.
    let expected: usize = messages.iter().map(|m| m.len() + 2 + 16).sum();
    assert_eq!(client_writer.buffered(), expected);
    client_writer.flush().await.expect("flush");
    assert_eq!(client.writes(), handshake_writes + 1);
    assert_eq!(client_writer.buffered(), 0);

    // The server takes all ten out of one read.
    let reads_before = server.reads();
    for message in &messages {
        assert_eq!(
            server_reader.recv().await.expect("recv").as_ref(),
            Some(message)
        );
    }
    assert_eq!(server.reads(), reads_before + 1);
}

#[tokio::test]
async fn send_after_feed_keeps_the_order_in_one_write() {
    let ((_cr, mut client_writer), (mut server_reader, _sw), client, _server) =
        pair(2, usize::MAX).await;
    let before = client.writes();
    client_writer.feed(b"first").expect("feed");
    client_writer.send(b"second").await.expect("send");
    assert_eq!(client.writes(), before + 1);
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"first".to_vec())
    );
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"second".to_vec())
    );
}

#[tokio::test]
async fn frames_split_anywhere_and_larger_than_the_buffer_arrive_whole() {
    let sizes = [
        0,
        1,
        READ_BUFFER_LEN - 2 - 16,
        READ_BUFFER_LEN - 2 - 16 + 1,
        5,
        MAX_TRANSPORT_PLAINTEXT_LEN,
        3,
        READ_BUFFER_LEN * 3,
        7,
    ];
    for (seed, chunk) in [1usize, 2, 7, 1_000, READ_BUFFER_LEN, usize::MAX]
        .into_iter()
        .enumerate()
    {
        let ((_cr, mut client_writer), (mut server_reader, _sw), _client, _server) =
            pair(10 + seed as u64, chunk).await;
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (0..*size).map(|b| (b + i) as u8).collect())
            .collect();
        let writing = async {
            for message in &messages {
                client_writer.feed(message).expect("feed");
            }
            client_writer
                .shutdown()
                .await
                .expect("shutdown flushes, then closes");
        };
        let reading = async {
            let mut got = Vec::new();
            while let Some(message) = server_reader.recv().await.expect("recv") {
                got.push(message);
            }
            got
        };
        let ((), got) = tokio::join!(writing, reading);
        assert_eq!(got, messages, "read {chunk} bytes at a time");
    }
}

#[tokio::test]
async fn a_stream_cut_inside_a_frame_is_an_unexpected_end() {
    let ((_cr, mut client_writer), (mut server_reader, _sw), client, _server) =
        pair(3, usize::MAX).await;
    client_writer.send(b"whole").await.expect("send");
    // The next frame (2 + 100 + 16 bytes) loses everything after its first 50 bytes.
    client.budget.store(50, Ordering::SeqCst);
    client_writer.feed(&[9u8; 100]).expect("feed");
    client_writer.shutdown().await.expect("shutdown");
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"whole".to_vec())
    );
    assert!(matches!(
        server_reader.recv().await,
        Err(StreamRecvError::Frame(FrameIoError::UnexpectedEof))
    ));
}

#[tokio::test]
async fn a_clean_end_between_frames_is_none() {
    let ((_cr, mut client_writer), (mut server_reader, _sw), _client, _server) = pair(4, 3).await;
    client_writer.feed(b"last").expect("feed");
    client_writer.shutdown().await.expect("shutdown");
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"last".to_vec())
    );
    assert!(matches!(server_reader.recv().await, Ok(None)));
}

/// What the closure given to `feed_with` failed with, in these tests.
#[derive(Debug)]
enum Encode {
    Refused,
    Channel,
}

impl From<confianza_noise::driver::StreamSendError> for Encode {
    fn from(_: confianza_noise::driver::StreamSendError) -> Self {
        Self::Channel
    }
}

#[tokio::test]
async fn a_message_encoded_in_place_arrives_and_a_failed_encoding_leaves_nothing() {
    let ((_cr, mut client_writer), (mut server_reader, _sw), _client, _server) =
        pair(6, usize::MAX).await;
    client_writer
        .feed_with(|buffer: &mut Vec<u8>| {
            assert!(buffer.is_empty(), "a fresh buffer for each message");
            buffer.extend_from_slice(b"first");
            Ok::<(), Encode>(())
        })
        .expect("feed");
    let fed = client_writer.buffered();
    // The encoder fails half-way: nothing of it is fed and no nonce is spent.
    let refused = client_writer.feed_with(|buffer: &mut Vec<u8>| {
        buffer.extend_from_slice(b"half");
        Err::<(), Encode>(Encode::Refused)
    });
    assert!(matches!(refused, Err(Encode::Refused)));
    assert_eq!(client_writer.buffered(), fed);
    // Too long for a frame: refused by the channel, nothing fed either.
    let too_long = client_writer.feed_with(|buffer: &mut Vec<u8>| {
        buffer.resize(MAX_TRANSPORT_PLAINTEXT_LEN + 1, 0);
        Ok::<(), Encode>(())
    });
    assert!(matches!(too_long, Err(Encode::Channel)));
    assert_eq!(client_writer.buffered(), fed);
    client_writer
        .feed_with(|buffer: &mut Vec<u8>| {
            assert!(buffer.is_empty(), "a fresh buffer for each message");
            buffer.extend_from_slice(b"second");
            Ok::<(), Encode>(())
        })
        .expect("feed");
    client_writer.flush().await.expect("flush");
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"first".to_vec())
    );
    assert_eq!(
        server_reader.recv().await.expect("recv"),
        Some(b"second".to_vec())
    );
}
