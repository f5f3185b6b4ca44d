//! Extension values the way OpenSSL's `X509V3_EXT_print` renders them.

use core::fmt::Write as _;

use der::asn1::{Ia5String, ObjectIdentifier, OctetString, Uint};
use der::{Decode, Sequence};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, GeneralNames};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, NameConstraints, SubjectKeyIdentifier,
};

use super::name::{oneline, slash};
use super::oid::long_name;
use super::{UnknownExtensions, hex_upper_colon, integer_decimal, integer_magnitude, time};

/// A rendered extension value.
pub(crate) enum Rendered {
    /// Lines, each printed at the value indentation.
    Lines(Vec<String>),
    /// OpenSSL's fallback for extensions it cannot print: the raw value, only the first line
    /// indented (`ASN1_STRING_print`), or a hex dump (`-certopt ext_dump`).
    Raw(String),
}

/// Appends one extension, as `X509V3_extensions_print` does at indentation 12.
pub(crate) fn write_extension(out: &mut String, ext: &Extension, unknown: UnknownExtensions) {
    let _ = writeln!(
        out,
        "            {}: {}",
        long_name(&ext.extn_id),
        if ext.critical { "critical" } else { "" }
    );
    let value = ext.extn_value.as_bytes();
    match render(&ext.extn_id, value) {
        Some(Rendered::Lines(lines)) => {
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = write!(out, "{:16}{line}", "");
            }
        }
        Some(Rendered::Raw(s)) => out.push_str(&s),
        None => match unknown {
            UnknownExtensions::Ascii => {
                let _ = write!(out, "{:16}{}", "", ascii(value));
            }
            UnknownExtensions::HexDump => out.push_str(&hex_dump(value, 16)),
        },
    }
    out.push('\n');
}

/// `ASN1_STRING_print`: printable ASCII, CR and LF as is, everything else as `.`.
fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (b' '..=b'~').contains(&b) || b == b'\n' || b == b'\r' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

/// `BIO_dump_indent`: offset, hex bytes (a `-` after the eighth), printable characters.
pub(crate) fn hex_dump(bytes: &[u8], indent: usize) -> String {
    let indent = indent.min(64);
    let width = 16 - (indent - indent.min(6)).div_ceil(4);
    let mut out = String::new();
    for (row, chunk) in bytes.chunks(width).enumerate() {
        let _ = write!(out, "{:indent$}{:04x} - ", "", row * width);
        for j in 0..width {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x}{}", if j == 7 { '-' } else { ' ' });
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  ");
        for &b in chunk {
            out.push(if (b' '..=b'~').contains(&b) {
                char::from(b)
            } else {
                '.'
            });
        }
        out.push('\n');
    }
    out
}

const KEY_USAGE_NAMES: [&str; 9] = [
    "Digital Signature",
    "Non Repudiation",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
];

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

