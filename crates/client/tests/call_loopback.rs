//! Calls over real UDP sockets on 127.0.0.1: the invitation through its message content, the
//! authenticated answer, paced SRTP audio, and the saved WAV equal to the sent one byte for
//! byte — also through a relay that tampers with and replays packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confianza_client::call::{self, AudioFormat, CallError, CallInvitation, RefusedPackets, Wav};
use prost::Message;
use tokio::net::UdpSocket;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

fn test_audio(sample_rate: u32, channels: u16, frames: usize) -> Wav {
    let format = AudioFormat::new(sample_rate, channels).unwrap();
    // A chirp-like pattern that covers every byte value, so a swapped or dropped byte shows.
    let data = (0..frames * format.frame_len())
        .map(|i| ((i * i) % 257) as u8)
        .collect();
    Wav::new(format, data).unwrap()
}

async fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The invitation as the answerer receives it: encoded, sent, decoded.
fn deliver(invitation: &CallInvitation) -> CallInvitation {
    let bytes = invitation.to_content().encode_to_vec();
    let content = confianza_client::content::CallOffer::decode(&bytes[..]).unwrap();
    CallInvitation::from_content(&content).unwrap()
}

async fn call_and_compare(wav: Wav) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    std::fs::write(&input, wav.to_bytes()).unwrap();

    let caller = bind().await;
    let (invitation, outgoing) =
        call::start_call(&mut rand::rng(), caller.local_addr().unwrap()).unwrap();
    let incoming = deliver(&invitation).answer();
    assert_eq!(incoming.call_id(), outgoing.call_id());

    let answerer = bind().await;
    let out = output.clone();
    let receiving =
        tokio::spawn(
            async move { call::receive_audio(&answerer, incoming, &out, IDLE_TIMEOUT).await },
        );
    let connected = outgoing
        .await_answer(&caller, ANSWER_TIMEOUT)
        .await
        .unwrap();
    let sent = call::send_audio(&caller, connected, &input).await.unwrap();
    let received = receiving.await.unwrap().unwrap();

    assert_eq!(received.missing_packets, 0);
    assert_eq!(received.audio_packets, sent.audio_packets);
    assert_eq!(received.refused, RefusedPackets::default());
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&input).unwrap()
    );
}

#[tokio::test]
async fn loopback_call_mono_8khz_audio_is_equal() {
    // 0.9 s and a partial last packet (7,300 frames = 45 × 160 + 100).
    call_and_compare(test_audio(8000, 1, 7300)).await;
}

#[tokio::test]
async fn loopback_call_stereo_48khz_audio_is_equal() {
    // 300-frame packets (MTU cap), 0.3 s.
    call_and_compare(test_audio(48000, 2, 14_450)).await;
}

/// Forwards between caller and answerer; on the way to the answerer, sends a tampered copy
/// before audio packet 5, replays packet 5 right after it, and replays packet 3 after packet 10.
async fn relay(socket: Arc<UdpSocket>, caller: SocketAddr) {
    let mut answerer = None;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let packet = buf[..len].to_vec();
        if from != caller {
            answerer = Some(from);
            let _ = socket.send_to(&packet, caller).await;
            continue;
        }
        let Some(to) = answerer else { continue };
        let n = seen.len();
        seen.push(packet.clone());
        if n == 5 {
            let mut tampered = packet.clone();
            tampered[20] ^= 0x40;
            let _ = socket.send_to(&tampered, to).await;
        }
        let _ = socket.send_to(&packet, to).await;
        if n == 5 {
            let _ = socket.send_to(&packet, to).await;
        }
        if n == 10 {
            let _ = socket.send_to(&seen[3], to).await;
        }
    }
}

