//! The frames: what a client sends ([`ClientFrame`]) and what a server sends ([`ServerFrame`]).

use crate::error::ApiError;
use crate::types::*;

/// A frame from a client: a request, or the acknowledgement of a delivery.
// Frames live one at a time between the codec and a handler, so the size of the small
// variants does not matter; the largest requests are boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Request(Request),
    /// The client has decrypted and stored these deliveries (1 ..=
    /// [`crate::limits::MAX_ACKS_PER_FRAME`] non-zero ids, in any order); the server may delete
    /// them now. Batching keeps the frame count down when a backlog drains.
    Ack {
        delivery_ids: Vec<u64>,
    },
}

impl ClientFrame {
    /// A request frame.
    pub fn request(id: u64, body: RequestBody) -> Self {
        Self::Request(Request { id, body })
    }
}

/// A request; the server answers with a [`Response`] carrying the same `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the client, unique among its requests in flight.
    pub id: u64,
    pub body: RequestBody,
}

/// What a client can ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// A fresh challenge for [`RequestBody::Enroll`] or [`RequestBody::RenewCertificate`].
    EnrollChallenge,
    /// Boxed: the largest request by far.
    Enroll(Box<EnrollRequest>),
    UploadPreKeys(PreKeyUpload),
    GetPreKeyCount,
    FetchBundle {
        address: String,
        device: DeviceSelector,
    },
    /// One message to the devices of one account: exactly one envelope per device.
    Send {
        recipient: String,
        /// At least one, at most [`crate::limits::MAX_ENVELOPES_PER_SEND`].
        envelopes: Vec<OutgoingEnvelope>,
    },
    /// One sender-key ciphertext (type 7), fanned out to the group's other member devices.
    SendGroup {
        group_id: GroupId,
        /// The membership revision the sender key was distributed for; a server refuses the
        /// send with `Conflict` when the group has changed since (a new member could not
        /// decrypt it, so the sender must redistribute first).
        revision: u64,
        body: Vec<u8>,
        client_message_id: ClientMessageId,
    },
    GroupCreate {
        name: String,
        /// The others; the creator joins as admin.
        members: Vec<String>,
    },
    GroupAddMembers {
        group_id: GroupId,
        members: Vec<String>,
    },
    GroupRemoveMembers {
        group_id: GroupId,
        members: Vec<String>,
    },
    GroupLeave {
        group_id: GroupId,
    },
    GroupList,
    GroupGet {
        group_id: GroupId,
    },
    /// Reserve an upload of `size` bytes (1 ..= [`crate::limits::MAX_BLOB_SIZE`]).
    BlobCreate {
        size: u64,
    },
    /// Append a chunk at `offset`, which must be the stored byte count.
    BlobUpload {
        blob_id: BlobId,
        offset: u64,
        /// 1 ..= [`crate::limits::MAX_BLOB_CHUNK_LEN`] bytes.
        chunk: Vec<u8>,
    },
    /// Where to resume an upload.
    BlobStatus {
        blob_id: BlobId,
    },
    BlobDownload {
        blob_id: BlobId,
        offset: u64,
        /// 1 ..= [`crate::limits::MAX_BLOB_CHUNK_LEN`].
        length: u32,
    },
    RenewCertificate(Box<RenewCertificateRequest>),
    RevokeCertificate {
        reason: RevocationReason,
    },
    WhoAmI,
    ListDevices,
}

