//! Starting and stopping the service: the Noise listener, the HTTP listener, the writer and
//! the expiry task, and the graceful shutdown that ties them together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use confianza_noise::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::authority::IdentityAuthority;
use super::blobs::{BLOB_EXPIRY_INTERVAL, BlobStore};
use super::device_cache::DeviceCache;
use super::events::{EventBus, LocalBus, Registry};
use super::http::service_router;
use super::limits::{
    EXPIRY_INTERVAL, MAX_CONNECTIONS, MAX_QUEUE_PER_DEVICE, MESSAGE_TTL, OCSP_CACHE_ENTRIES,
    OCSP_CACHE_TTL, SHUTDOWN_GRACE,
};
use super::metrics::Metrics;
use super::ocsp_cache::OcspCache;
use super::state::Shared;
use super::{connection, expiry, writer};
use crate::store::MessageStore;

/// Builds the event bus of a node from its registry (which the bus feeds with remote events).
pub type BusBuilder = Box<dyn FnOnce(Arc<Registry>) -> Arc<dyn EventBus> + Send>;

/// Everything the service needs to start.
pub struct ServiceOptions<S> {
    pub store: S,
    pub authority: Arc<dyn IdentityAuthority>,
    /// The server's Noise static key and the certificate the handshake presents.
    pub noise: ServerConfig,
    /// Where clients connect (port 0: any free port).
    pub listen: SocketAddr,
    /// Where `/metrics`, `/healthz` and `http_routes` are served.
    pub http: SocketAddr,
    /// More HTTP routes (the CA repository).
    pub http_routes: Router,
    /// Per-device mailbox limit.
    pub max_queue: u64,
    /// How long a message waits unread.
    pub message_ttl: Duration,
    /// How news reaches connected devices; `None`: this node only ([`LocalBus`]). A bus for
    /// several nodes is built from the registry, which it must feed with remote events.
    pub bus: Option<BusBuilder>,
    /// Attachment storage; `None`: blob requests are answered `Unsupported`.
    pub blobs: Option<BlobStore>,
}

impl<S> std::fmt::Debug for ServiceOptions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("listen", &self.listen)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl<S> ServiceOptions<S> {
    /// Options with the default limits, local wake-ups and no extra HTTP routes.
    pub fn new(
        store: S,
        authority: Arc<dyn IdentityAuthority>,
        noise: ServerConfig,
        listen: SocketAddr,
        http: SocketAddr,
    ) -> Self {
        Self {
            store,
            authority,
            noise,
            listen,
            http,
            http_routes: Router::new(),
            max_queue: MAX_QUEUE_PER_DEVICE,
            message_ttl: MESSAGE_TTL,
            bus: None,
            blobs: None,
        }
    }
}

/// A running service.
#[derive(Debug)]
pub struct RunningService {
    /// The bound Noise listener address.
    pub noise_addr: SocketAddr,
    /// The bound HTTP listener address.
    pub http_addr: SocketAddr,
    /// Metrics of this service.
    pub metrics: Metrics,
    shutdown: CancellationToken,
    supervisor: JoinHandle<()>,
}

impl RunningService {
    /// Graceful shutdown: stop accepting, let connections finish their requests in flight,
    /// commit every queued send, then return.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(error) = self.supervisor.await {
            tracing::error!(%error, "service supervisor failed");
        }
    }

    /// A token that starts the shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the service has stopped (after a shutdown started elsewhere).
    pub async fn stopped(self) {
        if let Err(error) = self.supervisor.await {
            tracing::error!(%error, "service supervisor failed");
        }
    }
}

/// Binds both listeners and starts serving.
pub async fn start<S: MessageStore + Clone>(
    options: ServiceOptions<S>,
) -> std::io::Result<RunningService> {
    let noise_listener = TcpListener::bind(options.listen).await?;
    let http_listener = TcpListener::bind(options.http).await?;
    let noise_addr = noise_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let metrics = Metrics::new();
    let registry = Arc::new(Registry::default());
    let bus: Arc<dyn EventBus> = match options.bus {
        Some(build) => build(registry.clone()),
        None => Arc::new(LocalBus::new(registry.clone())),
    };
    let writer_stop = CancellationToken::new();
    let (writer, writer_task) = writer::spawn(
        options.store.clone(),
        bus.clone(),
        metrics.clone(),
        options.max_queue,
        writer_stop.clone(),
    );
    let shared = Arc::new(Shared {
        store: options.store.clone(),
        authority: options.authority,
        writer,
        bus,
        registry,
        metrics: metrics.clone(),
        ocsp: OcspCache::new(OCSP_CACHE_TTL, OCSP_CACHE_ENTRIES),
        devices: DeviceCache::default(),
        max_queue: options.max_queue,
        message_ttl: options.message_ttl,
        blobs: options.blobs.clone(),
    });
    let shutdown = CancellationToken::new();

    let router = options
        .http_routes
        .merge(service_router(metrics.clone(), shutdown.clone()));
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        let served = axum::serve(http_listener, router)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "HTTP listener failed");
        }
    });

    let expiry_stop = CancellationToken::new();
    let blob_expiry_task = options.blobs.map(|blobs| {
        tokio::spawn(super::blobs::run_expiry(
            options.store.clone(),
            blobs,
            BLOB_EXPIRY_INTERVAL,
            expiry_stop.clone(),
        ))
    });
    let expiry_task = tokio::spawn(expiry::run(
        options.store,
        metrics.clone(),
        EXPIRY_INTERVAL,
        expiry_stop.clone(),
    ));

    let connections = TaskTracker::new();
    let accept_task = tokio::spawn(accept_loop(
        noise_listener,
        shared,
        Arc::new(options.noise),
        connections.clone(),
        shutdown.clone(),
    ));

    let supervisor_shutdown = shutdown.clone();
    let supervisor = tokio::spawn(async move {
        supervisor_shutdown.cancelled().await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        if let Err(error) = accept_task.await {
            tracing::error!(%error, "accept loop failed");
        }
        connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE * 2, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period");
        }
        // Connections are gone or past their grace: commit whatever sends are still queued.
        writer_stop.cancel();
        if let Err(error) = writer_task.await {
            tracing::error!(%error, "writer failed");
        }
        expiry_stop.cancel();
        let _ = expiry_task.await;
        if let Some(task) = blob_expiry_task {
            let _ = task.await;
        }
        let _ = http_task.await;
        tracing::info!("service stopped");
    });

    tracing::info!(%noise_addr, %http_addr, "service listening");
    Ok(RunningService {
        noise_addr,
        http_addr,
        metrics,
        shutdown,
        supervisor,
    })
}

async fn accept_loop<S: MessageStore + Clone>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
    noise: Arc<ServerConfig>,
    connections: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if connections.len() >= MAX_CONNECTIONS {
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "connection limit reached; refusing");
            drop(socket);
            continue;
        }
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let span = tracing::info_span!("connection", %peer);
        connections.spawn(
            connection::serve(
                shared.clone(),
                noise.clone(),
                socket,
                peer,
                shutdown.clone(),
            )
            .instrument(span),
        );
    }
}
