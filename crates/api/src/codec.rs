//! Conversion between the typed frames and their protobuf form, and the byte-level entry
//! points. Decoding checks presence and fixed lengths here and the limits in [`crate::check`];
//! encoding runs the same limit checks first, so an encoded frame always decodes.

use prost::Message;

use crate::error::{ApiError, DecodeError, EncodeError, ErrorCode, FieldError, MismatchedDevices};
use crate::frames::*;
use crate::limits::MAX_FRAME_PAYLOAD_LEN;
use crate::proto as p;
use crate::types::*;

type Field<T> = Result<T, FieldError>;

// ------------------------------------------------------------------ entry points

impl ClientFrame {
    /// The frame's bytes, after checking every limit; at most [`MAX_FRAME_PAYLOAD_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.check()?;
        finish(client_frame_to_proto(self))
    }

    /// Parses and validates a frame from a client. Never panics; refuses anything larger than
    /// [`MAX_FRAME_PAYLOAD_LEN`] before parsing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire = parse::<p::ClientFrame>(bytes)?;
        let frame = client_frame_from_proto(wire)?;
        frame.check()?;
        Ok(frame)
    }
}

impl ServerFrame {
    /// The frame's bytes, after checking every limit; at most [`MAX_FRAME_PAYLOAD_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.check()?;
        finish(server_frame_to_proto(self))
    }

    /// As [`ServerFrame::encode`], but appends the bytes to `buffer` and takes the frame apart
    /// instead of copying what it carries: a server encoding a delivery allocates nothing for
    /// its body or sender. On error nothing is appended.
    pub fn encode_into(self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.check()?;
        let message = server_frame_into_proto(self);
        let len = message.encoded_len();
        if len > MAX_FRAME_PAYLOAD_LEN {
            return Err(EncodeError::FrameTooLarge {
                len,
                max: MAX_FRAME_PAYLOAD_LEN,
            });
        }
        // A `Vec` grows as needed: prost's capacity check cannot fail for it.
        message
            .encode(buffer)
            .map_err(|_| EncodeError::FrameTooLarge {
                len,
                max: MAX_FRAME_PAYLOAD_LEN,
            })
    }

    /// Parses and validates a frame from a server. Never panics; refuses anything larger than
    /// [`MAX_FRAME_PAYLOAD_LEN`] before parsing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire = parse::<p::ServerFrame>(bytes)?;
        let frame = server_frame_from_proto(wire)?;
        frame.check()?;
        Ok(frame)
    }
}

/// [`ClientFrame::decode`] as a free function: the entry point of the fuzz targets.
pub fn decode_client_frame(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    ClientFrame::decode(bytes)
}

/// [`ServerFrame::decode`] as a free function: the entry point of the fuzz targets.
pub fn decode_server_frame(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
    ServerFrame::decode(bytes)
}

fn parse<M: Message + Default>(bytes: &[u8]) -> Result<M, DecodeError> {
    if bytes.len() > MAX_FRAME_PAYLOAD_LEN {
        return Err(DecodeError::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_PAYLOAD_LEN,
        });
    }
    Ok(M::decode(bytes)?)
}

fn finish<M: Message>(message: M) -> Result<Vec<u8>, EncodeError> {
    let len = message.encoded_len();
    if len > MAX_FRAME_PAYLOAD_LEN {
        return Err(EncodeError::FrameTooLarge {
            len,
            max: MAX_FRAME_PAYLOAD_LEN,
        });
    }
    Ok(message.encode_to_vec())
}

// ------------------------------------------------------------------ small pieces

fn required<T>(field: &'static str, value: Option<T>) -> Field<T> {
    value.ok_or(FieldError::Missing(field))
}

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Field<[u8; N]> {
    if bytes.is_empty() {
        return Err(FieldError::Missing(field));
    }
    bytes.try_into().map_err(|_| FieldError::Length {
        field,
        len: bytes.len(),
        expected: N,
    })
}

fn optional_fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Field<Option<[u8; N]>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        fixed(field, bytes).map(Some)
    }
}

fn group_id(field: &'static str, bytes: &[u8]) -> Field<GroupId> {
    fixed(field, bytes).map(GroupId)
}

fn blob_id(field: &'static str, bytes: &[u8]) -> Field<BlobId> {
    fixed(field, bytes).map(BlobId)
}

fn ciphertext_type(field: &'static str, value: u32) -> Field<CiphertextType> {
    CiphertextType::from_wire(value).ok_or(FieldError::Invalid(field))
}

fn kyber_key(field: &'static str, bytes: &[u8]) -> Field<KyberPublicKey> {
    if bytes.is_empty() {
        return Err(FieldError::Missing(field));
    }
    KyberPublicKey::from_slice(bytes).ok_or(FieldError::Length {
        field,
        len: bytes.len(),
        expected: crate::limits::len::KYBER_PUBLIC_KEY,
    })
}

