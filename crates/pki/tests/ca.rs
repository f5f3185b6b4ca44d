//! The CA and RA end to end, in memory: officers and their scopes, enrollment codes, approval
//! policies, issuance records, renewal and re-key links, expiry reminders, revocation into a
//! CRL, and taking the root offline and back.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestRng, hierarchy, identity_request, now, operator_approval, rng, urls};
use confianza_pki::ca::{IssueError, IssuedCertificate, Issuer, IssuerRole};
use confianza_pki::crl::{CrlParams, RevocationReason, RevokedEntry, build_crl};
use confianza_pki::csr;
use confianza_pki::profile::{
    CertificateKind, CertificateTemplate, ID_CONFIANZA_PREVIOUS_CERTIFICATE, SubjectName,
};
use confianza_pki::ra::{
    Action, Actor, ApprovalPolicy, PendingRequest, RaError, RaOfficer, RaPolicy, RaScope, expiring,
    revoke_by_holder,
};
use confianza_pki::seal::{self, OpenError, SealParams};
use confianza_pki::serial::Serial;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use der::{Decode, Encode};
use proptest::prelude::*;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

const DAY: Duration = Duration::from_secs(86_400);

fn ed25519_hierarchy(rng: &mut TestRng) -> common::Hierarchy {
    let root = CaKey::generate(CaAlgorithm::Ed25519, rng).expect("root key");
    let int = CaKey::generate(CaAlgorithm::Ed25519, rng).expect("int key");
    hierarchy(root, int, rng)
}

/// An RA officer credential (from a real PKCS#10 request; that the officer holds the key is
/// for the server's transport to establish) for `address`, issued by `issuer`, as an
/// authenticated officer with `scope`.
fn officer(issuer: &Issuer, address: &str, scope: RaScope, rng: &mut TestRng) -> RaOfficer {
    let template = officer_csr_template(address);
    let cert = issuer
        .issue(operator_approval(template), now(), rng)
        .expect("officer credential");
    RaOfficer::from_credential(&cert.der, issuer.certificate_der(), now(), scope).expect("officer")
}

thread_local! {
    static OFFICER_KEY: ed25519_dalek::SigningKey = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
}

/// A real PKCS#10 request for an RA officer, signed with a fixed Ed25519 key.
fn officer_csr_template(address: &str) -> CertificateTemplate {
    csr::parse_csr(&officer_csr_der(address))
        .expect("csr verifies")
        .into_template(CertificateKind::RaOfficer)
        .expect("template")
}

/// The DER of that request.
fn officer_csr_der(address: &str) -> Vec<u8> {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let subject = x509_cert::name::Name::from_str(&format!("CN={address}")).expect("name");
    OFFICER_KEY.with(|key| {
        let mut builder = RequestBuilder::new(subject).expect("builder");
        builder
            .add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
                der::asn1::Ia5String::new(address).expect("ia5"),
            )]))
            .expect("san");
        let req = builder
            .build::<_, ed25519_dalek::Signature>(key)
            .expect("csr");
        req.to_der().expect("der")
    })
}

/// An officer who enrolls user identities for `domain`.
fn identity_officer(issuer: &Issuer, address: &str, domain: &str, rng: &mut TestRng) -> RaOfficer {
    officer(
        issuer,
        address,
        scope(&[CertificateKind::UserIdentity], &[domain]),
        rng,
    )
}

