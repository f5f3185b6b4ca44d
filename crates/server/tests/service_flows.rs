//! The messaging service end to end over TCP on 127.0.0.1: enrollment, prekey bundles, 1:1
//! messages live and offline, duplicates, acknowledgements and receipts, groups, concurrent
//! bundle fetches, graceful shutdown.

mod support;

use std::collections::HashSet;

use confianza_api::{
    CiphertextType, Delivery, DeliveryItem, DeviceSelector, ErrorCode, Notice, OutgoingEnvelope,
    RequestBody, ResponseBody,
};
use confianza_server::store::{DeviceAddress, MessageStore, NewDevice, QueuedItem};
use support::{DeviceKeys, TestClient, TestServer};

fn envelope(to: &TestClient, body: &[u8], id: u8) -> OutgoingEnvelope {
    OutgoingEnvelope {
        device_id: to.device_id,
        registration_id: to.keys.as_ref().expect("enrolled").registration_id,
        ciphertext_type: CiphertextType::Whisper,
        body: body.to_vec(),
        client_message_id: [id; 16],
    }
}

async fn send(from: &mut TestClient, to: &TestClient, body: &[u8], id: u8) -> ResponseBody {
    from.request(RequestBody::Send {
        recipient: to.address.clone(),
        envelopes: vec![envelope(to, body, id)],
    })
    .await
    .expect("sent")
}

