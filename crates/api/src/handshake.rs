//! What the server says in its Noise handshake, before any frame: [`ServerHandshakePayload`].

use prost::Message;

use crate::check;
use crate::error::{DecodeError, EncodeError, FieldError};
use crate::limits::{MAX_CA_CHAIN_LEN, MAX_CERTIFICATE_LEN, MAX_FRAME_PAYLOAD_LEN};
use crate::proto as p;

/// The payload of the server's Noise handshake message: its Noise certificate and the CA chain
/// above it, so that a client authenticates the server through the organisation's PKI before
/// it sends anything (at first contact, before its enrollment code leaves the machine).
///
/// The certificates are opaque DER here; checking them (the path to a pinned or expected root,
/// the certified key being the handshake's static key) is the client's job with
/// `confianza-pki`.
///
/// ```
/// use confianza_api::ServerHandshakePayload;
///
/// let payload = ServerHandshakePayload {
///     certificate: vec![0x30; 400],
///     ca_chain: vec![vec![0x30; 500], vec![0x30; 450]],
/// };
/// let bytes = payload.encode()?;
/// assert_eq!(ServerHandshakePayload::decode(&bytes)?, payload);
/// // A bare certificate (what servers before this message sent) is refused, not misread.
/// assert!(ServerHandshakePayload::decode(&[0x30, 0x82, 0x01, 0x00]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHandshakePayload {
    /// DER: certifies the server's Noise static key for its DNS name (1 ..=
    /// [`MAX_CERTIFICATE_LEN`] bytes).
    pub certificate: Vec<u8>,
    /// DER, issuing CA first, root last: 1 ..= [`MAX_CA_CHAIN_LEN`] certificates of 1 ..=
    /// [`MAX_CERTIFICATE_LEN`] bytes each.
    pub ca_chain: Vec<Vec<u8>>,
}

impl ServerHandshakePayload {
    /// The largest encoded payload: every field at its limit (about 20 KiB, well inside the
    /// 65 438 bytes a Noise handshake message leaves for its payload).
    pub const MAX_ENCODED_LEN: usize = (1 + MAX_CA_CHAIN_LEN) * (MAX_CERTIFICATE_LEN + 3);

    fn check(&self) -> Result<(), FieldError> {
        check::bytes(
            "handshake.certificate",
            &self.certificate,
            MAX_CERTIFICATE_LEN,
        )?;
        check::certificates("handshake.ca_chain", &self.ca_chain, 1)
    }

    /// The payload's bytes, after checking every limit; at most [`Self::MAX_ENCODED_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.check()?;
        Ok(p::ServerHandshakePayload {
            certificate: self.certificate.clone(),
            ca_chain: self.ca_chain.clone(),
        }
        .encode_to_vec())
    }

    /// Parses and validates a server's handshake payload. Never panics; refuses anything larger
    /// than [`Self::MAX_ENCODED_LEN`] before parsing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_ENCODED_LEN {
            return Err(DecodeError::FrameTooLarge {
                len: bytes.len(),
                max: Self::MAX_ENCODED_LEN,
            });
        }
        let wire = p::ServerHandshakePayload::decode(bytes)?;
        let payload = Self {
            certificate: wire.certificate,
            ca_chain: wire.ca_chain,
        };
        payload.check()?;
        Ok(payload)
    }
}

// A payload at its limits must fit one frame too, so a server may also send it as one.
const _: () = assert!(ServerHandshakePayload::MAX_ENCODED_LEN <= MAX_FRAME_PAYLOAD_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(cert_len: usize, chain: usize, chain_cert_len: usize) -> ServerHandshakePayload {
        ServerHandshakePayload {
            certificate: vec![0x30; cert_len],
            ca_chain: vec![vec![0x31; chain_cert_len]; chain],
        }
    }

    #[test]
    fn round_trips() {
        for value in [
            payload(1, 1, 1),
            payload(620, 2, 540),
            payload(MAX_CERTIFICATE_LEN, MAX_CA_CHAIN_LEN, MAX_CERTIFICATE_LEN),
        ] {
            let bytes = value.encode().expect("encodes");
            assert!(bytes.len() <= ServerHandshakePayload::MAX_ENCODED_LEN);
            assert_eq!(ServerHandshakePayload::decode(&bytes), Ok(value));
        }
    }

    #[test]
    fn the_largest_payload_fits_a_noise_handshake_message() {
        // 65 535-byte Noise message − e (32) − encrypted s (48) − tag (16) − the type byte.
        const NOISE_HANDSHAKE_PAYLOAD: usize = 65_438;
        let largest = payload(MAX_CERTIFICATE_LEN, MAX_CA_CHAIN_LEN, MAX_CERTIFICATE_LEN);
        let len = largest.encode().expect("encodes").len();
        assert!(len <= ServerHandshakePayload::MAX_ENCODED_LEN);
        const { assert!(ServerHandshakePayload::MAX_ENCODED_LEN <= NOISE_HANDSHAKE_PAYLOAD) };
    }

    #[test]
    fn limits_are_enforced_at_n_plus_one() {
        let too_long = payload(MAX_CERTIFICATE_LEN + 1, 1, 1);
        assert!(matches!(
            too_long.encode(),
            Err(EncodeError::Field(FieldError::TooLong { .. }))
        ));
        let too_many = payload(1, MAX_CA_CHAIN_LEN + 1, 1);
        assert!(matches!(
            too_many.encode(),
            Err(EncodeError::Field(FieldError::TooMany { .. }))
        ));
        let chain_cert_too_long = payload(1, 1, MAX_CERTIFICATE_LEN + 1);
        assert!(chain_cert_too_long.encode().is_err());
        // The same values built by hand on the wire are refused when decoding.
        for value in [too_long, too_many, chain_cert_too_long] {
            let bytes = p::ServerHandshakePayload {
                certificate: value.certificate,
                ca_chain: value.ca_chain,
            }
            .encode_to_vec();
            assert!(ServerHandshakePayload::decode(&bytes).is_err());
        }
    }

    #[test]
    fn missing_fields_are_refused() {
        let no_chain = payload(10, 0, 0);
        assert_eq!(
            no_chain.encode(),
            Err(EncodeError::Field(FieldError::Missing(
                "handshake.ca_chain"
            )))
        );
        assert_eq!(
            ServerHandshakePayload::decode(&[]),
            Err(DecodeError::Field(FieldError::Missing(
                "handshake.certificate"
            )))
        );
    }

    #[test]
    fn oversized_and_garbage_input_is_refused_without_panicking() {
        let huge = vec![0u8; ServerHandshakePayload::MAX_ENCODED_LEN + 1];
        assert!(matches!(
            ServerHandshakePayload::decode(&huge),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        for garbage in [
            &b"\xff\xff\xff"[..],
            b"\x0a\x05abc",
            b"\x12\xff\xff\xff\xff\x0f",
        ] {
            assert!(ServerHandshakePayload::decode(garbage).is_err());
        }
    }
}
