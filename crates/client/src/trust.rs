//! Trust decisions: the pinned organisation root, identity certificates in bundles, the
//! server's Noise certificate, and what the user accepted.
//!
//! The server is authenticated in the Noise handshake, before the client sends anything: its
//! handshake payload ([`ServerHandshakePayload`]) carries its Noise certificate and the CA chain.
//! At first contact [`FirstContact`] pins the chain's root (checked against the fingerprint the
//! user was given, or shown for trust on first use) and checks the certificate with it, so a
//! wrong server is refused before the enrollment code leaves the machine; afterwards
//! [`PinnedCa::verify_server_payload`] checks it against the pinned root.
//!
//! A bundle opens a session only as a [`CertifiedBundle`], and the only way to get one is
//! [`PinnedCa::verify_bundle`]:
//!
//! 1. the identity certificate validates to the pinned root at `now` (RFC 5280 path with the
//!    identity profile's extended key usage and the expected address), with revocation from the
//!    stapled OCSP response, else the CRLs the caller fetched from the repository;
//! 2. the certified X25519 key is the bundle's identity key;
//! 3. the prekey signatures verify with that key (`PreKeyBundle::verify`).
//!
//! Each refusal is a [`TrustError`] that says why: a forged bundle, a revoked, expired or
//! foreign (wrong CA) certificate, a certificate for someone else.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use confianza_api::{self as api, ServerHandshakePayload};
use confianza_noise::{PublicKey as NoisePublicKey, ServerKeyRejected, ServerKeyVerifier};
use confianza_pki::path::{
    self, CrlSet, ExpectedName, ParsedCertificate, PathError, PathOptions, RevocationOptions,
    RevocationSource, StapledOcsp,
};
use confianza_pki::profile::{ID_KP_CONFIANZA_IDENTITY, ID_KP_CONFIANZA_NOISE_SERVER};
use confianza_protocol::kem::KemPublicKey;
use confianza_protocol::keys::{IdentityKey, PublicKey};
use confianza_protocol::prekeys::{KyberPreKeyPublic, PreKeyBundle, VerifiedPreKeyBundle};
use sha2::{Digest, Sha256};

/// `id-X25519` (RFC 8410): the key algorithm of identity and Noise-server certificates.
const ID_X25519: &str = "1.3.101.110";

/// Why something was not trusted. The message says why in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A certificate does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The certificate was not issued under the pinned root (another CA, or a forged signature).
    #[error("certificate not issued by the pinned organisation CA ({0})")]
    WrongCa(PathError),
    /// The certificate (or one above it) is outside its validity period.
    #[error("certificate expired or not yet valid ({0})")]
    Expired(PathError),
    /// The certificate is revoked.
    #[error("certificate revoked ({0})")]
    Revoked(PathError),
    /// The certificate is for another name than the one expected.
    #[error("certificate is not for {0}")]
    WrongName(String),
    /// The certificate is not of the expected kind (extended key usage, key usage).
    #[error("certificate is not valid for this use ({0})")]
    WrongUse(PathError),
    /// Any other path validation failure.
    #[error("certificate refused: {0}")]
    Invalid(PathError),
    /// The bundle does not match its certificate, or its keys or signatures are bad: someone
    /// other than the certified key's holder made it.
    #[error("forged bundle: {0}")]
    Forged(&'static str),
    /// The server's Noise key is not the key its certificate certifies.
    #[error("server key does not match its certificate")]
    ServerKeyMismatch,
    /// The CA chain the server sent is empty or malformed.
    #[error("the server sent no usable CA chain")]
    NoCaChain,
    /// The server's handshake payload is not a certificate and CA chain.
    #[error("the server's handshake does not carry its certificate and CA chain ({0})")]
    BadHandshakePayload(String),
    /// The server's certificate names no DNS name, and none was given to check it against.
    #[error("cannot tell the server's name from its certificate: pass it explicitly")]
    UnknownServerName,
    /// The root does not have the fingerprint the user gave.
    #[error("the organisation root's fingerprint is {actual}, not the expected {expected}")]
    FingerprintMismatch { expected: String, actual: String },
    /// A contact's identity key differs from the one known; refused until the user accepts it.
    #[error("the identity key of {0} has changed: compare safety numbers, then accept the new key")]
    IdentityChanged(String),
}

