//! X25519 keys as the handshake sees them.
//!
//! # Speed
//!
//! X25519 (RFC 7748) is computed here through the Edwards form of Curve25519, not with the
//! Montgomery ladder: a public key is a fixed-base multiplication with the precomputed
//! basepoint table, and a Diffie-Hellman maps the remote u-coordinate to the Edwards curve
//! (a square root), multiplies there (curve25519-dalek's vectorised backends apply, the ladder
//! has none) and maps back (an inversion). The result is the same 32 bytes the ladder gives,
//! for every input: a u-coordinate on the twist has no Edwards form and takes the ladder; the
//! sign chosen for x when mapping does not change the u of the result. A remote key used for
//! two Diffie-Hellmans of one handshake is mapped once ([`RemoteKey`]).

use core::fmt;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

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

/// A remote public key with its Edwards form worked out once, for the Diffie-Hellmans of one
/// handshake. Remote keys are public, so mapping them in variable time leaks nothing.
#[derive(Clone, Copy)]
pub(crate) struct RemoteKey {
    key: PublicKey,
    /// `None` for a u-coordinate on the twist (no Edwards form).
    edwards: Option<EdwardsPoint>,
}

impl RemoteKey {
    pub(crate) fn new(key: PublicKey) -> Self {
        Self {
            key,
            edwards: MontgomeryPoint(key.0).to_edwards(0),
        }
    }

    pub(crate) fn key(&self) -> PublicKey {
        self.key
    }
}

/// A Noise static key pair. The secret half is zeroized on drop and never printed.
#[derive(Clone)]
pub struct StaticKeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl StaticKeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut_slice());
        Self::from_secret(secret)
    }

    /// Rebuilds a key pair from its stored secret (as written by [`Self::secret_bytes`]).
    #[must_use]
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self::from_secret(Zeroizing::new(secret))
    }

    /// The secret scalar bytes, for storing the key (callers keep them in a zeroizing buffer and
    /// write them to a file only readable by their owner).
    #[must_use]
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.secret.clone()
    }

    fn from_secret(secret: Zeroizing<[u8; 32]>) -> Self {
        // Fixed-base: the precomputed Edwards basepoint table, then u = (1 + y) / (1 - y).
        let public = PublicKey(MontgomeryPoint::mul_base_clamped(*secret).to_bytes());
        Self { secret, public }
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// `DH(self, remote)`, or `None` when the result is all zeros (a low-order remote key).
    pub(crate) fn diffie_hellman(&self, remote: &RemoteKey) -> Option<Zeroizing<[u8; 32]>> {
        let shared = Zeroizing::new(match &remote.edwards {
            Some(point) => point.mul_clamped(*self.secret).to_montgomery().to_bytes(),
            None => MontgomeryPoint(remote.key.0)
                .mul_clamped(*self.secret)
                .to_bytes(),
        });
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return None;
        }
        Some(shared)
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
    use proptest::prelude::*;

    use super::*;

    /// X25519 as RFC 7748 defines it, with the Montgomery ladder (x25519-dalek).
    fn ladder(secret: [u8; 32], u: [u8; 32]) -> [u8; 32] {
        x25519_dalek::x25519(secret, u)
    }

    fn dh(secret: [u8; 32], u: [u8; 32]) -> Option<[u8; 32]> {
        StaticKeyPair::from_secret_bytes(secret)
            .diffie_hellman(&RemoteKey::new(PublicKey::from_bytes(u)))
            .map(|shared| *shared)
    }

    fn hex32(text: &str) -> [u8; 32] {
        let bytes = hex::decode(text).expect("hex");
        bytes.try_into().expect("32 bytes")
    }

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
        let refused = |u: [u8; 32]| {
            pair.diffie_hellman(&RemoteKey::new(PublicKey::from_bytes(u)))
                .is_none()
        };
        assert!(refused([0; 32]));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(refused(one));
        // The points of order 8 (RFC 7748 §5 and the Curve25519 low-order list).
        for low in [
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            assert!(refused(hex32(low)), "{low}");
        }
    }

    #[test]
    fn rfc_7748_vectors() {
        // RFC 7748 §5.2, the two single-multiplication vectors.
        assert_eq!(
            dh(
                hex32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                hex32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
            ),
            Some(hex32(
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
            ))
        );
        assert_eq!(
            dh(
                hex32("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                hex32("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
            ),
            Some(hex32(
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
            ))
        );
        // RFC 7748 §6.1: both sides of the Diffie-Hellman, and the public keys.
        let alice = StaticKeyPair::from_secret_bytes(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob = StaticKeyPair::from_secret_bytes(hex32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            alice.public_key().as_bytes(),
            &hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key().as_bytes(),
            &hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let alice_shared = alice
            .diffie_hellman(&RemoteKey::new(bob.public_key()))
            .expect("contributory");
        let bob_shared = bob
            .diffie_hellman(&RemoteKey::new(alice.public_key()))
            .expect("contributory");
        assert_eq!(*alice_shared, shared);
        assert_eq!(*bob_shared, shared);
    }

    #[test]
    fn twist_points_and_non_canonical_coordinates_match_the_ladder() {
        let secret = [0x77; 32];
        // u = 2 is on the twist; p - 1 and p + 1 .. 2^255 - 1 are non-canonical or special.
        let mut cases = vec![[0u8; 32]];
        cases[0][0] = 2;
        let p_minus_one = hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        cases.push(p_minus_one);
        for top in [0xeeu8, 0xef, 0xf0, 0xff] {
            let mut u = [0xff; 32];
            u[0] = top;
            cases.push(u);
        }
        for u in cases {
            let expected = ladder(secret, u);
            let expected = (expected != [0; 32]).then_some(expected);
            assert_eq!(dh(secret, u), expected, "u = {}", hex::encode(u));
        }
    }

    proptest! {
        #[test]
        fn every_input_gives_the_ladders_answer(secret in any::<[u8; 32]>(), u in any::<[u8; 32]>()) {
            let expected = ladder(secret, u);
            let expected = (expected != [0; 32]).then_some(expected);
            prop_assert_eq!(dh(secret, u), expected);
        }

        #[test]
        fn public_keys_match_the_ladder(secret in any::<[u8; 32]>()) {
            let mut base = [0u8; 32];
            base[0] = 9;
            prop_assert_eq!(
                *StaticKeyPair::from_secret_bytes(secret).public_key().as_bytes(),
                ladder(secret, base)
            );
        }
    }
}
