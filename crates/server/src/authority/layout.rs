//! The data directory: where each file lives, the configuration file, and key files (sealed
//! under the passphrase, or plain PKCS#8 with mode 0600).
//!
//! ```text
//! DIR/config.toml            Config (organisation, server name, domains, repository URL, …)
//! DIR/confianza.db           SQLite database (unless a PostgreSQL URL is given)
//! DIR/ca/root.pem            root CA certificate (the trust anchor clients pin)
//! DIR/ca/root.key            root CA key; absent while the root is kept offline
//! DIR/ca/root.crl            the root's CRL (revoked intermediates), DER
//! DIR/ca/intermediate.pem    online issuing CA certificate
//! DIR/ca/intermediate.key    its key
//! DIR/ca/intermediate.crl    the current CRL of the issuing CA, DER (rewritten on revocation)
//! DIR/ca/ocsp.pem, ocsp.key  the delegated OCSP signer
//! DIR/ra/operator.pem, .key  the RA officer credential of the operator's console
//! DIR/server/noise.key       the server's Noise static private key (raw 32 bytes, 0600)
//! DIR/server/noise-cert.pem  the certificate binding its public half to the server's name
//! DIR/new-intermediate/      only during `ca new-intermediate`: the new files, laid out as
//!                            above, until they replace the live ones (see `rotation`)
//! ```
//!
//! Every `.key` file is either sealed (`confianza_pki::seal`, Argon2id + AES-256-GCM) or,
//! when the operator chose `--no-passphrase`, plain PKCS#8 DER; both are written 0600 through
//! a temporary file and a rename, so a crash never leaves half a key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use confianza_pki::seal::{self, SealParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AuthorityError;

/// The largest file the authority reads from its data directory (certificates, keys, CRLs
/// of a large CA): a corrupted or hostile file is refused before it fills memory.
pub const MAX_DATA_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Current version of `config.toml`.
pub const CONFIG_VERSION: u32 = 1;

/// `DIR/config.toml` as a whole: the CA's `[ca]` table beside other tables (the messaging
/// service reads `[service]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConfigFile {
    ca: Config,
    /// The database URL the service uses, which the operator commands share.
    #[serde(default, skip_serializing)]
    service: Option<ServiceTable>,
}

/// The part of `[service]` the operator commands read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ServiceTable {
    database_url: Option<String>,
}

/// The `[ca]` table of `DIR/config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version ([`CONFIG_VERSION`]).
    pub version: u32,
    /// The organisation (the CA certificates' O=).
    pub organisation: String,
    /// The server's DNS name (its Noise certificate's dNSName).
    pub name: String,
    /// Base URL of the HTTP repository; the CRL and OCSP URLs in every certificate start here.
    pub http_url: String,
    /// Domains whose users enroll automatically with an enrollment code.
    pub domains: Vec<String>,
    /// Whether users of these domains may enroll without a code.
    pub open_registration: bool,
    /// CA key algorithm (`ed25519`, `p256`, `rsa3072`).
    pub key_type: String,
    /// Whether the key files are sealed under a passphrase.
    pub sealed: bool,
    /// Name (address) of the operator console's RA officer.
    pub operator_officer: String,
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            root: dir.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("confianza.db")
    }

    /// `ca/`.
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// `ca/root.pem`.
    pub fn root_cert(&self) -> PathBuf {
        self.ca_dir().join("root.pem")
    }

    /// `ca/root.key`.
    pub fn root_key(&self) -> PathBuf {
        self.ca_dir().join("root.key")
    }

    /// `ca/root.crl`.
    pub fn root_crl(&self) -> PathBuf {
        self.ca_dir().join("root.crl")
    }

    /// `ca/intermediate.pem`.
    pub fn intermediate_cert(&self) -> PathBuf {
        self.ca_dir().join("intermediate.pem")
    }

    /// `ca/intermediate.key`.
    pub fn intermediate_key(&self) -> PathBuf {
        self.ca_dir().join("intermediate.key")
    }

    /// `ca/intermediate.crl`.
    pub fn intermediate_crl(&self) -> PathBuf {
        self.ca_dir().join("intermediate.crl")
    }

    /// `ca/ocsp.pem`.
    pub fn ocsp_cert(&self) -> PathBuf {
        self.ca_dir().join("ocsp.pem")
    }

    /// `ca/ocsp.key`.
    pub fn ocsp_key(&self) -> PathBuf {
        self.ca_dir().join("ocsp.key")
    }

    /// `ra/`.
    pub fn ra_dir(&self) -> PathBuf {
        self.root.join("ra")
    }

    /// `ra/operator.pem`.
    pub fn officer_cert(&self) -> PathBuf {
        self.ra_dir().join("operator.pem")
    }

    /// `ra/operator.key`.
    pub fn officer_key(&self) -> PathBuf {
        self.ra_dir().join("operator.key")
    }

    /// `server/`.
    pub fn server_dir(&self) -> PathBuf {
        self.root.join("server")
    }

    /// `server/noise.key`.
    pub fn noise_key(&self) -> PathBuf {
        self.server_dir().join("noise.key")
    }

    /// `server/noise-cert.pem`.
    pub fn noise_cert(&self) -> PathBuf {
        self.server_dir().join("noise-cert.pem")
    }

    /// `new-intermediate/`: the staging directory of an intermediate rotation, itself laid
    /// out like DIR.
    pub fn rotation_staging(&self) -> PathBuf {
        self.root.join("new-intermediate")
    }
}

