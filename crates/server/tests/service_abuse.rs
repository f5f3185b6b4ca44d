//! Peers that break the rules: each is disconnected with a clear error, and everyone else keeps
//! being served.

mod support;

use confianza_api::limits::MAX_ACKS_PER_FRAME;
use confianza_api::{
    CiphertextType, ErrorCode, Notice, OutgoingEnvelope, RequestBody, ResponseBody,
};
use confianza_noise::StaticKeyPair;
use support::{TestClient, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bystander still gets answers and messages.
async fn still_served(alice: &mut TestClient, bob: &mut TestClient, id: u8) {
    let sent = alice
        .request(RequestBody::Send {
            recipient: bob.address.clone(),
            envelopes: vec![OutgoingEnvelope {
                device_id: bob.device_id,
                registration_id: bob.keys.as_ref().expect("keys").registration_id,
                ciphertext_type: CiphertextType::Whisper,
                body: vec![id],
                client_message_id: [id; 16],
            }],
        })
        .await
        .expect("alice is still served");
    assert!(matches!(sent, ResponseBody::Sent { accepted: 1, .. }));
    let delivery = bob.delivery().await;
    bob.ack(vec![delivery.id]).await;
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A `ClientFrame { ack: Ack { delivery_ids } }` encoded by hand, so that it can break the
/// limits the encoder enforces.
fn raw_ack(delivery_ids: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut packed = Vec::new();
    for id in delivery_ids {
        varint(id, &mut packed);
    }
    let mut ack = vec![0x0a]; // field 1, length-delimited (packed)
    varint(packed.len() as u64, &mut ack);
    ack.extend(packed);
    let mut frame = vec![0x12]; // ClientFrame field 2 (ack)
    varint(ack.len() as u64, &mut frame);
    frame.extend(ack);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_may_only_enroll() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;

    let mut stranger =
        TestClient::connect(&server, StaticKeyPair::generate(&mut rand::rng())).await;
    // Asking for a challenge is allowed...
    stranger
        .request(RequestBody::EnrollChallenge)
        .await
        .expect("a challenge");
    // ...anything else closes the connection.
    stranger.send_request(RequestBody::ListDevices).await;
    let closed = stranger.closed().await;
    assert_eq!(
        closed.error.expect("an error frame").code,
        ErrorCode::Unauthenticated
    );
    still_served(&mut alice, &mut bob, 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_its_connection() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    let mut mallory = server.enroll("mallory@example.org", 1).await;
    mallory.send_raw(b"\xff\xff\xff not protobuf").await;
    let closed = mallory.closed().await;
    assert_eq!(
        closed.error.expect("an error frame").code,
        ErrorCode::BadRequest
    );
    still_served(&mut alice, &mut bob, 2).await;

    // Mallory may come back: being disconnected is not a ban.
    let mut mallory = mallory.reconnect(&server).await;
    mallory
        .request(RequestBody::WhoAmI)
        .await
        .expect("served again");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_of_n_ids_decodes_and_n_plus_one_is_refused_as_malformed() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;

    // N ids: a valid frame, refused because none of them was pushed here.
    let mut at_limit = server.enroll("n@example.org", 1).await;
    at_limit.notice(|n| *n == Notice::MailboxDrained).await;
    at_limit
        .send_raw(&raw_ack(1..=MAX_ACKS_PER_FRAME as u64))
        .await;
    let closed = at_limit.closed().await;
    assert_eq!(closed.error.expect("error").code, ErrorCode::Forbidden);

    // N + 1 ids: the frame itself breaks the limit.
    let mut over = server.enroll("n1@example.org", 1).await;
    over.send_raw(&raw_ack(1..=MAX_ACKS_PER_FRAME as u64 + 1))
        .await;
    let closed = over.closed().await;
    assert_eq!(closed.error.expect("error").code, ErrorCode::BadRequest);
    still_served(&mut alice, &mut bob, 3).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_another_devices_delivery_closes_the_connection_and_the_message_stays() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    let mut mallory = server.enroll("mallory@example.org", 1).await;
    mallory.notice(|n| *n == Notice::MailboxDrained).await;

    let sent = alice
        .request(RequestBody::Send {
            recipient: bob.address.clone(),
            envelopes: vec![OutgoingEnvelope {
                device_id: bob.device_id,
                registration_id: bob.keys.as_ref().expect("keys").registration_id,
                ciphertext_type: CiphertextType::Whisper,
                body: b"for bob only".to_vec(),
                client_message_id: [4; 16],
            }],
        })
        .await
        .expect("sent");
    assert!(matches!(sent, ResponseBody::Sent { accepted: 1, .. }));
    let delivery = bob.delivery().await;
    // Mallory tries to delete Bob's message by its delivery id.
    mallory.ack(vec![delivery.id]).await;
    let closed = mallory.closed().await;
    assert_eq!(closed.error.expect("error").code, ErrorCode::Forbidden);

    // Bob did not acknowledge: after a reconnect he gets it again (from the mailbox, where
    // it went unacknowledged; first pushed live, it had an id from memory).
    let mut bob = bob.reconnect(&server).await;
    let backlog = bob.backlog_until_drained().await;
    assert_eq!(backlog.len(), 1);
    assert_eq!(backlog[0].item, delivery.item);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_garbage_handshake_is_dropped_without_harm() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;

    // A hello frame announcing 65 535 bytes: refused at the header, before any allocation.
    let mut raw = tokio::net::TcpStream::connect(server.noise_addr)
        .await
        .expect("tcp");
    raw.write_all(&[0xff, 0xff]).await.expect("write");
    raw.write_all(&[0u8; 1024]).await.expect("write");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(support::PATIENCE, raw.read(&mut buffer))
        .await
        .expect("the server closes the socket");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");

    // Garbage of a plausible size: no handshake either.
    let mut raw = tokio::net::TcpStream::connect(server.noise_addr)
        .await
        .expect("tcp");
    raw.write_all(&[0x00, 0x21]).await.expect("write");
    raw.write_all(&[0x7f; 0x21]).await.expect("write"); // no such handshake type
    let read = tokio::time::timeout(support::PATIENCE, raw.read(&mut buffer))
        .await
        .expect("the server closes the socket");
    assert!(matches!(read, Ok(0) | Err(_)));

    still_served(&mut alice, &mut bob, 5).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_of_a_device_displaces_the_first() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let bob = server.enroll("bob@example.org", 1).await;
    let keys_noise = bob.noise.clone();
    let mut first = bob;
    let mut second = TestClient::connect(&server, keys_noise).await;
    second.keys = first.keys.take();
    second.address = first.address.clone();
    second.device_id = first.device_id;
    let closed = first.closed().await;
    assert_eq!(closed.error.expect("error").code, ErrorCode::Conflict);
    still_served(&mut alice, &mut second, 6).await;
    server.shutdown().await;
}
