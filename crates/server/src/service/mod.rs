//! The messaging service of `confianza-server run`: clients over Noise Pipes (TCP), the HTTP
//! repository with `/metrics` and `/healthz`, durable mailboxes with group commit, live
//! delivery, groups.
//!
//! | file | concern |
//! | --- | --- |
//! | `config` | TOML file + `CONFIANZA_*` environment + flags |
//! | `server` | listeners, start, graceful shutdown |
//! | `connection` | one client: handshake, reader loop, socket writer |
//! | `handshake` | what the Noise handshake presents: the Noise certificate and the CA chain |
//! | `session`, `handlers/` | a connection's state and its requests, one file per area |
//! | `writer` | the single writer: group commit of every send and acknowledgement |
//! | `device_cache` | recipients' device lists, reused for a moment by sends |
//! | `mailbox` | pushing a device's mail, acknowledgements, receipts |
//! | `inbox` | the hand-off from the writer to the pumps of devices connected here |
//! | `live` | live relay: one-to-one messages pushed from memory, stored only if unacknowledged |
//! | `events` | connected devices and the bus that wakes them (local; NATS for several nodes) |
//! | `nats` | the bus of several nodes: local dispatch + NATS publish/subscribe |
//! | `blobs`, `handlers/blobs` | attachment bytes in object storage: chunked resumable uploads, ranges, expiry |
//! | `authority` | what the service asks of the CA, as a trait |
//! | `crl_schedule`, `ocsp_renewal` | the CA's schedules: CRL republished, OCSP signer renewed |
//! | `expiry`, `metrics`, `http`, `ocsp_cache`, `rate_limit`, `limits` | the rest |
//!
//! # Guarantees
//!
//! * A send is answered `Sent` only after its commit, or, relayed live, after every recipient
//!   device acknowledged it; a graceful shutdown commits every send it accepted before
//!   closing (live messages not acknowledged by then included), so nothing acknowledged is
//!   lost.
//! * A mailbox entry is deleted only after the device acknowledged it; a device receives its
//!   backlog oldest first, then new mail live, with at most
//!   [`limits::MAX_DELIVERIES_IN_FLIGHT`] unacknowledged deliveries.
//! * A peer that sends a malformed frame, uses an unregistered key for anything but
//!   enrollment, or acknowledges deliveries it was never given is disconnected with an error
//!   frame; every other connection is unaffected.

mod authority;
mod blobs;
mod config;
mod connection;
mod crl_schedule;
mod device_cache;
mod error;
mod events;
mod expiry;
mod handlers;
pub mod handshake;
mod http;
mod inbox;
pub mod limits;
mod live;
mod mailbox;
mod metrics;
mod nats;
mod ocsp_cache;
mod ocsp_renewal;
mod rate_limit;
mod schedule;
mod server;
mod session;
mod state;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

pub use authority::{AuthorityRefusal, BoxFuture, IdentityAuthority, IssuedCertificate};
pub use blobs::{
    BLOB_CHUNK_SIZE, BLOB_EXPIRY_INTERVAL, BLOB_TTL, BlobConfigError, BlobError, BlobQuota,
    BlobStore, DEFAULT_BLOB_QUOTA_BYTES, DEFAULT_BLOB_QUOTA_COUNT, DEFAULT_MAX_BLOB_SIZE,
    QuotaExceeded, expire_once as expire_blobs_once,
};
pub use config::{ConfigError, LogFormat, RunArgs, ServiceConfig};
pub use connection::CONNECTION_ERROR_ID;
pub use events::{Announcer, Claim, Event, EventBus, LocalBus, NoticeTarget, Registry};
pub use metrics::Metrics;
pub use nats::{BusDecodeError, NatsBus, NatsError, NatsLink};
pub use server::{RunningService, ServiceOptions, start};

use crate::authority::Authority;
use crate::store::{AnyMessageStore, Database};

/// Environment variable holding the passphrase of the sealed CA keys.
pub const PASSPHRASE_VARIABLE: &str = "CONFIANZA_CA_PASSPHRASE";

