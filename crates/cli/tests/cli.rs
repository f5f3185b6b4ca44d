//! The `confianza` binary end to end: the demo, textbook RSA, certificate text.

use std::process::Command;

fn confianza(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_confianza"))
        .args(args)
        .output()
        .expect("the confianza binary runs")
}

fn shared() -> String {
    std::env::var("CONFIANZA_SHARED")
        .unwrap_or_else(|_| format!("{}/../../../shared", env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn demo_runs_every_step_and_exits_zero() {
    // The demo starts its own embedded server on 127.0.0.1 with ephemeral ports.
    let out = confianza(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "root fingerprint (SHA-256, compare out of band)",
        "✓ bob@example.org    code redeemed, proof of possession checked",
        "refused: forged bundle: the bundle's identity key is not the certified key",
        "with a certificate from mallory's own CA: refused: certificate not issued by the pinned organisation CA",
        "bob reconnects and reads from alice@example.org (certified): hello bob",
        "alice's history marks 2 messages read",
        "decrypts them in the order 4, 1, 5, 3, 2",
        "✓ #1 (",
        "#3 delivered again (as after a lost acknowledgement): recognised by its message id and dropped",
        "carol@example.org reads from alice@example.org: lunch at noon?",
        "alice's sender key was renewed and sent to bob only",
        "carol receives nothing after leaving",
        "checks digest and MAC before decrypting, and saves report.pdf: identical",
        "bob's client refuses it: the attachment's MAC does not match",
        "bob's client decrypts the offer, derives the SRTP keys",
        "bob scans alice's QR code (74 bytes): match",
        "the received audio equals the sent audio",
        "alice starts a new session with bob: stapled OCSP says certificate revoked",
        "carol tries to start a session with bob: certificate revoked",
        "every check above passed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn textbook_verify_shows_the_steps_and_the_verdict() {
    let out = confianza(&[
        "textbook",
        "verify",
        "--ca-e",
        "47",
        "--ca-n",
        "899",
        "--cert",
        "530",
        "--claimed-key",
        "611",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("47 = 101111b"), "{text}");
    assert!(text.contains("530^32 = 400 × 400 mod 899 = 877"), "{text}");
    assert!(text.contains("AUTHENTIC"), "{text}");

    let wrong = confianza(&[
        "textbook",
        "verify",
        "--ca-e",
        "47",
        "--ca-n",
        "899",
        "--cert",
        "530",
        "--claimed-key",
        "612",
    ]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("NOT AUTHENTIC"));

    let bad = confianza(&["textbook", "keygen", "--p", "4", "--q", "31", "--e", "47"]);
    assert!(!bad.status.success());
    assert!(!String::from_utf8_lossy(&bad.stderr).is_empty());
}

#[test]
fn cert_show_prints_what_openssl_prints() {
    let path = format!("{}/vectors/x509/webpki/ed25519/ca.der", shared());
    let out = confianza(&["cert", "show", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = String::from_utf8_lossy(&out.stdout).into_owned();
    let Ok(openssl) = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-text", "-noout", "-in", &path])
        .output()
    else {
        eprintln!("openssl is not installed; compared nothing");
        return;
    };
    assert_eq!(ours, String::from_utf8_lossy(&openssl.stdout));
}

#[test]
fn bad_input_is_a_one_line_error() {
    let out = confianza(&["cert", "show", "/nonexistent/file.pem"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot read"), "{err}");

    let garbage = std::env::temp_dir().join(format!("confianza-garbage-{}", std::process::id()));
    std::fs::write(&garbage, b"not a certificate").expect("temp file");
    let out = confianza(&["cert", "show", garbage.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&garbage);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a certificate nor a CRL"));
}
