//! Safety numbers: the 60-digit number two people read to each other and the scannable payload
//! one phone shows the other as a QR code, byte-compatible with Signal's library
//! (`rust/protocol/src/fingerprint.rs`; WIRE.md §12).
//!
//! For each party, with `IK` its 33-byte serialized identity key (`0x05 ‖ u`) and `id` its stable
//! identifier bytes:
//!
//! ```text
//! H(0) = SHA-512( 0x00 0x00 ‖ IK ‖ id ‖ IK )
//! H(i) = SHA-512( H(i-1) ‖ IK )                 for i = 1 .. iterations-1
//! ```
//!
//! * Displayable: bytes 0..30 of the final hash as six big-endian 40-bit groups, each reduced
//!   mod 100 000 and printed as 5 digits; the two 30-digit halves are concatenated smaller first,
//!   so both sides print the same number. The version does not affect it.
//! * Scannable: protobuf `CombinedFingerprints { version, local.content = H_local[..32],
//!   remote.content = H_remote[..32] }`. The other phone's payload matches ours when the versions
//!   are equal and its local is our remote and its remote our local (compared in constant time).
//!
//! ```
//! use confianza_protocol::fingerprint::{Fingerprint, Iterations, Party, ScannableVersion};
//!
//! let alice_key = [0x05; 33];
//! let bob_key = [0x06; 33];
//! let alice = Party { stable_id: b"alice", identity_key: &alice_key };
//! let bob = Party { stable_id: b"bob", identity_key: &bob_key };
//! let it = Iterations::DEFAULT;
//! let on_alice = Fingerprint::new(ScannableVersion::V2, it, alice, bob);
//! let on_bob = Fingerprint::new(ScannableVersion::V2, it, bob, alice);
//! assert_eq!(on_alice.displayable().to_string(), on_bob.displayable().to_string());
//! assert!(on_alice.scannable().compare(&on_bob.scannable().to_bytes()).unwrap());
//! ```

use core::fmt;

use prost::Message;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::proto::fingerprint as pb;

/// Iterations libsignal's tests and documentation use, and that every Confianza client uses:
/// documented by Signal as giving more than 112 bits of work against a targeted collision. All
/// clients must share the value, or their safety numbers never match.
pub const DEFAULT_FINGERPRINT_ITERATIONS: u32 = 5200;

/// Fewest iterations accepted (libsignal's bound: `H(0)` plus at least one chained hash).
pub const MIN_FINGERPRINT_ITERATIONS: u32 = 2;

/// Most iterations accepted (libsignal's bound): a caller-chosen count above it would let a bad
/// configuration stall a client for seconds per conversation.
pub const MAX_FINGERPRINT_ITERATIONS: u32 = 1_000_000;

/// Largest scannable payload accepted for comparison. A genuine payload is 74 bytes; scanned
/// input is attacker-controlled, and 1 KiB leaves room for future fields while bounding the
/// parser's work.
pub const MAX_SCANNABLE_FINGERPRINT_LEN: usize = 1024;

/// Length of a serialized identity key (`0x05` then the 32-byte X25519 u-coordinate).
pub const IDENTITY_KEY_LEN: usize = 33;

/// Length of each party's half of the scannable fingerprint.
pub const SCANNABLE_HALF_LEN: usize = 32;

/// Digits in each party's half of the displayable number.
const DISPLAY_HALF_DIGITS: usize = 30;

/// A checked iteration count (`MIN_FINGERPRINT_ITERATIONS..=MAX_FINGERPRINT_ITERATIONS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iterations(u32);

impl Iterations {
    /// [`DEFAULT_FINGERPRINT_ITERATIONS`].
    pub const DEFAULT: Self = Self(DEFAULT_FINGERPRINT_ITERATIONS);