fn io_error(path: &Path, source: std::io::Error) -> AuthorityError {
    if source.kind() == std::io::ErrorKind::NotFound {
        AuthorityError::MissingFile(path.to_path_buf())
    } else {
        AuthorityError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a file of the data directory, bounded by [`MAX_DATA_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, AuthorityError> {
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.len() > MAX_DATA_FILE_BYTES {
        return Err(AuthorityError::Corrupt(format!(
            "{} is larger than {MAX_DATA_FILE_BYTES} bytes",
            path.display()
        )));
    }
    fs::read(path).map_err(|e| io_error(path, e))
}

/// Writes `bytes` to `path` with `mode` through a temporary file and a rename.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AuthorityError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` only applies when the file is created; a leftover temporary keeps its own.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| io_error(path, e))
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<(), AuthorityError> {
    fs::create_dir_all(path).map_err(|e| io_error(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|e| io_error(path, e))
}

/// Reads and parses `config.toml`.
pub fn read_config(layout: &Layout) -> Result<Config, AuthorityError> {
    let path = layout.config();
    let bytes = match read_file(&path) {
        Err(AuthorityError::MissingFile(_)) => {
            return Err(AuthorityError::NotInitialised(layout.dir().to_path_buf()));
        }
        other => other?,
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| AuthorityError::Config(format!("{} is not UTF-8", path.display())))?;
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| AuthorityError::Config(format!("{}: {e}", path.display())))?;
    let config = file.ca;
    if config.version != CONFIG_VERSION {
        return Err(AuthorityError::Config(format!(
            "{}: unsupported version {}",
            path.display(),
            config.version
        )));
    }
    Ok(config)
}

/// The `[service] database_url` of `config.toml`, if set (the operator commands use the
/// same database as the service).
pub fn configured_database_url(layout: &Layout) -> Result<Option<String>, AuthorityError> {
    let path = layout.config();
    let text = String::from_utf8(read_file(&path)?)
        .map_err(|_| AuthorityError::Config(format!("{} is not UTF-8", path.display())))?;
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| AuthorityError::Config(format!("{}: {e}", path.display())))?;
    Ok(file.service.and_then(|s| s.database_url))
}

/// Writes `config.toml` (0600: it names the CA's set-up, no secrets, but nobody else needs it).
pub fn write_config(layout: &Layout, config: &Config) -> Result<(), AuthorityError> {
    let file = ConfigFile {
        ca: config.clone(),
        service: None,
    };
    let text = toml::to_string_pretty(&file)
        .map_err(|e| AuthorityError::Config(format!("cannot encode configuration: {e}")))?;
    write_file(&layout.config(), text.as_bytes(), 0o600)
}

/// Reads a PEM certificate file and returns its DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, AuthorityError> {
    let bytes = read_file(path)?;
    let (label, der) = der::pem::decode_vec(&bytes)
        .map_err(|_| AuthorityError::Corrupt(format!("{} is not PEM", path.display())))?;
    if label != "CERTIFICATE" {
        return Err(AuthorityError::Corrupt(format!(
            "{} is not a certificate",
            path.display()
        )));
    }
    Ok(der)
}

/// Writes a certificate as PEM (0644: certificates are public).
pub fn write_certificate(path: &Path, der: &[u8]) -> Result<(), AuthorityError> {
    let pem = confianza_pki::ca::pem_encode("CERTIFICATE", der);
    write_file(path, pem.as_bytes(), 0o644)
}

/// Writes a PKCS#8 key: sealed under `passphrase` with `params`, or plain when `passphrase` is
/// `None`; always 0600.
pub fn write_key(
    path: &Path,
    pkcs8: &[u8],
    passphrase: Option<&[u8]>,
    params: SealParams,
) -> Result<(), AuthorityError> {
    match passphrase {
        Some(p) => {
            let sealed = seal::seal(p, pkcs8, params, &mut rand::rng())
                .map_err(|e| AuthorityError::Corrupt(format!("cannot seal key: {e}")))?;
            write_file(path, &sealed, 0o600)
        }
        None => write_file(path, pkcs8, 0o600),
    }
}

/// Reads a key file written by [`write_key`]: a sealed one needs `passphrase`.
pub fn read_key(
    path: &Path,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, AuthorityError> {
    let bytes = Zeroizing::new(read_file(path)?);
    if !seal::is_sealed(&bytes) {
        return Ok(bytes);
    }
    let passphrase = passphrase.ok_or(AuthorityError::PassphraseRequired)?;
    match seal::open(passphrase, &bytes) {
        Ok(secret) => Ok(Zeroizing::new(secret.as_bytes().to_vec())),
        Err(seal::OpenError::WrongPassphraseOrCorrupt) => Err(AuthorityError::WrongPassphrase),
        Err(e) => Err(AuthorityError::Corrupt(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_sealed_and_plain_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        let secret = b"\x30\x03\x02\x01\x00".to_vec();
        for passphrase in [None, Some(&b"correct horse"[..])] {
            write_key(&path, &secret, passphrase, SealParams::INSECURE_FOR_TESTS).expect("write");
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(
                read_key(&path, passphrase).expect("read").as_slice(),
                secret
            );
        }
        assert!(matches!(
            read_key(&path, Some(b"wrong")),
            Err(AuthorityError::WrongPassphrase)
        ));
        assert!(matches!(
            read_key(&path, None),
            Err(AuthorityError::PassphraseRequired)
        ));
    }

    #[test]
    fn missing_config_means_not_initialised() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            read_config(&Layout::new(dir.path())),
            Err(AuthorityError::NotInitialised(_))
        ));
    }
}
