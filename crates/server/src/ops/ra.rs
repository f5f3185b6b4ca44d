//! `confianza-server ra …`: the Registration Authority at the operator's console, and the RA
//! officers (each with its own credential file).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use confianza_pki::ca::pem_encode;
use confianza_pki::crl::RevocationReason;
use confianza_pki::profile::CertificateKind;
use confianza_pki::ra::RaOfficer;
use confianza_pki::seal::SealParams;
use zeroize::Zeroizing;

use super::ca::{parse_reason, rfc3339};
use super::{Context, OpsError, parse_duration, read_input, write_output};
use crate::authority::{Authority, AuthorityError, from_unix};
use crate::store::ca::CaStore;

/// Environment variable holding the passphrase of an officer's credential file.
pub const OFFICER_PASSPHRASE_VARIABLE: &str = "CONFIANZA_OFFICER_PASSPHRASE";

/// Who acts as the RA: an officer and its credential file; neither given means the operator
/// console's officer (the one `init` made).
#[derive(Debug, Args)]
pub struct AsOfficer {
    /// Act as this RA officer (needs --credential)
    #[arg(long, requires = "credential")]
    pub officer: Option<String>,
    /// The officer's credential file, written by `ra officers add` (sealed keys are opened
    /// with CONFIANZA_OFFICER_PASSPHRASE)
    #[arg(long, requires = "officer")]
    pub credential: Option<PathBuf>,
}

/// `ra` subcommands.
#[derive(Debug, Subcommand)]
pub enum RaCommand {
    /// Make a one-time enrollment code for ADDRESS (after checking the person's identity);
    /// prints only the code
    EnrollCode {
        /// The user's address, e.g. alice@example.org
        address: String,
        /// How long the code is valid (e.g. 7d, 12h)
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        valid_for: Duration,
        #[command(flatten)]
        officer: AsOfficer,
    },
    /// Revoke a certificate as an RA officer (SERIAL in hexadecimal)
    Revoke {
        /// The serial
        serial: String,
        /// RFC 5280 reason (officers may not give cACompromise or aACompromise)
        #[arg(long, value_parser = parse_reason)]
        reason: RevocationReason,
        #[command(flatten)]
        officer: AsOfficer,
    },
    /// Submit a PKCS#10 request (PEM or DER) for a certificate approved by hand; prints the
    /// request id
    Submit {
        /// The request file
        #[arg(long)]
        csr: PathBuf,
        /// Certificate profile
        #[arg(long, value_enum)]
        profile: SubmitProfile,
    },
    /// List the requests waiting for an RA officer
    Pending,
    /// Approve a pending request; the CA issues the certificate
    Approve {
        /// The request id
        id: i64,
        /// Where to write the certificate (PEM)
        #[arg(long)]
        out: Option<PathBuf>,
        /// A note kept in the request's history
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        officer: AsOfficer,
    },
    /// Reject a pending request
    Reject {
        /// The request id
        id: i64,
        /// Why (kept in the request's history)
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        officer: AsOfficer,
    },
    /// Show a request's history: each step, who and when
    History {
        /// The request id
        id: i64,
    },
    /// List certificates that expire within N days and were not renewed
    Expiring {
        /// Horizon in days
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// The RA officers: list (default), add, disable
    Officers {
        #[command(subcommand)]
        command: Option<OfficersCommand>,
    },
}

/// Profiles `ra submit` accepts (those under the manual approval policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubmitProfile {
    /// TLS server (serverAuth, DNS names)
    TlsServer,
    /// TLS client (clientAuth)
    TlsClient,
}

impl From<SubmitProfile> for CertificateKind {
    fn from(p: SubmitProfile) -> Self {
        match p {
            SubmitProfile::TlsServer => CertificateKind::TlsServer,
            SubmitProfile::TlsClient => CertificateKind::TlsClient,
        }
    }
}

/// `ra officers` subcommands.
#[derive(Debug, Subcommand)]
pub enum OfficersCommand {
    /// List the RA officers
    List,
    /// Add an RA officer with its own credential (certificate and key) written to --out
    Add {
        /// The officer's name, an address such as carol@example.org
        name: String,
        /// What the officer is responsible for (repeatable), with RFC 5280 name-constraint
        /// rules: `example.org` covers DNS names in and below it and addresses
        /// `user@example.org`; `.example.org` covers what is below it only (addresses such as
        /// `user@eng.example.org`); `user@example.org` covers that address alone
        /// [default: all the CA's domains]
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Where to write the credential file (created, mode 0600; must not exist)
        #[arg(long)]
        out: PathBuf,
        /// Leave the key unsealed instead of sealing it under CONFIANZA_OFFICER_PASSPHRASE
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Disable an RA officer and revoke its credential
    Disable {
        /// The officer's name
        name: String,
    },
}

/// The officer's passphrase from [`OFFICER_PASSPHRASE_VARIABLE`].
fn officer_passphrase() -> Result<Option<Zeroizing<Vec<u8>>>, OpsError> {
    match std::env::var_os(OFFICER_PASSPHRASE_VARIABLE) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(OpsError::Usage(format!(
            "{OFFICER_PASSPHRASE_VARIABLE} is empty"
        ))),
        Some(v) => Ok(Some(Zeroizing::new(v.into_encoded_bytes()))),
    }
}

/// The officer the command acts as.
async fn acting_officer(
    authority: &Authority,
    who: &AsOfficer,
    now: SystemTime,
) -> Result<RaOfficer, OpsError> {
    match (&who.officer, &who.credential) {
        (Some(name), Some(file)) => {
            let credential = Zeroizing::new(read_input(file)?);
            let passphrase = officer_passphrase()?;
            Ok(authority
                .authenticate_officer(
                    name,
                    &credential,
                    passphrase.as_ref().map(|p| p.as_slice()),
                    now,
                )
                .await?)
        }
        (None, None) => Ok(authority.console_officer()?.clone()),
        _ => Err(OpsError::Usage(
            "--officer and --credential go together".into(),
        )),
    }
}

