//! Request intake: PKCS#10 certification requests (RFC 2986) and X25519 identity requests.
//!
//! ```text
//! CertificationRequest ::= SEQUENCE {
//!      certificationRequestInfo CertificationRequestInfo,
//!      signatureAlgorithm       AlgorithmIdentifier,
//!      signature                BIT STRING }
//! ```
//!
//! A PKCS#10 request proves possession of its key by its own signature, which
//! [`parse_csr`] checks over the exact received bytes of `certificationRequestInfo` with
//! [`crate::verify::verify_signature`] before anything else is looked at; the result is a
//! [`VerifiedCsr`], the only thing a TLS, RA officer or OCSP signer template is built from.
//!
//! An X25519 identity key cannot sign a CSR, so the client proves possession with an XEdDSA
//! signature over [`identity_pop_message`]: a domain-separated message binding the address
//! to a fresh RA challenge. XEdDSA lives in the protocol crate; [`verify_identity_request`]
//! takes its verifier as a closure and yields a [`VerifiedIdentityRequest`].

use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::{CertReq, ExtensionReq};

use crate::ca::IssuedCertificate;
use crate::limits::{MAX_CHALLENGE_LEN, MAX_CSR_BYTES, MIN_CHALLENGE_LEN};
use crate::profile::{CertificateKind, CertificateTemplate, NamePolicy, ProfileError, SubjectName};
use crate::verify::SignatureError;

/// Errors from request intake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Larger than [`MAX_CSR_BYTES`].
    #[error("request too large")]
    TooLarge,
    /// PEM armour is broken or has another label.
    #[error("malformed PEM")]
    MalformedPem,
    /// The DER does not parse as a PKCS#10 request.
    #[error("malformed PKCS#10 request")]
    MalformedDer,
    /// A request version other than v1 (0).
    #[error("unsupported request version")]
    UnsupportedVersion,
    /// The request's self-signature does not verify (no proof of possession).
    #[error("request signature invalid: {0}")]
    BadSignature(SignatureError),
    /// The extensionRequest attribute is malformed.
    #[error("malformed extension request")]
    MalformedExtensions,
    /// The XEdDSA proof of possession does not verify.
    #[error("identity proof of possession does not verify")]
    BadProofOfPossession,
    /// A challenge shorter or longer than the limits.
    #[error("challenge length out of bounds")]
    ChallengeLength,
    /// A small-order or otherwise unusable X25519 public key.
    #[error("unusable X25519 public key")]
    WeakX25519Key,
    /// The request does not fit the profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A re-key request whose subject differs from the previous certificate.
    #[error("re-key must keep the previous certificate's subject")]
    SubjectChanged,
}

/// The raw shape, to sign-check the exact received bytes of `certificationRequestInfo`.
#[derive(Sequence)]
struct CertReqRaw<'a> {
    info: AnyRef<'a>,
    algorithm: spki::AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// A PKCS#10 request whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCsr {
    common_name: Option<String>,
    spki_der: Vec<u8>,
    dns_names: Vec<String>,
    addresses: Vec<String>,
}

impl VerifiedCsr {
    /// Subject commonName, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// DER of the subject public key info.
    pub fn public_key_info_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// dNSName entries requested in the extensionRequest SAN.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// rfc822Name entries requested.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// Applies `kind`'s profile. Names come from the requested SAN; if there is none, the
    /// commonName is used as the one name the profile expects (DNS name or address).
    pub fn into_template(self, kind: CertificateKind) -> Result<CertificateTemplate, CsrError> {
        let profile = kind.profile();
        let mut names = Vec::with_capacity(self.dns_names.len() + self.addresses.len());
        if profile.names != NamePolicy::CommonNameOnly {
            for d in &self.dns_names {
                names.push(SubjectName::dns(d)?);
            }
            for a in &self.addresses {
                names.push(SubjectName::address(a)?);
            }
            if let (true, Some(cn)) = (names.is_empty(), &self.common_name) {
                names.push(if cn.contains('@') {
                    SubjectName::address(cn)?
                } else {
                    SubjectName::dns(cn)?
                });
            }
        }
        let cn = if profile.names == NamePolicy::CommonNameOnly {
            self.common_name.as_deref()
        } else {
            None
        };
        Ok(CertificateTemplate::new(kind, &self.spki_der, cn, names)?)
    }

