//! Prometheus metrics of the service, served as text on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric the service updates. Cloning shares the same metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Client connections open now (handshake done).
    pub connections_open: Gauge,
    /// Client connections accepted since start (handshake done).
    pub connections_total: Counter,
    /// Connections closed because the client broke the protocol.
    pub connections_refused: Counter,
    /// Requests answered.
    pub requests_total: Counter,
    /// Requests refused with an error code.
    pub request_errors_total: Counter,
    /// Envelopes newly accepted (one per recipient device): stored, or relayed live.
    pub messages_in_total: Counter,
    /// Deliveries pushed to devices (envelopes and receipts).
    pub messages_out_total: Counter,
    /// Deliveries pushed as the writer handed them over, without a mailbox read.
    pub deliveries_handed_off_total: Counter,
    /// Delivery receipts pushed from memory to a sender connected here, never stored.
    pub receipts_from_memory_total: Counter,
    /// Messages relayed live: pushed from memory to a device connected here and acknowledged
    /// by it, never stored.
    pub messages_live_total: Counter,
    /// Mailbox reads (`pending`) by the pumps of connected devices.
    pub mailbox_reads_total: Counter,
    /// Deliveries acknowledged by devices.
    pub messages_acknowledged_total: Counter,
    /// Mailbox entries removed by expiry.
    pub messages_expired_total: Counter,
    /// Sends waiting for the writer now.
    pub writer_queue_depth: Gauge,
    /// Messages per writer commit.
    pub writer_batch_size: Histogram,
    /// Seconds from a send reaching the writer until its commit.
    pub send_commit_seconds: Histogram,
    /// Seconds to answer a request (sends included, until their commit).
    pub request_seconds: Histogram,
    registry: std::sync::Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `confianza_` prefix.
    pub fn new() -> Self {
        let connections_open = Gauge::default();
        let connections_total = Counter::default();
        let connections_refused = Counter::default();
        let requests_total = Counter::default();
        let request_errors_total = Counter::default();
        let messages_in_total = Counter::default();
        let messages_out_total = Counter::default();
        let deliveries_handed_off_total = Counter::default();
        let receipts_from_memory_total = Counter::default();
        let messages_live_total = Counter::default();
        let mailbox_reads_total = Counter::default();
        let messages_acknowledged_total = Counter::default();
        let messages_expired_total = Counter::default();
        let writer_queue_depth = Gauge::default();
        let writer_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        // 50 µs .. ~0.8 s
        let send_commit_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 15));
        let request_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 15));

        let mut registry = Registry::with_prefix("confianza");
        registry.register(
            "connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted",
            connections_total.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed for breaking the protocol",
            connections_refused.clone(),
        );
        registry.register("requests", "Requests answered", requests_total.clone());
        registry.register(
            "request_errors",
            "Requests refused with an error",
            request_errors_total.clone(),
        );
        registry.register(
            "messages_in",
            "Envelopes accepted (stored, or relayed live), one per recipient device",
            messages_in_total.clone(),
        );
        registry.register(
            "messages_out",
            "Deliveries pushed to devices",
            messages_out_total.clone(),
        );
        registry.register(
            "deliveries_handed_off",
            "Deliveries pushed as the writer handed them over, without a mailbox read",
            deliveries_handed_off_total.clone(),
        );
        registry.register(
            "receipts_from_memory",
            "Delivery receipts pushed from memory to a sender connected here, never stored",
            receipts_from_memory_total.clone(),
        );
        registry.register(
            "messages_live",
            "Messages pushed from memory to a device connected here and acknowledged, never stored",
            messages_live_total.clone(),
        );
        registry.register(
            "mailbox_reads",
            "Mailbox reads by the pumps of connected devices",
            mailbox_reads_total.clone(),
        );
        registry.register(
            "messages_acknowledged",
            "Deliveries acknowledged by devices",
            messages_acknowledged_total.clone(),
        );
        registry.register(
            "messages_expired",
            "Mailbox entries deleted unread at expiry",
            messages_expired_total.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Sends waiting for the writer",
            writer_queue_depth.clone(),
        );
        registry.register(
            "writer_batch_size",
            "Messages per writer commit",
            writer_batch_size.clone(),
        );
        registry.register(
            "send_commit_seconds",
            "Time from a send reaching the writer to its commit",
            send_commit_seconds.clone(),
        );
        registry.register(
            "request_seconds",
            "Time to answer a request",
            request_seconds.clone(),
        );
        Self {
            connections_open,
            connections_total,
            connections_refused,
            requests_total,
            request_errors_total,
            messages_in_total,
            messages_out_total,
            deliveries_handed_off_total,
            receipts_from_memory_total,
            messages_live_total,
            mailbox_reads_total,
            messages_acknowledged_total,
            messages_expired_total,
            writer_queue_depth,
            writer_batch_size,
            send_commit_seconds,
            request_seconds,
            registry: std::sync::Arc::new(registry),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_shows_updates() {
        let metrics = Metrics::new();
        metrics.messages_in_total.inc_by(3);
        metrics.writer_batch_size.observe(3.0);
        let text = metrics.render();
        assert!(text.contains("confianza_messages_in_total 3"), "{text}");
        assert!(
            text.contains("confianza_writer_batch_size_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
