//! Who is connected, and how news reaches them: the in-process registry of connected devices
//! and the [`EventBus`] that carries wake-ups and notices to it.
//!
//! One node needs only [`LocalBus`], which hands events straight to its [`Registry`]. With
//! several nodes a bus also publishes each event to the others (NATS), whose subscribers call
//! [`Registry::dispatch`] on their own registry; the rest of the service does not change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use confianza_api::Notice;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::limits::NOTICE_QUEUE_LEN;
use crate::store::DeviceAddress;

/// Something a connected device should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The device's mailbox has new entries: its connection should look.
    Mailbox(DeviceAddress),
    /// A notice for every connected device of an account, or for one device.
    Notice { to: NoticeTarget, notice: Notice },
}

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeTarget {
    Account(String),
    Device(DeviceAddress),
}

/// Carries events to the connections of the devices they concern, wherever they are connected.
/// `publish` never blocks: events are hints that make a connection look at durable state.
pub trait EventBus: Send + Sync + 'static {
    fn publish(&self, events: Vec<Event>);
}

/// The bus of a single node: events go straight to its registry.
#[derive(Debug, Clone)]
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, events: Vec<Event>) {
        for event in events {
            self.registry.dispatch(&event);
        }
    }
}

struct Entry {
    connection: u64,
    mailbox: Arc<Notify>,
    notices: mpsc::Sender<Notice>,
    displaced: CancellationToken,
}

/// The devices connected to this node, each with the handles its connection listens on.
/// A device connects once: a new connection of the same device displaces the old one (which
/// then closes), so two connections never share a mailbox.
#[derive(Default)]
pub struct Registry {
    accounts: Mutex<HashMap<String, HashMap<u32, Entry>>>,
    next_connection: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connected_devices", &self.connected_devices())
            .finish()
    }
}

impl Registry {
    /// Registers the connection of `device`; dropping the returned [`Registration`] removes it.
    pub fn register(self: &Arc<Self>, device: &DeviceAddress) -> Registration {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Notify::new());
        let (notices, notice_receiver) = mpsc::channel(NOTICE_QUEUE_LEN);
        let displaced = CancellationToken::new();
        let entry = Entry {
            connection,
            mailbox: mailbox.clone(),
            notices,
            displaced: displaced.clone(),
        };
        let previous = self
            .lock()
            .entry(device.address.clone())
            .or_default()
            .insert(device.device_id, entry);
        if let Some(previous) = previous {
            previous.displaced.cancel();
        }
        Registration {
            registry: self.clone(),
            device: device.clone(),
            connection,
            mailbox,
            notices: notice_receiver,
            displaced,
        }
    }

    /// Delivers one event to the connections on this node it concerns.
    pub fn dispatch(&self, event: &Event) {
        let accounts = self.lock();
        match event {
            Event::Mailbox(device) => {
                if let Some(entry) = accounts
                    .get(&device.address)
                    .and_then(|devices| devices.get(&device.device_id))
                {
                    entry.mailbox.notify_one();
                }
            }
            Event::Notice { to, notice } => {
                let entries: Vec<&Entry> = match to {
                    NoticeTarget::Account(address) => accounts
                        .get(address)
                        .map(|devices| devices.values().collect())
                        .unwrap_or_default(),
                    NoticeTarget::Device(device) => accounts
                        .get(&device.address)
                        .and_then(|devices| devices.get(&device.device_id))
                        .into_iter()
                        .collect(),
                };
                for entry in entries {
                    // A client this far behind misses a hint, not data.
                    let _ = entry.notices.try_send(notice.clone());
                }
            }
        }
    }

    /// Wakes the mailbox of every device connected to this node, so each connection looks at
    /// its durable mailbox again: after a gap in the events from other nodes (the NATS link
    /// was down), wake-ups published meanwhile may be lost.
    pub fn wake_all(&self) {
        for devices in self.lock().values() {
            for entry in devices.values() {
                entry.mailbox.notify_one();
            }
        }
    }

    /// How many devices are connected to this node.
    pub fn connected_devices(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<u32, Entry>>> {
        // The map stays consistent even if a holder panicked (every update is one insert or
        // remove), so a poisoned lock is still usable.
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unregister(&self, device: &DeviceAddress, connection: u64) {
        let mut accounts = self.lock();
        if let Some(devices) = accounts.get_mut(&device.address) {
            if devices
                .get(&device.device_id)
                .is_some_and(|entry| entry.connection == connection)
            {
                devices.remove(&device.device_id);
            }
            if devices.is_empty() {
                accounts.remove(&device.address);
            }
        }
    }
}

/// A connection's place in the [`Registry`].
pub struct Registration {
    registry: Arc<Registry>,
    device: DeviceAddress,
    connection: u64,
    /// Woken when the mailbox has new entries (a permit is stored if nobody waits).
    pub mailbox: Arc<Notify>,
    /// Notices for this device.
    pub notices: mpsc::Receiver<Notice>,
    /// Cancelled when a newer connection of the same device registered.
    pub displaced: CancellationToken,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("device", &self.device)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.unregister(&self.device, self.connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(address: &str, device_id: u32) -> DeviceAddress {
        DeviceAddress {
            address: address.to_owned(),
            device_id,
        }
    }

    #[tokio::test]
    async fn wakeups_reach_only_their_device_and_are_not_lost() {
        let registry = Arc::new(Registry::default());
        let bus = LocalBus::new(registry.clone());
        let alice = registry.register(&device("alice@example.org", 1));
        let bob = registry.register(&device("bob@example.org", 1));
        // Published before anyone waits: the permit is kept.
        bus.publish(vec![Event::Mailbox(device("alice@example.org", 1))]);
        tokio::time::timeout(std::time::Duration::from_secs(1), alice.mailbox.notified())
            .await
            .expect("alice is woken");
        let bob_woken =
            tokio::time::timeout(std::time::Duration::from_millis(50), bob.mailbox.notified())
                .await;
        assert!(bob_woken.is_err(), "bob was not concerned");
    }

    #[tokio::test]
    async fn a_new_connection_displaces_the_old_and_unregistering_the_old_keeps_the_new() {
        let registry = Arc::new(Registry::default());
        let first = registry.register(&device("alice@example.org", 1));
        let mut second = registry.register(&device("alice@example.org", 1));
        assert!(first.displaced.is_cancelled());
        assert!(!second.displaced.is_cancelled());
        drop(first);
        assert_eq!(registry.connected_devices(), 1);
        registry.dispatch(&Event::Notice {
            to: NoticeTarget::Account("alice@example.org".to_owned()),
            notice: Notice::MailboxDrained,
        });
        assert_eq!(second.notices.try_recv().ok(), Some(Notice::MailboxDrained));
        drop(second);
        assert_eq!(registry.connected_devices(), 0);
    }

    #[test]
    fn a_slow_connection_loses_notices_beyond_its_queue_not_the_node() {
        let registry = Arc::new(Registry::default());
        let mut slow = registry.register(&device("alice@example.org", 2));
        for _ in 0..NOTICE_QUEUE_LEN + 1 {
            registry.dispatch(&Event::Notice {
                to: NoticeTarget::Device(device("alice@example.org", 2)),
                notice: Notice::MailboxDrained,
            });
        }
        let mut received = 0;
        while slow.notices.try_recv().is_ok() {
            received += 1;
        }
        assert_eq!(received, NOTICE_QUEUE_LEN);
    }
}
