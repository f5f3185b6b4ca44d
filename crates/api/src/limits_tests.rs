//! Every limit of `limits.rs` at `N` (encodes and decodes) and `N + 1` (refused by the
//! encoder, and by the decoder when a peer sends it anyway), and the frames with every field at
//! its limit fit one Noise message.

use prost::Message;

use crate::codec::{client_frame_to_proto, server_frame_to_proto};
use crate::limits::*;
use crate::*;

fn ec(tag: u8) -> EcPublicKey {
    let mut key = [tag; 33];
    key[0] = 0x05;
    key
}

fn kyber(id: u32) -> KyberPreKey {
    let mut bytes = vec![id as u8; len::KYBER_PUBLIC_KEY];
    bytes[0] = 0x08;
    KyberPreKey {
        id,
        public_key: KyberPublicKey::from_slice(&bytes).expect("1 569 bytes"),
        signature: [7; 64],
    }
}

fn signed() -> SignedPreKey {
    SignedPreKey {
        id: u32::MAX,
        public_key: ec(1),
        signature: [9; 64],
    }
}

fn one_time(id: u32) -> OneTimePreKey {
    OneTimePreKey {
        id,
        public_key: ec(2),
    }
}

fn address_of_len(n: usize) -> String {
    let domain = "@example.org";
    format!("{}{domain}", "a".repeat(n - domain.len()))
}

fn request(body: RequestBody) -> ClientFrame {
    ClientFrame::Request(Request { id: u64::MAX, body })
}

fn response(body: ResponseBody) -> ServerFrame {
    ServerFrame::Response(Response {
        id: u64::MAX,
        result: Ok(body),
    })
}

/// Accepted both ways, and returns its encoded length.
#[track_caller]
fn client_ok(frame: &ClientFrame) -> usize {
    let bytes = frame.encode().expect("a frame at the limit encodes");
    assert_eq!(ClientFrame::decode(&bytes).as_ref(), Ok(frame));
    bytes.len()
}

#[track_caller]
fn server_ok(frame: &ServerFrame) -> usize {
    let bytes = frame.encode().expect("a frame at the limit encodes");
    assert_eq!(ServerFrame::decode(&bytes).as_ref(), Ok(frame));
    bytes.len()
}

/// Refused by the encoder, and by the decoder when the bytes are produced without the check.
#[track_caller]
fn client_refused(frame: &ClientFrame) -> FieldError {
    let Err(EncodeError::Field(encode_error)) = frame.encode() else {
        panic!("the encoder accepted a frame over a limit")
    };
    let bytes = client_frame_to_proto(frame).encode_to_vec();
    match ClientFrame::decode(&bytes) {
        Err(DecodeError::Field(decode_error)) => assert_eq!(decode_error, encode_error),
        other => panic!("the decoder answered {other:?}"),
    }
    encode_error
}

#[track_caller]
fn server_refused(frame: &ServerFrame) -> FieldError {
    let Err(EncodeError::Field(encode_error)) = frame.encode() else {
        panic!("the encoder accepted a frame over a limit")
    };
    let bytes = server_frame_to_proto(frame).encode_to_vec();
    match ServerFrame::decode(&bytes) {
        Err(DecodeError::Field(decode_error)) => assert_eq!(decode_error, encode_error),
        other => panic!("the decoder answered {other:?}"),
    }
    encode_error
}

fn upload(one_time_count: usize, kyber_count: usize) -> PreKeyUpload {
    PreKeyUpload {
        signed_pre_key: Some(signed()),
        one_time_pre_keys: (0..one_time_count as u32)
            .map(|i| one_time(u32::MAX - i))
            .collect(),
        kyber_pre_keys: (0..kyber_count as u32)
            .map(|i| kyber(u32::MAX - i))
            .collect(),
        kyber_last_resort: Some(kyber(u32::MAX)),
    }
}