    /// Checks the bounds.
    pub fn new(iterations: u32) -> Result<Self, IterationsError> {
        if (MIN_FINGERPRINT_ITERATIONS..=MAX_FINGERPRINT_ITERATIONS).contains(&iterations) {
            Ok(Self(iterations))
        } else {
            Err(IterationsError::OutOfRange(iterations))
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Iterations {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for Iterations {
    type Error = IterationsError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// An iteration count outside the accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IterationsError {
    /// Not in `2..=1_000_000`.
    #[error(
        "fingerprint iterations {0} outside {MIN_FINGERPRINT_ITERATIONS}..={MAX_FINGERPRINT_ITERATIONS}"
    )]
    OutOfRange(u32),
}

/// The version written into (and required of) scannable payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScannableVersion {
    /// Version 1: libsignal's E.164-era payloads.
    V1,
    /// Version 2: what Signal writes today (with ACI UUID bytes as identifiers).
    V2,
}

impl ScannableVersion {
    /// The number on the wire.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// One side of the conversation: its stable identifier bytes and serialized identity key.
#[derive(Clone, Copy, Debug)]
pub struct Party<'a> {
    /// Chosen by the caller and shared by all clients (Signal: the 16 raw ACI UUID bytes).
    pub stable_id: &'a [u8],
    /// The 33-byte serialized identity key (`0x05 ‖ u`).
    pub identity_key: &'a [u8; IDENTITY_KEY_LEN],
}

/// Both forms of the safety number for one conversation, as seen from the local side.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    displayable: DisplayableFingerprint,
    scannable: ScannableFingerprint,
}

impl Fingerprint {
    /// Computes both forms (`2 × iterations` SHA-512 evaluations, no allocation in the loop).
    pub fn new(
        version: ScannableVersion,
        iterations: Iterations,
        local: Party<'_>,
        remote: Party<'_>,
    ) -> Self {
        let local_hash = iterate_hash(iterations, local);
        let remote_hash = iterate_hash(iterations, remote);
        Self {
            displayable: DisplayableFingerprint {
                local: display_half(&local_hash),
                remote: display_half(&remote_hash),
            },
            scannable: ScannableFingerprint {
                version: version.number(),
                local: first_half(&local_hash),
                remote: first_half(&remote_hash),
            },
        }
    }

    /// The 60-digit number.
    pub fn displayable(&self) -> &DisplayableFingerprint {
        &self.displayable
    }

    /// The QR-code payload.
    pub fn scannable(&self) -> &ScannableFingerprint {
        &self.scannable
    }
}

fn iterate_hash(iterations: Iterations, party: Party<'_>) -> [u8; 64] {
    let key: &[u8] = party.identity_key;
    let mut hasher = Sha512::new();
    hasher.update([0u8, 0u8]);
    hasher.update(key);
    hasher.update(party.stable_id);
    hasher.update(key);
    let mut hash = sha2::digest::Output::<Sha512>::default();
    hasher.finalize_into_reset(&mut hash);
    for _ in 1..iterations.get() {
        hasher.update(&hash[..]);
        hasher.update(key);
        hasher.finalize_into_reset(&mut hash);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(&hash);
    out
}

fn first_half(hash: &[u8; 64]) -> [u8; SCANNABLE_HALF_LEN] {
    let mut out = [0u8; SCANNABLE_HALF_LEN];
    out.copy_from_slice(&hash[..SCANNABLE_HALF_LEN]);
    out
}

fn display_half(hash: &[u8; 64]) -> [u8; DISPLAY_HALF_DIGITS] {
    let mut digits = [0u8; DISPLAY_HALF_DIGITS];
    for (group, out) in hash[..30].chunks_exact(5).zip(digits.chunks_exact_mut(5)) {
        let mut value = group
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte))
            % 100_000;
        for digit in out.iter_mut().rev() {
            // `value % 10` < 10, so the cast cannot truncate.
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    digits
}

/// The 60-digit safety number: the same string on both phones.
#[derive(Clone, Debug)]
pub struct DisplayableFingerprint {
    local: [u8; DISPLAY_HALF_DIGITS],
    remote: [u8; DISPLAY_HALF_DIGITS],
}

impl DisplayableFingerprint {
    /// The 60 ASCII digits, smaller half first.
    pub fn digits(&self) -> [u8; 2 * DISPLAY_HALF_DIGITS] {
        let (first, second) = if self.local <= self.remote {
            (&self.local, &self.remote)
        } else {
            (&self.remote, &self.local)
        };
        let mut out = [0u8; 2 * DISPLAY_HALF_DIGITS];
        out[..DISPLAY_HALF_DIGITS].copy_from_slice(first);
        out[DISPLAY_HALF_DIGITS..].copy_from_slice(second);
        out
    }

    /// Whether `candidate` (e.g. typed in by the user; spaces are ignored) is this number,
    /// compared in constant time over the 60 digits.
    pub fn matches(&self, candidate: &str) -> bool {
        let mut typed = [0u8; 2 * DISPLAY_HALF_DIGITS];
        let mut len = 0usize;
        for byte in candidate.bytes().filter(|b| !b.is_ascii_whitespace()) {
            match typed.get_mut(len) {
                Some(slot) => *slot = byte,
                None => return false,
            }
            len += 1;
        }
        len == typed.len() && bool::from(typed.ct_eq(&self.digits()))
    }
}

impl fmt::Display for DisplayableFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &digit in &self.digits() {
            fmt::Write::write_char(f, char::from(digit))?;
        }
        Ok(())
    }
}

