//! Two clients and the real messaging service (started in-process on 127.0.0.1:0 from a data
//! directory made by the server's own `init`): enrollment with RA codes and root pinning,
//! messages online and offline (delivered once, in order), replies, reconnection with the
//! cached server key, the refusals `init` owes the user, groups with their delivery receipts
//! counted member by member, read receipts and calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime};

use confianza_api::Group;
use confianza_client::account::{Client, ClientError};
use confianza_client::connection::RequestError;
use confianza_client::messaging::ClientEvent;
use confianza_client::store::{DATABASE_FILE, StoredMessage};
use confianza_client::trust::TrustError;
use support::server::{PATIENCE, Server, drain, next_message, passphrase};
use support::stores::receipts_of_two;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_messages_online_and_offline() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    const ALICE: &str = "alice@example.org";
    const BOB: &str = "bob@example.org";

    // Alice checks the root's fingerprint she was given out of band; Bob trusts on first use.
    let mut alice_options =
        server.options(&home.path().join("alice"), ALICE, server.code(ALICE).await);
    alice_options.expected_ca_fingerprint = Some(server.root_fingerprint());
    let (mut alice, enrolled) = Client::init(alice_options).await.unwrap();
    assert!(enrolled.fingerprint_checked);
    assert_eq!(enrolled.root_fingerprint, server.root_fingerprint());
    assert_eq!(alice.account().server_name, "chat.example.org");
    let bob_dir = home.path().join("bob");
    let (mut bob, enrolled) = Client::init(server.options(&bob_dir, BOB, server.code(BOB).await))
        .await
        .unwrap();
    assert_eq!(enrolled.root_fingerprint, server.root_fingerprint());
    // Both connect again, now with IK and the pinned root.
    alice.connect().await.unwrap();
    bob.connect().await.unwrap();
    drain(&mut bob).await;

    // Online: a certified session from Bob's bundle, one message.
    let report = alice.send_text(BOB, "hello bob").await.unwrap();
    assert_eq!(report.devices.len(), 1);
    let message = next_message(&mut bob).await;
    assert_eq!(
        (message.peer.as_str(), message.body.as_str()),
        (ALICE, "hello bob")
    );
    assert_eq!(message.verification, "certified");

    // Bob replies on the same session.
    bob.send_text(ALICE, "hi alice").await.unwrap();
    let reply = next_message(&mut alice).await;
    assert_eq!(reply.body, "hi alice");
    assert_eq!(reply.verification, "certified");

    // Offline: Bob goes away; three messages wait in his mailbox.
    bob.disconnect();
    for i in 1..=3 {
        alice.send_text(BOB, &format!("offline {i}")).await.unwrap();
    }
    // Bob's profile is reopened from disk (passphrase) and reconnects with the cached key.
    drop(bob);
    let mut bob = Client::open(&bob_dir, passphrase).await.unwrap();
    bob.connect().await.unwrap();
    let events = drain(&mut bob).await;
    let bodies: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message(message) => Some(message.body.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, ["offline 1", "offline 2", "offline 3"]);

    // Reconnecting again delivers nothing twice.
    bob.connect().await.unwrap();
    let again = drain(&mut bob).await;
    assert!(
        !again
            .iter()
            .any(|event| matches!(event, ClientEvent::Message(_))),
        "{again:?}"
    );
    let history = bob.history(ALICE, 100).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        texts,
        [
            "hello bob",
            "hi alice",
            "offline 1",
            "offline 2",
            "offline 3"
        ]
    );

    // The text limit, at N and N + 1 bytes.
    use confianza_client::limits::MAX_TEXT_LEN;
    let longest = "x".repeat(MAX_TEXT_LEN);
    alice.send_text(BOB, &longest).await.unwrap();
    assert_eq!(next_message(&mut bob).await.body, longest);
    let too_long = "x".repeat(MAX_TEXT_LEN + 1);
    assert!(matches!(
        alice.send_text(BOB, &too_long).await,
        Err(ClientError::Invalid(_))
    ));

    // Renewal: a new certificate for the same identity key, checked like any other.
    let before = alice.account().certificate.clone();
    let not_after = alice.renew_certificate().await.unwrap();
    assert_ne!(alice.account().certificate, before);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(not_after > now + 300 * 86_400, "renewed for about a year");

    // Replenishment: an empty stock as the server would report it makes the client mint and
    // upload a batch, which the server's count shows.
    use confianza_api::{PreKeyCount, RequestBody, ResponseBody};
    let count = |body| match body {
        ResponseBody::PreKeyCount(count) => count,
        other => panic!("unexpected {other:?}"),
    };
    let before = count(alice.request(RequestBody::GetPreKeyCount).await.unwrap());
    assert!(
        alice
            .replenish_pre_keys(PreKeyCount::default())
            .await
            .unwrap()
    );
    let after = count(alice.request(RequestBody::GetPreKeyCount).await.unwrap());
    assert_eq!(
        after.one_time,
        before.one_time + confianza_client::limits::ONE_TIME_PREKEY_BATCH as u32
    );
    assert!(after.kyber_one_time > before.kyber_one_time);
    // A healthy stock uploads nothing.
    assert!(!alice.replenish_pre_keys(after).await.unwrap());

    // Safety numbers agree on both sides.
    let at_alice = alice.safety_number(BOB).await.unwrap();
    let at_bob = bob.safety_number(ALICE).await.unwrap();
    assert_eq!(
        at_alice.displayable().to_string(),
        at_bob.displayable().to_string()
    );
    assert!(
        at_alice
            .scannable()
            .compare(&at_bob.scannable().to_bytes())
            .unwrap()
    );

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_bad_codes_wrong_roots_and_unknown_servers() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();

    // A wrong enrollment code: refused, and the profile is left empty for a retry.
    let dir = home.path().join("mallory");
    let error = Client::init(server.options(&dir, "mallory@example.org", "not-a-code".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Request(RequestError::Refused(_))),
        "{error}"
    );
    assert!(!dir.join(DATABASE_FILE).exists());

    // A root that is not the one the user was told about: refused in the handshake, before
    // the code is sent.
    let dir = home.path().join("carol");
    let mut carol = server.options(
        &dir,
        "carol@example.org",
        server.code("carol@example.org").await,
    );
    carol.expected_ca_fingerprint = Some("00".repeat(32));
    let error = Client::init(carol).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::ServerRefused(TrustError::FingerprintMismatch { .. })
        ),
        "{error}"
    );
    assert!(!dir.join(DATABASE_FILE).exists());

    // Nobody listening.
    let dir = home.path().join("dave");
    let mut dave = server.options(&dir, "dave@example.org", "x".into());
    dave.server = "127.0.0.1:1".into();
    let error = Client::init(dave).await.unwrap_err();
    assert!(matches!(error, ClientError::Connection(_)), "{error}");

    // An address that is not user@domain.
    let mut bad = server.options(&home.path().join("bad"), "no-at-sign", "x".into());
    bad.server = server.address.to_string();
    assert!(matches!(
        Client::init(bad).await,
        Err(ClientError::Invalid(_))
    ));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_contact_is_refused_for_new_sessions() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    const BOB: &str = "bob@example.org";
    const CAROL: &str = "carol@example.org";
    let bob = server.enroll(home.path(), BOB).await;
    let mut carol = server.enroll(home.path(), CAROL).await;
    carol.connect().await.unwrap();

    // Bob's key is compromised; the CA revokes his certificate. The server staples a fresh
    // OCSP response to his bundle, and Carol's client refuses to start a session.
    server
        .authority
        .revoke_by_holder(
            &bob.account().certificate,
            confianza_pki::crl::RevocationReason::KeyCompromise,
            SystemTime::now(),
        )
        .await
        .unwrap();
    let error = carol.send_text(BOB, "are you there?").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Trust(TrustError::Revoked(_))),
        "{error}"
    );
    assert!(error.to_string().contains("revoked"), "{error}");
    assert!(carol.history(BOB, 10).await.unwrap().is_empty());

    server.shutdown().await;
}

