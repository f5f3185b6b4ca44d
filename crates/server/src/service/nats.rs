//! The event bus of several nodes: every event is dispatched to this node's [`Registry`] at
//! once and published to NATS, where the other nodes of the organisation pick it up and
//! dispatch it to theirs. The registry's claims (which connection of a device is the newest,
//! see `events`) travel the same way, so a device connecting to one node displaces its older
//! connection on another.
//!
//! # Why losing a NATS message is safe
//!
//! Events are hints: a message is in the recipient's durable mailbox before any event about
//! it is published, and a connection looks at its mailbox when it starts. So while NATS is
//! down every message is still stored, and only the live push to a device connected to
//! another node is late. The client reconnects to NATS on its own; after each reconnection
//! (and after the NATS server reports that this node fell behind) the node wakes every
//! connection it holds so that each looks at its mailbox again, and nothing published during
//! the gap waits for the device's next reconnection; it also announces the claim of every
//! connection it holds again, so a device that connected to two nodes during the gap keeps
//! only the newer connection.
//!
//! # Wire format
//!
//! One NATS message on `confianza.<namespace>.events` carries a batch of events (version 1):
//!
//! ```text
//! message   = version:u8 (= 1) origin:[u8; 16] event*
//! event     = 0x01 address device_id             ; Event::Mailbox
//!           | 0x02 address notice                ; Event::Notice to every device of an account
//!           | 0x03 address device_id notice      ; Event::Notice to one device
//!           | 0x04 address device_id stamp node   ; Event::Claimed
//! address   = length:u8 UTF-8 bytes              ; at most MAX_ADDRESS_LEN
//! device_id = u32 big-endian
//! notice    = length:u16 big-endian, a ServerFrame::Notice in the client protocol's encoding
//! stamp     = u64 big-endian                     ; Claim::stamp
//! node      = [u8; 16]                           ; Claim::node
//! ```
//!
//! `origin` is the registry's random node id: a node ignores its own echoes (it has
//! dispatched those events already) even when two nodes share a configured name. Anything on
//! the subject that does not decode is dropped with a log line; it never reaches a connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confianza_api::limits::MAX_ADDRESS_LEN;
use confianza_api::{Notice, ServerFrame};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::events::{Claim, Event, EventBus, NODE_ID_LEN, NoticeTarget, Registry};
use crate::store::DeviceAddress;

/// Largest NATS message the bus publishes or accepts. A batch with more events is split. The
/// NATS default maximum payload is 1 MiB; 64 KiB keeps a message cheap for every node and
/// still carries over a thousand mailbox wake-ups.
pub const MAX_BUS_PAYLOAD: usize = 64 * 1024;

/// Encoded batches waiting for the NATS client. When NATS is slow or down the queue fills and
/// further batches are dropped (they are hints; see the module docs) rather than holding the
/// writer.
pub const OUTGOING_QUEUE_LEN: usize = 4_096;

/// Link events (reconnections, slow-consumer reports) waiting for the subscriber task.
const LINK_EVENT_QUEUE_LEN: usize = 64;

/// How long to wait before subscribing again after a refused subscription.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// How long the first connection attempt may take before the node starts anyway (the client
/// keeps retrying in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Version byte of the wire format.
const VERSION: u8 = 1;
/// Length of the random origin id (the registry's node id).
const ORIGIN_LEN: usize = NODE_ID_LEN;
const HEADER_LEN: usize = 1 + ORIGIN_LEN;
const TAG_MAILBOX: u8 = 1;
const TAG_NOTICE_ACCOUNT: u8 = 2;
const TAG_NOTICE_DEVICE: u8 = 3;
const TAG_CLAIMED: u8 = 4;

/// The NATS link could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The namespace is not one NATS subject token.
    #[error("NATS namespace {0:?} must be non-empty and contain only letters, digits, '-' and '_'")]
    Namespace(String),
    /// The URL or options were refused by the NATS client.
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
}

/// An event batch from NATS that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusDecodeError {
    #[error("payload of {0} bytes is larger than {MAX_BUS_PAYLOAD}")]
    TooLarge(usize),
    #[error("payload is truncated")]
    Truncated,
    #[error("unknown format version {0}")]
    Version(u8),
    #[error("unknown event tag {0}")]
    Tag(u8),
    #[error("address is not UTF-8 or longer than {MAX_ADDRESS_LEN} bytes")]
    Address,
    #[error("notice does not decode")]
    Notice,
}

