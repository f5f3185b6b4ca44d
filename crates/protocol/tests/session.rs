//! Sessions between two in-memory parties: setup, ordering, limits, forgery, replay.

use std::collections::HashMap;

use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::limits::{
    ARCHIVED_STATES_MAX_LENGTH, MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS,
    MAX_UNACKNOWLEDGED_SESSION_AGE_SECS,
};
use confianza_protocol::message::{CiphertextMessage, PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::{InMemoryPreKeys, PreKeyBundle};
use confianza_protocol::session::{self, DecryptError, EncryptError, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Party {
    identity: IdentityKeyPair,
    registration_id: u32,
    keys: InMemoryPreKeys,
    next_id: u32,
    /// Sessions by peer name.
    sessions: HashMap<&'static str, SessionRecord>,
}

const NOW: u64 = 1_700_000_000;

impl Party {
    fn new(registration_id: u32, rng: &mut StdRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        Self {
            keys: InMemoryPreKeys::generate(&identity, NOW, rng),
            identity,
            registration_id,
            next_id: 100,
            sessions: HashMap::new(),
        }
    }

    fn bundle(&mut self, one_time: bool, kyber: bool, rng: &mut StdRng) -> PreKeyBundle {
        let id = one_time.then(|| {
            self.next_id += 1;
            self.keys.add_one_time(self.next_id, rng);
            self.next_id
        });
        self.keys
            .bundle(&self.identity, self.registration_id, 1, id, kyber)
            .expect("keys exist")
    }

    fn start(&mut self, peer: &'static str, bundle: PreKeyBundle, rng: &mut StdRng) {
        let verified = bundle.verify().expect("bundle verifies");
        let record = self.sessions.entry(peer).or_default();
        session::process_bundle(
            record,
            &self.identity,
            self.registration_id,
            &verified,
            NOW,
            rng,
        )
        .expect("session starts");
    }

    fn send(&mut self, peer: &'static str, plaintext: &[u8]) -> CiphertextMessage {
        self.send_at(peer, plaintext, NOW).expect("encrypts")
    }

    fn send_at(
        &mut self,
        peer: &'static str,
        plaintext: &[u8],
        now: u64,
    ) -> Result<CiphertextMessage, EncryptError> {
        let record = self.sessions.get_mut(peer).expect("a session exists");
        session::encrypt(record, plaintext, EncryptOptions::default(), now)
    }

    fn receive(
        &mut self,
        from: &'static str,
        message: &CiphertextMessage,
        rng: &mut StdRng,
    ) -> Result<Vec<u8>, DecryptError> {
        match message {
            CiphertextMessage::Whisper(m) => {
                let parsed = SignalMessage::deserialize(m.serialized()).expect("parses");
                let record = self.sessions.entry(from).or_default();
                session::decrypt(record, &parsed, None, rng)
            }
            CiphertextMessage::PreKey(m) => {
                let parsed = PreKeySignalMessage::deserialize(m.serialized()).expect("parses");
                let mut record = self.sessions.remove(from).unwrap_or_default();
                let result = session::decrypt_pre_key(
                    &mut record,
                    &self.identity,
                    self.registration_id,
                    &self.keys,
                    &parsed,
                    None,
                    rng,
                );
                self.sessions.insert(from, record);
                let outcome = result?;
                self.keys.consume(&outcome);
                Ok(outcome.plaintext)
            }
        }
    }
}

fn pair(one_time: bool, kyber: bool, seed: u64) -> (Party, Party, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut alice = Party::new(11, &mut rng);
    let mut bob = Party::new(22, &mut rng);
    let bundle = bob.bundle(one_time, kyber, &mut rng);
    alice.start("bob", bundle, &mut rng);
    (alice, bob, rng)
}

/// Sets up a session and completes one round trip.
fn established(kyber: bool, seed: u64) -> (Party, Party, StdRng) {
    let (mut alice, mut bob, mut rng) = pair(true, kyber, seed);
    let first = alice.send("bob", b"hello");
    assert_eq!(
        bob.receive("alice", &first, &mut rng).expect("ok"),
        b"hello"
    );
    let reply = bob.send("alice", b"hi");
    assert_eq!(alice.receive("bob", &reply, &mut rng).expect("ok"), b"hi");
    (alice, bob, rng)
}

#[test]
fn setup_in_every_variant() {
    for (seed, (one_time, kyber)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let (mut alice, mut bob, mut rng) = pair(one_time, kyber, seed as u64);
        let first = alice.send("bob", b"first");
        let CiphertextMessage::PreKey(prekey) = &first else {
            panic!("first message is a PreKey message")
        };
        assert_eq!(prekey.message_version(), if kyber { 4 } else { 3 });
        assert_eq!(prekey.serialized()[0], if kyber { 0x44 } else { 0x34 });
        assert_eq!(prekey.pre_key_id().is_some(), one_time);
        let unused_before = bob.keys.one_time.len();
        assert_eq!(
            bob.receive("alice", &first, &mut rng).expect("ok"),
            b"first"
        );
        assert_eq!(
            bob.keys.one_time.len(),
            unused_before - usize::from(one_time)
        );
        let second = alice.send("bob", b"second");
        assert!(
            matches!(second, CiphertextMessage::PreKey(_)),
            "until a reply"
        );
        assert_eq!(
            bob.receive("alice", &second, &mut rng).expect("ok"),
            b"second"
        );
        let reply = bob.send("alice", b"reply");
        assert!(matches!(reply, CiphertextMessage::Whisper(_)));
        assert_eq!(
            alice.receive("bob", &reply, &mut rng).expect("ok"),
            b"reply"
        );
        let third = alice.send("bob", b"third");
        assert!(
            matches!(third, CiphertextMessage::Whisper(_)),
            "acknowledged"
        );
        assert_eq!(
            bob.receive("alice", &third, &mut rng).expect("ok"),
            b"third"
        );
    }
}

#[test]
fn forged_bundle_signatures_are_refused() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut bob = Party::new(22, &mut rng);
    let mut bundle = bob.bundle(true, true, &mut rng);
    bundle.signed_pre_key_signature[5] ^= 1;
    assert!(bundle.verify().is_err());
    let mut bundle = bob.bundle(true, true, &mut rng);
    if let Some(k) = bundle.kyber_pre_key.as_mut() {
        k.signature[0] ^= 1;
    }
    assert!(bundle.verify().is_err());
    let mallory = Party::new(33, &mut rng);
    let mut bundle = bob.bundle(true, false, &mut rng);
    bundle.identity_key = *mallory.identity.identity_key();
    assert!(bundle.verify().is_err(), "prekeys signed by someone else");
}

#[test]
fn one_time_prekey_is_kept_when_the_first_message_fails() {
    let (mut alice, mut bob, mut rng) = pair(true, true, 3);
    let first = alice.send("bob", b"hello");
    let mut bytes = first.serialized().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // inside the inner message's MAC
    let forged = PreKeySignalMessage::deserialize(&bytes).expect("still parses");
    let forged = CiphertextMessage::PreKey(forged);
    assert!(matches!(
        bob.receive("alice", &forged, &mut rng),
        Err(DecryptError::PreKeyDecryptionFailed(_))
    ));
    assert_eq!(bob.keys.one_time.len(), 1, "one-time prekey not consumed");
    assert!(!bob.sessions["alice"].has_current_state());
    assert_eq!(
        bob.receive("alice", &first, &mut rng).expect("ok"),
        b"hello"
    );
    assert!(bob.keys.one_time.is_empty());
}

#[test]
fn replay_and_forgery_leave_the_session_unchanged() {
    let (mut alice, mut bob, mut rng) = established(true, 4);
    let m = alice.send("bob", b"once");
    assert_eq!(bob.receive("alice", &m, &mut rng).expect("ok"), b"once");
    assert!(matches!(
        bob.receive("alice", &m, &mut rng),
        Err(DecryptError::DuplicatedMessage { .. })
    ));
    let next = alice.send("bob", b"next");
    let CiphertextMessage::Whisper(w) = &next else {
        panic!("whisper")
    };
    for position in [1, 10, w.serialized().len() - 1] {
        let mut bytes = w.serialized().to_vec();
        bytes[position] ^= 0x40;
        let Ok(parsed) = SignalMessage::deserialize(&bytes) else {
            continue;
        };
        let record = bob.sessions.get_mut("alice").expect("session");
        assert!(session::decrypt(record, &parsed, None, &mut rng).is_err());
    }
    assert_eq!(bob.receive("alice", &next, &mut rng).expect("ok"), b"next");
}

#[test]
fn message_from_another_sender_is_refused() {
    let (mut alice, mut bob, mut rng) = established(false, 5);
    let mut carol = Party::new(44, &mut rng);
    let bundle = bob.bundle(false, false, &mut rng);
    carol.start("bob", bundle, &mut rng);
    let first = carol.send("bob", b"from carol");
    bob.receive("carol", &first, &mut rng)
        .expect("carol's own session");
    let reply = bob.send("carol", b"ack");
    carol.receive("bob", &reply, &mut rng).expect("ok");
    let from_carol = carol.send("bob", b"pretending");
    assert!(bob.receive("alice", &from_carol, &mut rng).is_err());
    let real = alice.send("bob", b"real");
    assert_eq!(bob.receive("alice", &real, &mut rng).expect("ok"), b"real");
}

#[test]
fn forward_jump_limit_at_n_and_n_plus_one() {
    let (mut alice, mut bob, mut rng) = established(false, 6);
    // Alice's current chain index is 0 (new chain after Bob's reply); skip ahead.
    let mut messages = Vec::new();
    for i in 0..=MAX_FORWARD_JUMPS + 1 {
        messages.push(alice.send("bob", &i.to_le_bytes()));
    }
    let over = &messages[(MAX_FORWARD_JUMPS + 1) as usize];
    assert!(matches!(
        bob.receive("alice", over, &mut rng),
        Err(DecryptError::TooFarInFuture { .. })
    ));
    let at_limit = &messages[MAX_FORWARD_JUMPS as usize];
    assert_eq!(
        bob.receive("alice", at_limit, &mut rng)
            .expect("jump of exactly N"),
        MAX_FORWARD_JUMPS.to_le_bytes()
    );
    // The newest MAX_MESSAGE_KEYS skipped keys are kept, older ones are gone.
    let newest_kept = MAX_FORWARD_JUMPS as usize - 1;
    let oldest_kept = MAX_FORWARD_JUMPS as usize - MAX_MESSAGE_KEYS;
    assert!(
        bob.receive("alice", &messages[newest_kept], &mut rng)
            .is_ok()
    );
    assert!(
        bob.receive("alice", &messages[oldest_kept], &mut rng)
            .is_ok()
    );
    assert!(matches!(
        bob.receive("alice", &messages[oldest_kept - 1], &mut rng),
        Err(DecryptError::DuplicatedMessage { .. })
    ));
    assert!(bob.receive("alice", over, &mut rng).is_ok());
}

#[test]
fn receiver_chains_are_bounded() {
    let (mut alice, mut bob, mut rng) = established(false, 7);
    // Each round trip gives Alice a new sending chain; keep one late message per chain.
    let mut late = Vec::new();
    for round in 0..=MAX_RECEIVER_CHAINS {
        late.push(alice.send("bob", format!("late {round}").as_bytes()));
        let m = alice.send("bob", b"on time");
        bob.receive("alice", &m, &mut rng).expect("ok");
        let reply = bob.send("alice", b"reply");
        alice.receive("bob", &reply, &mut rng).expect("ok");
    }
    // The oldest chain was dropped; the newest MAX_RECEIVER_CHAINS still decrypt.
    assert!(bob.receive("alice", &late[0], &mut rng).is_err());
    for message in &late[late.len() - (MAX_RECEIVER_CHAINS - 1)..] {
        assert!(bob.receive("alice", message, &mut rng).is_ok());
    }
}

#[test]
fn late_messages_decrypt_through_archived_sessions() {
    let (mut alice, mut bob, mut rng) = established(true, 8);
    let in_flight: Vec<_> = (0..3).map(|i| alice.send("bob", &[i])).collect();
    // Alice replaces the session with a fresh bundle.
    let bundle = bob.bundle(true, true, &mut rng);
    alice.start("bob", bundle, &mut rng);
    let fresh = alice.send("bob", b"new session");
    assert_eq!(
        bob.receive("alice", &fresh, &mut rng).expect("ok"),
        b"new session"
    );
    for (i, m) in in_flight.iter().enumerate().rev() {
        assert_eq!(
            bob.receive("alice", m, &mut rng).expect("archived"),
            [i as u8]
        );
    }
}

#[test]
fn archive_holds_at_most_the_limit() {
    let mut rng = StdRng::seed_from_u64(10);
    let mut alice = Party::new(1, &mut rng);
    let mut bob = Party::new(2, &mut rng);
    for _ in 0..ARCHIVED_STATES_MAX_LENGTH + 5 {
        let bundle = bob.bundle(false, false, &mut rng);
        alice.start("bob", bundle, &mut rng);
    }
    let record = &alice.sessions["bob"];
    assert!(record.has_current_state());
    assert_eq!(record.previous().count(), ARCHIVED_STATES_MAX_LENGTH);
}

#[test]
fn unacknowledged_session_expires_after_thirty_days() {
    let (mut alice, _bob, _rng) = pair(false, false, 12);
    let limit = NOW + MAX_UNACKNOWLEDGED_SESSION_AGE_SECS;
    assert!(alice.send_at("bob", b"x", limit).is_ok());
    assert_eq!(
        alice.send_at("bob", b"x", limit + 1).map(|_| ()),
        Err(EncryptError::SessionExpired)
    );
}

#[test]
fn version_mismatch_is_not_decrypted() {
    let (mut alice, mut bob, mut rng) = established(true, 13);
    let m = alice.send("bob", b"v4");
    let mut bytes = m.serialized().to_vec();
    bytes[0] = 0x34;
    let parsed = SignalMessage::deserialize(&bytes).expect("parses");
    let record = bob.sessions.get_mut("alice").expect("session");
    assert!(matches!(
        session::decrypt(record, &parsed, None, &mut rng),
        Err(DecryptError::VersionMismatch { .. } | DecryptError::InvalidMac)
    ));
    assert!(bob.receive("alice", &m, &mut rng).is_ok());
}
