//! Who is connected, and how news reaches them: the in-process registry of connected devices
//! and the [`EventBus`] that carries wake-ups and notices to it.
//!
//! One node needs only [`LocalBus`], which hands events straight to its [`Registry`]. With
//! several nodes a bus also publishes each event to the others (NATS), whose subscribers call
//! [`Registry::dispatch`] on their own registry; the rest of the service does not change.
//!
//! # One connection per device, across nodes
//!
//! A device delivers its mailbox through one connection at a time. Every registration gets a
//! [`Claim`]: a stamp from the registry's clock and the registry's random node id, ordered by
//! stamp, then node id, so any two claims compare the same way on every node. On one node a
//! newer registration simply replaces the older. Across nodes, the registry announces each
//! claim through its [`Announcer`] (the NATS bus installs one), and a node receiving
//! [`Event::Claimed`] compares it with the claim of its own connection of that device:
//!
//! * the received claim is newer: the local connection is displaced (closed with the same
//!   error as a displacement on one node) and leaves the registry;
//! * the local claim is newer: the node announces it again, so the node holding the older
//!   connection displaces it when the answer arrives.
//!
//! So whatever order the announcements arrive in, and also when two connections of a device
//! register on two nodes at the same moment, exactly the newest claim survives everywhere.
//! The clock is a hybrid logical clock: the wall clock in microseconds, but always past every
//! stamp this node has issued or received, so a connection made after this node heard of
//! another one's claim is newer even when the other node's clock runs ahead. After a gap in
//! the link (NATS down) a node announces every claim it holds again.
//!
//! Until the announcement reaches the other node (a NATS round trip), both connections may
//! push the mailbox: entries are deleted only on acknowledgement, so nothing is lost, and an
//! entry both connections receive carries the same delivery id and client message id, which
//! clients deduplicate on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use confianza_api::Notice;
use rand::Rng;
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
    /// A connection of `device` registered (or re-asserted its registration) with `claim`:
    /// connections of the device with an older claim are displaced. Travels between nodes
    /// only; see the module docs.
    Claimed { device: DeviceAddress, claim: Claim },
}

/// Length of a registry's random node id.
pub const NODE_ID_LEN: usize = 16;

/// Which registration of a device is the newest: ordered by `stamp`, then by `node` (so two
/// nodes that issue the same stamp still agree on the order). See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    /// Microseconds on the issuing node's hybrid logical clock.
    pub stamp: u64,
    /// The issuing registry's random id.
    pub node: [u8; NODE_ID_LEN],
}

/// Sends a registry's own claims to the other nodes. Must not block (it runs with no lock
/// held, on the task that registers a connection or dispatches an event).
pub type Announcer = Box<dyn Fn(Vec<Event>) + Send + Sync>;

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
    claim: Claim,
    mailbox: Arc<Notify>,
    notices: mpsc::Sender<Notice>,
    displaced: CancellationToken,
}

/// What the registry's lock guards.
#[derive(Default)]
struct Devices {
    accounts: HashMap<String, HashMap<u32, Entry>>,
    /// The last stamp issued or received (hybrid logical clock).
    clock: u64,
}

impl Devices {
    fn entry_mut(&mut self, device: &DeviceAddress) -> Option<&mut Entry> {
        self.accounts
            .get_mut(&device.address)
            .and_then(|devices| devices.get_mut(&device.device_id))
    }

    /// A stamp past the wall clock's microseconds and past every stamp seen.
    fn next_stamp(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.clock = now.max(self.clock.saturating_add(1));
        self.clock
    }

    fn remove(&mut self, device: &DeviceAddress, connection: u64) {
        if let Some(devices) = self.accounts.get_mut(&device.address) {
            if devices
                .get(&device.device_id)
                .is_some_and(|entry| entry.connection == connection)
            {
                devices.remove(&device.device_id);
            }
            if devices.is_empty() {
                self.accounts.remove(&device.address);
            }
        }
    }
}

/// The devices connected to this node, each with the handles its connection listens on.
/// A device connects once: a new connection of the same device displaces the old one (which
/// then closes), on this node or, through [`Event::Claimed`], on another; so two connections
/// never share a mailbox for longer than an announcement takes.
pub struct Registry {
    devices: Mutex<Devices>,
    next_connection: AtomicU64,
    node: [u8; NODE_ID_LEN],
    announcer: OnceLock<Announcer>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut node = [0u8; NODE_ID_LEN];
        rand::rng().fill_bytes(&mut node);
        Self {
            devices: Mutex::default(),
            next_connection: AtomicU64::new(0),
            node,
            announcer: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connected_devices", &self.connected_devices())
            .finish()
    }
}

