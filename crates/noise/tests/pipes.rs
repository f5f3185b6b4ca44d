//! Noise Pipes through the public API: the full flow, authentication, replay, limits, framing,
//! and (with the `tokio` feature) the same over TCP on 127.0.0.1.

use confianza_noise::limits::{
    MAX_FRAME_LEN, MAX_HANDSHAKE_PAYLOAD_LEN, MAX_HELLO_FRAME_LEN, MAX_TRANSPORT_PLAINTEXT_LEN,
    TAG_LEN,
};
use confianza_noise::{
    AcceptError, AuthenticateError, ClientConfig, ClientEstablished, ClientHandshake, FinishError,
    FrameDecoder, HandshakeMessageError, HandshakePattern, PublicKey, ReadResponseError,
    ServerConfig, ServerConfigError, ServerEstablished, ServerHandshake, ServerKeyRejected,
    StaticKeyPair, encode_frame, wire,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A stand-in for the PKI's certificate check: the "certificate" names the server and holds its
/// key, which must be the key the handshake proved. The real check is `crates/pki`'s.
fn certificate_for(name: &str, key: &PublicKey) -> Vec<u8> {
    let mut certificate = name.as_bytes().to_vec();
    certificate.push(0);
    certificate.extend_from_slice(key.as_bytes());
    certificate
}

fn verifier_for(name: &'static str) -> impl Fn(&PublicKey, &[u8]) -> Result<(), ServerKeyRejected> {
    move |key: &PublicKey, certificate: &[u8]| {
        if certificate == certificate_for(name, key).as_slice() {
            Ok(())
        } else {
            Err(ServerKeyRejected::new(
                "certificate does not bind this key to the server name",
            ))
        }
    }
}

fn server_config(seed: u64) -> ServerConfig {
    let key = StaticKeyPair::generate(&mut rng(seed));
    let certificate = certificate_for("chat.example.org", &key.public_key());
    ServerConfig::new(key, certificate).expect("certificate fits")
}

fn client_config(seed: u64) -> ClientConfig {
    ClientConfig::new(StaticKeyPair::generate(&mut rng(seed)))
}

/// Runs a whole handshake in memory.
fn connect(
    client: &ClientConfig,
    server: &ServerConfig,
    cached: Option<PublicKey>,
    payload: &[u8],
    seed: u64,
) -> (ClientEstablished, ServerEstablished) {
    let mut rng = rng(seed);
    let (handshake, hello) = ClientHandshake::start(client, cached, &mut rng).expect("start");
    let (pending, response) = ServerHandshake::accept(server, &hello, &mut rng).expect("accept");
    let established = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&verifier_for("chat.example.org"), payload)
        .expect("authenticated");
    let server_end = pending.finish(&established.final_message).expect("finish");
    (established, server_end)
}

fn assert_channel_works(client: &mut ClientEstablished, server: &mut ServerEstablished) {
    assert_eq!(
        client.transport.handshake_hash(),
        server.transport.handshake_hash()
    );
    for round in 0..3u8 {
        let up = client.transport.encrypt(&[round; 100]).expect("encrypt");
        assert_eq!(
            server.transport.decrypt(&up).expect("decrypt"),
            vec![round; 100]
        );
        let down = server.transport.encrypt(&[round + 10; 7]).expect("encrypt");
        assert_eq!(
            client.transport.decrypt(&down).expect("decrypt"),
            vec![round + 10; 7]
        );
    }
}