fn scope(kinds: &[CertificateKind], domains: &[&str]) -> RaScope {
    RaScope {
        kinds: kinds.to_vec(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
    }
}

fn address(a: &str) -> SubjectName {
    SubjectName::address(a).expect("address")
}

#[test]
fn enrollment_with_code_is_automatic_and_recorded() {
    let mut rng = rng(1);
    let h = ed25519_hierarchy(&mut rng);
    let alice_ra = identity_officer(&h.intermediate, "ra1@example.org", "example.org", &mut rng);
    let policy = RaPolicy::for_domains(&["example.org"]);
    let (code, mut stored) = alice_ra
        .create_enrollment_code(
            &address("alice@example.org"),
            CertificateKind::UserIdentity,
            7 * DAY,
            now(),
            &mut rng,
        )
        .expect("code");
    // Only the hash is stored.
    assert!(!format!("{stored:?}").contains(code.as_str()));

    let (_, verified) = identity_request("alice@example.org", &mut rng);
    let pending = PendingRequest::submit(
        1,
        verified.into_template().expect("template"),
        Actor::Requester,
        now(),
    );
    // Users type codes in lower case and without dashes.
    let typed = code.as_str().replace('-', "").to_lowercase();
    let redeemed = stored.redeem(&typed, now() + DAY).expect("redeem");
    let approved = pending
        .approve_with_code(redeemed, &policy, now() + DAY)
        .expect("automatic approval");
    let history = approved.history().to_vec();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].action, Action::Submitted);
    assert_eq!(history[1].action, Action::Approved);
    assert_eq!(
        history[1].by,
        Actor::EnrollmentCode {
            created_by: alice_ra.id().clone()
        }
    );
    let issued = h
        .intermediate
        .issue(approved, now() + DAY, &mut rng)
        .expect("issue");
    assert_eq!(issued.common_name.as_deref(), Some("alice@example.org"));
    assert_eq!(issued.not_after, issued.not_before + 365 * DAY);
    assert_eq!(
        issued.approval.by,
        Actor::EnrollmentCode {
            created_by: alice_ra.id().clone()
        }
    );

    // One-time: the second use fails.
    assert_eq!(
        stored.redeem(code.as_str(), now() + DAY).err(),
        Some(RaError::CodeAlreadyUsed)
    );
}

#[test]
fn enrollment_code_failures_are_typed() {
    let mut rng = rng(2);
    let h = ed25519_hierarchy(&mut rng);
    let ra = officer(
        &h.intermediate,
        "ra@example.org",
        scope(&[CertificateKind::UserIdentity], &[]),
        &mut rng,
    );
    let (code, stored) = ra
        .create_enrollment_code(
            &address("bob@example.org"),
            CertificateKind::UserIdentity,
            DAY,
            now(),
            &mut rng,
        )
        .expect("code");
    // Expired.
    let mut s = stored.clone();
    assert_eq!(
        s.redeem(code.as_str(), now() + DAY).err(),
        Some(RaError::CodeExpired)
    );
    // Wrong code.
    let mut s = stored.clone();
    assert_eq!(
        s.redeem("AAAA-AAAA-AAAA-AAAA-AAAA", now()).err(),
        Some(RaError::CodeMismatch)
    );
    // Too long (limit N+1) is refused before hashing; at N it is just a mismatch.
    let at_limit = "A".repeat(confianza_pki::limits::MAX_ENROLLMENT_CODE_LEN);
    assert_eq!(
        s.redeem(&at_limit, now()).err(),
        Some(RaError::CodeMismatch)
    );
    let over = "A".repeat(confianza_pki::limits::MAX_ENROLLMENT_CODE_LEN + 1);
    assert_eq!(s.redeem(&over, now()).err(), Some(RaError::CodeTooLong));
    // A code for bob does not approve mallory's request.
    let mut s = stored;
    let redeemed = s.redeem(code.as_str(), now()).expect("redeem");
    let (_, verified) = identity_request("mallory@example.org", &mut rng);
    let pending = PendingRequest::submit(
        2,
        verified.into_template().expect("t"),
        Actor::Requester,
        now(),
    );
    let refused = pending
        .approve_with_code(redeemed, &RaPolicy::for_domains(&["example.org"]), now())
        .expect_err("other subject");
    assert_eq!(refused.error, RaError::CodeForOtherSubject);
    // The request comes back, still pending.
    assert_eq!(refused.request.history().len(), 1);
}

