//! Revocation in path validation with artefacts made by this crate's own CA: stapled OCSP
//! responses from its responder (delegated signer and CA key), CRLs from its CRL writer, and
//! the RFC 5280 §6.3.3 distribution-point match between them.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole};
use confianza_pki::crl::{CrlParams, RevocationReason, RevokedEntry, build_crl};
use confianza_pki::csr;
use confianza_pki::ocsp::{
    self, BasicResponseBuilder, CertIdHash, CertStatusSource, CheckError, RequestBuilder,
    Responder, SingleStatus, Status, StatusUnavailable, responder_key_hash,
};
use confianza_pki::path::limits::MAX_STAPLED_RESPONSES;
use confianza_pki::path::{
    CrlReason, CrlSet, ParsedCertificate, ParsedCrl, PathError, PathOptions, RevocationError,
    RevocationOptions, RevocationScope, RevocationSource, StapledOcsp, UnknownStatus, validate,
};
use confianza_pki::profile::CertificateKind;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::serial_number::SerialNumber;

mod common;
use common::{Hierarchy, TestRng, hierarchy, issue_identity, now, operator_approval, rng, urls};

/// How long the responder's answers are valid (`nextUpdate - thisUpdate`).
const OCSP_VALIDITY: Duration = Duration::from_secs(3600);
/// The checker's default clock skew.
const SKEW: Duration = Duration::from_secs(300);

fn intermediate_key() -> CaKey {
    common::ca_key(CaAlgorithm::Ed25519, &mut rng(2), None)
}

/// A CA hierarchy (Ed25519), Alice's identity certificate, a delegated OCSP signer and a TLS
/// client certificate (a key the CA never authorized to sign OCSP responses).
struct World {
    h: Hierarchy,
    alice: IssuedCertificate,
    bob: IssuedCertificate,
    signer: IssuedCertificate,
    signer_key: ed25519_dalek::SigningKey,
    not_a_signer: IssuedCertificate,
    not_a_signer_key: ed25519_dalek::SigningKey,
}

fn csr_der(cn: &str, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, RequestBuilder as CsrBuilder};
    let subject = x509_cert::name::Name::from_str(&format!("CN={cn}")).unwrap();
    let builder = CsrBuilder::new(subject).unwrap();
    builder
        .build::<_, ed25519_dalek::Signature>(key)
        .unwrap()
        .to_der()
        .unwrap()
}

fn issue_kind(
    h: &Hierarchy,
    kind: CertificateKind,
    cn: &str,
    key: &ed25519_dalek::SigningKey,
    rng: &mut TestRng,
) -> IssuedCertificate {
    let template = csr::parse_csr(&csr_der(cn, key))
        .unwrap()
        .into_template(kind)
        .unwrap();
    h.intermediate
        .issue(operator_approval(template), now(), rng)
        .unwrap()
}

fn world() -> World {
    let mut r = rng(1);
    let root_key = common::ca_key(CaAlgorithm::Ed25519, &mut rng(1), None);
    let h = hierarchy(root_key, intermediate_key(), &mut r);
    let alice = issue_identity(&h, "alice@example.org", &mut r);
    let bob = issue_identity(&h, "bob@example.org", &mut r);
    let signer_key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let signer = issue_kind(&h, CertificateKind::OcspSigner, "ocsp", &signer_key, &mut r);
    let not_a_signer_key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let not_a_signer = issue_kind(
        &h,
        CertificateKind::TlsClient,
        "client.example.org",
        &not_a_signer_key,
        &mut r,
    );
    World {
        h,
        alice,
        bob,
        signer,
        signer_key,
        not_a_signer,
        not_a_signer_key,
    }
}

/// The CA database as the responder sees it: one status for every serial.
struct Database(Status);

impl CertStatusSource for Database {
    fn status(&self, _: &[u8], _: &SerialNumber) -> Result<Status, StatusUnavailable> {
        Ok(self.0)
    }
}

fn cert(der: &[u8]) -> Certificate {
    Certificate::from_der(der).unwrap()
}

fn ed25519_alg() -> spki::AlgorithmIdentifierOwned {
    spki::AlgorithmIdentifierOwned {
        oid: const_oid::ObjectIdentifier::new_unwrap("1.3.101.112"),
        parameters: None,
    }
}

