//! The transport phase: two `CipherState`s after `Split()`.

use crate::error::{ReceiveError, SendError};
use crate::handshake::SplitState;
use crate::limits::{MAX_FRAME_LEN, MAX_TRANSPORT_PLAINTEXT_LEN};
use crate::symmetric::{CipherError, CipherState};

/// An established Noise channel: encrypts outgoing and decrypts incoming transport messages.
///
/// Nonces are Noise's counters: each direction's message `k` uses nonce `k`, so a replayed,
/// reordered or dropped message fails to decrypt and the counter stays where it was. After
/// `2^64 - 1` messages in one direction the channel refuses to go on (no rekey).
pub struct Transport {
    send: CipherState,
    receive: CipherState,
    handshake_hash: [u8; 32],
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn from_split(split: SplitState) -> Self {
        Self {
            send: split.send,
            receive: split.receive,
            handshake_hash: split.handshake_hash,
        }
    }

    /// Encrypts one message (at most [`MAX_TRANSPORT_PLAINTEXT_LEN`] bytes); the result fits one
    /// frame.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SendError> {
        if plaintext.len() > MAX_TRANSPORT_PLAINTEXT_LEN {
            return Err(SendError::TooLong {
                len: plaintext.len(),
                max: MAX_TRANSPORT_PLAINTEXT_LEN,
            });
        }
        self.send
            .encrypt_with_ad(&[], plaintext)
            .map_err(|fault| match fault {
                CipherError::NonceExhausted => SendError::NonceExhausted,
                CipherError::Decrypt => SendError::Encrypt,
            })
    }

    /// Decrypts the next incoming message. On error nothing changes: the same ciphertext, or the
    /// right one, can still be tried, and a replay of an earlier message always fails.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, ReceiveError> {
        if ciphertext.len() > MAX_FRAME_LEN {
            return Err(ReceiveError::TooLong {
                len: ciphertext.len(),
                max: MAX_FRAME_LEN,
            });
        }
        self.receive
            .decrypt_with_ad(&[], ciphertext)
            .map_err(|fault| match fault {
                CipherError::NonceExhausted => ReceiveError::NonceExhausted,
                CipherError::Decrypt => ReceiveError::Decrypt,
            })
    }

    /// The handshake hash `h`, the same on both sides: a channel binding for the layers above.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    #[cfg(test)]
    pub(crate) fn set_nonces_for_test(&mut self, send: u64, receive: u64) {
        self.send.set_nonce_for_test(send);
        self.receive.set_nonce_for_test(receive);
    }
}
