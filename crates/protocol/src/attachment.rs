//! Attachments: Signal's attachment cipher as a constant-memory stream.
//!
//! ```text
//! keys   = aes_key (32) ‖ mac_key (32)            fresh random per attachment
//! blob   = IV (16) ‖ AES-256-CBC-PKCS#7(aes_key, IV, plaintext) ‖ HMAC-SHA256(mac_key, IV ‖ ciphertext)
//! digest = SHA-256(blob)
//! ```
//!
//! The sender streams the file through an [`AttachmentEncryptor`], uploads the blob and sends keys,
//! blob length and digest inside an end-to-end encrypted message (ARCHITECTURE.md, flow 5).
//!
//! The receiver reads the downloaded blob **twice**, so nothing derived from unauthenticated
//! bytes ever reaches it:
//!
//! 1. [`AttachmentVerifier`] checks the length, the MAC and the digest and yields a
//!    [`VerifiedAttachment`] — the only way to obtain an [`AttachmentDecryptor`].
//! 2. The decryptor releases plaintext and recomputes the MAC on the way; [`finish`] fails if the
//!    bytes differ from those verified (another file, or the file changed in between). Write the
//!    plaintext to a staging file and move it into place only when `finish` returns `Ok`.
//!
//! Memory is constant whatever the size: at most one partial block is buffered. The crate does no
//! IO; the caller feeds chunks and writes what comes out.
//!
//! [`finish`]: AttachmentDecryptor::finish
//!
//! ```
//! use confianza_protocol::attachment::{AttachmentEncryptor, AttachmentKeys, AttachmentVerifier};
//! let mut rng = rand::rng();
//!
//! let keys = AttachmentKeys::generate(&mut rng);
//! let mut encryptor = AttachmentEncryptor::new(&keys, &mut rng);
//! let mut blob = Vec::new();
//! for chunk in [&b"hello "[..], b"world"] {
//!     encryptor.update(chunk, &mut blob).unwrap();
//! }
//! let sent = encryptor.finish(&mut blob);
//!
//! // Receiver, pass 1: authenticate.
//! let mut verifier = AttachmentVerifier::new(keys, sent.blob_len, sent.digest).unwrap();
//! for chunk in blob.chunks(7) {
//!     verifier.update(chunk).unwrap();
//! }
//! let verified = verifier.finish().unwrap();
//! // Pass 2: decrypt.
//! let mut decryptor = verified.into_decryptor();
//! let mut plaintext = Vec::new();
//! for chunk in blob.chunks(7) {
//!     decryptor.update(chunk, &mut plaintext).unwrap();
//! }
//! decryptor.finish().unwrap();
//! assert_eq!(plaintext, b"hello world");
//! ```

use aes::cipher::consts::U16;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockModeDecrypt,
    BlockSizeUser, KeyInit, KeyIvInit,
};
use aes::{Aes256, Aes256Enc};
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Largest plaintext accepted: 512 MiB. Signal's clients stop at 100 MiB; an organisation's
/// messaging also carries disk images, recordings and archives, so the protocol allows more and
/// the server's blob store applies its own (configurable, smaller by default) limit. The blob
/// store, the receiver's disk and the time spent decrypting are what a sender spends on us; a
/// known bound lets a receiver refuse an oversized pointer before downloading anything.
pub const MAX_ATTACHMENT_PLAINTEXT_LEN: u64 = 512 * 1024 * 1024;

/// Largest blob accepted: the blob of a [`MAX_ATTACHMENT_PLAINTEXT_LEN`]-byte plaintext.
pub const MAX_ATTACHMENT_BLOB_LEN: u64 = blob_len(MAX_ATTACHMENT_PLAINTEXT_LEN);

/// AES-256 key and HMAC-SHA256 key, concatenated.
pub const ATTACHMENT_KEYS_LEN: usize = 64;
/// CBC initialisation vector at the front of the blob.
pub const IV_LEN: usize = 16;
/// HMAC-SHA256 tag at the end of the blob.
pub const MAC_LEN: usize = 32;
/// SHA-256 digest of the blob.
pub const DIGEST_LEN: usize = 32;
/// Smallest possible blob: IV, one block (an empty plaintext pads to a full block) and the MAC.
pub const MIN_BLOB_LEN: u64 = (IV_LEN + BLOCK + MAC_LEN) as u64;

const BLOCK: usize = 16;

