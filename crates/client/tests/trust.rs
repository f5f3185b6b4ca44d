//! Trust refusals with certificates from `confianza-pki`: forged bundles, another CA, the wrong
//! name, revocation by CRL and by stapled OCSP, expiry, the server's certificate and the chain
//! in its handshake (at first contact and later), the pinned root's fingerprint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use confianza_api::ServerHandshakePayload;
use confianza_client::account::{Client, ClientError, InitOptions};
use confianza_client::store::{DATABASE_FILE, Protection};
use confianza_client::trust::{
    FirstContact, PinnedCa, RevocationInfo, TrustError, fingerprint_hex,
};
use confianza_noise::{ServerConfig, StaticKeyPair};
use confianza_pki::ocsp::Status;
use confianza_pki::path::{CrlReason, CrlSet, parse_crl};
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::SignedPreKeyRecord;
use support::{Device, Org, now, rng};

const BOB: &str = "bob@example.org";

fn pinned(org: &Org) -> PinnedCa {
    PinnedCa::from_enrollment_chain(&org.chain(), None).unwrap()
}

fn no_revocation() -> RevocationInfo {
    RevocationInfo::default()
}

#[test]
fn a_certified_bundle_is_accepted() {
    let mut r = rng(1);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    let certified = pinned(&org)
        .verify_bundle(BOB, &bob.bundle(&cert.der, None), &no_revocation(), now())
        .expect("accepted");
    assert_eq!(
        certified.identity_key().serialize(),
        bob.identity.identity_key().serialize()
    );
}

#[test]
fn a_bundle_with_another_identity_key_is_forged() {
    let mut r = rng(2);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    // Mallory's keys, correctly signed by Mallory, under Bob's genuine certificate.
    let mallory = Device::new(&mut r);
    let error = pinned(&org)
        .verify_bundle(
            BOB,
            &mallory.bundle(&cert.der, None),
            &no_revocation(),
            now(),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::Forged(_)), "{error}");
    assert!(error.to_string().contains("forged"), "{error}");
}

#[test]
fn a_prekey_signed_by_someone_else_is_forged() {
    let mut r = rng(3);
    let org = Org::new("Example Org", &mut r);
    let mut bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    let mallory = IdentityKeyPair::generate(&mut r);
    bob.signed = SignedPreKeyRecord::generate(1, &mallory, 0, &mut r);
    let error = pinned(&org)
        .verify_bundle(BOB, &bob.bundle(&cert.der, None), &no_revocation(), now())
        .unwrap_err();
    assert_eq!(
        error,
        TrustError::Forged("the signed prekey is not signed by the identity key")
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let mut r = rng(4);
    let org = Org::new("Example Org", &mut r);
    let rogue = Org::new("Example Org", &mut r);
    let mallory = Device::new(&mut r);
    let cert = rogue.identity_certificate(BOB, &mallory.identity, &mut r);
    let error = pinned(&org)
        .verify_bundle(
            BOB,
            &mallory.bundle(&cert.der, None),
            &no_revocation(),
            now(),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::WrongCa(_)), "{error}");
}

#[test]
fn a_certificate_for_someone_else_is_refused() {
    let mut r = rng(5);
    let org = Org::new("Example Org", &mut r);
    let carol = Device::new(&mut r);
    let cert = org.identity_certificate("carol@example.org", &carol.identity, &mut r);
    let error = pinned(&org)
        .verify_bundle(BOB, &carol.bundle(&cert.der, None), &no_revocation(), now())
        .unwrap_err();
    assert_eq!(error, TrustError::WrongName(BOB.into()));
}

#[test]
fn a_certificate_revoked_on_the_crl_is_refused() {
    let mut r = rng(6);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    let crl = parse_crl(&org.crl(&[&cert])).unwrap();
    let revocation = RevocationInfo {
        crls: CrlSet::new(vec![crl]),
    };
    let error = pinned(&org)
        .verify_bundle(BOB, &bob.bundle(&cert.der, None), &revocation, now())
        .unwrap_err();
    assert!(matches!(error, TrustError::Revoked(_)), "{error}");
    assert!(error.to_string().contains("keyCompromise"), "{error}");

    // Another user on the same CRL is unaffected.
    let carol = Device::new(&mut r);
    let carol_cert = org.identity_certificate("carol@example.org", &carol.identity, &mut r);
    pinned(&org)
        .verify_bundle(
            "carol@example.org",
            &carol.bundle(&carol_cert.der, None),
            &revocation,
            now(),
        )
        .expect("carol is not revoked");
}

