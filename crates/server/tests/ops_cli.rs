//! The operator commands, run as the real `confianza-server` binary against a temporary data
//! directory, checked with OpenSSL (`openssl req`, `openssl verify -crl_check`, `openssl crl`)
//! and, for enrollment codes, through the library's `Authority` on the same directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use confianza_server::authority::{Authority, AuthorityError};

const BIN: &str = env!("CARGO_BIN_EXE_confianza-server");

/// Runs `confianza-server --data DIR ARGS` with `env` (and never a terminal passphrase).
fn server(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data").arg(dir).args(args);
    cmd.env_remove("CONFIANZA_CA_PASSPHRASE")
        .env_remove("CONFIANZA_DATABASE_URL")
        .env_remove("CONFIANZA_DATA")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run confianza-server")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = server(dir, args, &[]);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a command that must fail, and returns its one-line error.
fn fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = server(dir, args, env);
    assert!(!out.status.success(), "{args:?} unexpectedly succeeded");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(
        stderr.starts_with("confianza-server: error: ") || stderr.starts_with("error:"),
        "unexpected error output {stderr:?}"
    );
    stderr
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed")
}

fn init(dir: &Path, key_type: &str) {
    ok(
        dir,
        &[
            "init",
            "--org",
            "Example Org",
            "--name",
            "chat.example.org",
            "--key-type",
            key_type,
            "--no-passphrase",
        ],
    );
}

/// An `openssl req` CSR (EC P-256 key) for `cn` with a DNS SAN.
fn csr(dir: &Path, cn: &str) -> PathBuf {
    let req = dir.join(format!("{cn}.csr"));
    let key = dir.join(format!("{cn}.key"));
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().expect("path"),
        "-out",
        req.to_str().expect("path"),
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        &format!("subjectAltName=DNS:{cn}"),
    ]);
    assert!(out.status.success(), "openssl req failed");
    req
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn verify(dir: &Path, cert: &Path) -> Output {
    let chain = dir.join("chain.pem");
    let crl = dir.join("crl.pem");
    ok(dir, &["ca", "chain", "--out", path(&chain)]);
    ok(dir, &["ca", "crl", "--out", path(&crl)]);
    openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        path(&chain),
        "-CRLfile",
        path(&crl),
        path(cert),
    ])
}

#[test]
fn every_key_type_issues_revokes_and_openssl_agrees() {
    for key_type in ["ed25519", "p256", "rsa3072"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        init(&dir, key_type);
        let req = csr(tmp.path(), "www.example.org");
        let cert = tmp.path().join("www.pem");
        let serial = ok(
            &dir,
            &[
                "ca",
                "issue",
                "--csr",
                path(&req),
                "--profile",
                "tls-server",
                "--out",
                path(&cert),
            ],
        );
        let serial = serial.trim().to_owned();
        assert_eq!(serial.len(), 32, "{serial}");
        let good = verify(&dir, &cert);
        assert!(
            good.status.success(),
            "{key_type}: openssl verify: {}",
            String::from_utf8_lossy(&good.stderr)
        );
        // The serial as `openssl x509 -serial` prints it is accepted.
        let printed = openssl(&["x509", "-in", path(&cert), "-noout", "-serial"]);
        let printed = String::from_utf8(printed.stdout).expect("UTF-8");
        ok(
            &dir,
            &["ca", "revoke", printed.trim(), "--reason", "keyCompromise"],
        );
        let bad = verify(&dir, &cert);
        assert!(
            !bad.status.success(),
            "{key_type}: revoked certificate accepted"
        );
        assert!(
            String::from_utf8_lossy(&bad.stdout).contains("revoked")
                || String::from_utf8_lossy(&bad.stderr).contains("revoked"),
            "{key_type}: not refused as revoked"
        );
        let text = openssl(&["crl", "-in", path(&dir.join("crl.pem")), "-noout", "-text"]);
        let text = String::from_utf8(text.stdout).expect("UTF-8");
        assert!(text.contains(&serial.to_uppercase()), "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        // The DER CRL kept in the data directory is the same list.
        let kept = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path(&dir.join("ca/intermediate.crl")),
            "-noout",
            "-text",
        ]);
        assert!(String::from_utf8_lossy(&kept.stdout).contains(&serial.to_uppercase()));
        // The Noise certificate validates to the root as well.
        let chain = dir.join("chain.pem");
        let noise = openssl(&[
            "verify",
            "-CAfile",
            path(&chain),
            path(&dir.join("server/noise-cert.pem")),
        ]);
        assert!(noise.status.success(), "{key_type}: noise certificate");
    }
}

