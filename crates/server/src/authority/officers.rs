//! RA officers: each with its own credential (an RA-officer certificate from the issuing CA
//! and its Ed25519 key, in one file the officer keeps), added, disabled and authenticated
//! here; and what an authenticated officer may do (enrollment codes, revocation).
//!
//! A credential file is two PEM blocks: `CERTIFICATE` then either `PRIVATE KEY` (PKCS#8,
//! plain; the file is written 0600) or `CONFIANZA SEALED KEY` (the PKCS#8 key sealed under the
//! officer's passphrase with Argon2id + AEAD, `confianza_pki::seal`).

use std::time::SystemTime;

use confianza_pki::ca::{IssuedCertificate, pem_encode};
use confianza_pki::crl::{self, RevocationReason};
use confianza_pki::csr;
use confianza_pki::profile::{CertificateKind, SubjectName};
use confianza_pki::ra::{Actor, ApprovedRequest, RaOfficer, RaScope};
use confianza_pki::seal::{self, SealParams};
use confianza_pki::signer::CaKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::{Authority, AuthorityError, issued_from_record, parse_serial, unix};
use crate::store::StoreError;
use crate::store::ca::{CaStore, OfficerRecord};

/// PEM label of a sealed officer key inside a credential file.
pub const SEALED_KEY_LABEL: &str = "CONFIANZA SEALED KEY";

/// PEM label of a plain PKCS#8 officer key inside a credential file.
pub const PLAIN_KEY_LABEL: &str = "PRIVATE KEY";

/// Largest credential file read (a certificate and a sealed key are a few KiB).
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

/// Who the CA operator is when adding or disabling officers at the console.
const CONSOLE_OPERATOR: &str = "console";

/// The certificate kinds an officer added with `ra officers add` handles.
pub const OFFICER_KINDS: [CertificateKind; 3] = [
    CertificateKind::UserIdentity,
    CertificateKind::TlsServer,
    CertificateKind::TlsClient,
];

/// A new officer's credential, to be written to the file the officer keeps.
pub struct NewCredential {
    /// The officer's name (its credential's address).
    pub name: String,
    /// Serial (hex) of the credential certificate.
    pub serial_hex: String,
    /// The credential file's bytes (certificate and key, PEM); secret.
    pub file: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("name", &self.name)
            .field("serial_hex", &self.serial_hex)
            .finish_non_exhaustive()
    }
}

/// A credential file's parts: the certificate DER, the key block's PEM label and its bytes.
struct CredentialParts {
    cert_der: Vec<u8>,
    key_label: String,
    key: Zeroizing<Vec<u8>>,
}

