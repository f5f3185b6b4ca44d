//! One client connection's state and its request dispatcher: who the peer is (a registered
//! device or an enrolling one), its challenge, its rate limits and its deliveries in flight.
//! The handlers live in `handlers/`, one file per area.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use confianza_api::{
    ApiError, Challenge, ErrorCode, NoisePublicKey, Request, RequestBody, ResponseBody, ServerFrame,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::inbox::Inbox;
use super::limits::{BUNDLE_FETCH_BURST, BUNDLE_FETCHES_PER_SECOND, SEND_BURST, SENDS_PER_SECOND};
use super::live::Live;
use super::rate_limit::TokenBucket;
use super::state::Shared;
use super::writer::{Completion, WriteError};
use crate::store::{Device, DeviceAddress, EnqueueOutcome, MessageStore, NewReceipt};

/// The delivery ids of what is pushed from memory (delivery receipts, live messages) start
/// above this one: they never meet the mailbox's ids (a device's counter would need billions
/// of years to get there), and the mailbox cursor never moves for them.
pub const MEMORY_IDS: u64 = 1 << 63;

/// A delivery pushed from memory, held until the device acknowledges it.
#[derive(Debug)]
pub enum Held {
    /// A delivery receipt: stored if the connection goes first.
    Receipt(NewReceipt),
    /// A live message ([`super::live`]): handed back to the writer if the connection goes
    /// first.
    Message(Arc<Live>),
}

/// The deliveries of this connection: pushed and not yet acknowledged, and the highest id
/// pushed so far (the mailbox cursor); besides, what was pushed from memory and not yet
/// acknowledged.
#[derive(Debug)]
pub struct Window {
    pub unacknowledged: HashSet<u64>,
    pub highest_pushed: u64,
    pub memory: HashMap<u64, Held>,
    /// The id of the last delivery pushed from memory (above [`MEMORY_IDS`]).
    pub last_memory_id: u64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            unacknowledged: HashSet::new(),
            highest_pushed: 0,
            memory: HashMap::new(),
            last_memory_id: MEMORY_IDS,
        }
    }
}

impl Window {
    /// Deliveries pushed and not yet acknowledged, of both kinds.
    pub fn in_flight(&self) -> usize {
        self.unacknowledged.len() + self.memory.len()
    }

    /// Enters `held` with the next memory id, which it returns.
    pub fn hold(&mut self, held: Held) -> u64 {
        self.last_memory_id += 1;
        self.memory.insert(self.last_memory_id, held);
        self.last_memory_id
    }
}

/// The window, shared by the reader (acknowledgements) and the mailbox pump.
pub type InFlight = Arc<Mutex<Window>>;

/// Locks a window; a panicked holder leaves it consistent (each update is one insert or remove).
pub fn lock_window(in_flight: &InFlight) -> std::sync::MutexGuard<'_, Window> {
    in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the dispatcher does with a request's result.
pub enum Reply {
    /// Answer now.
    Now(Result<ResponseBody, Failure>),
    /// The writer answers once the send is committed (see [`Session::answer_on_commit`]).
    Deferred,
}

/// Once a device is known: its mailbox pump and the handles shared with it.
pub struct Delivering {
    pub in_flight: InFlight,
    /// Where the writer hands the device's new mail ([`super::inbox`]).
    pub inbox: Arc<Inbox>,
    /// Wakes the pump when an acknowledgement made room in a full window. New mail wakes it
    /// through its registration instead.
    pub room: Arc<Notify>,
    /// Cancelled when a newer connection of the same device took over.
    pub displaced: CancellationToken,
    /// Stops the pump.
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

/// A connection's state.
pub struct Session<S> {
    pub shared: Arc<Shared<S>>,
    /// The Noise static key the connection was authenticated with.
    pub noise_key: NoisePublicKey,
    /// The registered device, once known (at connection or after enrollment).
    pub device: Option<Device>,
    /// The enrollment challenge handed out on this connection, with its issue time.
    pub challenge: Option<(Challenge, Instant)>,
    /// Frames for the socket writer. The writer's completions hold clones until they have
    /// answered, so the socket stays open until every committed send is answered.
    pub outbound: mpsc::Sender<ServerFrame>,
    pub delivering: Option<Delivering>,
    pub bundle_fetches: TokenBucket,
    pub sends: TokenBucket,
}

impl<S> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field(
                "device",
                &self.device.as_ref().map(|device| &device.address),
            )
            .finish_non_exhaustive()
    }
}

impl<S: MessageStore + Clone> Session<S> {
    /// A session for a connection authenticated with `noise_key`.
    pub fn new(
        shared: Arc<Shared<S>>,
        noise_key: NoisePublicKey,
        device: Option<Device>,
        outbound: mpsc::Sender<ServerFrame>,
    ) -> Self {
        let now = Instant::now();
        Self {
            shared,
            noise_key,
            device,
            challenge: None,
            outbound,
            delivering: None,
            bundle_fetches: TokenBucket::new(BUNDLE_FETCH_BURST, BUNDLE_FETCHES_PER_SECOND, now),
            sends: TokenBucket::new(SEND_BURST, SENDS_PER_SECOND, now),
        }
    }

    /// The registered device, or `Unauthenticated` (which closes the connection).
    pub fn authenticated(&self) -> Result<&Device, Failure> {
        self.device.as_ref().ok_or_else(|| {
            Failure::close(
                ErrorCode::Unauthenticated,
                "this connection's key is not a registered device",
            )
        })
    }