fn classify(error: PathError, expected: &str) -> TrustError {
    match error {
        PathError::Expired(_) | PathError::NotYetValid(_) => TrustError::Expired(error),
        PathError::Revoked { .. } | PathError::Revocation { .. } => TrustError::Revoked(error),
        PathError::UnknownIssuer(_) | PathError::BadSignature { .. } => TrustError::WrongCa(error),
        PathError::NameMismatch => TrustError::WrongName(expected.to_owned()),
        PathError::ExtendedKeyUsage(_) | PathError::KeyUsage(_) => TrustError::WrongUse(error),
        PathError::Certificate(inner) => TrustError::Malformed(inner.to_string()),
        other => TrustError::Invalid(other),
    }
}

/// The SHA-256 fingerprint of a DER certificate, as lowercase hex.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Normalizes a fingerprint typed by a user: hex digits only, lowercase (colons and spaces
/// dropped).
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The organisation's root (pinned at enrollment) and the CA certificates under it.
#[derive(Debug, Clone)]
pub struct PinnedCa {
    root: ParsedCertificate,
    intermediates: Vec<ParsedCertificate>,
}

/// A bundle whose certificate, key binding and signatures were checked.
#[derive(Debug, Clone)]
pub struct CertifiedBundle {
    bundle: VerifiedPreKeyBundle,
    certificate: Vec<u8>,
    certificate_not_after: u64,
}

impl CertifiedBundle {
    /// The bundle, ready for `session::process_bundle`.
    pub fn verified(&self) -> &VerifiedPreKeyBundle {
        &self.bundle
    }

    /// The certified identity key.
    pub fn identity_key(&self) -> &IdentityKey {
        &self.bundle.bundle().identity_key
    }

    /// The identity certificate (DER) that certifies [`CertifiedBundle::identity_key`].
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// When the identity certificate expires (seconds since the Unix epoch).
    pub fn certificate_not_after(&self) -> u64 {
        self.certificate_not_after
    }
}

/// The revocation information a check may use beside stapled responses.
#[derive(Debug, Default)]
pub struct RevocationInfo {
    /// CRLs fetched from the repository.
    pub crls: CrlSet,
}

impl PinnedCa {
    /// The CA chain a server presents (issuing CA first, root last: in its handshake payload
    /// or with an enrollment), pinned on first use unless `expected_root_fingerprint` is given,
    /// which must then match.
    pub fn from_enrollment_chain(
        chain: &[Vec<u8>],
        expected_root_fingerprint: Option<&str>,
    ) -> Result<Self, TrustError> {
        let (root, intermediates) = chain.split_last().ok_or(TrustError::NoCaChain)?;
        if let Some(expected) = expected_root_fingerprint {
            let expected = normalize_fingerprint(expected);
            let actual = fingerprint_hex(root);
            // Public values: no constant-time comparison needed.
            if expected != actual {
                return Err(TrustError::FingerprintMismatch { expected, actual });
            }
        }
        let pinned = Self::from_der(root, intermediates)?;
        if !pinned.root.is_self_issued() || !pinned.root.is_ca() {
            return Err(TrustError::NoCaChain);
        }
        Ok(pinned)
    }

