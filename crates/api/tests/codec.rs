//! Property tests of the codec: every valid frame round-trips, arbitrary and mutated bytes never
//! panic, and whatever decodes re-encodes to the same frame.

use confianza_api::limits::*;
use confianza_api::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;

fn array<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    vec(any::<u8>(), N).prop_map(|v| v.try_into().expect("N bytes"))
}

fn address() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}@[a-z]{1,20}\\.(org|net)"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-zé0-9 ]{1,60}"
}

fn device_id() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn registration_id() -> impl Strategy<Value = u32> {
    MIN_REGISTRATION_ID..=MAX_REGISTRATION_ID
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..600)
}

fn der() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..300)
}

fn signed_pre_key() -> impl Strategy<Value = SignedPreKey> {
    (any::<u32>(), array::<33>(), array::<64>()).prop_map(|(id, public_key, signature)| {
        SignedPreKey {
            id,
            public_key,
            signature,
        }
    })
}

fn one_time_pre_key() -> impl Strategy<Value = OneTimePreKey> {
    (any::<u32>(), array::<33>()).prop_map(|(id, public_key)| OneTimePreKey { id, public_key })
}

fn kyber_pre_key() -> impl Strategy<Value = KyberPreKey> {
    (
        any::<u32>(),
        vec(any::<u8>(), len::KYBER_PUBLIC_KEY),
        array::<64>(),
    )
        .prop_map(|(id, key, signature)| KyberPreKey {
            id,
            public_key: KyberPublicKey::from_slice(&key).expect("1 569 bytes"),
            signature,
        })
}

fn upload(required: bool) -> impl Strategy<Value = PreKeyUpload> {
    let signed = if required {
        signed_pre_key().prop_map(Some).boxed()
    } else {
        proptest::option::of(signed_pre_key()).boxed()
    };
    let last_resort = if required {
        kyber_pre_key().prop_map(Some).boxed()
    } else {
        proptest::option::of(kyber_pre_key()).boxed()
    };
    (
        signed,
        vec(one_time_pre_key(), 0..8),
        vec(kyber_pre_key(), 0..3),
        last_resort,
    )
        .prop_map(
            |(signed_pre_key, one_time_pre_keys, kyber_pre_keys, kyber_last_resort)| PreKeyUpload {
                signed_pre_key,
                one_time_pre_keys,
                kyber_pre_keys,
                kyber_last_resort,
            },
        )
}

fn group_id() -> impl Strategy<Value = GroupId> {
    any::<[u8; 16]>().prop_map(GroupId)
}

fn blob_id() -> impl Strategy<Value = BlobId> {
    any::<[u8; 16]>().prop_map(BlobId)
}

fn members(min: usize) -> impl Strategy<Value = Vec<String>> {
    vec(address(), min..10)
}

fn reason() -> impl Strategy<Value = RevocationReason> {
    prop_oneof![
        Just(RevocationReason::Unspecified),
        Just(RevocationReason::KeyCompromise),
        Just(RevocationReason::AffiliationChanged),
        Just(RevocationReason::Superseded),
        Just(RevocationReason::CessationOfOperation),
    ]
}

fn pairwise_type() -> impl Strategy<Value = CiphertextType> {
    prop_oneof![Just(CiphertextType::Whisper), Just(CiphertextType::PreKey)]
}

fn envelopes() -> impl Strategy<Value = Vec<OutgoingEnvelope>> {
    proptest::sample::subsequence((1..=20u32).collect::<Vec<_>>(), 1..=MAX_ENVELOPES_PER_SEND)
        .prop_flat_map(|devices| {
            let n = devices.len();
            (
                Just(devices),
                vec(
                    (
                        registration_id(),
                        pairwise_type(),
                        body(),
                        any::<[u8; 16]>(),
                    ),
                    n,
                ),
            )
        })
        .prop_map(|(devices, rest)| {
            devices
                .into_iter()
                .zip(rest)
                .map(
                    |(device_id, (registration_id, ciphertext_type, body, client_message_id))| {
                        OutgoingEnvelope {
                            device_id,
                            registration_id,
                            ciphertext_type,
                            body,
                            client_message_id,
                        }
                    },
                )
                .collect()
        })
}

