//! `confianza cert`: certificates and CRLs as text.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use der::{Decode, DecodePem};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

#[derive(Subcommand)]
pub enum Command {
    /// Prints a certificate or a CRL (PEM or DER) the way `openssl x509 -text` /
    /// `openssl crl -text` do.
    Show {
        /// The file to print.
        file: PathBuf,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Show { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            print!(
                "{}",
                render(&bytes).with_context(|| format!("{}", file.display()))?
            );
            Ok(())
        }
    }
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
