//! Distinguished names the way OpenSSL prints them.
//!
//! - [`oneline`]: `X509_NAME_print_ex(..., XN_FLAG_ONELINE)`, used for Issuer and Subject:
//!   `C = ES, O = Confianza, CN = alice`, RFC 2253 escaping by quoting, UTF-8 bytes above 0x7f as
//!   `\XX`, control characters as `\XX`, non-string values as `#` + DER hex.
//! - [`slash`]: `X509_NAME_oneline`, used for `DirName:` in subjectAltName and AKI:
//!   `/C=ES/O=Confianza/CN=alice`, bytes outside `' '..='~'` as `\xXX`.

use core::fmt::Write as _;

use der::asn1::AnyRef;
use der::{Encode, Tag, Tagged};
use x509_cert::name::Name;

use super::oid::attribute_name;

/// RFC 2253 specials (escaped by quoting the whole value).
fn is_2253_special(b: u8) -> bool {
    matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\')
}

/// The characters of a string value as Unicode scalar values, or `None` if the value is not
/// a string type OpenSSL knows (then it is dumped as `#` + DER hex).
fn chars(value: AnyRef<'_>) -> Option<Vec<u32>> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String => Some(
            String::from_utf8_lossy(bytes)
                .chars()
                .map(u32::from)
                .collect(),
        ),
        Tag::NumericString
        | Tag::PrintableString
        | Tag::TeletexString
        | Tag::Ia5String
        | Tag::UtcTime
        | Tag::GeneralizedTime
        | Tag::VisibleString => Some(bytes.iter().map(|&b| u32::from(b)).collect()),
        Tag::BmpString => Some(
            bytes
                .chunks(2)
                .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
                .collect(),
        ),
        // UniversalString (tag 28) has no variant in `der::Tag`.
        tag if tag.to_der().ok().as_deref() == Some(&[0x1c][..]) => Some(
            bytes
                .chunks(4)
                .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
                .collect(),
        ),
        _ => None,
    }
}

fn utf8(c: u32) -> Vec<u8> {
    match char::from_u32(c) {
        Some(ch) => {
            let mut buf = [0u8; 4];
            ch.encode_utf8(&mut buf).as_bytes().to_vec()
        }
        None => vec![b'?'],
    }
}

/// One attribute value with `XN_FLAG_ONELINE` escaping.
fn oneline_value(value: AnyRef<'_>) -> String {
    let Some(chars) = chars(value) else {
        let mut out = String::from("#");
        if let Ok(der) = value.to_der() {
            for b in der {
                let _ = write!(out, "{b:02X}");
            }
        }
        return out;
    };
    let mut out = String::new();
    let mut quote = false;
    let last = chars.len().saturating_sub(1);
    for (i, &c) in chars.iter().enumerate() {
        for b in utf8(c) {
            if b > 0x7f {
                let _ = write!(out, "\\{b:02X}");
                continue;
            }
            let first_special = i == 0 && (b == b' ' || b == b'#');
            let last_special = i == last && b == b' ';
            if is_2253_special(b) || first_special || last_special {
                quote = true;
                out.push(char::from(b));
            } else if b < 0x20 || b == 0x7f {
                let _ = write!(out, "\\{b:02X}");
            } else {
                out.push(char::from(b));
            }
        }
    }
    if quote { format!("\"{out}\"") } else { out }
}

/// `X509_NAME_print_ex(name, XN_FLAG_ONELINE)`.
pub(crate) fn oneline(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name.iter_rdn().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push_str(" + ");
            }
            let _ = write!(
                out,
                "{} = {}",
                attribute_name(&atv.oid),
                oneline_value(AnyRef::from(&atv.value))
            );
        }
    }
    out
}

/// `X509_NAME_oneline(name)`.
pub(crate) fn slash(name: &Name) -> String {
    let mut out = String::new();
    for atv in name.iter() {
        let _ = write!(out, "/{}=", attribute_name(&atv.oid));
        for &b in atv.value.value() {
            if (b' '..=b'~').contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    out
}