#[test]
fn pipes_flow_xx_then_ik_then_fallback_after_key_rotation() {
    let client = client_config(1);
    let server = server_config(2);

    // First contact: XX. The client learns and authenticates the server's key.
    let (mut c, mut s) = connect(&client, &server, None, b"device alice/1", 10);
    assert_eq!(c.server.pattern(), HandshakePattern::Xx);
    assert_eq!(s.client.pattern(), HandshakePattern::Xx);
    assert_eq!(*c.server.static_key(), server.public_key());
    assert_eq!(*s.client.static_key(), client.public_key());
    assert_eq!(s.client.payload(), b"device alice/1");
    assert_channel_works(&mut c, &mut s);
    let cached = *c.server.static_key();

    // Resumption: IK with the cached key.
    let (mut c, mut s) = connect(&client, &server, Some(cached), b"device alice/1", 11);
    assert_eq!(c.server.pattern(), HandshakePattern::Ik);
    assert_eq!(s.client.pattern(), HandshakePattern::Ik);
    assert_eq!(*s.client.static_key(), client.public_key());
    assert_eq!(s.client.payload(), b"device alice/1");
    assert_channel_works(&mut c, &mut s);

    // The server rotates its key: IK to the old key fails, XXfallback completes, and the client
    // learns (and authenticates) the new key.
    let rotated = server_config(3);
    assert_ne!(rotated.public_key(), cached);
    let (mut c, mut s) = connect(&client, &rotated, Some(cached), b"device alice/1", 12);
    assert_eq!(c.server.pattern(), HandshakePattern::XxFallback);
    assert_eq!(s.client.pattern(), HandshakePattern::XxFallback);
    assert_eq!(*c.server.static_key(), rotated.public_key());
    assert_eq!(*s.client.static_key(), client.public_key());
    assert_eq!(s.client.payload(), b"device alice/1");
    assert_channel_works(&mut c, &mut s);

    // And the new key resumes with IK.
    let (c, _s) = connect(&client, &rotated, Some(rotated.public_key()), b"", 13);
    assert_eq!(c.server.pattern(), HandshakePattern::Ik);
}

#[test]
fn a_rejected_server_gets_nothing_from_the_client() {
    let client = client_config(1);
    // A server whose certificate names another host.
    let key = StaticKeyPair::generate(&mut rng(5));
    let impostor = ServerConfig::new(
        key.clone(),
        certificate_for("evil.example.net", &key.public_key()),
    )
    .expect("fits");
    for cached in [
        None,
        Some(key.public_key()),
        Some(server_config(2).public_key()),
    ] {
        let mut rng = rng(20);
        let (handshake, hello) = ClientHandshake::start(&client, cached, &mut rng).expect("start");
        let (_pending, response) =
            ServerHandshake::accept(&impostor, &hello, &mut rng).expect("accept");
        let unverified = handshake.read_response(&response).expect("well-formed");
        assert_eq!(*unverified.static_key(), key.public_key());
        let refused = unverified.authenticate(&verifier_for("chat.example.org"), b"secret payload");
        assert!(
            matches!(refused, Err(AuthenticateError::Rejected(_))),
            "{cached:?}"
        );
    }
}

#[test]
fn a_certificate_for_another_key_is_rejected() {
    // The certificate is genuine but binds the server name to a different key.
    let client = client_config(1);
    let real = StaticKeyPair::generate(&mut rng(2));
    let attacker = StaticKeyPair::generate(&mut rng(6));
    let stolen = certificate_for("chat.example.org", &real.public_key());
    let server = ServerConfig::new(attacker, stolen).expect("fits");
    let mut rng = rng(21);
    let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    let (_pending, response) = ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
    let result = handshake
        .read_response(&response)
        .expect("well-formed")
        .authenticate(&verifier_for("chat.example.org"), b"");
    assert!(matches!(result, Err(AuthenticateError::Rejected(_))));
}

#[test]
fn a_replayed_ik_hello_yields_a_handshake_nobody_can_finish() {
    let client = client_config(1);
    let server = server_config(2);
    let mut client_rng = rng(30);
    let (handshake, hello) =
        ClientHandshake::start(&client, Some(server.public_key()), &mut client_rng).expect("start");
    let (pending, response) =
        ServerHandshake::accept(&server, &hello, &mut rng(31)).expect("accept");
    let established = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&verifier_for("chat.example.org"), b"pay 10 euros")
        .expect("authenticated");
    let finish = established.final_message.clone();
    pending.finish(&finish).expect("the real session completes");

    // The attacker replays the hello, and then everything else it saw.
    let (replayed, replay_response) =
        ServerHandshake::accept(&server, &hello, &mut rng(32)).expect("accept");
    assert_eq!(replayed.pattern(), HandshakePattern::Ik);
    assert_ne!(replay_response, response, "a fresh server ephemeral");
    assert!(matches!(
        replayed.finish(&finish),
        Err(FinishError::Message(HandshakeMessageError::Decrypt))
    ));
    // Nor can it produce another finish: its guesses fail too, and each attempt consumed the
    // pending handshake, which held the only state.
    let (replayed, _) = ServerHandshake::accept(&server, &hello, &mut rng(33)).expect("accept");
    let mut forged = finish.clone();
    forged[1] ^= 1;
    assert!(replayed.finish(&forged).is_err());
    // `accept` borrows the configuration immutably: it has nowhere to record the replay, and
    // the client payload is released only by `finish`.
}