fn nonzero_opt(value: Option<u64>) -> u64 {
    value.unwrap_or(0)
}

// ------------------------------------------------------------------ keys

fn signed_pre_key_from(w: p::SignedPreKey) -> Field<SignedPreKey> {
    Ok(SignedPreKey {
        id: w.id,
        public_key: fixed("signed_pre_key.public_key", &w.public_key)?,
        signature: fixed("signed_pre_key.signature", &w.signature)?,
    })
}

fn signed_pre_key_to(k: &SignedPreKey) -> p::SignedPreKey {
    p::SignedPreKey {
        id: k.id,
        public_key: k.public_key.to_vec(),
        signature: k.signature.to_vec(),
    }
}

fn one_time_pre_key_from(w: p::OneTimePreKey) -> Field<OneTimePreKey> {
    Ok(OneTimePreKey {
        id: w.id,
        public_key: fixed("one_time_pre_key.public_key", &w.public_key)?,
    })
}

fn one_time_pre_key_to(k: &OneTimePreKey) -> p::OneTimePreKey {
    p::OneTimePreKey {
        id: k.id,
        public_key: k.public_key.to_vec(),
    }
}

fn kyber_pre_key_from(w: p::KyberPreKey) -> Field<KyberPreKey> {
    Ok(KyberPreKey {
        id: w.id,
        public_key: kyber_key("kyber_pre_key.public_key", &w.public_key)?,
        signature: fixed("kyber_pre_key.signature", &w.signature)?,
    })
}

fn kyber_pre_key_to(k: &KyberPreKey) -> p::KyberPreKey {
    p::KyberPreKey {
        id: k.id,
        public_key: k.public_key.as_bytes().to_vec(),
        signature: k.signature.to_vec(),
    }
}

fn upload_from(w: p::PreKeyUpload) -> Field<PreKeyUpload> {
    // Counts are checked before converting, so a frame cannot make us build big lists first.
    crate::check::count(
        "one_time_pre_keys",
        w.one_time_pre_keys.len(),
        crate::limits::MAX_ONE_TIME_PREKEYS_PER_UPLOAD,
    )?;
    crate::check::count(
        "kyber_pre_keys",
        w.kyber_pre_keys.len(),
        crate::limits::MAX_KYBER_PREKEYS_PER_UPLOAD,
    )?;
    Ok(PreKeyUpload {
        signed_pre_key: w.signed_pre_key.map(signed_pre_key_from).transpose()?,
        one_time_pre_keys: w
            .one_time_pre_keys
            .into_iter()
            .map(one_time_pre_key_from)
            .collect::<Field<_>>()?,
        kyber_pre_keys: w
            .kyber_pre_keys
            .into_iter()
            .map(kyber_pre_key_from)
            .collect::<Field<_>>()?,
        kyber_last_resort: w.kyber_last_resort.map(kyber_pre_key_from).transpose()?,
    })
}

fn upload_to(u: &PreKeyUpload) -> p::PreKeyUpload {
    p::PreKeyUpload {
        signed_pre_key: u.signed_pre_key.as_ref().map(signed_pre_key_to),
        one_time_pre_keys: u
            .one_time_pre_keys
            .iter()
            .map(one_time_pre_key_to)
            .collect(),
        kyber_pre_keys: u.kyber_pre_keys.iter().map(kyber_pre_key_to).collect(),
        kyber_last_resort: u.kyber_last_resort.as_ref().map(kyber_pre_key_to),
    }
}

// ------------------------------------------------------------------ client frames

fn client_frame_from_proto(w: p::ClientFrame) -> Result<ClientFrame, DecodeError> {
    use p::client_frame::Frame;
    Ok(match w.frame.ok_or(DecodeError::UnknownKind)? {
        Frame::Ack(ack) => ClientFrame::Ack {
            delivery_ids: ack.delivery_ids,
        },
        Frame::Request(request) => ClientFrame::Request(Request {
            id: request.request_id,
            body: request_body_from(request.body.ok_or(DecodeError::UnknownRequest {
                request_id: request.request_id,
            })?)?,
        }),
    })
}

pub(crate) fn client_frame_to_proto(frame: &ClientFrame) -> p::ClientFrame {
    use p::client_frame::Frame;
    p::ClientFrame {
        frame: Some(match frame {
            ClientFrame::Ack { delivery_ids } => Frame::Ack(p::Ack {
                delivery_ids: delivery_ids.clone(),
            }),
            ClientFrame::Request(request) => Frame::Request(p::Request {
                request_id: request.id,
                body: Some(request_body_to(&request.body)),
            }),
        }),
    }
}