#[test]
fn manual_policy_and_officer_scopes() {
    let mut rng = rng(3);
    let h = ed25519_hierarchy(&mut rng);
    let example_ra = identity_officer(&h.intermediate, "ra@example.org", "example.org", &mut rng);
    let other_ra = identity_officer(&h.intermediate, "ra@other.org", "other.org", &mut rng);
    // Identity requests for example.org need an officer under a manual policy.
    let mut policy = RaPolicy::default();
    policy.set(CertificateKind::UserIdentity, ApprovalPolicy::Manual);
    let (code, mut stored) = example_ra
        .create_enrollment_code(
            &address("carol@example.org"),
            CertificateKind::UserIdentity,
            DAY,
            now(),
            &mut rng,
        )
        .expect("code");
    let (_, verified) = identity_request("carol@example.org", &mut rng);
    let pending = PendingRequest::submit(
        3,
        verified.into_template().expect("t"),
        Actor::Requester,
        now(),
    );
    let redeemed = stored.redeem(code.as_str(), now()).expect("redeem");
    let refused = pending
        .approve_with_code(redeemed, &policy, now())
        .expect_err("manual policy");
    assert_eq!(
        refused.error,
        RaError::PolicyForbids(CertificateKind::UserIdentity)
    );
    let pending = *refused.request;

    // The wrong RA cannot approve it.
    let refused = other_ra
        .approve(pending, now(), None)
        .expect_err("wrong RA");
    assert_eq!(refused.error, RaError::NotAuthorised);
    // Nor create codes outside its domain.
    assert_eq!(
        other_ra
            .create_enrollment_code(
                &address("dave@example.org"),
                CertificateKind::UserIdentity,
                DAY,
                now(),
                &mut rng
            )
            .err(),
        Some(RaError::NotAuthorised)
    );
    // The right RA approves; the certificate records who.
    let approved = example_ra
        .approve(*refused.request, now(), Some("checked passport"))
        .expect("approve");
    assert_eq!(
        approved.history()[1].comment.as_deref(),
        Some("checked passport")
    );
    let issued = h
        .intermediate
        .issue(approved, now(), &mut rng)
        .expect("issue");
    assert_eq!(issued.approval.by, Actor::Officer(example_ra.id().clone()));

    // Rejection is final and recorded.
    let (_, verified) = identity_request("eve@example.org", &mut rng);
    let pending = PendingRequest::submit(
        4,
        verified.into_template().expect("t"),
        Actor::Requester,
        now(),
    );
    let rejected = example_ra
        .reject(pending, now(), Some("no identity document"))
        .expect("reject");
    assert_eq!(
        rejected.history.last().map(|e| e.action.clone()),
        Some(Action::Rejected)
    );
}

#[test]
fn credentials_from_another_ca_or_without_the_ra_purpose_are_refused() {
    let mut rng = rng(4);
    let h = ed25519_hierarchy(&mut rng);
    let other = ed25519_hierarchy(&mut rng);
    let template = officer_csr_template("ra@example.org");
    let foreign = other
        .intermediate
        .issue(operator_approval(template), now(), &mut rng)
        .expect("foreign credential");
    let s = scope(&[CertificateKind::UserIdentity], &[]);
    assert!(matches!(
        RaOfficer::from_credential(
            &foreign.der,
            h.intermediate.certificate_der(),
            now(),
            s.clone()
        ),
        Err(RaError::BadCredential(_))
    ));
    // A user identity certificate is not an RA credential.
    let user = common::issue_identity(&h, "user@example.org", &mut rng);
    assert!(matches!(
        RaOfficer::from_credential(
            &user.der,
            h.intermediate.certificate_der(),
            now(),
            s.clone()
        ),
        Err(RaError::BadCredential(_))
    ));
    // An expired credential.
    let template = officer_csr_template("ra@example.org");
    let cred = h
        .intermediate
        .issue(operator_approval(template), now(), &mut rng)
        .expect("credential");
    assert!(matches!(
        RaOfficer::from_credential(
            &cred.der,
            h.intermediate.certificate_der(),
            now() + 400 * DAY,
            s
        ),
        Err(RaError::BadCredential(_))
    ));
}

fn previous_link(cert: &IssuedCertificate) -> Option<Vec<u8>> {
    let c = Certificate::from_der(&cert.der).expect("parse");
    c.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == ID_CONFIANZA_PREVIOUS_CERTIFICATE)
        .map(|e| e.extn_value.as_bytes().to_vec())
}