fn ed25519_sign(
    key: &ed25519_dalek::SigningKey,
) -> impl FnMut(&[u8]) -> Result<Vec<u8>, std::convert::Infallible> + '_ {
    use ed25519_dalek::Signer as _;
    move |msg| Ok(key.sign(msg).to_bytes().to_vec())
}

/// The responder's answer about `subject` (issued by `issuer`), produced at `at`.
fn staple_from(
    responder: &Responder,
    issuer: &Certificate,
    subject: &IssuedCertificate,
    status: Status,
    at: SystemTime,
    sign: impl FnMut(&[u8]) -> Result<Vec<u8>, std::convert::Infallible>,
) -> Vec<u8> {
    let request = RequestBuilder::new()
        .certificate(
            issuer,
            &subject.serial.to_serial_number().unwrap(),
            CertIdHash::Sha1,
        )
        .unwrap()
        .to_der()
        .unwrap();
    let answer = responder.respond(&request, at, &Database(status), sign);
    assert_eq!(answer.status, ocsp::OcspResponseStatus::Successful);
    answer.der
}

/// A staple about `subject` from the intermediate's delegated OCSP signer.
fn delegated_staple(
    w: &World,
    subject: &IssuedCertificate,
    status: Status,
    at: SystemTime,
) -> Vec<u8> {
    let issuer = cert(w.h.intermediate.certificate_der());
    let responder = Responder::new(
        &issuer,
        Some(&cert(&w.signer.der)),
        ed25519_alg(),
        OCSP_VALIDITY,
    )
    .unwrap();
    staple_from(
        &responder,
        &issuer,
        subject,
        status,
        at,
        ed25519_sign(&w.signer_key),
    )
}

/// A staple about the intermediate signed by the root CA key itself.
fn root_staple(w: &World, status: Status, at: SystemTime) -> Vec<u8> {
    let root = cert(w.h.root.certificate_der());
    let intermediate = cert(w.h.intermediate.certificate_der());
    let responder = Responder::new(
        &root,
        None,
        w.h.root.key().signature_algorithm(),
        OCSP_VALIDITY,
    )
    .unwrap();
    let request = RequestBuilder::new()
        .certificate(
            &root,
            intermediate.tbs_certificate().serial_number(),
            CertIdHash::Sha256,
        )
        .unwrap()
        .to_der()
        .unwrap();
    let key = w.h.root.key();
    let answer = responder.respond(&request, at, &Database(status), |m: &[u8]| key.sign(m));
    assert_eq!(answer.status, ocsp::OcspResponseStatus::Successful);
    answer.der
}

/// A response about `subject` signed by `signer` (which the responder would refuse to use),
/// carrying `signer` as the responder certificate.
fn staple_signed_by(
    w: &World,
    subject: &IssuedCertificate,
    signer: &IssuedCertificate,
    signer_key: &ed25519_dalek::SigningKey,
) -> Vec<u8> {
    let issuer = cert(w.h.intermediate.certificate_der());
    let signer_cert = cert(&signer.der);
    let id = ocsp::asn1::ResponderId::ByKey(
        der::asn1::OctetString::new(responder_key_hash(
            signer_cert.tbs_certificate().subject_public_key_info(),
        ))
        .unwrap(),
    );
    BasicResponseBuilder::new(id, now())
        .single(SingleStatus {
            cert_id: ocsp::cert_id(
                &issuer,
                &subject.serial.to_serial_number().unwrap(),
                CertIdHash::Sha1,
            )
            .unwrap(),
            status: Status::Good,
            this_update: now(),
            next_update: Some(now() + OCSP_VALIDITY),
        })
        .certs(vec![signer_cert])
        .sign(ed25519_alg(), ed25519_sign(signer_key))
        .unwrap()
}

struct Parsed {
    leaf: ParsedCertificate,
    intermediates: Vec<ParsedCertificate>,
    anchors: Vec<ParsedCertificate>,
}

fn parsed(w: &World, leaf: &IssuedCertificate) -> Parsed {
    Parsed {
        leaf: ParsedCertificate::from_der(&leaf.der).unwrap(),
        intermediates: vec![
            ParsedCertificate::from_der(w.h.intermediate.certificate_der()).unwrap(),
        ],
        anchors: vec![ParsedCertificate::from_der(w.h.root.certificate_der()).unwrap()],
    }
}

fn secs(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap()
}

