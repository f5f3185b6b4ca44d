//! Calls: the message carrying the 32-byte SRTP master secret, and the keys both sides derive
//! from it (ARCHITECTURE.md, flow 6).
//!
//! The caller draws a fresh [`CallMasterSecret`] per call and sends it, with the call id, in a
//! [`CallKeyMessage`] inside a normal end-to-end encrypted message. Each direction of media gets
//! its own SRTP master key and salt for `AES_CM_128_HMAC_SHA1_80` (RFC 3711, RFC 4568):
//!
//! ```text
//! okm         = HKDF-SHA256(salt = none (32 zero bytes), ikm = master secret,
//!                           info = label(direction) ‖ call_id (u64 big-endian), L = 30)
//! master key  = okm[0..16]      (128 bits)
//! master salt = okm[16..30]     (112 bits)
//!
//! label(caller → callee) = "Confianza_SRTP_AES_CM_128_HMAC_SHA1_80_v1_caller_to_callee"
//! label(callee → caller) = "Confianza_SRTP_AES_CM_128_HMAC_SHA1_80_v1_callee_to_caller"
//! ```
//!
//! Two directions never share a keystream (SRTP keystreams depend only on key, salt, SSRC and
//! index, so one key for both directions would repeat keystream if the SSRCs collide), and the
//! call id in `info` keeps a (mistakenly) reused secret from giving another call the same keys.
//!
//! From a master key and salt, [`SrtpSessionKeys::derive_srtp`] performs RFC 3711 §4.3 key
//! derivation (AES-CM PRF, key_derivation_rate 0) giving the session encryption key, the
//! authentication key and the session salt the SRTP packetizer uses.
//!
//! ```
//! use confianza_protocol::call::{CallKeyMessage, CallMasterSecret, CallRole, CallSrtpKeys};
//! let mut rng = rand::rng();
//!
//! let offer = CallKeyMessage::new(42, CallMasterSecret::generate(&mut rng));
//! let bytes = offer.encode(); // sent end-to-end encrypted
//! let received = CallKeyMessage::decode(&bytes[..]).unwrap();
//!
//! let caller = CallSrtpKeys::derive(&offer, CallRole::Caller);
//! let callee = CallSrtpKeys::derive(&received, CallRole::Callee);
//! assert!(caller.send.ct_eq(&callee.receive) && caller.receive.ct_eq(&callee.send));
//! ```

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Layout version of [`CallKeyMessage`].
pub const CALL_KEY_MESSAGE_VERSION: u8 = 1;
/// Length of the master secret.
pub const CALL_MASTER_SECRET_LEN: usize = 32;
/// Length of an encoded [`CallKeyMessage`]: version (1) ‖ call id (8, big-endian) ‖ secret (32).
pub const CALL_KEY_MESSAGE_LEN: usize = 1 + 8 + CALL_MASTER_SECRET_LEN;
/// SRTP master key length for AES_CM_128_HMAC_SHA1_80.
pub const SRTP_MASTER_KEY_LEN: usize = 16;
/// SRTP master salt length (112 bits).
pub const SRTP_MASTER_SALT_LEN: usize = 14;
/// Session authentication key length for HMAC-SHA1 (160 bits).
pub const SRTP_AUTH_KEY_LEN: usize = 20;

/// `info` label for media the caller sends.
pub const CALLER_TO_CALLEE_LABEL: &[u8] =
    b"Confianza_SRTP_AES_CM_128_HMAC_SHA1_80_v1_caller_to_callee";
/// `info` label for media the callee sends.
pub const CALLEE_TO_CALLER_LABEL: &[u8] =
    b"Confianza_SRTP_AES_CM_128_HMAC_SHA1_80_v1_callee_to_caller";

/// The 32-byte secret the caller sends. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CallMasterSecret([u8; CALL_MASTER_SECRET_LEN]);

impl CallMasterSecret {
    /// A fresh random secret (one per call).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut secret = [0u8; CALL_MASTER_SECRET_LEN];
        rng.fill_bytes(&mut secret);
        Self(secret)
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; CALL_MASTER_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; CALL_MASTER_SECRET_LEN] {
        &self.0
    }
}

/// The call-key message: which call, and its master secret.
#[derive(Clone)]
pub struct CallKeyMessage {
    call_id: u64,
    secret: CallMasterSecret,
}

impl CallKeyMessage {
    /// A message for `call_id`.
    pub fn new(call_id: u64, secret: CallMasterSecret) -> Self {
        Self { call_id, secret }
    }

    /// The call this secret belongs to.
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// The master secret.
    pub fn secret(&self) -> &CallMasterSecret {
        &self.secret
    }