fn request_body_from(w: p::request::Body) -> Field<RequestBody> {
    use p::request::Body as B;
    Ok(match w {
        B::EnrollChallenge(_) => RequestBody::EnrollChallenge,
        B::Enroll(e) => RequestBody::Enroll(Box::new(EnrollRequest {
            address: e.address,
            enrollment_code: e.enrollment_code,
            registration_id: e.registration_id,
            device_noise_key: fixed("enroll.device_noise_key", &e.device_noise_key)?,
            identity_key: fixed("enroll.identity_key", &e.identity_key)?,
            challenge: fixed("enroll.challenge", &e.challenge)?,
            proof: fixed("enroll.proof", &e.proof)?,
            pre_keys: upload_from(required("enroll.pre_keys", e.pre_keys)?)?,
        })),
        B::UploadPreKeys(u) => {
            RequestBody::UploadPreKeys(upload_from(required("upload.pre_keys", u.pre_keys)?)?)
        }
        B::GetPreKeyCount(_) => RequestBody::GetPreKeyCount,
        B::FetchBundle(f) => RequestBody::FetchBundle {
            address: f.address,
            device: match f.device_id {
                0 => DeviceSelector::All,
                d => DeviceSelector::One(d),
            },
        },
        B::Send(s) => {
            crate::check::count(
                "send.envelopes",
                s.envelopes.len(),
                crate::limits::MAX_ENVELOPES_PER_SEND,
            )?;
            RequestBody::Send {
                recipient: s.recipient,
                envelopes: s
                    .envelopes
                    .into_iter()
                    .map(|e| {
                        Ok(OutgoingEnvelope {
                            device_id: e.device_id,
                            registration_id: e.registration_id,
                            ciphertext_type: ciphertext_type(
                                "envelope.ciphertext_type",
                                e.ciphertext_type,
                            )?,
                            body: e.body,
                            client_message_id: fixed(
                                "envelope.client_message_id",
                                &e.client_message_id,
                            )?,
                        })
                    })
                    .collect::<Field<_>>()?,
            }
        }
        B::SendGroup(s) => RequestBody::SendGroup {
            group_id: group_id("send_group.group_id", &s.group_id)?,
            revision: s.revision,
            body: s.body,
            client_message_id: fixed("send_group.client_message_id", &s.client_message_id)?,
        },
        B::GroupCreate(g) => RequestBody::GroupCreate {
            name: g.name,
            members: g.members,
        },
        B::GroupAddMembers(g) => RequestBody::GroupAddMembers {
            group_id: group_id("group_add_members.group_id", &g.group_id)?,
            members: g.members,
        },
        B::GroupRemoveMembers(g) => RequestBody::GroupRemoveMembers {
            group_id: group_id("group_remove_members.group_id", &g.group_id)?,
            members: g.members,
        },
        B::GroupLeave(g) => RequestBody::GroupLeave {
            group_id: group_id("group_leave.group_id", &g.group_id)?,
        },
        B::GroupList(_) => RequestBody::GroupList,
        B::GroupGet(g) => RequestBody::GroupGet {
            group_id: group_id("group_get.group_id", &g.group_id)?,
        },
        B::BlobCreate(b) => RequestBody::BlobCreate { size: b.size },
        B::BlobUpload(b) => RequestBody::BlobUpload {
            blob_id: blob_id("blob_upload.blob_id", &b.blob_id)?,
            offset: b.offset,
            chunk: b.chunk,
        },
        B::BlobStatus(b) => RequestBody::BlobStatus {
            blob_id: blob_id("blob_status.blob_id", &b.blob_id)?,
        },
        B::BlobDownload(b) => RequestBody::BlobDownload {
            blob_id: blob_id("blob_download.blob_id", &b.blob_id)?,
            offset: b.offset,
            length: b.length,
        },
        B::RenewCertificate(r) => {
            RequestBody::RenewCertificate(Box::new(RenewCertificateRequest {
                identity_key: fixed("renew.identity_key", &r.identity_key)?,
                challenge: fixed("renew.challenge", &r.challenge)?,
                proof: fixed("renew.proof", &r.proof)?,
                pre_keys: r.pre_keys.map(upload_from).transpose()?.unwrap_or_default(),
            }))
        }
        B::RevokeCertificate(r) => RequestBody::RevokeCertificate {
            reason: revocation_reason_from(r.reason)?,
        },
        B::WhoAmI(_) => RequestBody::WhoAmI,
        B::ListDevices(_) => RequestBody::ListDevices,
    })
}

