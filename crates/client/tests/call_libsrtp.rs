//! SRTP interop with C libsrtp (through Python's `pylibsrtp`): packets we protect are
//! byte-identical to libsrtp's and unprotected by it, and we unprotect libsrtp's, across a
//! sequence-number rollover (65535 → 0), with CSRCs, header extensions and padding.
//!
//! Skipped, with a note, when `python3` or `pylibsrtp` is missing (`pip install pylibsrtp`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use confianza_client::call::srtp::rtp::RtpHeader;
use confianza_client::call::{SrtpReceiver, SrtpSender, UnprotectError};
use confianza_protocol::call::{CallDirection, CallMasterSecret, SrtpMasterKeys};

/// Reads `key` then `P <hex>` (protect with an outbound session) and `U <hex>` (unprotect
/// with an inbound session) lines; answers one line each: the hex result or `ERR <reason>`.
const PEER: &str = r#"
import sys
from pylibsrtp import Policy, Session
lines = sys.stdin.read().splitlines()
key = bytes.fromhex(lines[0])
tx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
rx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
for line in lines[1:]:
    op, data = line.split(" ")
    try:
        out = tx.protect(bytes.fromhex(data)) if op == "P" else rx.unprotect(bytes.fromhex(data))
        print(out.hex())
    except Exception as e:
        print("ERR", type(e).__name__)
"#;

fn libsrtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pylibsrtp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "note: skipping libsrtp interop: python3 with pylibsrtp not found (pip install pylibsrtp)"
        );
    }
    ok
}

fn run_libsrtp(keys: &SrtpMasterKeys, requests: &[(char, Vec<u8>)]) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", PEER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut input = format!("{}{}\n", hex::encode(keys.key()), hex::encode(keys.salt()));
    for (op, data) in requests {
        input.push_str(&format!("{op} {}\n", hex::encode(data)));
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to python3");
    let output = child.wait_with_output().expect("python3 output");
    assert!(output.status.success(), "the libsrtp peer failed");
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), requests.len());
    lines
}

/// Plaintext RTP packets across the rollover, in four header shapes.
fn plaintexts() -> Vec<Vec<u8>> {
    let ssrc = 0xcafe_f00d;
    (65526u16..=65535)
        .chain(0..10)
        .enumerate()
        .map(|(n, seq)| {
            let payload: Vec<u8> = (0..(40 + n * 13)).map(|i| (i * 31 + n) as u8).collect();
            let timestamp = 1000 + 160 * n as u32;
            let mut packet = RtpHeader::write_simple(n == 0, 96, seq, timestamp, ssrc, &payload);
            match n % 4 {
                // Two CSRCs.
                1 => {
                    packet[0] |= 2;
                    packet.splice(12..12, [1, 2, 3, 4, 5, 6, 7, 8]);
                }
                // A one-word RFC 8285 header extension.
                2 => {
                    packet[0] |= 0x10;
                    packet.splice(12..12, [0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
                }
                // Four bytes of RTP padding.
                3 => {
                    packet[0] |= 0x20;
                    packet.extend_from_slice(&[0, 0, 0, 4]);
                }
                _ => {}
            }
            packet
        })
        .collect()
}

#[test]
fn packets_match_libsrtp_across_rollover() {
    if !libsrtp_available() {
        return;
    }
    let secret = CallMasterSecret::from_bytes(*b"confianza call secret for libsrt");
    let keys = SrtpMasterKeys::derive(&secret, 7, CallDirection::CallerToCallee);
    let plain = plaintexts();

    let mut sender = SrtpSender::new(&keys);
    let ours: Vec<Vec<u8>> = plain.iter().map(|p| sender.protect(p).unwrap()).collect();
    assert_eq!(sender.last_index(), Some(0x1_0009), "the ROC advanced to 1");

    let mut tampered = ours[12].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut requests: Vec<(char, Vec<u8>)> = plain.iter().map(|p| ('P', p.clone())).collect();
    requests.push(('U', tampered));
    requests.extend(ours.iter().map(|p| ('U', p.clone())));
    requests.push(('U', ours[11].clone())); // a replay after the rollover
    let answers = run_libsrtp(&keys, &requests);
    let (protected_by_libsrtp, unprotected) = answers.split_at(plain.len());

    for (n, (theirs, ours)) in protected_by_libsrtp.iter().zip(&ours).enumerate() {
        assert_eq!(
            *theirs,
            hex::encode(ours),
            "packet {n} differs from libsrtp's"
        );
    }
    assert!(
        unprotected[0].starts_with("ERR"),
        "libsrtp accepted a tampered packet"
    );
    for (n, (got, want)) in unprotected[1..=plain.len()].iter().zip(&plain).enumerate() {
        assert_eq!(
            *got,
            hex::encode(want),
            "libsrtp could not unprotect packet {n}"
        );
    }
    assert!(
        unprotected[plain.len() + 1].starts_with("ERR"),
        "libsrtp accepted a replay"
    );

    // libsrtp's packets through our receiver, reordered around the rollover: 0 (ROC 1) before
    // 65534 and 65535 (ROC 0).
    let theirs: Vec<Vec<u8>> = protected_by_libsrtp
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect();
    let mut receiver = SrtpReceiver::new(&keys);
    let mut order: Vec<usize> = (0..8).collect();
    order.extend([10, 8, 9]);
    order.extend(11..plain.len());
    for n in order {
        let got = receiver.unprotect(&theirs[n]).unwrap();
        assert_eq!(got.packet, plain[n], "packet {n}");
        assert_eq!(got.index, 65526 + n as u64);
    }
    assert_eq!(
        receiver.unprotect(&theirs[10]),
        Err(UnprotectError::Replayed { index: 0x1_0000 })
    );
}