/// Renders the extensions OpenSSL renders; `None` means "print the fallback".
fn render(id: &ObjectIdentifier, value: &[u8]) -> Option<Rendered> {
    let dotted = id.to_string();
    let lines = match dotted.as_str() {
        "2.5.29.19" => {
            let bc = BasicConstraints::from_der(value).ok()?;
            let mut line = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
            if let Some(n) = bc.path_len_constraint {
                let _ = write!(line, ", pathlen:{n}");
            }
            vec![line]
        }
        "2.5.29.15" => {
            let bits = der::asn1::BitString::from_der(value).ok()?;
            let raw = bits.raw_bytes();
            let set: Vec<&str> = KEY_USAGE_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    i / 8 < bits.bit_len().div_ceil(8)
                        && *i < bits.bit_len()
                        && raw.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
                })
                .map(|(_, n)| *n)
                .collect();
            vec![values_line(&set)]
        }
        "2.5.29.37" => {
            let eku = ExtendedKeyUsage::from_der(value).ok()?;
            let names: Vec<String> = eku.0.iter().map(long_name).collect();
            vec![names.join(", ")]
        }
        "2.5.29.17" | "2.5.29.18" | "2.5.29.29" => {
            let names = GeneralNames::from_der(value).ok()?;
            let parts: Vec<String> = names.iter().map(general_name_v).collect();
            vec![parts.join(", ")]
        }
        "2.5.29.14" => {
            let ski = SubjectKeyIdentifier::from_der(value).ok()?;
            vec![hex_upper_colon(ski.0.as_bytes())]
        }
        "2.5.29.35" => authority_key_id(value)?,
        "2.5.29.31" | "2.5.29.46" => {
            let dps = CrlDistributionPoints::from_der(value).ok()?;
            let points: Vec<String> = dps.0.iter().map(distribution_point).collect();
            return Some(Rendered::Raw(points.join("\n")));
        }
        "2.5.29.28" => return Some(Rendered::Raw(issuing_distribution_point(value)?)),
        "1.3.6.1.5.5.7.1.1" | "1.3.6.1.5.5.7.1.11" => {
            let aia = AuthorityInfoAccessSyntax::from_der(value).ok()?;
            aia.0
                .iter()
                .map(|ad| {
                    format!(
                        "{} - {}",
                        long_name(&ad.access_method),
                        general_name_v(&ad.access_location)
                    )
                })
                .collect()
        }
        "2.5.29.32" => certificate_policies(value)?,
        "2.5.29.20" | "2.5.29.27" => {
            let n = Uint::from_der(value).ok()?;
            vec![integer_decimal(n.as_bytes())]
        }
        "2.5.29.21" => vec![reason_name(CrlReason::from_der(value).ok()?).to_owned()],
        "2.5.29.24" => {
            let t = der::asn1::GeneralizedTime::from_der(value).ok()?;
            vec![time(&x509_cert::time::Time::GeneralTime(t))]
        }
        "1.3.6.1.5.5.7.48.1.5" => {
            der::asn1::Null::from_der(value).ok()?;
            return Some(Rendered::Raw(String::new()));
        }
        "2.5.29.30" => name_constraints(value)?,
        _ => return None,
    };
    Some(Rendered::Lines(lines))
}

/// `X509V3_EXT_val_prn` on one line; `<EMPTY>` when there is nothing.
fn values_line(values: &[&str]) -> String {
    if values.is_empty() {
        "<EMPTY>\n".to_owned()
    } else {
        values.join(", ")
    }
}

fn authority_key_id(value: &[u8]) -> Option<Vec<String>> {
    let akid = AuthorityKeyIdentifier::from_der(value).ok()?;
    let labelled =
        akid.authority_cert_issuer.is_some() || akid.authority_cert_serial_number.is_some();
    let mut lines = Vec::new();
    if let Some(id) = &akid.key_identifier {
        let hex = hex_upper_colon(id.as_bytes());
        lines.push(if labelled {
            format!("keyid:{hex}")
        } else {
            hex
        });
    }
    if let Some(issuer) = &akid.authority_cert_issuer {
        lines.extend(issuer.iter().map(general_name_v));
    }
    if let Some(serial) = &akid.authority_cert_serial_number {
        let (_, magnitude) = integer_magnitude(serial.as_bytes());
        lines.push(format!("serial:{}", hex_upper_colon(&magnitude)));
    }
    Some(lines)
}

/// `print_distpoint`: no newline after the last name (OpenSSL appends what follows directly).
fn distribution_point_name(dpn: &DistributionPointName) -> String {
    match dpn {
        DistributionPointName::FullName(names) => {
            let mut out = format!("{:16}Full Name:\n", "");
            out.push_str(&general_names_print(names));
            out
        }
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            // A one-RDN name: SEQUENCE { rdn }.
            let name = der::Encode::to_der(rdn).ok().and_then(|rdn| {
                let len = u8::try_from(rdn.len()).ok().filter(|l| *l < 0x80)?;
                let mut seq = vec![0x30, len];
                seq.extend_from_slice(&rdn);
                x509_cert::name::Name::from_der(&seq).ok()
            });
            let text = name.as_ref().map(oneline).unwrap_or_default();
            format!("{:16}Relative Name:\n{:18}{text}\n", "", "")
        }
    }
}

/// `print_gens`: one name a line at indentation 18, no newline after the last.
fn general_names_print(names: &GeneralNames) -> String {
    let lines: Vec<String> = names
        .iter()
        .map(|n| format!("{:18}{}", "", general_name_print(n)))
        .collect();
    lines.join("\n")
}