fn enroll(
    address: String,
    code: String,
    registration_id: u32,
    pre_keys: PreKeyUpload,
) -> ClientFrame {
    request(RequestBody::Enroll(Box::new(EnrollRequest {
        address,
        enrollment_code: code,
        registration_id,
        device_noise_key: [3; 32],
        identity_key: ec(4),
        challenge: [5; 32],
        proof: [6; 64],
        pre_keys,
    })))
}

fn envelope(device_id: u32, body_len: usize) -> OutgoingEnvelope {
    OutgoingEnvelope {
        device_id,
        registration_id: MAX_REGISTRATION_ID,
        ciphertext_type: CiphertextType::PreKey,
        body: vec![0xAB; body_len],
        client_message_id: [device_id as u8; 16],
    }
}

fn send(envelopes: Vec<OutgoingEnvelope>) -> ClientFrame {
    request(RequestBody::Send {
        recipient: address_of_len(MAX_ADDRESS_LEN),
        envelopes,
    })
}

#[test]
fn frame_payload_limit() {
    // Two envelopes whose second body is tuned so the frame is exactly the limit.
    let mut second = MAX_MESSAGE_BODY_LEN;
    let exact = loop {
        let frame = send(vec![envelope(1, 1000), envelope(2, second)]);
        let len = client_frame_to_proto(&frame).encoded_len();
        if len == MAX_FRAME_PAYLOAD_LEN {
            break frame;
        }
        second = second
            .checked_sub(len - MAX_FRAME_PAYLOAD_LEN)
            .expect("search converges");
    };
    assert_eq!(client_ok(&exact), MAX_FRAME_PAYLOAD_LEN);

    let over = send(vec![envelope(1, 1001), envelope(2, second)]);
    assert_eq!(
        over.encode(),
        Err(EncodeError::FrameTooLarge {
            len: MAX_FRAME_PAYLOAD_LEN + 1,
            max: MAX_FRAME_PAYLOAD_LEN
        })
    );
    let bytes = client_frame_to_proto(&over).encode_to_vec();
    assert_eq!(
        ClientFrame::decode(&bytes),
        Err(DecodeError::FrameTooLarge {
            len: MAX_FRAME_PAYLOAD_LEN + 1,
            max: MAX_FRAME_PAYLOAD_LEN
        })
    );
    assert!(matches!(
        ServerFrame::decode(&bytes),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn the_frame_limit_is_the_noise_transport_plaintext() {
    assert_eq!(MAX_FRAME_PAYLOAD_LEN, 65_535 - 16);
}

#[test]
fn key_lengths_match_the_protocol_crate() {
    assert_eq!(
        len::EC_PUBLIC_KEY,
        confianza_protocol::keys::PUBLIC_KEY_LENGTH
    );
    assert_eq!(
        len::KYBER_PUBLIC_KEY,
        confianza_protocol::kem::PUBLIC_KEY_LENGTH
    );
    assert_eq!(
        len::CLIENT_MESSAGE_ID + len::GROUP_ID,
        32,
        "ids are 128-bit random values"
    );
}

#[test]
fn blob_size_limit_holds_the_largest_attachment() {
    let largest = confianza_protocol::attachment::MAX_ATTACHMENT_BLOB_LEN;
    assert!(largest <= MAX_BLOB_SIZE);
    assert!(MAX_BLOB_SIZE - largest < 64 * 1024);
    client_ok(&request(RequestBody::BlobCreate {
        size: MAX_BLOB_SIZE,
    }));
    assert_eq!(
        client_refused(&request(RequestBody::BlobCreate {
            size: MAX_BLOB_SIZE + 1
        })),
        FieldError::Invalid("blob_create.size")
    );
    client_refused(&request(RequestBody::BlobCreate { size: 0 }));
}

#[test]
fn one_time_prekeys_per_upload() {
    client_ok(&request(RequestBody::UploadPreKeys(upload(
        MAX_ONE_TIME_PREKEYS_PER_UPLOAD,
        0,
    ))));
    let error = client_refused(&request(RequestBody::UploadPreKeys(upload(
        MAX_ONE_TIME_PREKEYS_PER_UPLOAD + 1,
        0,
    ))));
    assert!(matches!(error, FieldError::TooMany { count: 101, .. }));
}

#[test]
fn kyber_prekeys_per_upload() {
    client_ok(&request(RequestBody::UploadPreKeys(upload(
        0,
        MAX_KYBER_PREKEYS_PER_UPLOAD,
    ))));
    let error = client_refused(&request(RequestBody::UploadPreKeys(upload(
        0,
        MAX_KYBER_PREKEYS_PER_UPLOAD + 1,
    ))));
    assert!(matches!(error, FieldError::TooMany { count: 33, .. }));
}

#[test]
fn the_largest_enrollment_fits_a_frame() {
    let frame = enroll(
        address_of_len(MAX_ADDRESS_LEN),
        "c".repeat(MAX_ENROLLMENT_CODE_LEN),
        MAX_REGISTRATION_ID,
        upload(
            MAX_ONE_TIME_PREKEYS_PER_UPLOAD,
            MAX_KYBER_PREKEYS_PER_UPLOAD,
        ),
    );
    let len = client_ok(&frame);
    assert!(len <= MAX_FRAME_PAYLOAD_LEN, "{len}");
    // The renewal carries the same keys and less.
    let renew = request(RequestBody::RenewCertificate(Box::new(
        RenewCertificateRequest {
            identity_key: ec(4),
            challenge: [5; 32],
            proof: [6; 64],
            pre_keys: upload(
                MAX_ONE_TIME_PREKEYS_PER_UPLOAD,
                MAX_KYBER_PREKEYS_PER_UPLOAD,
            ),
        },
    )));
    assert!(client_ok(&renew) < len);
}

#[test]
fn enrollment_requires_a_signed_prekey_and_a_last_resort_key() {
    let mut keys = upload(1, 1);
    keys.signed_pre_key = None;
    let frame = enroll(address_of_len(20), "code".into(), 1, keys);
    assert_eq!(
        client_refused(&frame),
        FieldError::Missing("signed_pre_key")
    );
    let mut keys = upload(1, 1);
    keys.kyber_last_resort = None;
    let frame = enroll(address_of_len(20), "code".into(), 1, keys);
    assert_eq!(
        client_refused(&frame),
        FieldError::Missing("kyber_last_resort")
    );
}

#[test]
fn address_length() {
    let fetch = |address| {
        request(RequestBody::FetchBundle {
            address,
            device: DeviceSelector::All,
        })
    };
    client_ok(&fetch(address_of_len(MAX_ADDRESS_LEN)));
    assert!(matches!(
        client_refused(&fetch(address_of_len(MAX_ADDRESS_LEN + 1))),
        FieldError::TooLong { len: 129, .. }
    ));
    assert_eq!(
        client_refused(&fetch(String::new())),
        FieldError::Missing("fetch_bundle.address")
    );
    assert_eq!(
        client_refused(&fetch("a b@example.org".into())),
        FieldError::Invalid("fetch_bundle.address")
    );
    assert_eq!(
        client_refused(&fetch("a\u{7}@example.org".into())),
        FieldError::Invalid("fetch_bundle.address")
    );
    // Beyond printable ASCII: other letters pass, other spaces and controls do not.
    client_ok(&fetch("ñandú@example.org".into()));
    for refused in [
        "a\u{7f}@example.org",
        "a\u{a0}b@example.org",
        "a\u{2003}@example.org",
        "a\u{85}@example.org",
    ] {
        assert_eq!(
            client_refused(&fetch(refused.into())),
            FieldError::Invalid("fetch_bundle.address"),
            "{refused:?}"
        );
    }
}

#[test]
fn enrollment_code_length() {
    let frame = |code: String| enroll(address_of_len(20), code, 1, upload(0, 0));
    client_ok(&frame("c".repeat(MAX_ENROLLMENT_CODE_LEN)));
    assert!(matches!(
        client_refused(&frame("c".repeat(MAX_ENROLLMENT_CODE_LEN + 1))),
        FieldError::TooLong { len: 65, .. }
    ));
    // Empty asks for open registration; control characters are refused.
    client_ok(&frame(String::new()));
    client_refused(&frame("ab\ncd".into()));
}

#[test]
fn registration_id_range() {
    let frame = |id| enroll(address_of_len(20), "code".into(), id, upload(0, 0));
    client_ok(&frame(MIN_REGISTRATION_ID));
    client_ok(&frame(MAX_REGISTRATION_ID));
    client_refused(&frame(MIN_REGISTRATION_ID - 1));
    assert_eq!(
        client_refused(&frame(MAX_REGISTRATION_ID + 1)),
        FieldError::Invalid("enroll.registration_id")
    );
}

fn bundle(device_id: u32, cert_len: usize, ocsp_len: usize) -> PreKeyBundle {
    PreKeyBundle {
        device_id,
        registration_id: MAX_REGISTRATION_ID,
        identity_key: ec(4),
        identity_certificate: vec![0x30; cert_len],
        ocsp_response: Some(vec![0x30; ocsp_len]),
        signed_pre_key: signed(),
        one_time_pre_key: Some(one_time(u32::MAX)),
        kyber_pre_key: kyber(u32::MAX),
        kyber_is_last_resort: true,
    }
}

fn bundles(count: usize, cert_len: usize, ocsp_len: usize) -> ServerFrame {
    response(ResponseBody::Bundles(
        (1..=count as u32)
            .map(|d| bundle(d, cert_len, ocsp_len))
            .collect(),
    ))
}

#[test]
fn bundles_per_response_and_the_largest_fits_a_frame() {
    let len = server_ok(&bundles(
        MAX_DEVICES_PER_ACCOUNT,
        MAX_CERTIFICATE_LEN,
        MAX_OCSP_RESPONSE_LEN,
    ));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN, "{len}");
    assert!(matches!(
        server_refused(&bundles(MAX_DEVICES_PER_ACCOUNT + 1, 10, 10)),
        FieldError::TooMany { count: 7, .. }
    ));
}

#[test]
fn certificate_and_ocsp_lengths() {
    server_ok(&bundles(1, MAX_CERTIFICATE_LEN, MAX_OCSP_RESPONSE_LEN));
    assert_eq!(
        server_refused(&bundles(1, MAX_CERTIFICATE_LEN + 1, 10)),
        FieldError::TooLong {
            field: "bundle.identity_certificate",
            len: MAX_CERTIFICATE_LEN + 1,
            max: MAX_CERTIFICATE_LEN
        }
    );
    assert_eq!(
        server_refused(&bundles(1, 10, MAX_OCSP_RESPONSE_LEN + 1)),
        FieldError::TooLong {
            field: "bundle.ocsp_response",
            len: MAX_OCSP_RESPONSE_LEN + 1,
            max: MAX_OCSP_RESPONSE_LEN
        }
    );
}

#[test]
fn ca_chain_length() {
    let enrolled = |chain_len: usize, cert_len: usize| {
        response(ResponseBody::Enrolled {
            device_id: 1,
            identity_certificate: vec![0x30; cert_len],
            ca_chain: vec![vec![0x30; cert_len]; chain_len],
        })
    };
    let len = server_ok(&enrolled(MAX_CA_CHAIN_LEN, MAX_CERTIFICATE_LEN));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN);
    assert!(matches!(
        server_refused(&enrolled(MAX_CA_CHAIN_LEN + 1, 100)),
        FieldError::TooMany { count: 5, .. }
    ));
    assert_eq!(
        server_refused(&enrolled(0, 100)),
        FieldError::Missing("enrolled.ca_chain")
    );
}

fn delivery(sender: String, body_len: usize) -> ServerFrame {
    ServerFrame::Delivery(Delivery {
        id: u64::MAX,
        item: DeliveryItem::Envelope(Envelope {
            sender,
            sender_device_id: u32::MAX,
            ciphertext_type: CiphertextType::SenderKey,
            body: vec![0xCD; body_len],
            client_message_id: [1; 16],
            server_timestamp_ms: u64::MAX,
            group_id: Some(GroupId([2; 16])),
        }),
    })
}

#[test]
fn message_body_length() {
    let len = server_ok(&delivery(
        address_of_len(MAX_ADDRESS_LEN),
        MAX_MESSAGE_BODY_LEN,
    ));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN, "{len}");
    assert!(matches!(
        server_refused(&delivery(address_of_len(20), MAX_MESSAGE_BODY_LEN + 1)),
        FieldError::TooLong {
            field: "envelope.body",
            ..
        }
    ));
    // The largest single-device send fits too.
    client_ok(&send(vec![envelope(1, MAX_MESSAGE_BODY_LEN)]));
    client_refused(&send(vec![envelope(1, MAX_MESSAGE_BODY_LEN + 1)]));
    let group = |len| {
        request(RequestBody::SendGroup {
            group_id: GroupId([1; 16]),
            revision: u64::MAX,
            body: vec![1; len],
            client_message_id: [2; 16],
        })
    };
    client_ok(&group(MAX_MESSAGE_BODY_LEN));
    client_refused(&group(MAX_MESSAGE_BODY_LEN + 1));
    client_refused(&group(0));
}

