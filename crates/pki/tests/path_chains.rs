//! `confianza_pki::path` on chains generated with x509-cert's builder: both key types, the
//! named limits at N and N + 1, name checks and CRL revocation.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use confianza_pki::path::limits::{MAX_CHAIN_DEPTH, MAX_SIGNATURE_CHECKS};
use confianza_pki::path::{
    CrlError, CrlReason, CrlSet, ExpectedName, ParsedCertificate, ParsedCrl, PathError,
    PathOptions, RevocationError, UnknownStatus, validate,
};

mod support {
    pub mod path_chain;
}
use support::path_chain::{Alg, Key, NOW, chain, crl, issue, issue_with_ski};

fn parse(ders: &[Vec<u8>]) -> Vec<ParsedCertificate> {
    ders.iter()
        .map(|d| ParsedCertificate::from_der(d).unwrap())
        .collect()
}

fn run(certs: &[ParsedCertificate], options: &PathOptions<'_>) -> Result<usize, PathError> {
    let (leaf, rest) = certs.split_first().unwrap();
    let (root, intermediates) = rest.split_last().unwrap();
    let anchors = std::slice::from_ref(root);
    validate(
        leaf,
        intermediates,
        anchors,
        Duration::from_secs(NOW),
        options,
    )
    .map(|p| p.chain().len())
}

#[test]
fn generated_chains_validate() {
    for alg in [Alg::Ed25519, Alg::P256] {
        let certs = parse(&chain(alg, 1));
        let options = PathOptions {
            expected_names: vec![ExpectedName::Dns("alice.example.org".into())],
            required_ekus: vec![confianza_pki::path::EKU_CLIENT_AUTH],
            ..PathOptions::default()
        };
        assert_eq!(run(&certs, &options), Ok(3), "{alg:?}");
        let wrong = PathOptions {
            expected_names: vec![ExpectedName::Dns("bob.example.org".into())],
            ..PathOptions::default()
        };
        assert_eq!(run(&certs, &wrong), Err(PathError::NameMismatch), "{alg:?}");
    }
}

#[test]
fn chain_depth_limit_at_n_and_n_plus_one() {
    let at_limit = parse(&chain(Alg::Ed25519, MAX_CHAIN_DEPTH));
    assert_eq!(
        run(&at_limit, &PathOptions::default()),
        Ok(MAX_CHAIN_DEPTH + 2)
    );
    let over = parse(&chain(Alg::Ed25519, MAX_CHAIN_DEPTH + 1));
    assert_eq!(
        run(&over, &PathOptions::default()),
        Err(PathError::PathTooLong)
    );
    // A caller's smaller limit, at N and N + 1.
    let two = parse(&chain(Alg::Ed25519, 2));
    let options = |n| PathOptions {
        max_chain_depth: n,
        ..PathOptions::default()
    };
    assert_eq!(run(&two, &options(2)), Ok(4));
    assert_eq!(run(&two, &options(1)), Err(PathError::PathTooLong));
}

/// `decoys` issuers share the real intermediate's name and key identifier but not its key:
/// each costs one failed signature check before the real one is found.
fn decoy_chain(
    decoys: usize,
) -> (
    Vec<ParsedCertificate>,
    Vec<ParsedCertificate>,
    ParsedCertificate,
) {
    let root_key = Key::new(Alg::Ed25519, 1);
    let root = issue(
        &root_key,
        "CN=Root",
        "CN=Root",
        root_key.spki(),
        true,
        None,
        1,
    );
    let ica_key = Key::new(Alg::Ed25519, 2);
    let ica = issue(
        &root_key,
        "CN=Root",
        "CN=ICA",
        ica_key.spki(),
        true,
        None,
        2,
    );
    let ica_ski = ParsedCertificate::from_der(&ica)
        .unwrap()
        .subject_key_id()
        .unwrap()
        .to_vec();
    let mut intermediates = Vec::new();
    for i in 0..decoys {
        let key = Key::new(Alg::Ed25519, u8::try_from(10 + i).unwrap());
        let serial = 100 + u32::try_from(i).unwrap();
        intermediates.push(issue_with_ski(
            &root_key,
            "CN=Root",
            "CN=ICA",
            key.spki(),
            true,
            None,
            serial,
            Some(&ica_ski),
        ));
    }
    intermediates.push(ica);
    let leaf_key = Key::new(Alg::Ed25519, 250);
    let leaf = issue(
        &ica_key,
        "CN=ICA",
        "CN=leaf",
        leaf_key.spki(),
        false,
        Some("leaf.example.org"),
        9,
    );
    (
        vec![ParsedCertificate::from_der(&leaf).unwrap()],
        parse(&intermediates),
        ParsedCertificate::from_der(&root).unwrap(),
    )
}