fn body_of(item: &DeliveryItem) -> &[u8] {
    match item {
        DeliveryItem::Envelope(envelope) => &envelope.body,
        DeliveryItem::Receipt(_) => panic!("a receipt, not an envelope"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_issues_a_certificate_and_a_code_works_once() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 5).await;
    assert_eq!(alice.device_id, 1);
    let ResponseBody::WhoAmI {
        address,
        device_id,
        certificate_not_after_ms,
    } = alice.request(RequestBody::WhoAmI).await.expect("whoami")
    else {
        panic!("not WhoAmI");
    };
    assert_eq!((address.as_str(), device_id), ("alice@example.org", 1));
    assert!(certificate_not_after_ms > support_now_ms());
    let ResponseBody::Devices(devices) = alice.request(RequestBody::ListDevices).await.expect("ok")
    else {
        panic!("not Devices");
    };
    assert_eq!(devices.len(), 1);

    // A second device of the same account, with its own code: device 2.
    let second = server.enroll("alice@example.org", 1).await;
    assert_eq!(second.device_id, 2);

    // A code is single-use.
    let code = server.enrollment_code("bob@example.org").await;
    let keys = DeviceKeys::generate(1);
    let mut bob = TestClient::connect(&server, keys.noise.clone()).await;
    bob.enroll("bob@example.org", &code, keys)
        .await
        .expect("first use");
    let keys = DeviceKeys::generate(1);
    let mut again = TestClient::connect(&server, keys.noise.clone()).await;
    let refused = again
        .enroll("bob@example.org", &code, keys)
        .await
        .expect_err("second use refused");
    assert_eq!(refused.code, ErrorCode::InvalidEnrollmentCode);

    // A proof made for another connection's key does not verify.
    let code = server.enrollment_code("carol@example.org").await;
    let keys = DeviceKeys::generate(1);
    let other = DeviceKeys::generate(1);
    let mut carol = TestClient::connect(&server, other.noise.clone()).await;
    let request = carol
        .enroll_request("carol@example.org", &code, &keys)
        .await
        .expect("challenge");
    let refused = carol
        .request(RequestBody::Enroll(Box::new(request)))
        .await
        .expect_err("wrong key refused");
    assert_eq!(refused.code, ErrorCode::InvalidProof);
    server.shutdown().await;
}

fn support_now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_carry_certificate_and_ocsp_and_each_one_time_key_once() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 3).await;
    let mut seen = HashSet::new();
    for fetch in 0..4 {
        let ResponseBody::Bundles(bundles) = alice
            .request(RequestBody::FetchBundle {
                address: "bob@example.org".into(),
                device: DeviceSelector::All,
            })
            .await
            .expect("bundle")
        else {
            panic!("not bundles");
        };
        assert_eq!(bundles.len(), 1);
        let bundle = &bundles[0];
        assert_eq!(bundle.device_id, bob.device_id);
        assert!(!bundle.identity_certificate.is_empty());
        assert!(bundle.ocsp_response.is_some(), "OCSP stapled");
        match &bundle.one_time_pre_key {
            Some(key) => assert!(seen.insert(key.id), "key {} handed out twice", key.id),
            None => assert_eq!(fetch, 3, "keys ran out only after three fetches"),
        }
    }
    assert_eq!(seen.len(), 3);
    // Bob is told to replenish.
    bob.notice(|n| matches!(n, Notice::PreKeysLow(count) if count.one_time == 0))
        .await;

    let refused = alice
        .request(RequestBody::FetchBundle {
            address: "nobody@example.org".into(),
            device: DeviceSelector::All,
        })
        .await
        .expect_err("unknown account");
    assert_eq!(refused.code, ErrorCode::NotFound);

    // Replenishing: a bad signature is refused, good keys are counted.
    let identity = &bob.keys.as_ref().expect("keys").identity;
    let mut upload = DeviceKeys::pre_keys(identity, 100, 20, 0, false);
    let ResponseBody::PreKeyCount(count) = bob
        .request(RequestBody::UploadPreKeys(upload.clone()))
        .await
        .expect("uploaded")
    else {
        panic!("not a count");
    };
    assert_eq!(count.one_time, 20);
    let stranger = confianza_protocol::keys::IdentityKeyPair::generate(&mut rand::rng());
    upload = DeviceKeys::pre_keys(&stranger, 200, 0, 1, true);
    let refused = bob
        .request(RequestBody::UploadPreKeys(upload))
        .await
        .expect_err("signed by another key");
    assert_eq!(refused.code, ErrorCode::InvalidSignature);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_delivered_live_and_after_reconnect_exactly_once_in_order() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    bob.notice(|n| *n == Notice::MailboxDrained).await;

    // Live.
    let ResponseBody::Sent {
        accepted,
        duplicates,
        ..
    } = send(&mut alice, &bob, b"hello bob", 1).await
    else {
        panic!("not Sent");
    };
    assert_eq!((accepted, duplicates), (1, 0));
    let delivery = bob.delivery().await;
    let DeliveryItem::Envelope(envelope) = &delivery.item else {
        panic!("not an envelope");
    };
    assert_eq!(envelope.body, b"hello bob");
    assert_eq!(envelope.sender, "alice@example.org");
    assert_eq!(envelope.sender_device_id, alice.device_id);
    assert_eq!(envelope.client_message_id, [1; 16]);
    bob.ack(vec![delivery.id]).await;

    // Alice gets the delivery receipt.
    let receipt = alice.delivery().await;
    let DeliveryItem::Receipt(receipt_body) = &receipt.item else {
        panic!("not a receipt");
    };
    assert_eq!(receipt_body.recipient, "bob@example.org");
    assert_eq!(receipt_body.client_message_ids, vec![[1; 16]]);
    alice.ack(vec![receipt.id]).await;

    // Offline: bob goes away, alice sends three, bob comes back.
    let bob_keys_noise = bob.noise.clone();
    let bob_device = bob.device_id;
    let bob_registration = bob.keys.as_ref().expect("keys").registration_id;
    drop(bob);
    let offline_target = OfflineTarget {
        address: "bob@example.org",
        device_id: bob_device,
        registration_id: bob_registration,
    };
    for (i, text) in [b"one".as_slice(), b"two", b"three"].iter().enumerate() {
        let sent = alice
            .request(RequestBody::Send {
                recipient: offline_target.address.into(),
                envelopes: vec![offline_target.envelope(text, 10 + i as u8)],
            })
            .await
            .expect("stored while offline");
        assert!(matches!(sent, ResponseBody::Sent { accepted: 1, .. }));
    }
    let mut bob = TestClient::connect(&server, bob_keys_noise.clone()).await;
    let backlog = bob.backlog_until_drained().await;
    let bodies: Vec<&[u8]> = backlog.iter().map(|d| body_of(&d.item)).collect();
    assert_eq!(bodies, vec![b"one".as_slice(), b"two", b"three"]);
    bob.ack(backlog.iter().map(|d| d.id).collect()).await;
    // Acknowledged before leaving: nothing comes again.
    let _ = bob.request(RequestBody::WhoAmI).await;
    drop(bob);
    let mut bob = TestClient::connect(&server, bob_keys_noise).await;
    assert!(bob.backlog_until_drained().await.is_empty());
    server.shutdown().await;
}