#[test]
fn envelopes_per_send() {
    let envelopes = |n: u32| (1..=n).map(|d| envelope(d, 100)).collect();
    client_ok(&send(envelopes(MAX_ENVELOPES_PER_SEND as u32)));
    assert!(matches!(
        client_refused(&send(envelopes(MAX_ENVELOPES_PER_SEND as u32 + 1))),
        FieldError::TooMany { count: 7, .. }
    ));
    assert_eq!(
        client_refused(&send(vec![])),
        FieldError::Missing("send.envelopes")
    );
    // One envelope per device.
    assert_eq!(
        client_refused(&send(vec![envelope(1, 10), envelope(1, 10)])),
        FieldError::Invalid("envelope.device_id")
    );
    // Sender-key messages go to SendGroup.
    let mut e = envelope(1, 10);
    e.ciphertext_type = CiphertextType::SenderKey;
    client_refused(&send(vec![e]));
}

#[test]
fn receipt_ids() {
    let receipt = |n: usize| {
        ServerFrame::Delivery(Delivery {
            id: 1,
            item: DeliveryItem::Receipt(DeliveryReceipt {
                recipient: address_of_len(MAX_ADDRESS_LEN),
                recipient_device_id: 1,
                client_message_ids: vec![[3; 16]; n],
                server_timestamp_ms: 5,
            }),
        })
    };
    server_ok(&receipt(MAX_RECEIPT_IDS));
    server_refused(&receipt(MAX_RECEIPT_IDS + 1));
    server_refused(&receipt(0));
}

