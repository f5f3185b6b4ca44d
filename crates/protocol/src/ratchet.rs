//! The key derivations of the Double Ratchet, as in Signal's library.
//!
//! ```text
//! root step:   (RK', CK) = HKDF(salt = RK, ikm = DH(ours, theirs), info = "WhisperRatchet", 64)
//! chain step:  seed = HMAC(CK, 0x01), CK' = HMAC(CK, 0x02)
//! message key: cipher ‖ mac ‖ iv = HKDF(salt = none, ikm = seed, info = "WhisperMessageKeys", 80)
//! ```

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{hkdf_sha256, hmac_sha256};
use crate::keys::{KeyError, PrivateKey, PublicKey};

/// A root key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

impl RootKey {
    /// One DH-ratchet root step.
    pub(crate) fn step(
        &self,
        ours: &PrivateKey,
        theirs: &PublicKey,
    ) -> Result<(RootKey, ChainKey), KeyError> {
        let shared = ours.agree(theirs)?;
        let okm: [u8; 64] = hkdf_sha256(Some(&self.0), shared.as_bytes(), b"WhisperRatchet");
        let mut root = [0u8; 32];
        let mut chain = [0u8; 32];
        root.copy_from_slice(&okm[..32]);
        chain.copy_from_slice(&okm[32..]);
        Ok((
            RootKey(root),
            ChainKey {
                key: chain,
                index: 0,
            },
        ))
    }
}

/// A sending or receiving chain key with its index. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

impl ChainKey {
    /// The message-key seed at this index.
    pub(crate) fn seed(&self) -> MessageKeySeed {
        MessageKeySeed {
            seed: hmac_sha256(&self.key, &[&[0x01]]),
            counter: self.index,
        }
    }

    /// The chain key at the next index.
    pub(crate) fn next(&self) -> ChainKey {
        ChainKey {
            key: hmac_sha256(&self.key, &[&[0x02]]),
            index: self.index.wrapping_add(1),
        }
    }
}

/// The 32-byte seed of one message's keys, with the counter it belongs to. Skipped messages keep
/// only this (as Signal's library does) and derive the keys when the message arrives.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKeySeed {
    pub(crate) seed: [u8; 32],
    pub(crate) counter: u32,
}

impl MessageKeySeed {
    pub(crate) fn derive(&self) -> MessageKeys {
        let okm: [u8; 80] = hkdf_sha256(None, &self.seed, b"WhisperMessageKeys");
        let mut keys = MessageKeys {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
        };
        keys.cipher_key.copy_from_slice(&okm[..32]);
        keys.mac_key.copy_from_slice(&okm[32..64]);
        keys.iv.copy_from_slice(&okm[64..]);
        keys
    }
}

/// The keys of one message. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKeys {
    pub(crate) cipher_key: [u8; 32],
    pub(crate) mac_key: [u8; 32],
    pub(crate) iv: [u8; 16],
}
