//! Certificate profiles: what each kind of certificate may contain, kept apart from the encoder
//! in [`crate::ca`].
//!
//! A profile is policy: which subject keys a certificate kind accepts, which names it carries,
//! its key usage, extended key usage, basic constraints and default validity. A
//! [`CertificateTemplate`] is the result of applying a profile to a verified request; the RA
//! moves it through approval and the CA encodes and signs it.
//!
//! | kind | subject key | keyUsage (critical) | extKeyUsage | subjectAltName |
//! | --- | --- | --- | --- | --- |
//! | [`CertificateKind::UserIdentity`] | X25519 (RFC 8410) | keyAgreement | `id-kp-confianzaIdentity` | rfc822Name = address |
//! | [`CertificateKind::NoiseServer`] | X25519 | keyAgreement | `id-kp-confianzaNoiseServer` | dNSName = server |
//! | [`CertificateKind::TlsServer`] | RSA, ECDSA, Ed25519 | digitalSignature (ECDHE and TLS 1.3 only: no keyEncipherment) | serverAuth | dNSName(s) |
//! | [`CertificateKind::TlsClient`] | RSA, ECDSA, Ed25519 | digitalSignature | clientAuth | dNSName(s) or rfc822Name |
//! | [`CertificateKind::RaOfficer`] | RSA, ECDSA, Ed25519 | digitalSignature | clientAuth, `id-kp-confianzaRaOfficer` | rfc822Name |
//! | [`CertificateKind::OcspSigner`] | RSA, ECDSA, Ed25519 | digitalSignature | OCSPSigning (+ `id-pkix-ocsp-nocheck`) | none |
//! | [`CertificateKind::IntermediateCa`] | RSA-3072, P-256, Ed25519 | keyCertSign, cRLSign | none | none |
//!
//! Every leaf also carries subjectKeyIdentifier, authorityKeyIdentifier, basicConstraints
//! `cA FALSE` (critical), cRLDistributionPoints and authorityInfoAccess (OCSP + caIssuers).
//!
//! ## User addresses
//!
//! A Confianza address is `local@domain`, so it goes into the SAN as an `rfc822Name`
//! (RFC 5280 4.2.1.6): every X.509 tool shows it, and name constraints on the domain work
//! with no custom code. The subject is `CN=<address>` for readability when the address fits
//! X.520's 64-octet bound on commonName; a longer address gets an empty subject and a critical
//! SAN (RFC 5280 4.1.2.6). Relying parties match the SAN.
//!
//! ## Private OIDs
//!
//! The project's arc is self-assigned from a UUID generated for it,
//! `897c9684-3972-4f54-8ac5-f4b183478f12` ([`CONFIANZA_UUID`]), so it needs no registration and
//! collides with nobody's. X.667's own form for that, `2.25.<the UUID as one integer>`
//! (`2.25.182751133070328630576946556366423035666`), cannot be used: its single 128-bit arc
//! is refused by `const-oid` (arcs are `u32`, deliberately: RustCrypto/formats#1984), hence
//! by `x509-cert`'s decoder, so our own path validation could not read our certificates; and
//! by Go's `crypto/x509` (arcs of at most 31 bits, golang/go#30757), which would reject every
//! certificate carrying the extended key usage or the renewal extension.
//!
//! The same UUID is therefore written under the arc Microsoft set aside for GUID-based OIDs,
//! `1.2.840.113556.1.8000.2554`, which anyone may use without asking: the 32 hex digits are
//! split into groups of 4, 4, 4, 4, 4, 6 and 6 digits, each written in decimal, so every arc
//! fits in 24 bits and every X.509 implementation reads it. The result is
//! `1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682`
//! ([`CONFIANZA_ARC`]; the unit tests derive it from the UUID). It is 35 bytes of DER
//! beside 12 for a registered PEN. Moving to an IANA Private Enterprise Number later is a
//! change of these constants, plus accepting both arcs while certificates issued under this
//! one are still valid.
//!
//! ```text
//! id-confianza                     OBJECT IDENTIFIER ::= {
//!     1 2 840 113556 1 8000 2554 35196 38532 14706 20308 35525 16036227 4689682 }
//! id-kp-confianzaIdentity          ::= { id-confianza 1 1 }  -- user identity keys
//! id-kp-confianzaNoiseServer       ::= { id-confianza 1 2 }  -- server Noise static key
//! id-kp-confianzaRaOfficer         ::= { id-confianza 1 3 }  -- RA officer credentials
//! id-confianza-previousCertificate ::= { id-confianza 2 1 }  -- extension, renewal link
//!     PreviousCertificate ::= CertificateSerialNumber
//! ```

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, Utf8StringRef};
use der::{Decode, Encode, Sequence};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::pkix::KeyUsages;