#[test]
fn a_stapled_ocsp_response_decides_revocation() {
    let mut r = rng(7);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    let good = org.staple(&cert, Status::Good);
    pinned(&org)
        .verify_bundle(
            BOB,
            &bob.bundle(&cert.der, Some(good)),
            &no_revocation(),
            now(),
        )
        .expect("good staple");
    let revoked = org.staple(
        &cert,
        Status::Revoked {
            time: org.issued_at,
            reason: Some(CrlReason::KeyCompromise),
        },
    );
    let error = pinned(&org)
        .verify_bundle(
            BOB,
            &bob.bundle(&cert.der, Some(revoked)),
            &no_revocation(),
            now(),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::Revoked(_)), "{error}");

    // A server that strips the staple does not hide a revocation the CRL shows.
    let revocation = RevocationInfo {
        crls: CrlSet::new(vec![parse_crl(&org.crl(&[&cert])).unwrap()]),
    };
    let error = pinned(&org)
        .verify_bundle(BOB, &bob.bundle(&cert.der, None), &revocation, now())
        .unwrap_err();
    assert!(matches!(error, TrustError::Revoked(_)), "{error}");
}

#[test]
fn an_expired_certificate_is_refused() {
    let mut r = rng(8);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    let after_expiry = cert.not_after + Duration::from_secs(1);
    let error = pinned(&org)
        .verify_bundle(
            BOB,
            &bob.bundle(&cert.der, None),
            &no_revocation(),
            after_expiry,
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::Expired(_)), "{error}");
    let before = org.issued_at - Duration::from_secs(86_400);
    let error = pinned(&org)
        .verify_bundle(BOB, &bob.bundle(&cert.der, None), &no_revocation(), before)
        .unwrap_err();
    assert!(matches!(error, TrustError::Expired(_)), "{error}");
}

#[test]
fn garbage_certificates_are_typed_errors() {
    let mut r = rng(9);
    let org = Org::new("Example Org", &mut r);
    let bob = Device::new(&mut r);
    for junk in [&b""[..], b"\x30\x03\x02\x01\x00", &[0xff; 64]] {
        let error = pinned(&org)
            .verify_bundle(BOB, &bob.bundle(junk, None), &no_revocation(), now())
            .unwrap_err();
        assert!(matches!(error, TrustError::Malformed(_)), "{error}");
    }
}

#[test]
fn the_server_certificate_must_certify_its_noise_key_for_its_name() {
    let mut r = rng(10);
    let org = Org::new("Example Org", &mut r);
    let key = [9u8; 32];
    let key = *x25519_dalek_public(&key);
    let cert = org.noise_certificate(&key, "chat.example.org", &mut r);
    let ca = pinned(&org);
    ca.verify_server(&key, &cert, "chat.example.org", now())
        .expect("genuine server");
    assert_eq!(
        ca.verify_server(&[1u8; 32], &cert, "chat.example.org", now()),
        Err(TrustError::ServerKeyMismatch)
    );
    assert_eq!(
        ca.verify_server(&key, &cert, "evil.example.org", now()),
        Err(TrustError::WrongName("evil.example.org".into()))
    );
    // An identity certificate is not a server certificate, even with the right key.
    let bob = IdentityKeyPair::generate(&mut r);
    let identity_cert = org.identity_certificate(BOB, &bob, &mut r);
    let error = ca
        .verify_server(
            bob.identity_key().public_key().u(),
            &identity_cert.der,
            "chat.example.org",
            now(),
        )
        .unwrap_err();
    assert!(
        matches!(error, TrustError::WrongUse(_) | TrustError::WrongName(_)),
        "{error}"
    );
    // A server certificate from another CA.
    let rogue = Org::new("Rogue", &mut r);
    let rogue_cert = rogue.noise_certificate(&key, "chat.example.org", &mut r);
    assert!(matches!(
        ca.verify_server(&key, &rogue_cert, "chat.example.org", now()),
        Err(TrustError::WrongCa(_))
    ));
}

