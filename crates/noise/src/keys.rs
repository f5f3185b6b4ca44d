//! X25519 keys as the handshake sees them.

use core::fmt;

use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;

/// Length of an X25519 public key (`DHLEN`).
pub const PUBLIC_KEY_LEN: usize = 32;

/// An X25519 public key: a server's or a device's Noise static key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Wraps raw key bytes. Every 32-byte string is accepted here; degenerate keys are refused
    /// when a Diffie-Hellman with them yields the all-zero secret.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).ok().map(Self)
    }

    pub(crate) fn to_dalek(self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// A Noise static key pair. The secret half is zeroized on drop and never printed.
#[derive(Clone)]
pub struct StaticKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl StaticKeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self::from_secret(StaticSecret::random_from_rng(rng))
    }

    /// Rebuilds a key pair from its stored secret (as written by [`Self::secret_bytes`]).
    #[must_use]
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(secret))
    }

    /// The secret scalar bytes, for storing the key (callers keep them in a zeroizing buffer and
    /// write them to a file only readable by their owner).
    #[must_use]
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.secret.to_bytes())
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// `DH(self, remote)`, or `None` when the result is all zeros (a low-order remote key).
    pub(crate) fn diffie_hellman(
        &self,
        remote: &PublicKey,
    ) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&remote.to_dalek());
        if !shared.was_contributory() {
            return None;
        }
        Some(zeroize::Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for StaticKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let pair = StaticKeyPair::from_secret_bytes([0x42; 32]);
        let shown = format!("{pair:?}");
        assert!(!shown.contains("4242424242"), "{shown}");
        assert!(shown.contains("public"));
    }

    #[test]
    fn low_order_keys_are_refused() {
        let pair = StaticKeyPair::from_secret_bytes([0x42; 32]);
        assert!(
            pair.diffie_hellman(&PublicKey::from_bytes([0; 32]))
                .is_none()
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(pair.diffie_hellman(&PublicKey::from_bytes(one)).is_none());
    }
}