#[test]
fn list_show_export_and_der_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&dir, "ed25519");
    let req = csr(tmp.path(), "api.example.org");
    let cert = tmp.path().join("api.der");
    let serial = ok(
        &dir,
        &[
            "ca",
            "issue",
            "--csr",
            path(&req),
            "--profile",
            "tls-client",
            "--out",
            path(&cert),
            "--der",
        ],
    );
    let serial = serial.trim();
    let parsed = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        path(&cert),
        "-noout",
        "-ext",
        "extendedKeyUsage",
    ]);
    assert!(String::from_utf8_lossy(&parsed.stdout).contains("TLS Web Client Authentication"));
    let list = ok(&dir, &["ca", "list", "--subject", "API.example"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(serial) && list.contains("valid"));
    let show = ok(&dir, &["ca", "show", &serial.to_uppercase()]);
    assert!(show.contains("api.example.org") && show.contains("BEGIN CERTIFICATE"));
    ok(&dir, &["ca", "revoke", serial, "--reason", "superseded"]);
    let revoked = ok(&dir, &["ca", "list", "--status", "revoked"]);
    assert_eq!(revoked.lines().count(), 1, "{revoked}");
    assert!(ok(&dir, &["ca", "show", serial]).contains("superseded"));
    let export = ok(&dir, &["ca", "export"]);
    let json: serde_json::Value = serde_json::from_str(&export).expect("JSON");
    // Intermediate, OCSP signer, RA officer, Noise certificate, and ours.
    assert_eq!(json.as_array().map(Vec::len), Some(5));
    let crl = tmp.path().join("crl.der");
    ok(&dir, &["ca", "crl", "--out", path(&crl), "--der"]);
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        path(&crl),
        "-noout",
        "-text",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("Superseded"));
}

#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // Nothing there yet.
    assert!(fails(&dir, &["ca", "list"], &[]).contains("not a Confianza data directory"));
    init(&dir, "ed25519");
    let before = ok(&dir, &["ca", "export"]);
    // A second init is refused.
    let again = ["init", "--org", "Other", "--no-passphrase"];
    assert!(fails(&dir, &again, &[]).contains("already holds a CA"));
    // Malformed CSR.
    let junk = tmp.path().join("junk.csr");
    std::fs::write(
        &junk,
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .expect("write");
    let out = tmp.path().join("never.pem");
    let e = fails(
        &dir,
        &[
            "ca",
            "issue",
            "--csr",
            path(&junk),
            "--profile",
            "tls-server",
            "--out",
            path(&out),
        ],
        &[],
    );
    assert!(e.contains("invalid request"), "{e}");
    assert!(!out.exists());
    // A CSR whose signature does not verify (one byte of the signature flipped).
    let good = csr(tmp.path(), "x.example.org");
    let der = openssl(&["req", "-in", path(&good), "-outform", "DER"]).stdout;
    let mut tampered = der.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    let tampered_path = tmp.path().join("tampered.der");
    std::fs::write(&tampered_path, &tampered).expect("write");
    let e = fails(
        &dir,
        &[
            "ca",
            "issue",
            "--csr",
            path(&tampered_path),
            "--profile",
            "tls-server",
            "--out",
            path(&out),
        ],
        &[],
    );
    assert!(e.contains("signature"), "{e}");
    // Unknown and malformed serials, unknown reasons.
    let unknown = "4a0b0c0d0e0f00112233445566778899";
    assert!(fails(&dir, &["ca", "revoke", unknown], &[]).contains("unknown certificate serial"));
    assert!(fails(&dir, &["ca", "show", unknown], &[]).contains("unknown certificate serial"));
    assert!(fails(&dir, &["ca", "show", "xyz"], &[]).contains("invalid serial"));
    assert!(!fails(&dir, &["ca", "revoke", unknown, "--reason", "stolen"], &[]).is_empty());
    // A code for a domain the CA does not serve.
    assert!(fails(&dir, &["ra", "enroll-code", "eve@elsewhere.net"], &[]).contains("not one of"));
    assert!(fails(&dir, &["ra", "enroll-code", "not-an-address"], &[]).contains("invalid"));
    // MAX_CODE_VALIDITY (90 days) is accepted, one day more is not.
    ok(
        &dir,
        &["ra", "enroll-code", "a@example.org", "--valid-for", "90d"],
    );
    assert!(
        fails(
            &dir,
            &["ra", "enroll-code", "a@example.org", "--valid-for", "91d"],
            &[]
        )
        .contains("validity")
    );
    // The database is as it was.
    assert_eq!(ok(&dir, &["ca", "export"]), before);
}

#[test]
fn sealed_keys_need_the_right_passphrase() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let right = [("CONFIANZA_CA_PASSPHRASE", "correct horse battery")];
    let init = [
        "init",
        "--org",
        "Example Org",
        "--name",
        "chat.example.org",
        "--kdf-memory-mib",
        "1",
    ];
    // No variable and no terminal: a clear error, nothing created.
    assert!(fails(&dir, &init, &[]).contains("CONFIANZA_CA_PASSPHRASE"));
    assert!(!dir.join("config.toml").exists());
    let out = server(&dir, &init, &right);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read(dir.join("ca/intermediate.key")).expect("key");
    assert!(key.starts_with(b"CZSK"), "sealed");
    let wrong = [("CONFIANZA_CA_PASSPHRASE", "wrong")];
    assert!(fails(&dir, &["ca", "list"], &wrong).contains("wrong passphrase"));
    assert!(fails(&dir, &["ca", "list"], &[]).contains("CONFIANZA_CA_PASSPHRASE"));
    let listed = server(&dir, &["ca", "list"], &right);
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 4);
}