/// Delivery ids of receipts pushed from memory start above this one.
const FROM_MEMORY: u64 = 1 << 63;

/// Alice (connected) sends Bob message `id`; Bob acknowledges it; returns the receipt pushed to
/// Alice, checked to come from memory.
async fn receipt_from_memory(alice: &mut TestClient, bob: &mut TestClient, id: u8) -> Delivery {
    send(alice, bob, b"hello", id).await;
    let delivery = bob.delivery().await;
    bob.ack(vec![delivery.id]).await;
    let receipt = alice.delivery().await;
    assert!(
        receipt.id > FROM_MEMORY,
        "pushed from memory: {}",
        receipt.id
    );
    let DeliveryItem::Receipt(body) = &receipt.item else {
        panic!("not a receipt: {receipt:?}");
    };
    assert_eq!(body.client_message_ids, vec![[id; 16]]);
    receipt
}

/// A server with Alice and Bob connected, their backlogs drained.
async fn alice_and_bob() -> (TestServer, TestClient, TestClient, DeviceAddress) {
    let server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    alice.notice(|n| *n == Notice::MailboxDrained).await;
    bob.notice(|n| *n == Notice::MailboxDrained).await;
    let alice_device = DeviceAddress {
        address: alice.address.clone(),
        device_id: alice.device_id,
    };
    (server, alice, bob, alice_device)
}

/// A delivery receipt for a sender connected to the node is pushed from memory (an id above
/// 2^63, nothing stored); one the sender leaves unacknowledged is stored when its connection
/// goes and comes from the mailbox on the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_a_connected_sender_come_from_memory_and_are_kept_if_it_goes() {
    let (mut server, mut alice, mut bob, alice_device) = alice_and_bob().await;
    let receipt = receipt_from_memory(&mut alice, &mut bob, 1).await;
    let depth = server.store.queue_depth(&alice_device).await;
    assert_eq!(depth.expect("depth"), 0);
    alice.ack(vec![receipt.id]).await;

    // Alice leaves the next receipt unacknowledged and reconnects: it was stored meanwhile.
    let unacknowledged = receipt_from_memory(&mut alice, &mut bob, 2).await;
    let mut alice = alice.reconnect(&server).await;
    let again = alice.delivery().await;
    assert!(again.id < FROM_MEMORY, "from the mailbox: {}", again.id);
    assert_eq!(again.item, unacknowledged.item);
    alice.ack(vec![again.id]).await;
    let _ = alice.request(RequestBody::WhoAmI).await;
    let mut alice = alice.reconnect(&server).await;
    assert!(alice.backlog_until_drained().await.is_empty());

    // An id above the last one pushed from memory was never pushed.
    alice.ack(vec![FROM_MEMORY + 1_000]).await;
    let closed = alice.closed().await;
    assert_eq!(closed.error.map(|e| e.code), Some(ErrorCode::Forbidden));
    server.shutdown().await;
}

