//! SRTP (RFC 3711) with the `AES_CM_128_HMAC_SHA1_80` crypto suite (RFC 4568 §6.2.1), sans-IO.
//!
//! * Session keys come from the master key and salt by the RFC 3711 §4.3 KDF
//!   ([`SrtpSessionKeys::derive_srtp`], key_derivation_rate 0).
//! * Encryption (§4.1.1): AES-128 in counter mode over the RTP payload, with the IV
//!   `(k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16)` where `i` is the 48-bit packet index.
//! * Authentication (§4.2): `tag = HMAC-SHA1(k_a, header ‖ encrypted payload ‖ ROC)[0..10]`,
//!   appended to the packet.
//! * The receiver estimates the index (§3.3.1), checks the 64-packet replay list (§3.3.2),
//!   checks the tag in constant time, and only then decrypts and advances its state.
//!
//! One context protects or unprotects one stream (one SSRC): the sender fixes the SSRC of its
//! first packet, the receiver the SSRC of its first authenticated packet. The sender refuses to
//! protect an index twice, since AES-CM would then reuse keystream.

mod replay;
pub mod rtp;

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use confianza_protocol::call::{SrtpMasterKeys, SrtpSessionKeys};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use self::replay::{ReplayCheck, ReplayWindow, estimate_index};
use self::rtp::{RtpError, RtpHeader};
use super::limits::MAX_SRTP_PACKET_LEN;
#[cfg(test)]
use super::limits::SRTP_MAX_INDEX;

/// Length of the authentication tag of `AES_CM_128_HMAC_SHA1_80` (80 bits).
pub const SRTP_AUTH_TAG_LEN: usize = 10;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Why a packet could not be protected (misuse by the local caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectError {
    /// Not an RTP packet.
    #[error("not an RTP packet: {0}")]
    Malformed(#[from] RtpError),
    /// The protected packet would exceed [`MAX_SRTP_PACKET_LEN`].
    #[error("SRTP packet of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Length the protected packet would have.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A context protects one SSRC.
    #[error("this SRTP context protects SSRC {expected:#010x}, not {got:#010x}")]
    WrongSsrc {
        /// The stream's SSRC.
        expected: u32,
        /// The packet's SSRC.
        got: u32,
    },
    /// The packet's index is not above the last one protected: protecting it would reuse
    /// keystream.
    #[error("SRTP index {index} is not above the last protected index {highest}")]
    IndexNotIncreasing {
        /// The packet's index.
        index: u64,
        /// The highest index already protected.
        highest: u64,
    },
    /// All 2^48 indices of this master key are used.
    #[error("the SRTP master key has protected 2^48 packets and must be replaced")]
    KeyExhausted,
}

/// Why a received packet was refused. All of these are the peer's (or an attacker's) doing;
/// the context is unchanged by a refused packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnprotectError {
    /// Not an SRTP packet: bad RTP header, or shorter than header and tag.
    #[error("malformed SRTP packet: {0}")]
    Malformed(#[from] RtpError),
    /// Longer than [`MAX_SRTP_PACKET_LEN`].
    #[error("SRTP packet of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Received length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A packet of another stream than the one this context follows.
    #[error("SRTP packet for unknown SSRC {0:#010x}")]
    UnknownSsrc(u32),
    /// The index guess falls outside the index space (e.g. before the start of the stream).
    #[error("SRTP packet index out of range")]
    IndexOutOfRange,
    /// The authentication tag does not match.
    #[error("SRTP authentication failed")]
    Authentication,
    /// This index was already received.
    #[error("SRTP packet {index} replayed")]
    Replayed {
        /// The packet index.
        index: u64,
    },
    /// The index is behind the replay window.
    #[error("SRTP packet {index} is behind the replay window")]
    TooOld {
        /// The packet index.
        index: u64,
    },
}

/// A packet that passed authentication and replay checks.
#[derive(Clone, PartialEq, Eq)]
pub struct UnprotectedPacket {
    /// Its 48-bit SRTP index (`2^16 · ROC + SEQ`).
    pub index: u64,
    /// The plaintext RTP packet.
    pub packet: Vec<u8>,
}

impl std::fmt::Debug for UnprotectedPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Media is private: show its size only.
        f.debug_struct("UnprotectedPacket")
            .field("index", &self.index)
            .field("len", &self.packet.len())
            .finish()
    }
}

/// Session keys expanded for use: the AES key schedule, the keyed HMAC and the session salt.
struct SessionCrypto {
    cipher: Aes128,
    mac: Hmac<Sha1>,
    salt: Zeroizing<[u8; 14]>,
}

impl SessionCrypto {
    fn new(master: &SrtpMasterKeys) -> Self {
        let keys = SrtpSessionKeys::derive_srtp(master);
        Self::from_session_keys(&keys)
    }