    /// A re-key: the new key from this request, the subject of `previous`, linked to it.
    pub fn into_rekey_template(
        self,
        previous: &IssuedCertificate,
    ) -> Result<CertificateTemplate, CsrError> {
        let t = CertificateTemplate::new(
            previous.kind,
            &self.spki_der,
            previous.common_name.as_deref(),
            previous.names.clone(),
        )?;
        Ok(t.with_previous(previous.serial))
    }
}

/// Parses a PKCS#10 request in PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or DER
/// and checks its signature.
pub fn parse_csr(input: &[u8]) -> Result<VerifiedCsr, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    let trimmed = input.trim_ascii_start();
    let owned;
    let der: &[u8] = if trimmed.starts_with(b"-----BEGIN") {
        let (label, bytes) = der::pem::decode_vec(trimmed).map_err(|_| CsrError::MalformedPem)?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::MalformedPem);
        }
        owned = bytes;
        &owned
    } else {
        input
    };
    let raw = CertReqRaw::from_der(der).map_err(|_| CsrError::MalformedDer)?;
    let req = CertReq::from_der(der).map_err(|_| CsrError::MalformedDer)?;
    if req.info.version != x509_cert::request::Version::V1 {
        return Err(CsrError::UnsupportedVersion);
    }
    let info_der = raw.info.to_der().map_err(|_| CsrError::MalformedDer)?;
    let spki_der = req
        .info
        .public_key
        .to_der()
        .map_err(|_| CsrError::MalformedDer)?;
    let spki =
        spki::SubjectPublicKeyInfoRef::from_der(&spki_der).map_err(|_| CsrError::MalformedDer)?;
    // A signature BIT STRING with unused bits is not a signature (and would let a changed
    // byte pass unnoticed).
    let signature = raw.signature.as_bytes().ok_or(CsrError::MalformedDer)?;
    crate::verify::verify_signature(&spki, &raw.algorithm, &info_der, signature)
        .map_err(CsrError::BadSignature)?;

    let common_name = req
        .info
        .subject
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned());
    let mut dns_names = Vec::new();
    let mut addresses = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid != const_oid::db::rfc5912::ID_EXTENSION_REQ {
            continue;
        }
        for value in attr.values.iter() {
            let exts =
                ExtensionReq::from_der(&value.to_der().map_err(|_| CsrError::MalformedExtensions)?)
                    .map_err(|_| CsrError::MalformedExtensions)?;
            for ext in exts.0 {
                if ext.extn_id != const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
                    continue;
                }
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| CsrError::MalformedExtensions)?;
                for name in san.0 {
                    match name {
                        GeneralName::DnsName(d) => dns_names.push(d.to_string()),
                        GeneralName::Rfc822Name(a) => addresses.push(a.to_string()),
                        // Other name forms are not requested through Confianza profiles.
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(VerifiedCsr {
        common_name,
        spki_der,
        dns_names,
        addresses,
    })
}

/// The message an identity key signs (XEdDSA) to prove possession:
///
/// ```text
/// "Confianza identity PoP v1" || 0x00 || u16be(len(address)) || address || challenge
/// ```
pub fn identity_pop_message(address: &str, challenge: &[u8]) -> Vec<u8> {
    const CONTEXT: &[u8] = b"Confianza identity PoP v1\0";
    let mut m = Vec::with_capacity(CONTEXT.len() + 2 + address.len() + challenge.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(
        &u16::try_from(address.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(address.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// X25519 public keys of small order (RFC 7748 section 6.1 warns about them): the all-zero
/// output they produce would make every Diffie-Hellman with the identity key predictable.
const SMALL_ORDER_X25519: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// DER `SubjectPublicKeyInfo` of an X25519 key (RFC 8410 section 4: algorithm id-X25519,
/// parameters absent, the 32-byte u-coordinate as the BIT STRING).
pub fn x25519_spki_der(public: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
    ];
    let mut v = Vec::with_capacity(44);
    v.extend_from_slice(&PREFIX);
    v.extend_from_slice(public);
    v
}

fn check_x25519(public: &[u8; 32]) -> Result<(), CsrError> {
    // Bit 255 is ignored by X25519 (RFC 7748 section 5); compare with it cleared.
    let mut k = *public;
    if let Some(last) = k.last_mut() {
        *last &= 0x7f;
    }
    if SMALL_ORDER_X25519.iter().any(|bad| {
        let mut b = *bad;
        if let Some(last) = b.last_mut() {
            *last &= 0x7f;
        }
        b == k
    }) {
        return Err(CsrError::WeakX25519Key);
    }
    Ok(())
}

/// An identity enrollment request as received: the X25519 identity key, the address, the RA
/// challenge it answers and the XEdDSA signature over [`identity_pop_message`].
#[derive(Clone, Debug)]
pub struct IdentityRequest<'a> {
    /// X25519 public key (Montgomery u-coordinate).
    pub identity_key: [u8; 32],
    /// The user's address.
    pub address: &'a str,
    /// The challenge the RA handed out for this enrollment.
    pub challenge: &'a [u8],
    /// XEdDSA signature over `identity_pop_message(address, challenge)`.
    pub signature: [u8; 64],
}

/// An identity request whose proof of possession verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentityRequest {
    identity_key: [u8; 32],
    address: SubjectName,
}

impl VerifiedIdentityRequest {
    /// The identity key.
    pub fn identity_key(&self) -> &[u8; 32] {
        &self.identity_key
    }

    /// The (normalised) address.
    pub fn address(&self) -> &SubjectName {
        &self.address
    }

    /// The user identity template.
    pub fn into_template(self) -> Result<CertificateTemplate, CsrError> {
        Ok(CertificateTemplate::new(
            CertificateKind::UserIdentity,
            &x25519_spki_der(&self.identity_key),
            None,
            vec![self.address],
        )?)
    }

    /// A re-key of `previous` (same address) to this new identity key.
    pub fn into_rekey_template(
        self,
        previous: &IssuedCertificate,
    ) -> Result<CertificateTemplate, CsrError> {
        if previous.kind != CertificateKind::UserIdentity
            || previous.names.as_slice() != std::slice::from_ref(&self.address)
        {
            return Err(CsrError::SubjectChanged);
        }
        Ok(self.into_template()?.with_previous(previous.serial))
    }
}

/// Checks an identity request: address syntax, challenge length, key not of small order, and
/// the XEdDSA signature through `verify_xeddsa(public_key, message, signature)`.
pub fn verify_identity_request(
    request: &IdentityRequest<'_>,
    verify_xeddsa: impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) -> Result<VerifiedIdentityRequest, CsrError> {
    if !(MIN_CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&request.challenge.len()) {
        return Err(CsrError::ChallengeLength);
    }
    let address = SubjectName::address(request.address)?;
    check_x25519(&request.identity_key)?;
    let message = identity_pop_message(address.as_str(), request.challenge);
    if !verify_xeddsa(&request.identity_key, &message, &request.signature) {
        return Err(CsrError::BadProofOfPossession);
    }
    Ok(VerifiedIdentityRequest {
        identity_key: request.identity_key,
        address,
    })
}

/// The template for the server's own Noise static key certificate (X25519 key bound to the
/// server's DNS name). The operator generated the key on this machine, so there is no proof of
/// possession to check; approval is by the CA operator.
pub fn noise_server_template(
    static_key: &[u8; 32],
    dns_name: &str,
) -> Result<CertificateTemplate, CsrError> {
    check_x25519(static_key)?;
    Ok(CertificateTemplate::new(
        CertificateKind::NoiseServer,
        &x25519_spki_der(static_key),
        None,
        vec![SubjectName::dns(dns_name)?],
    )?)
}

/// The template for an intermediate CA key (generated by the operator next to the root).
pub fn intermediate_template(
    spki_der: &[u8],
    common_name: &str,
) -> Result<CertificateTemplate, CsrError> {
    Ok(CertificateTemplate::new(
        CertificateKind::IntermediateCa,
        spki_der,
        Some(common_name),
        Vec::new(),
    )?)
}

/// A renewal of `previous`: same key, same subject, linked to it.
pub fn renewal_template(previous: &IssuedCertificate) -> Result<CertificateTemplate, CsrError> {
    let cert = previous.certificate().map_err(|_| CsrError::MalformedDer)?;
    let spki_der = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| CsrError::MalformedDer)?;
    let cn = (previous.kind.profile().names == NamePolicy::CommonNameOnly)
        .then_some(previous.common_name.as_deref())
        .flatten();
    Ok(
        CertificateTemplate::new(previous.kind, &spki_der, cn, previous.names.clone())?
            .with_previous(previous.serial),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_typed() {
        assert_eq!(
            parse_csr(b"\x30\x03\x02\x01\x00"),
            Err(CsrError::MalformedDer)
        );
        assert_eq!(parse_csr(b""), Err(CsrError::MalformedDer));
        assert_eq!(
            parse_csr(
                b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n"
            ),
            Err(CsrError::MalformedPem)
        );
        assert_eq!(
            parse_csr(b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
            Err(CsrError::MalformedPem)
        );
    }

    #[test]
    fn size_limit_at_n_and_n_plus_one() {
        let at = vec![0u8; MAX_CSR_BYTES];
        assert_eq!(parse_csr(&at), Err(CsrError::MalformedDer));
        let over = vec![0u8; MAX_CSR_BYTES + 1];
        assert_eq!(parse_csr(&over), Err(CsrError::TooLarge));
    }

    fn request<'a>(challenge: &'a [u8], key: [u8; 32]) -> IdentityRequest<'a> {
        IdentityRequest {
            identity_key: key,
            address: "alice@example.org",
            challenge,
            signature: [7u8; 64],
        }
    }

    #[test]
    fn identity_request_checks() {
        let key = [9u8; 32];
        let challenge = [1u8; MIN_CHALLENGE_LEN];
        let ok = |k: &[u8; 32], m: &[u8], s: &[u8; 64]| {
            k == &[9u8; 32]
                && m == identity_pop_message("alice@example.org", &[1u8; 16])
                && s == &[7u8; 64]
        };
        let verified = verify_identity_request(&request(&challenge, key), ok).expect("verified");
        assert_eq!(verified.address().as_str(), "alice@example.org");
        assert_eq!(
            verify_identity_request(&request(&challenge, key), |_, _, _| false),
            Err(CsrError::BadProofOfPossession)
        );
        let short = [1u8; MIN_CHALLENGE_LEN - 1];
        assert_eq!(
            verify_identity_request(&request(&short, key), |_, _, _| true),
            Err(CsrError::ChallengeLength)
        );
        let long = [1u8; MAX_CHALLENGE_LEN + 1];
        assert_eq!(
            verify_identity_request(&request(&long, key), |_, _, _| true),
            Err(CsrError::ChallengeLength)
        );
        let max = [1u8; MAX_CHALLENGE_LEN];
        assert!(verify_identity_request(&request(&max, key), |_, _, _| true).is_ok());
        for bad in SMALL_ORDER_X25519 {
            assert_eq!(
                verify_identity_request(&request(&challenge, bad), |_, _, _| true),
                Err(CsrError::WeakX25519Key)
            );
        }
    }

    #[test]
    fn signature_with_unused_bits_is_malformed() {
        // Structure only (the signature is never checked): info, Ed25519 algorithm, and a BIT
        // STRING whose unused-bits octet is 1.
        let der = [
            0x30, 0x12, // CertificationRequest
            0x30, 0x00, // info (empty, skipped by the raw view)
            0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // id-Ed25519
            0x03, 0x03, 0x01, 0xaa, 0xaa, // BIT STRING, 1 unused bit
            0x00, 0x00, 0x00, 0x00,
        ];
        assert!(parse_csr(&der).is_err());
    }

    #[test]
    fn pop_message_binds_address() {
        assert_ne!(
            identity_pop_message("a@example.org", b"xy"),
            identity_pop_message("a@example.orgx", b"y")
        );
    }
}
