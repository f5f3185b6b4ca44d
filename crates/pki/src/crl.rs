//! Building X.509 v2 CRLs (RFC 5280 section 5), fast enough for a million entries.
//!
//! ```text
//! CertificateList  ::=  SEQUENCE  {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//!
//! TBSCertList  ::=  SEQUENCE  {
//!      version                 Version OPTIONAL,     -- v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,        -- always present here
//!      revokedCertificates     SEQUENCE OF SEQUENCE  {
//!           userCertificate         CertificateSerialNumber,
//!           revocationDate          Time,
//!           crlEntryExtensions      Extensions OPTIONAL  -- reasonCode
//!                                }  OPTIONAL,
//!      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL  }
//!                              -- cRLNumber, authorityKeyIdentifier,
//!                              -- issuingDistributionPoint (critical)
//! ```
//!
//! Entries are written straight into one pre-sized buffer: the serial (always 16 content
//! octets, see [`crate::serial`]), the revocation date through der's `UtcTime` /
//! `GeneralizedTime`, and a reasonCode extension whose DER is built once per reason with the
//! typed encoder. No per-entry x509-cert structures are built: for a million entries that is
//! the difference between a few hundred milliseconds and many seconds (see
//! `benches/issue.rs`). The unspecified reason is written as an absent reasonCode, as RFC 5280
//! 5.3.1 asks.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS,
    ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::asn1::{BitStringRef, GeneralizedTime};
use der::{Encode, Tag};
use x509_cert::ext::pkix::{CrlReason, IssuingDistributionPoint};

use crate::ca::{
    Issuer, IssuerRole, crl_distribution_point_name, header_len, push_extension, write_header,
};
use crate::limits::{MAX_CRL_ENTRIES, SERIAL_RANDOM_BYTES};
use crate::ra::Actor;
use crate::serial::Serial;
use crate::signer::KeyError;

/// Default CRL lifetime: thisUpdate + 7 days.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);

/// RFC 5280 5.3.1 reason codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6).
    CertificateHold,
    /// removeFromCRL (8).
    RemoveFromCrl,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        self.to_x509() as u8
    }

    /// From a CRLReason code (7 is unused in RFC 5280).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    fn to_x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::RemoveFromCrl => CrlReason::RemoveFromCRL,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            Self::AaCompromise => CrlReason::AaCompromise,
        }
    }
}

/// A revocation decided by the RA (holder or officer), to be stored and listed in CRLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked certificate.
    pub serial: Serial,
    /// Why.
    pub reason: RevocationReason,
    /// When.
    pub revoked_at: SystemTime,
    /// Who asked.
    pub by: Actor,
}

impl Revocation {
    /// The CRL entry for this revocation.
    pub fn entry(&self) -> RevokedEntry {
        RevokedEntry {
            serial: self.serial,
            revoked_at: self.revoked_at,
            reason: self.reason,
        }
    }
}

/// One CRL entry (compact: what storage hands to the CRL builder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial of the revoked certificate.
    pub serial: Serial,
    /// revocationDate.
    pub revoked_at: SystemTime,
    /// reasonCode.
    pub reason: RevocationReason,
}

/// Errors from building a CRL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// More than [`MAX_CRL_ENTRIES`].
    #[error("too many CRL entries")]
    TooManyEntries,
    /// The issuer has no CRL URL for the issuingDistributionPoint.
    #[error("the issuer has no CRL URL configured")]
    NoUrl,
    /// nextUpdate is not after thisUpdate.
    #[error("nextUpdate must be after thisUpdate")]
    BadUpdateTimes,
    /// Encoding failed (a time out of range, a length overflow).
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Parameters of one CRL.
#[derive(Clone, Copy, Debug)]
pub struct CrlParams {
    /// cRLNumber: monotonically increasing per issuer (the server keeps the counter).
    pub crl_number: u64,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate.
    pub next_update: SystemTime,
}

impl CrlParams {
    /// `crl_number`, valid from `now` for [`DEFAULT_CRL_VALIDITY`].
    pub fn new(crl_number: u64, now: SystemTime) -> Self {
        Self {
            crl_number,
            this_update: now,
            next_update: now + DEFAULT_CRL_VALIDITY,
        }
    }
}

