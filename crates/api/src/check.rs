//! The rules every field follows, in one place: [`crate::codec`] applies them to decoded
//! frames and to frames about to be encoded, so both sides refuse exactly the same values.

use crate::error::{ApiError, FieldError, MismatchedDevices};
use crate::frames::*;
use crate::limits::*;
use crate::types::*;

type Checked = Result<(), FieldError>;

pub(crate) fn count(field: &'static str, count: usize, max: usize) -> Checked {
    if count > max {
        return Err(FieldError::TooMany { field, count, max });
    }
    Ok(())
}

pub(crate) fn bytes(field: &'static str, value: &[u8], max: usize) -> Checked {
    if value.is_empty() {
        return Err(FieldError::Missing(field));
    }
    if value.len() > max {
        return Err(FieldError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Non-empty text without control characters (they would corrupt logs and terminals).
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Checked {
    bytes(field, value.as_bytes(), max)?;
    if value.chars().any(char::is_control) {
        return Err(FieldError::Invalid(field));
    }
    Ok(())
}

/// An account address: non-empty, at most [`MAX_ADDRESS_LEN`] bytes, no whitespace or control
/// characters. Its syntax beyond that (`local@domain`) is the server's policy.
pub(crate) fn address(field: &'static str, value: &str) -> Checked {
    // The common case in one pass over the bytes: printable ASCII without the space, which is
    // neither whitespace nor a control character.
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return bytes(field, value.as_bytes(), MAX_ADDRESS_LEN);
    }
    text(field, value, MAX_ADDRESS_LEN)?;
    if value.chars().any(char::is_whitespace) {
        return Err(FieldError::Invalid(field));
    }
    Ok(())
}

fn addresses(field: &'static str, values: &[String], min: usize, max: usize) -> Checked {
    if values.len() < min {
        return Err(FieldError::Missing(field));
    }
    count(field, values.len(), max)?;
    values.iter().try_for_each(|a| address(field, a))
}

pub(crate) fn device_id(field: &'static str, value: u32) -> Checked {
    if value == 0 {
        return Err(FieldError::Missing(field));
    }
    Ok(())
}

pub(crate) fn registration_id(field: &'static str, value: u32) -> Checked {
    if !(MIN_REGISTRATION_ID..=MAX_REGISTRATION_ID).contains(&value) {
        return Err(FieldError::Invalid(field));
    }
    Ok(())
}

fn non_zero(field: &'static str, value: u64) -> Checked {
    if value == 0 {
        return Err(FieldError::Missing(field));
    }
    Ok(())
}

pub(crate) fn certificates(field: &'static str, chain: &[Vec<u8>], min: usize) -> Checked {
    if chain.len() < min {
        return Err(FieldError::Missing(field));
    }
    count(field, chain.len(), MAX_CA_CHAIN_LEN)?;
    chain
        .iter()
        .try_for_each(|c| bytes(field, c, MAX_CERTIFICATE_LEN))
}

fn message_body(field: &'static str, body: &[u8]) -> Checked {
    bytes(field, body, MAX_MESSAGE_BODY_LEN)
}

fn device_list(field: &'static str, ids: &[u32]) -> Checked {
    count(field, ids.len(), MAX_DEVICES_PER_ACCOUNT)?;
    ids.iter().try_for_each(|&d| device_id(field, d))
}

fn pre_key_upload(upload: &PreKeyUpload, for_new_identity: bool) -> Checked {
    count(
        "one_time_pre_keys",
        upload.one_time_pre_keys.len(),
        MAX_ONE_TIME_PREKEYS_PER_UPLOAD,
    )?;
    count(
        "kyber_pre_keys",
        upload.kyber_pre_keys.len(),
        MAX_KYBER_PREKEYS_PER_UPLOAD,
    )?;
    if for_new_identity {
        if upload.signed_pre_key.is_none() {
            return Err(FieldError::Missing("signed_pre_key"));
        }
        if upload.kyber_last_resort.is_none() {
            return Err(FieldError::Missing("kyber_last_resort"));
        }
    }
    Ok(())
}

impl ClientFrame {
    pub(crate) fn check(&self) -> Checked {
        match self {
            Self::Request(request) => request.body.check(),
            Self::Ack { delivery_ids } => {
                if delivery_ids.is_empty() {
                    return Err(FieldError::Missing("ack.delivery_ids"));
                }
                count("ack.delivery_ids", delivery_ids.len(), MAX_ACKS_PER_FRAME)?;
                delivery_ids
                    .iter()
                    .try_for_each(|&id| non_zero("ack.delivery_ids", id))
            }
        }
    }
}

impl RequestBody {
    pub(crate) fn check(&self) -> Checked {
        match self {
            Self::EnrollChallenge
            | Self::GetPreKeyCount
            | Self::GroupList
            | Self::WhoAmI
            | Self::ListDevices
            | Self::RevokeCertificate { .. }
            | Self::GroupLeave { .. }
            | Self::GroupGet { .. }
            | Self::BlobStatus { .. } => Ok(()),
            Self::Enroll(enroll) => {
                address("enroll.address", &enroll.address)?;
                // Empty asks for open registration, which the server allows only when its
                // operator turned it on.
                if !enroll.enrollment_code.is_empty() {
                    text(
                        "enroll.enrollment_code",
                        &enroll.enrollment_code,
                        MAX_ENROLLMENT_CODE_LEN,
                    )?;
                }
                registration_id("enroll.registration_id", enroll.registration_id)?;
                pre_key_upload(&enroll.pre_keys, true)
            }
            Self::UploadPreKeys(upload) => pre_key_upload(upload, false),
            Self::FetchBundle { address: a, device } => {
                address("fetch_bundle.address", a)?;
                match device {
                    DeviceSelector::All => Ok(()),
                    DeviceSelector::One(d) => device_id("fetch_bundle.device_id", *d),
                }
            }
            Self::Send {
                recipient,
                envelopes,
            } => {
                address("send.recipient", recipient)?;
                if envelopes.is_empty() {
                    return Err(FieldError::Missing("send.envelopes"));
                }
                count("send.envelopes", envelopes.len(), MAX_ENVELOPES_PER_SEND)?;
                for (i, e) in envelopes.iter().enumerate() {
                    device_id("envelope.device_id", e.device_id)?;
                    registration_id("envelope.registration_id", e.registration_id)?;
                    if e.ciphertext_type == CiphertextType::SenderKey {
                        // Sender-key messages go through SendGroup, which the server fans out.
                        return Err(FieldError::Invalid("envelope.ciphertext_type"));
                    }
                    message_body("envelope.body", &e.body)?;
                    if envelopes
                        .iter()
                        .take(i)
                        .any(|other| other.device_id == e.device_id)
                    {
                        return Err(FieldError::Invalid("envelope.device_id"));
                    }
                }
                Ok(())
            }
            Self::SendGroup { body, .. } => message_body("send_group.body", body),
            Self::GroupCreate { name, members } => {
                text("group_create.name", name, MAX_GROUP_NAME_LEN)?;
                // The creator is a member too.
                addresses("group_create.members", members, 0, MAX_GROUP_MEMBERS - 1)
            }
            Self::GroupAddMembers { members, .. } => {
                addresses("group_add_members.members", members, 1, MAX_GROUP_MEMBERS)
            }
            Self::GroupRemoveMembers { members, .. } => addresses(
                "group_remove_members.members",
                members,
                1,
                MAX_GROUP_MEMBERS,
            ),
            Self::BlobCreate { size } => blob_size("blob_create.size", *size),
            Self::BlobUpload { chunk, .. } => bytes("blob_upload.chunk", chunk, MAX_BLOB_CHUNK_LEN),
            Self::BlobDownload { length, .. } => {
                if *length == 0 {
                    return Err(FieldError::Missing("blob_download.length"));
                }
                count("blob_download.length", *length as usize, MAX_BLOB_CHUNK_LEN)
            }
            Self::RenewCertificate(renew) => pre_key_upload(&renew.pre_keys, false),
        }
    }
}

fn blob_size(field: &'static str, size: u64) -> Checked {
    if size == 0 {
        return Err(FieldError::Missing(field));
    }
    if size > MAX_BLOB_SIZE {
        return Err(FieldError::Invalid(field));
    }
    Ok(())
}

impl ServerFrame {
    pub(crate) fn check(&self) -> Checked {
        match self {
            Self::Response(response) => match &response.result {
                Ok(body) => body.check(),
                Err(error) => error.check(),
            },
            Self::Delivery(delivery) => {
                non_zero("delivery.id", delivery.id)?;
                match &delivery.item {
                    DeliveryItem::Envelope(e) => {
                        address("envelope.sender", &e.sender)?;
                        device_id("envelope.sender_device_id", e.sender_device_id)?;
                        message_body("envelope.body", &e.body)?;
                        if e.group_id.is_some() != (e.ciphertext_type == CiphertextType::SenderKey)
                        {
                            return Err(FieldError::Invalid("envelope.group_id"));
                        }
                        Ok(())
                    }
                    DeliveryItem::Receipt(r) => {
                        address("receipt.recipient", &r.recipient)?;
                        device_id("receipt.recipient_device_id", r.recipient_device_id)?;
                        if r.client_message_ids.is_empty() {
                            return Err(FieldError::Missing("receipt.client_message_ids"));
                        }
                        count(
                            "receipt.client_message_ids",
                            r.client_message_ids.len(),
                            MAX_RECEIPT_IDS,
                        )
                    }
                }
            }
            Self::Notice(notice) => match notice {
                Notice::MembershipChanged { .. }
                | Notice::PreKeysLow(_)
                | Notice::CertificateExpiring { .. }
                | Notice::MailboxDrained => Ok(()),
            },
        }
    }
}

impl ApiError {
    pub(crate) fn check(&self) -> Checked {
        // An empty message is allowed: the code says it all.
        if !self.message.is_empty() {
            text("error.message", &self.message, MAX_ERROR_MESSAGE_LEN)?;
        }
        if self.retry_after_ms == Some(0) {
            // Zero means "not given" on the wire.
            return Err(FieldError::Invalid("error.retry_after_ms"));
        }
        match (&self.mismatched_devices, self.code) {
            (Some(m), crate::ErrorCode::MismatchedDevices) => m.check(),
            (None, crate::ErrorCode::MismatchedDevices) => {
                Err(FieldError::Missing("error.mismatched_devices"))
            }
            (Some(_), _) => Err(FieldError::Invalid("error.mismatched_devices")),
            (None, _) => Ok(()),
        }
    }
}

impl MismatchedDevices {
    fn check(&self) -> Checked {
        device_list("mismatched_devices.missing", &self.missing)?;
        device_list("mismatched_devices.extra", &self.extra)?;
        device_list("mismatched_devices.stale", &self.stale)
    }
}

impl ResponseBody {
    pub(crate) fn check(&self) -> Checked {
        match self {
            Self::EnrollChallenge { .. }
            | Self::PreKeyCount(_)
            | Self::Sent { .. }
            | Self::GroupLeft
            | Self::Revoked { .. } => Ok(()),
            Self::Enrolled {
                device_id: d,
                identity_certificate,
                ca_chain,
            } => {
                device_id("enrolled.device_id", *d)?;
                bytes(
                    "enrolled.identity_certificate",
                    identity_certificate,
                    MAX_CERTIFICATE_LEN,
                )?;
                certificates("enrolled.ca_chain", ca_chain, 1)
            }
            Self::Certificate {
                identity_certificate,
                ca_chain,
            } => {
                bytes(
                    "certificate.identity_certificate",
                    identity_certificate,
                    MAX_CERTIFICATE_LEN,
                )?;
                certificates("certificate.ca_chain", ca_chain, 1)
            }
            Self::Bundles(bundles) => {
                count("bundles", bundles.len(), MAX_DEVICES_PER_ACCOUNT)?;
                bundles.iter().try_for_each(|b| {
                    device_id("bundle.device_id", b.device_id)?;
                    registration_id("bundle.registration_id", b.registration_id)?;
                    bytes(
                        "bundle.identity_certificate",
                        &b.identity_certificate,
                        MAX_CERTIFICATE_LEN,
                    )?;
                    if let Some(ocsp) = &b.ocsp_response {
                        bytes("bundle.ocsp_response", ocsp, MAX_OCSP_RESPONSE_LEN)?;
                    }
                    Ok(())
                })
            }
            Self::Group(group) => group.check(),
            Self::Groups(groups) => {
                count("groups", groups.len(), MAX_GROUPS_PER_LIST)?;
                groups.iter().try_for_each(|g| {
                    text("group.name", &g.name, MAX_GROUP_NAME_LEN)?;
                    if g.member_count == 0 {
                        return Err(FieldError::Missing("group.member_count"));
                    }
                    count(
                        "group.member_count",
                        g.member_count as usize,
                        MAX_GROUP_MEMBERS,
                    )
                })
            }
            Self::BlobCreated { chunk_size, .. } => {
                if *chunk_size == 0 {
                    return Err(FieldError::Missing("blob_created.chunk_size"));
                }
                count(
                    "blob_created.chunk_size",
                    *chunk_size as usize,
                    MAX_BLOB_CHUNK_LEN,
                )
            }
            Self::BlobStatus(status) => {
                blob_size("blob_status.size", status.size)?;
                if status.received > status.size
                    || status.complete != (status.received == status.size)
                {
                    return Err(FieldError::Invalid("blob_status.received"));
                }
                Ok(())
            }
            Self::BlobChunk {
                offset, size, data, ..
            } => {
                blob_size("blob_chunk.size", *size)?;
                bytes("blob_chunk.data", data, MAX_BLOB_CHUNK_LEN)?;
                // The chunk lies inside the blob (`data.len()` is at most 32 KiB: no overflow
                // once `offset <= size` holds).
                if *offset > *size || data.len() as u64 > size - offset {
                    return Err(FieldError::Invalid("blob_chunk.offset"));
                }
                Ok(())
            }
            Self::WhoAmI {
                address: a,
                device_id: d,
                ..
            } => {
                address("who_am_i.address", a)?;
                device_id("who_am_i.device_id", *d)
            }
            Self::Devices(devices) => {
                if devices.is_empty() {
                    return Err(FieldError::Missing("devices"));
                }
                count("devices", devices.len(), MAX_DEVICES_PER_ACCOUNT)?;
                devices.iter().try_for_each(|d| {
                    device_id("device.device_id", d.device_id)?;
                    registration_id("device.registration_id", d.registration_id)
                })
            }
        }
    }
}

impl Group {
    fn check(&self) -> Checked {
        text("group.name", &self.name, MAX_GROUP_NAME_LEN)?;
        if self.members.is_empty() {
            return Err(FieldError::Missing("group.members"));
        }
        count("group.members", self.members.len(), MAX_GROUP_MEMBERS)?;
        self.members
            .iter()
            .try_for_each(|m| address("group.member", &m.address))
    }
}
