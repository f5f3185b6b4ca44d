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
        encrypt(&mut self.send, plaintext)
    }

    /// Decrypts the next incoming message. On error nothing changes: the same ciphertext, or the
    /// right one, can still be tried, and a replay of an earlier message always fails.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, ReceiveError> {
        decrypt(&mut self.receive, ciphertext)
    }

    /// Decrypts the next incoming message in place, as [`TransportReceiver::decrypt_in_place`].
    pub fn decrypt_in_place(&mut self, buffer: &mut Vec<u8>) -> Result<(), ReceiveError> {
        decrypt_in_place(&mut self.receive, buffer)
    }

    /// Splits the channel into its two independent directions, so one task can send while
    /// another receives. Each half keeps its own nonce counter, exactly as before the split.
    #[must_use]
    pub fn split(self) -> (TransportSender, TransportReceiver) {
        (
            TransportSender {
                send: self.send,
                handshake_hash: self.handshake_hash,
            },
            TransportReceiver {
                receive: self.receive,
                handshake_hash: self.handshake_hash,
            },
        )
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

/// The sending direction of a [`Transport`] after [`Transport::split`].
pub struct TransportSender {
    send: CipherState,
    handshake_hash: [u8; 32],
}

impl core::fmt::Debug for TransportSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TransportSender").finish_non_exhaustive()
    }
}

impl TransportSender {
    /// Encrypts one message, as [`Transport::encrypt`].
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SendError> {
        encrypt(&mut self.send, plaintext)
    }

    /// Encrypts the message `buffer[start..]` in place and appends its tag, so a message
    /// encoded straight into an output buffer is sent without a copy. On error `buffer` is
    /// unchanged and the nonce is not used.
    ///
    /// # Panics
    ///
    /// If `start > buffer.len()`.
    pub fn encrypt_in_place(
        &mut self,
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), SendError> {
        let len = buffer.len() - start;
        if len > MAX_TRANSPORT_PLAINTEXT_LEN {
            return Err(SendError::TooLong {
                len,
                max: MAX_TRANSPORT_PLAINTEXT_LEN,
            });
        }
        self.send
            .encrypt_in_place(&[], buffer, start)
            .map_err(send_error)
    }

    /// The handshake hash `h` of the channel.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }
}

/// The receiving direction of a [`Transport`] after [`Transport::split`].
pub struct TransportReceiver {
    receive: CipherState,
    handshake_hash: [u8; 32],
}

impl core::fmt::Debug for TransportReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TransportReceiver").finish_non_exhaustive()
    }
}

impl TransportReceiver {
    /// Decrypts the next incoming message, as [`Transport::decrypt`].
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, ReceiveError> {
        decrypt(&mut self.receive, ciphertext)
    }

    /// Decrypts the next incoming message in place: `buffer` holds the ciphertext and ends up
    /// holding the plaintext (no second allocation). On error `buffer` and the nonce are
    /// unchanged, as [`Transport::decrypt`].
    pub fn decrypt_in_place(&mut self, buffer: &mut Vec<u8>) -> Result<(), ReceiveError> {
        decrypt_in_place(&mut self.receive, buffer)
    }

    /// The handshake hash `h` of the channel.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }
}

fn encrypt(send: &mut CipherState, plaintext: &[u8]) -> Result<Vec<u8>, SendError> {
    if plaintext.len() > MAX_TRANSPORT_PLAINTEXT_LEN {
        return Err(SendError::TooLong {
            len: plaintext.len(),
            max: MAX_TRANSPORT_PLAINTEXT_LEN,
        });
    }
    send.encrypt_with_ad(&[], plaintext).map_err(send_error)
}

fn send_error(fault: CipherError) -> SendError {
    match fault {
        CipherError::NonceExhausted => SendError::NonceExhausted,
        CipherError::Decrypt => SendError::Encrypt,
    }
}

fn receive_error(fault: CipherError) -> ReceiveError {
    match fault {
        CipherError::NonceExhausted => ReceiveError::NonceExhausted,
        CipherError::Decrypt => ReceiveError::Decrypt,
    }
}

fn check_ciphertext_len(len: usize) -> Result<(), ReceiveError> {
    if len > MAX_FRAME_LEN {
        return Err(ReceiveError::TooLong {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

fn decrypt(receive: &mut CipherState, ciphertext: &[u8]) -> Result<Vec<u8>, ReceiveError> {
    check_ciphertext_len(ciphertext.len())?;
    receive
        .decrypt_with_ad(&[], ciphertext)
        .map_err(receive_error)
}

fn decrypt_in_place(receive: &mut CipherState, buffer: &mut Vec<u8>) -> Result<(), ReceiveError> {
    check_ciphertext_len(buffer.len())?;
    receive.decrypt_in_place(&[], buffer).map_err(receive_error)
}