/// Bytes copied into the output and processed at a time: small enough to stay in the L1 cache
/// between the copy, the cipher and the hashes, large enough that the AES backend's set-up (a
/// CPU feature check and, with VAES, a broadcast of the round keys) is paid once per 8 KiB.
const PIECE: usize = 8 * 1024;

/// SHA-256 block: the step in which both hash streams are fed.
const HASH_BLOCK: usize = 64;

/// Step of the interleaving of cipher and hashes: one SHA-256 block.
const UNIT: usize = HASH_BLOCK;

/// Length of the blob for a plaintext of `plaintext_len` bytes (PKCS#7 always adds 1..=16 bytes).
pub const fn blob_len(plaintext_len: u64) -> u64 {
    IV_LEN as u64 + (plaintext_len / BLOCK as u64 + 1) * BLOCK as u64 + MAC_LEN as u64
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8; 32]) -> HmacSha256 {
    // An HMAC key shorter than the hash block is zero-padded to it (RFC 2104), so passing the
    // padded block is the same key and needs no fallible length check.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

/// The two per-attachment keys. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentKeys {
    aes: [u8; 32],
    mac: [u8; 32],
}

impl AttachmentKeys {
    /// Fresh random keys.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut keys = Self {
            aes: [0; 32],
            mac: [0; 32],
        };
        rng.fill_bytes(&mut keys.aes);
        rng.fill_bytes(&mut keys.mac);
        keys
    }

    /// From the 64 bytes carried in the attachment pointer (AES key first).
    pub fn from_bytes(bytes: &[u8; ATTACHMENT_KEYS_LEN]) -> Self {
        let mut keys = Self {
            aes: [0; 32],
            mac: [0; 32],
        };
        keys.aes.copy_from_slice(&bytes[..32]);
        keys.mac.copy_from_slice(&bytes[32..]);
        keys
    }

    /// From a slice that must be exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeysLengthError> {
        let array: &[u8; ATTACHMENT_KEYS_LEN] =
            bytes.try_into().map_err(|_| KeysLengthError(bytes.len()))?;
        Ok(Self::from_bytes(array))
    }

    /// The 64 bytes to put in the attachment pointer.
    pub fn to_bytes(&self) -> Zeroizing<[u8; ATTACHMENT_KEYS_LEN]> {
        let mut out = Zeroizing::new([0u8; ATTACHMENT_KEYS_LEN]);
        out[..32].copy_from_slice(&self.aes);
        out[32..].copy_from_slice(&self.mac);
        out
    }
}

/// Attachment keys of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attachment keys must be {ATTACHMENT_KEYS_LEN} bytes, got {0}")]
pub struct KeysLengthError(pub usize);

/// What the sender puts in the attachment pointer besides the keys and the blob id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedAttachment {
    /// SHA-256 of the whole blob.
    pub digest: [u8; DIGEST_LEN],
    /// Length of the blob (IV, ciphertext and MAC).
    pub blob_len: u64,
    /// Length of the plaintext.
    pub plaintext_len: u64,
}

/// Streaming encryptor: feed plaintext chunks, collect blob bytes.
pub struct AttachmentEncryptor {
    aes: Aes256Enc,
    /// The CBC chaining value: the IV, then the last ciphertext block.
    chain: [u8; BLOCK],
    mac: HmacSha256,
    digest: Sha256,
    iv_to_write: Option<[u8; IV_LEN]>,
    partial: [u8; BLOCK],
    partial_len: usize,
    plaintext_len: u64,
    ciphertext_len: u64,
}

impl AttachmentEncryptor {
    /// An encryptor with a fresh random IV.
    pub fn new(keys: &AttachmentKeys, rng: &mut impl CryptoRng) -> Self {
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        Self::with_iv(keys, iv)
    }

    /// An encryptor with a given IV, for known-answer tests. An IV must never repeat under a key.
    pub fn with_iv(keys: &AttachmentKeys, iv: [u8; IV_LEN]) -> Self {
        let mut mac = hmac_sha256(&keys.mac);
        mac.update(&iv);
        let mut digest = Sha256::new();
        digest.update(iv);
        Self {
            aes: Aes256Enc::new(&keys.aes.into()),
            chain: iv,
            mac,
            digest,
            iv_to_write: Some(iv),
            partial: [0; BLOCK],
            partial_len: 0,
            plaintext_len: 0,
            ciphertext_len: 0,
        }
    }

