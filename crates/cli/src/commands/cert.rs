//! `confianza cert`: certificates and CRLs as text; renewal and revocation of your own.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use confianza_api::{RequestBody, ResponseBody, RevocationReason};
use der::{Decode, DecodePem};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use super::profile::{self, Globals};

#[derive(Subcommand)]
pub enum Command {
    /// Prints a certificate or a CRL the way `openssl x509 -text` / `openssl crl -text` do:
    /// a file (PEM or DER), your own certificate (no argument, or your address), a contact's
    /// (their address: the certificate checked when their key was last verified), or the
    /// organisation's pinned CA certificates (--ca).
    Show {
        /// A certificate or CRL file, your own address or a contact's; none for your own
        /// certificate.
        target: Option<String>,
        /// Print the pinned root and the intermediate CA certificates instead.
        #[arg(long, conflicts_with = "target")]
        ca: bool,
    },
    /// Asks the CA for a new certificate for the same identity key (before the old expires).
    Renew,
    /// Revokes your own certificate. Contacts refuse new sessions with you afterwards; you
    /// need a new enrollment code to come back.
    Revoke {
        /// Why (RFC 5280 reason).
        #[arg(long, value_enum)]
        reason: ReasonArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// The revocation reasons a certificate holder may give.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReasonArg {
    /// No reason given.
    Unspecified,
    /// The device or its keys are compromised.
    KeyCompromise,
    /// You left the organisation or changed role.
    AffiliationChanged,
    /// A newer certificate replaces this one.
    Superseded,
    /// You stop using Confianza.
    CessationOfOperation,
}

impl From<ReasonArg> for RevocationReason {
    fn from(reason: ReasonArg) -> Self {
        match reason {
            ReasonArg::Unspecified => Self::Unspecified,
            ReasonArg::KeyCompromise => Self::KeyCompromise,
            ReasonArg::AffiliationChanged => Self::AffiliationChanged,
            ReasonArg::Superseded => Self::Superseded,
            ReasonArg::CessationOfOperation => Self::CessationOfOperation,
        }
    }
}

/// Runs `confianza cert`.
pub fn run(globals: &Globals, command: Command) -> Result<()> {
    match command {
        Command::Show { target, ca } => show(globals, target.as_deref(), ca),
        Command::Renew => profile::block_on(profile::with_connected(globals, async |client| {
            let not_after = client
                .renew_certificate()
                .await
                .context("cannot renew the certificate")?;
            println!(
                "renewed the certificate of {}: valid until {}",
                client.account().address,
                profile::format_time(not_after.saturating_mul(1000))
            );
            Ok(())
        })),
        Command::Revoke { reason, yes } => {
            profile::block_on(profile::with_connected(globals, async |client| {
                let address = client.account().address.clone();
                if !yes && !confirm(&address)? {
                    bail!("not revoked");
                }
                let revoked_at_ms = match client
                    .request(RequestBody::RevokeCertificate {
                        reason: reason.into(),
                    })
                    .await
                    .context("cannot revoke the certificate")?
                {
                    ResponseBody::Revoked { revoked_at_ms } => revoked_at_ms,
                    _ => bail!("the server answered the revocation with something else"),
                };
                println!(
                    "revoked the certificate of {address} at {}",
                    profile::format_time(revoked_at_ms)
                );
                Ok(())
            }))
        }
    }
}

/// Asks the user to type the address to confirm a revocation.
fn confirm(address: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("revocation cannot be undone: confirm with --yes");
    }
    eprint!("revoking cannot be undone; type {address} to confirm: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the confirmation")?;
    Ok(line.trim() == address)
}

fn show(globals: &Globals, target: Option<&str>, ca: bool) -> Result<()> {
    if let Some(target) = target
        && (!target.contains('@') || Path::new(target).exists())
    {
        let file = Path::new(target);
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        print!(
            "{}",
            render(&bytes).with_context(|| format!("{}", file.display()))?
        );
        return Ok(());
    }
    profile::block_on(profile::with_open(globals, async |client| {
        if ca {
            for der in client.store().ca_certificates().await? {
                print!("{}", render(&der).context("a pinned CA certificate")?);
            }
            return Ok(());
        }
        let own = &client.account().address;
        let certificate = match target {
            Some(address) if address != own => {
                match client.store().contact_certificate(address).await? {
                    Some(der) => der,
                    None if client.store().contact(address).await?.is_some() => bail!(
                        "no certificate is kept for {address}: their key was learned without \
                         one; it is kept once their bundle is verified (send them a message)"
                    ),
                    None => bail!(
                        "{address} is not a contact of this profile: its certificate is kept \
                         once a message is exchanged with them"
                    ),
                }
            }
            _ => client.account().certificate.clone(),
        };
        print!("{}", render(&certificate)?);
        Ok(())
    }))
}

/// Renders the first certificate or CRL in `bytes`.
pub fn render(bytes: &[u8]) -> Result<String> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.contains("-----BEGIN")
    {
        if text.contains("-----BEGIN X509 CRL-----") {
            let crl = CertificateList::from_pem(text.trim()).context("not a valid PEM CRL")?;
            return Ok(confianza_pki::text::crl(&crl));
        }
        let start = text
            .find("-----BEGIN CERTIFICATE-----")
            .context("no certificate or CRL in this PEM file")?;
        let cert = Certificate::from_pem(&text[start..]).context("not a valid PEM certificate")?;
        return Ok(confianza_pki::text::certificate(&cert));
    }
    if let Ok(cert) = Certificate::from_der(bytes) {
        return Ok(confianza_pki::text::certificate(&cert));
    }
    if let Ok(crl) = CertificateList::from_der(bytes) {
        return Ok(confianza_pki::text::crl(&crl));
    }
    bail!("neither a certificate nor a CRL (PEM or DER)")
}
