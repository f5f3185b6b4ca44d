//! The service's HTTP routes: `/metrics` (Prometheus text) and `/healthz`, merged beside the
//! CA repository's routes on the `--http` listener.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Content type of the OpenMetrics text format that `prometheus-client` writes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Health {
    metrics: Metrics,
    shutdown: CancellationToken,
}

/// `/metrics` and `/healthz`. Health turns to 503 as soon as shutdown starts, so a load
/// balancer stops sending new clients.
pub fn service_router(metrics: Metrics, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Health { metrics, shutdown })
}

async fn metrics_text(State(health): State<Health>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        health.metrics.render(),
    )
}

async fn healthz(State(health): State<Health>) -> impl IntoResponse {
    if health.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