    /// The pinned root and the CA certificates stored with it.
    pub fn from_der(root: &[u8], intermediates: &[Vec<u8>]) -> Result<Self, TrustError> {
        let parse = |der: &[u8]| {
            path::parse_certificate(der).map_err(|e| TrustError::Malformed(e.to_string()))
        };
        Ok(Self {
            root: parse(root)?,
            intermediates: intermediates
                .iter()
                .map(|der| parse(der))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The root's DER.
    pub fn root_der(&self) -> &[u8] {
        self.root.der()
    }

    /// The CA certificates under the root, DER, issuing CA first.
    pub fn intermediates_der(&self) -> Vec<Vec<u8>> {
        self.intermediates
            .iter()
            .map(|c| c.der().to_vec())
            .collect()
    }

    /// The root's SHA-256 fingerprint (hex), to compare out of band.
    pub fn root_fingerprint(&self) -> String {
        fingerprint_hex(self.root.der())
    }

    fn validate(
        &self,
        leaf: &ParsedCertificate,
        presented: &[ParsedCertificate],
        eku: der::asn1::ObjectIdentifier,
        name: ExpectedName,
        sources: Vec<&dyn RevocationSource>,
        now: SystemTime,
    ) -> Result<(), TrustError> {
        let display_name = match &name {
            ExpectedName::Dns(name) | ExpectedName::Email(name) => name.clone(),
            ExpectedName::Ip(ip) => ip.to_string(),
        };
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let options = PathOptions {
            required_ekus: vec![eku],
            expected_names: vec![name],
            revocation: RevocationOptions {
                sources,
                ..RevocationOptions::default()
            },
            ..PathOptions::default()
        };
        let anchors = std::slice::from_ref(&self.root);
        // Certificates the peer presented are untrusted helpers for building the path: only
        // the pinned root anchors it.
        let intermediates = match presented {
            [] => std::borrow::Cow::Borrowed(self.intermediates.as_slice()),
            more => std::borrow::Cow::Owned([self.intermediates.as_slice(), more].concat()),
        };
        path::validate(leaf, &intermediates, anchors, now, &options)
            .map(|_| ())
            .map_err(|error| classify(error, &display_name))
    }

    /// Checks an identity certificate for `address` and returns its X25519 key.
    pub fn verify_identity_certificate(
        &self,
        certificate: &[u8],
        address: &str,
        stapled_ocsp: Option<&[u8]>,
        revocation: &RevocationInfo,
        now: SystemTime,
    ) -> Result<([u8; 32], u64), TrustError> {
        let leaf = path::parse_certificate(certificate)
            .map_err(|e| TrustError::Malformed(e.to_string()))?;
        // A stapled response that does not even parse is ignored: the CRL still speaks, and a
        // server able to damage it could as well have left it out.
        let stapled = stapled_ocsp.and_then(|der| StapledOcsp::from_der([der]).ok());
        let mut sources: Vec<&dyn RevocationSource> = Vec::new();
        if let Some(stapled) = &stapled {
            sources.push(stapled);
        }
        sources.push(&revocation.crls);
        self.validate(
            &leaf,
            &[],
            ID_KP_CONFIANZA_IDENTITY,
            ExpectedName::Email(address.to_owned()),
            sources,
            now,
        )?;
        let key = x25519_key(&leaf).ok_or(TrustError::Forged(
            "the certificate does not certify an X25519 identity key",
        ))?;
        Ok((key, leaf.validity_secs().1))
    }

    /// Checks a bundle fetched for `address`: certificate, key binding, prekey signatures.
    pub fn verify_bundle(
        &self,
        address: &str,
        bundle: &api::PreKeyBundle,
        revocation: &RevocationInfo,
        now: SystemTime,
    ) -> Result<CertifiedBundle, TrustError> {
        let (certified, not_after) = self.verify_identity_certificate(
            &bundle.identity_certificate,
            address,
            bundle.ocsp_response.as_deref(),
            revocation,
            now,
        )?;
        let identity_key = IdentityKey::deserialize(&bundle.identity_key)
            .map_err(|_| TrustError::Forged("the identity key is malformed"))?;
        if identity_key.public_key().u() != &certified {
            return Err(TrustError::Forged(
                "the bundle's identity key is not the certified key",
            ));
        }
        let protocol_bundle = to_protocol_bundle(bundle, identity_key)?;
        let verified = protocol_bundle.verify().map_err(|error| match error {
            confianza_protocol::prekeys::BundleError::BadKyberPreKeySignature => {
                TrustError::Forged("the Kyber prekey is not signed by the identity key")
            }
            _ => TrustError::Forged("the signed prekey is not signed by the identity key"),
        })?;
        Ok(CertifiedBundle {
            bundle: verified,
            certificate: bundle.identity_certificate.clone(),
            certificate_not_after: not_after,
        })
    }

    /// Checks the server's Noise certificate: valid to the pinned root for the Noise-server
    /// use and `server_name`, and certifying exactly `static_key`.
    pub fn verify_server(
        &self,
        static_key: &[u8; 32],
        certificate: &[u8],
        server_name: &str,
        now: SystemTime,
    ) -> Result<(), TrustError> {
        self.verify_server_with(static_key, certificate, &[], server_name, now)
    }

    /// Checks what the server presented in its Noise handshake (its payload, undecoded) as
    /// [`PinnedCa::verify_server`] does, with the CA certificates of its chain as untrusted
    /// intermediates: the path must still end at the pinned root.
    pub fn verify_server_payload(
        &self,
        static_key: &[u8; 32],
        payload: &[u8],
        server_name: &str,
        now: SystemTime,
    ) -> Result<(), TrustError> {
        let payload = decode_handshake_payload(payload)?;
        let presented = parse_all(&payload.ca_chain)?;
        self.verify_server_with(
            static_key,
            &payload.certificate,
            &presented,
            server_name,
            now,
        )
    }

    fn verify_server_with(
        &self,
        static_key: &[u8; 32],
        certificate: &[u8],
        presented: &[ParsedCertificate],
        server_name: &str,
        now: SystemTime,
    ) -> Result<(), TrustError> {
        let leaf = path::parse_certificate(certificate)
            .map_err(|e| TrustError::Malformed(e.to_string()))?;
        self.validate(
            &leaf,
            presented,
            ID_KP_CONFIANZA_NOISE_SERVER,
            ExpectedName::Dns(server_name.to_owned()),
            Vec::new(),
            now,
        )?;
        match x25519_key(&leaf) {
            Some(key) if &key == static_key => Ok(()),
            _ => Err(TrustError::ServerKeyMismatch),
        }
    }
}

fn parse_all(ders: &[Vec<u8>]) -> Result<Vec<ParsedCertificate>, TrustError> {
    ders.iter()
        .map(|der| path::parse_certificate(der).map_err(|e| TrustError::Malformed(e.to_string())))
        .collect()
}

fn decode_handshake_payload(payload: &[u8]) -> Result<ServerHandshakePayload, TrustError> {
    ServerHandshakePayload::decode(payload)
        .map_err(|error| TrustError::BadHandshakePayload(error.to_string()))
}

/// A server that passed [`FirstContact`]: the CA to pin and the name its certificate was
/// checked for.
#[derive(Debug, Clone)]
pub struct TrustedServer {
    /// The CA chain the server presented, its root checked against the expected fingerprint
    /// when one was given.
    pub ca: PinnedCa,
    /// The DNS name the server's certificate was checked for.
    pub server_name: String,
}

/// The check of a server at first contact, when nothing is pinned yet: the Noise handshake
/// calls it (as a [`ServerKeyVerifier`]) with the server's static key and handshake payload,
/// before the client sends its own payload or any request.
///
/// The chain's root must have the fingerprint the user gave, if any (else it is trusted on
/// first use, and its fingerprint is shown to compare out of band); the certificate must
/// validate to that root for the Noise-server use and the server's name, and certify the
/// handshake's static key. The outcome, kept for [`FirstContact::outcome`], says why a server
/// was refused in a [`TrustError`] rather than the handshake's text.
#[derive(Debug)]
pub struct FirstContact {
    server_name: Option<String>,
    expected_root_fingerprint: Option<String>,
    outcome: Mutex<Option<Result<TrustedServer, TrustError>>>,
}

impl FirstContact {
    /// A check for a server whose certificate must carry `server_name` (when `None`: the first
    /// DNS name the certificate carries, for a server reached by IP address) and whose root must
    /// have `expected_root_fingerprint` (hex, any case, colons allowed), when given.
    pub fn new(server_name: Option<String>, expected_root_fingerprint: Option<String>) -> Self {
        Self {
            server_name,
            expected_root_fingerprint,
            outcome: Mutex::new(None),
        }
    }

    /// Checks a server's static key and handshake payload at `now`.
    pub fn check(
        &self,
        static_key: &[u8; 32],
        payload: &[u8],
        now: SystemTime,
    ) -> Result<TrustedServer, TrustError> {
        let payload = decode_handshake_payload(payload)?;
        let ca = PinnedCa::from_enrollment_chain(
            &payload.ca_chain,
            self.expected_root_fingerprint.as_deref(),
        )?;
        let server_name = match &self.server_name {
            Some(name) => name.clone(),
            None => certificate_dns_names(&payload.certificate)?
                .into_iter()
                .next()
                .ok_or(TrustError::UnknownServerName)?,
        };
        ca.verify_server(static_key, &payload.certificate, &server_name, now)?;
        Ok(TrustedServer { ca, server_name })
    }

    /// The outcome of the last check the handshake made, if it made one.
    pub fn outcome(self) -> Option<Result<TrustedServer, TrustError>> {
        self.outcome
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerKeyVerifier for FirstContact {
    fn verify_server_key(
        &self,
        static_key: &NoisePublicKey,
        payload: &[u8],
    ) -> Result<(), ServerKeyRejected> {
        let outcome = self.check(static_key.as_bytes(), payload, SystemTime::now());
        let verdict = match &outcome {
            Ok(_) => Ok(()),
            Err(error) => Err(ServerKeyRejected::new(error.to_string())),
        };
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        verdict
    }
}

/// The certified key, when it is an X25519 key.
fn x25519_key(certificate: &ParsedCertificate) -> Option<[u8; 32]> {
    let spki = certificate.subject_public_key_info();
    if spki.algorithm.oid.to_string() != ID_X25519 {
        return None;
    }
    spki.subject_public_key.as_bytes()?.try_into().ok()
}

/// The DNS names of a Noise-server certificate (to learn the name on first contact when the
/// user connected by IP address).
pub fn certificate_dns_names(certificate: &[u8]) -> Result<Vec<String>, TrustError> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let leaf =
        path::parse_certificate(certificate).map_err(|e| TrustError::Malformed(e.to_string()))?;
    let san = leaf
        .certificate()
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .map_err(|e| TrustError::Malformed(e.to_string()))?;
    Ok(san
        .map(|(_, san)| {
            san.0
                .into_iter()
                .filter_map(|name| match name {
                    GeneralName::DnsName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

fn to_protocol_bundle(
    bundle: &api::PreKeyBundle,
    identity_key: IdentityKey,
) -> Result<PreKeyBundle, TrustError> {
    let ec = |bytes: &[u8]| {
        PublicKey::deserialize(bytes).map_err(|_| TrustError::Forged("a prekey is malformed"))
    };
    let kyber = KemPublicKey::deserialize(bundle.kyber_pre_key.public_key.as_bytes())
        .map_err(|_| TrustError::Forged("the Kyber prekey is malformed"))?;
    Ok(PreKeyBundle {
        registration_id: bundle.registration_id,
        device_id: bundle.device_id,
        identity_key,
        pre_key: bundle
            .one_time_pre_key
            .as_ref()
            .map(|k| ec(&k.public_key).map(|key| (k.id, key)))
            .transpose()?,
        signed_pre_key_id: bundle.signed_pre_key.id,
        signed_pre_key: ec(&bundle.signed_pre_key.public_key)?,
        signed_pre_key_signature: bundle.signed_pre_key.signature.to_vec(),
        kyber_pre_key: Some(KyberPreKeyPublic {
            id: bundle.kyber_pre_key.id,
            key: kyber,
            signature: bundle.kyber_pre_key.signature.to_vec(),
        }),
    })
}
