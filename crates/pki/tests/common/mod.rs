//! Shared helpers for the integration tests: a CA hierarchy, RA officers, and identity keys
//! from the protocol crate so identity requests carry a real XEdDSA proof of possession.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole, IssuerUrls};
use confianza_pki::csr::{self, IdentityRequest, VerifiedIdentityRequest};
use confianza_pki::profile::CertificateTemplate;
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use confianza_protocol::keys::IdentityKeyPair;
use rand::{Rng, SeedableRng};

pub type TestRng = rand::rngs::StdRng;

pub fn rng(seed: u64) -> TestRng {
    TestRng::seed_from_u64(seed)
}

/// A fixed "now": 2026-11-26T12:00:00Z.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_694_400)
}

pub fn urls(name: &str) -> IssuerUrls {
    IssuerUrls {
        crl: format!("http://pki.example.org/{name}.crl"),
        ocsp: "http://pki.example.org/ocsp".into(),
        ca_issuers: format!("http://pki.example.org/{name}.crt"),
    }
}

/// An X25519 identity key pair (the protocol crate's), with its public u-coordinate.
pub struct IdentityKey {
    pair: IdentityKeyPair,
    pub public: [u8; 32],
}

impl IdentityKey {
    pub fn generate(rng: &mut TestRng) -> Self {
        let pair = IdentityKeyPair::generate(rng);
        let public = *pair.identity_key().public_key().u();
        Self { pair, public }
    }

    /// XEdDSA signature (Signal's variant), as a client makes it.
    pub fn sign(&self, message: &[u8], rng: &mut TestRng) -> [u8; 64] {
        self.pair.sign(message, rng)
    }
}

/// XEdDSA verification (Signal's variant), as the server wires it.
pub fn xeddsa_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    confianza_protocol::xeddsa::verify(public, message, signature)
}

/// A verified identity request for `address`, with a real XEdDSA proof of possession.
pub fn identity_request(
    address: &str,
    rng: &mut TestRng,
) -> (IdentityKey, VerifiedIdentityRequest) {
    let key = IdentityKey::generate(rng);
    let mut challenge = [0u8; 32];
    rng.fill_bytes(&mut challenge);
    let message = csr::identity_pop_message(address, &challenge);
    let signature = key.sign(&message, rng);
    let request = IdentityRequest {
        identity_key: key.public,
        address,
        challenge: &challenge,
        signature,
    };
    let verified = csr::verify_identity_request(&request, xeddsa_verify).expect("identity PoP");
    (key, verified)
}

pub struct Hierarchy {
    pub root: Issuer,
    pub intermediate: Issuer,
}

/// Generates (or imports, for RSA) a CA key.
pub fn ca_key(alg: CaAlgorithm, rng: &mut TestRng, rsa_pkcs8: Option<&[u8]>) -> CaKey {
    match (alg, rsa_pkcs8) {
        (CaAlgorithm::Rsa3072, Some(der)) => CaKey::from_pkcs8_der(der).expect("import RSA"),
        _ => CaKey::generate(alg, rng).expect("generate"),
    }
}

pub fn operator_approval(template: CertificateTemplate) -> ApprovedRequest {
    ApprovedRequest::by_ca_operator(0, template, "operator", now())
}

/// Root and intermediate of the same algorithm.
pub fn hierarchy(root_key: CaKey, intermediate_key: CaKey, rng: &mut TestRng) -> Hierarchy {
    let root = Issuer::new_root(
        root_key,
        "Confianza Test Root",
        Some("Example Org"),
        now() - Duration::from_secs(3600),
        None,
        rng,
    )
    .and_then(|r| r.with_urls(urls("root")))
    .expect("root");
    let template = csr::intermediate_template(
        intermediate_key.public_key_info_der(),
        "Confianza Test Intermediate",
    )
    .expect("template");
    let issued = root
        .issue(
            operator_approval(template),
            now() - Duration::from_secs(1800),
            rng,
        )
        .expect("intermediate");
    let intermediate = Issuer::from_certificate(
        intermediate_key,
        &issued.der,
        IssuerRole::Intermediate,
        Some(urls("intermediate")),
    )
    .expect("load intermediate");
    Hierarchy { root, intermediate }
}

/// Issues an identity certificate for `address` from the intermediate.
pub fn issue_identity(h: &Hierarchy, address: &str, rng: &mut TestRng) -> IssuedCertificate {
    let (_, verified) = identity_request(address, rng);
    let template = verified.into_template().expect("template");
    h.intermediate
        .issue(operator_approval(template), now(), rng)
        .expect("issue")
}