fn request_body() -> impl Strategy<Value = RequestBody> {
    Union::new(vec![
        Just(RequestBody::EnrollChallenge).boxed(),
        (
            address(),
            "[A-Z0-9-]{0,64}",
            registration_id(),
            any::<[u8; 32]>(),
            array::<33>(),
            any::<[u8; 32]>(),
            array::<64>(),
            upload(true),
        )
            .prop_map(
                |(
                    address,
                    enrollment_code,
                    registration_id,
                    device_noise_key,
                    identity_key,
                    challenge,
                    proof,
                    pre_keys,
                )| {
                    RequestBody::Enroll(Box::new(EnrollRequest {
                        address,
                        enrollment_code,
                        registration_id,
                        device_noise_key,
                        identity_key,
                        challenge,
                        proof,
                        pre_keys,
                    }))
                },
            )
            .boxed(),
        upload(false).prop_map(RequestBody::UploadPreKeys).boxed(),
        Just(RequestBody::GetPreKeyCount).boxed(),
        (
            address(),
            prop_oneof![
                Just(DeviceSelector::All),
                device_id().prop_map(DeviceSelector::One)
            ],
        )
            .prop_map(|(address, device)| RequestBody::FetchBundle { address, device })
            .boxed(),
        (address(), envelopes())
            .prop_map(|(recipient, envelopes)| RequestBody::Send {
                recipient,
                envelopes,
            })
            .boxed(),
        (group_id(), any::<u64>(), body(), any::<[u8; 16]>())
            .prop_map(
                |(group_id, revision, body, client_message_id)| RequestBody::SendGroup {
                    group_id,
                    revision,
                    body,
                    client_message_id,
                },
            )
            .boxed(),
        (name(), members(0))
            .prop_map(|(name, members)| RequestBody::GroupCreate { name, members })
            .boxed(),
        (group_id(), members(1))
            .prop_map(|(group_id, members)| RequestBody::GroupAddMembers { group_id, members })
            .boxed(),
        (group_id(), members(1))
            .prop_map(|(group_id, members)| RequestBody::GroupRemoveMembers { group_id, members })
            .boxed(),
        group_id()
            .prop_map(|group_id| RequestBody::GroupLeave { group_id })
            .boxed(),
        Just(RequestBody::GroupList).boxed(),
        group_id()
            .prop_map(|group_id| RequestBody::GroupGet { group_id })
            .boxed(),
        (1..=MAX_BLOB_SIZE)
            .prop_map(|size| RequestBody::BlobCreate { size })
            .boxed(),
        (blob_id(), any::<u64>(), vec(any::<u8>(), 1..2000))
            .prop_map(|(blob_id, offset, chunk)| RequestBody::BlobUpload {
                blob_id,
                offset,
                chunk,
            })
            .boxed(),
        blob_id()
            .prop_map(|blob_id| RequestBody::BlobStatus { blob_id })
            .boxed(),
        (blob_id(), any::<u64>(), 1..=MAX_BLOB_CHUNK_LEN as u32)
            .prop_map(|(blob_id, offset, length)| RequestBody::BlobDownload {
                blob_id,
                offset,
                length,
            })
            .boxed(),
        (
            array::<33>(),
            any::<[u8; 32]>(),
            array::<64>(),
            upload(false),
        )
            .prop_map(|(identity_key, challenge, proof, pre_keys)| {
                RequestBody::RenewCertificate(Box::new(RenewCertificateRequest {
                    identity_key,
                    challenge,
                    proof,
                    pre_keys,
                }))
            })
            .boxed(),
        reason()
            .prop_map(|reason| RequestBody::RevokeCertificate { reason })
            .boxed(),
        Just(RequestBody::WhoAmI).boxed(),
        Just(RequestBody::ListDevices).boxed(),
    ])
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        4 => (any::<u64>(), request_body())
            .prop_map(|(id, body)| ClientFrame::Request(Request { id, body })),
        1 => vec(1..=u64::MAX, 1..=MAX_ACKS_PER_FRAME)
            .prop_map(|delivery_ids| ClientFrame::Ack { delivery_ids }),
    ]
}

fn pre_key_count() -> impl Strategy<Value = PreKeyCount> {
    (any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
        |(one_time, kyber_one_time, kyber_last_resort_used)| PreKeyCount {
            one_time,
            kyber_one_time,
            kyber_last_resort_used,
        },
    )
}