fn group(members: usize, name_len: usize) -> ServerFrame {
    response(ResponseBody::Group(Group {
        id: GroupId([9; 16]),
        name: "n".repeat(name_len),
        revision: u64::MAX,
        members: (0..members)
            .map(|i| GroupMember {
                address: address_of_len(MAX_ADDRESS_LEN - 4) + &format!("{i:04}"),
                admin: i == 0,
            })
            .collect(),
    }))
}

#[test]
fn group_members_and_the_largest_group_fits_a_frame() {
    let len = server_ok(&group(MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN, "{len}");
    server_refused(&group(MAX_GROUP_MEMBERS + 1, 10));
    server_refused(&group(0, 10));

    let members = |n: usize| (0..n).map(|i| format!("m{i}@example.org")).collect();
    // The creator is the last member.
    client_ok(&request(RequestBody::GroupCreate {
        name: "team".into(),
        members: members(MAX_GROUP_MEMBERS - 1),
    }));
    client_refused(&request(RequestBody::GroupCreate {
        name: "team".into(),
        members: members(MAX_GROUP_MEMBERS),
    }));
    client_ok(&request(RequestBody::GroupAddMembers {
        group_id: GroupId([1; 16]),
        members: members(MAX_GROUP_MEMBERS),
    }));
    client_refused(&request(RequestBody::GroupAddMembers {
        group_id: GroupId([1; 16]),
        members: members(MAX_GROUP_MEMBERS + 1),
    }));
    client_refused(&request(RequestBody::GroupRemoveMembers {
        group_id: GroupId([1; 16]),
        members: members(0),
    }));
}

#[test]
fn group_name_length() {
    server_ok(&group(1, MAX_GROUP_NAME_LEN));
    assert!(matches!(
        server_refused(&group(1, MAX_GROUP_NAME_LEN + 1)),
        FieldError::TooLong {
            field: "group.name",
            ..
        }
    ));
    client_ok(&request(RequestBody::GroupCreate {
        name: "n".repeat(MAX_GROUP_NAME_LEN),
        members: vec![],
    }));
    client_refused(&request(RequestBody::GroupCreate {
        name: "n".repeat(MAX_GROUP_NAME_LEN + 1),
        members: vec![],
    }));
}

#[test]
fn groups_per_list_and_the_largest_list_fits_a_frame() {
    let list = |n: usize| {
        response(ResponseBody::Groups(
            (0..n)
                .map(|i| GroupSummary {
                    id: GroupId([i as u8; 16]),
                    name: "n".repeat(MAX_GROUP_NAME_LEN),
                    revision: u64::MAX,
                    member_count: MAX_GROUP_MEMBERS as u32,
                })
                .collect(),
        ))
    };
    let len = server_ok(&list(MAX_GROUPS_PER_LIST));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN, "{len}");
    server_refused(&list(MAX_GROUPS_PER_LIST + 1));
}