    /// Encrypts `plaintext` and appends the blob bytes now available to `out` (the IV first,
    /// on the first call). All but the last partial block is written out immediately.
    ///
    /// On error nothing is consumed and the encryptor is unchanged.
    pub fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), EncryptError> {
        let total = self.plaintext_len.saturating_add(plaintext.len() as u64);
        if total > MAX_ATTACHMENT_PLAINTEXT_LEN {
            return Err(EncryptError::TooLarge {
                limit: MAX_ATTACHMENT_PLAINTEXT_LEN,
            });
        }
        self.plaintext_len = total;
        if let Some(iv) = self.iv_to_write.take() {
            out.extend_from_slice(&iv);
        }
        let mut input = plaintext;
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(input.len());
            let (head, rest) = input.split_at(take);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(head);
            self.partial_len += take;
            input = rest;
            if self.partial_len < BLOCK {
                return Ok(());
            }
            let block = self.partial;
            self.encrypt_blocks(&block, out);
            self.partial_len = 0;
        }
        let full = input.len() - input.len() % BLOCK;
        let (blocks, tail) = input.split_at(full);
        for piece in blocks.chunks(PIECE) {
            self.encrypt_blocks(piece, out);
        }
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
        Ok(())
    }

    /// Pads, encrypts the last block, appends it and the MAC to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> EncryptedAttachment {
        if let Some(iv) = self.iv_to_write.take() {
            out.extend_from_slice(&iv);
        }
        let pad = BLOCK - self.partial_len;
        let mut block = self.partial;
        // `pad` is 1..=16, so the cast is lossless.
        block[self.partial_len..].fill(pad as u8);
        self.encrypt_blocks(&block, out);
        let mac: [u8; MAC_LEN] = self.mac.finalize().into_bytes().into();
        out.extend_from_slice(&mac);
        self.digest.update(mac);
        EncryptedAttachment {
            digest: self.digest.finalize().into(),
            blob_len: blob_len(self.plaintext_len),
            plaintext_len: self.plaintext_len,
        }
    }

    /// Encrypts whole blocks onto the end of `out` and hashes the ciphertext into the MAC and
    /// the digest, in one call into the AES backend (see [`CbcAndHash`]).
    fn encrypt_blocks(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        // Both hash streams are at blob offset IV_LEN + ciphertext_len (the MAC's inner hash
        // starts with one whole block of padded key), so they share their block boundaries.
        let stream_offset = (IV_LEN as u64 + self.ciphertext_len) % HASH_BLOCK as u64;
        // Less than HASH_BLOCK, so the casts are lossless.
        let to_boundary = (HASH_BLOCK - stream_offset as usize) % HASH_BLOCK;
        self.aes.encrypt_with_backend(CbcAndHash {
            chain: &mut self.chain,
            data: &mut out[start..],
            to_boundary,
            mac: &mut self.mac,
            digest: &mut self.digest,
        });
        self.ciphertext_len += plaintext.len() as u64;
    }
}

/// One run of AES-256-CBC encryption in place over whole blocks, interleaved with the two
/// SHA-256 streams (the MAC and the digest) over the ciphertext it produces.
///
/// CBC encryption is one long dependency chain (each block waits for the previous one's 14
/// rounds) and each hash stream another, so the processor can run them side by side if they are
/// close together in the instruction stream: per [`UNIT`] of 64 bytes, half of it is encrypted,
/// the previous unit goes into the MAC, the other half is encrypted, the previous unit goes into
/// the digest. This runs as a closure inside the AES backend, so the backend (chosen by CPU
/// features at run time) is set up once per run rather than once per step, and the chaining
/// value stays in a register from block to block.
struct CbcAndHash<'a> {
    chain: &'a mut [u8; BLOCK],
    /// Plaintext in, ciphertext out; a whole number of blocks.
    data: &'a mut [u8],
    /// Bytes until the hash streams reach a block boundary: hashed first, so the rest is fed in
    /// whole SHA-256 blocks that need no buffering.
    to_boundary: usize,
    mac: &'a mut HmacSha256,
    digest: &'a mut Sha256,
}

