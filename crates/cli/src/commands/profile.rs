//! What every server-backed command shares: the profile directory, the passphrase, opening
//! and connecting the client, and how times and verification states are printed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use confianza_client::account::Client;
use confianza_client::sealing::Passphrase;

/// The environment variable that holds the store passphrase (else it is prompted for).
pub const PASSPHRASE_ENV: &str = "CONFIANZA_PASSPHRASE";

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// The profile to use (one account per profile, under $CONFIANZA_HOME or
    /// $XDG_DATA_HOME/confianza).
    #[arg(long, global = true, default_value = confianza_client::profile::DEFAULT_PROFILE)]
    pub profile: String,
}

impl Globals {
    /// The profile's directory.
    pub fn dir(&self) -> Result<PathBuf> {
        Ok(confianza_client::profile::profile_dir(&self.profile)?)
    }
}

/// Runs an async command on a fresh runtime.
pub fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// The passphrase from [`PASSPHRASE_ENV`], else typed at the terminal (twice when `confirm`).
/// `None` when there is neither a variable nor a terminal.
pub fn read_passphrase(confirm: bool) -> Result<Option<Passphrase>> {
    if let Some(passphrase) = Passphrase::from_env()? {
        return Ok(Some(passphrase));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let first =
        rpassword::prompt_password("store passphrase: ").context("cannot read the passphrase")?;
    if confirm {
        let second = rpassword::prompt_password("again: ").context("cannot read the passphrase")?;
        if first != second {
            bail!("the two passphrases differ");
        }
    }
    Ok(Some(Passphrase::new(first)?))
}

/// Opens the profile's store (asking for the passphrase only if it has one).
async fn open(globals: &Globals) -> Result<Client> {
    let dir = globals.dir()?;
    let mut prompt_error = None;
    let client = Client::open(&dir, || match read_passphrase(false) {
        Ok(passphrase) => passphrase,
        Err(error) => {
            prompt_error = Some(error);
            None
        }
    })
    .await;
    if let Some(error) = prompt_error {
        return Err(error);
    }
    client.with_context(|| format!("cannot open profile {:?}", globals.profile))
}

/// Opens the profile, runs `work` on it, then shuts the client down whatever `work` returned
/// (see [`Client::shutdown`]: without it SQLite's `-wal` and `-shm` files stay beside the
/// store until the next open).
pub async fn with_open<T>(
    globals: &Globals,
    work: impl AsyncFnOnce(&mut Client) -> Result<T>,
) -> Result<T> {
    let mut client = open(globals).await?;
    let result = work(&mut client).await;
    client.shutdown().await;
    result
}

/// Like [`with_open`], connected to the profile's server first.
pub async fn with_connected<T>(
    globals: &Globals,
    work: impl AsyncFnOnce(&mut Client) -> Result<T>,
) -> Result<T> {
    with_open(globals, async |client| {
        let server = client.account().server.clone();
        client
            .connect()
            .await
            .with_context(|| format!("cannot connect to the server at {server}"))?;
        work(client).await
    })
    .await
}

/// `2026-11-26 17:40:01 UTC` for Unix milliseconds.
pub fn format_time(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replacen('T', " ", 1)
        .replacen('Z', " UTC", 1)
}

/// A SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:…`).
pub fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_764_178_801_999), "2025-11-26 17:40:01 UTC");
    }

    #[test]
    fn fingerprints_are_grouped_like_openssl() {
        assert_eq!(colon_hex("ab01ff"), "AB:01:FF");
        assert_eq!(colon_hex(""), "");
    }
}