/// A graceful shutdown closes the connections before the writer stops: a receipt pushed from
/// memory and not yet acknowledged is in the store afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_held_in_memory_are_stored_at_a_graceful_shutdown() {
    let (mut server, mut alice, mut bob, alice_device) = alice_and_bob().await;
    let receipt = receipt_from_memory(&mut alice, &mut bob, 1).await;
    server.shutdown().await;
    let stored = server.store.pending(&alice_device, 0, 10).await;
    let stored = stored.expect("pending");
    assert_eq!(stored.len(), 1);
    let (QueuedItem::Receipt(kept), DeliveryItem::Receipt(pushed)) =
        (&stored[0].item, &receipt.item)
    else {
        panic!("not receipts: {stored:?}, {receipt:?}");
    };
    assert_eq!(kept, pushed, "the receipt alice did not acknowledge");
}

struct OfflineTarget {
    address: &'static str,
    device_id: u32,
    registration_id: u32,
}

impl OfflineTarget {
    fn envelope(&self, body: &[u8], id: u8) -> OutgoingEnvelope {
        OutgoingEnvelope {
            device_id: self.device_id,
            registration_id: self.registration_id,
            ciphertext_type: CiphertextType::Whisper,
            body: body.to_vec(),
            client_message_id: [id; 16],
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_stored_once_and_device_lists_are_checked() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    assert!(matches!(
        send(&mut alice, &bob, b"once", 7).await,
        ResponseBody::Sent {
            accepted: 1,
            duplicates: 0,
            ..
        }
    ));
    assert!(matches!(
        send(&mut alice, &bob, b"once", 7).await,
        ResponseBody::Sent {
            accepted: 0,
            duplicates: 1,
            ..
        }
    ));
    let first = bob.delivery().await;
    assert_eq!(body_of(&first.item), b"once");
    bob.expect_no_delivery().await;

    // The wrong device set: told what is missing and extra.
    let mut wrong = envelope(&bob, b"x", 8);
    wrong.device_id = 9;
    let refused = alice
        .request(RequestBody::Send {
            recipient: "bob@example.org".into(),
            envelopes: vec![wrong],
        })
        .await
        .expect_err("mismatch");
    assert_eq!(refused.code, ErrorCode::MismatchedDevices);
    let detail = refused.mismatched_devices.expect("detail");
    assert_eq!((detail.missing, detail.extra), (vec![1], vec![9]));

    // A stale registration id.
    let mut stale = envelope(&bob, b"x", 9);
    stale.registration_id = stale.registration_id % 16_000 + 1;
    let refused = alice
        .request(RequestBody::Send {
            recipient: "bob@example.org".into(),
            envelopes: vec![stale],
        })
        .await
        .expect_err("stale");
    assert_eq!(
        refused.mismatched_devices.expect("detail").stale,
        vec![bob.device_id]
    );
    server.shutdown().await;
}

/// A device enrolled where this node's device-list cache does not see it (another node of a
/// shared database): a send naming it is accepted at once, and one leaving it out is told it
/// is missing. A stale cache costs a directory read, never a refused or a lost message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolled_behind_the_cache_is_seen_at_once() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let bob = server.enroll("bob@example.org", 1).await;
    // Caches bob's list: one device.
    send(&mut alice, &bob, b"first", 1).await;

    let second = server
        .store
        .enroll(NewDevice {
            address: "bob@example.org".to_owned(),
            registration_id: 4_242,
            noise_key: [0x42; 32],
            identity_key: [0x05; 33],
            certificate: b"enrolled on another node".to_vec(),
            now_ms: support_now_ms(),
        })
        .await
        .expect("second device");
    let mut to_second = envelope(&bob, b"both", 2);
    to_second.device_id = second.address.device_id;
    to_second.registration_id = 4_242;
    let sent = alice
        .request(RequestBody::Send {
            recipient: "bob@example.org".into(),
            envelopes: vec![envelope(&bob, b"both", 2), to_second],
        })
        .await
        .expect("both devices accepted");
    assert!(matches!(sent, ResponseBody::Sent { accepted: 2, .. }));
    let queued = server
        .store
        .queue_depth(&second.address)
        .await
        .expect("depth");
    assert_eq!(queued, 1);

    let refused = alice
        .request(RequestBody::Send {
            recipient: "bob@example.org".into(),
            envelopes: vec![envelope(&bob, b"one", 3)],
        })
        .await
        .expect_err("the second device is missing");
    assert_eq!(refused.code, ErrorCode::MismatchedDevices);
    assert_eq!(
        refused.mismatched_devices.expect("detail").missing,
        vec![second.address.device_id]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_sends_fan_out_to_members_and_membership_changes_are_announced() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    let mut carol = server.enroll("carol@example.org", 1).await;
    let mut dave = server.enroll("dave@example.org", 1).await;

    let ResponseBody::Group(group) = alice
        .request(RequestBody::GroupCreate {
            name: "friends".into(),
            members: vec!["bob@example.org".into(), "carol@example.org".into()],
        })
        .await
        .expect("created")
    else {
        panic!("not a group");
    };
    assert_eq!(group.revision, 1);
    assert_eq!(group.members.len(), 3);
    for member in [&mut bob, &mut carol] {
        let notice = member
            .notice(|n| matches!(n, Notice::MembershipChanged { .. }))
            .await;
        assert_eq!(
            notice,
            Notice::MembershipChanged {
                group_id: group.id,
                revision: 1
            }
        );
    }

    let group_send = |revision: u64, id: u8| RequestBody::SendGroup {
        group_id: group.id,
        revision,
        body: b"to the group".to_vec(),
        client_message_id: [id; 16],
    };
    assert!(matches!(
        alice.request(group_send(1, 1)).await.expect("sent"),
        ResponseBody::Sent { accepted: 2, .. }
    ));
    for member in [&mut bob, &mut carol] {
        let delivery = member.delivery().await;
        let DeliveryItem::Envelope(envelope) = &delivery.item else {
            panic!("not an envelope");
        };
        assert_eq!(envelope.group_id, Some(group.id));
        assert_eq!(envelope.ciphertext_type, CiphertextType::SenderKey);
        assert_eq!(envelope.body, b"to the group");
    }
    alice.expect_no_delivery().await;

    let refused = alice.request(group_send(5, 2)).await.expect_err("stale");
    assert_eq!(refused.code, ErrorCode::Conflict);
    let refused = dave.request(group_send(1, 3)).await.expect_err("outsider");
    assert_eq!(refused.code, ErrorCode::Forbidden);
    let refused = bob
        .request(RequestBody::GroupRemoveMembers {
            group_id: group.id,
            members: vec!["carol@example.org".into()],
        })
        .await
        .expect_err("bob is no admin");
    assert_eq!(refused.code, ErrorCode::Forbidden);

    // Carol is removed: told so, and no longer reached.
    let ResponseBody::Group(after) = alice
        .request(RequestBody::GroupRemoveMembers {
            group_id: group.id,
            members: vec!["carol@example.org".into()],
        })
        .await
        .expect("removed")
    else {
        panic!("not a group");
    };
    assert_eq!(after.revision, 2);
    assert_eq!(
        carol
            .notice(|n| matches!(n, Notice::MembershipChanged { revision: 2, .. }))
            .await,
        Notice::MembershipChanged {
            group_id: group.id,
            revision: 2
        }
    );
    bob.notice(|n| matches!(n, Notice::MembershipChanged { revision: 2, .. }))
        .await;
    assert!(matches!(
        alice.request(group_send(2, 4)).await.expect("sent"),
        ResponseBody::Sent { accepted: 1, .. }
    ));
    assert_eq!(body_of(&bob.delivery().await.item), b"to the group");
    carol.expect_no_delivery().await;
    let ResponseBody::Groups(listed) = bob.request(RequestBody::GroupList).await.expect("list")
    else {
        panic!("not groups");
    };
    assert_eq!(listed.len(), 1);
    let refused = carol
        .request(RequestBody::GroupGet { group_id: group.id })
        .await
        .expect_err("no longer a member");
    assert_eq!(refused.code, ErrorCode::Forbidden);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_fetches_never_share_a_one_time_key() {
    const FETCHERS: usize = 16;
    const FETCHES_EACH: usize = 4;
    let mut server = TestServer::start().await;
    let _bob = server.enroll("bob@example.org", 100).await;
    let mut fetchers = Vec::new();
    for i in 0..FETCHERS {
        fetchers.push(server.enroll(&format!("fetcher{i}@example.org"), 1).await);
    }
    let tasks = fetchers.into_iter().map(|mut client| {
        tokio::spawn(async move {
            // Pipelined: all four requests are in flight at once.
            let mut ids = Vec::new();
            for _ in 0..FETCHES_EACH {
                ids.push(
                    client
                        .send_request(RequestBody::FetchBundle {
                            address: "bob@example.org".into(),
                            device: DeviceSelector::One(1),
                        })
                        .await,
                );
            }
            let mut keys = Vec::new();
            for id in ids {
                let Ok(ResponseBody::Bundles(bundles)) = client.response(id).await.result else {
                    panic!("fetch failed");
                };
                let bundle = bundles.into_iter().next().expect("one bundle");
                keys.push((
                    bundle.one_time_pre_key.map(|k| k.id),
                    bundle.kyber_pre_key.id,
                    bundle.kyber_is_last_resort,
                ));
            }
            keys
        })
    });
    let mut ec_ids = HashSet::new();
    let mut kyber_one_time = HashSet::new();
    let mut last_resort = 0;
    for task in tasks {
        for (ec, kyber, is_last_resort) in task.await.expect("fetcher") {
            let ec = ec.expect("100 keys for 64 fetches");
            assert!(ec_ids.insert(ec), "EC prekey {ec} handed out twice");
            if is_last_resort {
                last_resort += 1;
            } else {
                assert!(
                    kyber_one_time.insert(kyber),
                    "Kyber prekey {kyber} handed out twice"
                );
            }
        }
    }
    assert_eq!(ec_ids.len(), FETCHERS * FETCHES_EACH);
    // Bob uploaded 8 one-time Kyber keys: the other 56 fetches got the last-resort key.
    assert_eq!(kyber_one_time.len(), 8);
    assert_eq!(last_resort, FETCHERS * FETCHES_EACH - 8);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_keeps_every_acknowledged_send() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let bob = server.enroll("bob@example.org", 1).await;
    let target = OfflineTarget {
        address: "bob@example.org",
        device_id: bob.device_id,
        registration_id: bob.keys.as_ref().expect("keys").registration_id,
    };
    drop(bob);
    // Fifty sends in flight when the shutdown starts.
    let mut ids = Vec::new();
    for i in 0..50u8 {
        ids.push(
            alice
                .send_request(RequestBody::Send {
                    recipient: target.address.into(),
                    envelopes: vec![target.envelope(&[i], i)],
                })
                .await,
        );
    }
    // The first is answered; the shutdown starts while the others are in flight.
    let first = alice.response(ids[0]).await;
    assert!(matches!(
        first.result,
        Ok(ResponseBody::Sent { accepted: 1, .. })
    ));
    let shutdown = server.running.take().expect("running").shutdown();
    let mut acknowledged = 1;
    let answers = async {
        for id in ids.into_iter().skip(1) {
            match alice.try_response(id).await {
                Some(response) => {
                    if let Ok(ResponseBody::Sent { accepted: 1, .. }) = response.result {
                        acknowledged += 1;
                    }
                }
                // Not read before the shutdown: never acknowledged.
                None => break,
            }
        }
    };
    tokio::join!(shutdown, answers);
    let queued = server
        .store
        .queue_depth(&confianza_server::store::DeviceAddress {
            address: "bob@example.org".into(),
            device_id: target.device_id,
        })
        .await
        .expect("depth");
    assert!(
        queued >= acknowledged,
        "{acknowledged} acknowledged, {queued} stored"
    );
    assert!(acknowledged > 0);
}