use crate::limits::{
    MAX_ADDRESS_LEN, MAX_DNS_NAME_LEN, MAX_LEAF_VALIDITY_DAYS, MAX_NAME_ATTRIBUTE_LEN,
    MAX_RSA_BITS, MAX_SAN_ENTRIES, MIN_RSA_BITS,
};
use crate::serial::Serial;
use crate::signer::{
    ID_EC_PUBLIC_KEY, ID_ED25519, ID_X25519, RSA_ENCRYPTION, SECP256R1, SECP384R1,
};

/// The UUID the Confianza arc is made from (see the module documentation).
pub const CONFIANZA_UUID: u128 = 0x897c9684_3972_4f54_8ac5_f4b183478f12;
/// The Confianza private arc: [`CONFIANZA_UUID`] under Microsoft's GUID-based arc (see the
/// module documentation).
pub const CONFIANZA_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap(
    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682",
);
/// Extended key usage of user identity certificates.
pub const ID_KP_CONFIANZA_IDENTITY: ObjectIdentifier = ObjectIdentifier::new_unwrap(
    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.1",
);
/// Extended key usage of the server's Noise static key certificate.
pub const ID_KP_CONFIANZA_NOISE_SERVER: ObjectIdentifier = ObjectIdentifier::new_unwrap(
    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.2",
);
/// Extended key usage of RA officer credentials.
pub const ID_KP_CONFIANZA_RA_OFFICER: ObjectIdentifier = ObjectIdentifier::new_unwrap(
    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.3",
);
/// Non-critical extension naming the serial of the certificate this one renews or re-keys.
pub const ID_CONFIANZA_PREVIOUS_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap(
    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.2.1",
);
/// id-kp-serverAuth (RFC 5280).
pub const ID_KP_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth (RFC 5280).
pub const ID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-kp-OCSPSigning (RFC 5280).
pub const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
pub const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Default validity of leaf certificates: one year.
pub const DEFAULT_LEAF_VALIDITY_DAYS: u32 = 365;
/// Default validity of an intermediate CA: five years.
pub const DEFAULT_INTERMEDIATE_VALIDITY_DAYS: u32 = 5 * 365;
/// Default validity of a root CA: twenty years.
pub const DEFAULT_ROOT_VALIDITY_DAYS: u32 = 20 * 365;

/// The kinds of certificate the CA issues; also the RA's "certificate category".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CertificateKind {
    /// A user's identity key (X25519).
    UserIdentity,
    /// The server's Noise static key (X25519) bound to its DNS name.
    NoiseServer,
    /// A TLS server, from a PKCS#10 request.
    TlsServer,
    /// A TLS client, from a PKCS#10 request.
    TlsClient,
    /// An RA officer's credential, from a PKCS#10 request.
    RaOfficer,
    /// A delegated OCSP responder, from a PKCS#10 request.
    OcspSigner,
    /// An intermediate CA (issued by the root).
    IntermediateCa,
}

impl CertificateKind {
    /// Every kind.
    pub const ALL: [CertificateKind; 7] = [
        Self::UserIdentity,
        Self::NoiseServer,
        Self::TlsServer,
        Self::TlsClient,
        Self::RaOfficer,
        Self::OcspSigner,
        Self::IntermediateCa,
    ];

