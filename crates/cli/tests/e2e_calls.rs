//! `confianza call ADDRESS --send-audio IN.wav` and `confianza answer --save-audio OUT.wav`
//! end to end: a real `confianza-server` process relays the encrypted offer and answer, the
//! audio crosses UDP on 127.0.0.1 as SRTP, and the saved WAV equals the sent one byte for
//! byte. A declined call ends the caller's command with an error. Bad input is a one-line
//! error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use std::path::Path;

use e2e_support::{start_server_with_users, stderr, stdout};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// Mono, 8 kHz: 0.6 s of audio is 30 SRTP packets of 20 ms, the last one short.
const SAMPLE_RATE: u32 = 8_000;
const FRAMES: usize = 4_790;

/// A canonical 16-bit PCM WAV file (44-byte header) whose samples cover every byte value.
fn wav(sample_rate: u32, frames: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..frames * 2).map(|i| ((i * i) % 257) as u8).collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Writes `in.wav`, `frames` frames long, into `dir` for Alice to send; returns its path as
/// an argument of `confianza call`.
fn audio_file(dir: &Path, frames: usize) -> String {
    let input = dir.join("in.wav");
    std::fs::write(&input, wav(SAMPLE_RATE, frames)).unwrap();
    input.to_str().unwrap().to_owned()
}

#[test]
fn the_saved_audio_equals_the_sent_audio() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);
    let dir = tempfile::tempdir().unwrap();
    let input = &audio_file(dir.path(), FRAMES);
    let output = dir.path().join("out.wav");
    let output = output.to_str().unwrap();

    // Bob waits for the call; Alice calls once he is listening (the offer would also wait
    // in his mailbox).
    let (out, answered) = bob.in_background(
        &["answer", "--save-audio", output, "--timeout", "30s"],
        || alice.run(&["call", BOB, "--send-audio", input, "--timeout", "30s"]),
    );
    assert!(
        out.status.success(),
        "call failed: {}{}\nanswer: {}{}",
        stderr(&out),
        stdout(&out),
        stderr(&answered),
        stdout(&answered)
    );
    assert!(
        answered.status.success(),
        "answer failed: {}{}",
        stderr(&answered),
        stdout(&answered)
    );
    let caller_says = stdout(&out);
    assert!(
        caller_says.contains(&format!("calling {BOB}")),
        "{caller_says}"
    );
    assert!(
        caller_says.contains(&format!("{BOB} answered")),
        "{caller_says}"
    );
    assert!(caller_says.contains("30 SRTP packets"), "{caller_says}");
    let answerer_says = stdout(&answered);
    assert!(
        answerer_says.contains(&format!("answered {ALICE}")),
        "{answerer_says}"
    );
    assert!(
        answerer_says.contains("30 SRTP packets from alice@example.org, 0 missing"),
        "{answerer_says}"
    );
    assert_eq!(
        std::fs::read(output).unwrap(),
        wav(SAMPLE_RATE, FRAMES),
        "the saved audio differs"
    );

    // The offer is in both histories, and Bob's mailbox holds no second copy of it.
    let error = bob.fails(&["answer", "--save-audio", output, "--timeout", "1s"]);
    assert!(error.contains("no call within 1s"), "{error}");
}

#[test]
fn a_declined_call_ends_the_callers_command_with_an_error() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);
    let dir = tempfile::tempdir().unwrap();
    let input = &audio_file(dir.path(), FRAMES);

    let (error, declined) = bob.in_background(&["answer", "--decline", "--timeout", "30s"], || {
        alice.fails(&["call", BOB, "--send-audio", input, "--timeout", "30s"])
    });
    assert!(
        declined.status.success(),
        "answer --decline failed: {}{}",
        stderr(&declined),
        stdout(&declined)
    );
    assert!(
        error.contains(&format!("{BOB} declined the call")),
        "{error}"
    );
    let bob_says = stdout(&declined);
    assert!(
        bob_says.contains(&format!("declined the call from {ALICE}")),
        "{bob_says}"
    );
    // The offer was answered once: nothing waits for Bob now.
    let error = bob.fails(&["answer", "--decline", "--timeout", "1s"]);
    assert!(error.contains("no call within 1s"), "{error}");

    // Declining takes no audio file and no media address; answering needs the file.
    let output = dir.path().join("out.wav");
    for args in [
        &[
            "answer",
            "--decline",
            "--save-audio",
            output.to_str().unwrap(),
        ][..],
        &["answer", "--decline", "--media-address", "127.0.0.1"],
        &["answer"],
    ] {
        let out = bob.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);
    let dir = tempfile::tempdir().unwrap();
    let input = &audio_file(dir.path(), 160);

    for command in ["call", "answer"] {
        let help = alice.ok(&[command, "--help"]);
        assert!(help.contains("--timeout"), "{help}");
    }
    let missing = dir.path().join("missing.wav");
    let error = alice.fails(&["call", BOB, "--send-audio", missing.to_str().unwrap()]);
    assert!(error.contains("missing.wav"), "{error}");
    let not_wav = dir.path().join("not.wav");
    std::fs::write(&not_wav, b"RIFF but not really").unwrap();
    let error = alice.fails(&["call", BOB, "--send-audio", not_wav.to_str().unwrap()]);
    assert!(error.contains("not.wav"), "{error}");
    let error = alice.fails(&["call", "zed@example.org", "--send-audio", input]);
    assert!(error.contains("zed@example.org"), "{error}");
    // Nobody answers: the caller gives up after its timeout.
    let error = alice.fails(&["call", BOB, "--send-audio", input, "--timeout", "1s"]);
    assert!(error.contains("did not answer within 1s"), "{error}");
    let error = bob.fails(&["answer", "--save-audio", "/nonexistent/dir/out.wav"]);
    assert!(error.contains("/nonexistent/dir"), "{error}");
    let error = alice.fails(&[
        "call",
        BOB,
        "--send-audio",
        input,
        "--media-address",
        "not-an-ip",
    ]);
    assert!(error.contains("not-an-ip"), "{error}");
}