impl BlockSizeUser for CbcAndHash<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcAndHash<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let Self {
            chain,
            data,
            to_boundary,
            mac,
            digest,
        } = self;
        let (head, body) = data.split_at_mut(to_boundary.min(data.len()));
        cbc_encrypt(aes, chain, head);
        mac.update(head);
        digest.update(head);

        let len = body.len();
        let mut hashed = 0;
        let mut encrypted = 0;
        while encrypted < len {
            let end = (encrypted + UNIT).min(len);
            let middle = (encrypted + UNIT / 2).min(end);
            let (done, current) = body.split_at_mut(encrypted);
            let previous = &done[hashed..];
            let (first, second) = current[..end - encrypted].split_at_mut(middle - encrypted);
            cbc_encrypt(aes, chain, first);
            mac.update(previous);
            cbc_encrypt(aes, chain, second);
            digest.update(previous);
            hashed = encrypted;
            encrypted = end;
        }
        let last = &body[hashed..];
        mac.update(last);
        digest.update(last);
    }
}

/// AES-256-CBC encryption in place: `C_i = AES(K, P_i ⊕ C_{i-1})`, `C_{-1}` = `chain`, which
/// ends as the last ciphertext block. `data` holds whole blocks.
#[inline(always)]
fn cbc_encrypt<B: BlockCipherEncBackend<BlockSize = U16>>(
    aes: &B,
    chain: &mut [u8; BLOCK],
    data: &mut [u8],
) {
    let (blocks, rest) = data.as_chunks_mut::<BLOCK>();
    debug_assert!(rest.is_empty(), "CBC runs over whole blocks");
    let mut previous = *chain;
    for block in blocks {
        let mut state = Array::<u8, U16>::from(core::array::from_fn(|i| block[i] ^ previous[i]));
        aes.encrypt_block((&mut state).into());
        previous = state.into();
        *block = previous;
    }
    *chain = previous;
}

/// Why encryption refused input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The plaintext would exceed [`MAX_ATTACHMENT_PLAINTEXT_LEN`].
    #[error("attachment larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

/// Pass 1 of decryption: authenticates the blob without decrypting any of it.
pub struct AttachmentVerifier {
    keys: AttachmentKeys,
    mac: HmacSha256,
    digest: Sha256,
    expected_digest: [u8; DIGEST_LEN],
    blob_len: u64,
    seen: u64,
    received_mac: [u8; MAC_LEN],
    overrun: bool,
}

impl AttachmentVerifier {
    /// Prepares to check a blob of `blob_len` bytes against `digest`, both from the attachment
    /// pointer. Refuses lengths no encryptor produces, and blobs over the size limit, before any
    /// byte is downloaded.
    pub fn new(
        keys: AttachmentKeys,
        blob_len: u64,
        digest: [u8; DIGEST_LEN],
    ) -> Result<Self, VerifyError> {
        if blob_len > MAX_ATTACHMENT_BLOB_LEN {
            return Err(VerifyError::TooLarge {
                blob_len,
                limit: MAX_ATTACHMENT_BLOB_LEN,
            });
        }
        let ciphertext_len = blob_len.saturating_sub((IV_LEN + MAC_LEN) as u64);
        if blob_len < MIN_BLOB_LEN || !ciphertext_len.is_multiple_of(BLOCK as u64) {
            return Err(VerifyError::InvalidLength(blob_len));
        }
        let mac = hmac_sha256(&keys.mac);
        Ok(Self {
            keys,
            mac,
            digest: Sha256::new(),
            expected_digest: digest,
            blob_len,
            seen: 0,
            received_mac: [0; MAC_LEN],
            overrun: false,
        })
    }

    /// Hashes the next chunk of the blob.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), VerifyError> {
        let mac_start = self.blob_len - MAC_LEN as u64;
        if self.overrun || chunk.len() as u64 > self.blob_len - self.seen {
            self.overrun = true;
            return Err(VerifyError::TooLong {
                expected: self.blob_len,
            });
        }
        // Bytes before the MAC are authenticated; the MAC itself is collected. The two hash
        // streams are fed alternately, one SHA-256 block at a time, so that they overlap.
        let (authenticated, tag) = split_at_offset(chunk, self.seen, mac_start);
        for unit in authenticated.chunks(UNIT) {
            self.mac.update(unit);
            self.digest.update(unit);
        }
        self.digest.update(tag);
        if !tag.is_empty() {
            // The tag part starts at or after `mac_start` and ends within the blob.
            let at = (self.seen + authenticated.len() as u64 - mac_start) as usize;
            if let Some(slot) = self.received_mac.get_mut(at..at + tag.len()) {
                slot.copy_from_slice(tag);
            }
        }
        self.seen += chunk.len() as u64;
        Ok(())
    }

    /// Checks the length, the MAC and the digest (in constant time).
    pub fn finish(self) -> Result<VerifiedAttachment, VerifyError> {
        if self.overrun {
            return Err(VerifyError::TooLong {
                expected: self.blob_len,
            });
        }
        if self.seen != self.blob_len {
            return Err(VerifyError::Truncated {
                expected: self.blob_len,
                received: self.seen,
            });
        }
        let mac: [u8; MAC_LEN] = self.mac.finalize().into_bytes().into();
        let digest: [u8; DIGEST_LEN] = self.digest.finalize().into();
        if !bool::from(mac.ct_eq(&self.received_mac)) {
            return Err(VerifyError::BadMac);
        }
        if !bool::from(digest.ct_eq(&self.expected_digest)) {
            return Err(VerifyError::BadDigest);
        }
        Ok(VerifiedAttachment {
            keys: self.keys,
            mac,
            blob_len: self.blob_len,
        })
    }
}