/// The X25519 public key of a fixed secret, through the protocol crate.
fn x25519_dalek_public(secret: &[u8; 32]) -> Box<[u8; 32]> {
    let private = confianza_protocol::keys::PrivateKey::from_bytes(secret).unwrap();
    Box::new(*private.public_key().u())
}

#[test]
fn the_root_is_pinned_by_fingerprint_when_one_is_given() {
    let mut r = rng(11);
    let org = Org::new("Example Org", &mut r);
    let actual = fingerprint_hex(org.root.certificate_der());
    let pinned = PinnedCa::from_enrollment_chain(&org.chain(), Some(&actual)).unwrap();
    assert_eq!(pinned.root_fingerprint(), actual);
    // Typed with colons and capitals, as `openssl x509 -fingerprint` prints it.
    let colons: String = actual
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    PinnedCa::from_enrollment_chain(&org.chain(), Some(&colons)).unwrap();
    let rogue = Org::new("Rogue", &mut r);
    let error = PinnedCa::from_enrollment_chain(&rogue.chain(), Some(&actual)).unwrap_err();
    assert!(
        matches!(error, TrustError::FingerprintMismatch { .. }),
        "{error}"
    );
    assert!(matches!(
        PinnedCa::from_enrollment_chain(&[], None),
        Err(TrustError::NoCaChain)
    ));
    // A chain whose last certificate is not a root.
    let not_root = vec![org.intermediate.certificate_der().to_vec()];
    assert!(PinnedCa::from_enrollment_chain(&not_root, None).is_err());
}

const SERVER_NAME: &str = "chat.example.org";

/// What a server presents in its handshake: `certificate` under `chain`.
fn handshake_payload(certificate: &[u8], chain: Vec<Vec<u8>>) -> Vec<u8> {
    ServerHandshakePayload {
        certificate: certificate.to_vec(),
        ca_chain: chain,
    }
    .encode()
    .unwrap()
}

#[test]
fn first_contact_pins_the_presented_root_and_checks_the_server_with_it() {
    let mut r = rng(12);
    let org = Org::new("Example Org", &mut r);
    let key = *x25519_dalek_public(&[7u8; 32]);
    let cert = org.noise_certificate(&key, SERVER_NAME, &mut r);
    let genuine = handshake_payload(&cert, org.chain());
    let fingerprint = fingerprint_hex(org.root.certificate_der());

    // The fingerprint the user was given matches; the name is the host's.
    let trusted = FirstContact::new(Some(SERVER_NAME.into()), Some(fingerprint.clone()))
        .check(&key, &genuine, now())
        .expect("genuine server");
    assert_eq!(trusted.ca.root_fingerprint(), fingerprint);
    assert_eq!(trusted.server_name, SERVER_NAME);
    // Reached by IP address, trust on first use: the name comes from the certificate.
    let trusted = FirstContact::new(None, None)
        .check(&key, &genuine, now())
        .expect("genuine server");
    assert_eq!(trusted.server_name, SERVER_NAME);

    // Another root than the one the user expects.
    let wrong = "ab".repeat(32);
    let error = FirstContact::new(None, Some(wrong))
        .check(&key, &genuine, now())
        .unwrap_err();
    assert!(
        matches!(error, TrustError::FingerprintMismatch { .. }),
        "{error}"
    );
    // Another organisation's server, with its own chain, against our fingerprint.
    let rogue = Org::new("Rogue", &mut r);
    let rogue_cert = rogue.noise_certificate(&key, SERVER_NAME, &mut r);
    let error = FirstContact::new(None, Some(fingerprint.clone()))
        .check(&key, &handshake_payload(&rogue_cert, rogue.chain()), now())
        .unwrap_err();
    assert!(
        matches!(error, TrustError::FingerprintMismatch { .. }),
        "{error}"
    );
    // A server certificate from another CA behind our chain: refused even on first use.
    let error = FirstContact::new(None, None)
        .check(&key, &handshake_payload(&rogue_cert, org.chain()), now())
        .unwrap_err();
    assert!(matches!(error, TrustError::WrongCa(_)), "{error}");
    // Our certificate, replayed by a server with another static key.
    let error = FirstContact::new(None, Some(fingerprint.clone()))
        .check(&[1u8; 32], &genuine, now())
        .unwrap_err();
    assert_eq!(error, TrustError::ServerKeyMismatch);
    // The wrong name.
    let error = FirstContact::new(Some("evil.example.org".into()), None)
        .check(&key, &genuine, now())
        .unwrap_err();
    assert_eq!(error, TrustError::WrongName("evil.example.org".into()));
    // A bare certificate (no chain) or garbage is not a handshake payload.
    for junk in [&cert[..], b"", b"\xff\xff"] {
        let error = FirstContact::new(None, None)
            .check(&key, junk, now())
            .unwrap_err();
        assert!(
            matches!(error, TrustError::BadHandshakePayload(_)),
            "{error}"
        );
    }
}