#[test]
fn renewal_and_rekey_keep_the_subject_and_link_the_previous_serial() {
    let mut rng = rng(5);
    let h = ed25519_hierarchy(&mut rng);
    let first = common::issue_identity(&h, "frank@example.org", &mut rng);
    assert_eq!(previous_link(&first), None);

    // Renewal: same key and subject.
    let template = csr::renewal_template(&first).expect("renewal");
    let approved = PendingRequest::submit(5, template, Actor::Holder(first.serial), now())
        .approve_renewal(now() + 300 * DAY)
        .expect("approve");
    let renewed = h
        .intermediate
        .issue(approved, now() + 300 * DAY, &mut rng)
        .expect("issue");
    assert_eq!(renewed.previous, Some(first.serial));
    assert_eq!(renewed.names, first.names);
    let link = previous_link(&renewed).expect("link extension");
    assert_eq!(link[0], 0x02);
    assert_eq!(&link[2..], first.serial.as_bytes());
    let old = Certificate::from_der(&first.der).expect("parse");
    let new = Certificate::from_der(&renewed.der).expect("parse");
    assert_eq!(
        old.tbs_certificate().subject(),
        new.tbs_certificate().subject()
    );
    assert_eq!(
        old.tbs_certificate().subject_public_key_info(),
        new.tbs_certificate().subject_public_key_info()
    );

    // Re-key: new identity key, same address.
    let (_, verified) = identity_request("frank@example.org", &mut rng);
    let template = verified.into_rekey_template(&renewed).expect("rekey");
    let approved = PendingRequest::submit(6, template, Actor::Holder(renewed.serial), now())
        .approve_renewal(now() + 301 * DAY)
        .expect("approve");
    let rekeyed = h
        .intermediate
        .issue(approved, now() + 301 * DAY, &mut rng)
        .expect("issue");
    assert_eq!(rekeyed.previous, Some(renewed.serial));
    let new2 = Certificate::from_der(&rekeyed.der).expect("parse");
    assert_ne!(
        new.tbs_certificate().subject_public_key_info(),
        new2.tbs_certificate().subject_public_key_info()
    );
    // A re-key to another address is refused.
    let (_, other) = identity_request("grace@example.org", &mut rng);
    assert!(other.into_rekey_template(&renewed).is_err());
    // A non-renewal cannot use the renewal approval.
    let (_, v) = identity_request("henry@example.org", &mut rng);
    let refused = PendingRequest::submit(7, v.into_template().expect("t"), Actor::Requester, now())
        .approve_renewal(now())
        .expect_err("not a renewal");
    assert_eq!(refused.error, RaError::NotARenewal);
}

#[test]
fn expiring_selects_unrenewed_unrevoked_certificates_in_the_window() {
    let mut rng = rng(6);
    let h = ed25519_hierarchy(&mut rng);
    let a = common::issue_identity(&h, "a@example.org", &mut rng); // expires now + 365d
    let b = common::issue_identity(&h, "b@example.org", &mut rng);
    let c = common::issue_identity(&h, "c@example.org", &mut rng);
    let approved = PendingRequest::submit(
        8,
        csr::renewal_template(&c).expect("t"),
        Actor::Holder(c.serial),
        now(),
    )
    .approve_renewal(now() + 100 * DAY)
    .expect("approve");
    // The renewal itself expires 100 days later than the others, outside the window.
    let c2 = h
        .intermediate
        .issue(approved, now() + 100 * DAY, &mut rng)
        .expect("renewal");
    let issued = vec![a.clone(), b.clone(), c.clone(), c2];
    let revoked: HashSet<Serial> = [b.serial].into_iter().collect();
    let at = now() + 340 * DAY;
    let soon = expiring(&issued, &revoked, at, 30);
    let serials: Vec<Serial> = soon.iter().map(|c| c.serial).collect();
    assert_eq!(serials, vec![a.serial]);
    // Window boundaries: 24 days left is outside a 24-day window minus one, inside at 25.
    assert!(expiring(&issued, &revoked, at, 24).is_empty());
    assert_eq!(expiring(&issued, &revoked, at, 25).len(), 1);
    // Already expired certificates are not reminded.
    assert!(expiring(&issued, &revoked, now() + 366 * DAY, 30).is_empty());
}

#[test]
fn revocations_by_holder_and_officer_reach_the_crl() {
    let mut rng = rng(7);
    let h = ed25519_hierarchy(&mut rng);
    let ra = identity_officer(&h.intermediate, "ra@example.org", "example.org", &mut rng);
    let other_ra = identity_officer(&h.intermediate, "ra@other.org", "other.org", &mut rng);
    let a = common::issue_identity(&h, "ivan@example.org", &mut rng);
    let b = common::issue_identity(&h, "judy@example.org", &mut rng);
    let by_holder =
        revoke_by_holder(a.serial, RevocationReason::KeyCompromise, now()).expect("holder");
    assert_eq!(
        revoke_by_holder(a.serial, RevocationReason::CaCompromise, now()).err(),
        Some(RaError::ReasonNotAllowed(RevocationReason::CaCompromise))
    );
    assert_eq!(
        other_ra
            .revoke(&b, RevocationReason::PrivilegeWithdrawn, now())
            .err(),
        Some(RaError::NotAuthorised)
    );
    let by_officer = ra
        .revoke(&b, RevocationReason::PrivilegeWithdrawn, now())
        .expect("officer");
    assert_eq!(by_officer.by, Actor::Officer(ra.id().clone()));
    let crl = build_crl(
        &h.intermediate,
        &CrlParams::new(2, now()),
        &[by_holder.entry(), by_officer.entry()],
    )
    .expect("crl");
    let parsed = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl).expect("parse");
    let listed = parsed.tbs_cert_list.revoked_certificates.expect("entries");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].serial_number.as_bytes(), b.serial.as_bytes());
}