fn bundle() -> impl Strategy<Value = PreKeyBundle> {
    (
        (device_id(), registration_id(), array::<33>(), der()),
        proptest::option::of(der()),
        signed_pre_key(),
        proptest::option::of(one_time_pre_key()),
        kyber_pre_key(),
        any::<bool>(),
    )
        .prop_map(
            |(
                (device_id, registration_id, identity_key, identity_certificate),
                ocsp_response,
                signed_pre_key,
                one_time_pre_key,
                kyber_pre_key,
                kyber_is_last_resort,
            )| PreKeyBundle {
                device_id,
                registration_id,
                identity_key,
                identity_certificate,
                ocsp_response,
                signed_pre_key,
                one_time_pre_key,
                kyber_pre_key,
                kyber_is_last_resort,
            },
        )
}

fn group() -> impl Strategy<Value = Group> {
    (
        group_id(),
        name(),
        any::<u64>(),
        vec((address(), any::<bool>()), 1..10),
    )
        .prop_map(|(id, name, revision, members)| Group {
            id,
            name,
            revision,
            members: members
                .into_iter()
                .map(|(address, admin)| GroupMember { address, admin })
                .collect(),
        })
}

fn blob_status() -> impl Strategy<Value = BlobStatus> {
    (blob_id(), 1..=MAX_BLOB_SIZE, any::<u64>(), any::<u64>()).prop_map(
        |(blob_id, size, received, expires_at_ms)| {
            let received = received % (size + 1);
            BlobStatus {
                blob_id,
                size,
                received,
                complete: received == size,
                expires_at_ms,
            }
        },
    )
}

fn response_body() -> impl Strategy<Value = ResponseBody> {
    Union::new(vec![
        (any::<[u8; 32]>(), any::<u64>())
            .prop_map(|(challenge, expires_at_ms)| ResponseBody::EnrollChallenge {
                challenge,
                expires_at_ms,
            })
            .boxed(),
        (device_id(), der(), vec(der(), 1..=MAX_CA_CHAIN_LEN))
            .prop_map(
                |(device_id, identity_certificate, ca_chain)| ResponseBody::Enrolled {
                    device_id,
                    identity_certificate,
                    ca_chain,
                },
            )
            .boxed(),
        pre_key_count().prop_map(ResponseBody::PreKeyCount).boxed(),
        vec(bundle(), 0..3).prop_map(ResponseBody::Bundles).boxed(),
        (any::<u64>(), any::<u32>(), any::<u32>())
            .prop_map(
                |(server_timestamp_ms, accepted, duplicates)| ResponseBody::Sent {
                    server_timestamp_ms,
                    accepted,
                    duplicates,
                },
            )
            .boxed(),
        group().prop_map(ResponseBody::Group).boxed(),
        Just(ResponseBody::GroupLeft).boxed(),
        vec(
            (
                group_id(),
                name(),
                any::<u64>(),
                1..=MAX_GROUP_MEMBERS as u32,
            ),
            0..10,
        )
        .prop_map(|groups| {
            ResponseBody::Groups(
                groups
                    .into_iter()
                    .map(|(id, name, revision, member_count)| GroupSummary {
                        id,
                        name,
                        revision,
                        member_count,
                    })
                    .collect(),
            )
        })
        .boxed(),
        (blob_id(), 1..=MAX_BLOB_CHUNK_LEN as u32, any::<u64>())
            .prop_map(
                |(blob_id, chunk_size, expires_at_ms)| ResponseBody::BlobCreated {
                    blob_id,
                    chunk_size,
                    expires_at_ms,
                },
            )
            .boxed(),
        blob_status().prop_map(ResponseBody::BlobStatus).boxed(),
        (
            blob_id(),
            vec(any::<u8>(), 1..2000),
            2000..=MAX_BLOB_SIZE,
            any::<u64>(),
        )
            .prop_map(|(blob_id, data, size, offset)| ResponseBody::BlobChunk {
                blob_id,
                offset: offset % (size - data.len() as u64 + 1),
                size,
                data,
            })
            .boxed(),
        (der(), vec(der(), 1..=MAX_CA_CHAIN_LEN))
            .prop_map(
                |(identity_certificate, ca_chain)| ResponseBody::Certificate {
                    identity_certificate,
                    ca_chain,
                },
            )
            .boxed(),
        any::<u64>()
            .prop_map(|revoked_at_ms| ResponseBody::Revoked { revoked_at_ms })
            .boxed(),
        (address(), device_id(), any::<u64>())
            .prop_map(
                |(address, device_id, certificate_not_after_ms)| ResponseBody::WhoAmI {
                    address,
                    device_id,
                    certificate_not_after_ms,
                },
            )
            .boxed(),
        vec(
            (device_id(), registration_id(), any::<u64>(), any::<u64>()),
            1..=MAX_DEVICES_PER_ACCOUNT,
        )
        .prop_map(|devices| {
            ResponseBody::Devices(
                devices
                    .into_iter()
                    .map(
                        |(device_id, registration_id, created_at_ms, last_seen_ms)| DeviceInfo {
                            device_id,
                            registration_id,
                            created_at_ms,
                            last_seen_ms,
                        },
                    )
                    .collect(),
            )
        })
        .boxed(),
    ])
}