fn request_body_to(body: &RequestBody) -> p::request::Body {
    use p::request::Body as B;
    match body {
        RequestBody::EnrollChallenge => B::EnrollChallenge(p::EnrollChallengeRequest {}),
        RequestBody::Enroll(e) => B::Enroll(p::EnrollRequest {
            address: e.address.clone(),
            enrollment_code: e.enrollment_code.clone(),
            registration_id: e.registration_id,
            device_noise_key: e.device_noise_key.to_vec(),
            identity_key: e.identity_key.to_vec(),
            challenge: e.challenge.to_vec(),
            proof: e.proof.to_vec(),
            pre_keys: Some(upload_to(&e.pre_keys)),
        }),
        RequestBody::UploadPreKeys(u) => B::UploadPreKeys(p::UploadPreKeysRequest {
            pre_keys: Some(upload_to(u)),
        }),
        RequestBody::GetPreKeyCount => B::GetPreKeyCount(p::GetPreKeyCountRequest {}),
        RequestBody::FetchBundle { address, device } => B::FetchBundle(p::FetchBundleRequest {
            address: address.clone(),
            device_id: match device {
                DeviceSelector::All => 0,
                DeviceSelector::One(d) => *d,
            },
        }),
        RequestBody::Send {
            recipient,
            envelopes,
        } => B::Send(p::SendRequest {
            recipient: recipient.clone(),
            envelopes: envelopes
                .iter()
                .map(|e| p::OutgoingEnvelope {
                    device_id: e.device_id,
                    registration_id: e.registration_id,
                    ciphertext_type: e.ciphertext_type.to_wire(),
                    body: e.body.clone(),
                    client_message_id: e.client_message_id.to_vec(),
                })
                .collect(),
        }),
        RequestBody::SendGroup {
            group_id,
            revision,
            body,
            client_message_id,
        } => B::SendGroup(p::SendGroupRequest {
            group_id: group_id.0.to_vec(),
            revision: *revision,
            body: body.clone(),
            client_message_id: client_message_id.to_vec(),
        }),
        RequestBody::GroupCreate { name, members } => B::GroupCreate(p::GroupCreateRequest {
            name: name.clone(),
            members: members.clone(),
        }),
        RequestBody::GroupAddMembers { group_id, members } => {
            B::GroupAddMembers(p::GroupAddMembersRequest {
                group_id: group_id.0.to_vec(),
                members: members.clone(),
            })
        }
        RequestBody::GroupRemoveMembers { group_id, members } => {
            B::GroupRemoveMembers(p::GroupRemoveMembersRequest {
                group_id: group_id.0.to_vec(),
                members: members.clone(),
            })
        }
        RequestBody::GroupLeave { group_id } => B::GroupLeave(p::GroupLeaveRequest {
            group_id: group_id.0.to_vec(),
        }),
        RequestBody::GroupList => B::GroupList(p::GroupListRequest {}),
        RequestBody::GroupGet { group_id } => B::GroupGet(p::GroupGetRequest {
            group_id: group_id.0.to_vec(),
        }),
        RequestBody::BlobCreate { size } => B::BlobCreate(p::BlobCreateRequest { size: *size }),
        RequestBody::BlobUpload {
            blob_id,
            offset,
            chunk,
        } => B::BlobUpload(p::BlobUploadRequest {
            blob_id: blob_id.0.to_vec(),
            offset: *offset,
            chunk: chunk.clone(),
        }),
        RequestBody::BlobStatus { blob_id } => B::BlobStatus(p::BlobStatusRequest {
            blob_id: blob_id.0.to_vec(),
        }),
        RequestBody::BlobDownload {
            blob_id,
            offset,
            length,
        } => B::BlobDownload(p::BlobDownloadRequest {
            blob_id: blob_id.0.to_vec(),
            offset: *offset,
            length: *length,
        }),
        RequestBody::RenewCertificate(r) => B::RenewCertificate(p::RenewCertificateRequest {
            identity_key: r.identity_key.to_vec(),
            challenge: r.challenge.to_vec(),
            proof: r.proof.to_vec(),
            pre_keys: Some(upload_to(&r.pre_keys)),
        }),
        RequestBody::RevokeCertificate { reason } => {
            B::RevokeCertificate(p::RevokeCertificateRequest {
                reason: revocation_reason_to(*reason),
            })
        }
        RequestBody::WhoAmI => B::WhoAmI(p::WhoAmIRequest {}),
        RequestBody::ListDevices => B::ListDevices(p::ListDevicesRequest {}),
    }
}

fn revocation_reason_from(value: i32) -> Field<RevocationReason> {
    use p::RevocationReason as W;
    Ok(
        match W::try_from(value).map_err(|_| FieldError::Invalid("revoke.reason"))? {
            W::Unspecified => RevocationReason::Unspecified,
            W::KeyCompromise => RevocationReason::KeyCompromise,
            W::AffiliationChanged => RevocationReason::AffiliationChanged,
            W::Superseded => RevocationReason::Superseded,
            W::CessationOfOperation => RevocationReason::CessationOfOperation,
        },
    )
}