/// Splits `chunk`, which starts at blob offset `offset`, at blob offset `boundary`.
fn split_at_offset(chunk: &[u8], offset: u64, boundary: u64) -> (&[u8], &[u8]) {
    let before = boundary.saturating_sub(offset).min(chunk.len() as u64);
    // `before` ≤ chunk.len(), so it fits in usize.
    chunk.split_at(before as usize)
}

/// Why a blob was refused in pass 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The announced blob is larger than [`MAX_ATTACHMENT_BLOB_LEN`].
    #[error("attachment blob of {blob_len} bytes exceeds {limit}")]
    TooLarge {
        /// Announced length.
        blob_len: u64,
        /// The limit.
        limit: u64,
    },
    /// The announced length is not IV + whole blocks (at least one) + MAC.
    #[error("{0} is not a possible attachment blob length")]
    InvalidLength(u64),
    /// More bytes arrived than announced.
    #[error("attachment blob longer than the announced {expected} bytes")]
    TooLong {
        /// Announced length.
        expected: u64,
    },
    /// Fewer bytes arrived than announced.
    #[error("attachment blob truncated: {received} of {expected} bytes")]
    Truncated {
        /// Announced length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The HMAC does not match: wrong keys or corrupted blob.
    #[error("attachment MAC mismatch")]
    BadMac,
    /// The blob is not the one the sender described.
    #[error("attachment digest mismatch")]
    BadDigest,
}

/// A blob whose length, MAC and digest checked out. Holds the keys; zeroized on drop.
pub struct VerifiedAttachment {
    keys: AttachmentKeys,
    mac: [u8; MAC_LEN],
    blob_len: u64,
}

impl VerifiedAttachment {
    /// Length of the verified blob.
    pub fn blob_len(&self) -> u64 {
        self.blob_len
    }

    /// Pass 2: a decryptor for the same bytes.
    pub fn into_decryptor(self) -> AttachmentDecryptor {
        AttachmentDecryptor {
            mac: hmac_sha256(&self.keys.mac),
            cbc: None,
            iv: [0; IV_LEN],
            verified_mac: self.mac,
            received_mac: [0; MAC_LEN],
            blob_len: self.blob_len,
            seen: 0,
            partial: [0; BLOCK],
            partial_len: 0,
            plaintext_len: 0,
            failed: None,
            keys: self.keys,
        }
    }
}

/// Pass 2 of decryption; only a [`VerifiedAttachment`] makes one.
pub struct AttachmentDecryptor {
    keys: AttachmentKeys,
    mac: HmacSha256,
    cbc: Option<cbc::Decryptor<Aes256>>,
    iv: [u8; IV_LEN],
    verified_mac: [u8; MAC_LEN],
    received_mac: [u8; MAC_LEN],
    blob_len: u64,
    seen: u64,
    partial: [u8; BLOCK],
    partial_len: usize,
    plaintext_len: u64,
    failed: Option<DecryptError>,
}

