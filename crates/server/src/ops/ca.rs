//! `confianza-server ca …`: issuing from CSRs, revocation, CRLs, the chain, the certificate
//! database, and the offline root.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Subcommand, ValueEnum};
use confianza_pki::ca::pem_encode;
use confianza_pki::crl::RevocationReason;
use confianza_pki::profile::CertificateKind;
use confianza_pki::seal::{self, SealParams};
use confianza_pki::signer::CaKey;
use der::Decode;
use serde::Serialize;

use super::{Context, OpsError, obtain_passphrase, read_input, write_output};
use crate::authority::layout::{self, Layout};
use crate::authority::{AuthorityError, init, unix};
use crate::store::ca::{CertificateQuery, CertificateRecord, MAX_LIST_ROWS, StatusFilter};

/// Certificate profiles `ca issue` accepts (user identities are enrolled by clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IssueProfile {
    /// TLS server (serverAuth, DNS names)
    TlsServer,
    /// TLS client (clientAuth)
    TlsClient,
    /// RA officer credential
    RaOfficer,
    /// Delegated OCSP signer
    OcspSigner,
}

impl From<IssueProfile> for CertificateKind {
    fn from(p: IssueProfile) -> Self {
        match p {
            IssueProfile::TlsServer => CertificateKind::TlsServer,
            IssueProfile::TlsClient => CertificateKind::TlsClient,
            IssueProfile::RaOfficer => CertificateKind::RaOfficer,
            IssueProfile::OcspSigner => CertificateKind::OcspSigner,
        }
    }
}

/// `ca list --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Neither revoked nor expired
    Valid,
    /// Revoked
    Revoked,
    /// Expired (and not revoked)
    Expired,
}

/// `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Issue a certificate from a PKCS#10 request (PEM or DER)
    Issue {
        /// The request file
        #[arg(long)]
        csr: PathBuf,
        /// Certificate profile
        #[arg(long, value_enum)]
        profile: IssueProfile,
        /// Where to write the certificate
        #[arg(long)]
        out: PathBuf,
        /// Write DER instead of PEM
        #[arg(long)]
        der: bool,
    },
    /// Revoke a certificate (SERIAL in hexadecimal, as `openssl x509 -serial` prints it)
    Revoke {
        /// The serial
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, privilegeWithdrawn, aACompromise
        #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
        reason: RevocationReason,
    },
    /// Publish a fresh CRL and write it
    Crl {
        /// Where to write it
        #[arg(long)]
        out: PathBuf,
        /// Write DER instead of PEM
        #[arg(long)]
        der: bool,
    },
    /// Reissue the root's CRL (needs the root key online) and write it
    RootCrl {
        /// Where to write it
        #[arg(long)]
        out: PathBuf,
        /// Write DER instead of PEM
        #[arg(long)]
        der: bool,
    },
    /// Renew the service certificates (OCSP signer, the console's RA officer credential,
    /// the server's Noise certificate) from the current intermediate; restart the service
    /// to use them (a running service renews its OCSP signer by itself, and takes this one
    /// when its own is due)
    RenewServiceCerts,
    /// Write the CA chain: intermediate then root, PEM
    Chain {
        /// Where to write it
        #[arg(long)]
        out: PathBuf,
    },
    /// List issued certificates
    List {
        /// Only certificates in this state
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Case-insensitive part of the subject or of a subjectAltName
        #[arg(long)]
        subject: Option<String>,
        /// Most rows to print
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Show one certificate
    Show {
        /// The serial
        serial: String,
    },
    /// Export every issued certificate as JSON (with PEM)
    Export {
        /// Where to write it [default: standard output]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Copy the root key to FILE and remove it from the data directory (offline root)
    ExportRootKey {
        /// Where to write the key (must not exist)
        #[arg(long)]
        out: PathBuf,
    },
    /// Put an exported root key back into the data directory
    ImportRootKey {
        /// The key file written by export-root-key
        file: PathBuf,
    },
    /// Make a new intermediate CA with the root key (which must be imported)
    NewIntermediate,
}

/// Parses an RFC 5280 reason name (case-insensitive) or code.
pub fn parse_reason(text: &str) -> Result<RevocationReason, String> {
    use RevocationReason::*;
    let reason = match text.to_ascii_lowercase().as_str() {
        "unspecified" | "0" => Unspecified,
        "keycompromise" | "1" => KeyCompromise,
        "cacompromise" | "2" => CaCompromise,
        "affiliationchanged" | "3" => AffiliationChanged,
        "superseded" | "4" => Superseded,
        "cessationofoperation" | "5" => CessationOfOperation,
        "privilegewithdrawn" | "9" => PrivilegeWithdrawn,
        "aacompromise" | "10" => AaCompromise,
        "certificatehold" | "removefromcrl" => {
            return Err(format!("{text}: certificate holds are not used by this CA"));
        }
        _ => return Err(format!("{text:?} is not an RFC 5280 revocation reason")),
    };
    Ok(reason)
}

fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
}

