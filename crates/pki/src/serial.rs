//! Certificate serial numbers: random, positive, at most 20 octets (RFC 5280 section 4.1.2.2).
//!
//! ```text
//! CertificateSerialNumber  ::=  INTEGER
//! ```
//!
//! We draw [`SERIAL_RANDOM_BYTES`] random bytes, clear the top bit (so the INTEGER is positive
//! without a leading zero) and set bit 6 of the first byte (so the value never shrinks to fewer
//! octets and never starts with a redundant zero): 126 random bits, always 16 octets of
//! content, well above the 64 bits the CA/Browser Forum asks for.

use der::asn1::Uint;
use rand_core::CryptoRng;
use x509_cert::serial_number::SerialNumber;

use crate::limits::SERIAL_RANDOM_BYTES;

/// A certificate serial number as its big-endian magnitude (no sign byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; SERIAL_RANDOM_BYTES]);

impl Serial {
    /// Draws a fresh random serial.
    pub fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        let mut bytes = [0u8; SERIAL_RANDOM_BYTES];
        rng.fill_bytes(&mut bytes);
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Self(bytes)
    }

    /// Wraps known bytes (e.g. read back from storage). The same shape rules as
    /// [`Serial::random`] are enforced so every `Serial` encodes to exactly the same length.
    pub fn from_bytes(bytes: [u8; SERIAL_RANDOM_BYTES]) -> Option<Self> {
        (bytes[0] & 0xc0 == 0x40).then_some(Self(bytes))
    }

    /// Parses the content octets of a DER INTEGER as found in a certificate.
    pub fn from_der_content(content: &[u8]) -> Option<Self> {
        let bytes: [u8; SERIAL_RANDOM_BYTES] = content.try_into().ok()?;
        Self::from_bytes(bytes)
    }

    /// Big-endian magnitude, also the DER INTEGER content octets.
    pub fn as_bytes(&self) -> &[u8; SERIAL_RANDOM_BYTES] {
        &self.0
    }

    /// Lower-case hex, the form `openssl` prints and the repository uses in URLs.
    pub fn to_hex(&self) -> String {
        use core::fmt::Write;
        let mut s = String::with_capacity(SERIAL_RANDOM_BYTES * 2);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// The x509-cert form (cannot fail for a well-formed `Serial`; the `Result` is der's).
    pub fn to_serial_number(&self) -> der::Result<SerialNumber> {
        SerialNumber::new(&self.0)
    }

    /// The der `Uint` form.
    pub fn to_uint(self) -> der::Result<Uint> {
        Uint::new(&self.0)
    }
}

impl core::fmt::Display for Serial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn random_serials_are_positive_and_fixed_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let s = Serial::random(&mut rng);
            let der = s
                .to_serial_number()
                .and_then(|n| n.to_der())
                .expect("encode");
            // INTEGER, length 16, no leading zero, positive.
            assert_eq!(der.len(), 2 + SERIAL_RANDOM_BYTES);
            assert_eq!(der[1] as usize, SERIAL_RANDOM_BYTES);
            assert_eq!(der[2] & 0x80, 0);
            assert_ne!(der[2], 0);
        }
    }

    #[test]
    fn from_bytes_rejects_wrong_shape() {
        assert!(Serial::from_bytes([0u8; SERIAL_RANDOM_BYTES]).is_none());
        assert!(Serial::from_bytes([0xffu8; SERIAL_RANDOM_BYTES]).is_none());
        assert!(Serial::from_der_content(&[0x40; SERIAL_RANDOM_BYTES + 1]).is_none());
    }

    proptest! {
        #[test]
        fn hex_and_bytes_round_trip(bytes in proptest::array::uniform16(any::<u8>())) {
            let mut b = bytes;
            b[0] = (b[0] & 0x3f) | 0x40;
            let s = Serial::from_bytes(b).unwrap_or(Serial([0x40; 16]));
            prop_assert_eq!(s.to_hex().len(), 32);
            prop_assert_eq!(Serial::from_der_content(s.as_bytes()), Some(s));
        }
    }
}
