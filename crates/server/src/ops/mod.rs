//! The operator commands of `confianza-server`: `init`, `ra …` and `ca …` (clap types and
//! what each does). Each command prints its result on standard output and fails with one
//! [`OpsError`] line on standard error; a failing command leaves the database as it was.

mod ca;
mod passphrase;
mod ra;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;

pub use ca::CaCommand;
pub use passphrase::{PASSPHRASE_VARIABLE, obtain_passphrase};
pub use ra::RaCommand;

use crate::authority::init::{DEFAULT_HTTP_URL, DEFAULT_SERVER_NAME, InitOptions};
use crate::authority::layout::{self, Layout};
use crate::authority::{Authority, AuthorityError};

/// Smallest Argon2id memory `init --kdf-memory-mib` accepts.
pub const MIN_KDF_MEMORY_MIB: u32 = 1;
/// Largest Argon2id memory `init --kdf-memory-mib` accepts (the sealed-key format's bound).
pub const MAX_KDF_MEMORY_MIB: u32 = confianza_pki::limits::MAX_SEAL_M_COST_KIB / 1024;

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The CA refused or failed.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// A file given on the command line could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No passphrase could be obtained.
    #[error("the CA keys are sealed: set {PASSPHRASE_VARIABLE} or run on a terminal to be asked")]
    NoPassphrase,
}

/// What the operator commands share: the data directory and the database.
#[derive(Debug, Clone)]
pub struct Context {
    /// The data directory.
    pub data: PathBuf,
    /// A PostgreSQL URL instead of the directory's SQLite database.
    pub database_url: Option<String>,
}

impl Context {
    /// The database URL: the one given, else `[service] database_url` of the config file.
    fn database_url(&self) -> Result<Option<String>, OpsError> {
        if self.database_url.is_some() {
            return Ok(self.database_url.clone());
        }
        Ok(layout::configured_database_url(&Layout::new(&self.data))?)
    }

    /// The passphrase, when the directory's keys are sealed.
    fn passphrase(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, OpsError> {
        let config = layout::read_config(&Layout::new(&self.data))?;
        if config.sealed {
            Ok(Some(obtain_passphrase(false)?))
        } else {
            Ok(None)
        }
    }

    /// Opens the authority (asking for the passphrase when needed).
    async fn open(&self) -> Result<Authority, OpsError> {
        let passphrase = self.passphrase()?;
        let url = self.database_url()?;
        Ok(Authority::open(
            &self.data,
            passphrase.as_ref().map(|p| p.as_slice()),
            url.as_deref(),
        )
        .await?)
    }
}

/// CA key algorithm on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// Ed25519 (default).
    Ed25519,
    /// ECDSA P-256.
    P256,
    /// RSA-3072.
    Rsa3072,
}

impl From<KeyType> for CaAlgorithm {
    fn from(k: KeyType) -> Self {
        match k {
            KeyType::Ed25519 => CaAlgorithm::Ed25519,
            KeyType::P256 => CaAlgorithm::P256,
            KeyType::Rsa3072 => CaAlgorithm::Rsa3072,
        }
    }
}

/// `init`: create the data directory's CA.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Organisation name (O= of the CA certificates)
    #[arg(long)]
    pub org: String,
    /// The server's DNS name (its Noise key certificate)
    #[arg(long, default_value = DEFAULT_SERVER_NAME)]
    pub name: String,
    /// CA key algorithm
    #[arg(long, value_enum, default_value_t = KeyType::Ed25519)]
    pub key_type: KeyType,
    /// Write the keys unsealed (mode 0600) instead of sealing them under a passphrase
    #[arg(long)]
    pub no_passphrase: bool,
    /// Domain whose users enroll with a code (repeatable) [default: the name's domain]
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Let users of these domains enroll without an enrollment code
    #[arg(long)]
    pub open_registration: bool,
    /// Base URL of the HTTP repository, written into every certificate (CRL, OCSP)
    #[arg(long, default_value = DEFAULT_HTTP_URL)]
    pub http_url: String,
    /// PostgreSQL URL for the CA database instead of DIR/confianza.db (several nodes)
    #[arg(long, env = "CONFIANZA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Argon2id memory for sealing the keys, in MiB
    #[arg(long, default_value_t = 256)]
    pub kdf_memory_mib: u32,
}

/// Parses a duration such as `7d`, `12h`, `30m`, `90s` (a bare number is days).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "d"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 7d, 12h or 30m"))?;
    let unit_secs = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{text:?}: unit must be d, h, m or s")),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Runs `init`.
pub async fn init(ctx: &Context, args: InitArgs) -> Result<(), OpsError> {
    if !(MIN_KDF_MEMORY_MIB..=MAX_KDF_MEMORY_MIB).contains(&args.kdf_memory_mib) {
        return Err(OpsError::Usage(format!(
            "--kdf-memory-mib must be between {MIN_KDF_MEMORY_MIB} and {MAX_KDF_MEMORY_MIB}"
        )));
    }
    let layout = Layout::new(&ctx.data);
    if layout.config().exists() {
        return Err(AuthorityError::AlreadyInitialised(ctx.data.clone()).into());
    }
    let passphrase = if args.no_passphrase {
        None
    } else {
        Some(obtain_passphrase(true)?)
    };
    let database_url = args.database_url.clone();
    let options = InitOptions {
        organisation: args.org,
        name: args.name,
        key_type: args.key_type.into(),
        domains: args.domains,
        open_registration: args.open_registration,
        http_url: args.http_url,
        seal_params: SealParams {
            m_cost_kib: args.kdf_memory_mib * 1024,
            ..SealParams::RECOMMENDED
        },
    };
    let summary = crate::authority::init::init(
        &ctx.data,
        options,
        passphrase.as_ref().map(|p| p.as_slice()),
        database_url.as_deref().or(ctx.database_url.as_deref()),
    )
    .await?;
    println!("Created the CA in {}", ctx.data.display());
    println!("root certificate   {}", layout.root_cert().display());
    println!("root SHA-256       {}", summary.root_fingerprint);
    println!("domains            {}", summary.domains.join(", "));
    println!("RA officer         {}", summary.officer);
    if passphrase.is_none() {
        println!("keys               unsealed (mode 0600)");
    }
    Ok(())
}

/// Runs an `ra` subcommand.
pub async fn ra(ctx: &Context, command: RaCommand) -> Result<(), OpsError> {
    ra::run(ctx, command).await
}

/// Runs a `ca` subcommand.
pub async fn ca(ctx: &Context, command: CaCommand) -> Result<(), OpsError> {
    ca::run(ctx, command).await
}

/// Reads a file named on the command line.
fn read_input(path: &Path) -> Result<Vec<u8>, OpsError> {
    std::fs::read(path).map_err(|source| OpsError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file named on the command line (0644: certificates, CRLs).
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    std::fs::write(path, bytes).map_err(|source| OpsError::File {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
