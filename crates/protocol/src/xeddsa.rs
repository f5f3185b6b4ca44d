//! XEdDSA signatures over Curve25519 keys, in Signal's variant.
//!
//! Signal's library signs with the X25519 private scalar `a` as it is (the XEdDSA paper negates
//! it when needed so that the Edwards public key has sign bit 0). To let the verifier rebuild the
//! Edwards point from the Montgomery u-coordinate, the sign bit of `A = a·B` is stored in the top
//! bit of the last signature byte, which a reduced scalar `s` never uses. A verifier written from
//! the paper alone would refuse about half of Signal's signatures; this one accepts them, and
//! accepts the paper's signatures too (their sign bit is always 0).
//!
//! ```text
//! r = SHA-512(0xFE ‖ 0xFF×31 ‖ a ‖ M ‖ Z) mod l        Z: 64 fresh random bytes
//! R = r·B,  h = SHA-512(R ‖ A ‖ M) mod l,  s = h·a + r mod l
//! signature = R ‖ s, with sign(A) in bit 7 of byte 63
//! ```

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of an XEdDSA signature.
pub const SIGNATURE_LENGTH: usize = 64;

/// Signs `message` with the X25519 private key `private_key` (clamped here), using `random` as
/// the 64 bytes of fresh randomness `Z`. Callers pass bytes from a CSPRNG; fixed bytes are only
/// for known-answer tests.
pub fn sign(private_key: &[u8; 32], message: &[u8], random: &[u8; 64]) -> [u8; SIGNATURE_LENGTH] {
    sign_with_public(private_key, &edwards_public(private_key), message, random)
}

/// The compressed Edwards point `A = a·B` of a private key: what [`sign_with_public`] needs,
/// worth keeping for a key that signs often.
pub fn edwards_public(private_key: &[u8; 32]) -> [u8; 32] {
    let mut clamped = clamp_integer(*private_key);
    let mut a = Scalar::from_bytes_mod_order(clamped);
    let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
    clamped.zeroize();
    a.zeroize();
    public
}

/// [`sign`] with the key's Edwards public point already computed ([`edwards_public`]); one
/// base-point multiplication instead of two.
pub fn sign_with_public(
    private_key: &[u8; 32],
    edwards_public: &[u8; 32],
    message: &[u8],
    random: &[u8; 64],
) -> [u8; SIGNATURE_LENGTH] {
    let mut clamped = clamp_integer(*private_key);
    let mut a = Scalar::from_bytes_mod_order(clamped);
    let sign_bit = edwards_public[31] & 0x80;

    let mut hash1_prefix = [0xFFu8; 32];
    hash1_prefix[0] = 0xFE;
    let mut nonce_hash = Sha512::new();
    nonce_hash.update(hash1_prefix);
    nonce_hash.update(clamped);
    nonce_hash.update(message);
    nonce_hash.update(random);
    let mut r = wide_scalar(nonce_hash);
    let cap_r = EdwardsPoint::mul_base(&r).compress();

    let mut challenge = Sha512::new();
    challenge.update(cap_r.as_bytes());
    challenge.update(edwards_public);
    challenge.update(message);
    let h = wide_scalar(challenge);
    let s = h * a + r;

    let mut signature = [0u8; SIGNATURE_LENGTH];
    signature[..32].copy_from_slice(cap_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    signature[63] |= sign_bit;

    clamped.zeroize();
    a.zeroize();
    r.zeroize();
    signature
}

/// Verifies a Signal XEdDSA signature against the Montgomery u-coordinate of an X25519 key.
pub fn verify(public_u: &[u8; 32], message: &[u8], signature: &[u8; SIGNATURE_LENGTH]) -> bool {
    let sign_bit = signature[63] >> 7;
    let Some(cap_a) = MontgomeryPoint(*public_u).to_edwards(sign_bit) else {
        return false;
    };
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    s_bytes[31] &= 0x7F;
    if s_bytes[31] & 0xE0 != 0 {
        return false;
    }
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signature[..32]);
    let cap_a_compressed = cap_a.compress();

    let mut challenge = Sha512::new();
    challenge.update(r_bytes);
    challenge.update(cap_a_compressed.as_bytes());
    challenge.update(message);
    let h = wide_scalar(challenge);

    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &(-cap_a), &s).compress();
    check
        .as_bytes()
        .ct_eq(CompressedEdwardsY(r_bytes).as_bytes())
        .into()
}

/// `SHA-512(…) mod l`.
fn wide_scalar(hash: Sha512) -> Scalar {
    let digest: [u8; 64] = hash.finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_round_trips_for_both_sign_bits() {
        let mut seen = [false; 2];
        for i in 0u8..32 {
            let private = [i.wrapping_mul(7).wrapping_add(1); 32];
            let public = MontgomeryPoint::mul_base_clamped(private).to_bytes();
            let sig = sign(&private, b"message", &[i; 64]);
            seen[usize::from(sig[63] >> 7)] = true;
            assert!(verify(&public, b"message", &sig));
            assert!(!verify(&public, b"massage", &sig));
        }
        assert_eq!(seen, [true, true], "both sign bits exercised");
    }
}