    /// Stable name, for storage and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::UserIdentity => "identity",
            Self::NoiseServer => "noise-server",
            Self::TlsServer => "tls-server",
            Self::TlsClient => "tls-client",
            Self::RaOfficer => "ra-officer",
            Self::OcspSigner => "ocsp-signer",
            Self::IntermediateCa => "intermediate-ca",
        }
    }

    /// Parses [`CertificateKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The profile for this kind.
    pub fn profile(self) -> Profile {
        use KeyUsages::*;
        let leaf = |key_usage, eku: &'static [ObjectIdentifier], keys, names| Profile {
            kind: self,
            key_usage,
            extended_key_usage: eku,
            ca: None,
            ocsp_nocheck: false,
            default_validity_days: DEFAULT_LEAF_VALIDITY_DAYS,
            subject_keys: keys,
            names,
        };
        match self {
            Self::UserIdentity => leaf(
                KeyAgreement.into(),
                &[ID_KP_CONFIANZA_IDENTITY],
                KeyPolicy::X25519Only,
                NamePolicy::OneAddress,
            ),
            Self::NoiseServer => leaf(
                KeyAgreement.into(),
                &[ID_KP_CONFIANZA_NOISE_SERVER],
                KeyPolicy::X25519Only,
                NamePolicy::OneDnsName,
            ),
            Self::TlsServer => leaf(
                DigitalSignature.into(),
                &[ID_KP_SERVER_AUTH],
                KeyPolicy::Signing,
                NamePolicy::DnsNames,
            ),
            Self::TlsClient => leaf(
                DigitalSignature.into(),
                &[ID_KP_CLIENT_AUTH],
                KeyPolicy::Signing,
                NamePolicy::DnsNamesOrAddress,
            ),
            Self::RaOfficer => leaf(
                DigitalSignature.into(),
                &[ID_KP_CLIENT_AUTH, ID_KP_CONFIANZA_RA_OFFICER],
                KeyPolicy::Signing,
                NamePolicy::OneAddress,
            ),
            Self::OcspSigner => Profile {
                ocsp_nocheck: true,
                ..leaf(
                    DigitalSignature.into(),
                    &[ID_KP_OCSP_SIGNING],
                    KeyPolicy::Signing,
                    NamePolicy::CommonNameOnly,
                )
            },
            Self::IntermediateCa => Profile {
                kind: self,
                key_usage: KeyCertSign | CRLSign,
                extended_key_usage: &[],
                ca: Some(Some(0)),
                ocsp_nocheck: false,
                default_validity_days: DEFAULT_INTERMEDIATE_VALIDITY_DAYS,
                subject_keys: KeyPolicy::CaKeys,
                names: NamePolicy::CommonNameOnly,
            },
        }
    }
}

/// Which subject public keys a profile accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyPolicy {
    /// X25519 only (key agreement certificates).
    X25519Only,
    /// Ed25519, ECDSA P-256/P-384, RSA 2048..=8192.
    Signing,
    /// The CA key types: Ed25519, P-256, RSA-3072.
    CaKeys,
}

/// Which names a profile carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NamePolicy {
    /// Exactly one Confianza address (rfc822Name).
    OneAddress,
    /// Exactly one DNS name.
    OneDnsName,
    /// One or more DNS names.
    DnsNames,
    /// One or more DNS names, or one address.
    DnsNamesOrAddress,
    /// A common name only, no SAN.
    CommonNameOnly,
}

/// Issuance policy for one [`CertificateKind`].
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// The kind this profile is for.
    pub kind: CertificateKind,
    /// keyUsage bits (always critical).
    pub key_usage: der::flagset::FlagSet<KeyUsages>,
    /// extKeyUsage purposes (non-critical); empty means no extension.
    pub extended_key_usage: &'static [ObjectIdentifier],
    /// basicConstraints: `None` for `cA FALSE`, `Some(pathLen)` for a CA.
    pub ca: Option<Option<u8>>,
    /// Whether to add id-pkix-ocsp-nocheck.
    pub ocsp_nocheck: bool,
    /// Validity when the request does not ask for less.
    pub default_validity_days: u32,
    /// Accepted subject keys.
    pub subject_keys: KeyPolicy,
    /// Names carried.
    pub names: NamePolicy,
}

/// A classified subject public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectKeyType {
    /// X25519 (RFC 8410, 1.3.101.110).
    X25519,
    /// Ed25519 (RFC 8410).
    Ed25519,
    /// ECDSA P-256.
    EcP256,
    /// ECDSA P-384.
    EcP384,
    /// RSA with this many modulus bits.
    Rsa(usize),
}

