//! Sends: one message per recipient device (`Send`) or one sender-key ciphertext fanned out to
//! a group (`SendGroup`). Both are checked here and handed to the writer, which answers them
//! after their commit, or, for a message it relays live, after the recipient acknowledged it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use confianza_api::{
    ApiError, CiphertextType, ClientMessageId, ErrorCode, GroupId, MismatchedDevices,
    OutgoingEnvelope, ResponseBody,
};

use crate::service::device_cache::KnownDevice;
use crate::service::error::Failure;
use crate::service::session::{Reply, Session};
use crate::service::state::unix_ms;
use crate::service::writer::WriteError;
use crate::store::{DeviceAddress, EnqueueOutcome, MessageStore, NewMessage};

impl<S: MessageStore + Clone> Session<S> {
    pub(crate) async fn send(
        &mut self,
        id: u64,
        started: Instant,
        recipient: String,
        envelopes: Vec<OutgoingEnvelope>,
    ) -> Reply {
        let now = self.now();
        let messages = match self.prepare_send(&recipient, envelopes, now).await {
            Ok(messages) => messages,
            Err(failure) => return Reply::Now(Err(failure)),
        };
        self.submit(id, started, messages, now).await
    }

    pub(crate) async fn send_group(
        &mut self,
        id: u64,
        started: Instant,
        group_id: GroupId,
        revision: u64,
        body: Vec<u8>,
        client_message_id: ClientMessageId,
    ) -> Reply {
        let now = self.now();
        let message = match self
            .prepare_group_send(group_id, revision, body, client_message_id, now)
            .await
        {
            Ok(message) => message,
            Err(failure) => return Reply::Now(Err(failure)),
        };
        self.submit(id, started, vec![message], now).await
    }

    /// Hands checked messages to the writer; the answer follows their commit.
    async fn submit(
        &mut self,
        id: u64,
        started: Instant,
        messages: Vec<NewMessage>,
        now: SystemTime,
    ) -> Reply {
        if messages.iter().all(|message| message.recipients.is_empty()) {
            return Reply::Now(Ok(ResponseBody::Sent {
                server_timestamp_ms: unix_ms(now),
                accepted: 0,
                duplicates: 0,
            }));
        }
        let timestamp = unix_ms(now);
        let completion = self.answer_on_commit(id, started, move |outcomes| {
            answer_send(outcomes, timestamp)
        });
        match self.shared.writer.submit(messages, completion).await {
            Ok(()) => Reply::Deferred,
            Err(error) => Reply::Now(Err(error.into())),
        }
    }

    fn check_send_rate(&mut self) -> Result<(), Failure> {
        self.sends.take(Instant::now()).map_err(|wait| {
            Failure::Refused(ApiError {
                retry_after_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                ..ApiError::new(ErrorCode::RateLimited, "too many sends")
            })
        })
    }

    async fn prepare_send(
        &mut self,
        recipient: &str,
        envelopes: Vec<OutgoingEnvelope>,
        now: SystemTime,
    ) -> Result<Vec<NewMessage>, Failure> {
        let me = self.me()?;
        self.check_send_rate()?;
        let mut given = BTreeSet::new();
        for envelope in &envelopes {
            if !given.insert(envelope.device_id) {
                return Err(Failure::refuse(
                    ErrorCode::BadRequest,
                    format!("two envelopes for device {}", envelope.device_id),
                ));
            }
        }
        // A cached list can only miss a device enrolled since it was read (see
        // `device_cache`): a mismatch against it is checked again against the directory.
        let cached = self.shared.devices.get(recipient, Instant::now());
        let from_cache = cached.is_some();
        let devices = match cached {
            Some(devices) => devices,
            None => self.read_devices(recipient).await?,
        };
        if let Err(failure) = check_devices(&me, recipient, &devices, &envelopes) {
            if !from_cache {
                return Err(failure);
            }
            let devices = self.read_devices(recipient).await?;
            check_devices(&me, recipient, &devices, &envelopes)?;
        }
        let timestamp = unix_ms(now);
        let expires = unix_ms(now + self.shared.message_ttl);
        Ok(envelopes
            .into_iter()
            .map(|envelope| NewMessage {
                sender: me.clone(),
                ciphertext_type: envelope.ciphertext_type,
                body: envelope.body,
                client_message_id: envelope.client_message_id,
                group_id: None,
                server_timestamp_ms: timestamp,
                expires_at_ms: expires,
                recipients: vec![DeviceAddress {
                    address: recipient.to_owned(),
                    device_id: envelope.device_id,
                }],
            })
            .collect())
    }

    /// Reads `recipient`'s devices from the directory and caches them.
    async fn read_devices(&self, recipient: &str) -> Result<Arc<[KnownDevice]>, Failure> {
        let read_at = Instant::now();
        let devices: Arc<[KnownDevice]> = self
            .shared
            .store
            .devices(recipient)
            .await?
            .iter()
            .map(KnownDevice::from)
            .collect();
        self.shared.devices.put(recipient, devices.clone(), read_at);
        Ok(devices)
    }

