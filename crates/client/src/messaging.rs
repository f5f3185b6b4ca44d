//! One-to-one messaging: sessions from certified bundles, sending to every device of a
//! recipient, receiving (decrypt, store, then acknowledge), contacts' identities and safety
//! numbers.

use std::collections::HashMap;
use std::time::SystemTime;

use confianza_api::{
    self as api, CiphertextType, Delivery, DeliveryItem, DeviceSelector, ErrorCode,
    OutgoingEnvelope, RequestBody, ResponseBody,
};
use confianza_protocol::fingerprint::{Fingerprint, Iterations, Party, ScannableVersion};
use confianza_protocol::keys::IdentityKey;
use confianza_protocol::message::{CiphertextMessage, PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::InMemoryPreKeys;
use confianza_protocol::sender_keys::{SenderKeyDistributionMessage, SenderKeyMessage};
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use prost::Message as _;

use crate::account::{Client, ClientError, now_ms};
use crate::call::CallInvitation;
use crate::connection::{Event, RequestError, task_rng};
use crate::content::{Body, Content, Receipt, ReceiptType, Text};
use crate::limits::MAX_TEXT_LEN;
use crate::store::{HeldEnvelope, NewMessage, StoredMessage};
use crate::trust::{CertifiedBundle, TrustError};

/// Attempts at a send when the server says the recipient's devices changed.
const MAX_SEND_ATTEMPTS: usize = 3;

/// What the client knew of a sender's identity key when a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The user compared safety numbers.
    Verified,
    /// Certified by the organisation's CA.
    Certified,
    /// Neither.
    Unverified,
}

impl Verification {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Certified => "certified",
            Self::Unverified => "unverified",
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Devices the message was encrypted for.
    pub devices: Vec<u32>,
    pub server_timestamp_ms: u64,
    /// Envelopes the server already had (a resend).
    pub duplicates: u32,
}

/// What `next_event` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A message was decrypted and stored.
    Message(StoredMessage),
    /// A message was received again and dropped (already stored).
    Duplicate,
    /// Messages the user sent (to `recipient`, or to a group `recipient` is in) were delivered
    /// to a device of `recipient`.
    Delivered { recipient: String, count: usize },
    /// A message could not be accepted; it was recorded in the history as refused.
    Refused { sender: String, reason: String },
    /// A contact's identity key changed; their messages are held until the user accepts it.
    IdentityChanged { address: String },
    /// A group message was stored undecrypted until group support processes it.
    Held { sender: String },
    /// The backlog queued when the connection opened has been delivered.
    Drained,
    /// The connection is gone: call `connect` again.
    Disconnected(String),
    /// A call offer arrived (and was stored in the history as `call-offer`): answer it with
    /// [`Client::send_call_answer`] and [`CallInvitation::answer`].
    CallOffer {
        sender: String,
        sender_device_id: u32,
        /// The sender's clock.
        sent_at_ms: u64,
        /// The server's clock when it accepted the offer (to tell a stale offer).
        server_at_ms: u64,
        invitation: CallInvitation,
    },
    /// The answerer of a call replied (accepted or declined).
    CallAnswered {
        sender: String,
        call_id: u64,
        /// Where the answerer says it receives media (informational).
        media_address: String,
        accepted: bool,
    },
    /// `reader` says it has seen `count` of the messages it received from this user.
    Read { reader: String, count: usize },
}

/// A delivery taken from the connection and not yet processed (see
/// [`Client::take_deliveries`]): nothing is stored or acknowledged until
/// [`Client::process_delivery`].
#[derive(Debug, Clone)]
pub struct PendingDelivery(Delivery);

impl PendingDelivery {
    /// The sender of an envelope (`None` for a delivery receipt).
    pub fn sender(&self) -> Option<&str> {
        match &self.0.item {
            DeliveryItem::Envelope(envelope) => Some(&envelope.sender),
            DeliveryItem::Receipt(_) => None,
        }
    }

    /// The size of the ciphertext, in bytes (0 for a delivery receipt).
    pub fn ciphertext_len(&self) -> usize {
        match &self.0.item {
            DeliveryItem::Envelope(envelope) => envelope.body.len(),
            DeliveryItem::Receipt(_) => 0,
        }
    }
}

