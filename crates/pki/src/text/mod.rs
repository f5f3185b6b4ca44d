//! Certificates and CRLs as text, the way `openssl x509 -text -noout` and
//! `openssl crl -text -noout` (OpenSSL 3.0) print them: same layout, indentation, field names,
//! colon-separated hex (15 octets a line for keys, 18 for signatures), and the usual
//! extensions rendered by name. An extension this module does not render is still printed,
//! as OpenSSL does: its raw value with non-printable octets as `.` (OpenSSL's default), or a
//! hex dump ([`UnknownExtensions::HexDump`], like `-certopt ext_dump`).
//!
//! Known differences from OpenSSL (everything else is meant to match line for line):
//! - RSA-PSS signature parameters are not printed under `Signature Algorithm: rsassaPss`.
//! - Public keys of algorithms other than Ed25519/X25519/Ed448/X448, EC (named P-256, P-384,
//!   P-521, secp256k1) and RSA are printed as a `pub:` hex dump (OpenSSL says it cannot load
//!   them).
//! - Object identifiers outside the tables in `oid.rs` are printed dotted, where OpenSSL may
//!   know a name; extensions outside the rendered set (for example policy mappings, policy
//!   constraints, SCT lists) fall back to the raw-value form.
//! - Issuer and subject unique identifiers are not printed.
//!
//! ```
//! # fn demo(cert: &x509_cert::Certificate) {
//! let text = confianza_pki::text::certificate(cert);
//! assert!(text.starts_with("Certificate:\n    Data:\n"));
//! # }
//! ```

mod ext;
mod key;
mod name;
mod oid;

use core::fmt::Write as _;

use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::Extension;
use x509_cert::time::Time;

use self::oid::long_name;

/// How to print extensions this module does not render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownExtensions {
    /// The raw value, non-printable octets as `.` (`openssl x509 -text`).
    #[default]
    Ascii,
    /// A hex dump (`openssl x509 -text -certopt ext_dump`).
    HexDump,
}

/// Printing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// How to print extensions that are not rendered by name.
    pub unknown_extensions: UnknownExtensions,
}

/// `openssl x509 -text -noout`.
pub fn certificate(cert: &Certificate) -> String {
    certificate_with(cert, &Options::default())
}

/// `openssl x509 -text -noout`, with options.
pub fn certificate_with(cert: &Certificate, options: &Options) -> String {
    let tbs = cert.tbs_certificate();
    let mut out = String::from("Certificate:\n    Data:\n");
    let version = tbs.version() as u8;
    let _ = writeln!(
        out,
        "        Version: {} (0x{:x})",
        u32::from(version) + 1,
        version
    );
    out.push_str("        Serial Number:");
    out.push_str(&serial_number(tbs.serial_number().as_bytes()));
    out.push('\n');
    let _ = writeln!(
        out,
        "        Signature Algorithm: {}",
        long_name(&tbs.signature().oid)
    );
    let _ = writeln!(out, "        Issuer: {}", name::oneline(tbs.issuer()));
    out.push_str("        Validity\n");
    let _ = writeln!(
        out,
        "            Not Before: {}",
        time(&tbs.validity().not_before)
    );
    let _ = writeln!(
        out,
        "            Not After : {}",
        time(&tbs.validity().not_after)
    );
    let _ = writeln!(out, "        Subject: {}", name::oneline(tbs.subject()));
    out.push_str("        Subject Public Key Info:\n");
    let spki = tbs.subject_public_key_info();
    let _ = writeln!(
        out,
        "            Public Key Algorithm: {}",
        long_name(&spki.algorithm.oid)
    );
    key::write_public_key(&mut out, spki);
    write_extensions(&mut out, "X509v3 extensions", tbs.extensions(), options);
    write_signature(
        &mut out,
        &cert.signature_algorithm().oid,
        cert.signature().raw_bytes(),
    );
    out
}

/// `openssl crl -text -noout`.
pub fn crl(crl: &CertificateList) -> String {
    crl_with(crl, &Options::default())
}