/// Writes a new credential file: created (never overwritten), 0600.
fn write_credential(path: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    let file_error = |source| OpsError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(file_error)?;
    f.write_all(bytes).map_err(file_error)?;
    f.sync_all().map_err(file_error)
}

/// Runs an `ra` subcommand.
pub async fn run(ctx: &Context, command: RaCommand) -> Result<(), OpsError> {
    // Checked before anything is written.
    if let RaCommand::Officers {
        command: Some(OfficersCommand::Add { out, .. }),
    } = &command
        && out.exists()
    {
        return Err(OpsError::Usage(format!("{} exists", out.display())));
    }
    let authority = ctx.open().await?;
    let now = SystemTime::now();
    match command {
        RaCommand::EnrollCode {
            address,
            valid_for,
            officer,
        } => {
            let officer = acting_officer(&authority, &officer, now).await?;
            let code = authority
                .create_enrollment_code_by(&officer, &address, valid_for, now)
                .await?;
            println!("{}", code.as_str());
        }
        RaCommand::Revoke {
            serial,
            reason,
            officer,
        } => {
            let officer = acting_officer(&authority, &officer, now).await?;
            authority
                .revoke_by_officer(&officer, &serial, reason, now)
                .await?;
            println!(
                "revoked {} by RA officer {}, CRL republished",
                crate::authority::parse_serial(&serial)?.to_hex(),
                officer.id().name
            );
        }
        RaCommand::Submit { csr, profile } => {
            let request = read_input(&csr)?;
            let id = authority.submit_csr(&request, profile.into(), now).await?;
            println!("{id}");
        }
        RaCommand::Pending => {
            for r in authority.pending_requests().await? {
                println!(
                    "{:<8} {:<12} {}  {}",
                    r.id,
                    r.kind,
                    rfc3339(r.created_at),
                    r.subject
                );
            }
        }
        RaCommand::Approve {
            id,
            out,
            comment,
            officer,
        } => {
            if let Some(out) = &out
                && out.exists()
            {
                return Err(OpsError::Usage(format!("{} exists", out.display())));
            }
            let officer = acting_officer(&authority, &officer, now).await?;
            let issued = authority
                .approve_request(&officer, id, comment.as_deref(), now)
                .await?;
            if let Some(out) = &out {
                write_output(out, pem_encode("CERTIFICATE", &issued.der).as_bytes())?;
            }
            println!("{}", issued.serial.to_hex());
        }
        RaCommand::Reject {
            id,
            reason,
            officer,
        } => {
            let officer = acting_officer(&authority, &officer, now).await?;
            authority.reject_request(&officer, id, &reason, now).await?;
            println!("request {id} rejected");
        }
        RaCommand::History { id } => {
            let r = authority.request(id).await?;
            println!(
                "request {}  {}  {}  {}",
                r.id,
                r.kind,
                r.state.name(),
                r.subject
            );
            for e in &r.events {
                match &e.comment {
                    Some(c) => println!("{}  {:<10} {}  ({c})", rfc3339(e.at), e.action, e.actor),
                    None => println!("{}  {:<10} {}", rfc3339(e.at), e.action, e.actor),
                }
            }
        }
        RaCommand::Expiring { days } => {
            for c in authority.expiring(days, now).await? {
                let left = from_unix(c.not_after)
                    .duration_since(now)
                    .map(|d| d.as_secs() / 86_400)
                    .unwrap_or(0);
                println!(
                    "{}  {:<14} {:<40} expires in {left} days",
                    c.serial, c.kind, c.subject
                );
            }
        }
        RaCommand::Officers { command } => match command.unwrap_or(OfficersCommand::List) {
            OfficersCommand::List => list_officers(&authority).await?,
            OfficersCommand::Add {
                name,
                scopes,
                out,
                no_passphrase,
            } => {
                let passphrase = if no_passphrase {
                    None
                } else {
                    Some(officer_passphrase()?.ok_or_else(|| {
                        OpsError::Usage(format!(
                            "set {OFFICER_PASSPHRASE_VARIABLE} to seal the officer's key, \
                             or give --no-passphrase"
                        ))
                    })?)
                };
                let credential = authority
                    .add_officer(
                        &name,
                        &scopes,
                        passphrase.as_ref().map(|p| p.as_slice()),
                        SealParams::RECOMMENDED,
                        now,
                    )
                    .await?;
                write_credential(&out, &credential.file)?;
                println!(
                    "RA officer {} added, credential {} written to {}",
                    credential.name,
                    credential.serial_hex,
                    out.display()
                );
            }
            OfficersCommand::Disable { name } => {
                authority.disable_officer(&name, now).await?;
                println!("RA officer {name} disabled, credential revoked");
            }
        },
    }
    Ok(())
}

async fn list_officers(authority: &Authority) -> Result<(), OpsError> {
    for o in authority
        .store()
        .officers()
        .await
        .map_err(AuthorityError::from)?
    {
        let state = if o.disabled_at.is_some() {
            "disabled"
        } else {
            "active"
        };
        let domains = if o.domains.is_empty() {
            "any domain".to_owned()
        } else {
            o.domains.join(",")
        };
        println!(
            "{:<32} {state:<8} credential {}  kinds {}  domains {domains}",
            o.name,
            o.credential_serial,
            o.kinds.join(",")
        );
    }
    Ok(())
}