/// What [`Client::mark_seen`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenReport {
    /// History rows newly marked seen.
    pub marked: usize,
    /// Contacts a read receipt was sent to.
    pub receipts_sent_to: Vec<String>,
    /// Contacts a receipt could not be sent to, with why; their messages stay unseen, so the
    /// next call tries again.
    pub failed: Vec<(String, String)>,
}

/// History kinds that are control messages, kept for deduplication but not shown.
pub const CONTROL_KINDS: [&str; 3] = ["sender-key", "receipt", "call-answer"];

/// Incoming kinds a read receipt is sent for.
const RECEIPT_KINDS: [&str; 3] = ["text", "attachment", "call-offer"];

/// Message ids in one read receipt (16 bytes each: a receipt stays far below the envelope
/// limit).
pub const MAX_RECEIPT_IDS: usize = 1000;

fn ciphertext_type(message: &CiphertextMessage) -> CiphertextType {
    match message {
        CiphertextMessage::PreKey(_) => CiphertextType::PreKey,
        _ => CiphertextType::Whisper,
    }
}

fn random_message_id() -> api::ClientMessageId {
    let mut id = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
    id
}

impl Client {
    /// The verification state of `address`'s identity key as stored.
    pub async fn verification_of(&self, address: &str) -> Result<Verification, ClientError> {
        Ok(match self.store.contact(address).await? {
            Some(contact) if contact.verified => Verification::Verified,
            Some(contact) if contact.certified => Verification::Certified,
            _ => Verification::Unverified,
        })
    }

    /// Checks a fetched bundle for `address` ([`crate::trust::PinnedCa::verify_bundle`]) and
    /// compares its identity key with the one known: a changed key is recorded as pending and
    /// refused with [`TrustError::IdentityChanged`] until [`Client::accept_identity`].
    pub async fn trust_bundle(
        &self,
        address: &str,
        bundle: &api::PreKeyBundle,
    ) -> Result<CertifiedBundle, ClientError> {
        let certified =
            self.ca
                .verify_bundle(address, bundle, &self.revocation, SystemTime::now())?;
        let key = certified.identity_key().serialize();
        match self.store.contact(address).await? {
            Some(contact) if contact.identity_key != key => {
                self.store
                    .set_pending_identity(address, &key, now_ms())
                    .await?;
                Err(TrustError::IdentityChanged(address.to_owned()).into())
            }
            _ => {
                self.store
                    .save_certified_contact(address, &key, certified.certificate(), now_ms())
                    .await?;
                Ok(certified)
            }
        }
    }

    /// Starts sessions with the devices of `address` (all, or the ones listed).
    async fn start_sessions(
        &self,
        address: &str,
        devices: Option<&[u32]>,
    ) -> Result<(), ClientError> {
        let bundles = match devices {
            None => self.fetch_bundles(address, DeviceSelector::All).await?,
            Some(list) => {
                let mut all = Vec::new();
                for device in list {
                    all.extend(
                        self.fetch_bundles(address, DeviceSelector::One(*device))
                            .await?,
                    );
                }
                all
            }
        };
        if bundles.is_empty() {
            return Err(ClientError::Protocol(format!("no devices for {address}")));
        }
        let mut rng = task_rng();
        for bundle in &bundles {
            let certified = self.trust_bundle(address, bundle).await?;
            let mut record = SessionRecord::new();
            session::process_bundle(
                &mut record,
                &self.identity,
                self.account.registration_id,
                certified.verified(),
                now_ms() / 1000,
                &mut rng,
            )
            .map_err(|e| {
                TrustError::Forged(match e {
                    session::SetupError::Agreement(_) => "a bundle key is degenerate",
                    _ => "session setup failed",
                })
            })?;
            self.store
                .save_session(address, bundle.device_id, &record)
                .await?;
        }
        Ok(())
    }