impl SubjectKeyType {
    /// Classifies a `SubjectPublicKeyInfo`, checking its shape (lengths, RSA size bounds).
    pub fn classify(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self, ProfileError> {
        let oid = spki.algorithm.oid;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(ProfileError::MalformedKey)?;
        if oid == ID_X25519 || oid == ID_ED25519 {
            // RFC 8410 section 3: parameters MUST be absent.
            if spki.algorithm.parameters.is_some() || key.len() != 32 {
                return Err(ProfileError::MalformedKey);
            }
            return Ok(if oid == ID_X25519 {
                Self::X25519
            } else {
                Self::Ed25519
            });
        }
        if oid == ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|_| ProfileError::MalformedKey)?;
            let (ty, len) = if curve == SECP256R1 {
                (Self::EcP256, 65)
            } else if curve == SECP384R1 {
                (Self::EcP384, 97)
            } else {
                return Err(ProfileError::UnsupportedKey(curve));
            };
            // Uncompressed points only, as RFC 5480 recommends and every CSR tool emits.
            if key.len() != len || key.first() != Some(&4) {
                return Err(ProfileError::MalformedKey);
            }
            return Ok(ty);
        }
        if oid == RSA_ENCRYPTION {
            let bits = rsa_modulus_bits(key).ok_or(ProfileError::MalformedKey)?;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(ProfileError::WeakOrHugeRsaKey(bits));
            }
            return Ok(Self::Rsa(bits));
        }
        Err(ProfileError::UnsupportedKey(oid))
    }
}

#[derive(Sequence)]
struct RsaPublicKeyRef<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let key = RsaPublicKeyRef::from_der(pkcs1).ok()?;
    let n = key.modulus.as_bytes();
    let first = *n.first()?;
    Some((n.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

impl KeyPolicy {
    fn allows(self, key: SubjectKeyType) -> bool {
        match self {
            Self::X25519Only => key == SubjectKeyType::X25519,
            Self::Signing => key != SubjectKeyType::X25519,
            Self::CaKeys => matches!(
                key,
                SubjectKeyType::Ed25519 | SubjectKeyType::EcP256 | SubjectKeyType::Rsa(3072)
            ),
        }
    }
}

/// Errors from applying a profile to a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The subject key does not parse or has the wrong length.
    #[error("malformed subject public key")]
    MalformedKey,
    /// The key algorithm or curve is not supported.
    #[error("unsupported subject key algorithm {0}")]
    UnsupportedKey(ObjectIdentifier),
    /// RSA outside 2048..=8192 bits.
    #[error("RSA key of {0} bits refused")]
    WeakOrHugeRsaKey(usize),
    /// The profile does not accept this key type.
    #[error("{kind:?} certificates cannot certify a {key:?} key")]
    KeyNotAllowed {
        /// The profile.
        kind: CertificateKind,
        /// The key offered.
        key: SubjectKeyType,
    },
    /// An address that is not `local@domain` in printable ASCII.
    #[error("invalid address")]
    InvalidAddress,
    /// A DNS name that is not a valid host name (wildcards are refused).
    #[error("invalid DNS name")]
    InvalidDnsName,
    /// The names do not fit the profile (missing, too many, wrong kind).
    #[error("names do not fit the {0:?} profile")]
    NamesDoNotFit(CertificateKind),
    /// More than [`MAX_SAN_ENTRIES`] names.
    #[error("too many subjectAltName entries")]
    TooManyNames,
    /// A common name that is empty or longer than the X.520 bound.
    #[error("invalid common name")]
    InvalidCommonName,
    /// Validity of zero days or longer than [`MAX_LEAF_VALIDITY_DAYS`].
    #[error("validity out of bounds")]
    ValidityOutOfBounds,
}

/// A subject alternative name, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubjectName {
    /// A DNS host name (lower-cased).
    Dns(String),
    /// A Confianza / e-mail address `local@domain` (domain lower-cased).
    Address(String),
}

impl SubjectName {
    /// Validates and normalises a DNS name.
    pub fn dns(name: &str) -> Result<Self, ProfileError> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if is_valid_dns_name(&name) {
            Ok(Self::Dns(name))
        } else {
            Err(ProfileError::InvalidDnsName)
        }
    }

    /// Validates and normalises an address `local@domain`.
    pub fn address(address: &str) -> Result<Self, ProfileError> {
        if address.len() > MAX_ADDRESS_LEN {
            return Err(ProfileError::InvalidAddress);
        }
        let (local, domain) = address
            .split_once('@')
            .ok_or(ProfileError::InvalidAddress)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&b));
        let domain = domain.to_ascii_lowercase();
        if !local_ok || !is_valid_dns_name(&domain) || !domain.contains('.') {
            return Err(ProfileError::InvalidAddress);
        }
        Ok(Self::Address(format!("{local}@{domain}")))
    }

    /// The text of the name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Dns(s) | Self::Address(s) => s,
        }
    }

    /// The domain part (the DNS name itself, or the address's domain).
    pub fn domain(&self) -> &str {
        match self {
            Self::Dns(s) => s,
            Self::Address(s) => s.rsplit_once('@').map_or(s.as_str(), |(_, d)| d),
        }
    }
}