/// `print_reasons`.
fn reasons(label: &str, flags: x509_cert::ext::pkix::crl::dp::ReasonFlags) -> String {
    const NAMES: [&str; 9] = [
        "Unused",
        "Key Compromise",
        "CA Compromise",
        "Affiliation Changed",
        "Superseded",
        "Cessation Of Operation",
        "Certificate Hold",
        "Privilege Withdrawn",
        "AA Compromise",
    ];
    let bits = flags.bits();
    let set: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    let list = if set.is_empty() {
        "<EMPTY>".to_owned()
    } else {
        set.join(", ")
    };
    format!("{:16}{label}:\n{:18}{list}\n", "", "")
}

/// `i2r_crldp` for one distribution point.
fn distribution_point(dp: &DistributionPoint) -> String {
    let mut out = String::new();
    if let Some(name) = &dp.distribution_point {
        out.push_str(&distribution_point_name(name));
    }
    if let Some(flags) = dp.reasons {
        out.push_str(&reasons("Reasons", flags));
    }
    if let Some(issuer) = &dp.crl_issuer {
        let _ = writeln!(out, "{:16}CRL Issuer:", "");
        out.push_str(&general_names_print(issuer));
    }
    out
}

/// `i2r_idp`, including OpenSSL's missing newline after the distribution point name.
fn issuing_distribution_point(value: &[u8]) -> Option<String> {
    let idp = IssuingDistributionPoint::from_der(value).ok()?;
    let mut out = String::new();
    if let Some(name) = &idp.distribution_point {
        out.push_str(&distribution_point_name(name));
    }
    let flags = [
        (idp.only_contains_user_certs, "Only User Certificates"),
        (idp.only_contains_ca_certs, "Only CA Certificates"),
        (idp.indirect_crl, "Indirect CRL"),
    ];
    for (set, label) in flags {
        if set {
            let _ = writeln!(out, "{:16}{label}", "");
        }
    }
    if let Some(r) = idp.only_some_reasons {
        out.push_str(&reasons("Only Some Reasons", r));
    }
    if idp.only_contains_attribute_certs {
        let _ = writeln!(out, "{:16}Only Attribute Certificates", "");
    }
    if out.is_empty() {
        let _ = writeln!(out, "{:16}<EMPTY>", "");
    }
    Some(out)
}

/// ```text
/// UserNotice ::= SEQUENCE {
///      noticeRef        NoticeReference OPTIONAL,
///      explicitText     DisplayText OPTIONAL }
/// NoticeReference ::= SEQUENCE {
///      organization     DisplayText,
///      noticeNumbers    SEQUENCE OF INTEGER }
/// ```
/// (Defined here because x509-cert 0.3 types `noticeRef` as a GeneralizedTime.)
#[derive(Sequence)]
struct UserNotice {
    #[asn1(optional = "true")]
    notice_ref: Option<NoticeReference>,
    #[asn1(optional = "true")]
    explicit_text: Option<der::Any>,
}

#[derive(Sequence)]
struct NoticeReference {
    organization: der::Any,
    notice_numbers: Vec<Uint>,
}

fn certificate_policies(value: &[u8]) -> Option<Vec<String>> {
    let policies = CertificatePolicies::from_der(value).ok()?;
    let cps = oid("1.3.6.1.5.5.7.2.1");
    let unotice = oid("1.3.6.1.5.5.7.2.2");
    let mut lines = Vec::new();
    for policy in &policies.0 {
        lines.push(format!("Policy: {}", long_name(&policy.policy_identifier)));
        for q in policy.policy_qualifiers.as_deref().unwrap_or(&[]) {
            let body = q.qualifier.as_ref();
            if q.policy_qualifier_id == cps {
                let uri = body.map(|b| String::from_utf8_lossy(b.value()).into_owned());
                lines.push(format!("  CPS: {}", uri.unwrap_or_default()));
            } else if q.policy_qualifier_id == unotice {
                lines.push("  User Notice:".to_owned());
                let notice = body.and_then(|b| {
                    der::Encode::to_der(b)
                        .ok()
                        .and_then(|d| UserNotice::from_der(&d).ok())
                })?;
                if let Some(r) = &notice.notice_ref {
                    lines.push(format!(
                        "    Organization: {}",
                        String::from_utf8_lossy(r.organization.value())
                    ));
                    let numbers: Vec<String> = r
                        .notice_numbers
                        .iter()
                        .map(|n| integer_decimal(n.as_bytes()))
                        .collect();
                    lines.push(format!(
                        "    Number{}: {}",
                        if numbers.len() > 1 { "s" } else { "" },
                        numbers.join(", ")
                    ));
                }
                if let Some(t) = &notice.explicit_text {
                    lines.push(format!(
                        "    Explicit Text: {}",
                        String::from_utf8_lossy(t.value())
                    ));
                }
            } else {
                lines.push(format!(
                    "    Unknown Qualifier: {}",
                    long_name(&q.policy_qualifier_id)
                ));
            }
        }
    }
    Some(lines)
}