    /// Sends a text to every device of `address`, starting sessions from certified bundles
    /// where needed. The message is in the history once this returns.
    pub async fn send_text(&self, address: &str, text: &str) -> Result<SendReport, ClientError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ClientError::Invalid(format!(
                "a message is at most {MAX_TEXT_LEN} bytes; this one is {}",
                text.len()
            )));
        }
        let body = Body::Text(Text {
            body: text.to_owned(),
            group_id: Vec::new(),
        });
        self.send_body(address, body, Some(("text", text))).await
    }

    /// Encrypts `body` for every device of `address` and sends it; `history` (kind, text) is
    /// what the conversation shows, `None` for control messages.
    pub(crate) async fn send_body(
        &self,
        address: &str,
        body: Body,
        history: Option<(&str, &str)>,
    ) -> Result<SendReport, ClientError> {
        if address == self.account.address {
            return Err(ClientError::Invalid(
                "sending to yourself is not supported".into(),
            ));
        }
        let sent_at_ms = now_ms();
        let content = Content {
            sent_at_ms,
            sender_certificate: self.account.certificate.clone(),
            body: Some(body),
        };
        let plaintext = content.encode_to_vec();
        let client_message_id = random_message_id();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.store.session_devices(address).await?.is_empty() {
                self.start_sessions(address, None).await?;
            }
            let devices = self.store.session_devices(address).await?;
            let mut envelopes = Vec::with_capacity(devices.len());
            for device in &devices {
                let Some(mut record) = self.store.session(address, *device).await? else {
                    continue;
                };
                let registration_id = record
                    .current()
                    .map(|state| state.remote_registration_id())
                    .unwrap_or_default();
                let message = match session::encrypt(
                    &mut record,
                    &plaintext,
                    EncryptOptions::default(),
                    now_ms() / 1000,
                ) {
                    Ok(message) => message,
                    // An expired or broken session: start over with this device.
                    Err(_) => {
                        self.store.delete_session(address, *device).await?;
                        self.start_sessions(address, Some(&[*device])).await?;
                        let mut fresh = self
                            .store
                            .session(address, *device)
                            .await?
                            .ok_or(ClientError::NotConnected)?;
                        let message = session::encrypt(
                            &mut fresh,
                            &plaintext,
                            EncryptOptions::default(),
                            now_ms() / 1000,
                        )
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        record = fresh;
                        message
                    }
                };
                // Saved before sending: a message key is never used twice, even if the send
                // fails and is retried.
                self.store.save_session(address, *device, &record).await?;
                envelopes.push(OutgoingEnvelope {
                    device_id: *device,
                    registration_id,
                    ciphertext_type: ciphertext_type(&message),
                    body: message.serialized().to_vec(),
                    client_message_id,
                });
            }
            let result = self
                .request(RequestBody::Send {
                    recipient: address.to_owned(),
                    envelopes,
                })
                .await;
            match result {
                Ok(ResponseBody::Sent {
                    server_timestamp_ms,
                    duplicates,
                    ..
                }) => {
                    if let Some((kind, text)) = history {
                        self.store
                            .insert_outgoing(&NewMessage {
                                conversation: address,
                                outgoing: true,
                                peer: address,
                                peer_device_id: 0,
                                client_message_id: &client_message_id,
                                kind,
                                body: text,
                                sent_at_ms,
                                server_at_ms: Some(server_timestamp_ms),
                                stored_at_ms: now_ms(),
                                verification: self.verification_of(address).await?.as_str(),
                            })
                            .await?;
                    }
                    return Ok(SendReport {
                        devices,
                        server_timestamp_ms,
                        duplicates,
                    });
                }
                Ok(_) => return Err(RequestError::UnexpectedResponse.into()),
                Err(ClientError::Request(RequestError::Refused(error)))
                    if error.code == ErrorCode::MismatchedDevices
                        && attempt < MAX_SEND_ATTEMPTS =>
                {
                    let detail = error.mismatched_devices.unwrap_or_default();
                    for device in detail.extra.iter().chain(&detail.stale) {
                        self.store.delete_session(address, *device).await?;
                    }
                    let fetch: Vec<u32> = detail
                        .missing
                        .iter()
                        .chain(&detail.stale)
                        .copied()
                        .collect();
                    if !fetch.is_empty() {
                        self.start_sessions(address, Some(&fetch)).await?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Waits for the next delivery or notice and handles it: a message is decrypted and
    /// stored, and only then acknowledged.
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        loop {
            let event = self.connection()?.next_event().await;
            match event {
                Event::Closed(reason) => {
                    self.disconnect();
                    return Ok(ClientEvent::Disconnected(reason));
                }
                Event::Notice(notice) => {
                    if self.handle_notice(&notice).await? {
                        return Ok(ClientEvent::Drained);
                    }
                }
                Event::Delivery(delivery) => return self.process(delivery).await,
            }
        }
    }

    /// Takes up to `count` deliveries from the connection without processing them, stopping
    /// early when the backlog queued at connection is drained or the connection closes. Each
    /// must then go through [`Client::process_delivery`], in any order: the Double Ratchet
    /// reads messages out of order (skipped message keys), and nothing is acknowledged before
    /// it is processed, so a delivery dropped here comes again on the next connection.
    pub async fn take_deliveries(
        &mut self,
        count: usize,
    ) -> Result<Vec<PendingDelivery>, ClientError> {
        let mut taken = Vec::with_capacity(count);
        while taken.len() < count {
            match self.connection()?.next_event().await {
                Event::Closed(reason) => {
                    self.disconnect();
                    if taken.is_empty() {
                        return Err(ClientError::Protocol(format!(
                            "the connection closed: {reason}"
                        )));
                    }
                    break;
                }
                Event::Notice(notice) => {
                    if self.handle_notice(&notice).await? && !taken.is_empty() {
                        break;
                    }
                }
                Event::Delivery(delivery) => taken.push(PendingDelivery(delivery)),
            }
        }
        Ok(taken)
    }

    /// Processes a delivery taken by [`Client::take_deliveries`] exactly as
    /// [`Client::next_event`] would: decrypted and stored, then acknowledged. Processing the
    /// same delivery twice stores it once (the second is [`ClientEvent::Duplicate`]).
    pub async fn process_delivery(
        &mut self,
        delivery: PendingDelivery,
    ) -> Result<ClientEvent, ClientError> {
        self.process(delivery.0).await
    }

    async fn process(&mut self, delivery: Delivery) -> Result<ClientEvent, ClientError> {
        let outcome = match delivery.item {
            DeliveryItem::Receipt(receipt) => {
                let ids: Vec<Vec<u8>> = receipt
                    .client_message_ids
                    .iter()
                    .map(|id| id.to_vec())
                    .collect();
                self.store
                    .mark_delivered(&receipt.recipient, &ids, now_ms())
                    .await?;
                ClientEvent::Delivered {
                    recipient: receipt.recipient,
                    count: ids.len(),
                }
            }
            DeliveryItem::Envelope(envelope) => {
                self.handle_envelope(HeldEnvelope {
                    id: 0,
                    sender: envelope.sender,
                    sender_device_id: envelope.sender_device_id,
                    ciphertext_type: envelope.ciphertext_type.to_wire(),
                    body: envelope.body,
                    client_message_id: envelope.client_message_id.to_vec(),
                    server_at_ms: envelope.server_timestamp_ms,
                })
                .await?
            }
        };
        // Everything above is committed: now the server may delete it.
        self.connection()?.ack(&[delivery.id]).await?;
        Ok(outcome)
    }

    /// Receives until the backlog is drained; returns what arrived.
    pub async fn receive_pending(&mut self) -> Result<Vec<ClientEvent>, ClientError> {
        let mut events = Vec::new();
        loop {
            match self.next_event().await? {
                ClientEvent::Drained => return Ok(events),
                ClientEvent::Disconnected(reason) => {
                    events.push(ClientEvent::Disconnected(reason));
                    return Ok(events);
                }
                event => events.push(event),
            }
        }
    }

    async fn record_refusal(
        &self,
        envelope: &HeldEnvelope,
        reason: &str,
    ) -> Result<ClientEvent, ClientError> {
        let stored = self
            .store
            .commit_refused(&NewMessage {
                conversation: &envelope.sender,
                outgoing: false,
                peer: &envelope.sender,
                peer_device_id: envelope.sender_device_id,
                client_message_id: &envelope.client_message_id,
                kind: "refused",
                body: reason,
                sent_at_ms: envelope.server_at_ms,
                server_at_ms: Some(envelope.server_at_ms),
                stored_at_ms: now_ms(),
                verification: Verification::Unverified.as_str(),
            })
            .await?;
        if !stored {
            return Ok(ClientEvent::Duplicate);
        }
        Ok(ClientEvent::Refused {
            sender: envelope.sender.clone(),
            reason: reason.to_owned(),
        })
    }

    /// Decrypts and stores one envelope (from the server, or held earlier).
    async fn handle_envelope(&self, envelope: HeldEnvelope) -> Result<ClientEvent, ClientError> {
        if self
            .store
            .has_incoming(&envelope.sender, &envelope.client_message_id)
            .await?
        {
            return Ok(ClientEvent::Duplicate);
        }
        let mut rng = task_rng();
        let sender = envelope.sender.as_str();
        let device = envelope.sender_device_id;
        let mut record = self
            .store
            .session(sender, device)
            .await?
            .unwrap_or_default();
        let (plaintext, consumed, kyber_used, sender_key) =
            match CiphertextType::from_wire(envelope.ciphertext_type) {
                Some(CiphertextType::Whisper) => {
                    let Ok(message) = SignalMessage::deserialize(&envelope.body) else {
                        return self.record_refusal(&envelope, "malformed message").await;
                    };
                    match session::decrypt(&mut record, &message, None, &mut rng) {
                        Ok(plaintext) => (plaintext, None, None, None),
                        Err(error) => {
                            return self
                                .record_refusal(&envelope, &format!("cannot decrypt: {error}"))
                                .await;
                        }
                    }
                }
                Some(CiphertextType::PreKey) => {
                    let Ok(message) = PreKeySignalMessage::deserialize(&envelope.body) else {
                        return self.record_refusal(&envelope, "malformed message").await;
                    };
                    let key = message.identity_key().serialize();
                    if let Some(contact) = self.store.contact(sender).await?
                        && contact.identity_key != key
                    {
                        self.store
                            .set_pending_identity(sender, &key, now_ms())
                            .await?;
                        self.store.hold_envelope(&envelope).await?;
                        return Ok(ClientEvent::IdentityChanged {
                            address: sender.to_owned(),
                        });
                    }
                    let keys = self.load_pre_keys(&message).await?;
                    match session::decrypt_pre_key(
                        &mut record,
                        &self.identity,
                        self.account.registration_id,
                        &keys,
                        &message,
                        None,
                        &mut rng,
                    ) {
                        Ok(outcome) => (
                            outcome.plaintext,
                            outcome.consumed_pre_key,
                            outcome.used_kyber_pre_key,
                            Some(*message.identity_key()),
                        ),
                        Err(error) => {
                            return self
                                .record_refusal(&envelope, &format!("cannot decrypt: {error}"))
                                .await;
                        }
                    }
                }
                Some(CiphertextType::SenderKey) => {
                    return self.handle_group_envelope(envelope).await;
                }
                None => {
                    return self
                        .record_refusal(&envelope, "unknown ciphertext type")
                        .await;
                }
            };
        let Ok(content) = Content::decode(plaintext.as_slice()) else {
            return self.record_refusal(&envelope, "undecodable content").await;
        };
        let verification = match sender_key {
            Some(identity) => match self.check_sender(sender, &identity, &content).await {
                Ok(verification) => verification,
                Err(reason) => return self.record_refusal(&envelope, &reason).await,
            },
            None => self.verification_of(sender).await?,
        };
        let mut invitation = None;
        let (kind, body) = match &content.body {
            Some(Body::Text(text)) => ("text", text.body.clone()),
            Some(Body::CallOffer(offer)) => match CallInvitation::from_content(offer) {
                Ok(parsed) => {
                    let body = format!("call {:016x}", parsed.call_id());
                    invitation = Some(parsed);
                    ("call-offer", body)
                }
                Err(error) => {
                    return self
                        .record_refusal(&envelope, &format!("invalid call offer: {error}"))
                        .await;
                }
            },
            Some(Body::CallAnswer(answer)) => (
                "call-answer",
                format!(
                    "call {:016x} {}",
                    answer.call_id,
                    if answer.accepted {
                        "accepted"
                    } else {
                        "declined"
                    }
                ),
            ),
            Some(Body::Receipt(receipt)) => {
                if receipt.message_ids.len() > MAX_RECEIPT_IDS
                    || receipt
                        .message_ids
                        .iter()
                        .any(|id| id.len() != std::mem::size_of::<api::ClientMessageId>())
                {
                    return self.record_refusal(&envelope, "malformed receipt").await;
                }
                ("receipt", String::new())
            }
            Some(Body::Attachment(pointer)) => ("attachment", pointer.file_name.clone()),
            Some(Body::SenderKeyDistribution(_)) => ("sender-key", String::new()),
            Some(Body::GroupChange(change)) => ("group-change", change.name.clone()),
            None => ("empty", String::new()),
        };
        if let Some(Body::SenderKeyDistribution(distribution)) = &content.body {
            let Ok(group_id) = <[u8; 16]>::try_from(distribution.group_id.as_slice()) else {
                return self.record_refusal(&envelope, "malformed group id").await;
            };
            let Ok(parsed) = SenderKeyDistributionMessage::deserialize(&distribution.message)
            else {
                return self
                    .record_refusal(&envelope, "malformed sender key distribution")
                    .await;
            };
            if parsed.distribution_id().as_bytes() != &group_id {
                return self
                    .record_refusal(&envelope, "sender key for another group")
                    .await;
            }
            let mut record = self
                .store
                .sender_key(sender, device, &group_id)
                .await?
                .unwrap_or_default();
            record.process_distribution(&parsed);
            self.store
                .save_sender_key(sender, device, &group_id, &record)
                .await?;
        }
        let message = NewMessage {
            conversation: sender,
            outgoing: false,
            peer: sender,
            peer_device_id: device,
            client_message_id: &envelope.client_message_id,
            kind,
            body: &body,
            sent_at_ms: content.sent_at_ms,
            server_at_ms: Some(envelope.server_at_ms),
            stored_at_ms: now_ms(),
            verification: verification.as_str(),
        };
        let stored = match &content.body {
            // The pointer, keys included, is sealed with the history row: `save_attachment`
            // downloads it later.
            Some(Body::Attachment(pointer)) => {
                self.store
                    .commit_incoming_attachment(
                        (sender, device, &record),
                        &message,
                        consumed,
                        kyber_used,
                        &pointer.encode_to_vec(),
                    )
                    .await?
            }
            _ => {
                self.store
                    .commit_incoming((sender, device, &record), &message, consumed, kyber_used)
                    .await?
            }
        };
        if !stored {
            return Ok(ClientEvent::Duplicate);
        }
        match (&content.body, invitation) {
            (Some(Body::CallOffer(_)), Some(invitation)) => {
                return Ok(ClientEvent::CallOffer {
                    sender: sender.to_owned(),
                    sender_device_id: device,
                    sent_at_ms: content.sent_at_ms,
                    server_at_ms: envelope.server_at_ms,
                    invitation,
                });
            }
            (Some(Body::CallAnswer(answer)), _) => {
                return Ok(ClientEvent::CallAnswered {
                    sender: sender.to_owned(),
                    call_id: answer.call_id,
                    media_address: answer.media_address.clone(),
                    accepted: answer.accepted,
                });
            }
            (Some(Body::Receipt(receipt)), _) => {
                // Unknown receipt types are stored (deduplicated) and otherwise ignored.
                let count = if receipt.r#type == ReceiptType::Read as i32 {
                    self.store
                        .mark_read(sender, &receipt.message_ids, now_ms())
                        .await?
                } else {
                    0
                };
                return Ok(ClientEvent::Read {
                    reader: sender.to_owned(),
                    count: usize::try_from(count).unwrap_or(usize::MAX),
                });
            }
            _ => {}
        }
        if matches!(content.body, Some(Body::SenderKeyDistribution(_))) {
            // Group messages that arrived before this key can be read now.
            let held = self
                .store
                .held_envelopes_of_type(sender, CiphertextType::SenderKey.to_wire())
                .await?;
            for envelope in held {
                let id = envelope.id;
                self.store.release_envelope(id).await?;
                Box::pin(self.handle_group_envelope(envelope)).await?;
            }
            return Ok(ClientEvent::Duplicate);
        }
        let history = self.store.history(sender, 1).await?;
        Ok(history
            .into_iter()
            .next()
            .map(ClientEvent::Message)
            .unwrap_or(ClientEvent::Duplicate))
    }

    /// Decrypts and stores a group message (sender-key ciphertext). One that arrives before
    /// its sender's key is held and read when the key comes.
    async fn handle_group_envelope(
        &self,
        envelope: HeldEnvelope,
    ) -> Result<ClientEvent, ClientError> {
        let sender = envelope.sender.as_str();
        let device = envelope.sender_device_id;
        let Ok(message) = SenderKeyMessage::deserialize(&envelope.body) else {
            return self
                .record_refusal(&envelope, "malformed group message")
                .await;
        };
        let group_id = *message.distribution_id().as_bytes();
        let Some(mut record) = self.store.sender_key(sender, device, &group_id).await? else {
            self.store.hold_envelope(&envelope).await?;
            return Ok(ClientEvent::Held {
                sender: sender.to_owned(),
            });
        };
        let plaintext = match record.decrypt(&message) {
            Ok(plaintext) => plaintext,
            Err(error) => {
                return self
                    .record_refusal(&envelope, &format!("cannot decrypt group message: {error}"))
                    .await;
            }
        };
        let Ok(content) = Content::decode(plaintext.as_slice()) else {
            return self.record_refusal(&envelope, "undecodable content").await;
        };
        let (kind, text) = match &content.body {
            Some(Body::Text(text)) if text.group_id.as_slice() == group_id.as_slice() => {
                ("text", text.body.clone())
            }
            Some(Body::Attachment(pointer))
                if pointer.group_id.as_slice() == group_id.as_slice() =>
            {
                ("attachment", pointer.file_name.clone())
            }
            Some(Body::Text(_) | Body::Attachment(_)) => {
                return self
                    .record_refusal(&envelope, "group message naming another group")
                    .await;
            }
            _ => {
                return self
                    .record_refusal(&envelope, "unexpected content in a group message")
                    .await;
            }
        };
        let conversation = crate::groups::group_conversation(&api::GroupId(group_id));
        let verification = self.verification_of(sender).await?;
        let message = NewMessage {
            conversation: &conversation,
            outgoing: false,
            peer: sender,
            peer_device_id: device,
            client_message_id: &envelope.client_message_id,
            kind,
            body: &text,
            sent_at_ms: content.sent_at_ms,
            server_at_ms: Some(envelope.server_at_ms),
            stored_at_ms: now_ms(),
            verification: verification.as_str(),
        };
        let sender_key = (sender, device, group_id.as_slice(), &record);
        let stored = match &content.body {
            // Sealed with the history row, as for a one-to-one attachment.
            Some(Body::Attachment(pointer)) => {
                self.store
                    .commit_group_incoming_attachment(
                        sender_key,
                        &message,
                        &pointer.encode_to_vec(),
                    )
                    .await?
            }
            _ => {
                self.store
                    .commit_group_incoming(sender_key, &message)
                    .await?
            }
        };
        if !stored {
            return Ok(ClientEvent::Duplicate);
        }
        let history = self.store.history(&conversation, 1).await?;
        Ok(history
            .into_iter()
            .next()
            .map(ClientEvent::Message)
            .unwrap_or(ClientEvent::Duplicate))
    }

    /// A new session's sender: its certificate (carried in the content) must be valid to the
    /// pinned root for the sender's address and certify the key the session was made with.
    /// A sender without one is accepted as unverified (trust on first use), as Signal does.
    async fn check_sender(
        &self,
        sender: &str,
        identity: &IdentityKey,
        content: &Content,
    ) -> Result<Verification, String> {
        let key = identity.serialize();
        let certified = if content.sender_certificate.is_empty() {
            false
        } else {
            let (certified, _) = self
                .ca
                .verify_identity_certificate(
                    &content.sender_certificate,
                    sender,
                    None,
                    &self.revocation,
                    SystemTime::now(),
                )
                .map_err(|error| error.to_string())?;
            if &certified != identity.public_key().u() {
                return Err(TrustError::Forged(
                    "the sender's certificate is for another identity key",
                )
                .to_string());
            }
            true
        };
        let saved = if certified {
            let certificate = &content.sender_certificate;
            self.store
                .save_certified_contact(sender, &key, certificate, now_ms())
                .await
        } else {
            self.store.save_contact(sender, &key, false, now_ms()).await
        };
        saved.map_err(|error| error.to_string())?;
        self.verification_of(sender)
            .await
            .map_err(|error| error.to_string())
    }

    /// The private prekeys a PreKey message names, read from the store.
    async fn load_pre_keys(
        &self,
        message: &PreKeySignalMessage,
    ) -> Result<InMemoryPreKeys, ClientError> {
        let mut keys = InMemoryPreKeys {
            signed: HashMap::new(),
            one_time: HashMap::new(),
            kyber: HashMap::new(),
        };
        if let Some(record) = self
            .store
            .signed_pre_key(message.signed_pre_key_id())
            .await?
        {
            keys.signed.insert(record.id, record);
        }
        if let Some(id) = message.pre_key_id()
            && let Some(record) = self.store.one_time_pre_key(id).await?
        {
            keys.one_time.insert(id, record);
        }
        if let Some((id, _)) = message.kyber()
            && let Some((record, _)) = self.store.kyber_pre_key(id).await?
        {
            keys.kyber.insert(id, record);
        }
        Ok(keys)
    }

    /// Accepts the new identity key of `address` (after the user compared safety numbers, or
    /// chose to trust it): old sessions are dropped and held messages are processed.
    pub async fn accept_identity(&self, address: &str) -> Result<Vec<ClientEvent>, ClientError> {
        let contact = self
            .store
            .contact(address)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("{address} is not a known contact")))?;
        let Some(pending) = contact.pending_identity_key else {
            return Ok(Vec::new());
        };
        for device in self.store.session_devices(address).await? {
            self.store.delete_session(address, device).await?;
        }
        self.store
            .save_contact(address, &pending, false, now_ms())
            .await?;
        let mut events = Vec::new();
        for held in self.store.held_envelopes(address).await? {
            if CiphertextType::from_wire(held.ciphertext_type) == Some(CiphertextType::SenderKey) {
                continue;
            }
            let id = held.id;
            self.store.release_envelope(id).await?;
            events.push(self.handle_envelope(held).await?);
        }
        Ok(events)
    }

    /// The safety number with `address` (60 digits and the scannable form).
    pub async fn safety_number(&self, address: &str) -> Result<Fingerprint, ClientError> {
        let contact = self
            .store
            .contact(address)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("{address} is not a known contact")))?;
        let remote: [u8; 33] = contact
            .identity_key
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Invalid("stored identity key is malformed".into()))?;
        let local = self.identity.identity_key().serialize();
        Ok(Fingerprint::new(
            ScannableVersion::V2,
            Iterations::default(),
            Party {
                stable_id: self.account.address.as_bytes(),
                identity_key: &local,
            },
            Party {
                stable_id: address.as_bytes(),
                identity_key: &remote,
            },
        ))
    }

    /// Marks `address` verified (or not).
    pub async fn set_verified(&self, address: &str, verified: bool) -> Result<(), ClientError> {
        if self.store.set_verified(address, verified).await? {
            Ok(())
        } else {
            Err(ClientError::Invalid(format!(
                "{address} is not a known contact"
            )))
        }
    }

    /// The last `limit` messages of the conversation with `address` (or a group's
    /// `group:HEX`), oldest first, without control messages ([`CONTROL_KINDS`]).
    pub async fn history(
        &self,
        address: &str,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        Ok(self
            .store
            .visible_history(address, limit, &CONTROL_KINDS)
            .await?)
    }

    /// Records that the user has seen `messages` (as shown by `receive` or `chat`). With
    /// `send_receipts`, each sender of an incoming text, attachment or call offer not seen
    /// before gets one end-to-end encrypted read receipt naming them (as Signal does: the
    /// server cannot tell it from a message); a message whose receipt could not be sent stays
    /// unseen, so a later call tries again. Outgoing and control messages are skipped.
    pub async fn mark_seen(
        &self,
        messages: &[StoredMessage],
        send_receipts: bool,
    ) -> Result<SeenReport, ClientError> {
        let mut by_sender: Vec<(String, Vec<&StoredMessage>)> = Vec::new();
        for message in messages.iter().filter(|message| {
            !message.outgoing && !message.read && RECEIPT_KINDS.contains(&message.kind.as_str())
        }) {
            match by_sender.iter_mut().find(|(peer, _)| *peer == message.peer) {
                Some((_, list)) => list.push(message),
                None => by_sender.push((message.peer.clone(), vec![message])),
            }
        }
        let mut report = SeenReport::default();
        for (sender, list) in by_sender {
            if send_receipts {
                let mut sent = true;
                for chunk in list.chunks(MAX_RECEIPT_IDS) {
                    let receipt = Body::Receipt(Receipt {
                        r#type: ReceiptType::Read as i32,
                        message_ids: chunk
                            .iter()
                            .map(|message| message.client_message_id.clone())
                            .collect(),
                    });
                    if let Err(error) = self.send_body(&sender, receipt, None).await {
                        report.failed.push((sender.clone(), error.to_string()));
                        sent = false;
                        break;
                    }
                }
                if !sent {
                    continue;
                }
                report.receipts_sent_to.push(sender.clone());
            }
            let ids: Vec<i64> = list.iter().map(|message| message.id).collect();
            report.marked += self.store.mark_seen(&ids, now_ms()).await?.len();
        }
        Ok(report)
    }
}