    /// `version (0x01) ‖ call_id (u64 big-endian) ‖ secret (32)`, 41 bytes.
    pub fn encode(&self) -> Zeroizing<[u8; CALL_KEY_MESSAGE_LEN]> {
        let mut out = Zeroizing::new([0u8; CALL_KEY_MESSAGE_LEN]);
        out[0] = CALL_KEY_MESSAGE_VERSION;
        out[1..9].copy_from_slice(&self.call_id.to_be_bytes());
        out[9..].copy_from_slice(&self.secret.0);
        out
    }

    /// Parses the 41-byte layout; the version must be 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, CallKeyDecodeError> {
        let bytes: &[u8; CALL_KEY_MESSAGE_LEN] =
            bytes.try_into().map_err(|_| CallKeyDecodeError::Length {
                expected: CALL_KEY_MESSAGE_LEN,
                got: bytes.len(),
            })?;
        let (version, rest) = bytes.split_at(1);
        let (call_id, secret) = rest.split_at(8);
        if version != [CALL_KEY_MESSAGE_VERSION] {
            return Err(CallKeyDecodeError::UnknownVersion(bytes[0]));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(call_id);
        let mut s = [0u8; CALL_MASTER_SECRET_LEN];
        s.copy_from_slice(secret);
        Ok(Self {
            call_id: u64::from_be_bytes(id),
            secret: CallMasterSecret(s),
        })
    }
}

/// Why a call-key message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallKeyDecodeError {
    /// Not exactly [`CALL_KEY_MESSAGE_LEN`] bytes.
    #[error("call key message must be {expected} bytes, got {got}")]
    Length {
        /// Required length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// A layout version this build does not know.
    #[error("unknown call key message version {0}")]
    UnknownVersion(u8),
}

/// Which way media flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// Media sent by the caller.
    CallerToCallee,
    /// Media sent by the callee.
    CalleeToCaller,
}

impl CallDirection {
    fn label(self) -> &'static [u8] {
        match self {
            Self::CallerToCallee => CALLER_TO_CALLEE_LABEL,
            Self::CalleeToCaller => CALLEE_TO_CALLER_LABEL,
        }
    }
}

/// Our side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRole {
    /// We sent the call-key message.
    Caller,
    /// We received it.
    Callee,
}

/// SRTP master key and master salt for one direction. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SrtpMasterKeys {
    key: [u8; SRTP_MASTER_KEY_LEN],
    salt: [u8; SRTP_MASTER_SALT_LEN],
}

impl SrtpMasterKeys {
    /// From a master key and salt (e.g. RFC 4568 `inline:` material).
    pub fn new(key: [u8; SRTP_MASTER_KEY_LEN], salt: [u8; SRTP_MASTER_SALT_LEN]) -> Self {
        Self { key, salt }
    }

    /// Derives one direction's master key and salt from the call's secret (see the module docs).
    pub fn derive(secret: &CallMasterSecret, call_id: u64, direction: CallDirection) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, &secret.0);
        let mut okm = Zeroizing::new([0u8; SRTP_MASTER_KEY_LEN + SRTP_MASTER_SALT_LEN]);
        // 30 bytes is far below HKDF-SHA256's 8160-byte maximum, so expansion cannot fail.
        hkdf.expand_multi_info(&[direction.label(), &call_id.to_be_bytes()], &mut okm[..])
            .unwrap_or_else(|_| unreachable!());
        let mut keys = Self {
            key: [0; SRTP_MASTER_KEY_LEN],
            salt: [0; SRTP_MASTER_SALT_LEN],
        };
        keys.key.copy_from_slice(&okm[..SRTP_MASTER_KEY_LEN]);
        keys.salt.copy_from_slice(&okm[SRTP_MASTER_KEY_LEN..]);
        keys
    }

    /// The 128-bit master key.
    pub fn key(&self) -> &[u8; SRTP_MASTER_KEY_LEN] {
        &self.key
    }

    /// The 112-bit master salt.
    pub fn salt(&self) -> &[u8; SRTP_MASTER_SALT_LEN] {
        &self.salt
    }

    /// Constant-time equality of key and salt.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.key.ct_eq(&other.key) & self.salt.ct_eq(&other.salt))
    }
}

/// Both directions' master keys, from one side's point of view.
#[derive(Clone)]
pub struct CallSrtpKeys {
    /// Protects the media we send.
    pub send: SrtpMasterKeys,
    /// Protects the media we receive.
    pub receive: SrtpMasterKeys,
}

