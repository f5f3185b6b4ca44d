//! The demo's embedded server: a data directory made by the real `init` (Ed25519 CA, no
//! passphrase, SQLite) in a temporary directory, and the messaging service started in process
//! on 127.0.0.1 with ephemeral ports, its attachments in the data directory's `blobs` folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use confianza_server::authority::Authority;
use confianza_server::authority::init::{InitOptions, init};
use confianza_server::service::{BlobStore, RunningService, ServiceOptions, start};
use confianza_server::store::{AnyMessageStore, Database};

/// The organisation the demo sets up.
pub const ORGANISATION: &str = "Example Org";
/// The server's DNS name, bound to its Noise key by its certificate.
pub const SERVER_NAME: &str = "chat.example.org";
/// The mail domain the RA enrolls.
pub const DOMAIN: &str = "example.org";
/// How long a demo enrollment code stays valid.
const CODE_VALIDITY: Duration = Duration::from_secs(600);

/// The CA's data directory and the running service.
pub struct EmbeddedServer {
    pub authority: Authority,
    running: Option<RunningService>,
    pub noise_addr: SocketAddr,
    /// Where the service keeps attachment blobs.
    pub blob_dir: PathBuf,
}

impl EmbeddedServer {
    /// Runs `init` in `dir` and starts the service on it.
    pub async fn start(dir: &Path) -> Result<Self> {
        let options = InitOptions {
            organisation: ORGANISATION.to_owned(),
            name: SERVER_NAME.to_owned(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec![DOMAIN.to_owned()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".to_owned(),
            // The CA keys are not sealed (no passphrase), so no Argon2 cost is paid.
            seal_params: SealParams::RECOMMENDED,
        };
        init(dir, options, None, None)
            .await
            .context("initialising the CA data directory")?;
        let authority = Authority::open(dir, None, None)
            .await
            .context("opening the CA data directory")?;
        let database = Database::open_sqlite_file(&authority.layout().database())
            .await
            .context("opening the message database")?;
        let store = AnyMessageStore::new(&database).context("opening the message store")?;
        let noise = confianza_server::service::handshake::server_config(&authority)
            .context("the server's Noise key and certificate")?;
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
        let blob_dir = dir.join("blobs");
        let blobs = BlobStore::local(&blob_dir).context("the blob store")?;
        let mut options = ServiceOptions::new(
            store,
            Arc::new(authority.clone()),
            noise,
            localhost,
            localhost,
        );
        options.blobs = Some(blobs);
        let running = start(options).await.context("starting the service")?;
        Ok(Self {
            authority,
            noise_addr: running.noise_addr,
            running: Some(running),
            blob_dir,
        })
    }

    /// A one-time enrollment code for `address`, as `confianza-server ra enroll-code` makes it.
    pub async fn enrollment_code(&self, address: &str) -> Result<String> {
        Ok(self
            .authority
            .create_enrollment_code(address, CODE_VALIDITY, SystemTime::now())
            .await
            .with_context(|| format!("making an enrollment code for {address}"))?
            .as_str()
            .to_owned())
    }

    /// Stops the service gracefully.
    pub async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}
