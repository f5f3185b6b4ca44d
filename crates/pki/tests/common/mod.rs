//! Shared helpers for the integration tests: a CA hierarchy, RA officers, and a test-only
//! XEdDSA (Signal's variant, written from the XEdDSA specification) so identity requests carry
//! a real proof of possession.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole, IssuerUrls};
use confianza_pki::csr::{self, IdentityRequest, VerifiedIdentityRequest};
use confianza_pki::profile::CertificateTemplate;
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha512};

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

/// An X25519 identity key pair: the clamped private scalar bytes and the public u-coordinate.
pub struct IdentityKey {
    pub private: [u8; 32],
    pub public: [u8; 32],
}

impl IdentityKey {
    pub fn generate(rng: &mut TestRng) -> Self {
        let mut private = [0u8; 32];
        rng.fill_bytes(&mut private);
        private[0] &= 248;
        private[31] &= 127;
        private[31] |= 64;
        let public = MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Self { private, public }
    }

    /// XEdDSA signature (Signal's variant: the Edwards sign bit goes into bit 7 of byte 63).
    pub fn sign(&self, message: &[u8], rng: &mut TestRng) -> [u8; 64] {
        let a = Scalar::from_bytes_mod_order(self.private);
        let big_a = EdwardsPoint::mul_base(&a).compress();
        let mut z = [0u8; 64];
        rng.fill_bytes(&mut z);
        let mut h = Sha512::new();
        h.update([0xfe]);
        h.update([0xff; 31]);
        h.update(a.as_bytes());
        h.update(message);
        h.update(z);
        let r = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let big_r = EdwardsPoint::mul_base(&r).compress();
        let mut h = Sha512::new();
        h.update(big_r.as_bytes());
        h.update(big_a.as_bytes());
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        sig[63] |= big_a.as_bytes()[31] & 0x80;
        sig
    }
}

/// XEdDSA verification (Signal's variant).
pub fn xeddsa_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let sign = signature[63] >> 7;
    let Some(big_a) = MontgomeryPoint(*public).to_edwards(sign) else {
        return false;
    };
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    s_bytes[31] &= 0x7f;
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let mut h = Sha512::new();
    h.update(&signature[..32]);
    h.update(big_a.compress().as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-big_a), &s).compress();
    check.as_bytes() == &signature[..32]
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