/// Validates `p` at `at` with `sources`, revocation required for the scope.
fn validate_with(
    p: &Parsed,
    at: SystemTime,
    sources: Vec<&dyn RevocationSource>,
    scope: RevocationScope,
    unknown: UnknownStatus,
) -> Result<usize, PathError> {
    let options = PathOptions {
        revocation: RevocationOptions {
            sources,
            scope,
            unknown,
        },
        ..PathOptions::default()
    };
    validate(&p.leaf, &p.intermediates, &p.anchors, secs(at), &options).map(|v| v.chain().len())
}

fn required(
    p: &Parsed,
    at: SystemTime,
    sources: Vec<&dyn RevocationSource>,
) -> Result<usize, PathError> {
    validate_with(
        p,
        at,
        sources,
        RevocationScope::EndEntity,
        UnknownStatus::Deny,
    )
}

fn stapled(ders: &[&[u8]]) -> StapledOcsp {
    StapledOcsp::from_der(ders.iter().copied()).unwrap()
}

fn ocsp_error(depth: usize, error: CheckError) -> PathError {
    PathError::Revocation {
        depth,
        error: RevocationError::Ocsp(error),
    }
}

#[test]
fn good_staples_for_the_whole_chain_validate() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let leaf = delegated_staple(&w, &w.alice, Status::Good, now());
    let intermediate = root_staple(&w, Status::Good, now());
    let source = stapled(&[&leaf, &intermediate]);
    assert_eq!(
        validate_with(
            &p,
            now(),
            vec![&source],
            RevocationScope::Chain,
            UnknownStatus::Deny
        ),
        Ok(3)
    );
    // Without the intermediate's staple, the chain scope has no answer for depth 1.
    let leaf_only = stapled(&[&leaf]);
    assert_eq!(
        validate_with(
            &p,
            now(),
            vec![&leaf_only],
            RevocationScope::Chain,
            UnknownStatus::Deny
        ),
        Err(PathError::RevocationStatusUnknown(1))
    );
    assert_eq!(required(&p, now(), vec![&leaf_only]), Ok(3));
}

#[test]
fn revoked_staples_refuse_with_the_reason() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let revoked = Status::Revoked {
        time: now() - Duration::from_secs(60),
        reason: Some(CrlReason::KeyCompromise),
    };
    let source = stapled(&[&delegated_staple(&w, &w.alice, revoked, now())]);
    let error = required(&p, now(), vec![&source]).unwrap_err();
    assert_eq!(
        error,
        PathError::Revoked {
            depth: 0,
            reason: Some(CrlReason::KeyCompromise)
        }
    );
    assert!(error.to_string().contains("keyCompromise"), "{error}");
    // A revoked intermediate, signed by the root key itself.
    let intermediate = root_staple(
        &w,
        Status::Revoked {
            time: now(),
            reason: Some(CrlReason::CaCompromise),
        },
        now(),
    );
    let good_leaf = delegated_staple(&w, &w.alice, Status::Good, now());
    let source = stapled(&[&good_leaf, &intermediate]);
    assert_eq!(
        validate_with(
            &p,
            now(),
            vec![&source],
            RevocationScope::Chain,
            UnknownStatus::Deny
        ),
        Err(PathError::Revoked {
            depth: 1,
            reason: Some(CrlReason::CaCompromise)
        })
    );
}

#[test]
fn stale_and_future_staples_are_refused_at_the_window_edges() {
    let w = world();
    let p = parsed(&w, &w.alice);
    // Produced an hour after the certificates were issued, so the certificates themselves
    // are valid across the whole window tested.
    let produced = now() + Duration::from_secs(3600);
    let source = stapled(&[&delegated_staple(&w, &w.alice, Status::Good, produced)]);
    // nextUpdate + skew is the last second accepted.
    let last = produced + OCSP_VALIDITY + SKEW;
    assert_eq!(required(&p, last, vec![&source]), Ok(3));
    assert_eq!(
        required(&p, last + Duration::from_secs(1), vec![&source]),
        Err(ocsp_error(0, CheckError::Stale))
    );
    // thisUpdate - skew is the first second accepted.
    let first = produced - SKEW;
    assert_eq!(required(&p, first, vec![&source]), Ok(3));
    assert_eq!(
        required(&p, first - Duration::from_secs(1), vec![&source]),
        Err(ocsp_error(0, CheckError::NotYetValid))
    );
    // A caller's tighter skew.
    let strict = stapled(&[&delegated_staple(&w, &w.alice, Status::Good, produced)])
        .with_clock_skew(Duration::ZERO);
    assert_eq!(
        required(
            &p,
            produced + OCSP_VALIDITY + Duration::from_secs(1),
            vec![&strict]
        ),
        Err(ocsp_error(0, CheckError::Stale))
    );
}

