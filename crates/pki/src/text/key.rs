//! Public keys the way OpenSSL 3's text encoders print them (indentation 16).

use core::fmt::Write as _;

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Sequence};
use spki::SubjectPublicKeyInfoOwned;

use super::{integer_decimal, labelled_hex};

/// ```text
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
/// ```
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// Named curves: OID, OpenSSL name, NIST name, bits.
const CURVES: &[(&str, &str, Option<&str>, usize)] = &[
    ("1.2.840.10045.3.1.7", "prime256v1", Some("P-256"), 256),
    ("1.3.132.0.34", "secp384r1", Some("P-384"), 384),
    ("1.3.132.0.35", "secp521r1", Some("P-521"), 521),
    ("1.3.132.0.10", "secp256k1", None, 256),
];

/// The lines after `Public Key Algorithm: …` (each already indented).
pub(crate) fn write_public_key(out: &mut String, spki: &SubjectPublicKeyInfoOwned) {
    let key = spki.subject_public_key.raw_bytes();
    let pad = "                ";
    match spki.algorithm.oid.to_string().as_str() {
        "1.3.101.112" | "1.3.101.110" | "1.3.101.113" | "1.3.101.111" => {
            let name = match spki.algorithm.oid.to_string().as_str() {
                "1.3.101.112" => "ED25519",
                "1.3.101.110" => "X25519",
                "1.3.101.113" => "ED448",
                _ => "X448",
            };
            let _ = writeln!(out, "{pad}{name} Public-Key:");
            out.push_str(&labelled_hex(pad, "pub:", key));
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .and_then(|oid| {
                    let dotted = oid.to_string();
                    CURVES.iter().find(|c| c.0 == dotted).copied()
                });
            match curve {
                Some((_, name, nist, bits)) => {
                    let _ = writeln!(out, "{pad}Public-Key: ({bits} bit)");
                    out.push_str(&labelled_hex(pad, "pub:", key));
                    let _ = writeln!(out, "{pad}ASN1 OID: {name}");
                    if let Some(nist) = nist {
                        let _ = writeln!(out, "{pad}NIST CURVE: {nist}");
                    }
                }
                None => out.push_str(&labelled_hex(pad, "pub:", key)),
            }
        }
        "1.2.840.113549.1.1.1" => match RsaPublicKey::from_der(key) {
            Ok(rsa) => {
                let n = rsa.modulus.as_bytes();
                let bits = n
                    .first()
                    .map_or(0, |b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
                let _ = writeln!(out, "{pad}Public-Key: ({bits} bit)");
                out.push_str(&bignum(pad, "Modulus:", n));
                out.push_str(&bignum(pad, "Exponent:", rsa.public_exponent.as_bytes()));
            }
            Err(_) => out.push_str(&labelled_hex(pad, "pub:", key)),
        },
        _ => out.push_str(&labelled_hex(pad, "pub:", key)),
    }
}

/// `ossl_bio_print_labeled_bignum`: small values on one line, large ones as hex with a leading
/// `00` when the top bit is set.
fn bignum(pad: &str, label: &str, magnitude: &[u8]) -> String {
    if magnitude.len() <= 8 {
        let value = magnitude.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        return format!(
            "{pad}{label} {} (0x{value:x})\n",
            integer_decimal(magnitude)
        );
    }
    let mut bytes = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.push(0);
    }
    bytes.extend_from_slice(magnitude);
    labelled_hex(pad, label, &bytes)
}
