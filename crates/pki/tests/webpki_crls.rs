//! CRL parsing edge cases from rustls-webpki (`vectors/x509/webpki/crls`, README table) through
//! `confianza_pki::path::parse_crl`. webpki's results are the reference policy; the one place we
//! differ (`crl.idp.invalid.name.der`, refused) is noted at the case.

use std::path::PathBuf;

use confianza_pki::path::{CrlError, CrlReason, parse_crl};

fn read(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("CONFIANZA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let path = dir.join("vectors/x509/webpki/crls").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

const REVOKED: &[u8] = &[0x03, 0xae, 0x51, 0xdb, 0x51, 0x15, 0x5a, 0x3c];

#[test]
fn valid_crl_lists_the_revoked_serial() {
    let crl = parse_crl(&read("crl.valid.der")).expect("parses");
    let entry = crl.find(REVOKED).expect("revoked serial listed");
    assert_eq!(entry.reason, Some(CrlReason::KeyCompromise));
    assert!(crl.find(&[0x03, 0xae]).is_none());
    assert_eq!(crl.entries().len(), 1);
    let (this_update, next_update) = crl.update_times();
    assert!(this_update < next_update);
    assert!(
        crl.issuing_distribution_point()
            .is_some_and(|idp| idp.only_contains_user_certs)
    );
}

#[test]
fn parse_ok_cases() {
    for name in [
        "crl.empty.der",
        "crl.no.entry.exts.der",
        "crl.entry.empty.ext.seq.der",
    ] {
        parse_crl(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        parse_crl(&read("crl.empty.der"))
            .expect("empty")
            .entries()
            .is_empty()
    );
}

#[test]
fn serials_are_matched_as_encoded() {
    let negative = parse_crl(&read("crl.negative.serial.der")).expect("negative serial CRL");
    assert!(negative.find(&[0xfd, 0x78, 0xa8, 0x4e]).is_some());
    let topbit = parse_crl(&read("crl.topbit.serial.der")).expect("top-bit serial CRL");
    assert!(topbit.find(&[0x00, 0x80, 0xfe, 0xed, 0xf0, 0x0d]).is_some());
    assert!(topbit.find(&[0x80, 0xfe, 0xed, 0xf0, 0x0d]).is_none());
}

#[test]
fn invalidity_date_is_kept() {
    let crl = parse_crl(&read("crl.entry.invalidity.date.der")).expect("parses");
    assert!(crl.entries().iter().any(|e| e.invalidity_date.is_some()));
}

#[test]
fn rejected_cases() {
    type Expect = fn(&CrlError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("crl.mismatched.sigalg.der", |e| {
            matches!(e, CrlError::SignatureAlgorithmMismatch)
        }),
        ("crl.invalid.this.update.time.der", |e| {
            matches!(e, CrlError::Malformed(_))
        }),
        ("crl.missing.next.update.der", |e| {
            matches!(e, CrlError::MissingNextUpdate)
        }),
        ("crl.wrong.version.der", |e| {
            matches!(e, CrlError::UnsupportedVersion | CrlError::Malformed(_))
        }),
        ("crl.missing.exts.der", |e| {
            matches!(e, CrlError::MissingExtensions | CrlError::Malformed(_))
        }),
        ("crl.delta.der", |e| matches!(e, CrlError::DeltaCrl)),
        ("crl.unknown.crit.ext.der", |e| {
            matches!(e, CrlError::UnknownCriticalExtension(_))
        }),
        ("crl.entry.unknown.crit.ext.der", |e| {
            matches!(e, CrlError::UnknownCriticalExtension(_))
        }),
        ("crl.negative.crl.number.der", |e| {
            matches!(e, CrlError::InvalidCrlNumber)
        }),
        ("crl.too.long.crl.number.der", |e| {
            matches!(e, CrlError::InvalidCrlNumber)
        }),
        ("crl.entry.invalid.reason.der", |e| {
            matches!(e, CrlError::MalformedExtension(_))
        }),
        ("crl.entry.issuer.ext.der", |e| {
            matches!(e, CrlError::IndirectCrl)
        }),
        ("crl.idp.invalid.bool.der", |e| {
            matches!(e, CrlError::MalformedExtension(_) | CrlError::Malformed(_))
        }),
        ("crl.idp.unknown.tag.der", |e| {
            matches!(e, CrlError::MalformedExtension(_) | CrlError::Malformed(_))
        }),
    ];
    for (name, expected) in cases {
        match parse_crl(&read(name)) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e:?}"),
        }
    }
}

#[test]
fn issuing_distribution_point_variants_parse() {
    for name in [
        "crl.idp.valid.der",
        "crl.idp.only_user_certs.der",
        "crl.idp.only_ca_certs.der",
        "crl.idp.only_some_reasons.der",
        "crl.idp.only_attribute_certs.der",
        "crl.idp.indirect_crl.der",
        "crl.idp.name_relative_to_issuer.der",
        "crl.idp.no_distribution_point_name.der",
        "crl.idp.explicit.false.bool.der",
    ] {
        let crl = parse_crl(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            crl.issuing_distribution_point().is_some(),
            "{name}: IDP kept"
        );
    }
    // Our one divergence from webpki: its IDP distribution point name uses an undefined CHOICE
    // tag ([8] inside DistributionPointName). webpki parses names lazily and accepts the CRL; we
    // decode the IDP fully and refuse malformed DER.
    assert!(matches!(
        parse_crl(&read("crl.idp.invalid.name.der")),
        Err(CrlError::MalformedExtension(_))
    ));
    let ca_only = parse_crl(&read("crl.idp.only_ca_certs.der")).expect("parses");
    assert!(
        ca_only
            .issuing_distribution_point()
            .is_some_and(|idp| idp.only_contains_ca_certs)
    );
}

#[test]
fn garbage_and_truncations_are_errors() {
    let valid = read("crl.valid.der");
    for len in 0..valid.len() {
        assert!(
            parse_crl(&valid[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    assert!(parse_crl(&[0xff; 64]).is_err());
}