#[test]
fn signature_check_limit_at_n_and_n_plus_one() {
    // The real path needs 2 checks (leaf by ICA, ICA by root) after the decoys.
    let (leaf, intermediates, root) = decoy_chain(MAX_SIGNATURE_CHECKS - 2);
    let anchors = [root];
    let now = Duration::from_secs(NOW);
    assert!(
        validate(
            &leaf[0],
            &intermediates,
            &anchors,
            now,
            &PathOptions::default()
        )
        .is_ok()
    );
    let (leaf, intermediates, root) = decoy_chain(MAX_SIGNATURE_CHECKS - 1);
    let anchors = [root];
    assert_eq!(
        validate(
            &leaf[0],
            &intermediates,
            &anchors,
            now,
            &PathOptions::default()
        )
        .err(),
        Some(PathError::WorkLimitExceeded)
    );
}

#[test]
fn crl_revocation() {
    let root_key = Key::new(Alg::P256, 1);
    let certs = chain(Alg::P256, 0);
    let parsed = parse(&certs);
    let root_der = &certs[1];
    let leaf_serial = 1000;

    let check = |crl_der: Vec<u8>, unknown: UnknownStatus| {
        let set = CrlSet::new(vec![ParsedCrl::from_der(&crl_der).unwrap()]);
        let mut options = PathOptions::default();
        options.revocation.sources.push(&set);
        options.revocation.unknown = unknown;
        run(&parsed, &options)
    };
    let fresh = (NOW - 3600, NOW + 3600);
    assert_eq!(
        check(
            crl(&root_key, root_der, &[leaf_serial], fresh.0, fresh.1),
            UnknownStatus::Deny
        ),
        Err(PathError::Revoked {
            depth: 0,
            reason: Some(CrlReason::KeyCompromise)
        })
    );
    assert_eq!(
        check(
            crl(&root_key, root_der, &[5, 6], fresh.0, fresh.1),
            UnknownStatus::Deny
        ),
        Ok(2)
    );
    assert_eq!(
        check(
            crl(&root_key, root_der, &[5], NOW - 7200, NOW - 1),
            UnknownStatus::Allow
        ),
        Err(PathError::Revocation {
            depth: 0,
            error: RevocationError::Crl(CrlError::Expired)
        })
    );
    // Signed by another key under the same name: refused, not ignored.
    let other = Key::new(Alg::P256, 77);
    assert!(matches!(
        check(
            crl(&other, root_der, &[], fresh.0, fresh.1),
            UnknownStatus::Allow
        ),
        Err(PathError::Revocation {
            depth: 0,
            error: RevocationError::Crl(CrlError::BadSignature(_))
        })
    ));
    // No CRL for the issuer: allowed or denied by policy.
    let empty = CrlSet::default();
    let mut options = PathOptions::default();
    options.revocation.sources.push(&empty);
    options.revocation.unknown = UnknownStatus::Deny;
    assert_eq!(
        run(&parsed, &options),
        Err(PathError::RevocationStatusUnknown(0))
    );
    options.revocation.unknown = UnknownStatus::Allow;
    assert_eq!(run(&parsed, &options), Ok(2));
}

mod bit_flips {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any single bit flipped anywhere in the end entity either fails to parse or fails to
        /// validate (DER has one encoding per value, and everything else is signed); never a
        /// panic, never a valid path.
        #[test]
        fn flipped_end_entity_never_validates(index in any::<prop::sample::Index>(), bit in 0u8..8) {
            let ders = chain(Alg::Ed25519, 1);
            let mut leaf = ders[0].clone();
            let at = index.index(leaf.len());
            leaf[at] ^= 1 << bit;
            if let Ok(parsed) = ParsedCertificate::from_der(&leaf) {
                let others = parse(&ders[1..]);
                let (root, intermediates) = others.split_last().unwrap();
                let anchors = std::slice::from_ref(root);
                prop_assert!(validate(&parsed, intermediates, anchors, Duration::from_secs(NOW), &PathOptions::default()).is_err());
            }
        }

        /// Arbitrary bytes never panic the parsers.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ParsedCertificate::from_der(&bytes);
            let _ = ParsedCrl::from_der(&bytes);
        }
    }
}