/// 2050-01-01T00:00:00Z: from here on RFC 5280 4.1.2.5 wants GeneralizedTime.
const Y2050: u64 = 2_524_608_000;

fn unix_seconds(t: SystemTime) -> Result<u64, CrlError> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| CrlError::Encoding(der::Tag::UtcTime.value_error().into()))
}

/// Encoded length of a time: UTCTime `YYMMDDHHMMSSZ` (13) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ` (15), plus tag and length.
fn time_len(secs: u64) -> usize {
    if secs < Y2050 { 15 } else { 17 }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the "civil from days" algorithm: eras of 400 years, March-based years).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes a revocation date. UTCTime (every date before 2050, i.e. every date a CA running
/// today writes) is formatted directly, which is most of the CRL writer's speed; later dates go
/// through der's GeneralizedTime. Equality with der's own UtcTime encoding is tested.
fn push_time(out: &mut Vec<u8>, secs: u64) -> Result<(), CrlError> {
    if secs >= Y2050 {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        GeneralizedTime::from_system_time(t)?.encode_to_vec(out)?;
        return Ok(());
    }
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let fields = [
        year % 100,
        month,
        day,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
    ];
    out.push(0x17); // UTCTime
    out.push(13);
    for f in fields {
        // Every field is below 100; `as u8` cannot truncate.
        out.push(b'0' + (f / 10) as u8);
        out.push(b'0' + (f % 10) as u8);
    }
    out.push(b'Z');
    Ok(())
}

/// `crlEntryExtensions` DER for each reason (empty for unspecified), built once.
fn reason_extensions() -> der::Result<Vec<Vec<u8>>> {
    RevocationReason::ALL
        .iter()
        .map(|r| {
            if *r == RevocationReason::Unspecified {
                return Ok(Vec::new());
            }
            let mut ext = Vec::with_capacity(16);
            push_extension(&mut ext, ID_CE_CRL_REASONS, false, &r.to_x509().to_der()?)?;
            let mut seq = Vec::with_capacity(20);
            write_header(&mut seq, Tag::Sequence, ext.len())?;
            seq.extend_from_slice(&ext);
            Ok(seq)
        })
        .collect()
}

fn reason_index(r: RevocationReason) -> usize {
    RevocationReason::ALL
        .iter()
        .position(|x| *x == r)
        .unwrap_or_default()
}

fn check_entry_count(n: usize) -> Result<(), CrlError> {
    if n > MAX_CRL_ENTRIES {
        return Err(CrlError::TooManyEntries);
    }
    Ok(())
}

/// Serial INTEGER: tag, length 16, content (the [`Serial`] invariant keeps it positive and
/// minimal).
const SERIAL_DER_LEN: usize = 2 + SERIAL_RANDOM_BYTES;

/// Builds and signs a CRL for `issuer` listing `revoked`. The issuingDistributionPoint names
/// the issuer's CRL URL and, for an intermediate, onlyContainsUserCerts; for the root,
/// onlyContainsCACerts.
pub fn build_crl(
    issuer: &Issuer,
    params: &CrlParams,
    revoked: &[RevokedEntry],
) -> Result<Vec<u8>, CrlError> {
    check_entry_count(revoked.len())?;
    if params.next_update <= params.this_update {
        return Err(CrlError::BadUpdateTimes);
    }
    let url = issuer.urls().ok_or(CrlError::NoUrl)?;
    let reasons = reason_extensions()?;

    // crlExtensions.
    let mut crl_exts = Vec::with_capacity(160);
    let number = der::asn1::Uint::new(&params.crl_number.to_be_bytes())?;
    push_extension(&mut crl_exts, ID_CE_CRL_NUMBER, false, &number.to_der()?)?;
    let aki = x509_cert::ext::pkix::AuthorityKeyIdentifier {
        key_identifier: Some(der::asn1::OctetString::new(issuer.key_id().as_slice())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    push_extension(
        &mut crl_exts,
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
        false,
        &aki.to_der()?,
    )?;
    let root = issuer.role() == IssuerRole::Root;
    let idp = IssuingDistributionPoint {
        distribution_point: Some(crl_distribution_point_name(&url.crl)?),
        only_contains_user_certs: !root,
        only_contains_ca_certs: root,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    };
    push_extension(
        &mut crl_exts,
        ID_CE_ISSUING_DISTRIBUTION_POINT,
        true,
        &idp.to_der()?,
    )?;

    // Lengths first, so every header is written once and the buffer never grows.
    let mut entries_len = 0usize;
    for e in revoked {
        let content = SERIAL_DER_LEN
            + time_len(unix_seconds(e.revoked_at)?)
            + reasons.get(reason_index(e.reason)).map_or(0, Vec::len);
        entries_len += header_len(content)? + content;
    }
    let this_update = unix_seconds(params.this_update)?;
    let next_update = unix_seconds(params.next_update)?;
    let sig_alg = issuer.signature_algorithm_der();
    let version = [0x02, 0x01, 0x01];
    let crl_exts_seq = header_len(crl_exts.len())? + crl_exts.len();
    let crl_exts_wrapped = header_len(crl_exts_seq)? + crl_exts_seq;
    let revoked_len = if revoked.is_empty() {
        0
    } else {
        header_len(entries_len)? + entries_len
    };
    let tbs_content = version.len()
        + sig_alg.len()
        + issuer.name_der().len()
        + time_len(this_update)
        + time_len(next_update)
        + revoked_len
        + crl_exts_wrapped;
    let tbs_len = header_len(tbs_content)? + tbs_content;
    // Outer header at most 6 bytes; the signature at most 512 bytes plus its headers.
    const PREFIX: usize = 8;
    let mut out = Vec::with_capacity(PREFIX + tbs_len + sig_alg.len() + 530);
    out.resize(PREFIX, 0);

    write_header(&mut out, Tag::Sequence, tbs_content)?;
    out.extend_from_slice(&version);
    out.extend_from_slice(sig_alg);
    out.extend_from_slice(issuer.name_der());
    push_time(&mut out, this_update)?;
    push_time(&mut out, next_update)?;
    if !revoked.is_empty() {
        write_header(&mut out, Tag::Sequence, entries_len)?;
        for e in revoked {
            let reason = reasons
                .get(reason_index(e.reason))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let secs = unix_seconds(e.revoked_at)?;
            let content = SERIAL_DER_LEN + time_len(secs) + reason.len();
            write_header(&mut out, Tag::Sequence, content)?;
            out.push(0x02);
            out.push(SERIAL_RANDOM_BYTES as u8);
            out.extend_from_slice(e.serial.as_bytes());
            push_time(&mut out, secs)?;
            out.extend_from_slice(reason);
        }
    }
    write_header(
        &mut out,
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(0),
        },
        crl_exts_seq,
    )?;
    write_header(&mut out, Tag::Sequence, crl_exts.len())?;
    out.extend_from_slice(&crl_exts);
    if out.len() != PREFIX + tbs_len {
        return Err(CrlError::Encoding(der::ErrorKind::Overflow.into()));
    }

    let signature = issuer.key().sign(out.get(PREFIX..).unwrap_or_default())?;
    out.extend_from_slice(sig_alg);
    BitStringRef::new(0, &signature)?.encode_to_vec(&mut out)?;

    // The outer SEQUENCE header goes right before the TBS, inside the reserved prefix.
    let mut header = Vec::with_capacity(PREFIX);
    write_header(&mut header, Tag::Sequence, out.len() - PREFIX)?;
    let start = PREFIX
        .checked_sub(header.len())
        .ok_or(CrlError::Encoding(der::ErrorKind::Overflow.into()))?;
    if let Some(slot) = out.get_mut(start..PREFIX) {
        slot.copy_from_slice(&header);
    }
    out.drain(..start);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::IssuerUrls;
    use crate::signer::{CaAlgorithm, CaKey};
    use der::Decode;
    use rand::SeedableRng;
    use x509_cert::crl::CertificateList;

    fn issuer() -> Issuer {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng).expect("key");
        Issuer::new_root(
            key,
            "CRL Test Root",
            None,
            SystemTime::now(),
            None,
            &mut rng,
        )
        .and_then(|i| {
            i.with_urls(IssuerUrls {
                crl: "http://ca.example.org/root.crl".into(),
                ocsp: "http://ca.example.org/ocsp".into(),
                ca_issuers: "http://ca.example.org/root.crt".into(),
            })
        })
        .expect("issuer")
    }

    proptest::proptest! {
        #[test]
        fn fast_time_matches_der(secs in 0u64..4_102_444_800) {
            let mut ours = Vec::new();
            push_time(&mut ours, secs).expect("ours");
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let theirs = x509_cert::time::Time::try_from(t).expect("time").to_der().expect("der");
            proptest::prop_assert_eq!(ours.len(), time_len(secs));
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn entry_limit_at_n_and_n_plus_one() {
        assert!(check_entry_count(MAX_CRL_ENTRIES).is_ok());
        assert!(matches!(
            check_entry_count(MAX_CRL_ENTRIES + 1),
            Err(CrlError::TooManyEntries)
        ));
    }

    #[test]
    fn time_boundaries() {
        for secs in [
            0,
            Y2050 - 1,
            Y2050,
            951_782_400, /* 2000-02-29 */
            4_107_542_399,
        ] {
            let mut ours = Vec::new();
            push_time(&mut ours, secs).expect("ours");
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let theirs = x509_cert::time::Time::try_from(t)
                .expect("time")
                .to_der()
                .expect("der");
            assert_eq!(ours, theirs, "{secs}");
        }
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
        assert_eq!(RevocationReason::from_code(7), None);
        assert_eq!(RevocationReason::AaCompromise.code(), 10);
    }

    #[test]
    fn crl_parses_with_x509_cert() {
        let issuer = issuer();
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let now = SystemTime::now();
        let entries: Vec<RevokedEntry> = RevocationReason::ALL
            .iter()
            .map(|r| RevokedEntry {
                serial: Serial::random(&mut rng),
                revoked_at: now,
                reason: *r,
            })
            .collect();
        let der = build_crl(&issuer, &CrlParams::new(42, now), &entries).expect("crl");
        let crl =
            CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("parse");
        let tbs = &crl.tbs_cert_list;
        let listed = tbs.revoked_certificates.as_ref().expect("entries");
        assert_eq!(listed.len(), entries.len());
        assert_eq!(
            listed[0].serial_number.as_bytes(),
            entries[0].serial.as_bytes()
        );
        assert!(listed[0].crl_entry_extensions.is_none());
        let ext = listed[1].crl_entry_extensions.as_ref().expect("reason");
        assert_eq!(ext[0].extn_value.as_bytes(), &[0x0a, 0x01, 0x01]);
        let crl_exts = tbs.crl_extensions.as_ref().expect("exts");
        assert_eq!(crl_exts.len(), 3);
        assert!(crl_exts[2].critical);
        // The signature verifies with the issuer key.
        let tbs_der = tbs.to_der().expect("tbs");
        let spki = spki::SubjectPublicKeyInfoRef::from_der(issuer.key().public_key_info_der())
            .expect("spki");
        let alg_der = crl.signature_algorithm.to_der().expect("alg");
        let alg = spki::AlgorithmIdentifierRef::from_der(&alg_der).expect("alg");
        crate::verify::verify_signature(&spki, &alg, &tbs_der, crl.signature.raw_bytes())
            .expect("signature");
    }

    #[test]
    fn empty_crl_has_no_revoked_sequence() {
        let issuer = issuer();
        let der = build_crl(&issuer, &CrlParams::new(1, SystemTime::now()), &[]).expect("crl");
        let crl =
            CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("parse");
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
    }

    #[test]
    fn bad_update_times_are_refused() {
        let issuer = issuer();
        let now = SystemTime::now();
        let params = CrlParams {
            crl_number: 1,
            this_update: now,
            next_update: now,
        };
        assert!(matches!(
            build_crl(&issuer, &params, &[]),
            Err(CrlError::BadUpdateTimes)
        ));
    }
}
