//! `confianza init`: keys, enrollment through the RA with a code, the pinned root.

use anyhow::{Result, bail};
use confianza_client::account::{Client, ClientError, InitOptions};
use confianza_client::store::Protection;
use confianza_pki::seal::SealParams;

use super::profile::{self, Globals, PASSPHRASE_ENV};

/// `confianza init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The messaging server, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: String,
    /// Your address, user@domain, as the RA officer registered it.
    #[arg(long, value_name = "ADDRESS")]
    pub name: String,
    /// The one-time enrollment code the RA officer gave you.
    #[arg(long)]
    pub code: String,
    /// The organisation root's SHA-256 fingerprint, if you have it (hex, colons optional):
    /// enrollment fails unless the server's root has it.
    #[arg(long, value_name = "SHA256")]
    pub ca_fingerprint: Option<String>,
    /// The DNS name in the server's certificate, when HOST is an IP address and the
    /// certificate names several.
    #[arg(long, value_name = "DNS_NAME")]
    pub server_name: Option<String>,
    /// Keep the store key in a 0600 file beside the store instead of under a passphrase.
    #[arg(long)]
    pub no_passphrase: bool,
}

/// Runs `confianza init`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let dir = globals.dir()?;
    let protection = if args.no_passphrase {
        Protection::KeyFile
    } else {
        match profile::read_passphrase(true)? {
            Some(passphrase) => Protection::Passphrase(passphrase, SealParams::RECOMMENDED),
            None => bail!("set {PASSPHRASE_ENV} or pass --no-passphrase to protect the store"),
        }
    };
    let options = InitOptions {
        dir,
        protection,
        server: args.server.clone(),
        server_name: args.server_name,
        address: args.name.clone(),
        code: args.code,
        expected_ca_fingerprint: args.ca_fingerprint,
    };
    let enrolled = profile::block_on(async move {
        let failed = format!("cannot enroll {} at {}", args.name, args.server);
        let (client, enrolled) = Client::init(options).await.map_err(|error| match error {
            // A server refused in the handshake received nothing: say the code is still
            // good, so the user retries with the right server or fingerprint.
            ClientError::ServerRefused(refusal) => anyhow::anyhow!(
                "{failed}: the server was refused before anything was sent to it: {refusal} \
                 (the code is still valid)"
            ),
            other => anyhow::Error::new(other).context(failed),
        })?;
        client.shutdown().await;
        Ok(enrolled)
    })?;
    println!(
        "enrolled {} (device {}) in profile {:?}",
        enrolled.address, enrolled.device_id, globals.profile
    );
    println!(
        "organisation root CA, SHA-256 fingerprint:\n  {}",
        profile::colon_hex(&enrolled.root_fingerprint)
    );
    if enrolled.fingerprint_checked {
        println!("it matches the fingerprint you gave: the root is pinned");
    } else {
        println!(
            "compare it with the one your administrator published, out of band: it is now pinned"
        );
    }
    Ok(())
}