fn is_valid_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_DNS_NAME_LEN {
        return false;
    }
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b.first() != Some(&b'-')
            && b.last() != Some(&b'-')
    })
}

/// What the CA will certify: the output of a profile applied to a verified request.
///
/// Only this crate builds one (through [`CertificateTemplate::new`], which applies the
/// profile); the RA carries it to approval and the CA encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateTemplate {
    pub(crate) kind: CertificateKind,
    pub(crate) key_type: SubjectKeyType,
    pub(crate) common_name: Option<String>,
    pub(crate) names: Vec<SubjectName>,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) validity_days: u32,
    pub(crate) previous: Option<Serial>,
}

impl CertificateTemplate {
    /// Applies `kind`'s profile to a subject key and names. `common_name` defaults to the first
    /// name. Checks the key type, the names against the profile, and the limits.
    pub(crate) fn new(
        kind: CertificateKind,
        spki_der: &[u8],
        common_name: Option<&str>,
        names: Vec<SubjectName>,
    ) -> Result<Self, ProfileError> {
        let profile = kind.profile();
        let spki =
            SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|_| ProfileError::MalformedKey)?;
        let key_type = SubjectKeyType::classify(&spki)?;
        if !profile.subject_keys.allows(key_type) {
            return Err(ProfileError::KeyNotAllowed {
                kind,
                key: key_type,
            });
        }
        if names.len() > MAX_SAN_ENTRIES {
            return Err(ProfileError::TooManyNames);
        }
        let addresses = names
            .iter()
            .filter(|n| matches!(n, SubjectName::Address(_)))
            .count();
        let dns = names.len() - addresses;
        let fits = match profile.names {
            NamePolicy::OneAddress => addresses == 1 && dns == 0,
            NamePolicy::OneDnsName => dns == 1 && addresses == 0,
            NamePolicy::DnsNames => dns >= 1 && addresses == 0,
            NamePolicy::DnsNamesOrAddress => {
                (dns >= 1 && addresses == 0) || (addresses == 1 && dns == 0)
            }
            NamePolicy::CommonNameOnly => names.is_empty(),
        };
        if !fits {
            return Err(ProfileError::NamesDoNotFit(kind));
        }
        // The commonName is the first name when it fits X.520's ub-common-name (64); a longer
        // address leaves the subject empty and the (then critical) SAN carries it alone, as
        // RFC 5280 4.1.2.6 describes.
        let common_name = match (common_name, names.first()) {
            (Some(cn), _) => {
                if cn.is_empty()
                    || cn.len() > MAX_NAME_ATTRIBUTE_LEN
                    || cn.chars().any(char::is_control)
                {
                    return Err(ProfileError::InvalidCommonName);
                }
                Some(cn.to_owned())
            }
            (None, Some(n)) => {
                (n.as_str().len() <= MAX_NAME_ATTRIBUTE_LEN).then(|| n.as_str().to_owned())
            }
            (None, None) => return Err(ProfileError::InvalidCommonName),
        };
        Ok(Self {
            kind,
            key_type,
            common_name,
            names,
            spki_der: spki_der.to_vec(),
            validity_days: profile.default_validity_days,
            previous: None,
        })
    }

    /// Asks for a shorter (or, up to the limit, longer) validity than the profile default.
    pub fn with_validity_days(mut self, days: u32) -> Result<Self, ProfileError> {
        let max = if self.kind == CertificateKind::IntermediateCa {
            DEFAULT_INTERMEDIATE_VALIDITY_DAYS * 2
        } else {
            MAX_LEAF_VALIDITY_DAYS
        };
        if days == 0 || days > max {
            return Err(ProfileError::ValidityOutOfBounds);
        }
        self.validity_days = days;
        Ok(self)
    }

    /// Marks this certificate as the renewal or re-key of `previous`.
    pub(crate) fn with_previous(mut self, previous: Serial) -> Self {
        self.previous = Some(previous);
        self
    }

    /// The certificate kind.
    pub fn kind(&self) -> CertificateKind {
        self.kind
    }

    /// The subject key type.
    pub fn key_type(&self) -> SubjectKeyType {
        self.key_type
    }

    /// The subject common name (`None`: empty subject, the SAN names the subject).
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subjectAltName entries.
    pub fn names(&self) -> &[SubjectName] {
        &self.names
    }

    /// DER of the subject public key info.
    pub fn public_key_info_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Validity in days.
    pub fn validity_days(&self) -> u32 {
        self.validity_days
    }

    /// The certificate this one renews, if any.
    pub fn previous(&self) -> Option<Serial> {
        self.previous
    }

    /// DER of the `GeneralNames` for the SAN extension value.
    pub(crate) fn san_der(&self, out: &mut Vec<u8>) -> der::Result<()> {
        use x509_cert::ext::pkix::name::GeneralName;
        let mut list = Vec::with_capacity(self.names.len());
        for n in &self.names {
            list.push(match n {
                SubjectName::Dns(s) => GeneralName::DnsName(Ia5StringRef::new(s)?.into()),
                SubjectName::Address(s) => GeneralName::Rfc822Name(Ia5StringRef::new(s)?.into()),
            });
        }
        list.encode_to_vec(out)?;
        Ok(())
    }

    /// DER of the subject `Name`: `CN=<common name>` as a UTF8String, or the empty sequence.
    pub(crate) fn subject_der(&self) -> der::Result<Vec<u8>> {
        match &self.common_name {
            Some(cn) => encode_simple_name(cn, None),
            None => Ok(vec![0x30, 0x00]),
        }
    }
}