#[test]
fn a_replayed_hello_to_a_rotated_server_cannot_finish_the_fallback() {
    let client = client_config(1);
    let old = server_config(2);
    let rotated = server_config(3);
    let mut client_rng = rng(40);
    let (handshake, hello) =
        ClientHandshake::start(&client, Some(old.public_key()), &mut client_rng).expect("start");
    let (pending, response) =
        ServerHandshake::accept(&rotated, &hello, &mut rng(41)).expect("accept");
    assert_eq!(pending.pattern(), HandshakePattern::XxFallback);
    let finish = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&verifier_for("chat.example.org"), b"")
        .expect("authenticated")
        .final_message;
    pending.finish(&finish).expect("completes");
    let (replayed, _) = ServerHandshake::accept(&rotated, &hello, &mut rng(42)).expect("accept");
    assert!(replayed.finish(&finish).is_err());
}

#[test]
fn every_altered_handshake_byte_stops_the_handshake_or_falls_back() {
    let client = client_config(1);
    let server = server_config(2);
    let stale = server_config(3).public_key();
    let mut checked = 0;
    for cached in [None, Some(server.public_key()), Some(stale)] {
        for step in 0..3 {
            for position in [0usize, 1, 20, 32, 33, 40, 60, 80, 96, 120] {
                let mut rng = rng(50);
                let (handshake, mut hello) =
                    ClientHandshake::start(&client, cached, &mut rng).expect("start");
                let flip = |message: &mut Vec<u8>| match message.get_mut(position) {
                    Some(byte) => {
                        *byte ^= 0x40;
                        true
                    }
                    None => false,
                };
                let mut altered = step == 0 && flip(&mut hello);
                let Ok((pending, mut response)) =
                    ServerHandshake::accept(&server, &hello, &mut rng)
                else {
                    assert!(altered);
                    continue;
                };
                altered |= step == 1 && flip(&mut response);
                let Ok(unverified) = handshake.read_response(&response) else {
                    assert!(altered);
                    continue;
                };
                let Ok(established) =
                    unverified.authenticate(&verifier_for("chat.example.org"), b"hi")
                else {
                    panic!("the honest server is always accepted");
                };
                let mut finish = established.final_message;
                altered |= step == 2 && flip(&mut finish);
                let result = pending.finish(&finish);
                checked += 1;
                match result {
                    Err(_) => assert!(altered, "{cached:?} step {step} byte {position}"),
                    Ok(server_end) if altered => {
                        // The one alteration that does not stop the handshake: an IK hello whose
                        // sealed part (after `e`) no longer decrypts makes the server fall back,
                        // and XXfallback (which does not depend on those bytes) authenticates
                        // both sides afresh. Noise Pipes accepts this downgrade by design; both
                        // ends see it in `pattern()`.
                        assert_eq!(step, 0);
                        assert!(
                            cached.is_some() && position > 32,
                            "{cached:?} byte {position}"
                        );
                        assert_eq!(server_end.client.pattern(), HandshakePattern::XxFallback);
                        assert_eq!(established.server.pattern(), HandshakePattern::XxFallback);
                        assert_eq!(*server_end.client.static_key(), client.public_key());
                        assert_eq!(*established.server.static_key(), server.public_key());
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    assert!(checked > 20, "{checked}");
}

#[test]
fn unexpected_message_types_are_refused() {
    let client = client_config(1);
    let server = server_config(2);
    let mut rng = rng(60);
    let (_, mut hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    hello[0] = wire::XX_RESPONSE;
    assert_eq!(
        ServerHandshake::accept(&server, &hello, &mut rng).err(),
        Some(AcceptError::Message(HandshakeMessageError::UnexpectedType(
            wire::XX_RESPONSE
        )))
    );
    assert_eq!(
        ServerHandshake::accept(&server, &[], &mut rng).err(),
        Some(AcceptError::Message(HandshakeMessageError::Empty))
    );

    // An XX client does not take an IK or fallback response.
    let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    let (_pending, mut response) =
        ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
    response[0] = wire::FALLBACK_RESPONSE;
    assert_eq!(
        handshake.read_response(&response).err(),
        Some(ReadResponseError::Message(
            HandshakeMessageError::UnexpectedType(wire::FALLBACK_RESPONSE)
        ))
    );

    // A server expecting an XX finish does not take an IK finish.
    let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    let (pending, response) = ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
    let mut finish = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&verifier_for("chat.example.org"), b"")
        .expect("ok")
        .final_message;
    finish[0] = wire::IK_FINISH;
    assert!(matches!(
        pending.finish(&finish),
        Err(FinishError::Message(HandshakeMessageError::UnexpectedType(
            wire::IK_FINISH
        )))
    ));
}

#[test]
fn hello_frame_limit_at_n_and_n_plus_one() {
    let client = client_config(1);
    let server = server_config(2);
    let mut rng = rng(70);
    let (_, hello) =
        ClientHandshake::start(&client, Some(server.public_key()), &mut rng).expect("start");
    assert_eq!(
        hello.len(),
        MAX_HELLO_FRAME_LEN,
        "an IK hello is exactly the limit"
    );
    assert!(ServerHandshake::accept(&server, &hello, &mut rng).is_ok());
    let mut longer = hello.clone();
    longer.push(0);
    assert_eq!(
        ServerHandshake::accept(&server, &longer, &mut rng).err(),
        Some(AcceptError::Message(HandshakeMessageError::TooLong))
    );
    // An XX hello with a payload is refused too (hellos carry none).
    let (_, mut xx_hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    assert!(ServerHandshake::accept(&server, &xx_hello, &mut rng).is_ok());
    xx_hello.push(0);
    assert!(ServerHandshake::accept(&server, &xx_hello, &mut rng).is_err());
}

#[test]
fn handshake_frames_over_the_noise_maximum_are_refused() {
    let client = client_config(1);
    let server = server_config(2);
    let mut rng = rng(75);
    let oversized = vec![wire::XX_RESPONSE; MAX_FRAME_LEN + 1];

    let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    assert_eq!(
        handshake.read_response(&oversized).err(),
        Some(ReadResponseError::Message(HandshakeMessageError::TooLong))
    );
    let (pending, _) = ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
    assert!(matches!(
        pending.finish(&oversized),
        Err(FinishError::Message(HandshakeMessageError::TooLong))
    ));
}

#[test]
fn a_low_order_cached_server_key_is_refused_before_sending() {
    let client = client_config(1);
    let result =
        ClientHandshake::start(&client, Some(PublicKey::from_bytes([0; 32])), &mut rng(76));
    assert_eq!(
        result.err(),
        Some(confianza_noise::StartError::WeakServerKey)
    );
}

#[test]
fn certificate_and_client_payload_limits_at_n_and_n_plus_one() {
    let key = StaticKeyPair::generate(&mut rng(2));
    assert_eq!(
        ServerConfig::new(key.clone(), vec![0; MAX_HANDSHAKE_PAYLOAD_LEN + 1]).err(),
        Some(ServerConfigError::CertificateTooLong {
            len: MAX_HANDSHAKE_PAYLOAD_LEN + 1,
            max: MAX_HANDSHAKE_PAYLOAD_LEN
        })
    );
    let server = ServerConfig::new(key, vec![0xcc; MAX_HANDSHAKE_PAYLOAD_LEN]).expect("N fits");
    let client = client_config(1);
    let accept_any = |_: &PublicKey, _: &[u8]| Ok(());
    for cached in [
        None,
        Some(server.public_key()),
        Some(server_config(3).public_key()),
    ] {
        let mut rng = rng(80);
        let (handshake, hello) = ClientHandshake::start(&client, cached, &mut rng).expect("start");
        let (pending, response) =
            ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
        // The largest certificate still fits a frame.
        let framed = encode_frame(&response).expect("fits a frame");
        assert!(framed.len() <= MAX_FRAME_LEN + 2);
        let unverified = handshake.read_response(&response).expect("response");
        assert_eq!(unverified.certificate().len(), MAX_HANDSHAKE_PAYLOAD_LEN);
        let established = unverified
            .authenticate(&accept_any, &vec![1; MAX_HANDSHAKE_PAYLOAD_LEN])
            .expect("N");
        encode_frame(&established.final_message).expect("fits a frame");
        let server_end = pending.finish(&established.final_message).expect("finish");
        assert_eq!(server_end.client.payload().len(), MAX_HANDSHAKE_PAYLOAD_LEN);

        let (handshake, hello) = ClientHandshake::start(&client, cached, &mut rng).expect("start");
        let (_, response) = ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
        let unverified = handshake.read_response(&response).expect("response");
        assert!(matches!(
            unverified.authenticate(&accept_any, &vec![1; MAX_HANDSHAKE_PAYLOAD_LEN + 1]),
            Err(AuthenticateError::PayloadTooLong { .. })
        ));
    }
}

#[test]
fn transport_limits_at_n_and_n_plus_one() {
    let (mut c, mut s) = connect(&client_config(1), &server_config(2), None, b"", 90);
    let largest = c
        .transport
        .encrypt(&vec![3; MAX_TRANSPORT_PLAINTEXT_LEN])
        .expect("N");
    assert_eq!(largest.len(), MAX_FRAME_LEN);
    encode_frame(&largest).expect("exactly one frame");
    assert_eq!(
        s.transport.decrypt(&largest).expect("decrypt").len(),
        MAX_TRANSPORT_PLAINTEXT_LEN
    );
    assert!(
        c.transport
            .encrypt(&vec![3; MAX_TRANSPORT_PLAINTEXT_LEN + 1])
            .is_err()
    );
}

#[test]
fn in_place_encryption_matches_and_a_refused_message_changes_nothing() {
    let (c, s) = connect(&client_config(1), &server_config(2), None, b"", 91);
    let (mut sender, _) = c.transport.split();
    let (_, mut receiver) = s.transport.split();

    // Behind whatever the buffer already holds (earlier frames), only the message is sealed.
    let mut buffer = b"earlier".to_vec();
    buffer.extend_from_slice(b"hello");
    sender.encrypt_in_place(&mut buffer, 7).expect("encrypt");
    assert_eq!(&buffer[..7], b"earlier");
    let mut sealed = buffer[7..].to_vec();
    assert_eq!(sealed.len(), 5 + TAG_LEN);

    // A tampered copy is refused and left as it was; the nonce does not move.
    let mut tampered = sealed.clone();
    tampered[0] ^= 1;
    let before = tampered.clone();
    assert!(receiver.decrypt_in_place(&mut tampered).is_err());
    assert_eq!(tampered, before);
    let mut short = vec![0u8; TAG_LEN - 1];
    assert!(receiver.decrypt_in_place(&mut short).is_err());

    receiver.decrypt_in_place(&mut sealed).expect("decrypt");
    assert_eq!(sealed, b"hello");

    // The next message in place and by copy agree (nonce 1 on both sides).
    let copied = sender.encrypt(b"second").expect("encrypt");
    assert_eq!(receiver.decrypt(&copied).expect("decrypt"), b"second");
}

#[test]
fn in_place_transport_limits_at_n_and_n_plus_one() {
    let (c, s) = connect(&client_config(1), &server_config(2), None, b"", 92);
    let (mut sender, _) = c.transport.split();
    let (_, mut receiver) = s.transport.split();
    let mut largest = vec![1u8; 3];
    largest.resize(3 + MAX_TRANSPORT_PLAINTEXT_LEN, 3);
    sender.encrypt_in_place(&mut largest, 3).expect("N");
    let mut largest = largest.split_off(3);
    assert_eq!(largest.len(), MAX_FRAME_LEN);
    receiver.decrypt_in_place(&mut largest).expect("decrypt");
    assert_eq!(largest.len(), MAX_TRANSPORT_PLAINTEXT_LEN);

    let mut too_long = vec![3u8; MAX_TRANSPORT_PLAINTEXT_LEN + 1];
    assert!(sender.encrypt_in_place(&mut too_long, 0).is_err());
    assert_eq!(
        too_long.len(),
        MAX_TRANSPORT_PLAINTEXT_LEN + 1,
        "left as it was"
    );
    let mut too_long = vec![3u8; MAX_FRAME_LEN + 1];
    assert!(receiver.decrypt_in_place(&mut too_long).is_err());
}

#[test]
fn fuzz_entry_points_survive_junk_and_real_messages() {
    let mut rng = rng(100);
    let client = client_config(1);
    let (_, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    for data in [
        &[][..],
        &[0x01],
        &[0x02; 97],
        &[0xff; 300],
        hello.as_slice(),
    ] {
        assert!(!confianza_noise::fuzzing::server_read_first_message(
            data, &mut rng
        ));
        assert!(!confianza_noise::fuzzing::client_read_response(
            data, &mut rng
        ));
        let _ = confianza_noise::fuzzing::decode_frames(data);
    }
    assert_eq!(confianza_noise::fuzzing::decode_frames(&[0, 0, 0, 1, 9]), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frame_decoder_reassembles_any_chunking(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
        cuts in proptest::collection::vec(1usize..700, 0..40),
    ) {
        let mut wire = Vec::new();
        for message in &messages {
            wire.extend(encode_frame(message).expect("fits"));
        }
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        let mut rest = wire.as_slice();
        let mut cut_iter = cuts.iter().cycle();
        while !rest.is_empty() {
            let size = cut_iter.next().copied().unwrap_or(rest.len()).min(rest.len());
            let (mut chunk, tail) = rest.split_at(size);
            rest = tail;
            while let Some(frame) = decoder.decode(&mut chunk).expect("valid stream") {
                decoded.push(frame);
            }
            prop_assert!(chunk.is_empty());
        }
        prop_assert_eq!(decoded, messages);
        prop_assert!(decoder.is_at_frame_boundary());
    }

    #[test]
    fn frame_decoder_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        max in 0usize..=MAX_FRAME_LEN,
        chunk in 1usize..64,
    ) {
        let mut decoder = FrameDecoder::with_max_len(max).expect("valid limit");
        'outer: for mut piece in data.chunks(chunk) {
            loop {
                match decoder.decode(&mut piece) {
                    Ok(Some(frame)) => prop_assert!(frame.len() <= max),
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }

    #[test]
    fn handshake_entry_points_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), seed in any::<u64>()) {
        let mut rng = rng(seed);
        prop_assert!(!confianza_noise::fuzzing::server_read_first_message(&data, &mut rng));
        prop_assert!(!confianza_noise::fuzzing::client_read_response(&data, &mut rng));
    }
}

#[cfg(feature = "tokio")]
mod over_tcp {
    use super::*;
    use confianza_noise::DecodeFrameError;
    use confianza_noise::driver::{self, AcceptStreamError, FrameIoError};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn run_pair(
        client: &ClientConfig,
        server: ServerConfig,
        cached: Option<PublicKey>,
        seed: u64,
    ) -> (HandshakePattern, PublicKey) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server_task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (mut stream, identity) = driver::accept(socket, &server, &mut rng(seed + 1))
                .await
                .expect("handshake");
            // Echo until the client closes.
            while let Some(message) = stream.recv().await.expect("recv") {
                stream.send(&message).await.expect("send");
            }
            identity
        });
        let socket = TcpStream::connect(address).await.expect("connect");
        let (mut stream, server_identity) = driver::connect(
            socket,
            client,
            cached,
            &verifier_for("chat.example.org"),
            b"device alice/1",
            &mut rng(seed),
        )
        .await
        .expect("handshake");
        for message in [
            b"hello".to_vec(),
            Vec::new(),
            vec![0xab; MAX_TRANSPORT_PLAINTEXT_LEN],
        ] {
            stream.send(&message).await.expect("send");
            assert_eq!(stream.recv().await.expect("recv"), Some(message));
        }
        stream.shutdown().await.expect("shutdown");
        let identity = server_task.await.expect("server task");
        assert_eq!(*identity.static_key(), client.public_key());
        assert_eq!(identity.payload(), b"device alice/1");
        assert_eq!(identity.pattern(), server_identity.pattern());
        (server_identity.pattern(), *server_identity.static_key())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pipes_flow_over_tcp_loopback() {
        let client = client_config(1);
        let server = server_config(2);
        let (pattern, key) = run_pair(&client, server.clone(), None, 200).await;
        assert_eq!((pattern, key), (HandshakePattern::Xx, server.public_key()));
        let (pattern, _) = run_pair(&client, server.clone(), Some(key), 210).await;
        assert_eq!(pattern, HandshakePattern::Ik);
        let rotated = server_config(3);
        let (pattern, new_key) = run_pair(&client, rotated.clone(), Some(key), 220).await;
        assert_eq!(
            (pattern, new_key),
            (HandshakePattern::XxFallback, rotated.public_key())
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_oversized_hello_is_refused_at_the_header() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = server_config(2);
        let server_task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            driver::accept(socket, &server, &mut rng(1))
                .await
                .map(|_| ())
        });
        let mut socket = TcpStream::connect(address).await.expect("connect");
        // Announce a 65 535-byte hello and send none of it.
        socket.write_all(&[0xff, 0xff]).await.expect("write");
        let result = server_task.await.expect("task");
        assert!(matches!(
            result,
            Err(AcceptStreamError::Frame(FrameIoError::Decode(
                DecodeFrameError::TooLong {
                    len: 65_535,
                    max: MAX_HELLO_FRAME_LEN
                }
            )))
        ));
    }
}