fn device_ids() -> impl Strategy<Value = Vec<u32>> {
    vec(device_id(), 0..=MAX_DEVICES_PER_ACCOUNT)
}

fn api_error() -> impl Strategy<Value = ApiError> {
    (
        proptest::sample::select(ErrorCode::ALL.to_vec()),
        "[ -~]{0,100}",
        proptest::option::of(1..=u64::MAX),
        (device_ids(), device_ids(), device_ids()),
    )
        .prop_map(|(code, message, retry_after_ms, (missing, extra, stale))| {
            let mismatched_devices =
                (code == ErrorCode::MismatchedDevices).then_some(MismatchedDevices {
                    missing,
                    extra,
                    stale,
                });
            ApiError {
                code,
                message,
                retry_after_ms,
                mismatched_devices,
            }
        })
}

fn delivery_item() -> impl Strategy<Value = DeliveryItem> {
    prop_oneof![
        (
            (
                address(),
                device_id(),
                body(),
                any::<[u8; 16]>(),
                any::<u64>()
            ),
            proptest::option::of(group_id()),
            pairwise_type(),
        )
            .prop_map(
                |(
                    (sender, sender_device_id, body, client_message_id, server_timestamp_ms),
                    group_id,
                    pairwise,
                )| {
                    DeliveryItem::Envelope(Envelope {
                        sender,
                        sender_device_id,
                        ciphertext_type: if group_id.is_some() {
                            CiphertextType::SenderKey
                        } else {
                            pairwise
                        },
                        body,
                        client_message_id,
                        server_timestamp_ms,
                        group_id,
                    })
                },
            ),
        (
            address(),
            device_id(),
            vec(any::<[u8; 16]>(), 1..=MAX_RECEIPT_IDS),
            any::<u64>(),
        )
            .prop_map(
                |(recipient, recipient_device_id, client_message_ids, server_timestamp_ms)| {
                    DeliveryItem::Receipt(DeliveryReceipt {
                        recipient,
                        recipient_device_id,
                        client_message_ids,
                        server_timestamp_ms,
                    })
                },
            ),
    ]
}

fn notice() -> impl Strategy<Value = Notice> {
    prop_oneof![
        (group_id(), any::<u64>())
            .prop_map(|(group_id, revision)| Notice::MembershipChanged { group_id, revision }),
        pre_key_count().prop_map(Notice::PreKeysLow),
        any::<u64>().prop_map(|not_after_ms| Notice::CertificateExpiring { not_after_ms }),
        Just(Notice::MailboxDrained),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        3 => (any::<u64>(), response_body())
            .prop_map(|(id, body)| ServerFrame::Response(Response { id, result: Ok(body) })),
        1 => (any::<u64>(), api_error())
            .prop_map(|(id, e)| ServerFrame::Response(Response { id, result: Err(e) })),
        2 => (1..=u64::MAX, delivery_item())
            .prop_map(|(id, item)| ServerFrame::Delivery(Delivery { id, item })),
        1 => notice().prop_map(ServerFrame::Notice),
    ]
}

/// Whatever decodes must encode again, to bytes that decode to the same frame.
fn client_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = decode_client_frame(bytes) {
        let again = frame
            .encode()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ClientFrame::decode(&again), Ok(frame));
    }
    Ok(())
}