fn status_of(record: &CertificateRecord, now: i64) -> &'static str {
    if record.revocation.is_some() {
        "revoked"
    } else if record.not_after <= now {
        "expired"
    } else {
        "valid"
    }
}

/// RFC 3339 UTC of Unix seconds.
pub(super) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian), as in the CRL writer.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// One exported certificate.
#[derive(Debug, Serialize)]
struct Exported<'a> {
    serial: &'a str,
    kind: &'a str,
    subject: &'a str,
    subject_alt_names: &'a [String],
    key_sha256: &'a str,
    not_before: String,
    not_after: String,
    status: &'static str,
    approved_by: &'a str,
    previous_serial: Option<&'a str>,
    revoked_at: Option<String>,
    revocation_reason: Option<&'static str>,
    pem: String,
}

fn exported(record: &CertificateRecord, now: i64) -> Exported<'_> {
    Exported {
        serial: &record.serial,
        kind: &record.kind,
        subject: &record.subject,
        subject_alt_names: &record.sans,
        key_sha256: &record.key_sha256,
        not_before: rfc3339(record.not_before),
        not_after: rfc3339(record.not_after),
        status: status_of(record, now),
        approved_by: &record.approved_by,
        previous_serial: record.previous_serial.as_deref(),
        revoked_at: record.revocation.as_ref().map(|r| rfc3339(r.at)),
        revocation_reason: record.revocation.as_ref().map(|r| reason_name(r.reason)),
        pem: pem_encode("CERTIFICATE", &record.der),
    }
}

