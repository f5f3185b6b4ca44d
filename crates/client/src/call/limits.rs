//! Named limits of calls: every quantity the peer controls, with the reason for its value.

use std::time::Duration;

/// Largest SRTP packet sent or accepted (bytes): the 1500-byte Ethernet MTU. Larger datagrams
/// are refused before any cryptography, and this is the size of the receive buffer.
pub const MAX_SRTP_PACKET_LEN: usize = 1500;

/// Largest audio payload the packetizer puts in one RTP packet (bytes). 1200 keeps a packet
/// (12-byte header, 10-byte tag, IPv6 and UDP headers) under the 1280-byte IPv6 minimum MTU, so
/// no path fragments it.
pub const MAX_RTP_PAYLOAD_LEN: usize = 1200;

/// Largest SRTP packet index, `2^48 − 1` (RFC 3711 §3.2.1): a master key must not protect more
/// packets, so the sender stops there and the receiver refuses indices beyond it.
pub const SRTP_MAX_INDEX: u64 = (1 << 48) - 1;

/// Replay window (packets), the RFC 3711 §3.3.2 minimum of 64: a packet more than 63 indices
/// behind the highest one received is refused as too old.
pub const SRTP_REPLAY_WINDOW: u64 = 64;

/// Largest audio a receiver buffers for one call (bytes of PCM): 64 MiB is close to six minutes
/// of 48 kHz stereo, and bounds the memory a sender can make us hold.
pub const MAX_CALL_AUDIO_BYTES: usize = 64 << 20;

/// Audio packets in one call: an audio packet holds at least one 2-byte sample, so
/// `MAX_CALL_AUDIO_BYTES / 2`. An end marker announcing more is refused, which also bounds the
/// silence a lying end marker can make the receiver write.
pub const MAX_CALL_AUDIO_PACKETS: u64 = (MAX_CALL_AUDIO_BYTES / 2) as u64;

/// Highest sample rate accepted in a WAV file or an end marker (Hz): 384 kHz, the highest
/// rate common audio hardware offers.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Most channels accepted (the media layer sends mono and stereo).
pub const MAX_CHANNELS: u16 = 2;

/// Packet duration (RFC 3551 default `ptime`): 20 ms.
pub const PACKET_DURATION: Duration = Duration::from_millis(20);

/// How many times the sender repeats its end marker (each a fresh packet), so one lost
/// datagram does not leave the receiver waiting.
pub const END_MARKER_REPEATS: usize = 3;

/// How long the receiver waits, after the end marker, for reordered audio packets still
/// missing before it writes silence in their place.
pub const REORDER_GRACE: Duration = Duration::from_millis(200);

/// How often the answerer repeats its "ready" packet until the first audio packet arrives.
pub const READY_INTERVAL: Duration = Duration::from_millis(100);
