//! Every quantity a peer controls, with the reason for its value.
//!
//! Each limit has tests at `N` (accepted) and `N + 1` (rejected), beside the code that enforces
//! it and in `tests/pipes.rs`.

/// Largest Noise message, handshake or transport: 65 535 bytes (Noise spec §3, "Message format").
///
/// It is also the largest frame: one frame carries exactly one message, and the 2-byte length
/// prefix cannot say more. Frame decoders check a declared length against their maximum (this or
/// smaller) before allocating anything for it.
pub const MAX_FRAME_LEN: usize = 65_535;

/// Length of the frame header: a big-endian `u16`.
pub const FRAME_HEADER_LEN: usize = 2;

/// Largest Noise message inside a handshake frame: the frame minus the 1-byte message type.
pub const MAX_HANDSHAKE_MESSAGE_LEN: usize = MAX_FRAME_LEN - 1;

/// Largest client hello frame: the type byte and an IK message 1 with its empty payload
/// (`e` 32, sealed `s` 32 + 16, the payload's tag 16). An XX hello is shorter (1 + 32).
///
/// Hellos carry no payload (no 0-RTT data), so a server reads an unauthenticated peer's first
/// frame into at most this many bytes.
pub const MAX_HELLO_FRAME_LEN: usize = 1 + 32 + 48 + TAG_LEN;

/// Largest handshake payload (the server's certificate, the client's final payload).
///
/// The heaviest of our handshake messages (XX message 2, XXfallback message 1) carries an
/// ephemeral key (32), an encrypted static key (32 + 16) and the payload's tag (16) next to the
/// payload, all inside one handshake frame.
pub const MAX_HANDSHAKE_PAYLOAD_LEN: usize = MAX_HANDSHAKE_MESSAGE_LEN - 32 - 48 - 16;

/// Largest plaintext of one transport message: a Noise message minus the 16-byte AES-GCM tag.
pub const MAX_TRANSPORT_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - TAG_LEN;

/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

/// Messages one `CipherState` may encrypt or decrypt: nonces `0 ..= 2^64 - 2`.
///
/// Noise reserves nonce `2^64 - 1` (spec §5.1); a key is never used with a repeated nonce, so
/// once the counter reaches it the channel refuses to send or receive (no rekey: a session this
/// long should reconnect).
pub const MAX_NONCE: u64 = u64::MAX - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_limits_have_the_documented_values() {
        assert_eq!(MAX_HANDSHAKE_MESSAGE_LEN, 65_534);
        assert_eq!(MAX_HELLO_FRAME_LEN, 97);
        assert_eq!(MAX_HANDSHAKE_PAYLOAD_LEN, 65_438);
        assert_eq!(MAX_TRANSPORT_PLAINTEXT_LEN, 65_519);
        assert_eq!(usize::from(u16::MAX), MAX_FRAME_LEN);
    }
}