fn revocation_reason_to(reason: RevocationReason) -> i32 {
    use p::RevocationReason as W;
    (match reason {
        RevocationReason::Unspecified => W::Unspecified,
        RevocationReason::KeyCompromise => W::KeyCompromise,
        RevocationReason::AffiliationChanged => W::AffiliationChanged,
        RevocationReason::Superseded => W::Superseded,
        RevocationReason::CessationOfOperation => W::CessationOfOperation,
    }) as i32
}

// ------------------------------------------------------------------ server frames

fn server_frame_from_proto(w: p::ServerFrame) -> Result<ServerFrame, DecodeError> {
    use p::server_frame::Frame;
    Ok(match w.frame.ok_or(DecodeError::UnknownKind)? {
        Frame::Response(r) => ServerFrame::Response(Response {
            id: r.request_id,
            result: match r.result.ok_or(DecodeError::UnknownKind)? {
                p::response::Result::Error(e) => Err(api_error_from(e)?),
                other => Ok(response_body_from(other)?),
            },
        }),
        Frame::Delivery(d) => ServerFrame::Delivery(Delivery {
            id: d.delivery_id,
            item: match d.item.ok_or(DecodeError::UnknownKind)? {
                p::delivery::Item::Envelope(e) => DeliveryItem::Envelope(envelope_from(e)?),
                p::delivery::Item::Receipt(r) => DeliveryItem::Receipt(receipt_from(r)?),
            },
        }),
        Frame::Notice(n) => ServerFrame::Notice(notice_from(n)?),
    })
}

pub(crate) fn server_frame_to_proto(frame: &ServerFrame) -> p::ServerFrame {
    use p::server_frame::Frame;
    p::ServerFrame {
        frame: Some(match frame {
            ServerFrame::Response(r) => Frame::Response(p::Response {
                request_id: r.id,
                result: Some(match &r.result {
                    Ok(body) => response_body_to(body),
                    Err(e) => p::response::Result::Error(api_error_to(e)),
                }),
            }),
            ServerFrame::Delivery(d) => Frame::Delivery(p::Delivery {
                delivery_id: d.id,
                item: Some(match &d.item {
                    DeliveryItem::Envelope(e) => p::delivery::Item::Envelope(envelope_to(e)),
                    DeliveryItem::Receipt(r) => p::delivery::Item::Receipt(receipt_to(r)),
                }),
            }),
            ServerFrame::Notice(n) => Frame::Notice(notice_to(n)),
        }),
    }
}

/// [`server_frame_to_proto`] for an owned frame: a delivery's contents move instead of being
/// copied (deliveries are what a server encodes most).
fn server_frame_into_proto(frame: ServerFrame) -> p::ServerFrame {
    use p::server_frame::Frame;
    match frame {
        ServerFrame::Delivery(d) => p::ServerFrame {
            frame: Some(Frame::Delivery(p::Delivery {
                delivery_id: d.id,
                item: Some(match d.item {
                    DeliveryItem::Envelope(e) => p::delivery::Item::Envelope(envelope_into(e)),
                    DeliveryItem::Receipt(r) => p::delivery::Item::Receipt(receipt_into(r)),
                }),
            })),
        },
        other => server_frame_to_proto(&other),
    }
}

fn api_error_from(e: p::Error) -> Field<ApiError> {
    Ok(ApiError {
        code: ErrorCode::from_wire(e.code)?,
        message: e.message,
        retry_after_ms: (e.retry_after_ms != 0).then_some(e.retry_after_ms),
        mismatched_devices: e.mismatched_devices.map(|m| MismatchedDevices {
            missing: m.missing,
            extra: m.extra,
            stale: m.stale,
        }),
    })
}

fn api_error_to(e: &ApiError) -> p::Error {
    p::Error {
        code: e.code.to_wire(),
        message: e.message.clone(),
        retry_after_ms: nonzero_opt(e.retry_after_ms),
        mismatched_devices: e.mismatched_devices.as_ref().map(|m| p::MismatchedDevices {
            missing: m.missing.clone(),
            extra: m.extra.clone(),
            stale: m.stale.clone(),
        }),
    }
}

fn envelope_from(e: p::Envelope) -> Field<Envelope> {
    Ok(Envelope {
        sender: e.sender,
        sender_device_id: e.sender_device_id,
        ciphertext_type: ciphertext_type("envelope.ciphertext_type", e.ciphertext_type)?,
        body: e.body,
        client_message_id: fixed("envelope.client_message_id", &e.client_message_id)?,
        server_timestamp_ms: e.server_timestamp_ms,
        group_id: optional_fixed("envelope.group_id", &e.group_id)?.map(GroupId),
    })
}