impl AttachmentDecryptor {
    /// Decrypts the next chunk of the blob and appends the plaintext now available to `out`.
    ///
    /// After an error, discard everything written so far; every later call fails too.
    pub fn update(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), DecryptError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if chunk.len() as u64 > self.blob_len - self.seen {
            return Err(self.fail(DecryptError::TooLong {
                expected: self.blob_len,
            }));
        }
        let ct_start = IV_LEN as u64;
        let mac_start = self.blob_len - MAC_LEN as u64;
        let (iv_part, rest) = split_at_offset(chunk, self.seen, ct_start);
        if !iv_part.is_empty() {
            let at = self.seen as usize;
            self.iv[at..at + iv_part.len()].copy_from_slice(iv_part);
            self.mac.update(iv_part);
            self.seen += iv_part.len() as u64;
            if self.seen == ct_start {
                self.cbc = Some(cbc::Decryptor::<Aes256>::new(
                    &self.keys.aes.into(),
                    &self.iv.into(),
                ));
            }
        }
        let (ciphertext, tag) = split_at_offset(rest, self.seen, mac_start);
        if !ciphertext.is_empty() {
            self.mac.update(ciphertext);
            self.seen += ciphertext.len() as u64;
            self.decrypt(ciphertext, out, self.seen == mac_start)?;
        }
        if !tag.is_empty() {
            let at = (self.seen - mac_start) as usize;
            self.received_mac[at..at + tag.len()].copy_from_slice(tag);
            self.seen += tag.len() as u64;
        }
        Ok(())
    }

    /// Checks that the whole blob arrived and is the one verified in pass 1. Only then is the
    /// plaintext written so far the attachment. Returns its length.
    pub fn finish(mut self) -> Result<u64, DecryptError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if self.seen != self.blob_len {
            return Err(DecryptError::Truncated {
                expected: self.blob_len,
                received: self.seen,
            });
        }
        let mac: [u8; MAC_LEN] = self.mac.finalize().into_bytes().into();
        let same = mac.ct_eq(&self.verified_mac) & self.received_mac.ct_eq(&self.verified_mac);
        if !bool::from(same) {
            return Err(DecryptError::BlobChanged);
        }
        Ok(self.plaintext_len)
    }

    fn fail(&mut self, error: DecryptError) -> DecryptError {
        self.failed = Some(error.clone());
        error
    }

    fn decrypt(
        &mut self,
        mut ciphertext: &[u8],
        out: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), DecryptError> {
        let Some(cbc) = self.cbc.as_mut() else {
            // Unreachable: ciphertext only follows the 16 IV bytes, which create the decryptor.
            return Err(self.fail(DecryptError::BlobChanged));
        };
        let start = out.len();
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(ciphertext.len());
            let (head, rest) = ciphertext.split_at(take);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(head);
            self.partial_len += take;
            ciphertext = rest;
            if self.partial_len < BLOCK {
                return Ok(());
            }
            out.extend_from_slice(&self.partial);
            self.partial_len = 0;
        }
        let full = ciphertext.len() - ciphertext.len() % BLOCK;
        let (blocks, tail) = ciphertext.split_at(full);
        out.extend_from_slice(blocks);
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
        for piece in out[start..].chunks_mut(PIECE) {
            let (blocks, _) = InOutBuf::from(piece).into_chunks::<U16>();
            cbc.decrypt_blocks_inout(blocks);
        }
        if last {
            let Some(unpadded) = pkcs7_unpadded_len(&out[start..]) else {
                out.truncate(start);
                return Err(self.fail(DecryptError::BadPadding));
            };
            out.truncate(start + unpadded);
        }
        self.plaintext_len += (out.len() - start) as u64;
        Ok(())
    }
}

/// Length of `data` without its PKCS#7 padding, or `None` if the padding is malformed.
/// `data` ends with the final block (the blob length guarantees at least one).
fn pkcs7_unpadded_len(data: &[u8]) -> Option<usize> {
    let pad = *data.last()?;
    let pad_len = usize::from(pad);
    if pad_len == 0 || pad_len > BLOCK || pad_len > data.len() {
        return None;
    }
    let body = data.len() - pad_len;
    data[body..].iter().all(|&b| b == pad).then_some(body)
}

/// Why pass 2 failed. On any error the plaintext written so far must be discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// More bytes than the verified blob.
    #[error("attachment blob longer than the verified {expected} bytes")]
    TooLong {
        /// Verified length.
        expected: u64,
    },
    /// Fewer bytes than the verified blob.
    #[error("attachment blob truncated: {received} of {expected} bytes")]
    Truncated {
        /// Verified length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The last block's PKCS#7 padding is malformed (the sender built a bad blob).
    #[error("attachment padding is malformed")]
    BadPadding,
    /// The bytes fed in pass 2 are not the bytes verified in pass 1.
    #[error("attachment blob changed between verification and decryption")]
    BlobChanged,
}