impl CallSrtpKeys {
    /// Derives both directions for `role`.
    pub fn derive(message: &CallKeyMessage, role: CallRole) -> Self {
        let outgoing = SrtpMasterKeys::derive(
            &message.secret,
            message.call_id,
            CallDirection::CallerToCallee,
        );
        let incoming = SrtpMasterKeys::derive(
            &message.secret,
            message.call_id,
            CallDirection::CalleeToCaller,
        );
        match role {
            CallRole::Caller => Self {
                send: outgoing,
                receive: incoming,
            },
            CallRole::Callee => Self {
                send: incoming,
                receive: outgoing,
            },
        }
    }
}

/// RFC 3711 §4.3 session keys for AES_CM_128_HMAC_SHA1_80. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SrtpSessionKeys {
    encryption: [u8; SRTP_MASTER_KEY_LEN],
    authentication: [u8; SRTP_AUTH_KEY_LEN],
    salt: [u8; SRTP_MASTER_SALT_LEN],
}

/// RFC 3711 §4.3.1 labels.
const LABEL_SRTP_ENCRYPTION: u8 = 0x00;
const LABEL_SRTP_AUTHENTICATION: u8 = 0x01;
const LABEL_SRTP_SALT: u8 = 0x02;
const LABEL_SRTCP_ENCRYPTION: u8 = 0x03;
const LABEL_SRTCP_AUTHENTICATION: u8 = 0x04;
const LABEL_SRTCP_SALT: u8 = 0x05;

impl SrtpSessionKeys {
    /// SRTP session keys (labels 0x00, 0x01, 0x02) with key_derivation_rate 0, so derived once
    /// per master key (`r = 0`).
    pub fn derive_srtp(master: &SrtpMasterKeys) -> Self {
        Self::derive(
            master,
            [
                LABEL_SRTP_ENCRYPTION,
                LABEL_SRTP_AUTHENTICATION,
                LABEL_SRTP_SALT,
            ],
        )
    }

    /// SRTCP session keys (labels 0x03, 0x04, 0x05), same derivation.
    pub fn derive_srtcp(master: &SrtpMasterKeys) -> Self {
        Self::derive(
            master,
            [
                LABEL_SRTCP_ENCRYPTION,
                LABEL_SRTCP_AUTHENTICATION,
                LABEL_SRTCP_SALT,
            ],
        )
    }

    fn derive(master: &SrtpMasterKeys, [enc, auth, salt]: [u8; 3]) -> Self {
        let prf = Aes128::new(&master.key.into());
        let mut keys = Self {
            encryption: [0; SRTP_MASTER_KEY_LEN],
            authentication: [0; SRTP_AUTH_KEY_LEN],
            salt: [0; SRTP_MASTER_SALT_LEN],
        };
        aes_cm_prf(&prf, &master.salt, enc, &mut keys.encryption);
        aes_cm_prf(&prf, &master.salt, auth, &mut keys.authentication);
        aes_cm_prf(&prf, &master.salt, salt, &mut keys.salt);
        keys
    }

    /// k_e: the 128-bit session encryption key.
    pub fn encryption_key(&self) -> &[u8; SRTP_MASTER_KEY_LEN] {
        &self.encryption
    }

    /// k_a: the 160-bit session authentication key (HMAC-SHA1).
    pub fn authentication_key(&self) -> &[u8; SRTP_AUTH_KEY_LEN] {
        &self.authentication
    }

    /// k_s: the 112-bit session salt.
    pub fn salt(&self) -> &[u8; SRTP_MASTER_SALT_LEN] {
        &self.salt
    }
}

/// RFC 3711 §4.3.1–4.3.3 with `r = index DIV key_derivation_rate = 0`:
/// `key_id = label ‖ r` (7 bytes), `x = key_id XOR master_salt` (right-aligned in 112 bits),
/// output = AES-CM keystream under the master key with IV `x · 2^16`, truncated to `out.len()`.
fn aes_cm_prf(prf: &Aes128, master_salt: &[u8; SRTP_MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..SRTP_MASTER_SALT_LEN].copy_from_slice(master_salt);
    // key_id occupies the low 56 bits of the 112-bit x: its label byte is byte 7 of 14.
    iv[7] ^= label;
    for (counter, chunk) in (0u16..).zip(out.chunks_mut(16)) {
        let mut block = iv;
        block[14..].copy_from_slice(&counter.to_be_bytes());
        let mut block = block.into();
        prf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
        block.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_iv_layout() {
        // With a zero salt and label 0x05 the IV is 00..00 05 00..00 with the label at byte 7.
        let prf = Aes128::new(&[0u8; 16].into());
        let mut out = [0u8; 16];
        aes_cm_prf(&prf, &[0; 14], 5, &mut out);
        let mut expected: aes::Block = [0u8; 16].into();
        expected[7] = 5;
        prf.encrypt_block(&mut expected);
        assert_eq!(out[..], expected[..]);
    }
}