/// Something the NATS client reported that the subscriber acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkEvent {
    /// (Re)connected: events published meanwhile may be lost, look at the mailboxes again.
    Connected,
    /// The server dropped messages for this subscriber: same remedy.
    SlowConsumer,
}

/// A connection to NATS for one organisation's event subject, made before the service starts;
/// [`NatsLink::bus_builder`] turns it into the service's bus.
pub struct NatsLink {
    client: async_nats::Client,
    subject: String,
    /// Subscribed before the service starts, so no event published after the start is missed.
    subscriber: Option<async_nats::Subscriber>,
    link_events: mpsc::Receiver<LinkEvent>,
}

impl std::fmt::Debug for NatsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLink")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The subject of a namespace's events.
pub fn subject(namespace: &str) -> Result<String, NatsError> {
    let valid = !namespace.is_empty()
        && namespace
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !valid {
        return Err(NatsError::Namespace(namespace.to_owned()));
    }
    Ok(format!("confianza.{namespace}.events"))
}

impl NatsLink {
    /// Connects to `url` for the events of `namespace` (one per organisation: every node of
    /// it must use the same). NATS being down is not an error: the client keeps trying in the
    /// background, and the node serves meanwhile with wake-ups for its own devices only.
    pub async fn connect(url: &str, namespace: &str, node_name: &str) -> Result<Self, NatsError> {
        let subject = subject(namespace)?;
        let (events, link_events) = mpsc::channel(LINK_EVENT_QUEUE_LEN);
        let client = async_nats::ConnectOptions::new()
            .name(format!("confianza-server {node_name}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(CONNECT_TIMEOUT)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let link_event = match &event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connected");
                            Some(LinkEvent::Connected)
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!("NATS dropped events for this node (slow consumer)");
                            Some(LinkEvent::SlowConsumer)
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(
                                "NATS disconnected: devices on other nodes are woken late \
                                 until it is back; messages are still stored"
                            );
                            None
                        }
                        other => {
                            tracing::info!(event = %other, "NATS");
                            None
                        }
                    };
                    if let Some(link_event) = link_event {
                        // A full queue already holds a wake-everyone request.
                        let _ = events.try_send(link_event);
                    }
                }
            })
            .connect(url)
            .await?;
        let subscriber = match client.subscribe(subject.clone()).await {
            Ok(subscriber) => Some(subscriber),
            Err(error) => {
                tracing::warn!(%error, "subscribing to NATS events failed; retrying in the background");
                None
            }
        };
        // Make sure the server has the subscription before the node serves anyone.
        match tokio::time::timeout(CONNECT_TIMEOUT, client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "NATS is not reachable yet"),
            Err(_) => tracing::warn!("NATS is not reachable yet; starting without it"),
        }
        Ok(Self {
            client,
            subject,
            subscriber,
            link_events,
        })
    }

    /// The bus of a service on this link, for [`super::ServiceOptions::bus`].
    pub fn bus_builder(self) -> Box<dyn FnOnce(Arc<Registry>) -> Arc<dyn EventBus> + Send> {
        Box::new(move |registry| Arc::new(NatsBus::start(self, registry)))
    }
}

/// An [`EventBus`] that dispatches locally and publishes to the other nodes through NATS.
/// Dropping it (when the service has stopped) flushes what is queued and stops its tasks.
pub struct NatsBus {
    registry: Arc<Registry>,
    origin: [u8; ORIGIN_LEN],
    outgoing: mpsc::Sender<Bytes>,
    _stop: DropGuard,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("origin", &hex::encode(self.origin))
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Starts the publisher and subscriber tasks of `link` feeding `registry`, and installs
    /// the announcer of `registry`'s claims.
    pub fn start(link: NatsLink, registry: Arc<Registry>) -> Self {
        let origin = registry.node_id();
        let (outgoing, queued) = mpsc::channel(OUTGOING_QUEUE_LEN);
        let announcements = outgoing.clone();
        let installed = registry.set_announcer(Box::new(move |events: Vec<Event>| {
            queue(&announcements, &origin, &events);
        }));
        if !installed {
            tracing::warn!("the registry already announces its claims elsewhere");
        }
        let stop = CancellationToken::new();
        tokio::spawn(forward(link.client.clone(), link.subject.clone(), queued));
        tokio::spawn(receive(
            link.client,
            link.subject,
            link.subscriber,
            origin,
            registry.clone(),
            link.link_events,
            stop.clone(),
        ));
        Self {
            registry,
            origin,
            outgoing,
            _stop: stop.drop_guard(),
        }
    }
}