#[test]
fn responders_the_issuer_did_not_authorize_are_refused() {
    let w = world();
    let p = parsed(&w, &w.alice);
    // A certificate of the right CA, but without id-kp-OCSPSigning.
    let source = stapled(&[&staple_signed_by(
        &w,
        &w.alice,
        &w.not_a_signer,
        &w.not_a_signer_key,
    )]);
    assert!(matches!(
        required(&p, now(), vec![&source]),
        Err(PathError::Revocation {
            depth: 0,
            error: RevocationError::Ocsp(CheckError::UnauthorizedResponder(_))
        })
    ));
    // A real OCSP signer of this CA, but the response was signed by another key.
    let impostor_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let forged = staple_signed_by(&w, &w.alice, &w.signer, &impostor_key);
    assert!(matches!(
        required(&p, now(), vec![&stapled(&[&forged])]),
        Err(PathError::Revocation {
            depth: 0,
            error: RevocationError::Ocsp(CheckError::BadSignature(_))
        })
    ));
    // The root's responder speaking about a leaf of the intermediate: its CertID names the
    // root as issuer, so it is not a response about Alice's certificate at all.
    let root = cert(w.h.root.certificate_der());
    let responder = Responder::new(
        &root,
        None,
        w.h.root.key().signature_algorithm(),
        OCSP_VALIDITY,
    )
    .unwrap();
    let key = w.h.root.key();
    let wrong_issuer = staple_from(
        &responder,
        &root,
        &w.alice,
        Status::Good,
        now(),
        |m: &[u8]| Ok::<_, std::convert::Infallible>(key.sign(m).unwrap()),
    );
    assert_eq!(
        required(&p, now(), vec![&stapled(&[&wrong_issuer])]),
        Err(PathError::RevocationStatusUnknown(0))
    );
}

#[test]
fn a_staple_for_another_certificate_is_not_revocation_information() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let bobs = stapled(&[&delegated_staple(&w, &w.bob, Status::Good, now())]);
    assert_eq!(
        required(&p, now(), vec![&bobs]),
        Err(PathError::RevocationStatusUnknown(0))
    );
    // Soft-fail policy: no information is accepted.
    assert_eq!(
        validate_with(
            &p,
            now(),
            vec![&bobs],
            RevocationScope::EndEntity,
            UnknownStatus::Allow
        ),
        Ok(3)
    );
    // Revocation required and no source at all.
    assert_eq!(
        required(&p, now(), vec![]),
        Err(PathError::RevocationStatusUnknown(0))
    );
    // The responder's "unknown" is no information either.
    let unknown = stapled(&[&delegated_staple(&w, &w.alice, Status::Unknown, now())]);
    assert_eq!(
        required(&p, now(), vec![&unknown]),
        Err(PathError::RevocationStatusUnknown(0))
    );
}

#[test]
fn malformed_and_unsuccessful_staples_do_not_parse() {
    let w = world();
    let mut der = delegated_staple(&w, &w.alice, Status::Good, now());
    assert!(StapledOcsp::from_der([&der[..der.len() - 1]]).is_err());
    assert!(matches!(
        StapledOcsp::from_der([&ocsp::error_response(ocsp::OcspResponseStatus::TryLater)[..]]),
        Err(CheckError::Unsuccessful(ocsp::OcspResponseStatus::TryLater))
    ));
    // A flipped bit at the very end, in the CA's signature on the delegated signer's
    // certificate: it parses and names Alice, but the signer is no longer the CA's.
    let last = der.len() - 1;
    der[last] ^= 1;
    let p = parsed(&w, &w.alice);
    assert!(matches!(
        required(&p, now(), vec![&stapled(&[&der])]),
        Err(PathError::Revocation {
            depth: 0,
            error: RevocationError::Ocsp(CheckError::UnauthorizedResponder(_))
        })
    ));
}