/// Alice, Bob and Carol connected, and the group "lunch" Alice made with the other two.
async fn lunch_group(server: &Server, home: &std::path::Path) -> ([Client; 3], Group) {
    let clients = server
        .connected(
            home,
            ["alice@example.org", "bob@example.org", "carol@example.org"],
        )
        .await;
    let members = vec!["bob@example.org".to_owned(), "carol@example.org".to_owned()];
    let group = clients[0].group_create("lunch", &members).await.unwrap();
    (clients, group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_fans_out_one_ciphertext_and_rekeys_when_a_member_leaves() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let ([alice, mut bob, mut carol], group) = lunch_group(&server, home.path()).await;
    assert_eq!(group.members.len(), 3);
    assert_eq!(alice.find_group("lunch").await.unwrap().id, group.id);

    let report = alice.send_group_text(group.id, "noon?").await.unwrap();
    assert_eq!(report.distributed_to.len(), 2);
    for member in [&mut bob, &mut carol] {
        let message = next_message(member).await;
        assert_eq!(message.body, "noon?");
        assert_eq!(message.peer, "alice@example.org");
        assert!(message.conversation.starts_with("group:"));
    }
    // The key is distributed once per revision.
    let report = alice.send_group_text(group.id, "or one?").await.unwrap();
    assert!(report.distributed_to.is_empty());
    assert_eq!(next_message(&mut bob).await.body, "or one?");
    assert_eq!(next_message(&mut carol).await.body, "or one?");

    // Carol is removed: Alice's next message goes out under a fresh key, to Bob only.
    alice
        .group_remove(group.id, &["carol@example.org".to_owned()])
        .await
        .unwrap();
    let report = alice
        .send_group_text(group.id, "without carol")
        .await
        .unwrap();
    assert_eq!(report.distributed_to, ["bob@example.org"]);
    assert_eq!(next_message(&mut bob).await.body, "without carol");

    server.shutdown().await;
}

/// Receives on `client` until its stored copy of `message` (an outgoing group message) satisfies
/// `done`; returns that copy.
async fn await_group_state(
    client: &mut Client,
    message: &StoredMessage,
    done: impl Fn(&StoredMessage) -> bool,
) -> StoredMessage {
    let wait = async {
        loop {
            let history = client.history(&message.conversation, 100).await.unwrap();
            let stored = history.into_iter().find(|m| m.id == message.id).unwrap();
            if done(&stored) {
                return stored;
            }
            if let ClientEvent::Disconnected(reason) = client.next_event().await.unwrap() {
                panic!("disconnected: {reason}");
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the receipts in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_is_delivered_member_by_member() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let ([mut alice, mut bob, mut carol], group) = lunch_group(&server, home.path()).await;
    // Carol is away: the server keeps her copy, and sends no receipt for her yet.
    carol.disconnect();
    alice.send_group_text(group.id, "noon?").await.unwrap();
    let conversation = confianza_client::groups::group_conversation(&group.id);
    let sent = alice.history(&conversation, 1).await.unwrap().remove(0);
    assert_eq!(
        (sent.delivered, sent.group_receipts),
        (false, receipts_of_two(0, 0))
    );

    // The server's delivery receipt names Bob, not the group: it counts for him.
    let received = next_message(&mut bob).await;
    assert_eq!(received.body, "noon?");
    let stored = await_group_state(&mut alice, &sent, |m| m.delivered).await;
    assert_eq!(stored.group_receipts, receipts_of_two(1, 0));

    carol.connect().await.unwrap();
    let bodies: Vec<String> = drain(&mut carol)
        .await
        .into_iter()
        .filter_map(|event| match event {
            ClientEvent::Message(message) => Some(message.body),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, ["noon?"]);
    let stored = await_group_state(&mut alice, &sent, |m| {
        m.group_receipts.is_some_and(|r| r.delivered == 2)
    })
    .await;
    assert_eq!(stored.group_receipts, receipts_of_two(2, 0));

    // Read receipts are counted beside, not instead.
    bob.mark_seen(&[received], true).await.unwrap();
    let stored = await_group_state(&mut alice, &sent, |m| m.read).await;
    assert_eq!(stored.group_receipts, receipts_of_two(2, 1));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_travel_encrypted_and_can_be_turned_off() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let (alice_address, bob_address) = ("alice@example.org", "bob@example.org");
    let [mut alice, mut bob] = server
        .connected(home.path(), [alice_address, bob_address])
        .await;
    alice.send_text(bob_address, "one").await.unwrap();
    alice.send_text(bob_address, "two").await.unwrap();
    let seen = vec![next_message(&mut bob).await, next_message(&mut bob).await];
    assert!(seen.iter().all(|message| !message.read));

    let report = bob.mark_seen(&seen, true).await.unwrap();
    assert_eq!((report.marked, report.receipts_sent_to.len()), (2, 1));
    assert!(report.failed.is_empty());
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match alice.next_event().await.unwrap() {
                ClientEvent::Read { reader, count } => return (reader, count),
                ClientEvent::Message(message) => panic!("unexpected message {message:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(read, (bob_address.to_owned(), 2));
    let history = alice.history(bob_address, 10).await.unwrap();
    assert_eq!(history.len(), 2, "the receipt is not shown: {history:?}");
    assert!(
        history
            .iter()
            .all(|message| message.outgoing && message.read)
    );
    // Bob's side: seen, and a second call sends nothing.
    let history = bob.history(alice_address, 10).await.unwrap();
    assert!(history.iter().all(|message| message.read));
    let again = bob.mark_seen(&history, true).await.unwrap();
    assert_eq!(again, Default::default());

    // Receipts turned off: marked seen locally, nothing sent.
    alice.send_text(bob_address, "three").await.unwrap();
    let third = next_message(&mut bob).await;
    let report = bob.mark_seen(&[third], false).await.unwrap();
    assert_eq!((report.marked, report.receipts_sent_to.len()), (1, 0));
    bob.send_text(alice_address, "ok").await.unwrap();
    let events = tokio::time::timeout(PATIENCE, async {
        let mut events = Vec::new();
        loop {
            let event = alice.next_event().await.unwrap();
            let done = matches!(&event, ClientEvent::Message(m) if m.body == "ok");
            events.push(event);
            if done {
                return events;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, ClientEvent::Read { .. })),
        "{events:?}"
    );
    let history = alice.history(bob_address, 10).await.unwrap();
    let third = history.iter().find(|m| m.body == "three").unwrap();
    assert!(!third.read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_offered_and_answered_through_the_server_and_audio_flows() {
    use confianza_client::call::{self, AudioFormat, Wav};
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let (alice_address, bob_address) = ("alice@example.org", "bob@example.org");
    let [mut alice, mut bob] = server
        .connected(home.path(), [alice_address, bob_address])
        .await;

    let caller = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invitation, outgoing) =
        call::start_call(&mut rand::rng(), caller.local_addr().unwrap()).unwrap();
    alice
        .send_call_offer(bob_address, &invitation)
        .await
        .unwrap();
    let (sender, received) = tokio::time::timeout(PATIENCE, async {
        loop {
            if let ClientEvent::CallOffer {
                sender, invitation, ..
            } = bob.next_event().await.unwrap()
            {
                return (sender, invitation);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(sender, alice_address);
    assert_eq!(received, invitation, "the offer arrives intact");
    let history = bob.history(alice_address, 10).await.unwrap();
    assert_eq!(history.last().unwrap().kind, "call-offer");

    let answerer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer_address = answerer.local_addr().unwrap();
    bob.send_call_answer(alice_address, received.call_id(), answer_address, true)
        .await
        .unwrap();
    let answered = tokio::time::timeout(PATIENCE, async {
        loop {
            if let ClientEvent::CallAnswered {
                sender,
                call_id,
                media_address,
                accepted,
            } = alice.next_event().await.unwrap()
            {
                return (sender, call_id, media_address, accepted);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        answered,
        (
            bob_address.to_owned(),
            invitation.call_id(),
            answer_address.to_string(),
            true
        )
    );

    let format = AudioFormat::new(8_000, 1).unwrap();
    let sent = Wav::new(format, (0..1_600u32).map(|i| (i * 7) as u8).collect()).unwrap();
    let incoming = received.answer();
    let receiving = tokio::spawn(async move {
        incoming
            .receive_audio(&answerer, Duration::from_secs(10))
            .await
    });
    let connected = outgoing
        .await_answer(&caller, Duration::from_secs(10))
        .await
        .unwrap();
    connected.send_audio(&caller, &sent).await.unwrap();
    let heard = receiving.await.unwrap().unwrap();
    assert_eq!(heard.missing_packets, 0);
    assert_eq!(heard.wav.to_bytes(), sent.to_bytes());
}
