//! Mallory's own CA, for the man-in-the-middle act: a complete, correctly built PKI (root,
//! issuing CA, RA officer) that is simply not the one alice's client pinned.

use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use confianza_pki::ca::{Issuer, IssuerRole, IssuerUrls};
use confianza_pki::csr::{self, IdentityRequest};
use confianza_pki::profile::{CertificateKind, SubjectName};
use confianza_pki::ra::{Actor, ApprovedRequest, PendingRequest, RaOfficer, RaPolicy, RaScope};
use confianza_pki::signer::{CaAlgorithm, CaKey};
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::xeddsa;
use der::Encode;
use rand::rngs::ThreadRng;

/// How long mallory's enrollment code is valid.
const CODE_VALIDITY: Duration = Duration::from_secs(600);

fn urls(name: &str) -> IssuerUrls {
    IssuerUrls {
        crl: format!("http://pki.mallory.example/{name}.crl"),
        ocsp: "http://pki.mallory.example/ocsp".into(),
        ca_issuers: format!("http://pki.mallory.example/{name}.crt"),
    }
}

/// Mallory's PKI: root, issuing CA, one RA officer.
pub struct RogueCa {
    intermediate: Issuer,
    officer: RaOfficer,
    policy: RaPolicy,
}

impl RogueCa {
    /// A root named like the real one, an issuing CA, and an officer for `domain`.
    pub fn create(
        organisation: &str,
        domain: &str,
        now: SystemTime,
        rng: &mut ThreadRng,
    ) -> Result<Self> {
        let root = Issuer::new_root(
            CaKey::generate(CaAlgorithm::Ed25519, rng)?,
            &format!("{organisation} Root CA"),
            Some(organisation),
            now,
            None,
            rng,
        )?
        .with_urls(urls("root"))?;
        let intermediate_key = CaKey::generate(CaAlgorithm::Ed25519, rng)?;
        let template = csr::intermediate_template(
            intermediate_key.public_key_info_der(),
            &format!("{organisation} Issuing CA"),
        )?;
        let issued = root.issue(
            ApprovedRequest::by_ca_operator(0, template, "mallory", now),
            now,
            rng,
        )?;
        let intermediate = Issuer::from_certificate(
            intermediate_key,
            &issued.der,
            IssuerRole::Intermediate,
            Some(urls("issuing")),
        )?;
        let officer_address = format!("ra.officer@{domain}");
        let officer_key = ed25519_dalek::SigningKey::generate(rng);
        let request = officer_csr(&officer_address, &officer_key)?;
        let template = csr::parse_csr(&request)?.into_template(CertificateKind::RaOfficer)?;
        let credential = intermediate.issue(
            ApprovedRequest::by_ca_operator(1, template, "mallory", now),
            now,
            rng,
        )?;
        let officer = RaOfficer::from_credential(
            &credential.der,
            intermediate.certificate_der(),
            now,
            RaScope {
                kinds: vec![CertificateKind::UserIdentity],
                domains: vec![domain.to_owned()],
            },
        )?;
        Ok(Self {
            intermediate,
            officer,
            policy: RaPolicy::for_domains(&[domain]),
        })
    }

    /// Enrolls `identity` as `address` through mallory's RA; returns the certificate (DER).
    pub fn enroll(
        &self,
        address: &str,
        identity: &IdentityKeyPair,
        now: SystemTime,
        rng: &mut ThreadRng,
    ) -> Result<Vec<u8>> {
        let name = SubjectName::address(address)?;
        let (code, mut stored) = self.officer.create_enrollment_code(
            &name,
            CertificateKind::UserIdentity,
            CODE_VALIDITY,
            now,
            rng,
        )?;
        let mut challenge = [0u8; 32];
        rand::Rng::fill_bytes(rng, &mut challenge);
        let message = csr::identity_pop_message(address, &challenge);
        let request = IdentityRequest {
            identity_key: *identity.identity_key().public_key().u(),
            address,
            challenge: &challenge,
            signature: identity.sign(&message, rng),
        };
        let verified = csr::verify_identity_request(&request, xeddsa::verify)?;
        let pending = PendingRequest::submit(10, verified.into_template()?, Actor::Requester, now);
        let redeemed = stored.redeem(code.as_str(), now)?;
        let approved = pending
            .approve_with_code(redeemed, &self.policy, now)
            .map_err(|refused| anyhow!("mallory's RA refused: {}", refused.error))?;
        Ok(self.intermediate.issue(approved, now, rng)?.der)
    }
}

fn officer_csr(address: &str, key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>> {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let subject = x509_cert::name::Name::from_str(&format!("CN={address}"))?;
    let mut builder = RequestBuilder::new(subject)?;
    builder.add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
        der::asn1::Ia5String::new(address)?,
    )]))?;
    let request = builder.build::<_, ed25519_dalek::Signature>(key)?;
    Ok(request.to_der()?)
}
