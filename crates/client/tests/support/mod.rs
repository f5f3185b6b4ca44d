//! Set-ups shared by the client's tests. Here, a small organisation PKI made with
//! `confianza-pki`: a root, an issuing CA, identity certificates with real XEdDSA proofs of
//! possession, the server's Noise certificate, CRLs and stapled OCSP responses. In [`server`],
//! the real messaging service and clients enrolled on it; in [`stores`], local stores made
//! directly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod server;
pub mod stores;

use std::time::{Duration, SystemTime};

use confianza_api as api;
use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole, IssuerUrls};
use confianza_pki::crl::{CrlParams, RevocationReason, RevokedEntry, build_crl};
use confianza_pki::csr::{self, IdentityRequest};
use confianza_pki::ocsp::{
    CertIdHash, CertStatusSource, RequestBuilder, Responder, Status, StatusUnavailable,
};
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use der::Decode;
use rand::{Rng, SeedableRng};
use x509_cert::Certificate;
use x509_cert::serial_number::SerialNumber;

pub type TestRng = rand::rngs::StdRng;

pub fn rng(seed: u64) -> TestRng {
    TestRng::seed_from_u64(seed)
}

/// Certificates are issued an hour before "now" so they are valid at the real time too.
pub fn now() -> SystemTime {
    SystemTime::now()
}

fn urls(name: &str) -> IssuerUrls {
    IssuerUrls {
        crl: format!("http://pki.example.org/{name}.crl"),
        ocsp: "http://pki.example.org/ocsp".into(),
        ca_issuers: format!("http://pki.example.org/{name}.crt"),
    }
}

fn approval(
    template: confianza_pki::profile::CertificateTemplate,
    at: SystemTime,
) -> ApprovedRequest {
    ApprovedRequest::by_ca_operator(0, template, "operator", at)
}

/// An organisation: root and issuing CA.
pub struct Org {
    pub root: Issuer,
    pub intermediate: Issuer,
    pub issued_at: SystemTime,
}

impl Org {
    pub fn new(name: &str, rng: &mut TestRng) -> Self {
        let issued_at = now() - Duration::from_secs(3600);
        let root = Issuer::new_root(
            CaKey::generate(CaAlgorithm::Ed25519, rng).unwrap(),
            &format!("{name} Root"),
            Some(name),
            issued_at,
            None,
            rng,
        )
        .and_then(|root| root.with_urls(urls("root")))
        .unwrap();
        let key = CaKey::generate(CaAlgorithm::Ed25519, rng).unwrap();
        let template =
            csr::intermediate_template(key.public_key_info_der(), &format!("{name} Issuing CA"))
                .unwrap();
        let issued = root
            .issue(approval(template, issued_at), issued_at, rng)
            .unwrap();
        let intermediate = Issuer::from_certificate(
            key,
            &issued.der,
            IssuerRole::Intermediate,
            Some(urls("issuing")),
        )
        .unwrap();
        Self {
            root,
            intermediate,
            issued_at,
        }
    }

    /// The chain as the server sends it at enrollment: issuing CA first, root last.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![
            self.intermediate.certificate_der().to_vec(),
            self.root.certificate_der().to_vec(),
        ]
    }

    /// An identity certificate for `address` and `identity`, with a real proof of possession.
    pub fn identity_certificate(
        &self,
        address: &str,
        identity: &IdentityKeyPair,
        rng: &mut TestRng,
    ) -> IssuedCertificate {
        let mut challenge = [0u8; 32];
        rng.fill_bytes(&mut challenge);
        let message = csr::identity_pop_message(address, &challenge);
        let request = IdentityRequest {
            identity_key: *identity.identity_key().public_key().u(),
            address,
            challenge: &challenge,
            signature: identity.sign(&message, rng),
        };
        let verified =
            csr::verify_identity_request(&request, confianza_protocol::xeddsa::verify).unwrap();
        let template = verified.into_template().unwrap();
        self.intermediate
            .issue(approval(template, self.issued_at), self.issued_at, rng)
            .unwrap()
    }

    /// The server's Noise certificate.
    pub fn noise_certificate(&self, key: &[u8; 32], name: &str, rng: &mut TestRng) -> Vec<u8> {
        let template = csr::noise_server_template(key, name).unwrap();
        self.intermediate
            .issue(approval(template, self.issued_at), self.issued_at, rng)
            .unwrap()
            .der
    }

    /// A CRL of the issuing CA listing `revoked`.
    pub fn crl(&self, revoked: &[&IssuedCertificate]) -> Vec<u8> {
        let entries: Vec<RevokedEntry> = revoked
            .iter()
            .map(|cert| RevokedEntry {
                serial: cert.serial,
                revoked_at: self.issued_at,
                reason: RevocationReason::KeyCompromise,
            })
            .collect();
        build_crl(&self.intermediate, &CrlParams::new(1, now()), &entries).unwrap()
    }

    /// A stapled OCSP response about `subject`, signed by the issuing CA's own key.
    pub fn staple(&self, subject: &IssuedCertificate, status: Status) -> Vec<u8> {
        struct Answer(Status);
        impl CertStatusSource for Answer {
            fn status(&self, _: &[u8], _: &SerialNumber) -> Result<Status, StatusUnavailable> {
                Ok(self.0)
            }
        }
        let issuer = Certificate::from_der(self.intermediate.certificate_der()).unwrap();
        let responder = Responder::new(
            &issuer,
            None,
            self.intermediate.key().signature_algorithm(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let request = RequestBuilder::new()
            .certificate(
                &issuer,
                &subject.serial.to_serial_number().unwrap(),
                CertIdHash::Sha1,
            )
            .unwrap()
            .to_der()
            .unwrap();
        let key = self.intermediate.key();
        responder
            .respond(&request, now(), &Answer(status), |m: &[u8]| key.sign(m))
            .der
    }
}

/// A user's device keys and the bundle the directory would hand out for it.
pub struct Device {
    pub identity: IdentityKeyPair,
    pub signed: SignedPreKeyRecord,
    pub one_time: PreKeyRecord,
    pub kyber: KyberPreKeyRecord,
}

impl Device {
    pub fn new(rng: &mut TestRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        Self::with_identity(identity, rng)
    }

    pub fn with_identity(identity: IdentityKeyPair, rng: &mut TestRng) -> Self {
        let signed = SignedPreKeyRecord::generate(1, &identity, 0, rng);
        let kyber = KyberPreKeyRecord::generate(2, &identity, 0, rng);
        let one_time = PreKeyRecord::generate(3, rng);
        Self {
            identity,
            signed,
            one_time,
            kyber,
        }
    }

    pub fn bundle(&self, certificate: &[u8], ocsp: Option<Vec<u8>>) -> api::PreKeyBundle {
        api::PreKeyBundle {
            device_id: 1,
            registration_id: 42,
            identity_key: self.identity.identity_key().serialize(),
            identity_certificate: certificate.to_vec(),
            ocsp_response: ocsp,
            signed_pre_key: api::SignedPreKey {
                id: self.signed.id,
                public_key: self.signed.key_pair.public.serialize(),
                signature: self.signed.signature,
            },
            one_time_pre_key: Some(api::OneTimePreKey {
                id: self.one_time.id,
                public_key: self.one_time.key_pair.public.serialize(),
            }),
            kyber_pre_key: api::KyberPreKey {
                id: self.kyber.id,
                public_key: api::KyberPublicKey::from_slice(
                    &self.kyber.key_pair.public.serialize(),
                )
                .unwrap(),
                signature: self.kyber.signature,
            },
            kyber_is_last_resort: true,
        }
    }
}