fn name_constraints(value: &[u8]) -> Option<Vec<String>> {
    let nc = NameConstraints::from_der(value).ok()?;
    let mut lines = Vec::new();
    for (label, trees) in [
        ("Permitted", &nc.permitted_subtrees),
        ("Excluded", &nc.excluded_subtrees),
    ] {
        let Some(trees) = trees else { continue };
        if trees.is_empty() {
            continue;
        }
        lines.push(format!("{label}:"));
        for t in trees {
            let text = match &t.base {
                GeneralName::IpAddress(ip) => format!("IP:{}", ip_with_mask(ip)),
                other => general_name_print(other),
            };
            lines.push(format!("  {text}"));
        }
    }
    Some(lines)
}

fn ip_with_mask(ip: &OctetString) -> String {
    let b = ip.as_bytes();
    match b.len() {
        8 => format!("{}/{}", ip_text(&b[..4]), ip_text(&b[4..])),
        32 => format!("{}/{}", ip_text(&b[..16]), ip_text(&b[16..])),
        _ => "IP Address:<invalid>".to_owned(),
    }
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => b.iter().map(u8::to_string).collect::<Vec<_>>().join("."),
        16 => b
            .chunks(2)
            .map(|c| format!("{:X}", c.iter().fold(0u16, |a, &x| (a << 8) | u16::from(x))))
            .collect::<Vec<_>>()
            .join(":"),
        _ => "<invalid>".to_owned(),
    }
}

fn ia5(s: &Ia5String) -> String {
    s.to_string()
}

fn other_name_text(other: &x509_cert::ext::pkix::name::OtherName) -> String {
    use der::{Tag, Tagged};
    match other.value.tag() {
        Tag::Utf8String | Tag::Ia5String | Tag::PrintableString => format!(
            "othername: {}::{}",
            other.type_id,
            String::from_utf8_lossy(other.value.value())
        ),
        _ => "othername:<unsupported>".to_owned(),
    }
}

/// `i2v_GENERAL_NAME`: how subjectAltName and AIA print names (DirName in slash form).
fn general_name_v(gn: &GeneralName) -> String {
    match gn {
        GeneralName::OtherName(o) => other_name_text(o),
        GeneralName::Rfc822Name(s) => format!("email:{}", ia5(s)),
        GeneralName::DnsName(s) => format!("DNS:{}", ia5(s)),
        GeneralName::UniformResourceIdentifier(s) => format!("URI:{}", ia5(s)),
        GeneralName::DirectoryName(n) => format!("DirName:{}", slash(n)),
        GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
            4 | 16 => format!("IP Address:{}", ip_text(ip.as_bytes())),
            _ => "IP Address:<invalid>".to_owned(),
        },
        GeneralName::RegisteredId(id) => format!("Registered ID:{}", long_name(id)),
        GeneralName::EdiPartyName(_) => "EdiPartyName:<unsupported>".to_owned(),
    }
}

/// `GENERAL_NAME_print`: how CRL distribution points print names (DirName one-line).
fn general_name_print(gn: &GeneralName) -> String {
    match gn {
        GeneralName::DirectoryName(n) => format!("DirName:{}", oneline(n)),
        other => general_name_v(other),
    }
}

/// OpenSSL's CRL reason strings.
pub(crate) fn reason_name(reason: CrlReason) -> &'static str {
    match reason {
        CrlReason::Unspecified => "Unspecified",
        CrlReason::KeyCompromise => "Key Compromise",
        CrlReason::CaCompromise => "CA Compromise",
        CrlReason::AffiliationChanged => "Affiliation Changed",
        CrlReason::Superseded => "Superseded",
        CrlReason::CessationOfOperation => "Cessation Of Operation",
        CrlReason::CertificateHold => "Certificate Hold",
        CrlReason::RemoveFromCRL => "Remove From CRL",
        CrlReason::PrivilegeWithdrawn => "Privilege Withdrawn",
        CrlReason::AaCompromise => "AA Compromise",
    }
}