#[test]
fn stapled_response_limit_at_n_and_n_plus_one() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let decoy = delegated_staple(&w, &w.bob, Status::Good, now());
    let alices = delegated_staple(&w, &w.alice, Status::Good, now());
    let with_alice_at = |position: usize| {
        let mut ders: Vec<&[u8]> = vec![&decoy; position - 1];
        ders.push(&alices);
        StapledOcsp::from_der(ders).unwrap()
    };
    assert_eq!(
        required(&p, now(), vec![&with_alice_at(MAX_STAPLED_RESPONSES)]),
        Ok(3)
    );
    assert_eq!(
        required(&p, now(), vec![&with_alice_at(MAX_STAPLED_RESPONSES + 1)]),
        Err(PathError::RevocationStatusUnknown(0))
    );
}

// ----- CRLs, and OCSP falling back to them -----

fn crl_of(issuer: &Issuer, revoked: &[(&IssuedCertificate, RevocationReason)]) -> ParsedCrl {
    let entries: Vec<RevokedEntry> = revoked
        .iter()
        .map(|(c, reason)| RevokedEntry {
            serial: c.serial,
            revoked_at: now() - Duration::from_secs(10),
            reason: *reason,
        })
        .collect();
    let der = build_crl(
        issuer,
        &CrlParams::new(1, now() - Duration::from_secs(60)),
        &entries,
    )
    .unwrap();
    ParsedCrl::from_der(&der).unwrap()
}

/// The same intermediate CA (same key and certificate) publishing under another CRL URL: its
/// CRLs are another partition.
fn intermediate_elsewhere(w: &World) -> Issuer {
    Issuer::from_certificate(
        intermediate_key(),
        w.h.intermediate.certificate_der(),
        IssuerRole::Intermediate,
        Some(urls("elsewhere")),
    )
    .unwrap()
}

#[test]
fn crls_are_used_only_for_the_certificates_of_their_distribution_point() {
    let w = world();
    let p = parsed(&w, &w.alice);
    // The CA's own CRL: its issuingDistributionPoint is the URL in Alice's cRLDistributionPoints.
    let good = CrlSet::new(vec![crl_of(&w.h.intermediate, &[])]);
    assert_eq!(required(&p, now(), vec![&good]), Ok(3));
    let revoked = CrlSet::new(vec![crl_of(
        &w.h.intermediate,
        &[(&w.alice, RevocationReason::KeyCompromise)],
    )]);
    assert_eq!(
        required(&p, now(), vec![&revoked]),
        Err(PathError::Revoked {
            depth: 0,
            reason: Some(CrlReason::KeyCompromise)
        })
    );
    // Another partition of the same issuer, even one listing Alice, does not speak for her.
    let elsewhere = intermediate_elsewhere(&w);
    let other_partition = CrlSet::new(vec![crl_of(
        &elsewhere,
        &[(&w.alice, RevocationReason::KeyCompromise)],
    )]);
    let crl = &other_partition.crls()[0];
    assert!(!crl.covers(&p.leaf).unwrap());
    assert!(w.h.intermediate.urls().is_some());
    assert_eq!(
        required(&p, now(), vec![&other_partition]),
        Err(PathError::RevocationStatusUnknown(0))
    );
    // Both partitions: the matching one answers.
    let both = CrlSet::new(vec![
        crl_of(&elsewhere, &[]),
        crl_of(
            &w.h.intermediate,
            &[(&w.alice, RevocationReason::Superseded)],
        ),
    ]);
    assert_eq!(
        required(&p, now(), vec![&both]),
        Err(PathError::Revoked {
            depth: 0,
            reason: Some(CrlReason::Superseded)
        })
    );
    // An intermediate's CRL says onlyContainsUserCerts: it does not speak for a CA
    // certificate, and the root's (onlyContainsCACerts) does not speak for a leaf.
    let intermediate_cert = &p.intermediates[0];
    assert!(
        !crl_of(&w.h.intermediate, &[])
            .covers(intermediate_cert)
            .unwrap()
    );
    assert!(!crl_of(&w.h.root, &[]).covers(&p.leaf).unwrap());
}