impl Registry {
    /// This registry's random node id, the tie-breaker of its claims.
    pub fn node_id(&self) -> [u8; NODE_ID_LEN] {
        self.node
    }

    /// Installs the announcer that carries this registry's claims to the other nodes (once:
    /// `false` if one is installed already). Without one, displacement is local only.
    pub fn set_announcer(&self, announcer: Announcer) -> bool {
        self.announcer.set(announcer).is_ok()
    }

    fn announce(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        if let Some(announcer) = self.announcer.get() {
            announcer(events);
        }
    }

    /// Registers the connection of `device`, displacing any older connection of it here and
    /// (through the announcer) on other nodes; dropping the returned [`Registration`]
    /// removes it.
    pub fn register(self: &Arc<Self>, device: &DeviceAddress) -> Registration {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Notify::new());
        let (notices, notice_receiver) = mpsc::channel(NOTICE_QUEUE_LEN);
        let displaced = CancellationToken::new();
        let (claim, previous) = {
            let mut devices = self.lock();
            let claim = Claim {
                stamp: devices.next_stamp(),
                node: self.node,
            };
            let entry = Entry {
                connection,
                claim,
                mailbox: mailbox.clone(),
                notices,
                displaced: displaced.clone(),
            };
            let previous = devices
                .accounts
                .entry(device.address.clone())
                .or_default()
                .insert(device.device_id, entry);
            (claim, previous)
        };
        if let Some(previous) = previous {
            previous.displaced.cancel();
        }
        self.announce(vec![Event::Claimed {
            device: device.clone(),
            claim,
        }]);
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
        if let Event::Claimed { device, claim } = event {
            self.claimed(device, *claim);
            return;
        }
        let devices = self.lock();
        let accounts = &devices.accounts;
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
            Event::Claimed { .. } => {}
        }
    }

    /// Another node's claim on `device` (see the module docs): displaces an older local
    /// connection, or answers with the newer local claim.
    fn claimed(&self, device: &DeviceAddress, claim: Claim) {
        let answer = {
            let mut devices = self.lock();
            devices.clock = devices.clock.max(claim.stamp);
            let Some(entry) = devices.entry_mut(device) else {
                return;
            };
            match entry.claim.cmp(&claim) {
                std::cmp::Ordering::Less => {
                    entry.displaced.cancel();
                    let connection = entry.connection;
                    devices.remove(device, connection);
                    tracing::debug!(address = %device.address, device = device.device_id, "displaced by a connection on another node");
                    None
                }
                std::cmp::Ordering::Greater => Some(Event::Claimed {
                    device: device.clone(),
                    claim: entry.claim,
                }),
                // Our own claim (an echo): nothing to do.
                std::cmp::Ordering::Equal => None,
            }
        };
        if let Some(answer) = answer {
            self.announce(vec![answer]);
        }
    }

    /// Wakes the mailbox of every device connected to this node, so each connection looks at
    /// its durable mailbox again: after a gap in the events from other nodes (the NATS link
    /// was down), wake-ups published meanwhile may be lost.
    pub fn wake_all(&self) {
        for devices in self.lock().accounts.values() {
            for entry in devices.values() {
                entry.mailbox.notify_one();
            }
        }
    }

    /// Announces again the claim of every connection on this node: after a gap in the link,
    /// claims published meanwhile may be lost, and a device may hold connections on two nodes.
    pub fn reannounce_claims(&self) {
        let claims: Vec<Event> = self
            .lock()
            .accounts
            .iter()
            .flat_map(|(address, devices)| {
                devices.iter().map(|(device_id, entry)| Event::Claimed {
                    device: DeviceAddress {
                        address: address.clone(),
                        device_id: *device_id,
                    },
                    claim: entry.claim,
                })
            })
            .collect();
        self.announce(claims);
    }

    /// How many devices are connected to this node.
    pub fn connected_devices(&self) -> usize {
        self.lock().accounts.values().map(HashMap::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Devices> {
        // The map stays consistent even if a holder panicked (every update is one insert or
        // remove), so a poisoned lock is still usable.
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unregister(&self, device: &DeviceAddress, connection: u64) {
        self.lock().remove(device, connection);
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

    /// A registry whose announcements are collected, standing for one node of a cluster.
    fn node() -> (Arc<Registry>, Arc<Mutex<Vec<Event>>>) {
        let registry = Arc::new(Registry::default());
        let announced = Arc::new(Mutex::new(Vec::new()));
        let sink = announced.clone();
        assert!(registry.set_announcer(Box::new(move |events| {
            sink.lock().expect("lock").extend(events);
        })));
        (registry, announced)
    }

    fn take(announced: &Arc<Mutex<Vec<Event>>>) -> Vec<Event> {
        std::mem::take(&mut *announced.lock().expect("lock"))
    }

    /// Delivers what `from` announced to `to`, as the bus would.
    fn deliver(from: &Arc<Mutex<Vec<Event>>>, to: &Registry) {
        for event in take(from) {
            to.dispatch(&event);
        }
    }

    #[test]
    fn a_connection_on_another_node_displaces_the_older_one_here() {
        let alice = device("alice@example.org", 1);
        let (first, first_out) = node();
        let (second, second_out) = node();
        let old = first.register(&alice);
        deliver(&first_out, &second);
        let new = second.register(&alice);
        deliver(&second_out, &first);
        assert!(old.displaced.is_cancelled());
        assert!(!new.displaced.is_cancelled());
        // The displaced connection left the first node: its wake-ups go nowhere.
        assert_eq!(first.connected_devices(), 0);
        assert_eq!(second.connected_devices(), 1);
        // Nobody answered: the first node had nothing newer.
        assert!(take(&first_out).is_empty());
        // Dropping the displaced registration leaves the newer one alone.
        drop(old);
        assert_eq!(second.connected_devices(), 1);
        // A different device of the account is not concerned.
        let other = first.register(&device("alice@example.org", 2));
        deliver(&first_out, &second);
        assert!(!other.displaced.is_cancelled());
        assert!(!new.displaced.is_cancelled());
    }

    #[test]
    fn when_both_register_at_once_the_newer_claim_wins_in_either_delivery_order() {
        for second_hears_first in [true, false] {
            let alice = device("alice@example.org", 1);
            let (first, first_out) = node();
            let (second, second_out) = node();
            // Both register before either announcement arrives.
            let on_first = first.register(&alice);
            let on_second = second.register(&alice);
            let first_claim = take(&first_out);
            let second_claim = take(&second_out);
            let newer_is_second = match (&first_claim[..], &second_claim[..]) {
                ([Event::Claimed { claim: a, .. }], [Event::Claimed { claim: b, .. }]) => b > a,
                other => panic!("one claim each: {other:?}"),
            };
            let deliver_all = |events: &[Event], to: &Registry| {
                for event in events {
                    to.dispatch(event);
                }
            };
            if second_hears_first {
                deliver_all(&first_claim, &second);
                deliver_all(&second_claim, &first);
            } else {
                deliver_all(&second_claim, &first);
                deliver_all(&first_claim, &second);
            }
            // Answers (the newer side re-announcing) travel until nothing is left.
            for _ in 0..4 {
                deliver(&first_out, &second);
                deliver(&second_out, &first);
            }
            assert_eq!(on_first.displaced.is_cancelled(), newer_is_second);
            assert_eq!(on_second.displaced.is_cancelled(), !newer_is_second);
            assert_eq!(first.connected_devices() + second.connected_devices(), 1);
        }
    }

    #[test]
    fn an_older_claim_is_answered_with_the_newer_one() {
        let alice = device("alice@example.org", 1);
        let (first, first_out) = node();
        let here = first.register(&alice);
        let Some(Event::Claimed { claim: ours, .. }) = take(&first_out).pop() else {
            panic!("announced");
        };
        let stale = Claim {
            stamp: ours.stamp - 1,
            node: [0xff; NODE_ID_LEN],
        };
        first.dispatch(&Event::Claimed {
            device: alice.clone(),
            claim: stale,
        });
        assert!(!here.displaced.is_cancelled());
        assert_eq!(
            take(&first_out),
            vec![Event::Claimed {
                device: alice.clone(),
                claim: ours,
            }]
        );
        // After a gap in the link every claim is announced again.
        first.reannounce_claims();
        assert_eq!(
            take(&first_out),
            vec![Event::Claimed {
                device: alice,
                claim: ours,
            }]
        );
    }

    #[test]
    fn the_clock_moves_past_every_claim_heard_so_a_later_connection_is_newer() {
        // The other node's clock runs an hour ahead of ours.
        let ahead = Claim {
            stamp: u64::try_from(
                (SystemTime::now() + std::time::Duration::from_secs(3_600))
                    .duration_since(UNIX_EPOCH)
                    .expect("after 1970")
                    .as_micros(),
            )
            .expect("fits"),
            node: [0; NODE_ID_LEN],
        };
        let alice = device("alice@example.org", 1);
        let (first, first_out) = node();
        // We heard its claim (no connection of alice here yet), then alice connects here.
        first.dispatch(&Event::Claimed {
            device: alice.clone(),
            claim: ahead,
        });
        let _here = first.register(&alice);
        let Some(Event::Claimed { claim, .. }) = take(&first_out).pop() else {
            panic!("announced");
        };
        assert!(claim > ahead, "{claim:?} is not newer than {ahead:?}");
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
