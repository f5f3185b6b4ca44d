//! Builds small certificate chains with x509-cert's builder, for path-validation tests and
//! benchmarks: root -> intermediates -> end entity, Ed25519 or ECDSA P-256, deterministic keys.

#![allow(dead_code, clippy::unwrap_used)]

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{OctetString, UtcTime};
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// Validity of generated certificates: 2020-01-01 .. 2040-01-01.
pub const NOT_BEFORE: u64 = 1_577_836_800;
pub const NOT_AFTER: u64 = 2_208_988_800;
/// A time inside the validity window.
pub const NOW: u64 = 1_800_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Alg {
    Ed25519,
    P256,
}

pub enum Key {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Key {
    pub fn new(alg: Alg, seed: u8) -> Self {
        let bytes = [seed.max(1); 32];
        match alg {
            Alg::Ed25519 => Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&bytes)),
            Alg::P256 => Key::P256(p256::ecdsa::SigningKey::from_slice(&bytes).unwrap()),
        }
    }

    pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
        use spki::EncodePublicKey;
        let der = match self {
            Key::Ed25519(k) => k.verifying_key().to_public_key_der().unwrap(),
            Key::P256(k) => k.verifying_key().to_public_key_der().unwrap(),
        };
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    }
}

struct Profile {
    issuer: Name,
    subject: Name,
    ca: bool,
    dns: Option<String>,
    ski_override: Option<OctetString>,
}

fn key_id(spki: &SubjectPublicKeyInfoRef<'_>) -> OctetString {
    OctetString::new(Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()).unwrap()
}

fn ext<T: Encode>(oid: const_oid::ObjectIdentifier, critical: bool, value: &T) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    }
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        use const_oid::db::rfc5280 as oids;
        let ski = self.ski_override.clone().unwrap_or_else(|| key_id(&spk));
        let mut exts = vec![ext(
            oids::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(ski),
        )];
        if self.issuer != self.subject || !self.ca {
            exts.push(ext(
                oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(key_id(&issuer_spk)),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            ));
        }
        if self.ca {
            exts.push(ext(
                oids::ID_CE_BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
            ));
            exts.push(ext(
                oids::ID_CE_KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            ));
        } else {
            exts.push(ext(
                oids::ID_CE_KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::DigitalSignature.into()),
            ));
        }
        if let Some(dns) = &self.dns {
            let name = GeneralName::DnsName(der::asn1::Ia5String::new(dns).unwrap());
            exts.push(ext(
                oids::ID_CE_SUBJECT_ALT_NAME,
                false,
                &SubjectAltName(vec![name]),
            ));
        }
        Ok(exts)
    }
}

fn time(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

/// Issues one certificate and returns its DER.
pub fn issue(
    issuer_key: &Key,
    issuer: &str,
    subject: &str,
    subject_spki: SubjectPublicKeyInfoOwned,
    ca: bool,
    dns: Option<&str>,
    serial: u32,
) -> Vec<u8> {
    issue_with_ski(
        issuer_key,
        issuer,
        subject,
        subject_spki,
        ca,
        dns,
        serial,
        None,
    )
}

/// [`issue`] with a chosen subjectKeyIdentifier (to make decoy issuers).
#[allow(clippy::too_many_arguments)]
pub fn issue_with_ski(
    issuer_key: &Key,
    issuer: &str,
    subject: &str,
    subject_spki: SubjectPublicKeyInfoOwned,
    ca: bool,
    dns: Option<&str>,
    serial: u32,
    ski: Option<&[u8]>,
) -> Vec<u8> {
    let profile = Profile {
        issuer: Name::from_str(issuer).unwrap(),
        subject: Name::from_str(subject).unwrap(),
        ca,
        dns: dns.map(str::to_owned),
        ski_override: ski.map(|s| OctetString::new(s).unwrap()),
    };
    let serial = SerialNumber::from(serial);
    let validity = Validity::new(time(NOT_BEFORE), time(NOT_AFTER));
    let builder = CertificateBuilder::new(profile, serial, validity, subject_spki).unwrap();
    let cert = match issuer_key {
        Key::Ed25519(k) => builder.build::<_, ed25519_dalek::Signature>(k).unwrap(),
        Key::P256(k) => builder.build::<_, p256::ecdsa::DerSignature>(k).unwrap(),
    };
    cert.to_der().unwrap()
}

/// A chain: `[end entity, intermediates (lowest first)..., root]`, all DER.
pub fn chain(alg: Alg, intermediates: usize) -> Vec<Vec<u8>> {
    let root_key = Key::new(alg, 1);
    let root = issue(
        &root_key,
        "CN=Bench Root",
        "CN=Bench Root",
        root_key.spki(),
        true,
        None,
        1,
    );
    let mut certs = vec![root];
    let mut issuer_key = root_key;
    let mut issuer_name = "CN=Bench Root".to_owned();
    for i in 0..intermediates {
        let key = Key::new(alg, u8::try_from(i + 2).unwrap());
        let name = format!("CN=Bench Intermediate {i}");
        let cert = issue(
            &issuer_key,
            &issuer_name,
            &name,
            key.spki(),
            true,
            None,
            100 + u32::try_from(i).unwrap(),
        );
        certs.push(cert);
        issuer_key = key;
        issuer_name = name;
    }
    let leaf_key = Key::new(alg, 200);
    let leaf = issue(
        &issuer_key,
        &issuer_name,
        "CN=alice",
        leaf_key.spki(),
        false,
        Some("alice.example.org"),
        1000,
    );
    certs.push(leaf);
    certs.reverse();
    certs
}

/// Signs a CRL as the holder of `issuer_key` / `issuer_der`, revoking `serials` (key compromise).
pub fn crl(
    issuer_key: &Key,
    issuer_der: &[u8],
    serials: &[u32],
    this_update: u64,
    next_update: u64,
) -> Vec<u8> {
    use x509_cert::builder::CrlBuilder;
    use x509_cert::crl::RevokedCert;
    use x509_cert::ext::pkix::{CrlNumber, CrlReason};
    let issuer = x509_cert::Certificate::from_der(issuer_der).unwrap();
    let revoked: Vec<RevokedCert> = serials
        .iter()
        .map(|s| RevokedCert {
            serial_number: SerialNumber::from(*s),
            revocation_date: time(this_update),
            crl_entry_extensions: Some(vec![ext(
                const_oid::db::rfc5280::ID_CE_CRL_REASONS,
                false,
                &CrlReason::KeyCompromise,
            )]),
        })
        .collect();
    let builder = CrlBuilder::new_with_this_update(
        &issuer,
        CrlNumber(der::asn1::Uint::new(&[7]).unwrap()),
        time(this_update),
    )
    .unwrap()
    .with_next_update(Some(time(next_update)))
    .with_certificates(revoked.into_iter());
    let list = match issuer_key {
        Key::Ed25519(k) => builder.build::<_, ed25519_dalek::Signature>(k).unwrap(),
        Key::P256(k) => builder.build::<_, p256::ecdsa::DerSignature>(k).unwrap(),
    };
    list.to_der().unwrap()
}