#[test]
fn ocsp_falls_back_to_crls_and_any_revocation_wins() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let stale = stapled(&[&delegated_staple(
        &w,
        &w.alice,
        Status::Good,
        now() - OCSP_VALIDITY - SKEW - Duration::from_secs(1),
    )]);
    // Stale staple alone: the specific error.
    assert_eq!(
        required(&p, now(), vec![&stale]),
        Err(ocsp_error(0, CheckError::Stale))
    );
    // Stale staple, then a fresh CRL that knows the certificate: the CRL answers.
    let good_crl = CrlSet::new(vec![crl_of(&w.h.intermediate, &[])]);
    assert_eq!(required(&p, now(), vec![&stale, &good_crl]), Ok(3));
    // A CRL of another partition does not rescue a stale staple.
    let other = CrlSet::new(vec![crl_of(&intermediate_elsewhere(&w), &[])]);
    assert_eq!(
        required(&p, now(), vec![&stale, &other]),
        Err(ocsp_error(0, CheckError::Stale))
    );
    // A good staple does not hide a revocation on the CRL, nor the reverse.
    let fresh = stapled(&[&delegated_staple(&w, &w.alice, Status::Good, now())]);
    let revoked_crl = CrlSet::new(vec![crl_of(
        &w.h.intermediate,
        &[(&w.alice, RevocationReason::AffiliationChanged)],
    )]);
    let expected = Err(PathError::Revoked {
        depth: 0,
        reason: Some(CrlReason::AffiliationChanged),
    });
    assert_eq!(required(&p, now(), vec![&fresh, &revoked_crl]), expected);
    assert_eq!(required(&p, now(), vec![&revoked_crl, &fresh]), expected);
}

/// The case the client runs: a contact's identity certificate, its stapled response and the
/// intermediate, against the pinned root only.
#[test]
fn contact_identity_with_a_stapled_response_against_a_pinned_root() {
    let w = world();
    let staple = delegated_staple(&w, &w.alice, Status::Good, now());
    let leaf = ParsedCertificate::from_der(&w.alice.der).unwrap();
    let intermediates = [ParsedCertificate::from_der(w.h.intermediate.certificate_der()).unwrap()];
    let pinned = [ParsedCertificate::from_der(w.h.root.certificate_der()).unwrap()];
    let ocsp = StapledOcsp::from_der([staple.as_slice()]).unwrap();
    let options = PathOptions {
        revocation: RevocationOptions {
            sources: vec![&ocsp],
            scope: RevocationScope::EndEntity,
            unknown: UnknownStatus::Deny,
        },
        ..PathOptions::default()
    };
    let path = validate(&leaf, &intermediates, &pinned, secs(now()), &options).unwrap();
    assert_eq!(path.leaf().der(), w.alice.der.as_slice());
    assert_eq!(path.anchor().der(), w.h.root.certificate_der());
}

/// Counts how often a source is asked, to check sources see each certificate in scope once.
struct Counting<'a>(&'a dyn RevocationSource, RefCell<usize>);

impl RevocationSource for Counting<'_> {
    fn status(
        &self,
        cert: &ParsedCertificate,
        issuer: &ParsedCertificate,
        key: &confianza_pki::verify::PublicKey,
        now: u64,
    ) -> Result<confianza_pki::path::RevocationStatus, RevocationError> {
        *self.1.borrow_mut() += 1;
        self.0.status(cert, issuer, key, now)
    }
}

#[test]
fn every_source_is_asked_once_per_certificate_in_scope() {
    let w = world();
    let p = parsed(&w, &w.alice);
    let leaf = delegated_staple(&w, &w.alice, Status::Good, now());
    let intermediate = root_staple(&w, Status::Good, now());
    let ocsp = stapled(&[&leaf, &intermediate]);
    let counting = Counting(&ocsp, RefCell::new(0));
    assert_eq!(
        validate_with(
            &p,
            now(),
            vec![&counting],
            RevocationScope::Chain,
            UnknownStatus::Deny
        ),
        Ok(3)
    );
    assert_eq!(*counting.1.borrow(), 2);
}

// ----- A critical cRLDistributionPoints extension -----

mod support {
    pub mod path_chain;
}