impl EventBus for NatsBus {
    fn publish(&self, events: Vec<Event>) {
        for event in &events {
            self.registry.dispatch(event);
        }
        queue(&self.outgoing, &self.origin, &events);
    }
}

/// Encodes `events` and queues them for the publisher, dropping what does not fit the queue.
fn queue(outgoing: &mpsc::Sender<Bytes>, origin: &[u8; ORIGIN_LEN], events: &[Event]) {
    for payload in encode_batches(origin, events) {
        if outgoing.try_send(Bytes::from(payload)).is_err() {
            tracing::warn!("NATS publish queue full: events for other nodes were dropped");
        }
    }
}

/// Hands queued batches to the NATS client until the bus is dropped, then flushes.
async fn forward(client: async_nats::Client, subject: String, mut queued: mpsc::Receiver<Bytes>) {
    while let Some(payload) = queued.recv().await {
        if let Err(error) = client.publish(subject.clone(), payload).await {
            tracing::warn!(%error, "publishing events to NATS failed");
        }
    }
    if let Err(error) = client.flush().await {
        tracing::debug!(%error, "flushing NATS at shutdown failed");
    }
}

/// Dispatches other nodes' events to `registry` until `stop` is cancelled.
async fn receive(
    client: async_nats::Client,
    subject: String,
    mut subscribed: Option<async_nats::Subscriber>,
    origin: [u8; ORIGIN_LEN],
    registry: Arc<Registry>,
    mut link_events: mpsc::Receiver<LinkEvent>,
    stop: CancellationToken,
) {
    'subscribe: loop {
        let subscription = match subscribed.take() {
            Some(subscriber) => Ok(subscriber),
            None => client.subscribe(subject.clone()).await,
        };
        let mut subscriber = match subscription {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::warn!(%error, "subscribing to NATS events failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RESUBSCRIBE_DELAY) => continue 'subscribe,
                }
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    let _ = subscriber.unsubscribe().await;
                    return;
                }
                Some(event) = link_events.recv() => {
                    tracing::debug!(?event, "waking every local connection after a NATS gap");
                    registry.wake_all();
                    registry.reannounce_claims();
                }
                message = subscriber.next() => match message {
                    Some(message) => match decode(&message.payload) {
                        Ok((from, _)) if from == origin => {}
                        Ok((_, events)) => {
                            for event in &events {
                                registry.dispatch(event);
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, subject = %message.subject, "dropping an undecodable NATS event batch");
                        }
                    },
                    None => {
                        // The client closed the subscription (it is shutting down): subscribe
                        // again unless this node is stopping too.
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => continue 'subscribe,
                        }
                    }
                },
            }
        }
    }
}

/// Encodes `events` into batches of at most [`MAX_BUS_PAYLOAD`] bytes. An event that cannot
/// be encoded (an address longer than the protocol allows, a notice that does not encode) is
/// skipped with a log line: such an event cannot concern a real device.
pub fn encode_batches(origin: &[u8; ORIGIN_LEN], events: &[Event]) -> Vec<Vec<u8>> {
    let header = |batch: &mut Vec<u8>| {
        batch.push(VERSION);
        batch.extend_from_slice(origin);
    };
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    header(&mut batch);
    let mut item = Vec::new();
    for event in events {
        item.clear();
        if let Err(reason) = encode_event(event, &mut item) {
            tracing::warn!(reason, "an event was not published to other nodes");
            continue;
        }
        if batch.len() + item.len() > MAX_BUS_PAYLOAD {
            batches.push(std::mem::take(&mut batch));
            header(&mut batch);
        }
        batch.extend_from_slice(&item);
    }
    if batch.len() > HEADER_LEN {
        batches.push(batch);
    }
    batches
}

fn encode_event(event: &Event, out: &mut Vec<u8>) -> Result<(), &'static str> {
    match event {
        Event::Mailbox(device) => {
            out.push(TAG_MAILBOX);
            encode_device(device, out)
        }
        Event::Notice {
            to: NoticeTarget::Account(address),
            notice,
        } => {
            out.push(TAG_NOTICE_ACCOUNT);
            encode_address(address, out)?;
            encode_notice(notice, out)
        }
        Event::Notice {
            to: NoticeTarget::Device(device),
            notice,
        } => {
            out.push(TAG_NOTICE_DEVICE);
            encode_device(device, out)?;
            encode_notice(notice, out)
        }
        Event::Claimed { device, claim } => {
            out.push(TAG_CLAIMED);
            encode_device(device, out)?;
            out.extend_from_slice(&claim.stamp.to_be_bytes());
            out.extend_from_slice(&claim.node);
            Ok(())
        }
    }
}