#[test]
fn root_goes_offline_and_comes_back_for_a_new_intermediate() {
    let mut rng = rng(8);
    let h = ed25519_hierarchy(&mut rng);
    let root_pkcs8 = h.root.key().to_pkcs8_der().expect("export");
    let sealed = seal::seal(
        b"ceremony passphrase",
        &root_pkcs8,
        SealParams::INSECURE_FOR_TESTS,
        &mut rng,
    )
    .expect("seal");
    drop(root_pkcs8);
    // Only the certificate stays online.
    let root_cert = h.root.into_certificate();
    assert!(matches!(
        seal::open(b"wrong", &sealed),
        Err(OpenError::WrongPassphraseOrCorrupt)
    ));
    let opened = seal::open(b"ceremony passphrase", &sealed).expect("open");
    let key = CaKey::from_pkcs8_der(opened.as_bytes()).expect("import");
    let root = Issuer::from_certificate(key, &root_cert, IssuerRole::Root, Some(urls("root")))
        .expect("root back");
    let new_int_key = CaKey::generate(CaAlgorithm::P256, &mut rng).expect("key");
    let template = csr::intermediate_template(new_int_key.public_key_info_der(), "Intermediate 2")
        .expect("template");
    let cert = root
        .issue(operator_approval(template), now(), &mut rng)
        .expect("new intermediate");
    let int2 = Issuer::from_certificate(
        new_int_key,
        &cert.der,
        IssuerRole::Intermediate,
        Some(urls("int2")),
    )
    .expect("load");
    let leaf = common::issue_identity(
        &common::Hierarchy {
            root,
            intermediate: int2,
        },
        "kim@example.org",
        &mut rng,
    );
    assert_eq!(leaf.kind, CertificateKind::UserIdentity);
}