#[cfg(test)]
mod tests {
    //! Wycheproof known answers for the primitives exactly as this module drives them
    //! (streaming CBC over block runs; incremental HMAC).
    use super::*;
    use serde_json::Value;

    fn vectors(name: &str) -> Value {
        let root = std::env::var("CONFIANZA_SHARED")
            .unwrap_or_else(|_| format!("{}/../../../shared", env!("CARGO_MANIFEST_DIR")));
        let path = format!("{root}/vectors/wycheproof/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).expect("wycheproof JSON")
    }

    fn hex_field(test: &Value, field: &str) -> Vec<u8> {
        hex::decode(test[field].as_str().expect("hex string")).expect("hex")
    }

    fn tests_of(file: &Value) -> impl Iterator<Item = (&Value, &Value)> {
        file["testGroups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| {
                g["tests"]
                    .as_array()
                    .expect("tests")
                    .iter()
                    .map(move |t| (g, t))
            })
    }

    /// Streams `msg` through the encryptor's CBC path in uneven chunks; returns the ciphertext
    /// (without IV and MAC).
    fn cbc_encrypt(key: &[u8; 32], iv: [u8; 16], msg: &[u8], chunk: usize) -> Vec<u8> {
        let keys = AttachmentKeys {
            aes: *key,
            mac: [0; 32],
        };
        let mut enc = AttachmentEncryptor::with_iv(&keys, iv);
        let mut out = Vec::new();
        for piece in msg.chunks(chunk.max(1)) {
            enc.update(piece, &mut out).expect("small input");
        }
        enc.finish(&mut out);
        out[IV_LEN..out.len() - MAC_LEN].to_vec()
    }

    /// Runs `ct` through the decryptor's CBC and padding path, in uneven chunks.
    fn cbc_decrypt(key: &[u8; 32], iv: [u8; 16], ct: &[u8], chunk: usize) -> Option<Vec<u8>> {
        let keys = AttachmentKeys {
            aes: *key,
            mac: [0; 32],
        };
        let mut dec = AttachmentDecryptor {
            mac: hmac_sha256(&keys.mac),
            cbc: None,
            iv: [0; 16],
            verified_mac: [0; 32],
            received_mac: [0; 32],
            blob_len: (IV_LEN + ct.len() + MAC_LEN) as u64,
            seen: 0,
            partial: [0; 16],
            partial_len: 0,
            plaintext_len: 0,
            failed: None,
            keys,
        };
        let mut blob = iv.to_vec();
        blob.extend_from_slice(ct);
        blob.extend_from_slice(&[0; MAC_LEN]);
        let mut out = Vec::new();
        for piece in blob.chunks(chunk.max(1)) {
            dec.update(piece, &mut out).ok()?;
        }
        Some(out)
    }

    #[test]
    fn wycheproof_aes_256_cbc_pkcs7() {
        let file = vectors("aes_cbc_pkcs5_test.json");
        let (mut valid, mut invalid) = (0, 0);
        for (group, test) in tests_of(&file) {
            if group["keySize"] != 256 {
                continue;
            }
            let key: [u8; 32] = hex_field(test, "key").try_into().expect("256-bit key");
            let iv: [u8; 16] = hex_field(test, "iv").try_into().expect("128-bit iv");
            let (msg, ct) = (hex_field(test, "msg"), hex_field(test, "ct"));
            let id = &test["tcId"];
            match test["result"].as_str() {
                Some("valid") => {
                    for chunk in [1, 5, 16, 17, 4096] {
                        assert_eq!(cbc_encrypt(&key, iv, &msg, chunk), ct, "tcId {id}");
                        assert_eq!(
                            cbc_decrypt(&key, iv, &ct, chunk),
                            Some(msg.clone()),
                            "tcId {id}"
                        );
                    }
                    valid += 1;
                }
                Some("invalid") => {
                    // Invalid cases are bad paddings (or lengths no blob can have).
                    if !ct.is_empty() && ct.len() % 16 == 0 {
                        for chunk in [1, 16, 4096] {
                            assert_eq!(cbc_decrypt(&key, iv, &ct, chunk), None, "tcId {id}");
                        }
                    }
                    invalid += 1;
                }
                other => panic!("tcId {id}: unexpected result {other:?}"),
            }
        }
        assert_eq!((valid, invalid), (24, 48));
    }