    /// The registered device's address.
    pub fn me(&self) -> Result<DeviceAddress, Failure> {
        Ok(self.authenticated()?.address.clone())
    }

    /// Answers one request. `Err` carries the answer of a request that closes the connection.
    pub async fn dispatch(&mut self, request: Request) -> Result<(), ApiError> {
        let started = Instant::now();
        let id = request.id;
        let reply = match request.body {
            RequestBody::EnrollChallenge => Reply::Now(self.enroll_challenge()),
            RequestBody::Enroll(enroll) => {
                // The account's device list may change: sends re-read it.
                let address = enroll.address.clone();
                let answer = self.enroll(*enroll).await;
                self.shared.devices.forget(&address);
                Reply::Now(answer)
            }
            RequestBody::UploadPreKeys(upload) => Reply::Now(self.upload_pre_keys(upload).await),
            RequestBody::GetPreKeyCount => Reply::Now(self.pre_key_count().await),
            RequestBody::FetchBundle { address, device } => {
                Reply::Now(self.fetch_bundle(&address, device).await)
            }
            RequestBody::Send {
                recipient,
                envelopes,
            } => self.send(id, started, recipient, envelopes).await,
            RequestBody::SendGroup {
                group_id,
                revision,
                body,
                client_message_id,
            } => {
                self.send_group(id, started, group_id, revision, body, client_message_id)
                    .await
            }
            RequestBody::GroupCreate { name, members } => {
                Reply::Now(self.group_create(name, members).await)
            }
            RequestBody::GroupAddMembers { group_id, members } => {
                Reply::Now(self.group_add(group_id, members).await)
            }
            RequestBody::GroupRemoveMembers { group_id, members } => {
                Reply::Now(self.group_remove(group_id, members).await)
            }
            RequestBody::GroupLeave { group_id } => Reply::Now(self.group_leave(group_id).await),
            RequestBody::GroupList => Reply::Now(self.group_list().await),
            RequestBody::GroupGet { group_id } => Reply::Now(self.group_get(group_id).await),
            RequestBody::BlobCreate { size } => Reply::Now(self.blob_create(size).await),
            RequestBody::BlobUpload {
                blob_id,
                offset,
                chunk,
            } => Reply::Now(self.blob_upload(blob_id, offset, chunk).await),
            RequestBody::BlobStatus { blob_id } => Reply::Now(self.blob_status(blob_id).await),
            RequestBody::BlobDownload {
                blob_id,
                offset,
                length,
            } => Reply::Now(self.blob_download(blob_id, offset, length).await),
            RequestBody::RenewCertificate(renew) => Reply::Now(self.renew(*renew).await),
            RequestBody::RevokeCertificate { reason } => Reply::Now(self.revoke(reason).await),
            RequestBody::WhoAmI => Reply::Now(self.who_am_i()),
            RequestBody::ListDevices => Reply::Now(self.list_devices().await),
        };
        match reply {
            Reply::Deferred => Ok(()),
            Reply::Now(result) => {
                let shared = self.shared.clone();
                let closing = respond(&shared, &self.outbound, id, started, result).await;
                match closing {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
        }
    }

    /// A completion for the writer that answers request `id` on this connection with what
    /// `answer` makes of the send's outcomes. It runs on the writer's task and does not wait:
    /// the frame is queued at once, or, when the connection's queue is full (a client that
    /// does not read), by a task of its own.
    pub fn answer_on_commit(
        &self,
        id: u64,
        started: Instant,
        answer: impl FnOnce(Result<Vec<EnqueueOutcome>, WriteError>) -> Result<ResponseBody, Failure>
        + Send
        + 'static,
    ) -> Completion {
        let shared = self.shared.clone();
        let outbound = self.outbound.clone();
        Box::new(move |outcomes| {
            // A deferred answer never closes the connection (sends are refused, not fatal).
            let (frame, _) = answer_frame(&shared, id, started, answer(outcomes));
            match outbound.try_send(frame) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(frame)) => {
                    tokio::spawn(async move {
                        let _ = outbound.send(frame).await;
                    });
                }
            }
        })
    }

    /// The current wall-clock time.
    pub fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Sends the answer to request `id`; returns the error when it closes the connection.
async fn respond<S>(
    shared: &Shared<S>,
    outbound: &mpsc::Sender<ServerFrame>,
    id: u64,
    started: Instant,
    result: Result<ResponseBody, Failure>,
) -> Option<ApiError> {
    let (frame, closing) = answer_frame(shared, id, started, result);
    // The connection may be closing already; the answer is then lost with it.
    let _ = outbound.send(frame).await;
    closing
}

/// The frame answering request `id`, counted in the metrics, and the error when it closes the
/// connection.
fn answer_frame<S>(
    shared: &Shared<S>,
    id: u64,
    started: Instant,
    result: Result<ResponseBody, Failure>,
) -> (ServerFrame, Option<ApiError>) {
    shared.metrics.requests_total.inc();
    shared
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(body) => (ServerFrame::ok(id, body), None),
        Err(Failure::Refused(error)) => {
            shared.metrics.request_errors_total.inc();
            tracing::debug!(request = id, code = %error.code, message = %error.message, "request refused");
            (ServerFrame::error(id, error), None)
        }
        Err(Failure::Close(error)) => {
            shared.metrics.request_errors_total.inc();
            (ServerFrame::error(id, error.clone()), Some(error))
        }
    }
}