/// `openssl crl -text -noout`, with options.
pub fn crl_with(crl: &CertificateList, options: &Options) -> String {
    let tbs = &crl.tbs_cert_list;
    let mut out = String::from("Certificate Revocation List (CRL):\n");
    let version = tbs.version as u8;
    let _ = writeln!(
        out,
        "        Version {} (0x{:x})",
        u32::from(version) + 1,
        version
    );
    let _ = writeln!(
        out,
        "        Signature Algorithm: {}",
        long_name(&tbs.signature.oid)
    );
    let _ = writeln!(out, "        Issuer: {}", name::oneline(&tbs.issuer));
    let _ = writeln!(out, "        Last Update: {}", time(&tbs.this_update));
    let _ = writeln!(
        out,
        "        Next Update: {}",
        tbs.next_update
            .as_ref()
            .map_or_else(|| "NONE".to_owned(), time)
    );
    write_extensions(
        &mut out,
        "CRL extensions",
        tbs.crl_extensions.as_ref(),
        options,
    );
    let revoked = tbs.revoked_certificates.as_deref().unwrap_or(&[]);
    if revoked.is_empty() {
        out.push_str("No Revoked Certificates.\n");
    } else {
        out.push_str("Revoked Certificates:\n");
    }
    for entry in revoked {
        let _ = writeln!(
            out,
            "    Serial Number: {}",
            integer_hex_plain(entry.serial_number.as_bytes())
        );
        let _ = writeln!(
            out,
            "        Revocation Date: {}",
            time(&entry.revocation_date)
        );
        write_extensions(
            &mut out,
            "CRL entry extensions",
            entry.crl_entry_extensions.as_ref(),
            options,
        );
    }
    write_signature(
        &mut out,
        &crl.signature_algorithm.oid,
        crl.signature.raw_bytes(),
    );
    out
}

fn write_extensions(
    out: &mut String,
    title: &str,
    extensions: Option<&Vec<Extension>>,
    options: &Options,
) {
    let Some(extensions) = extensions.filter(|e| !e.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "        {title}:");
    for e in extensions {
        ext::write_extension(out, e, options.unknown_extensions);
    }
}