/// Runs a `ca` subcommand.
pub async fn run(ctx: &Context, command: CaCommand) -> Result<(), OpsError> {
    match command {
        CaCommand::ExportRootKey { out } => return export_root_key(ctx, &out),
        CaCommand::ImportRootKey { file } => return import_root_key(ctx, &file),
        _ => {}
    }
    let authority = ctx.open().await?;
    let now = SystemTime::now();
    match command {
        CaCommand::Issue {
            csr,
            profile,
            out,
            der,
        } => {
            let request = read_input(&csr)?;
            let issued = authority
                .issue_from_csr(&request, profile.into(), "console", now)
                .await?;
            let bytes = if der {
                issued.der.clone()
            } else {
                issued.to_pem().into_bytes()
            };
            write_output(&out, &bytes)?;
            println!("{}", issued.serial.to_hex());
        }
        CaCommand::Revoke { serial, reason } => {
            let record = authority
                .revoke_by_operator(&serial, reason, "console", now)
                .await?;
            println!(
                "revoked {} ({}), CRL republished",
                record.serial,
                reason_name(reason.code())
            );
        }
        CaCommand::Crl { out, der } => {
            let crl = authority.publish_crl(now).await?;
            let bytes = if der {
                crl.der
            } else {
                pem_encode("X509 CRL", &crl.der).into_bytes()
            };
            write_output(&out, &bytes)?;
            println!("CRL number {}", crl.number);
        }
        CaCommand::RootCrl { out, der } => {
            if !Layout::new(&ctx.data).root_key().exists() {
                return Err(AuthorityError::RootKeyOffline.into());
            }
            let passphrase = ctx.passphrase()?;
            let crl =
                init::publish_root_crl(&authority, passphrase.as_ref().map(|p| p.as_slice()), now)
                    .await?;
            let bytes = if der {
                crl.der
            } else {
                pem_encode("X509 CRL", &crl.der).into_bytes()
            };
            write_output(&out, &bytes)?;
            println!("root CRL number {}", crl.number);
        }
        CaCommand::RenewServiceCerts => {
            let passphrase = ctx.passphrase()?;
            let renewed = init::renew_service_certificates(
                &authority,
                passphrase.as_ref().map(|p| p.as_slice()),
                SealParams::RECOMMENDED,
                now,
            )
            .await?;
            for (what, old, new) in renewed {
                println!("{what:<13} {new} (renews {old})");
            }
        }
        CaCommand::Chain { out } => {
            let pem: String = authority
                .chain_der()
                .iter()
                .map(|d| pem_encode("CERTIFICATE", d))
                .collect();
            write_output(&out, pem.as_bytes())?;
        }
        CaCommand::List {
            status,
            subject,
            limit,
        } => {
            let query = CertificateQuery {
                status: status.map(|s| match s {
                    StatusArg::Valid => StatusFilter::Valid,
                    StatusArg::Revoked => StatusFilter::Revoked,
                    StatusArg::Expired => StatusFilter::Expired,
                }),
                subject,
                kind: None,
                now: unix(now),
                limit: limit.min(MAX_LIST_ROWS),
            };
            for c in authority.certificates(&query).await? {
                println!(
                    "{}  {:<7}  {:<15}  {}  {}",
                    c.serial,
                    status_of(&c, unix(now)),
                    c.kind,
                    rfc3339(c.not_after),
                    c.subject
                );
            }
        }
        CaCommand::Show { serial } => {
            let c = authority.certificate(&serial).await?;
            let n = unix(now);
            println!("serial        {}", c.serial);
            println!("status        {}", status_of(&c, n));
            println!("kind          {}", c.kind);
            println!("subject       {}", c.subject);
            println!("names         {}", c.sans.join(", "));
            println!("key SHA-256   {}", c.key_sha256);
            println!("not before    {}", rfc3339(c.not_before));
            println!("not after     {}", rfc3339(c.not_after));
            println!(
                "approved by   {} at {}",
                c.approved_by,
                rfc3339(c.approved_at)
            );
            if let Some(p) = &c.previous_serial {
                println!("renews        {p}");
            }
            if let Some(r) = &c.revocation {
                println!(
                    "revoked       {} ({}) by {}",
                    rfc3339(r.at),
                    reason_name(r.reason),
                    r.by
                );
            }
            if let Ok(cert) = x509_cert::Certificate::from_der(&c.der) {
                print!("{}", confianza_pki::text::certificate(&cert));
            }
            print!("{}", pem_encode("CERTIFICATE", &c.der));
        }
        CaCommand::Export { out } => {
            let query = CertificateQuery {
                status: None,
                subject: None,
                kind: None,
                now: unix(now),
                limit: MAX_LIST_ROWS,
            };
            let records = authority.certificates(&query).await?;
            let list: Vec<Exported<'_>> = records.iter().map(|r| exported(r, unix(now))).collect();
            let mut json = serde_json::to_vec_pretty(&list)
                .map_err(|e| OpsError::Usage(format!("cannot encode JSON: {e}")))?;
            json.push(b'\n');
            match out {
                Some(path) => write_output(&path, &json)?,
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&json).map_err(|source| OpsError::File {
                        path: PathBuf::from("<stdout>"),
                        source,
                    })?;
                }
            }
        }
        CaCommand::NewIntermediate => {
            let passphrase = ctx.passphrase()?;
            let der = init::new_intermediate(
                &authority,
                passphrase.as_ref().map(|p| p.as_slice()),
                SealParams::RECOMMENDED,
            )
            .await?;
            drop(authority);
            // Reopen with the new intermediate and publish its first CRL.
            let authority = ctx.open().await?;
            authority.publish_crl(SystemTime::now()).await?;
            let cert = x509_cert::Certificate::from_der(&der).map_err(AuthorityError::from)?;
            println!(
                "new intermediate {}",
                hex::encode(cert.tbs_certificate().serial_number().as_bytes())
            );
        }
        CaCommand::ExportRootKey { .. } | CaCommand::ImportRootKey { .. } => {}
    }
    Ok(())
}