/// The scannable (QR-code) payload, as shown by the local phone.
#[derive(Clone, Debug)]
pub struct ScannableFingerprint {
    version: u32,
    local: [u8; SCANNABLE_HALF_LEN],
    remote: [u8; SCANNABLE_HALF_LEN],
}

impl ScannableFingerprint {
    /// The protobuf `CombinedFingerprints` bytes to put in the QR code.
    pub fn to_bytes(&self) -> Vec<u8> {
        pb::CombinedFingerprints {
            version: Some(self.version),
            local_fingerprint: Some(pb::LogicalFingerprint {
                content: Some(self.local.to_vec()),
            }),
            remote_fingerprint: Some(pb::LogicalFingerprint {
                content: Some(self.remote.to_vec()),
            }),
        }
        .encode_to_vec()
    }

    /// The version this payload carries.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Compares the payload scanned from the other phone with ours.
    ///
    /// `Ok(true)` means the two phones see the same pair of identity keys. `Ok(false)` means they
    /// do not — the conversation may be intercepted. A payload of another version is an error,
    /// not a mismatch, so the user can be told to update instead of being alarmed.
    pub fn compare(&self, theirs: &[u8]) -> Result<bool, CompareError> {
        if theirs.len() > MAX_SCANNABLE_FINGERPRINT_LEN {
            return Err(CompareError::TooLong(theirs.len()));
        }
        let combined =
            pb::CombinedFingerprints::decode(theirs).map_err(|_| CompareError::Malformed)?;
        let their_version = combined.version.unwrap_or(0);
        if their_version != self.version {
            return Err(CompareError::VersionMismatch {
                theirs: their_version,
                ours: self.version,
            });
        }
        let their_local = combined
            .local_fingerprint
            .and_then(|f| f.content)
            .ok_or(CompareError::Malformed)?;
        let their_remote = combined
            .remote_fingerprint
            .and_then(|f| f.content)
            .ok_or(CompareError::Malformed)?;
        // Slices of different lengths compare unequal; both halves are always checked.
        let same = their_local.as_slice().ct_eq(&self.remote[..])
            & their_remote.as_slice().ct_eq(&self.local[..]);
        Ok(bool::from(same))
    }
}

/// Why a scanned payload could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// The other phone uses another fingerprint version.
    #[error("scanned safety number has version {theirs}, ours is {ours}")]
    VersionMismatch {
        /// Version in the scanned payload (0 if absent).
        theirs: u32,
        /// Our version.
        ours: u32,
    },
    /// Longer than [`MAX_SCANNABLE_FINGERPRINT_LEN`].
    #[error("scanned safety number is {0} bytes, more than {MAX_SCANNABLE_FINGERPRINT_LEN}")]
    TooLong(usize),
    /// Not a `CombinedFingerprints` protobuf, or a half is missing.
    #[error("scanned safety number is malformed")]
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_half_pads_groups_to_five_digits() {
        let mut hash = [0u8; 64];
        // First group 0x00_0000_0001 → "00001"; second 0xff_ffff_ffff mod 1e5 = 1099511627775 mod 1e5 = 27775.
        hash[4] = 1;
        hash[5..10].fill(0xff);
        let digits = display_half(&hash);
        assert_eq!(&digits[..10], b"0000127775");
    }

    #[test]
    fn iterations_bounds() {
        assert!(Iterations::new(1).is_err());
        assert!(Iterations::new(2).is_ok());
        assert!(Iterations::new(1_000_000).is_ok());
        assert!(Iterations::new(1_000_001).is_err());
    }
}