#[test]
fn blob_chunk_length() {
    let upload = |n| {
        request(RequestBody::BlobUpload {
            blob_id: BlobId([1; 16]),
            offset: u64::MAX,
            chunk: vec![1; n],
        })
    };
    client_ok(&upload(MAX_BLOB_CHUNK_LEN));
    client_refused(&upload(MAX_BLOB_CHUNK_LEN + 1));
    client_refused(&upload(0));

    let download = |length| {
        request(RequestBody::BlobDownload {
            blob_id: BlobId([1; 16]),
            offset: 0,
            length,
        })
    };
    client_ok(&download(MAX_BLOB_CHUNK_LEN as u32));
    client_refused(&download(MAX_BLOB_CHUNK_LEN as u32 + 1));
    client_refused(&download(0));

    let chunk = |n, offset, size| {
        response(ResponseBody::BlobChunk {
            blob_id: BlobId([1; 16]),
            offset,
            size,
            data: vec![2; n],
        })
    };
    server_ok(&chunk(MAX_BLOB_CHUNK_LEN, 0, MAX_BLOB_SIZE));
    server_refused(&chunk(MAX_BLOB_CHUNK_LEN + 1, 0, MAX_BLOB_SIZE));
    // The chunk ends at the end of the blob, and not one byte after it.
    server_ok(&chunk(10, MAX_BLOB_SIZE - 10, MAX_BLOB_SIZE));
    server_refused(&chunk(10, MAX_BLOB_SIZE - 9, MAX_BLOB_SIZE));
    server_refused(&chunk(10, u64::MAX, MAX_BLOB_SIZE));

    let created = |chunk_size| {
        response(ResponseBody::BlobCreated {
            blob_id: BlobId([1; 16]),
            chunk_size,
            expires_at_ms: 1,
        })
    };
    server_ok(&created(MAX_BLOB_CHUNK_LEN as u32));
    server_refused(&created(MAX_BLOB_CHUNK_LEN as u32 + 1));
}