/// Builds the DER of `CN=<cn>[, O=<organisation>]` (UTF8String values, one attribute per RDN):
///
/// ```text
/// Name ::= SEQUENCE OF RelativeDistinguishedName
/// RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
/// AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value DirectoryString }
/// ```
pub fn encode_simple_name(common_name: &str, organisation: Option<&str>) -> der::Result<Vec<u8>> {
    #[derive(Sequence, der::ValueOrd)]
    struct Atv<'a> {
        oid: ObjectIdentifier,
        value: Utf8StringRef<'a>,
    }
    let mut rdns = Vec::with_capacity(2);
    if let Some(o) = organisation {
        rdns.push(der::asn1::SetOfVec::try_from(vec![Atv {
            oid: const_oid::db::rfc4519::O,
            value: Utf8StringRef::new(o)?,
        }])?);
    }
    rdns.push(der::asn1::SetOfVec::try_from(vec![Atv {
        oid: const_oid::db::rfc4519::CN,
        value: Utf8StringRef::new(common_name)?,
    }])?);
    rdns.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arcs of `oid` (const-oid's own iterator).
    fn arcs(oid: &ObjectIdentifier) -> Vec<u32> {
        oid.arcs().collect()
    }

    #[test]
    fn the_arc_is_the_project_uuid_under_the_guid_arc() {
        // Microsoft's GUID arc, then the UUID's hex digits in groups of 4,4,4,4,4,6,6.
        let hex = format!("{CONFIANZA_UUID:032x}");
        let mut expected = vec![1u32, 2, 840, 113_556, 1, 8000, 2554];
        let mut at = 0;
        for width in [4, 4, 4, 4, 4, 6, 6] {
            let group = hex.get(at..at + width).expect("32 hex digits");
            expected.push(u32::from_str_radix(group, 16).expect("hex"));
            at += width;
        }
        assert_eq!(at, 32);
        assert_eq!(arcs(&CONFIANZA_ARC), expected);
        // A version-4, RFC 4122-variant UUID: the randomly generated kind.
        assert_eq!((CONFIANZA_UUID >> 76) & 0xf, 4);
        assert_eq!((CONFIANZA_UUID >> 62) & 0b11, 0b10);
        // The same UUID as X.667's 2.25 form given for the project.
        assert_eq!(
            CONFIANZA_UUID.to_string(),
            "182751133070328630576946556366423035666"
        );
    }

    #[test]
    fn every_private_oid_sits_under_the_arc_and_fits_every_parser() {
        let base = arcs(&CONFIANZA_ARC);
        for (oid, suffix) in [
            (ID_KP_CONFIANZA_IDENTITY, [1, 1]),
            (ID_KP_CONFIANZA_NOISE_SERVER, [1, 2]),
            (ID_KP_CONFIANZA_RA_OFFICER, [1, 3]),
            (ID_CONFIANZA_PREVIOUS_CERTIFICATE, [2, 1]),
        ] {
            let mut expected = base.clone();
            expected.extend(suffix);
            assert_eq!(arcs(&oid), expected, "{oid}");
            // Go's crypto/x509 refuses a certificate with an arc of more than 31 bits.
            assert!(expected.iter().all(|&a| a < 1 << 31), "{oid}");
            // DER round trip through the decoder path validation uses.
            let der = oid.to_der().expect("encode");
            assert_eq!(ObjectIdentifier::from_der(&der).expect("decode"), oid);
        }
    }

    #[test]
    fn the_x667_uuid_form_is_unusable_with_const_oid() {
        // Why the arc is not 2.25.<uuid> (module documentation): const-oid refuses the 128-bit
        // arc, both from text and from DER. If this ever passes, the 2.25 form can be revisited.
        let text = format!("2.25.{CONFIANZA_UUID}.1.1");
        assert!(ObjectIdentifier::new(&text).is_err());
        let mut body = vec![0x69u8]; // 2 * 40 + 25
        let mut groups = Vec::new();
        let mut rest = CONFIANZA_UUID;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8);
            rest >>= 7;
        }
        for (i, g) in groups.iter().enumerate().rev() {
            body.push(if i == 0 { *g } else { g | 0x80 });
        }
        body.extend([1, 1]);
        assert_eq!(body.len(), 22);
        assert!(ObjectIdentifier::from_bytes(&body).is_err());
    }

    fn x25519_spki() -> Vec<u8> {
        let mut v = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
        ];
        v.extend_from_slice(&[9u8; 32]);
        v
    }

    fn ed25519_spki() -> Vec<u8> {
        let mut v = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        v.extend_from_slice(&[9u8; 32]);
        v
    }

    #[test]
    fn identity_profile_accepts_x25519_and_one_address() {
        let addr = SubjectName::address("Alice@Example.ORG").expect("address");
        assert_eq!(addr.as_str(), "Alice@example.org");
        let t = CertificateTemplate::new(
            CertificateKind::UserIdentity,
            &x25519_spki(),
            None,
            vec![addr],
        )
        .expect("template");
        assert_eq!(t.common_name(), Some("Alice@example.org"));
        assert_eq!(t.validity_days(), DEFAULT_LEAF_VALIDITY_DAYS);
    }

    #[test]
    fn identity_profile_refuses_signing_keys_and_tls_refuses_x25519() {
        let addr = SubjectName::address("alice@example.org").expect("address");
        assert!(matches!(
            CertificateTemplate::new(
                CertificateKind::UserIdentity,
                &ed25519_spki(),
                None,
                vec![addr]
            ),
            Err(ProfileError::KeyNotAllowed { .. })
        ));
        let dns = SubjectName::dns("chat.example.org").expect("dns");
        assert!(matches!(
            CertificateTemplate::new(CertificateKind::TlsServer, &x25519_spki(), None, vec![dns]),
            Err(ProfileError::KeyNotAllowed { .. })
        ));
    }

    #[test]
    fn names_must_fit_the_profile() {
        let dns = SubjectName::dns("chat.example.org").expect("dns");
        assert!(matches!(
            CertificateTemplate::new(
                CertificateKind::UserIdentity,
                &x25519_spki(),
                None,
                vec![dns.clone()]
            ),
            Err(ProfileError::NamesDoNotFit(_))
        ));
        assert!(matches!(
            CertificateTemplate::new(CertificateKind::NoiseServer, &x25519_spki(), None, vec![]),
            Err(ProfileError::NamesDoNotFit(_))
        ));
        assert!(
            CertificateTemplate::new(
                CertificateKind::NoiseServer,
                &x25519_spki(),
                None,
                vec![dns]
            )
            .is_ok()
        );
    }

    #[test]
    fn san_entry_limit_at_n_and_n_plus_one() {
        let names = |n: usize| {
            (0..n)
                .map(|i| SubjectName::dns(&format!("h{i}.example.org")).expect("dns"))
                .collect::<Vec<_>>()
        };
        assert!(
            CertificateTemplate::new(
                CertificateKind::TlsServer,
                &ed25519_spki(),
                None,
                names(MAX_SAN_ENTRIES)
            )
            .is_ok()
        );
        assert_eq!(
            CertificateTemplate::new(
                CertificateKind::TlsServer,
                &ed25519_spki(),
                None,
                names(MAX_SAN_ENTRIES + 1)
            )
            .err(),
            Some(ProfileError::TooManyNames)
        );
    }

    #[test]
    fn validity_limit_at_n_and_n_plus_one() {
        let t = CertificateTemplate::new(
            CertificateKind::TlsServer,
            &ed25519_spki(),
            None,
            vec![SubjectName::dns("a.example.org").expect("dns")],
        )
        .expect("template");
        assert!(t.clone().with_validity_days(MAX_LEAF_VALIDITY_DAYS).is_ok());
        assert!(
            t.clone()
                .with_validity_days(MAX_LEAF_VALIDITY_DAYS + 1)
                .is_err()
        );
        assert!(t.with_validity_days(0).is_err());
    }

    #[test]
    fn address_length_at_n_and_n_plus_one() {
        let local = "a".repeat(64);
        // 60 + 1 + 60 + 1 + 63 + 4 = 189 octets: 64 + 1 + 189 = 254.
        let domain = format!(
            "{}.{}.{}.org",
            "b".repeat(60),
            "b".repeat(60),
            "b".repeat(63)
        );
        let at = format!("{local}@{domain}");
        assert_eq!(at.len(), MAX_ADDRESS_LEN);
        let addr = SubjectName::address(&at).expect("address at N");
        let over = format!("{local}@b{domain}");
        assert_eq!(
            SubjectName::address(&over),
            Err(ProfileError::InvalidAddress)
        );
        // Longer than a commonName may be: empty subject, SAN only.
        let t = CertificateTemplate::new(
            CertificateKind::UserIdentity,
            &x25519_spki(),
            None,
            vec![addr],
        )
        .expect("template");
        assert_eq!(t.common_name(), None);
        assert_eq!(t.subject_der().expect("subject"), vec![0x30, 0x00]);
        // An explicit commonName over the X.520 bound is refused; at the bound it is fine.
        let dns = || vec![SubjectName::dns("a.example.org").expect("dns")];
        let cn = "c".repeat(MAX_NAME_ATTRIBUTE_LEN);
        assert!(
            CertificateTemplate::new(
                CertificateKind::TlsServer,
                &ed25519_spki(),
                Some(&cn),
                dns()
            )
            .is_ok()
        );
        let cn = "c".repeat(MAX_NAME_ATTRIBUTE_LEN + 1);
        assert_eq!(
            CertificateTemplate::new(
                CertificateKind::TlsServer,
                &ed25519_spki(),
                Some(&cn),
                dns()
            )
            .err(),
            Some(ProfileError::InvalidCommonName)
        );
    }

    #[test]
    fn name_validation() {
        assert!(SubjectName::dns("*.example.org").is_err());
        assert!(SubjectName::dns("-a.example.org").is_err());
        assert!(SubjectName::dns("a..org").is_err());
        assert!(SubjectName::dns(&"a".repeat(64)).is_err());
        assert!(SubjectName::dns(&"a".repeat(63)).is_ok());
        let long = format!("{}.org", ["a"; 125].join("."));
        assert_eq!(long.len(), MAX_DNS_NAME_LEN);
        assert!(SubjectName::dns(&long).is_ok());
        assert!(SubjectName::dns(&format!("a{long}")).is_err());
        assert!(SubjectName::address("alice").is_err());
        assert!(SubjectName::address("a@b@example.org").is_err());
        assert!(SubjectName::address("al ice@example.org").is_err());
        assert!(SubjectName::address("alice@localhost").is_err());
        assert_eq!(
            SubjectName::address("bob@Chat.Example.org").map(|a| a.domain().to_owned()),
            Ok("chat.example.org".to_owned())
        );
    }

    #[test]
    fn key_classification() {
        let der = x25519_spki();
        let spki = SubjectPublicKeyInfoRef::from_der(&der).expect("spki");
        assert_eq!(SubjectKeyType::classify(&spki), Ok(SubjectKeyType::X25519));
        let mut short = x25519_spki();
        short[1] -= 1;
        short[10] -= 1;
        short.pop();
        let spki = SubjectPublicKeyInfoRef::from_der(&short).expect("spki");
        assert_eq!(
            SubjectKeyType::classify(&spki),
            Err(ProfileError::MalformedKey)
        );
    }

    #[test]
    fn simple_name_parses_back() {
        let der = encode_simple_name("alice@example.org", Some("Example Org")).expect("name");
        let name = x509_cert::name::Name::from_der(&der).expect("parse");
        assert_eq!(name.to_string(), "CN=alice@example.org,O=Example Org");
    }
}