/// Enrollment of a new device with an RA enrollment code. `Debug` leaves the code out: it is a
/// bearer secret until used.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollRequest {
    pub address: String,
    /// The code the RA gave the user out of band; empty to ask for open registration (refused
    /// with `Forbidden` unless the operator turned it on). Not zeroized: it is single-use and
    /// the server stores only its hash.
    pub enrollment_code: String,
    /// 1 ..= 16 380.
    pub registration_id: u32,
    /// Must equal the Noise static key the connection was authenticated with.
    pub device_noise_key: NoisePublicKey,
    pub identity_key: EcPublicKey,
    pub challenge: Challenge,
    /// XEdDSA signature by the identity key over [`proof_message`] of this request.
    pub proof: Signature,
    /// Must carry a signed prekey and a Kyber last-resort key.
    pub pre_keys: PreKeyUpload,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("address", &self.address)
            .field("enrollment_code", &"<redacted>")
            .field("registration_id", &self.registration_id)
            .field("device_noise_key", &self.device_noise_key)
            .field("identity_key", &self.identity_key)
            .field("challenge", &self.challenge)
            .field("proof", &self.proof)
            .field("pre_keys", &self.pre_keys)
            .finish()
    }
}

/// Renewal of the identity certificate, to the same or a new identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewCertificateRequest {
    pub identity_key: EcPublicKey,
    pub challenge: Challenge,
    /// XEdDSA signature by `identity_key` over [`proof_message`].
    pub proof: Signature,
    /// With a new identity key: a new signed prekey and Kyber last-resort key (the old ones
    /// are signed by the old key).
    pub pre_keys: PreKeyUpload,
}

/// Domain separation for proofs of possession.
pub const PROOF_CONTEXT: &[u8] = b"Confianza identity proof v1";

/// The bytes an identity key signs (XEdDSA) to prove possession at enrollment or renewal:
///
/// ```text
/// PROOF_CONTEXT || u8(len(address)) || address || challenge || identity_key || device_noise_key
/// ```
///
/// Binding the address and the device's Noise key stops a proof made for one enrollment from
/// being replayed for another; the challenge (fresh per connection) stops replays in time.
/// For renewal, `address` is the account's and `device_noise_key` the connection's.
pub fn proof_message(
    address: &str,
    challenge: &Challenge,
    identity_key: &EcPublicKey,
    device_noise_key: &NoisePublicKey,
) -> Vec<u8> {
    // Addresses are at most 128 bytes (checked on the wire); a longer one is truncated to the
    // length byte's range here so this function never panics, and the frame is refused anyway.
    let address = address.as_bytes();
    let address = address.get(..address.len().min(255)).unwrap_or_default();
    let mut out = Vec::with_capacity(PROOF_CONTEXT.len() + 1 + address.len() + 32 + 33 + 32);
    out.extend_from_slice(PROOF_CONTEXT);
    out.push(address.len() as u8);
    out.extend_from_slice(address);
    out.extend_from_slice(challenge);
    out.extend_from_slice(identity_key);
    out.extend_from_slice(device_noise_key);
    out
}

/// A frame from the server: a response, a pushed delivery, or a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Response(Response),
    Delivery(Delivery),
    Notice(Notice),
}

impl ServerFrame {
    /// A successful response to request `id`.
    pub fn ok(id: u64, body: ResponseBody) -> Self {
        Self::Response(Response {
            id,
            result: Ok(body),
        })
    }

    /// A refusal of request `id`.
    pub fn error(id: u64, error: ApiError) -> Self {
        Self::Response(Response {
            id,
            result: Err(error),
        })
    }
}

/// The answer to the request with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u64,
    pub result: Result<ResponseBody, ApiError>,
}