#[test]
fn blob_status_is_consistent() {
    let status = |size, received, complete| {
        response(ResponseBody::BlobStatus(BlobStatus {
            blob_id: BlobId([1; 16]),
            size,
            received,
            complete,
            expires_at_ms: 1,
        }))
    };
    server_ok(&status(100, 0, false));
    server_ok(&status(100, 100, true));
    server_refused(&status(100, 101, false));
    server_refused(&status(100, 100, false));
    server_refused(&status(100, 99, true));
    server_refused(&status(MAX_BLOB_SIZE + 1, 0, false));
}

#[test]
fn error_message_length() {
    let error = |message: String| {
        ServerFrame::Response(Response {
            id: 1,
            result: Err(ApiError::new(ErrorCode::NotFound, message)),
        })
    };
    server_ok(&error("e".repeat(MAX_ERROR_MESSAGE_LEN)));
    server_ok(&error(String::new()));
    assert!(matches!(
        server_refused(&error("e".repeat(MAX_ERROR_MESSAGE_LEN + 1))),
        FieldError::TooLong {
            field: "error.message",
            ..
        }
    ));
    server_refused(&error("line\nbreak".into()));
}

#[test]
fn mismatched_devices_lists() {
    let error = |n: u32| {
        let mut e = ApiError::new(ErrorCode::MismatchedDevices, "refresh your device list");
        e.mismatched_devices = Some(MismatchedDevices {
            missing: (1..=n).collect(),
            extra: vec![7],
            stale: vec![],
        });
        ServerFrame::Response(Response {
            id: 1,
            result: Err(e),
        })
    };
    server_ok(&error(MAX_DEVICES_PER_ACCOUNT as u32));
    server_refused(&error(MAX_DEVICES_PER_ACCOUNT as u32 + 1));
    // The detail goes with its code, and only with it.
    let mut bare = ApiError::new(ErrorCode::MismatchedDevices, "");
    server_refused(&ServerFrame::Response(Response {
        id: 1,
        result: Err(bare.clone()),
    }));
    bare.code = ErrorCode::Conflict;
    bare.mismatched_devices = Some(MismatchedDevices::default());
    server_refused(&ServerFrame::Response(Response {
        id: 1,
        result: Err(bare),
    }));
}