    async fn prepare_group_send(
        &mut self,
        group_id: GroupId,
        revision: u64,
        body: Vec<u8>,
        client_message_id: ClientMessageId,
        now: SystemTime,
    ) -> Result<NewMessage, Failure> {
        let me = self.me()?;
        self.check_send_rate()?;
        let group = self
            .shared
            .store
            .group(group_id)
            .await?
            .ok_or_else(|| Failure::refuse(ErrorCode::NotFound, "no such group"))?;
        if !group
            .members
            .iter()
            .any(|member| member.address == me.address)
        {
            return Err(Failure::refuse(
                ErrorCode::Forbidden,
                "not a member of this group",
            ));
        }
        if group.revision != revision {
            return Err(Failure::refuse(
                ErrorCode::Conflict,
                format!(
                    "the group is at revision {}, the sender key was for {revision}: redistribute it",
                    group.revision
                ),
            ));
        }
        let mut recipients = Vec::new();
        for member in &group.members {
            for device in self.shared.store.devices(&member.address).await? {
                if device.address != me {
                    recipients.push(device.address);
                }
            }
        }
        Ok(NewMessage {
            sender: me,
            ciphertext_type: CiphertextType::SenderKey,
            body,
            client_message_id,
            group_id: Some(group_id),
            server_timestamp_ms: unix_ms(now),
            expires_at_ms: unix_ms(now + self.shared.message_ttl),
            recipients,
        })
    }
}

/// Checks a send's envelopes (distinct device ids, checked before) against the recipient
/// account's `devices`: one envelope per device except the sending device itself (a send to
/// one's own account reaches the other devices), with the device's current registration id.
fn check_devices(
    me: &DeviceAddress,
    recipient: &str,
    devices: &[KnownDevice],
    envelopes: &[OutgoingEnvelope],
) -> Result<(), Failure> {
    if devices.is_empty() {
        return Err(Failure::refuse(ErrorCode::NotFound, "no such account"));
    }
    let expected: BTreeMap<u32, u32> = devices
        .iter()
        .filter(|device| !(recipient == me.address && device.device_id == me.device_id))
        .map(|device| (device.device_id, device.registration_id))
        .collect();
    let given: BTreeSet<u32> = envelopes
        .iter()
        .map(|envelope| envelope.device_id)
        .collect();
    let mismatch = MismatchedDevices {
        missing: expected
            .keys()
            .filter(|id| !given.contains(id))
            .copied()
            .collect(),
        extra: given
            .iter()
            .filter(|id| !expected.contains_key(id))
            .copied()
            .collect(),
        stale: envelopes
            .iter()
            .filter(|envelope| {
                expected
                    .get(&envelope.device_id)
                    .is_some_and(|registration| *registration != envelope.registration_id)
            })
            .map(|envelope| envelope.device_id)
            .collect(),
    };
    if mismatch == MismatchedDevices::default() {
        return Ok(());
    }
    Err(Failure::Refused(ApiError {
        mismatched_devices: Some(mismatch),
        ..ApiError::new(
            ErrorCode::MismatchedDevices,
            "the envelopes do not match the account's devices",
        )
    }))
}

/// The answer to a send once the writer has committed it (or failed to).
fn answer_send(
    outcomes: Result<Vec<EnqueueOutcome>, WriteError>,
    timestamp: u64,
) -> Result<ResponseBody, Failure> {
    let outcomes = outcomes?;
    let mut accepted = 0u32;
    let mut duplicates = 0u32;
    for outcome in outcomes {
        match outcome {
            EnqueueOutcome::Stored {
                new,
                duplicates: repeated,
            } => {
                accepted = accepted.saturating_add(u32::try_from(new.len()).unwrap_or(u32::MAX));
                duplicates = duplicates.saturating_add(repeated);
            }
            EnqueueOutcome::MailboxFull(device) => {
                return Err(Failure::Refused(ApiError {
                    retry_after_ms: Some(MAILBOX_FULL_RETRY_MS),
                    ..ApiError::new(
                        ErrorCode::MailboxFull,
                        format!(
                            "the mailbox of {} device {} is full",
                            device.address, device.device_id
                        ),
                    )
                }));
            }
            EnqueueOutcome::UnknownRecipient(device) => {
                return Err(Failure::Refused(ApiError {
                    mismatched_devices: Some(MismatchedDevices {
                        extra: vec![device.device_id],
                        ..MismatchedDevices::default()
                    }),
                    ..ApiError::new(
                        ErrorCode::MismatchedDevices,
                        format!(
                            "{} device {} no longer exists",
                            device.address, device.device_id
                        ),
                    )
                }));
            }
        }
    }
    Ok(ResponseBody::Sent {
        server_timestamp_ms: timestamp,
        accepted,
        duplicates,
    })
}

/// When to retry a send refused for a full mailbox: the recipient has to come online and
/// drain it, which takes minutes, not milliseconds.
const MAILBOX_FULL_RETRY_MS: u64 = 60_000;