    fn from_session_keys(keys: &SrtpSessionKeys) -> Self {
        let cipher = Aes128::new(&(*keys.encryption_key()).into());
        // HMAC takes keys of any length, so a 20-byte key cannot be refused.
        let mac = <Hmac<Sha1> as hmac::KeyInit>::new_from_slice(keys.authentication_key())
            .unwrap_or_else(|_| unreachable!());
        Self {
            cipher,
            mac,
            salt: Zeroizing::new(*keys.salt()),
        }
    }

    /// XORs the keystream for (`ssrc`, `index`) into `data` (RFC 3711 §4.1.1).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = Zeroizing::new([0u8; 16]);
        iv[..14].copy_from_slice(&self.salt[..]);
        for (byte, ssrc_byte) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *byte ^= ssrc_byte;
        }
        for (byte, index_byte) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *byte ^= index_byte;
        }
        let mut ctr = Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(
            self.cipher.clone(),
            &(*iv).into(),
        ));
        ctr.apply_keystream(data);
    }

    /// The 80-bit tag over `authenticated ‖ ROC` (RFC 3711 §4.2).
    fn tag(&self, authenticated: &[u8], roc: u32) -> [u8; SRTP_AUTH_TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(authenticated);
        mac.update(&roc.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; SRTP_AUTH_TAG_LEN];
        tag.copy_from_slice(&full[..SRTP_AUTH_TAG_LEN]);
        tag
    }
}

fn roc_of(index: u64) -> u32 {
    // Indices are at most 48 bits, so the ROC fits in 32.
    (index >> 16) as u32
}

/// The sending half of an SRTP stream.
pub struct SrtpSender {
    crypto: SessionCrypto,
    /// SSRC and highest index protected so far.
    state: Option<(u32, u64)>,
}

impl SrtpSender {
    /// A sender for one direction's master key and salt.
    pub fn new(master: &SrtpMasterKeys) -> Self {
        Self {
            crypto: SessionCrypto::new(master),
            state: None,
        }
    }

    /// Protects a plaintext RTP packet: encrypts its payload and appends the tag.
    ///
    /// The first packet fixes the SSRC and starts the ROC at 0; later packets must have a
    /// higher index (the ROC advances when the sequence number wraps).
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, ProtectError> {
        let header = RtpHeader::parse(packet)?;
        let len = packet.len() + SRTP_AUTH_TAG_LEN;
        if len > MAX_SRTP_PACKET_LEN {
            return Err(ProtectError::TooLong {
                len,
                max: MAX_SRTP_PACKET_LEN,
            });
        }
        let index = match self.state {
            None => u64::from(header.sequence),
            Some((ssrc, highest)) => {
                if ssrc != header.ssrc {
                    return Err(ProtectError::WrongSsrc {
                        expected: ssrc,
                        got: header.ssrc,
                    });
                }
                let index =
                    estimate_index(highest, header.sequence).ok_or(ProtectError::KeyExhausted)?;
                if index <= highest {
                    return Err(ProtectError::IndexNotIncreasing { index, highest });
                }
                index
            }
        };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(packet);
        self.crypto
            .apply_keystream(header.ssrc, index, &mut out[header.len..]);
        let tag = self.crypto.tag(&out, roc_of(index));
        out.extend_from_slice(&tag);
        self.state = Some((header.ssrc, index));
        Ok(out)
    }

    /// The index of the last packet protected, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.state.map(|(_, index)| index)
    }
}

/// The receiving half of an SRTP stream.
pub struct SrtpReceiver {
    crypto: SessionCrypto,
    /// SSRC and replay window, from the first authenticated packet on.
    state: Option<(u32, ReplayWindow)>,
}

impl SrtpReceiver {
    /// A receiver for one direction's master key and salt.
    pub fn new(master: &SrtpMasterKeys) -> Self {
        Self {
            crypto: SessionCrypto::new(master),
            state: None,
        }
    }

