//! The Ed25519 chain from rustls-webpki (`vectors/x509/webpki/ed25519`) through
//! `confianza_pki::path`: valid at 1547363522 (webpki's own test), expired after
//! 2021-10-08T07:03:52Z, not yet valid before 2019-01-13T07:03:52Z (bounds inclusive), and bad
//! signatures when a signature or TBS byte is flipped.

use std::path::PathBuf;
use std::time::Duration;

use confianza_pki::path::{ParsedCertificate, PathError, PathOptions, validate};
use confianza_pki::verify::{SignatureAlgorithm, SignatureError};

const EE_NOT_BEFORE: u64 = 1_547_363_032; // 2019-01-13T07:03:52Z
const EE_NOT_AFTER: u64 = 1_633_676_632; // 2021-10-08T07:03:52Z
const WEBPKI_TIME: u64 = 1_547_363_522;

fn read(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("CONFIANZA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let path = dir.join("vectors/x509/webpki/ed25519").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn check(ee_der: &[u8], at: u64) -> Result<(), PathError> {
    let root = ParsedCertificate::from_der(&read("ca.der")).expect("root parses");
    let ee = ParsedCertificate::from_der(ee_der)?;
    validate(
        &ee,
        &[],
        &[root],
        Duration::from_secs(at),
        &PathOptions::default(),
    )
    .map(drop)
}

#[test]
fn valid_at_webpki_time() {
    let root_der = read("ca.der");
    let ee_der = read("ee.der");
    let anchors = [ParsedCertificate::from_der(&root_der).expect("root")];
    let ee = ParsedCertificate::from_der(&ee_der).expect("ee");
    let path = validate(
        &ee,
        &[],
        &anchors,
        Duration::from_secs(WEBPKI_TIME),
        &PathOptions::default(),
    )
    .expect("valid path");
    assert_eq!(path.leaf().der(), ee_der.as_slice());
    assert_eq!(path.anchor().der(), root_der.as_slice());
    assert!(path.intermediates().is_empty());
    assert_eq!(path.chain().len(), 2);
    assert_eq!(ee.signature_algorithm(), Ok(SignatureAlgorithm::Ed25519));
    // The end entity's key is the one shipped beside it (ee-pubkey.der, a raw 32-byte key).
    let pubkey = read("ee-pubkey.der");
    assert!(
        ee.subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .ends_with(&pubkey[pubkey.len() - 32..])
    );
}

#[test]
fn validity_bounds_are_inclusive() {
    let ee = read("ee.der");
    assert_eq!(check(&ee, EE_NOT_BEFORE), Ok(()));
    assert_eq!(check(&ee, EE_NOT_AFTER), Ok(()));
    assert_eq!(
        check(&ee, EE_NOT_BEFORE - 1),
        Err(PathError::NotYetValid(0))
    );
    assert_eq!(check(&ee, EE_NOT_AFTER + 1), Err(PathError::Expired(0)));
    assert_eq!(check(&ee, 1_900_000_000), Err(PathError::Expired(0)));
    assert_eq!(check(&ee, 1_500_000_000), Err(PathError::NotYetValid(0)));
}

#[test]
fn flipped_signature_is_rejected() {
    let mut ee = read("ee.der");
    let last = ee.len() - 1;
    ee[last] ^= 0x01;
    assert_eq!(
        check(&ee, WEBPKI_TIME),
        Err(PathError::BadSignature {
            depth: 0,
            error: SignatureError::BadSignature
        })
    );
}

#[test]
fn flipped_tbs_is_rejected() {
    let mut ee = read("ee.der");
    let at = ee
        .windows(11)
        .position(|w| w == b"CLIENT TEST")
        .expect("subject CN in TBS");
    ee[at] = b'K';
    assert_eq!(
        check(&ee, WEBPKI_TIME),
        Err(PathError::BadSignature {
            depth: 0,
            error: SignatureError::BadSignature
        })
    );
}

#[test]
fn no_anchor_means_unknown_issuer() {
    let ee = ParsedCertificate::from_der(&read("ee.der")).expect("ee");
    assert_eq!(
        validate(
            &ee,
            &[],
            &[],
            Duration::from_secs(WEBPKI_TIME),
            &PathOptions::default()
        )
        .err(),
        Some(PathError::UnknownIssuer(0))
    );
    // The end entity is not a CA, so it cannot anchor a path to itself either.
    let as_anchor = ParsedCertificate::from_der(&read("ee.der")).expect("ee");
    assert!(
        validate(
            &ee,
            &[],
            &[as_anchor],
            Duration::from_secs(WEBPKI_TIME),
            &PathOptions::default()
        )
        .is_err()
    );
}