#[test]
fn later_connections_check_the_handshake_against_the_pinned_root() {
    let mut r = rng(13);
    let org = Org::new("Example Org", &mut r);
    let key = *x25519_dalek_public(&[8u8; 32]);
    let cert = org.noise_certificate(&key, SERVER_NAME, &mut r);
    // Only the root is pinned: the issuing CA comes with the handshake, as an untrusted helper.
    let ca = PinnedCa::from_der(org.root.certificate_der(), &[]).unwrap();
    ca.verify_server_payload(
        &key,
        &handshake_payload(&cert, org.chain()),
        SERVER_NAME,
        now(),
    )
    .expect("genuine server");
    // Without the issuing CA the path does not reach the root.
    assert!(matches!(
        ca.verify_server_payload(
            &key,
            &handshake_payload(&cert, vec![org.root.certificate_der().to_vec()]),
            SERVER_NAME,
            now()
        ),
        Err(TrustError::WrongCa(_))
    ));
    // Another organisation's server: its chain does not make its root ours.
    let rogue = Org::new("Rogue", &mut r);
    let rogue_cert = rogue.noise_certificate(&key, SERVER_NAME, &mut r);
    let error = ca
        .verify_server_payload(
            &key,
            &handshake_payload(&rogue_cert, rogue.chain()),
            SERVER_NAME,
            now(),
        )
        .unwrap_err();
    assert!(matches!(error, TrustError::WrongCa(_)), "{error}");
}

/// A Noise responder that presents our organisation's chain with a certificate another CA
/// issued for its key: `init` refuses it in the handshake, so the client's final handshake
/// message, and every request after it (the enrollment code's above all), is never sent.
#[tokio::test]
async fn init_refuses_a_rogue_server_before_sending_the_code() {
    use confianza_noise::driver::accept;

    let mut r = rng(14);
    let org = Org::new("Example Org", &mut r);
    let rogue = Org::new("Rogue", &mut r);
    let server_key = StaticKeyPair::generate(&mut r);
    let rogue_cert =
        rogue.noise_certificate(server_key.public_key().as_bytes(), SERVER_NAME, &mut r);
    let payload = handshake_payload(&rogue_cert, org.chain());
    let config = ServerConfig::new(server_key, payload).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut rng = rng(15);
        accept(socket, &config, &mut rng).await.map(|_| ())
    });

    let home = tempfile::tempdir().unwrap();
    let profile = home.path().join("alice");
    let options = InitOptions {
        dir: profile.clone(),
        protection: Protection::KeyFile,
        server: address.to_string(),
        server_name: Some(SERVER_NAME.into()),
        address: "alice@example.org".into(),
        code: "a-code-that-must-not-leak".into(),
        expected_ca_fingerprint: Some(fingerprint_hex(org.root.certificate_der())),
    };
    let error = Client::init(options).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ServerRefused(TrustError::WrongCa(_))),
        "{error}"
    );
    // The server never saw the client's final handshake message.
    let accepted = server.await.unwrap();
    assert!(accepted.is_err(), "the handshake completed");
    assert!(!profile.join(DATABASE_FILE).exists());
}