/// What a successful request returns. [`ResponseBody::answers`] says which request each
/// answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    EnrollChallenge {
        challenge: Challenge,
        expires_at_ms: u64,
    },
    Enrolled {
        device_id: u32,
        /// DER.
        identity_certificate: Vec<u8>,
        /// DER, issuing CA first, root last.
        ca_chain: Vec<Vec<u8>>,
    },
    /// Answers `UploadPreKeys` and `GetPreKeyCount`.
    PreKeyCount(PreKeyCount),
    /// One bundle per device asked for (at most [`crate::limits::MAX_DEVICES_PER_ACCOUNT`]).
    Bundles(Vec<PreKeyBundle>),
    /// Answers `Send` and `SendGroup`: the message is stored durably.
    Sent {
        server_timestamp_ms: u64,
        /// Envelopes newly stored.
        accepted: u32,
        /// Envelopes already stored under the same client message id.
        duplicates: u32,
    },
    /// Answers group create, add, remove and get.
    Group(Group),
    GroupLeft,
    Groups(Vec<GroupSummary>),
    BlobCreated {
        blob_id: BlobId,
        /// Upload in chunks of this size (at most [`crate::limits::MAX_BLOB_CHUNK_LEN`]).
        chunk_size: u32,
        expires_at_ms: u64,
    },
    /// Answers `BlobUpload` and `BlobStatus`.
    BlobStatus(BlobStatus),
    BlobChunk {
        blob_id: BlobId,
        offset: u64,
        /// Size of the whole blob.
        size: u64,
        data: Vec<u8>,
    },
    /// Answers `RenewCertificate`.
    Certificate {
        identity_certificate: Vec<u8>,
        ca_chain: Vec<Vec<u8>>,
    },
    Revoked {
        revoked_at_ms: u64,
    },
    WhoAmI {
        address: String,
        device_id: u32,
        certificate_not_after_ms: u64,
    },
    Devices(Vec<DeviceInfo>),
}

impl ResponseBody {
    /// Whether this is a possible answer to `request`: a client checks it before trusting a
    /// response's shape (a server answering a bundle fetch with a group is a broken server).
    pub fn answers(&self, request: &RequestBody) -> bool {
        use RequestBody as Q;
        match self {
            Self::EnrollChallenge { .. } => matches!(request, Q::EnrollChallenge),
            Self::Enrolled { .. } => matches!(request, Q::Enroll(_)),
            Self::PreKeyCount(_) => matches!(request, Q::UploadPreKeys(_) | Q::GetPreKeyCount),
            Self::Bundles(_) => matches!(request, Q::FetchBundle { .. }),
            Self::Sent { .. } => matches!(request, Q::Send { .. } | Q::SendGroup { .. }),
            Self::Group(_) => matches!(
                request,
                Q::GroupCreate { .. }
                    | Q::GroupAddMembers { .. }
                    | Q::GroupRemoveMembers { .. }
                    | Q::GroupGet { .. }
            ),
            Self::GroupLeft => matches!(request, Q::GroupLeave { .. }),
            Self::Groups(_) => matches!(request, Q::GroupList),
            Self::BlobCreated { .. } => matches!(request, Q::BlobCreate { .. }),
            Self::BlobStatus(_) => {
                matches!(request, Q::BlobUpload { .. } | Q::BlobStatus { .. })
            }
            Self::BlobChunk { .. } => matches!(request, Q::BlobDownload { .. }),
            Self::Certificate { .. } => matches!(request, Q::RenewCertificate(_)),
            Self::Revoked { .. } => matches!(request, Q::RevokeCertificate { .. }),
            Self::WhoAmI { .. } => matches!(request, Q::WhoAmI),
            Self::Devices(_) => matches!(request, Q::ListDevices),
        }
    }
}

/// Something the server pushes into the device's mailbox; the client answers with
/// [`ClientFrame::Ack`] once it has handled it durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Server-assigned, non-zero.
    pub id: u64,
    pub item: DeliveryItem,
}

/// The content of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryItem {
    Envelope(Envelope),
    Receipt(DeliveryReceipt),
}

/// Server-pushed information that needs no acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A group's membership changed: drop its sender keys and distribute new ones.
    MembershipChanged { group_id: GroupId, revision: u64 },
    /// The device's prekey stock is low (or its last-resort key was used): upload more.
    PreKeysLow(PreKeyCount),
    /// The device's certificate expires at `not_after_ms`: renew it.
    CertificateExpiring { not_after_ms: u64 },
    /// Every delivery queued when the connection opened has been pushed.
    MailboxDrained,
}