#[test]
fn devices_per_account() {
    let devices = |n: u32| {
        response(ResponseBody::Devices(
            (1..=n)
                .map(|d| DeviceInfo {
                    device_id: d,
                    registration_id: 1,
                    created_at_ms: 1,
                    last_seen_ms: 2,
                })
                .collect(),
        ))
    };
    server_ok(&devices(MAX_DEVICES_PER_ACCOUNT as u32));
    server_refused(&devices(MAX_DEVICES_PER_ACCOUNT as u32 + 1));
    server_refused(&devices(0));
}

#[test]
fn acks_per_frame() {
    let ack = |n: u64| ClientFrame::Ack {
        delivery_ids: (1..=n).map(|i| u64::MAX - i).collect(),
    };
    let len = client_ok(&ack(MAX_ACKS_PER_FRAME as u64));
    assert!(len <= MAX_FRAME_PAYLOAD_LEN);
    assert!(matches!(
        client_refused(&ack(MAX_ACKS_PER_FRAME as u64 + 1)),
        FieldError::TooMany { count: 257, .. }
    ));
    client_refused(&ack(0));
}

#[test]
fn debug_output_leaves_the_enrollment_code_out() {
    let frame = enroll(address_of_len(20), "SECRET-CODE".into(), 1, upload(0, 0));
    let text = format!("{frame:?}");
    assert!(!text.contains("SECRET-CODE"));
    assert!(text.contains("<redacted>"));
}