fn server_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = decode_server_frame(bytes) {
        let again = frame
            .encode()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ServerFrame::decode(&again), Ok(frame));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = frame.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(bytes.len() <= MAX_FRAME_PAYLOAD_LEN);
        prop_assert_eq!(ClientFrame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = frame.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(bytes.len() <= MAX_FRAME_PAYLOAD_LEN);
        prop_assert_eq!(ServerFrame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn encoding_into_a_buffer_appends_the_same_bytes(
        frame in server_frame(),
        before in vec(any::<u8>(), 0..8),
    ) {
        let expected = frame.encode();
        let mut buffer = before.clone();
        let appended = frame.encode_into(&mut buffer);
        match expected {
            Ok(bytes) => {
                prop_assert_eq!(appended, Ok(()));
                prop_assert_eq!(&buffer[..before.len()], &before[..]);
                prop_assert_eq!(&buffer[before.len()..], &bytes[..]);
            }
            Err(error) => {
                prop_assert_eq!(appended, Err(error));
                prop_assert_eq!(buffer, before);
            }
        }
    }

    #[test]
    fn responses_answer_their_requests(frame in response_body()) {
        // Every response kind answers at least one request kind: the client can match them.
        let requests = [
            RequestBody::EnrollChallenge, RequestBody::GetPreKeyCount, RequestBody::GroupList,
            RequestBody::WhoAmI, RequestBody::ListDevices,
        ];
        let answers_a_simple_request = requests.iter().any(|r| frame.answers(r));
        let complex = matches!(frame, ResponseBody::Enrolled { .. } | ResponseBody::Bundles(_)
            | ResponseBody::Sent { .. } | ResponseBody::Group(_) | ResponseBody::GroupLeft
            | ResponseBody::BlobCreated { .. } | ResponseBody::BlobStatus(_)
            | ResponseBody::BlobChunk { .. } | ResponseBody::Certificate { .. }
            | ResponseBody::Revoked { .. });
        prop_assert!(answers_a_simple_request != complex);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        client_stable(&bytes)?;
        server_stable(&bytes)?;
    }

    #[test]
    fn mutated_client_frames_never_panic(
        frame in client_frame(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = frame.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (at, value) in flips {
            let i = at.index(bytes.len());
            if let Some(b) = bytes.get_mut(i) { *b ^= value; }
        }
        client_stable(&bytes)?;
        server_stable(&bytes)?;
        bytes.truncate(cut.index(bytes.len() + 1));
        client_stable(&bytes)?;
    }

    #[test]
    fn mutated_server_frames_never_panic(
        frame in server_frame(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = frame.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (at, value) in flips {
            let i = at.index(bytes.len());
            if let Some(b) = bytes.get_mut(i) { *b ^= value; }
        }
        server_stable(&bytes)?;
        client_stable(&bytes)?;
        bytes.truncate(cut.index(bytes.len() + 1));
        server_stable(&bytes)?;
    }
}

#[test]
fn empty_and_oversized_buffers() {
    assert_eq!(decode_client_frame(&[]), Err(DecodeError::UnknownKind));
    assert_eq!(decode_server_frame(&[]), Err(DecodeError::UnknownKind));
    let big = vec![0u8; MAX_FRAME_PAYLOAD_LEN + 1];
    assert!(matches!(
        decode_client_frame(&big),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        decode_server_frame(&big),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn unknown_notices_can_be_told_apart() {
    // ServerFrame { notice: Notice { <field 99>: {} } }
    assert_eq!(
        decode_server_frame(&[0x1a, 0x03, 0x9a, 0x06, 0x00]),
        Err(DecodeError::UnknownNotice)
    );
}

#[test]
fn a_request_with_no_body_is_refused() {
    // ClientFrame { request: Request { request_id: 1 } }: field 1 (len 2) holding field 1 = 1.
    assert_eq!(
        decode_client_frame(&[0x0a, 0x02, 0x08, 0x01]),
        Err(DecodeError::UnknownRequest { request_id: 1 })
    );
    // The same with a body of an unknown kind (field 99, empty): a newer client's request.
    assert_eq!(
        decode_client_frame(&[0x0a, 0x05, 0x08, 0x02, 0x9a, 0x06, 0x00]),
        Err(DecodeError::UnknownRequest { request_id: 2 })
    );
}

#[test]
fn an_ack_needs_a_delivery_id() {
    // ClientFrame { ack: Ack {} }
    assert_eq!(
        decode_client_frame(&[0x12, 0x00]),
        Err(DecodeError::Field(FieldError::Missing("ack.delivery_ids")))
    );
    // ClientFrame { ack: Ack { delivery_ids: [0] } } (packed)
    assert_eq!(
        decode_client_frame(&[0x12, 0x03, 0x0a, 0x01, 0x00]),
        Err(DecodeError::Field(FieldError::Missing("ack.delivery_ids")))
    );
    let ack = ClientFrame::Ack {
        delivery_ids: vec![1, u64::MAX],
    };
    assert_eq!(decode_client_frame(&ack.encode().expect("valid")), Ok(ack));
}

/// `ServerFrame { response: Response { request_id: 1, enroll_challenge: { challenge } } }`,
/// encoded by hand so the challenge can have any length.
fn challenge_response(challenge: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x0a, challenge.len() as u8];
    inner.extend_from_slice(challenge);
    let mut response = vec![0x08, 0x01, (10 << 3) | 2, inner.len() as u8];
    response.extend_from_slice(&inner);
    let mut frame = vec![0x0a, response.len() as u8];
    frame.extend_from_slice(&response);
    frame
}

#[test]
fn wrong_key_lengths_are_refused() {
    let Ok(ServerFrame::Response(ok)) = decode_server_frame(&challenge_response(&[7; 32])) else {
        panic!("32 bytes is a challenge")
    };
    assert_eq!(
        ok.result,
        Ok(ResponseBody::EnrollChallenge {
            challenge: [7; 32],
            expires_at_ms: 0
        })
    );
    for len in [31, 33] {
        assert_eq!(
            decode_server_frame(&challenge_response(&vec![7; len])),
            Err(DecodeError::Field(FieldError::Length {
                field: "enroll_challenge.challenge",
                len,
                expected: 32
            }))
        );
    }
    assert_eq!(
        decode_server_frame(&challenge_response(&[])),
        Err(DecodeError::Field(FieldError::Missing(
            "enroll_challenge.challenge"
        )))
    );
}

#[test]
fn unknown_error_codes_read_as_internal() {
    // ServerFrame { response: Response { request_id: 1, error: Error { code: 999 } } }
    let bytes = [0x0a, 0x07, 0x08, 0x01, 0x12, 0x03, 0x08, 0xe7, 0x07];
    let Ok(ServerFrame::Response(response)) = decode_server_frame(&bytes) else {
        panic!("a response")
    };
    assert_eq!(
        response.result.map_err(|e| e.code),
        Err(ErrorCode::Internal)
    );
    // Code 0 (unspecified) is never sent.
    let bytes = [0x0a, 0x04, 0x08, 0x01, 0x12, 0x00];
    assert_eq!(
        decode_server_frame(&bytes),
        Err(DecodeError::Field(FieldError::Invalid("error.code")))
    );
}

#[test]
fn every_error_code_round_trips() {
    for code in ErrorCode::ALL {
        let mut error = ApiError::new(code, format!("{code}"));
        if code == ErrorCode::MismatchedDevices {
            error.mismatched_devices = Some(MismatchedDevices::default());
        }
        let frame = ServerFrame::Response(Response {
            id: 3,
            result: Err(error),
        });
        assert_eq!(
            decode_server_frame(&frame.encode().expect("valid")),
            Ok(frame)
        );
    }
}

#[test]
fn proof_message_binds_every_input() {
    let base = proof_message("alice@example.org", &[1; 32], &[5; 33], &[2; 32]);
    assert!(base.starts_with(PROOF_CONTEXT));
    assert_eq!(base.len(), PROOF_CONTEXT.len() + 1 + 17 + 32 + 33 + 32);
    for other in [
        proof_message("alice@example.orh", &[1; 32], &[5; 33], &[2; 32]),
        proof_message("alice@example.org", &[0; 32], &[5; 33], &[2; 32]),
        proof_message("alice@example.org", &[1; 32], &[6; 33], &[2; 32]),
        proof_message("alice@example.org", &[1; 32], &[5; 33], &[3; 32]),
    ] {
        assert_ne!(base, other);
    }
    // The address is length-prefixed: moving a byte between address and challenge changes it.
    assert_ne!(
        proof_message("a", &[1; 32], &[5; 33], &[2; 32]),
        proof_message("a\u{1}", &[1; 32], &[5; 33], &[2; 32])[..]
            .iter()
            .copied()
            .take(PROOF_CONTEXT.len() + 1 + 1 + 32 + 33 + 32)
            .collect::<Vec<_>>()
    );
}