/// An end entity whose cRLDistributionPoints is marked critical (RFC 5280 says SHOULD NOT, but
/// allows it): the extension is understood, so the certificate validates, and CRLs apply.
#[test]
fn a_critical_crl_distribution_point_is_processed() {
    use std::str::FromStr;

    use const_oid::db::rfc5280 as oids;
    use der::asn1::{Ia5String, OctetString};
    use sha1::{Digest, Sha1};
    use spki::SubjectPublicKeyInfoRef;
    use support::path_chain::{Alg, Key, NOT_AFTER, NOT_BEFORE, NOW, crl, issue};
    use x509_cert::builder::profile::BuilderProfile;
    use x509_cert::builder::{Builder, CertificateBuilder};
    use x509_cert::ext::Extension;
    use x509_cert::ext::pkix::crl::dp::DistributionPoint;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, CrlDistributionPoints, KeyUsage, KeyUsages, SubjectAltName,
    };
    use x509_cert::name::Name;
    use x509_cert::time::{Time, Validity};

    struct Leaf;

    fn ext<T: Encode>(oid: const_oid::ObjectIdentifier, critical: bool, v: &T) -> Extension {
        Extension {
            extn_id: oid,
            critical,
            extn_value: OctetString::new(v.to_der().unwrap()).unwrap(),
        }
    }

    impl BuilderProfile for Leaf {
        fn get_issuer(&self, _: &Name) -> Name {
            Name::from_str("CN=DP Root").unwrap()
        }
        fn get_subject(&self) -> Name {
            Name::from_str("CN=dp leaf").unwrap()
        }
        fn build_extensions(
            &self,
            _spk: SubjectPublicKeyInfoRef<'_>,
            issuer_spk: SubjectPublicKeyInfoRef<'_>,
            _tbs: &x509_cert::certificate::TbsCertificate,
        ) -> x509_cert::builder::Result<Vec<Extension>> {
            let key_id =
                OctetString::new(Sha1::digest(issuer_spk.subject_public_key.raw_bytes()).to_vec())
                    .unwrap();
            let uri = GeneralName::UniformResourceIdentifier(
                Ia5String::new("http://pki.example.org/dp.crl").unwrap(),
            );
            Ok(vec![
                ext(
                    oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                    false,
                    &AuthorityKeyIdentifier {
                        key_identifier: Some(key_id),
                        authority_cert_issuer: None,
                        authority_cert_serial_number: None,
                    },
                ),
                ext(
                    oids::ID_CE_KEY_USAGE,
                    true,
                    &KeyUsage(KeyUsages::DigitalSignature.into()),
                ),
                ext(
                    oids::ID_CE_SUBJECT_ALT_NAME,
                    false,
                    &SubjectAltName(vec![GeneralName::DnsName(
                        Ia5String::new("dp.example.org").unwrap(),
                    )]),
                ),
                ext(
                    oids::ID_CE_CRL_DISTRIBUTION_POINTS,
                    true,
                    &CrlDistributionPoints(vec![DistributionPoint {
                        distribution_point: Some(DistributionPointName::FullName(vec![uri])),
                        reasons: None,
                        crl_issuer: None,
                    }]),
                ),
            ])
        }
    }

    let root_key = Key::new(Alg::Ed25519, 1);
    let root_der = issue(
        &root_key,
        "CN=DP Root",
        "CN=DP Root",
        root_key.spki(),
        true,
        None,
        1,
    );
    let leaf_key = Key::new(Alg::Ed25519, 50);
    let time = |s: u64| {
        Time::UtcTime(der::asn1::UtcTime::from_unix_duration(Duration::from_secs(s)).unwrap())
    };
    let builder = CertificateBuilder::new(
        Leaf,
        SerialNumber::from(77u32),
        Validity::new(time(NOT_BEFORE), time(NOT_AFTER)),
        leaf_key.spki(),
    )
    .unwrap();
    let Key::Ed25519(signing) = &root_key else {
        unreachable!("Ed25519 root")
    };
    let leaf_der = builder
        .build::<_, ed25519_dalek::Signature>(signing)
        .unwrap()
        .to_der()
        .unwrap();
    let leaf = ParsedCertificate::from_der(&leaf_der).unwrap();
    assert!(
        leaf.extensions()
            .crl_distribution_points
            .as_ref()
            .unwrap()
            .critical
    );
    let anchors = [ParsedCertificate::from_der(&root_der).unwrap()];
    let now = Duration::from_secs(NOW);
    assert!(validate(&leaf, &[], &anchors, now, &PathOptions::default()).is_ok());
    // A complete CRL of the root (no issuing distribution point) covers it.
    let revoking = CrlSet::new(vec![
        ParsedCrl::from_der(&crl(&root_key, &root_der, &[77], NOW - 60, NOW + 3600)).unwrap(),
    ]);
    let options = PathOptions {
        revocation: RevocationOptions {
            sources: vec![&revoking],
            scope: RevocationScope::EndEntity,
            unknown: UnknownStatus::Deny,
        },
        ..PathOptions::default()
    };
    assert_eq!(
        validate(&leaf, &[], &anchors, now, &options).map(|p| p.chain().len()),
        Err(PathError::Revoked {
            depth: 0,
            reason: Some(CrlReason::KeyCompromise)
        })
    );
}