fn envelope_to(e: &Envelope) -> p::Envelope {
    p::Envelope {
        sender: e.sender.clone(),
        sender_device_id: e.sender_device_id,
        ciphertext_type: e.ciphertext_type.to_wire(),
        body: e.body.clone(),
        client_message_id: e.client_message_id.to_vec(),
        server_timestamp_ms: e.server_timestamp_ms,
        group_id: e.group_id.map(|g| g.0.to_vec()).unwrap_or_default(),
    }
}

fn envelope_into(e: Envelope) -> p::Envelope {
    p::Envelope {
        sender: e.sender,
        sender_device_id: e.sender_device_id,
        ciphertext_type: e.ciphertext_type.to_wire(),
        body: e.body,
        client_message_id: e.client_message_id.to_vec(),
        server_timestamp_ms: e.server_timestamp_ms,
        group_id: e.group_id.map(|g| g.0.to_vec()).unwrap_or_default(),
    }
}

fn receipt_from(r: p::DeliveryReceipt) -> Field<DeliveryReceipt> {
    crate::check::count(
        "receipt.client_message_ids",
        r.client_message_ids.len(),
        crate::limits::MAX_RECEIPT_IDS,
    )?;
    Ok(DeliveryReceipt {
        recipient: r.recipient,
        recipient_device_id: r.recipient_device_id,
        client_message_ids: r
            .client_message_ids
            .iter()
            .map(|id| fixed("receipt.client_message_id", id))
            .collect::<Field<_>>()?,
        server_timestamp_ms: r.server_timestamp_ms,
    })
}

fn receipt_to(r: &DeliveryReceipt) -> p::DeliveryReceipt {
    p::DeliveryReceipt {
        recipient: r.recipient.clone(),
        recipient_device_id: r.recipient_device_id,
        client_message_ids: r.client_message_ids.iter().map(|id| id.to_vec()).collect(),
        server_timestamp_ms: r.server_timestamp_ms,
    }
}

fn receipt_into(r: DeliveryReceipt) -> p::DeliveryReceipt {
    p::DeliveryReceipt {
        recipient: r.recipient,
        recipient_device_id: r.recipient_device_id,
        client_message_ids: r.client_message_ids.iter().map(|id| id.to_vec()).collect(),
        server_timestamp_ms: r.server_timestamp_ms,
    }
}

fn pre_key_count_from(
    one_time: u32,
    kyber_one_time: u32,
    kyber_last_resort_used: bool,
) -> PreKeyCount {
    PreKeyCount {
        one_time,
        kyber_one_time,
        kyber_last_resort_used,
    }
}

fn notice_from(n: p::Notice) -> Result<Notice, DecodeError> {
    use p::notice::Kind;
    Ok(match n.kind.ok_or(DecodeError::UnknownNotice)? {
        Kind::MembershipChanged(m) => Notice::MembershipChanged {
            group_id: group_id("membership_changed.group_id", &m.group_id)?,
            revision: m.revision,
        },
        Kind::PreKeysLow(l) => Notice::PreKeysLow(pre_key_count_from(
            l.one_time,
            l.kyber_one_time,
            l.kyber_last_resort_used,
        )),
        Kind::CertificateExpiring(c) => Notice::CertificateExpiring {
            not_after_ms: c.not_after_ms,
        },
        Kind::MailboxDrained(_) => Notice::MailboxDrained,
    })
}

fn notice_to(n: &Notice) -> p::Notice {
    use p::notice::Kind;
    p::Notice {
        kind: Some(match n {
            Notice::MembershipChanged { group_id, revision } => {
                Kind::MembershipChanged(p::MembershipChanged {
                    group_id: group_id.0.to_vec(),
                    revision: *revision,
                })
            }
            Notice::PreKeysLow(c) => Kind::PreKeysLow(p::PreKeysLow {
                one_time: c.one_time,
                kyber_one_time: c.kyber_one_time,
                kyber_last_resort_used: c.kyber_last_resort_used,
            }),
            Notice::CertificateExpiring { not_after_ms } => {
                Kind::CertificateExpiring(p::CertificateExpiring {
                    not_after_ms: *not_after_ms,
                })
            }
            Notice::MailboxDrained => Kind::MailboxDrained(p::MailboxDrained {}),
        }),
    }
}

