//! Delivery: the pump that pushes a connected device's mailbox (backlog first, oldest first,
//! then new mail as the bus wakes it) within a window of unacknowledged deliveries, and the
//! handling of acknowledgements (delete, then queue delivery receipts for the senders).

use std::sync::Arc;
use std::time::Duration;

use confianza_api::{Delivery, DeliveryItem, ErrorCode, Notice, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::events::Registration;
use super::limits::MAX_DELIVERIES_IN_FLIGHT;
use super::session::{Delivering, InFlight, Session, lock_window};
use super::state::Shared;
use crate::store::{DeviceAddress, MessageStore, QueuedItem};

/// Entries read from the mailbox per query.
const PENDING_BATCH: usize = 128;

/// Pause before retrying after the store failed to read a mailbox.
const RETRY_AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

impl<S: MessageStore + Clone> Session<S> {
    /// Registers the device with the node and starts pushing its mailbox.
    pub(crate) fn start_delivery(&mut self) {
        let Some(device) = &self.device else {
            return;
        };
        if self.delivering.is_some() {
            return;
        }
        let registration = self.shared.registry.register(&device.address);
        let in_flight = InFlight::default();
        let stop = CancellationToken::new();
        let mailbox = registration.mailbox.clone();
        let displaced = registration.displaced.clone();
        let task = tokio::spawn(pump(
            self.shared.clone(),
            device.address.clone(),
            registration,
            in_flight.clone(),
            self.outbound.clone(),
            stop.clone(),
        ));
        self.delivering = Some(Delivering {
            in_flight,
            mailbox,
            displaced,
            stop,
            task,
        });
    }

    /// Stops the pump and waits for it.
    pub(crate) async fn stop_delivery(&mut self) {
        if let Some(delivering) = self.delivering.take() {
            delivering.stop.cancel();
            if let Err(error) = delivering.task.await {
                tracing::error!(%error, "mailbox pump failed");
            }
        }
    }

    /// An `Ack` frame: the writer deletes the entries and queues the senders' receipts; then
    /// the window is freed.
    pub(crate) async fn acknowledge(&mut self, delivery_ids: Vec<u64>) -> Result<(), Failure> {
        let me = self.me()?;
        let Some(delivering) = &self.delivering else {
            return Err(Failure::close(
                ErrorCode::Unauthenticated,
                "no deliveries on this connection",
            ));
        };
        let fresh: Vec<u64> = {
            let window = lock_window(&delivering.in_flight);
            if let Some(never) = delivery_ids.iter().find(|id| **id > window.highest_pushed) {
                return Err(Failure::close(
                    ErrorCode::Forbidden,
                    format!("delivery {never} was never pushed to this connection"),
                ));
            }
            // Ids pushed here but not in the window were acknowledged already: repeats are
            // harmless and ignored.
            delivery_ids
                .into_iter()
                .filter(|id| window.unacknowledged.contains(id))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        // Deleted and receipts queued by the writer, in its batch: nothing else takes the
        // database's write lock on the delivery path.
        self.shared
            .writer
            .acknowledge(me, fresh.clone(), self.shared.message_ttl)
            .await?;
        {
            let mut window = lock_window(&delivering.in_flight);
            for id in &fresh {
                window.unacknowledged.remove(id);
            }
        }
        delivering.mailbox.notify_one();
        Ok(())
    }
}

/// Pushes `device`'s mailbox to the connection until `stop` (or the connection goes).
async fn pump<S: MessageStore>(
    shared: Arc<Shared<S>>,
    device: DeviceAddress,
    mut registration: Registration,
    in_flight: InFlight,
    outbound: mpsc::Sender<ServerFrame>,
    stop: CancellationToken,
) {
    let mailbox: Arc<Notify> = registration.mailbox.clone();
    let mut drained = false;
    loop {
        let (room, cursor) = {
            let window = lock_window(&in_flight);
            (
                MAX_DELIVERIES_IN_FLIGHT.saturating_sub(window.unacknowledged.len()),
                window.highest_pushed,
            )
        };
        if room > 0 {
            let limit = room.min(PENDING_BATCH);
            let limit_u32 = u32::try_from(limit).unwrap_or(u32::MAX);
            match shared.store.pending(&device, cursor, limit_u32).await {
                Ok(entries) => {
                    let fetched = entries.len();
                    for entry in entries {
                        {
                            let mut window = lock_window(&in_flight);
                            window.unacknowledged.insert(entry.delivery_id);
                            window.highest_pushed = window.highest_pushed.max(entry.delivery_id);
                        }
                        let item = match entry.item {
                            QueuedItem::Envelope(envelope) => DeliveryItem::Envelope(envelope),
                            QueuedItem::Receipt(receipt) => DeliveryItem::Receipt(receipt),
                        };
                        let frame = ServerFrame::Delivery(Delivery {
                            id: entry.delivery_id,
                            item,
                        });
                        if outbound.send(frame).await.is_err() {
                            return;
                        }
                        shared.metrics.messages_out_total.inc();
                    }
                    if fetched == limit {
                        // There may be more right behind.
                        continue;
                    }
                    if !drained {
                        drained = true;
                        if outbound
                            .send(ServerFrame::Notice(Notice::MailboxDrained))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, address = %device.address, device = device.device_id, "reading a mailbox failed");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_AFTER_STORE_ERROR) => continue,
                    }
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = mailbox.notified() => {}
            notice = registration.notices.recv() => {
                if let Some(notice) = notice
                    && outbound.send(ServerFrame::Notice(notice)).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