/// Splits a credential file into its certificate DER and its (possibly sealed) key block.
fn split_credential(bytes: &[u8]) -> Result<CredentialParts, AuthorityError> {
    let bad = |why: &str| AuthorityError::InvalidRequest(format!("RA credential: {why}"));
    if bytes.len() > MAX_CREDENTIAL_BYTES {
        return Err(bad("file too large"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not PEM"))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let end_marker = after
            .find("-----END ")
            .ok_or_else(|| bad("unterminated PEM"))?;
        let close = after[end_marker + 9..]
            .find("-----")
            .ok_or_else(|| bad("unterminated PEM"))?;
        let block_end = end_marker + 9 + close + 5;
        blocks.push(&after[..block_end]);
        rest = &after[block_end..];
    }
    let [cert, key] = blocks.as_slice() else {
        return Err(bad("expected a certificate and a key"));
    };
    let (label, cert_der) = der::pem::decode_vec(cert.as_bytes()).map_err(|_| bad("bad PEM"))?;
    if label != "CERTIFICATE" {
        return Err(bad("the first block is not a certificate"));
    }
    let (label, key_der) = der::pem::decode_vec(key.as_bytes()).map_err(|_| bad("bad PEM"))?;
    Ok(CredentialParts {
        cert_der,
        key_label: label.to_owned(),
        key: Zeroizing::new(key_der),
    })
}

/// Validates an officer name: an address (user@domain, at most
/// `confianza_pki::limits::MAX_ADDRESS_LEN` octets), in its normal form.
pub fn officer_name(name: &str) -> Result<String, AuthorityError> {
    Ok(SubjectName::address(name)?.as_str().to_owned())
}

impl Authority {
    /// Whether an officer scope entry (normalised by [`RaScope::parse_entry`]) stays inside the
    /// CA's domains: its host is one of them or below one (dNSName subtree rule).
    fn within_ca_domains(&self, entry: &str) -> bool {
        let host = entry
            .rsplit_once('@')
            .map_or(entry, |(_, host)| host)
            .trim_start_matches('.');
        let Ok(host) = SubjectName::dns(host) else {
            return false;
        };
        self.inner
            .config
            .domains
            .iter()
            .any(|domain| RaScope::entry_covers(domain, &host))
    }

    /// The operator console's officer (the one `init` made), or why its credential is unusable.
    pub fn console_officer(&self) -> Result<&RaOfficer, AuthorityError> {
        self.inner
            .officer
            .as_ref()
            .map_err(|e| AuthorityError::Refused(e.clone()))
    }

    /// Adds an RA officer `name` (an address) for `domains` (empty: the CA's domains): issues
    /// an RA-officer certificate for a fresh Ed25519 key (approved by the CA operator at the
    /// console), records it and the officer, and returns the credential file, its key sealed
    /// under `passphrase` (plain when `None`; write the file 0600 either way).
    pub async fn add_officer(
        &self,
        name: &str,
        domains: &[String],
        passphrase: Option<&[u8]>,
        seal_params: SealParams,
        now: SystemTime,
    ) -> Result<NewCredential, AuthorityError> {
        let name = officer_name(name)?;
        let mut scope_domains = Vec::with_capacity(domains.len());
        for d in domains {
            let entry = RaScope::parse_entry(d)?;
            if !self.within_ca_domains(&entry) {
                return Err(AuthorityError::InvalidRequest(format!(
                    "{entry} is not within this CA's domains ({})",
                    self.inner.config.domains.join(", ")
                )));
            }
            scope_domains.push(entry);
        }
        if scope_domains.is_empty() {
            scope_domains = self.inner.config.domains.clone();
        }
        if self
            .inner
            .store
            .officers()
            .await?
            .iter()
            .any(|o| o.name == name)
        {
            return Err(AuthorityError::InvalidRequest(format!(
                "RA officer {name} exists"
            )));
        }
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rng());
        let template = csr::parse_csr(&super::init::ed25519_csr(&key, &name, Some(&name))?)?
            .into_template(CertificateKind::RaOfficer)?;
        let id = self.inner.store.next_request_id().await?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        let approved = ApprovedRequest::by_ca_operator(request_id, template, CONSOLE_OPERATOR, now);
        let issued = self.issue_and_record(approved, &name, None, now).await?;
        let pkcs8 = Zeroizing::new(
            key.to_pkcs8_der()
                .map_err(|_| AuthorityError::Config("cannot encode the RA officer key".into()))?
                .as_bytes()
                .to_vec(),
        );
        let key_block = match passphrase {
            Some(p) => {
                let sealed = seal::seal(p, &pkcs8, seal_params, &mut rand::rng())
                    .map_err(|e| AuthorityError::Corrupt(format!("cannot seal key: {e}")))?;
                pem_encode(SEALED_KEY_LABEL, &sealed)
            }
            None => pem_encode(PLAIN_KEY_LABEL, &pkcs8),
        };
        let mut file = Zeroizing::new(pem_encode("CERTIFICATE", &issued.der).into_bytes());
        file.extend_from_slice(key_block.as_bytes());
        let record = OfficerRecord {
            name: name.clone(),
            credential_serial: issued.serial.to_hex(),
            kinds: OFFICER_KINDS.iter().map(|k| k.name().to_owned()).collect(),
            domains: scope_domains,
            created_at: unix(now),
            disabled_at: None,
        };
        if let Err(e) = self.inner.store.add_officer(record).await {
            // Added concurrently: the credential just issued must not stay usable.
            self.revoke_officer_credential(&issued, now).await?;
            return Err(e.into());
        }
        Ok(NewCredential {
            name,
            serial_hex: issued.serial.to_hex(),
            file,
        })
    }

    async fn revoke_officer_credential(
        &self,
        issued: &IssuedCertificate,
        now: SystemTime,
    ) -> Result<(), AuthorityError> {
        let revocation = crl::Revocation {
            serial: issued.serial,
            reason: RevocationReason::PrivilegeWithdrawn,
            revoked_at: now,
            by: Actor::CaOperator(CONSOLE_OPERATOR.into()),
        };
        self.record_revocation(&issued.serial.to_hex(), revocation)
            .await
    }

    /// Disables officer `name` and revokes its credential (privilegeWithdrawn). The
    /// operator console's officer cannot be disabled.
    pub async fn disable_officer(&self, name: &str, now: SystemTime) -> Result<(), AuthorityError> {
        let name = officer_name(name)?;
        if name == self.inner.config.operator_officer {
            return Err(AuthorityError::InvalidRequest(
                "the operator console's officer cannot be disabled".into(),
            ));
        }
        let record = self.officer_record(&name).await?;
        if record.disabled_at.is_some() {
            return Err(AuthorityError::InvalidRequest(format!(
                "RA officer {name} is already disabled"
            )));
        }
        match self.inner.store.disable_officer(&name, unix(now)).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(AuthorityError::InvalidRequest(format!(
                    "RA officer {name} is already disabled"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let cert = self.certificate(&record.credential_serial).await?;
        if cert.revocation.is_none() {
            self.revoke_officer_credential(&issued_from_record(&cert)?, now)
                .await?;
        }
        Ok(())
    }

    async fn officer_record(&self, name: &str) -> Result<OfficerRecord, AuthorityError> {
        self.inner
            .store
            .officers()
            .await?
            .into_iter()
            .find(|o| o.name == name)
            .ok_or_else(|| AuthorityError::InvalidRequest(format!("no RA officer {name}")))
    }

    /// Authenticates officer `name` by its credential file: the certificate must be the
    /// officer's recorded credential, issued by this CA, valid now and not revoked; the
    /// officer must be active; the key (opened with `passphrase` when sealed) must be the
    /// certificate's.
    pub async fn authenticate_officer(
        &self,
        name: &str,
        credential: &[u8],
        passphrase: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<RaOfficer, AuthorityError> {
        let name = officer_name(name)?;
        let CredentialParts {
            cert_der,
            key_label: label,
            key: key_block,
        } = split_credential(credential)?;
        let pkcs8 = match label.as_str() {
            SEALED_KEY_LABEL => {
                let passphrase = passphrase.ok_or_else(|| {
                    AuthorityError::InvalidRequest(
                        "RA credential: the key is sealed and no passphrase was given \
                         (CONFIANZA_OFFICER_PASSPHRASE)"
                            .into(),
                    )
                })?;
                match seal::open(passphrase, &key_block) {
                    Ok(secret) => Zeroizing::new(secret.as_bytes().to_vec()),
                    Err(seal::OpenError::WrongPassphraseOrCorrupt) => {
                        return Err(AuthorityError::WrongPassphrase);
                    }
                    Err(e) => {
                        return Err(AuthorityError::InvalidRequest(format!(
                            "RA credential: {e}"
                        )));
                    }
                }
            }
            PLAIN_KEY_LABEL => key_block,
            _ => {
                return Err(AuthorityError::InvalidRequest(
                    "RA credential: the second block is not a key".into(),
                ));
            }
        };
        let key = CaKey::from_pkcs8_der(&pkcs8)?;
        let cert = <Certificate as der::Decode>::from_der(&cert_der)?;
        let cert_spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())?;
        if key.public_key_info_der() != cert_spki.as_slice() {
            return Err(AuthorityError::Refused(
                "the credential's key is not its certificate's".into(),
            ));
        }
        let record = self.officer_record(&name).await?;
        if record.disabled_at.is_some() {
            return Err(AuthorityError::Refused(format!(
                "RA officer {name} is disabled"
            )));
        }
        let officer = RaOfficer::from_credential(
            &cert_der,
            self.inner.intermediate.certificate_der(),
            now,
            scope_of(&record)?,
        )
        .map_err(|e| AuthorityError::Refused(e.to_string()))?;
        if officer.id().credential.to_hex() != record.credential_serial || officer.id().name != name
        {
            return Err(AuthorityError::Refused(format!(
                "this is not the credential of RA officer {name}"
            )));
        }
        let stored = self.certificate(&record.credential_serial).await?;
        if stored.der != cert_der {
            return Err(AuthorityError::NotOurCertificate);
        }
        if stored.revocation.is_some() {
            return Err(AuthorityError::Revoked(stored.serial));
        }
        Ok(officer)
    }

    /// Revocation asked by an RA officer, within the officer's scope and with a reason an
    /// officer may give; recorded as the officer's.
    pub async fn revoke_by_officer(
        &self,
        officer: &RaOfficer,
        serial: &str,
        reason: RevocationReason,
        now: SystemTime,
    ) -> Result<(), AuthorityError> {
        let serial = parse_serial(serial)?.to_hex();
        let record = self.certificate(&serial).await?;
        if record.revocation.is_some() {
            return Err(AuthorityError::Revoked(serial));
        }
        let issued = issued_from_record(&record)?;
        let revocation = officer
            .revoke(&issued, reason, now)
            .map_err(|e| AuthorityError::Refused(e.to_string()))?;
        self.record_revocation(&serial, revocation).await
    }
}

/// The scope recorded for an officer.
fn scope_of(record: &OfficerRecord) -> Result<RaScope, AuthorityError> {
    let kinds = record
        .kinds
        .iter()
        .map(|k| {
            CertificateKind::from_name(k)
                .ok_or_else(|| AuthorityError::Corrupt(format!("officer kind {k:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RaScope {
        kinds,
        domains: record.domains.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential_of_size(len: usize) -> Vec<u8> {
        let cert = pem_encode("CERTIFICATE", &[0x30, 0x00]);
        let key = pem_encode(PLAIN_KEY_LABEL, &[0x30, 0x00]);
        let mut text = format!("{cert}{key}").into_bytes();
        // Trailing blank lines are outside every PEM block.
        text.resize(len, b'\n');
        text
    }

    #[test]
    fn credential_files_are_bounded() {
        let parts = split_credential(&credential_of_size(MAX_CREDENTIAL_BYTES)).expect("at N");
        assert_eq!(parts.cert_der, [0x30, 0x00]);
        assert_eq!(parts.key_label, PLAIN_KEY_LABEL);
        let e = split_credential(&credential_of_size(MAX_CREDENTIAL_BYTES + 1))
            .err()
            .expect("N + 1 refused");
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn credential_files_need_a_certificate_then_a_key() {
        let cert = pem_encode("CERTIFICATE", &[0x30, 0x00]);
        let key = pem_encode(PLAIN_KEY_LABEL, &[0x30, 0x00]);
        for bad in [
            String::new(),
            cert.clone(),
            format!("{key}{cert}"),
            format!("{cert}{key}{key}"),
            cert.replace("-----END CERTIFICATE-----", ""),
        ] {
            assert!(split_credential(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(split_credential(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn officer_names_are_bounded_addresses() {
        let max = confianza_pki::limits::MAX_ADDRESS_LEN;
        let domain = format!(
            "{}.{}.{}.org",
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(63)
        );
        let at_limit = format!("{}@{domain}", "a".repeat(max - 1 - domain.len()));
        assert_eq!(at_limit.len(), max);
        assert!(officer_name(&at_limit).is_ok(), "at N");
        assert!(officer_name(&format!("a{at_limit}")).is_err(), "N + 1");
        assert!(officer_name("carol").is_err());
        assert!(officer_name("carol@").is_err());
    }
}