/// `confianza-server --data DIR run`: serves until SIGTERM or SIGINT, then shuts down
/// gracefully.
pub async fn run(data: PathBuf, args: RunArgs) -> anyhow::Result<()> {
    let config = ServiceConfig::load(&data, &args)?;
    init_logging(&config)?;
    let passphrase = std::env::var(PASSPHRASE_VARIABLE)
        .ok()
        .map(|text| zeroize::Zeroizing::new(text.into_bytes()));
    let authority = Authority::open(
        &data,
        passphrase.as_ref().map(|p| p.as_slice()),
        config.database_url.as_deref(),
    )
    .await
    .with_context(|| format!("opening the data directory {}", data.display()))?;
    let database = match &config.database_url {
        Some(url) => Database::connect(url).await,
        None => Database::open_sqlite_file(&authority.layout().database()).await,
    }
    .context("opening the message database")?;
    let store = AnyMessageStore::new(&database).context("opening the message store")?;
    let noise =
        handshake::server_config(&authority).context("the server's Noise key and certificate")?;
    if config.blob_url.is_none() && config.nats_url.is_some() {
        tracing::warn!(
            "blob_url is not set: attachments stay in this node's data directory, where \
             clients connected to other nodes cannot download them"
        );
    }
    let blobs = match &config.blob_url {
        Some(url) => BlobStore::from_url(url),
        None => BlobStore::local(&authority.layout().dir().join("blobs")),
    }
    .and_then(|blobs| match config.max_blob_size {
        Some(max) => blobs.with_max_size(max),
        None => Ok(blobs),
    })
    .map(|blobs| blobs.with_quota(config.blob_quota))
    .context("the blob store")?;
    let nats = match &config.nats_url {
        Some(url) => {
            if config.database_url.is_none() {
                tracing::warn!(
                    "nats_url is set without database_url: other nodes cannot share this \
                     node's SQLite mailboxes"
                );
            }
            let namespace = organisation_namespace(authority.root_der());
            Some(
                NatsLink::connect(url, &namespace, &config.node_id)
                    .await
                    .with_context(|| format!("NATS at {url}"))?,
            )
        }
        None => None,
    };
    let mut options = ServiceOptions::new(
        store,
        Arc::new(authority.clone()),
        noise,
        config.listen,
        config.http,
    );
    let crl_stop = tokio_util::sync::CancellationToken::new();
    let crl_task = tokio::spawn(crl_schedule::run(
        authority.clone(),
        crl_schedule::CRL_CHECK_INTERVAL,
        crl_stop.clone(),
    ));
    let ocsp_task = tokio::spawn(ocsp_renewal::run(
        authority.clone(),
        ocsp_renewal::OCSP_RENEWAL_CHECK_INTERVAL,
        crl_stop.clone(),
    ));
    options.http_routes = crate::http::repository_router(authority);
    options.bus = nats.map(NatsLink::bus_builder);
    options.blobs = Some(blobs);
    let running = start(options)
        .await
        .with_context(|| format!("listening on {} and {}", config.listen, config.http))?;
    tracing::info!(node = %config.node_id, noise = %running.noise_addr, http = %running.http_addr, "confianza-server running");
    wait_for_signal().await?;
    running.shutdown().await;
    crl_stop.cancel();
    let _ = crl_task.await;
    let _ = ocsp_task.await;
    Ok(())
}

/// The NATS namespace of an organisation: the first 16 bytes of the SHA-256 of its root CA
/// certificate, in hex. Every node of the organisation shares the root, so they meet on one
/// subject, and two organisations on one NATS server never hear each other.
fn organisation_namespace(root_der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root_der);
    hex::encode(&digest[..16])
}

fn init_logging(config: &ServiceConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("log filter {:?}", config.log_filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed (tests, embedding): keep the existing subscriber.
    drop(installed);
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("SIGINT handler")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("Ctrl-C handler")?;
    tracing::info!("signal received");
    Ok(())
}
