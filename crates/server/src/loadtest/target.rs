//! The server under load: one started in-process on a throwaway data directory
//! (`--embedded`), or a running one on 127.0.0.1 whose data directory gives the enrollment
//! codes and the Noise key to pin (`--server`). And the enrollment of load devices on it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use rand::rngs::StdRng;

use super::LoadtestError;
use super::client::{Connection, DeviceKeys, ServerPin};
use crate::authority::Authority;
use crate::authority::init::{InitOptions, init};
use crate::service::{PASSPHRASE_VARIABLE, RunningService, ServiceOptions, start};
use crate::store::{AnyMessageStore, Database};

/// How long an enrollment code made for a load device stays valid.
const CODE_VALIDITY: Duration = Duration::from_secs(3_600);

/// The domain of the throwaway data directory of `--embedded`.
const EMBEDDED_DOMAIN: &str = "load.example.org";

/// A data directory that is deleted when dropped.
struct TempDataDir(PathBuf);

impl TempDataDir {
    fn create() -> Result<Self, LoadtestError> {
        let mut salt = [0u8; 8];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
        let path = std::env::temp_dir().join(format!("confianza-loadtest-{}", hex::encode(salt)));
        std::fs::create_dir(&path).map_err(|source| LoadtestError::Io {
            what: "creating the temporary data directory",
            source,
        })?;
        Ok(Self(path))
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("loadtest: could not remove {}: {error}", self.0.display());
        }
    }
}

/// The in-process service of `--embedded` and its data directory (dropped in that order).
struct Embedded {
    running: Option<RunningService>,
    _dir: TempDataDir,
}

/// Where the load goes, and how to enroll devices there.
pub struct Target {
    /// The Noise listener.
    pub addr: SocketAddr,
    /// The server's Noise key and certificate.
    pub pin: ServerPin,
    authority: Authority,
    domain: String,
    embedded: Option<Embedded>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("embedded", &self.embedded.is_some())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A running server at `addr` (loopback only) whose data directory is `data`. The sealed
    /// CA keys are opened with `CONFIANZA_CA_PASSPHRASE` when set; `CONFIANZA_DATABASE_URL`
    /// selects PostgreSQL as for `run`.
    pub async fn remote(addr: SocketAddr, data: &Path) -> Result<Self, LoadtestError> {
        if !addr.ip().is_loopback() {
            return Err(LoadtestError::Arguments(format!(
                "--server {addr}: the load generator only targets 127.0.0.1"
            )));
        }
        let passphrase = std::env::var(PASSPHRASE_VARIABLE)
            .ok()
            .map(|text| zeroize::Zeroizing::new(text.into_bytes()));
        let database_url = std::env::var("CONFIANZA_DATABASE_URL").ok();
        let authority = Authority::open(
            data,
            passphrase.as_ref().map(|p| p.as_slice()),
            database_url.as_deref(),
        )
        .await?;
        Self::assemble(addr, authority, None)
    }

    /// A fresh data directory (no passphrase, Ed25519 CA) and the service started on it
    /// in-process, SQLite in WAL mode, on a free port of 127.0.0.1.
    pub async fn embedded() -> Result<Self, LoadtestError> {
        let dir = TempDataDir::create()?;
        let options = InitOptions {
            organisation: "Confianza load test".to_owned(),
            name: format!("chat.{EMBEDDED_DOMAIN}"),
            key_type: CaAlgorithm::Ed25519,
            domains: vec![EMBEDDED_DOMAIN.to_owned()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".to_owned(),
            // The keys are not sealed (no passphrase) and the directory is deleted at the end.
            seal_params: SealParams::INSECURE_FOR_TESTS,
        };
        init(&dir.0, options, None, None).await?;
        let authority = Authority::open(&dir.0, None, None).await?;
        let database = Database::open_sqlite_file(&authority.layout().database())
            .await
            .map_err(|error| LoadtestError::Setup(format!("message database: {error}")))?;
        let noise = crate::service::handshake::server_config(&authority)
            .map_err(|error| LoadtestError::Setup(format!("Noise key: {error}")))?;
        let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let options = ServiceOptions::new(
            AnyMessageStore::new(&database)
                .map_err(|error| LoadtestError::Setup(format!("message store: {error}")))?,
            Arc::new(authority.clone()),
            noise,
            localhost,
            localhost,
        );
        let running = start(options).await.map_err(|source| LoadtestError::Io {
            what: "starting the embedded service",
            source,
        })?;
        let addr = running.noise_addr;
        Self::assemble(
            addr,
            authority,
            Some(Embedded {
                running: Some(running),
                _dir: dir,
            }),
        )
    }

    fn assemble(
        addr: SocketAddr,
        authority: Authority,
        embedded: Option<Embedded>,
    ) -> Result<Self, LoadtestError> {
        let domain =
            authority.config().domains.first().cloned().ok_or_else(|| {
                LoadtestError::Setup("the data directory serves no domain".into())
            })?;
        Ok(Self {
            addr,
            pin: ServerPin {
                static_key: authority.noise_static_public(),
                certificate: authority.noise_certificate_der(),
            },
            authority,
            domain,
            embedded,
        })
    }

    /// Whether the service runs in this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The address of load device `index` of run `run`.
    pub fn address(&self, run: &str, index: usize) -> String {
        format!("load{run}n{index}@{}", self.domain)
    }

    /// Makes an enrollment code for `address`, connects and enrolls a fresh device. The
    /// connection stays open (the server starts delivering to it at once).
    pub async fn enroll(&self, address: &str) -> Result<EnrolledDevice, LoadtestError> {
        let code = self
            .authority
            .create_enrollment_code(address, CODE_VALIDITY, SystemTime::now())
            .await?;
        let mut rng: StdRng = rand::make_rng();
        let keys = DeviceKeys::generate(&mut rng);
        let mut connection = Connection::connect(self.addr, &keys.noise, &self.pin).await?;
        let device_id = connection
            .enroll(address, code.as_str(), &keys, &mut rng)
            .await?;
        Ok(EnrolledDevice {
            address: address.to_owned(),
            device_id,
            registration_id: keys.registration_id,
            connection,
        })
    }

    /// Stops the embedded service gracefully (nothing to do for a remote one).
    pub async fn shutdown(mut self) {
        if let Some(embedded) = &mut self.embedded
            && let Some(running) = embedded.running.take()
        {
            running.shutdown().await;
        }
    }
}

/// A device enrolled for the run, with its open connection.
#[derive(Debug)]
pub struct EnrolledDevice {
    pub address: String,
    pub device_id: u32,
    pub registration_id: u32,
    pub connection: Connection,
}