#[tokio::test]
async fn tampered_and_replayed_packets_are_refused() {
    let wav = test_audio(8000, 1, 4000);
    let caller = bind().await;
    let relay_socket = Arc::new(bind().await);
    let relay_address = relay_socket.local_addr().unwrap();
    let relay_task = tokio::spawn(relay(relay_socket, caller.local_addr().unwrap()));

    // The answerer reaches the caller through the relay.
    let (invitation, outgoing) = call::start_call(&mut rand::rng(), relay_address).unwrap();
    let incoming = deliver(&invitation).answer();
    let answerer = bind().await;
    let receiving =
        tokio::spawn(async move { incoming.receive_audio(&answerer, IDLE_TIMEOUT).await });
    let connected = outgoing
        .await_answer(&caller, ANSWER_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(connected.peer(), relay_address);
    connected.send_audio(&caller, &wav).await.unwrap();
    let received = receiving.await.unwrap().unwrap();
    relay_task.abort();

    assert_eq!(
        received.refused,
        RefusedPackets {
            authentication: 1,
            replay: 2,
            other: 0
        }
    );
    assert_eq!(received.missing_packets, 0);
    assert_eq!(received.wav, wav);
}

#[tokio::test]
async fn an_answer_with_other_keys_is_not_accepted() {
    let caller = bind().await;
    let (_invitation, outgoing) =
        call::start_call(&mut rand::rng(), caller.local_addr().unwrap()).unwrap();
    // Someone who did not receive the invitation starts their own call to the same address.
    let (forged, _) = call::start_call(&mut rand::rng(), caller.local_addr().unwrap()).unwrap();
    let impostor = bind().await;
    let impostor_task = tokio::spawn(async move {
        forged
            .answer()
            .receive_audio(&impostor, Duration::from_millis(600))
            .await
    });
    let result = outgoing
        .await_answer(&caller, Duration::from_millis(400))
        .await;
    assert!(matches!(result, Err(CallError::NoAnswer(_))), "{result:?}");
    assert!(matches!(
        impostor_task.await.unwrap(),
        Err(CallError::Timeout {
            audio_packets: 0,
            ..
        })
    ));
}

#[tokio::test]
async fn silence_from_the_caller_times_out() {
    let caller = bind().await;
    let (invitation, _outgoing) =
        call::start_call(&mut rand::rng(), caller.local_addr().unwrap()).unwrap();
    let answerer = bind().await;
    let result = invitation
        .answer()
        .receive_audio(&answerer, Duration::from_millis(300))
        .await;
    assert!(matches!(
        result,
        Err(CallError::Timeout {
            audio_packets: 0,
            ..
        })
    ));
}

#[test]
fn invitations_with_bad_fields_are_refused() {
    use confianza_client::call::OfferError;
    use confianza_client::content::CallOffer;
    let address: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let (invitation, _) = call::start_call(&mut rand::rng(), address).unwrap();
    let good = invitation.to_content();
    let mut short_key = good.clone();
    short_key.call_key.pop();
    assert!(matches!(
        CallInvitation::from_content(&short_key),
        Err(OfferError::Key(_))
    ));
    let mut hostname = good.clone();
    hostname.media_address = "example.org:4000".into();
    assert!(matches!(
        CallInvitation::from_content(&hostname),
        Err(OfferError::Address)
    ));
    let unspecified = CallOffer {
        media_address: "0.0.0.0:4000".into(),
        ..good
    };
    assert!(matches!(
        CallInvitation::from_content(&unspecified),
        Err(OfferError::UnusableAddress(_))
    ));
    assert!(matches!(
        call::start_call(&mut rand::rng(), "127.0.0.1:0".parse().unwrap()),
        Err(OfferError::UnusableAddress(_))
    ));
}

#[tokio::test]
async fn answerer_keeps_going_while_the_caller_is_not_listening_yet() {
    // The caller's port is closed when the answerer starts: its first "ready" packets are lost
    // (they draw ICMP port unreachable; Windows reports that on the next receive, Linux does
    // not on an unconnected socket) and the repeats reach the caller once it listens.
    let placeholder = bind().await;
    let address = placeholder.local_addr().unwrap();
    drop(placeholder);
    let (invitation, outgoing) = call::start_call(&mut rand::rng(), address).unwrap();
    let answerer = bind().await;
    let incoming = invitation.answer();
    let receiving =
        tokio::spawn(async move { incoming.receive_audio(&answerer, IDLE_TIMEOUT).await });
    tokio::time::sleep(Duration::from_millis(350)).await;

    let caller = UdpSocket::bind(address).await.unwrap();
    let wav = test_audio(8000, 1, 800);
    let connected = outgoing
        .await_answer(&caller, ANSWER_TIMEOUT)
        .await
        .unwrap();
    connected.send_audio(&caller, &wav).await.unwrap();
    assert_eq!(receiving.await.unwrap().unwrap().wav, wav);
}