/// `X509_signature_print` + `X509_signature_dump`: 18 octets a line at indentation 8.
fn write_signature(out: &mut String, algorithm: &der::asn1::ObjectIdentifier, sig: &[u8]) {
    let _ = writeln!(out, "    Signature Algorithm: {}", long_name(algorithm));
    out.push_str("    Signature Value:");
    for (i, chunk) in sig.chunks(18).enumerate() {
        out.push_str("\n        ");
        let last_chunk = (i + 1) * 18 >= sig.len();
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&hex.join(":"));
        if !last_chunk {
            out.push(':');
        }
    }
    out.push('\n');
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ASN1_TIME_print`: `Nov 26 14:10:00 2026 GMT`.
pub(crate) fn time(t: &Time) -> String {
    let dt = t.to_date_time();
    let month = MONTHS
        .get(usize::from(dt.month()).saturating_sub(1))
        .copied()
        .unwrap_or("???");
    format!(
        "{month} {:2} {:02}:{:02}:{:02} {} GMT",
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds(),
        dt.year()
    )
}

/// Sign and magnitude of a DER INTEGER's content octets (two's complement).
pub(crate) fn integer_magnitude(bytes: &[u8]) -> (bool, Vec<u8>) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = if negative {
        // Two's complement negation: invert and add one.
        let mut v: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in v.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        v
    } else {
        bytes.to_vec()
    };
    while magnitude.len() > 1 && magnitude.first() == Some(&0) {
        magnitude.remove(0);
    }
    if magnitude == [0] && bytes.len() > 1 {
        magnitude.clear();
    }
    (negative, magnitude)
}

/// The certificate serial (`ossl_serial_number_print`): ` 4097 (0x1001)` when it fits in an
/// `int64_t`, otherwise a new line of colon-separated lowercase hex.
fn serial_number(bytes: &[u8]) -> String {
    let (negative, magnitude) = integer_magnitude(bytes);
    let sign = if negative { "-" } else { "" };
    if magnitude.len() <= 8 {
        let value = magnitude.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        if value <= i64::MAX as u64 || (negative && value == 1u64 << 63) {
            return format!(" {sign}{value} ({sign}0x{value:x})");
        }
    }
    let hex: Vec<String> = magnitude.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "\n            {}{}",
        if negative { " (Negative)" } else { "" },
        hex.join(":")
    )
}

/// `i2a_ASN1_INTEGER`: uppercase hex without separators (CRL entries).
fn integer_hex_plain(bytes: &[u8]) -> String {
    let (negative, magnitude) = integer_magnitude(bytes);
    let mut out = String::from(if negative { "-" } else { "" });
    if magnitude.is_empty() {
        out.push_str("00");
    }
    for (i, b) in magnitude.iter().enumerate() {
        if i > 0 && i % 35 == 0 {
            out.push_str("\\\n");
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Uppercase hex with colons (`OPENSSL_buf2hexstr`).
pub(crate) fn hex_upper_colon(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// An unsigned big-endian integer in decimal (below 128 bits), else `0x` + uppercase hex,
/// as `i2s_ASN1_INTEGER` does.
pub(crate) fn integer_decimal(magnitude: &[u8]) -> String {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|&b| b == 0).collect();
    if trimmed.len() <= 16
        && !(trimmed.len() == 16 && trimmed.first().is_some_and(|b| b & 0x80 != 0))
    {
        let value = trimmed.iter().fold(0u128, |a, &b| (a << 8) | u128::from(b));
        value.to_string()
    } else {
        let mut out = String::from("0x");
        for b in trimmed {
            let _ = write!(out, "{b:02X}");
        }
        out
    }
}

/// `ossl_bio_print_labeled_buf`: the label, then 15 octets a line, four spaces deeper.
pub(crate) fn labelled_hex(pad: &str, label: &str, bytes: &[u8]) -> String {
    let mut out = format!("{pad}{label}\n");
    for (i, chunk) in bytes.chunks(15).enumerate() {
        let last_chunk = (i + 1) * 15 >= bytes.len();
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "{pad}    {}{}",
            hex.join(":"),
            if last_chunk { "" } else { ":" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_print_like_openssl() {
        assert_eq!(serial_number(&[0x10, 0x01]), " 4097 (0x1001)");
        assert_eq!(serial_number(&[0x00, 0xff]), " 255 (0xff)");
        assert_eq!(serial_number(&[0xff]), " -1 (-0x1)");
        // int64 boundary: 2^63 − 1 fits, 2^63 does not.
        assert_eq!(
            serial_number(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            " 9223372036854775807 (0x7fffffffffffffff)"
        );
        assert_eq!(
            serial_number(&[0x00, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            "\n            80:00:00:00:00:00:00:00"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(integer_magnitude(&[0x80]), (true, vec![0x80]));
        assert_eq!(integer_magnitude(&[0xff, 0x01]), (true, vec![0xff]));
        assert_eq!(integer_hex_plain(&[0x00, 0xff, 0x11]), "FF11");
        assert_eq!(integer_hex_plain(&[0x00]), "00");
        assert_eq!(integer_decimal(&[0x01, 0x00]), "256");
        assert_eq!(
            integer_decimal(&[0xff; 17]),
            format!("0x{}", "FF".repeat(17))
        );
        let long: Vec<u8> = (1..=36).collect();
        assert!(integer_hex_plain(&long).contains("\\\n"));
    }

    #[test]
    fn hex_layouts() {
        assert_eq!(
            labelled_hex("  ", "pub:", &[1; 16]),
            "  pub:\n      01:01:01:01:01:01:01:01:01:01:01:01:01:01:01:\n      01\n"
        );
        let mut out = String::new();
        write_signature(
            &mut out,
            &der::asn1::ObjectIdentifier::new_unwrap("1.3.101.112"),
            &[0xab; 19],
        );
        assert_eq!(
            out,
            format!(
                "    Signature Algorithm: ED25519\n    Signature Value:\n        {}:\n        ab\n",
                ["ab"; 18].join(":")
            )
        );
    }
}