fn encode_address(address: &str, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let len = u8::try_from(address.len())
        .ok()
        .filter(|&len| usize::from(len) <= MAX_ADDRESS_LEN)
        .ok_or("address too long")?;
    out.push(len);
    out.extend_from_slice(address.as_bytes());
    Ok(())
}

fn encode_device(device: &DeviceAddress, out: &mut Vec<u8>) -> Result<(), &'static str> {
    encode_address(&device.address, out)?;
    out.extend_from_slice(&device.device_id.to_be_bytes());
    Ok(())
}

fn encode_notice(notice: &Notice, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let bytes = ServerFrame::Notice(notice.clone())
        .encode()
        .map_err(|_| "notice does not encode")?;
    let len = u16::try_from(bytes.len()).map_err(|_| "notice too long")?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Decodes one NATS message: its origin and its events.
pub fn decode(payload: &[u8]) -> Result<([u8; ORIGIN_LEN], Vec<Event>), BusDecodeError> {
    if payload.len() > MAX_BUS_PAYLOAD {
        return Err(BusDecodeError::TooLarge(payload.len()));
    }
    let mut reader = Reader(payload);
    let version = reader.u8()?;
    if version != VERSION {
        return Err(BusDecodeError::Version(version));
    }
    let origin: [u8; ORIGIN_LEN] = reader
        .take(ORIGIN_LEN)?
        .try_into()
        .map_err(|_| BusDecodeError::Truncated)?;
    let mut events = Vec::new();
    while !reader.0.is_empty() {
        let event = match reader.u8()? {
            TAG_MAILBOX => Event::Mailbox(reader.device()?),
            TAG_NOTICE_ACCOUNT => Event::Notice {
                to: NoticeTarget::Account(reader.address()?),
                notice: reader.notice()?,
            },
            TAG_NOTICE_DEVICE => Event::Notice {
                to: NoticeTarget::Device(reader.device()?),
                notice: reader.notice()?,
            },
            TAG_CLAIMED => Event::Claimed {
                device: reader.device()?,
                claim: reader.claim()?,
            },
            tag => return Err(BusDecodeError::Tag(tag)),
        };
        events.push(event);
    }
    Ok((origin, events))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BusDecodeError> {
        if self.0.len() < len {
            return Err(BusDecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BusDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn address(&mut self) -> Result<String, BusDecodeError> {
        let len = usize::from(self.u8()?);
        if len > MAX_ADDRESS_LEN {
            return Err(BusDecodeError::Address);
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| BusDecodeError::Address)
    }

    fn device(&mut self) -> Result<DeviceAddress, BusDecodeError> {
        let address = self.address()?;
        let id = self.take(4)?;
        let device_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        Ok(DeviceAddress { address, device_id })
    }

    fn claim(&mut self) -> Result<Claim, BusDecodeError> {
        let stamp = self.take(8)?;
        let stamp = u64::from_be_bytes(stamp.try_into().map_err(|_| BusDecodeError::Truncated)?);
        let node = self
            .take(NODE_ID_LEN)?
            .try_into()
            .map_err(|_| BusDecodeError::Truncated)?;
        Ok(Claim { stamp, node })
    }

    fn notice(&mut self) -> Result<Notice, BusDecodeError> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        match ServerFrame::decode(self.take(len)?) {
            Ok(ServerFrame::Notice(notice)) => Ok(notice),
            _ => Err(BusDecodeError::Notice),
        }
    }
}

#[cfg(test)]
mod tests {
    use confianza_api::{GroupId, PreKeyCount};
    use rand::Rng;

    use super::*;

    fn device(address: &str, device_id: u32) -> DeviceAddress {
        DeviceAddress {
            address: address.to_owned(),
            device_id,
        }
    }

    fn sample_events() -> Vec<Event> {
        vec![
            Event::Mailbox(device("alice@example.org", 1)),
            Event::Notice {
                to: NoticeTarget::Account("bob@example.org".to_owned()),
                notice: Notice::MembershipChanged {
                    group_id: GroupId([7; 16]),
                    revision: 3,
                },
            },
            Event::Notice {
                to: NoticeTarget::Device(device("carol@example.org", 4)),
                notice: Notice::PreKeysLow(PreKeyCount {
                    one_time: 2,
                    kyber_one_time: 1,
                    kyber_last_resort_used: true,
                }),
            },
            Event::Claimed {
                device: device("dave@example.org", 2),
                claim: Claim {
                    stamp: 0x0102_0304_0506_0708,
                    node: [0xab; NODE_ID_LEN],
                },
            },
        ]
    }

    #[test]
    fn batches_round_trip_with_their_origin() {
        let origin = [9; ORIGIN_LEN];
        let events = sample_events();
        let batches = encode_batches(&origin, &events);
        assert_eq!(batches.len(), 1);
        assert_eq!(decode(&batches[0]), Ok((origin, events)));
    }

    #[test]
    fn nothing_is_published_for_no_events() {
        assert!(encode_batches(&[0; ORIGIN_LEN], &[]).is_empty());
    }

    #[test]
    fn large_batches_are_split_below_the_payload_limit_and_keep_every_event() {
        let address = "a".repeat(MAX_ADDRESS_LEN);
        let events: Vec<Event> = (0..2_000)
            .map(|id| Event::Mailbox(device(&address, id)))
            .collect();
        let batches = encode_batches(&[1; ORIGIN_LEN], &events);
        assert!(batches.len() > 1);
        let mut decoded = Vec::new();
        for batch in &batches {
            assert!(batch.len() <= MAX_BUS_PAYLOAD);
            decoded.extend(decode(batch).expect("decodes").1);
        }
        assert_eq!(decoded, events);
    }

    #[test]
    fn an_address_at_the_limit_passes_and_one_past_it_is_not_published() {
        let at_limit = device(&"a".repeat(MAX_ADDRESS_LEN), 1);
        let past_limit = device(&"a".repeat(MAX_ADDRESS_LEN + 1), 1);
        let batches = encode_batches(
            &[0; ORIGIN_LEN],
            &[Event::Mailbox(past_limit), Event::Mailbox(at_limit.clone())],
        );
        assert_eq!(
            decode(&batches[0]).expect("decodes").1,
            vec![Event::Mailbox(at_limit)]
        );

        // On the wire, a length byte above the limit is refused.
        let mut forged = vec![VERSION];
        forged.extend_from_slice(&[0; ORIGIN_LEN]);
        forged.push(TAG_MAILBOX);
        forged.push(u8::try_from(MAX_ADDRESS_LEN + 1).expect("fits"));
        forged.extend(std::iter::repeat_n(b'a', MAX_ADDRESS_LEN + 1));
        forged.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(decode(&forged), Err(BusDecodeError::Address));
    }

    #[test]
    fn payload_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let mut payload = vec![VERSION];
        payload.extend_from_slice(&[0; ORIGIN_LEN]);
        let event = {
            let mut item = Vec::new();
            encode_event(&Event::Mailbox(device("a", 1)), &mut item).expect("encodes");
            item
        };
        while payload.len() + event.len() <= MAX_BUS_PAYLOAD {
            payload.extend_from_slice(&event);
        }
        // Pad to exactly the limit with a truncated event: the size check passes first.
        payload.resize(MAX_BUS_PAYLOAD, TAG_MAILBOX);
        assert_eq!(decode(&payload), Err(BusDecodeError::Truncated));
        payload.push(0);
        assert_eq!(
            decode(&payload),
            Err(BusDecodeError::TooLarge(MAX_BUS_PAYLOAD + 1))
        );
    }

    #[test]
    fn malformed_batches_are_typed_errors() {
        let events = sample_events();
        let good = encode_batches(&[3; ORIGIN_LEN], &events).remove(0);
        // A batch cut between two events is a valid, shorter batch; cut anywhere else it is
        // refused.
        let mut boundaries = vec![HEADER_LEN];
        for event in &events {
            let mut item = Vec::new();
            encode_event(event, &mut item).expect("encodes");
            boundaries.push(boundaries[boundaries.len() - 1] + item.len());
        }
        for cut in 0..good.len() {
            match boundaries.iter().position(|&boundary| boundary == cut) {
                Some(whole) => assert_eq!(
                    decode(&good[..cut]).map(|(_, decoded)| decoded),
                    Ok(events[..whole].to_vec())
                ),
                None => assert!(decode(&good[..cut]).is_err(), "prefix of {cut} bytes"),
            }
        }
        let mut wrong_version = good.clone();
        wrong_version[0] = 2;
        assert_eq!(decode(&wrong_version), Err(BusDecodeError::Version(2)));
        let mut wrong_tag = good.clone();
        wrong_tag[HEADER_LEN] = 0x7f;
        assert_eq!(decode(&wrong_tag), Err(BusDecodeError::Tag(0x7f)));
        let mut not_utf8 = good;
        not_utf8[HEADER_LEN + 2] = 0xff;
        assert_eq!(decode(&not_utf8), Err(BusDecodeError::Address));
    }

    #[tokio::test]
    async fn a_registration_on_one_bus_displaces_the_older_one_on_the_other() {
        let Ok(url) = std::env::var("NATS_URL") else {
            eprintln!("NATS_URL is not set: skipping the NATS displacement test");
            return;
        };
        let mut namespace = [0u8; 8];
        rand::rng().fill_bytes(&mut namespace);
        let namespace = format!("test-{}", hex::encode(namespace));
        let first_registry = Arc::new(Registry::default());
        let second_registry = Arc::new(Registry::default());
        let _first = NatsBus::start(
            NatsLink::connect(&url, &namespace, "first")
                .await
                .expect("connects"),
            first_registry.clone(),
        );
        let _second = NatsBus::start(
            NatsLink::connect(&url, &namespace, "second")
                .await
                .expect("connects"),
            second_registry.clone(),
        );
        let alice = device("alice@example.org", 1);
        let old = first_registry.register(&alice);
        // The subscriptions are set up by background tasks: register again on the second
        // node until its announcement displaces the first node's connection.
        let displaced = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let new = second_registry.register(&alice);
                if tokio::time::timeout(Duration::from_millis(100), old.displaced.cancelled())
                    .await
                    .is_ok()
                {
                    return new;
                }
            }
        })
        .await;
        let new = displaced.expect("the first node's connection is displaced");
        assert_eq!(first_registry.connected_devices(), 0);
        // Nothing displaces the newer connection: the first node had nothing newer to answer.
        let answered =
            tokio::time::timeout(Duration::from_millis(300), new.displaced.cancelled()).await;
        assert!(answered.is_err(), "the newer connection stays");
        assert_eq!(second_registry.connected_devices(), 1);
    }

    #[test]
    fn namespaces_are_single_subject_tokens() {
        assert_eq!(
            subject("0a1b-org_2").expect("valid"),
            "confianza.0a1b-org_2.events"
        );
        for bad in ["", "a.b", "a b", "*", ">", "ä"] {
            assert!(subject(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn two_buses_wake_each_others_devices_and_ignore_their_own_echoes() {
        let Ok(url) = std::env::var("NATS_URL") else {
            eprintln!("NATS_URL is not set: skipping the NATS bus test");
            return;
        };
        let mut namespace = [0u8; 8];
        rand::rng().fill_bytes(&mut namespace);
        let namespace = format!("test-{}", hex::encode(namespace));
        let first_registry = Arc::new(Registry::default());
        let second_registry = Arc::new(Registry::default());
        let first = NatsBus::start(
            NatsLink::connect(&url, &namespace, "first")
                .await
                .expect("connects"),
            first_registry.clone(),
        );
        let second = NatsBus::start(
            NatsLink::connect(&url, &namespace, "second")
                .await
                .expect("connects"),
            second_registry.clone(),
        );
        let mut on_second = second_registry.register(&device("bob@example.org", 1));
        let on_first = first_registry.register(&device("alice@example.org", 1));
        // The subscriptions are set up by background tasks: publish until one arrives.
        let woken = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                first.publish(vec![Event::Mailbox(device("bob@example.org", 1))]);
                if tokio::time::timeout(Duration::from_millis(100), on_second.mailbox.notified())
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        })
        .await;
        assert!(woken.is_ok(), "bob on the second node is woken");

        second.publish(vec![Event::Notice {
            to: NoticeTarget::Account("alice@example.org".to_owned()),
            notice: Notice::MailboxDrained,
        }]);
        let mut on_first = on_first;
        let notice = tokio::time::timeout(Duration::from_secs(5), on_first.notices.recv())
            .await
            .expect("alice hears the notice");
        assert_eq!(notice, Some(Notice::MailboxDrained));

        // Second's own event was dispatched locally once; its echo from NATS is ignored.
        second.publish(vec![Event::Notice {
            to: NoticeTarget::Device(device("bob@example.org", 1)),
            notice: Notice::MailboxDrained,
        }]);
        assert_eq!(on_second.notices.recv().await, Some(Notice::MailboxDrained));
        let echo = tokio::time::timeout(Duration::from_millis(500), on_second.notices.recv()).await;
        assert!(echo.is_err(), "no echo: {echo:?}");
    }
}