fn bundle_from(b: p::PreKeyBundle) -> Field<PreKeyBundle> {
    Ok(PreKeyBundle {
        device_id: b.device_id,
        registration_id: b.registration_id,
        identity_key: fixed("bundle.identity_key", &b.identity_key)?,
        identity_certificate: b.identity_certificate,
        ocsp_response: (!b.ocsp_response.is_empty()).then_some(b.ocsp_response),
        signed_pre_key: signed_pre_key_from(required("bundle.signed_pre_key", b.signed_pre_key)?)?,
        one_time_pre_key: b.one_time_pre_key.map(one_time_pre_key_from).transpose()?,
        kyber_pre_key: kyber_pre_key_from(required("bundle.kyber_pre_key", b.kyber_pre_key)?)?,
        kyber_is_last_resort: b.kyber_is_last_resort,
    })
}

fn bundle_to(b: &PreKeyBundle) -> p::PreKeyBundle {
    p::PreKeyBundle {
        device_id: b.device_id,
        registration_id: b.registration_id,
        identity_key: b.identity_key.to_vec(),
        identity_certificate: b.identity_certificate.clone(),
        ocsp_response: b.ocsp_response.clone().unwrap_or_default(),
        signed_pre_key: Some(signed_pre_key_to(&b.signed_pre_key)),
        one_time_pre_key: b.one_time_pre_key.as_ref().map(one_time_pre_key_to),
        kyber_pre_key: Some(kyber_pre_key_to(&b.kyber_pre_key)),
        kyber_is_last_resort: b.kyber_is_last_resort,
    }
}

fn group_from(g: p::Group) -> Field<Group> {
    Ok(Group {
        id: group_id("group.group_id", &g.group_id)?,
        name: g.name,
        revision: g.revision,
        members: g
            .members
            .into_iter()
            .map(|m| GroupMember {
                address: m.address,
                admin: m.admin,
            })
            .collect(),
    })
}

fn group_to(g: &Group) -> p::Group {
    p::Group {
        group_id: g.id.0.to_vec(),
        name: g.name.clone(),
        revision: g.revision,
        members: g
            .members
            .iter()
            .map(|m| p::GroupMember {
                address: m.address.clone(),
                admin: m.admin,
            })
            .collect(),
    }
}

fn response_body_from(w: p::response::Result) -> Field<ResponseBody> {
    use p::response::Result as R;
    Ok(match w {
        // Handled by the caller; kept here so the match stays exhaustive.
        R::Error(_) => return Err(FieldError::Invalid("response.result")),
        R::EnrollChallenge(c) => ResponseBody::EnrollChallenge {
            challenge: fixed("enroll_challenge.challenge", &c.challenge)?,
            expires_at_ms: c.expires_at_ms,
        },
        R::Enroll(e) => ResponseBody::Enrolled {
            device_id: e.device_id,
            identity_certificate: e.identity_certificate,
            ca_chain: e.ca_chain,
        },
        R::PreKeyCount(c) => ResponseBody::PreKeyCount(pre_key_count_from(
            c.one_time,
            c.kyber_one_time,
            c.kyber_last_resort_used,
        )),
        R::FetchBundle(f) => {
            crate::check::count(
                "bundles",
                f.bundles.len(),
                crate::limits::MAX_DEVICES_PER_ACCOUNT,
            )?;
            ResponseBody::Bundles(
                f.bundles
                    .into_iter()
                    .map(bundle_from)
                    .collect::<Field<_>>()?,
            )
        }
        R::Send(s) => ResponseBody::Sent {
            server_timestamp_ms: s.server_timestamp_ms,
            accepted: s.accepted,
            duplicates: s.duplicates,
        },
        R::Group(g) => ResponseBody::Group(group_from(required("group", g.group)?)?),
        R::GroupLeave(_) => ResponseBody::GroupLeft,
        R::GroupList(l) => ResponseBody::Groups(
            l.groups
                .into_iter()
                .map(|g| {
                    Ok(GroupSummary {
                        id: group_id("group.group_id", &g.group_id)?,
                        name: g.name,
                        revision: g.revision,
                        member_count: g.member_count,
                    })
                })
                .collect::<Field<_>>()?,
        ),
        R::BlobCreate(b) => ResponseBody::BlobCreated {
            blob_id: blob_id("blob_created.blob_id", &b.blob_id)?,
            chunk_size: b.chunk_size,
            expires_at_ms: b.expires_at_ms,
        },
        R::BlobStatus(b) => ResponseBody::BlobStatus(BlobStatus {
            blob_id: blob_id("blob_status.blob_id", &b.blob_id)?,
            size: b.size,
            received: b.received,
            complete: b.complete,
            expires_at_ms: b.expires_at_ms,
        }),
        R::BlobDownload(b) => ResponseBody::BlobChunk {
            blob_id: blob_id("blob_chunk.blob_id", &b.blob_id)?,
            offset: b.offset,
            size: b.size,
            data: b.data,
        },
        R::Certificate(c) => ResponseBody::Certificate {
            identity_certificate: c.identity_certificate,
            ca_chain: c.ca_chain,
        },
        R::RevokeCertificate(r) => ResponseBody::Revoked {
            revoked_at_ms: r.revoked_at_ms,
        },
        R::WhoAmI(w) => ResponseBody::WhoAmI {
            address: w.address,
            device_id: w.device_id,
            certificate_not_after_ms: w.certificate_not_after_ms,
        },
        R::ListDevices(l) => ResponseBody::Devices(
            l.devices
                .into_iter()
                .map(|d| DeviceInfo {
                    device_id: d.device_id,
                    registration_id: d.registration_id,
                    created_at_ms: d.created_at_ms,
                    last_seen_ms: d.last_seen_ms,
                })
                .collect(),
        ),
    })
}