/// Copies the root key to `out` (created, 0600), checks the copy, then removes the key from
/// the data directory.
fn export_root_key(ctx: &Context, out: &Path) -> Result<(), OpsError> {
    let layout = Layout::new(&ctx.data);
    layout::read_config(&layout)?;
    let path = layout.root_key();
    if !path.exists() {
        return Err(AuthorityError::RootKeyOffline.into());
    }
    let key = zeroize::Zeroizing::new(layout::read_file(&path)?);
    let file_error = |source| OpsError::File {
        path: out.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(file_error)?;
    f.write_all(&key).map_err(file_error)?;
    f.sync_all().map_err(file_error)?;
    drop(f);
    let copy = zeroize::Zeroizing::new(std::fs::read(out).map_err(file_error)?);
    if copy.as_slice() != key.as_slice() {
        return Err(OpsError::Usage(format!(
            "{}: the copy differs; the root key was not removed",
            out.display()
        )));
    }
    std::fs::remove_file(&path).map_err(|source| OpsError::File { path, source })?;
    println!(
        "root key written to {} and removed from the data directory",
        out.display()
    );
    Ok(())
}

/// Puts a root key back after checking it is the root certificate's key.
fn import_root_key(ctx: &Context, file: &Path) -> Result<(), OpsError> {
    let layout = Layout::new(&ctx.data);
    let config = layout::read_config(&layout)?;
    let bytes = zeroize::Zeroizing::new(read_input(file)?);
    let pkcs8 = if seal::is_sealed(&bytes) {
        let passphrase = obtain_passphrase(false)?;
        match seal::open(&passphrase, &bytes) {
            Ok(secret) => zeroize::Zeroizing::new(secret.as_bytes().to_vec()),
            Err(seal::OpenError::WrongPassphraseOrCorrupt) => {
                return Err(AuthorityError::WrongPassphrase.into());
            }
            Err(e) => return Err(OpsError::Usage(format!("{}: {e}", file.display()))),
        }
    } else {
        bytes.clone()
    };
    let key = CaKey::from_pkcs8_der(&pkcs8).map_err(AuthorityError::from)?;
    let root_der = layout::read_certificate(&layout.root_cert())?;
    confianza_pki::ca::Issuer::from_certificate(
        key,
        &root_der,
        confianza_pki::ca::IssuerRole::Root,
        Some(crate::authority::root_urls(&config.http_url)),
    )
    .map_err(|_| OpsError::Usage(format!("{} is not this CA's root key", file.display())))?;
    layout::write_file(&layout.root_key(), &bytes, 0o600)?;
    println!("root key imported");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_as_rfc5280_names() {
        assert_eq!(
            parse_reason("keyCompromise"),
            Ok(RevocationReason::KeyCompromise)
        );
        assert_eq!(parse_reason("superseded"), Ok(RevocationReason::Superseded));
        assert!(parse_reason("certificateHold").is_err());
        assert!(parse_reason("stolen").is_err());
        for r in RevocationReason::ALL {
            if let Ok(parsed) = parse_reason(reason_name(r.code())) {
                assert_eq!(parsed, r);
            }
        }
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_712_024), "2026-11-26T16:53:44Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