    /// Checks and decrypts an SRTP packet. The receiver's state changes only when the packet
    /// is authentic and fresh.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<UnprotectedPacket, UnprotectError> {
        if packet.len() > MAX_SRTP_PACKET_LEN {
            return Err(UnprotectError::TooLong {
                len: packet.len(),
                max: MAX_SRTP_PACKET_LEN,
            });
        }
        let Some(body_len) = packet.len().checked_sub(SRTP_AUTH_TAG_LEN) else {
            return Err(RtpError::Truncated {
                needed: rtp::RTP_FIXED_HEADER_LEN + SRTP_AUTH_TAG_LEN,
                got: packet.len(),
            }
            .into());
        };
        let (body, tag) = packet.split_at(body_len);
        let header = RtpHeader::parse(body)?;
        let index = match &self.state {
            None => u64::from(header.sequence),
            Some((ssrc, window)) => {
                if *ssrc != header.ssrc {
                    return Err(UnprotectError::UnknownSsrc(header.ssrc));
                }
                let index = estimate_index(window.highest(), header.sequence)
                    .ok_or(UnprotectError::IndexOutOfRange)?;
                match window.check(index) {
                    ReplayCheck::Fresh => {}
                    ReplayCheck::Replayed => return Err(UnprotectError::Replayed { index }),
                    ReplayCheck::TooOld => return Err(UnprotectError::TooOld { index }),
                }
                index
            }
        };
        let expected = self.crypto.tag(body, roc_of(index));
        if !bool::from(expected.ct_eq(tag)) {
            return Err(UnprotectError::Authentication);
        }
        // Authentic and fresh: commit.
        match &mut self.state {
            None => self.state = Some((header.ssrc, ReplayWindow::starting_at(index))),
            Some((_, window)) => window.record(index),
        }
        let mut plain = body.to_vec();
        self.crypto
            .apply_keystream(header.ssrc, index, &mut plain[header.len..]);
        Ok(UnprotectedPacket {
            index,
            packet: plain,
        })
    }

    /// The SSRC this receiver follows, once a packet has authenticated.
    pub fn ssrc(&self) -> Option<u32> {
        self.state.map(|(ssrc, _)| ssrc)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn master() -> SrtpMasterKeys {
        SrtpMasterKeys::new(
            hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap(),
            hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap(),
        )
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let keys = SrtpSessionKeys::derive_srtp(&master());
        assert_eq!(
            keys.encryption_key()[..],
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(keys.salt()[..], hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            keys.authentication_key()[..],
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream for SSRC 0, index 0.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let crypto = SessionCrypto {
            cipher: Aes128::new(
                &hex("2B7E151628AED2A6ABF7158809CF4F3C")[..]
                    .try_into()
                    .unwrap(),
            ),
            mac: <Hmac<Sha1> as hmac::KeyInit>::new_from_slice(&[0; 20]).unwrap(),
            salt: Zeroizing::new(hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap()),
        };
        let mut keystream = [0u8; 48];
        crypto.apply_keystream(0, 0, &mut keystream);
        assert_eq!(
            keystream[..],
            hex(concat!(
                "E03EAD0935C95E80E166B16DD92B4EB4",
                "D23513162B02D0F72A43A2FE4A5F97AB",
                "41E95B3BB0A2E8DD477901E4FCA894C0"
            ))
        );
    }

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        RtpHeader::write_simple(false, 96, seq, u32::from(seq) * 160, 0x1234_5678, payload)
    }

    #[test]
    fn round_trip_across_rollover() {
        let mut sender = SrtpSender::new(&master());
        let mut receiver = SrtpReceiver::new(&master());
        for (n, seq) in (65530u16..=65535).chain(0..6).enumerate() {
            let plain = rtp(seq, format!("frame {n}").as_bytes());
            let protected = sender.protect(&plain).unwrap();
            assert_ne!(protected[12..plain.len()], plain[12..]);
            let got = receiver.unprotect(&protected).unwrap();
            assert_eq!(got.packet, plain);
            assert_eq!(got.index, 65530 + n as u64);
        }
        assert_eq!(sender.last_index(), Some(0x1_0005));
    }

    #[test]
    fn late_packet_from_before_the_rollover_is_accepted_once() {
        let mut sender = SrtpSender::new(&master());
        let mut receiver = SrtpReceiver::new(&master());
        let packets: Vec<_> = (65533u16..=65535)
            .chain(0..3)
            .map(|seq| sender.protect(&rtp(seq, b"x")).unwrap())
            .collect();
        // 65533, then 0 (ROC 1) and 1 before 65534 and 65535 (ROC 0) arrive late.
        for &i in &[0usize, 3, 4, 1, 2, 5] {
            receiver.unprotect(&packets[i]).unwrap();
        }
        assert_eq!(
            receiver.unprotect(&packets[1]),
            Err(UnprotectError::Replayed { index: 65534 })
        );
    }

    #[test]
    fn tampered_packets_are_refused_without_changing_state() {
        let mut sender = SrtpSender::new(&master());
        let mut receiver = SrtpReceiver::new(&master());
        let good = sender.protect(&rtp(7, b"some audio")).unwrap();
        for position in [0usize, 3, 12, good.len() - 1] {
            let mut bad = good.clone();
            bad[position] ^= 0x01;
            assert!(receiver.unprotect(&bad).is_err(), "byte {position}");
        }
        assert_eq!(receiver.ssrc(), None, "nothing committed");
        receiver.unprotect(&good).unwrap();
        assert_eq!(
            receiver.unprotect(&good),
            Err(UnprotectError::Replayed { index: 7 })
        );
        let next = sender.protect(&rtp(8, b"more audio")).unwrap();
        let mut bad = next.clone();
        bad[14] ^= 0x80;
        assert_eq!(
            receiver.unprotect(&bad),
            Err(UnprotectError::Authentication)
        );
        receiver.unprotect(&next).unwrap();
    }

    #[test]
    fn wrong_key_fails_authentication() {
        let mut sender = SrtpSender::new(&master());
        let other = SrtpMasterKeys::new([7; 16], [9; 14]);
        let mut receiver = SrtpReceiver::new(&other);
        let packet = sender.protect(&rtp(1, b"hello")).unwrap();
        assert_eq!(
            receiver.unprotect(&packet),
            Err(UnprotectError::Authentication)
        );
    }

    #[test]
    fn old_packets_and_other_streams_are_refused() {
        let mut sender = SrtpSender::new(&master());
        let mut receiver = SrtpReceiver::new(&master());
        let packets: Vec<_> = (0..=64u16)
            .map(|seq| sender.protect(&rtp(seq, b"p")).unwrap())
            .collect();
        receiver.unprotect(&packets[64]).unwrap();
        // 63 behind the highest is the last index of the 64-packet window; 64 behind is out.
        receiver.unprotect(&packets[1]).unwrap();
        assert_eq!(
            receiver.unprotect(&packets[0]),
            Err(UnprotectError::TooOld { index: 0 })
        );
        let mut stranger = SrtpSender::new(&master());
        let foreign = RtpHeader::write_simple(false, 96, 65, 0, 0x0bad_cafe, b"p").to_vec();
        let foreign = stranger.protect(&foreign).unwrap();
        assert_eq!(
            receiver.unprotect(&foreign),
            Err(UnprotectError::UnknownSsrc(0x0bad_cafe))
        );
    }

    #[test]
    fn sender_refuses_index_reuse_and_other_ssrcs() {
        let mut sender = SrtpSender::new(&master());
        sender.protect(&rtp(10, b"a")).unwrap();
        assert_eq!(
            sender.protect(&rtp(10, b"b")),
            Err(ProtectError::IndexNotIncreasing {
                index: 10,
                highest: 10
            })
        );
        assert_eq!(
            sender.protect(&rtp(9, b"b")),
            Err(ProtectError::IndexNotIncreasing {
                index: 9,
                highest: 10
            })
        );
        let other = RtpHeader::write_simple(false, 96, 11, 0, 1, b"c");
        assert_eq!(
            sender.protect(&other),
            Err(ProtectError::WrongSsrc {
                expected: 0x1234_5678,
                got: 1
            })
        );
    }

    #[test]
    fn sender_stops_at_the_end_of_the_index_space() {
        let mut sender = SrtpSender::new(&master());
        sender.protect(&rtp(0xfffe, b"a")).unwrap();
        sender.state = Some((0x1234_5678, SRTP_MAX_INDEX - 1));
        sender.protect(&rtp(0xffff, b"b")).unwrap();
        assert_eq!(sender.last_index(), Some(SRTP_MAX_INDEX));
        assert_eq!(
            sender.protect(&rtp(0, b"c")),
            Err(ProtectError::KeyExhausted)
        );
    }

    #[test]
    fn packet_length_limit_at_n_and_n_plus_1() {
        let mut sender = SrtpSender::new(&master());
        let mut receiver = SrtpReceiver::new(&master());
        let fits = MAX_SRTP_PACKET_LEN - SRTP_AUTH_TAG_LEN - 12;
        let packet = sender.protect(&rtp(1, &vec![0x55; fits])).unwrap();
        assert_eq!(packet.len(), MAX_SRTP_PACKET_LEN);
        receiver.unprotect(&packet).unwrap();
        assert_eq!(
            sender.protect(&rtp(2, &vec![0x55; fits + 1])),
            Err(ProtectError::TooLong {
                len: MAX_SRTP_PACKET_LEN + 1,
                max: MAX_SRTP_PACKET_LEN
            })
        );
        let mut long = packet.clone();
        long.push(0);
        assert_eq!(
            receiver.unprotect(&long),
            Err(UnprotectError::TooLong {
                len: MAX_SRTP_PACKET_LEN + 1,
                max: MAX_SRTP_PACKET_LEN
            })
        );
    }

    #[test]
    fn short_and_malformed_packets_are_typed_errors() {
        let mut receiver = SrtpReceiver::new(&master());
        for len in 0..(12 + SRTP_AUTH_TAG_LEN) {
            let mut packet = vec![0x80; len];
            packet.truncate(len);
            assert!(matches!(
                receiver.unprotect(&packet),
                Err(UnprotectError::Malformed(_))
            ));
        }
        let mut v1 = vec![0u8; 40];
        v1[0] = 0x40;
        assert_eq!(
            receiver.unprotect(&v1),
            Err(UnprotectError::Malformed(RtpError::Version(1)))
        );
    }
}