    #[test]
    fn wycheproof_hmac_sha256() {
        let file = vectors("hmac_sha256_test.json");
        let (mut valid, mut invalid) = (0, 0);
        for (group, test) in tests_of(&file) {
            let tag_len = group["tagSize"].as_u64().expect("tag size") as usize / 8;
            let (key, msg, tag) = (
                hex_field(test, "key"),
                hex_field(test, "msg"),
                hex_field(test, "tag"),
            );
            // The module's keys are 32 bytes and go through `hmac_sha256`; other key sizes
            // exercise the same incremental use through the slice constructor.
            let mut mac = match <[u8; 32]>::try_from(key.as_slice()) {
                Ok(k) => hmac_sha256(&k),
                Err(_) => <HmacSha256 as KeyInit>::new_from_slice(&key).expect("any length"),
            };
            for piece in msg.chunks(7) {
                mac.update(piece);
            }
            let full = mac.finalize().into_bytes();
            let matches = bool::from(full[..tag_len].ct_eq(&tag[..]));
            match test["result"].as_str() {
                Some("valid") => {
                    assert!(matches, "tcId {}", test["tcId"]);
                    valid += 1;
                }
                Some("invalid") => {
                    assert!(!matches, "tcId {}", test["tcId"]);
                    invalid += 1;
                }
                other => panic!("unexpected result {other:?}"),
            }
        }
        assert_eq!((valid, invalid), (66, 108));
    }

    /// The blob as the plain composition of the primitives computes it, in one shot: the
    /// `cbc` crate's padded encryption, then HMAC and SHA-256 over whole buffers.
    fn reference_blob(keys: &AttachmentKeys, iv: [u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
        use aes::cipher::BlockModeEncrypt;
        use aes::cipher::block_padding::Pkcs7;
        let ciphertext = cbc::Encryptor::<Aes256>::new(&keys.aes.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(plaintext);
        let mut blob = iv.to_vec();
        blob.extend_from_slice(&ciphertext);
        let mut mac = hmac_sha256(&keys.mac);
        mac.update(&blob);
        blob.extend_from_slice(&mac.finalize().into_bytes());
        blob
    }

    /// The interleaved encryptor against the reference, across the places where its paths
    /// change: partial blocks, hash-block boundaries (the stream starts 16 bytes in), the
    /// `UNIT` halves and the `PIECE` runs, fed in chunks that split all of them.
    #[test]
    fn encryptor_matches_the_plain_composition() {
        let keys = AttachmentKeys::from_bytes(&core::array::from_fn(|i| i as u8 ^ 0xa5));
        let iv: [u8; IV_LEN] = core::array::from_fn(|i| 0x40 + i as u8);
        let lengths = [
            0,
            1,
            15,
            16,
            17,
            47,
            48,
            49,
            63,
            64,
            65,
            UNIT * 3 + 7,
            PIECE - 17,
            PIECE - 16,
            PIECE,
            PIECE + 1,
            PIECE + 48,
            3 * PIECE + 33,
        ];
        let chunks = [
            1,
            7,
            15,
            16,
            17,
            32,
            48,
            64,
            100,
            1000,
            PIECE - 1,
            PIECE,
            PIECE + 16,
        ];
        for len in lengths {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let expected = reference_blob(&keys, iv, &plaintext);
            let expected_digest: [u8; DIGEST_LEN] = Sha256::digest(&expected).into();
            for chunk in chunks {
                let mut encryptor = AttachmentEncryptor::with_iv(&keys, iv);
                let mut blob = Vec::new();
                for piece in plaintext.chunks(chunk) {
                    encryptor.update(piece, &mut blob).expect("small input");
                }
                let sent = encryptor.finish(&mut blob);
                assert_eq!(blob, expected, "length {len}, chunks of {chunk}");
                assert_eq!(
                    sent.digest, expected_digest,
                    "length {len}, chunks of {chunk}"
                );
                assert_eq!(sent.blob_len, blob.len() as u64);
                assert_eq!(sent.plaintext_len, len as u64);
            }
        }
    }

    #[test]
    fn unpadding() {
        assert_eq!(pkcs7_unpadded_len(&[16; 16]), Some(0));
        assert_eq!(pkcs7_unpadded_len(&[1; 16]), Some(15));
        let mut block = [7u8; 16];
        block[15] = 0;
        assert_eq!(pkcs7_unpadded_len(&block), None);
        block[15] = 17;
        assert_eq!(pkcs7_unpadded_len(&block), None);
        block[15] = 2;
        block[14] = 3;
        assert_eq!(pkcs7_unpadded_len(&block), None);
    }
}