#[test]
fn offline_root_export_import_and_new_intermediate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&dir, "ed25519");
    let old_chain = tmp.path().join("old-chain.pem");
    ok(&dir, &["ca", "chain", "--out", path(&old_chain)]);
    let exported = tmp.path().join("root.key");
    ok(&dir, &["ca", "export-root-key", "--out", path(&exported)]);
    assert!(!dir.join("ca/root.key").exists());
    assert!(fails(&dir, &["ca", "new-intermediate"], &[]).contains("offline"));
    // Exporting twice: the key is gone, and an existing file is never overwritten.
    assert!(
        !fails(
            &dir,
            &["ca", "export-root-key", "--out", path(&exported)],
            &[]
        )
        .is_empty()
    );
    // A key that is not the root's is refused.
    let other = tmp.path().join("other.key");
    let generated = openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-outform",
        "DER",
        "-out",
        path(&other),
    ]);
    assert!(generated.status.success());
    assert!(
        fails(&dir, &["ca", "import-root-key", path(&other)], &[])
            .contains("not this CA's root key")
    );
    ok(&dir, &["ca", "import-root-key", path(&exported)]);
    ok(&dir, &["ca", "new-intermediate"]);
    // Committed: nothing left in the staging directory of the rotation.
    assert!(!dir.join("new-intermediate").exists());
    let new_chain = tmp.path().join("new-chain.pem");
    ok(&dir, &["ca", "chain", "--out", path(&new_chain)]);
    let old = std::fs::read_to_string(&old_chain).expect("read");
    let new = std::fs::read_to_string(&new_chain).expect("read");
    assert_ne!(old, new, "a new intermediate");
    // Same root at the end of both chains.
    let last = |s: &str| s.rsplit("-----BEGIN").next().map(str::to_owned);
    assert_eq!(last(&old), last(&new));
    // The new intermediate issues, and OpenSSL accepts the result with the new CRL.
    let req = csr(tmp.path(), "new.example.org");
    let cert = tmp.path().join("new.pem");
    ok(
        &dir,
        &[
            "ca",
            "issue",
            "--csr",
            path(&req),
            "--profile",
            "tls-server",
            "--out",
            path(&cert),
        ],
    );
    let checked = verify(&dir, &cert);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn enroll_code_is_one_time_and_expires() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&dir, "ed25519");
    let code = ok(&dir, &["ra", "enroll-code", "alice@example.org"]);
    let code = code.trim_end_matches('\n');
    // Only the code: XXXX-XXXX-XXXX-XXXX-XXXX in Crockford base32.
    assert_eq!(code.len(), 24, "{code:?}");
    assert!(
        code.split('-')
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
    );
    let short = ok(
        &dir,
        &["ra", "enroll-code", "bob@example.org", "--valid-for", "1s"],
    );
    let short = short.trim().to_owned();
    let expiring = ok(&dir, &["ra", "expiring", "--days", "400"]);
    assert!(expiring.contains("chat.example.org"), "{expiring}");
    assert!(ok(&dir, &["ra", "officers"]).contains("ra@example.org"));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let authority = Authority::open(&dir, None, None).await.expect("open");
        let now = SystemTime::now();
        let mut key = [0x05u8; 33];
        key[1..].copy_from_slice(&[0x42; 32]);
        assert!(matches!(
            authority
                .enroll_identity(
                    "alice@example.org",
                    Some("0000-0000-0000-0000-0000"),
                    &key,
                    now
                )
                .await,
            Err(AuthorityError::InvalidCode)
        ));
        assert!(matches!(
            authority
                .enroll_identity("alice@example.org", None, &key, now)
                .await,
            Err(AuthorityError::CodeRequired)
        ));
        let issued = authority
            .enroll_identity("alice@example.org", Some(&code.to_lowercase()), &key, now)
            .await
            .expect("enroll with the code");
        assert_eq!(issued.chain_der.len(), 2);
        assert!(matches!(
            authority
                .enroll_identity("alice@example.org", Some(code), &key, now)
                .await,
            Err(AuthorityError::CodeUsed)
        ));
        let later = now + Duration::from_secs(5);
        assert!(matches!(
            authority
                .enroll_identity("bob@example.org", Some(&short), &key, later)
                .await,
            Err(AuthorityError::CodeExpired)
        ));
        // The certificate is in the database, with who approved it.
        let show = authority
            .certificate(&issued.serial_hex)
            .await
            .expect("stored");
        assert_eq!(show.kind, "identity");
        assert_eq!(show.approved_by, "code:ra@example.org");
    });
    let shown = ok(&dir, &["ca", "list", "--subject", "alice"]);
    assert_eq!(shown.lines().count(), 1, "{shown}");
}