#[test]
fn roles_are_enforced() {
    let mut rng = rng(9);
    let h = ed25519_hierarchy(&mut rng);
    // The root does not issue leaves; the intermediate does not issue CAs.
    let (_, verified) = identity_request("leo@example.org", &mut rng);
    let t = verified.into_template().expect("t");
    assert!(matches!(
        h.root.issue(operator_approval(t), now(), &mut rng),
        Err(IssueError::WrongIssuer { .. })
    ));
    let key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng).expect("key");
    let t = csr::intermediate_template(key.public_key_info_der(), "Sub").expect("t");
    assert!(matches!(
        h.intermediate.issue(operator_approval(t), now(), &mut rng),
        Err(IssueError::WrongIssuer { .. })
    ));
    // Leaves never outlive the intermediate.
    let (_, verified) = identity_request("mia@example.org", &mut rng);
    let t = verified.into_template().expect("t");
    let late = h.intermediate.not_after() - 10 * DAY;
    let cert = h
        .intermediate
        .issue(operator_approval(t), late, &mut rng)
        .expect("issue");
    assert_eq!(cert.not_after, h.intermediate.not_after());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn csr_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = csr::parse_csr(&bytes);
    }

    #[test]
    fn sealed_key_opener_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut b = bytes;
        if b.len() > 4 { b[..4].copy_from_slice(b"CZSK"); }
        // Bound the KDF cost fields so a random header cannot make this test slow.
        if b.len() > 18 { b[6..10].copy_from_slice(&8u32.to_be_bytes()); b[10..14].copy_from_slice(&1u32.to_be_bytes()); b[14..18].copy_from_slice(&1u32.to_be_bytes()); }
        prop_assert!(seal::open(b"pw", &b).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn crl_entries_round_trip(reasons in proptest::collection::vec(0u8..=10, 0..50), secs in 0u64..4_000_000_000) {
        let mut rng = rng(u64::from(reasons.len() as u32));
        let h = ed25519_hierarchy(&mut rng);
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let entries: Vec<RevokedEntry> = reasons
            .iter()
            .filter_map(|c| RevocationReason::from_code(*c))
            .map(|reason| RevokedEntry { serial: Serial::random(&mut rng), revoked_at: t, reason })
            .collect();
        let der = build_crl(&h.intermediate, &CrlParams::new(9, now()), &entries).expect("crl");
        let parsed = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("parse");
        let listed = parsed.tbs_cert_list.revoked_certificates.clone().unwrap_or_default();
        prop_assert_eq!(listed.len(), entries.len());
        for (l, e) in listed.iter().zip(&entries) {
            prop_assert_eq!(l.serial_number.as_bytes(), e.serial.as_bytes());
            prop_assert_eq!(l.revocation_date.to_system_time(), t);
            prop_assert_eq!(l.crl_entry_extensions.is_some(), e.reason != RevocationReason::Unspecified);
        }
        // Re-encoding the parsed CRL gives the same bytes: the fast writer emits canonical DER.
        prop_assert_eq!(parsed.to_der().expect("re-encode"), der);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-byte change to a valid request is refused (signature, structure or
    /// algorithm), and never panics.
    #[test]
    fn mutated_csr_is_refused(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let der = officer_csr_der("ra@example.org");
        let mut bad = der.clone();
        let i = pos.index(bad.len());
        bad[i] ^= xor;
        prop_assert!(csr::parse_csr(&bad).is_err(), "byte {} ^ {:#x} accepted", i, xor);
    }
}

/// Every single-bit change, exhaustively over the request (not sampled), is refused.
#[test]
fn every_bit_flip_of_a_csr_is_refused() {
    let der = officer_csr_der("ra@example.org");
    for i in 0..der.len() {
        for bit in 0..8 {
            let mut bad = der.clone();
            bad[i] ^= 1 << bit;
            assert!(csr::parse_csr(&bad).is_err(), "byte {i} bit {bit} accepted");
        }
    }
}

/// The crate's own RFC 5280 path validator accepts what the CA issues, with the identity
/// profile's key usage and EKU required, and sees revocations in the CRL the CA builds.
#[test]
fn path_validator_accepts_issued_identities_and_honours_the_crl() {
    use confianza_pki::path::{
        CrlSet, ExpectedName, ParsedCertificate, ParsedCrl, PathError, PathOptions,
        RevocationOptions, RevocationScope, UnknownStatus, validate,
    };
    use confianza_pki::profile::ID_KP_CONFIANZA_IDENTITY;
    use x509_cert::ext::pkix::KeyUsages;

    let mut rng = rng(10);
    for alg in [CaAlgorithm::Ed25519, CaAlgorithm::P256] {
        let root = CaKey::generate(alg, &mut rng).expect("key");
        let int = CaKey::generate(alg, &mut rng).expect("key");
        let h = hierarchy(root, int, &mut rng);
        let good = common::issue_identity(&h, "nina@example.org", &mut rng);
        let bad = common::issue_identity(&h, "oscar@example.org", &mut rng);
        let crl = build_crl(
            &h.intermediate,
            &CrlParams::new(3, now()),
            &[RevokedEntry {
                serial: bad.serial,
                revoked_at: now(),
                reason: RevocationReason::KeyCompromise,
            }],
        )
        .expect("crl");
        let crls = CrlSet::new(vec![ParsedCrl::from_der(&crl).expect("our CRL parses")]);
        let anchors = [ParsedCertificate::from_der(h.root.certificate_der()).expect("root")];
        let intermediates =
            [ParsedCertificate::from_der(h.intermediate.certificate_der()).expect("int")];
        let at = (now() + Duration::from_secs(60))
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .expect("time");
        let options = |name: &str| PathOptions {
            required_ekus: vec![ID_KP_CONFIANZA_IDENTITY],
            required_key_usage: vec![KeyUsages::KeyAgreement],
            expected_names: vec![ExpectedName::Email(name.into())],
            revocation: RevocationOptions {
                sources: vec![&crls],
                scope: RevocationScope::EndEntity,
                unknown: UnknownStatus::Deny,
            },
            ..PathOptions::default()
        };
        let leaf = ParsedCertificate::from_der(&good.der).expect("leaf");
        validate(
            &leaf,
            &intermediates,
            &anchors,
            at,
            &options("nina@example.org"),
        )
        .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let leaf = ParsedCertificate::from_der(&bad.der).expect("leaf");
        assert!(matches!(
            validate(
                &leaf,
                &intermediates,
                &anchors,
                at,
                &options("oscar@example.org")
            ),
            Err(PathError::Revoked { depth: 0, .. })
        ));
    }
}