fn response_body_to(body: &ResponseBody) -> p::response::Result {
    use p::response::Result as R;
    match body {
        ResponseBody::EnrollChallenge {
            challenge,
            expires_at_ms,
        } => R::EnrollChallenge(p::EnrollChallengeResponse {
            challenge: challenge.to_vec(),
            expires_at_ms: *expires_at_ms,
        }),
        ResponseBody::Enrolled {
            device_id,
            identity_certificate,
            ca_chain,
        } => R::Enroll(p::EnrollResponse {
            device_id: *device_id,
            identity_certificate: identity_certificate.clone(),
            ca_chain: ca_chain.clone(),
        }),
        ResponseBody::PreKeyCount(c) => R::PreKeyCount(p::PreKeyCountResponse {
            one_time: c.one_time,
            kyber_one_time: c.kyber_one_time,
            kyber_last_resort_used: c.kyber_last_resort_used,
        }),
        ResponseBody::Bundles(bundles) => R::FetchBundle(p::FetchBundleResponse {
            bundles: bundles.iter().map(bundle_to).collect(),
        }),
        ResponseBody::Sent {
            server_timestamp_ms,
            accepted,
            duplicates,
        } => R::Send(p::SendResponse {
            server_timestamp_ms: *server_timestamp_ms,
            accepted: *accepted,
            duplicates: *duplicates,
        }),
        ResponseBody::Group(g) => R::Group(p::GroupResponse {
            group: Some(group_to(g)),
        }),
        ResponseBody::GroupLeft => R::GroupLeave(p::GroupLeaveResponse {}),
        ResponseBody::Groups(groups) => R::GroupList(p::GroupListResponse {
            groups: groups
                .iter()
                .map(|g| p::GroupSummary {
                    group_id: g.id.0.to_vec(),
                    name: g.name.clone(),
                    revision: g.revision,
                    member_count: g.member_count,
                })
                .collect(),
        }),
        ResponseBody::BlobCreated {
            blob_id,
            chunk_size,
            expires_at_ms,
        } => R::BlobCreate(p::BlobCreateResponse {
            blob_id: blob_id.0.to_vec(),
            chunk_size: *chunk_size,
            expires_at_ms: *expires_at_ms,
        }),
        ResponseBody::BlobStatus(b) => R::BlobStatus(p::BlobStatusResponse {
            blob_id: b.blob_id.0.to_vec(),
            size: b.size,
            received: b.received,
            complete: b.complete,
            expires_at_ms: b.expires_at_ms,
        }),
        ResponseBody::BlobChunk {
            blob_id,
            offset,
            size,
            data,
        } => R::BlobDownload(p::BlobDownloadResponse {
            blob_id: blob_id.0.to_vec(),
            offset: *offset,
            size: *size,
            data: data.clone(),
        }),
        ResponseBody::Certificate {
            identity_certificate,
            ca_chain,
        } => R::Certificate(p::CertificateResponse {
            identity_certificate: identity_certificate.clone(),
            ca_chain: ca_chain.clone(),
        }),
        ResponseBody::Revoked { revoked_at_ms } => {
            R::RevokeCertificate(p::RevokeCertificateResponse {
                revoked_at_ms: *revoked_at_ms,
            })
        }
        ResponseBody::WhoAmI {
            address,
            device_id,
            certificate_not_after_ms,
        } => R::WhoAmI(p::WhoAmIResponse {
            address: address.clone(),
            device_id: *device_id,
            certificate_not_after_ms: *certificate_not_after_ms,
        }),
        ResponseBody::Devices(devices) => R::ListDevices(p::ListDevicesResponse {
            devices: devices
                .iter()
                .map(|d| p::DeviceInfo {
                    device_id: d.device_id,
                    registration_id: d.registration_id,
                    created_at_ms: d.created_at_ms,
                    last_seen_ms: d.last_seen_ms,
                })
                .collect(),
        }),
    }
}
