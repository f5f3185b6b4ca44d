//! The RA officer side of the operator commands, run as the real `confianza-server` binary
//! on a temporary data directory, against SQLite and — when `DATABASE_URL` is set — against
//! PostgreSQL (a fresh schema per test, dropped afterwards):
//! officers with their own credentials, enrollment codes and revocations recorded as the
//! officer's, disabling, the root CRL, renewal links, and bad input leaving the database as
//! it was.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p confianza-server --test ops_ra
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use confianza_server::authority::{Authority, CRL_REFRESH_MARGIN};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;

const BIN: &str = env!("CARGO_BIN_EXE_confianza-server");

/// Where the CA database lives for one test.
struct Backend {
    /// `CONFIANZA_DATABASE_URL` for every command (PostgreSQL), or `None` (SQLite in DIR).
    url: Option<String>,
    /// (admin URL, schema) to drop at the end.
    schema: Option<(String, String)>,
}

impl Backend {
    fn sqlite() -> Self {
        Self {
            url: None,
            schema: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is not set: PostgreSQL RA test skipped");
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = DefaultHasher::new();
        SystemTime::now().hash(&mut hasher);
        std::process::id().hash(&mut hasher);
        COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
        let schema = format!("t_{:016x}", hasher.finish());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create the test schema");
        admin.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(Self {
            url: Some(format!(
                "{url}{separator}options=-c%20search_path%3D{schema}"
            )),
            schema: Some((url, schema)),
        })
    }

    async fn finish(self) {
        if let Some((url, schema)) = self.schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("connect to DATABASE_URL");
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .expect("drop the test schema");
        }
    }

    fn run(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data").arg(dir).args(args);
        cmd.env_remove("CONFIANZA_CA_PASSPHRASE")
            .env_remove("CONFIANZA_OFFICER_PASSPHRASE")
            .env_remove("CONFIANZA_DATABASE_URL")
            .env_remove("CONFIANZA_DATA")
            .stdin(std::process::Stdio::null());
        if let Some(url) = &self.url {
            cmd.env("CONFIANZA_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run confianza-server")
    }

    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        self.ok_with(dir, args, &[])
    }

    fn ok_with(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(dir, args, env);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// A command that must fail with one error line and leave the database as it was.
    fn fails(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let before = self.snapshot(dir);
        let out = self.run(dir, args, env);
        assert!(!out.status.success(), "{args:?} unexpectedly succeeded");
        let stderr = String::from_utf8(out.stderr).expect("UTF-8");
        assert!(
            stderr.starts_with("confianza-server: error: ") || stderr.starts_with("error:"),
            "unexpected error output {stderr:?}"
        );
        if stderr.starts_with("confianza-server: error: ") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
        }
        assert_eq!(before, self.snapshot(dir), "{args:?} changed the database");
        stderr
    }

    /// What the database holds: certificates (with status) and officers.
    fn snapshot(&self, dir: &Path) -> String {
        let mut s = self.ok(dir, &["ca", "export"]);
        s.push_str(&self.ok(dir, &["ra", "officers", "list"]));
        s
    }

    async fn authority(&self, dir: &Path) -> Authority {
        Authority::open(dir, None, self.url.as_deref())
            .await
            .expect("open the authority")
    }
}

fn init(backend: &Backend, dir: &Path) {
    backend.ok(
        dir,
        &[
            "init",
            "--org",
            "Example Org",
            "--name",
            "chat.example.org",
            "--domain",
            "example.org",
            "--domain",
            "example.net",
            "--no-passphrase",
        ],
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A Signal-form X25519 identity key (any 32 bytes clamp to a valid key).
fn identity_key(byte: u8) -> [u8; 33] {
    let mut key = [0x05u8; 33];
    key[1..].copy_from_slice(&[byte; 32]);
    key
}

async fn officers_have_their_own_credentials(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&backend, &dir);
    let cred = tmp.path().join("carol.pem");
    let added = backend.ok(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "carol@example.org",
            "--scope",
            "example.org",
            "--out",
            path(&cred),
            "--no-passphrase",
        ],
    );
    assert!(added.contains("carol@example.org"), "{added}");
    let mode = std::fs::metadata(&cred)
        .expect("credential")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let list = backend.ok(&dir, &["ra", "officers"]);
    let carol = list
        .lines()
        .find(|l| l.starts_with("carol@example.org"))
        .expect("carol listed");
    assert!(
        carol.contains("active") && carol.contains("domains example.org"),
        "{carol}"
    );

    let as_carol = [
        "--officer",
        "carol@example.org",
        "--credential",
        path(&cred),
    ];
    let mut args = vec!["ra", "enroll-code", "alice@example.org"];
    args.extend(as_carol);
    let code = backend.ok(&dir, &args).trim().to_owned();
    // Outside carol's scope (example.net): refused.
    let mut args = vec!["ra", "enroll-code", "bob@example.net"];
    args.extend(as_carol);
    let e = backend.fails(&dir, &args, &[]);
    assert!(e.contains("refused"), "{e}");
    // Carol's credential does not make anyone else an officer.
    let e = backend.fails(
        &dir,
        &[
            "ra",
            "enroll-code",
            "alice@example.org",
            "--officer",
            "ra@example.org",
            "--credential",
            path(&cred),
        ],
        &[],
    );
    assert!(e.contains("not the credential"), "{e}");
    // --officer alone is a usage error.
    backend.fails(
        &dir,
        &[
            "ra",
            "enroll-code",
            "alice@example.org",
            "--officer",
            "carol@example.org",
        ],
        &[],
    );
    // A tampered credential (key from another officer) is refused.
    let dave = tmp.path().join("dave.pem");
    backend.ok(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "dave@example.org",
            "--out",
            path(&dave),
            "--no-passphrase",
        ],
    );
    let carol_text = std::fs::read_to_string(&cred).expect("read");
    let dave_text = std::fs::read_to_string(&dave).expect("read");
    let split = |t: &str| {
        let i = t.find("-----BEGIN PRIVATE KEY-----").expect("key block");
        (t[..i].to_owned(), t[i..].to_owned())
    };
    let mixed = tmp.path().join("mixed.pem");
    std::fs::write(&mixed, split(&carol_text).0 + &split(&dave_text).1).expect("write");
    let e = backend.fails(
        &dir,
        &[
            "ra",
            "enroll-code",
            "alice@example.org",
            "--officer",
            "carol@example.org",
            "--credential",
            path(&mixed),
        ],
        &[],
    );
    assert!(e.contains("key is not its certificate"), "{e}");
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a credential").expect("write");
    backend.fails(
        &dir,
        &[
            "ra",
            "enroll-code",
            "alice@example.org",
            "--officer",
            "carol@example.org",
            "--credential",
            path(&garbage),
        ],
        &[],
    );

    // Adding twice, an unknown domain, a bad name: refused, nothing recorded.
    let other = tmp.path().join("other.pem");
    for args in [
        vec!["ra", "officers", "add", "carol@example.org"],
        vec![
            "ra",
            "officers",
            "add",
            "erin@example.org",
            "--scope",
            "example.com",
        ],
        vec!["ra", "officers", "add", "not an address"],
    ] {
        let mut args = args;
        args.extend(["--out", path(&other), "--no-passphrase"]);
        backend.fails(&dir, &args, &[]);
        assert!(!other.exists());
    }
    // An existing file is never overwritten.
    backend.fails(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "erin@example.org",
            "--out",
            path(&cred),
            "--no-passphrase",
        ],
        &[],
    );

    // The certificate records carol as the approving RA; carol revokes it, recorded as hers.
    let authority = backend.authority(&dir).await;
    let issued = authority
        .enroll_identity(
            "alice@example.org",
            Some(&code),
            &identity_key(0x42),
            SystemTime::now(),
        )
        .await
        .expect("enroll with carol's code");
    drop(authority);
    let show = backend.ok(&dir, &["ca", "show", &issued.serial_hex]);
    assert!(
        show.contains("approved by   code:carol@example.org"),
        "{show}"
    );

    let mut args = vec![
        "ra",
        "revoke",
        &issued.serial_hex,
        "--reason",
        "cACompromise",
    ];
    args.extend(as_carol);
    let e = backend.fails(&dir, &args, &[]);
    assert!(e.contains("refused"), "{e}");
    let mut args = vec!["ra", "revoke", "00", "--reason", "keyCompromise"];
    args.extend(as_carol);
    backend.fails(&dir, &args, &[]);
    let mut args = vec![
        "ra",
        "revoke",
        &issued.serial_hex,
        "--reason",
        "keyCompromise",
    ];
    args.extend(as_carol);
    let revoked = backend.ok(&dir, &args);
    assert!(revoked.contains("carol@example.org"), "{revoked}");
    let show = backend.ok(&dir, &["ca", "show", &issued.serial_hex]);
    assert!(
        show.contains("(keyCompromise) by officer:carol@example.org"),
        "{show}"
    );
    // Twice: refused.
    backend.fails(&dir, &args, &[]);

    // Disabled: carol's credential is revoked and no longer acts.
    let e = backend.fails(&dir, &["ra", "officers", "disable", "ra@example.org"], &[]);
    assert!(e.contains("cannot be disabled"), "{e}");
    backend.fails(
        &dir,
        &["ra", "officers", "disable", "nobody@example.org"],
        &[],
    );
    backend.ok(&dir, &["ra", "officers", "disable", "carol@example.org"]);
    let list = backend.ok(&dir, &["ra", "officers", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("carol@example.org") && l.contains("disabled")),
        "{list}"
    );
    let mut args = vec!["ra", "enroll-code", "alice@example.org"];
    args.extend(as_carol);
    let e = backend.fails(&dir, &args, &[]);
    assert!(e.contains("disabled"), "{e}");
    backend.fails(
        &dir,
        &["ra", "officers", "disable", "carol@example.org"],
        &[],
    );
    let revoked = backend.ok(&dir, &["ca", "list", "--status", "revoked"]);
    assert!(
        revoked.lines().any(|l| l.contains("carol@example.org")),
        "{revoked}"
    );
    // The console officer still works without a credential.
    backend.ok(&dir, &["ra", "enroll-code", "bob@example.net"]);
    backend.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn officers_have_their_own_credentials_sqlite() {
    officers_have_their_own_credentials(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn officers_have_their_own_credentials_postgres() {
    if let Some(backend) = Backend::postgres().await {
        officers_have_their_own_credentials(backend).await;
    }
}

#[test]
fn sealed_officer_credentials_need_their_passphrase() {
    let backend = Backend::sqlite();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&backend, &dir);
    let cred = tmp.path().join("frank.pem");
    // Neither a passphrase nor --no-passphrase: refused.
    backend.fails(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "frank@example.org",
            "--out",
            path(&cred),
        ],
        &[],
    );
    let pass = [("CONFIANZA_OFFICER_PASSPHRASE", "frank's secret")];
    backend.ok_with(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "frank@example.org",
            "--out",
            path(&cred),
        ],
        &pass,
    );
    let text = std::fs::read_to_string(&cred).expect("read");
    assert!(text.contains("-----BEGIN CONFIANZA SEALED KEY-----"));
    assert!(!text.contains("PRIVATE KEY"));
    let args = [
        "ra",
        "enroll-code",
        "alice@example.org",
        "--officer",
        "frank@example.org",
        "--credential",
        path(&cred),
    ];
    backend.ok_with(&dir, &args, &pass);
    let e = backend.fails(&dir, &args, &[]);
    assert!(e.contains("passphrase"), "{e}");
    let e = backend.fails(&dir, &args, &[("CONFIANZA_OFFICER_PASSPHRASE", "wrong")]);
    assert!(e.contains("wrong passphrase"), "{e}");
}

async fn crls_renewal_and_expiry(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&backend, &dir);

    // The root CRL is reissued with the next number while the root key is online.
    let root_crl = tmp.path().join("root.crl");
    let out = backend.ok(&dir, &["ca", "root-crl", "--out", path(&root_crl)]);
    assert_eq!(out.trim(), "root CRL number 2");
    let text = Command::new("openssl")
        .args(["crl", "-in", path(&root_crl), "-noout", "-text"])
        .output()
        .expect("openssl");
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("X509v3 CRL Number"));

    // Renewal records the previous certificate; `ra expiring` lists identities near expiry.
    let code = backend.ok(&dir, &["ra", "enroll-code", "alice@example.org"]);
    let authority = backend.authority(&dir).await;
    let now = SystemTime::now();
    let first = authority
        .enroll_identity(
            "alice@example.org",
            Some(code.trim()),
            &identity_key(7),
            now,
        )
        .await
        .expect("enroll");
    let expiring = backend.ok(&dir, &["ra", "expiring", "--days", "400"]);
    assert!(
        expiring
            .lines()
            .any(|l| l.starts_with(&first.serial_hex) && l.contains("alice@example.org")),
        "{expiring}"
    );
    let none = backend.ok(&dir, &["ra", "expiring", "--days", "300"]);
    assert!(!none.contains(&first.serial_hex), "{none}");
    let renewed = authority
        .renew_identity(&first.certificate_der, &identity_key(8), now)
        .await
        .expect("renew");
    let show = backend.ok(&dir, &["ca", "show", &renewed.serial_hex]);
    assert!(
        show.contains(&format!("renews        {}", first.serial_hex)),
        "{show}"
    );
    // Renewed certificates are no longer "expiring".
    let expiring = backend.ok(&dir, &["ra", "expiring", "--days", "400"]);
    assert!(!expiring.contains(&first.serial_hex), "{expiring}");
    assert!(expiring.contains(&renewed.serial_hex), "{expiring}");

    // The schedule's rule: the CRL is kept while more than the margin is left, and
    // republished (next number) once half its lifetime has passed.
    let current = authority.current_crl(now).await.expect("CRL");
    let same = authority
        .current_crl(now + Duration::from_secs(3600))
        .await
        .expect("CRL");
    assert_eq!(same.number, current.number);
    let later = from_secs(current.next_update) - CRL_REFRESH_MARGIN + Duration::from_secs(1);
    let fresh = authority.current_crl(later).await.expect("CRL");
    assert_eq!(fresh.number, current.number + 1);
    drop(authority);

    // The service certificates are renewed from the intermediate, each linked to the one
    // it replaces; the console's officer works with its new credential.
    let renewed = backend.ok(&dir, &["ca", "renew-service-certs"]);
    let lines: Vec<&str> = renewed.lines().collect();
    assert_eq!(lines.len(), 3, "{renewed}");
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (new, old) = (words[words.len() - 3], words[words.len() - 1]);
        let old = old.trim_end_matches(')');
        assert_ne!(new, old);
        let show = backend.ok(&dir, &["ca", "show", new]);
        assert!(show.contains(&format!("renews        {old}")), "{show}");
    }
    let officer_serial = lines[1].split_whitespace().nth(2).expect("serial");
    let officers = backend.ok(&dir, &["ra", "officers", "list"]);
    assert!(officers.contains(officer_serial), "{officers}");
    backend.ok(&dir, &["ra", "enroll-code", "carl@example.org"]);
    let reopened = backend.authority(&dir).await;
    let ocsp_serial = lines[0].split_whitespace().nth(2).expect("serial");
    let ocsp_cert = reopened.ocsp_signer_der().to_vec();
    assert!(
        reopened.certificate(ocsp_serial).await.expect("stored").der == ocsp_cert,
        "the reopened authority signs OCSP with the renewed signer"
    );
    drop(reopened);

    // With the root offline, root-crl fails cleanly.
    let key = tmp.path().join("root.key");
    backend.ok(&dir, &["ca", "export-root-key", "--out", path(&key)]);
    let e = backend.fails(&dir, &["ca", "root-crl", "--out", path(&root_crl)], &[]);
    assert!(e.contains("offline"), "{e}");
    backend.finish().await;
}

fn from_secs(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("positive"))
}

#[tokio::test(flavor = "multi_thread")]
async fn crls_renewal_and_expiry_sqlite() {
    crls_renewal_and_expiry(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crls_renewal_and_expiry_postgres() {
    if let Some(backend) = Backend::postgres().await {
        crls_renewal_and_expiry(backend).await;
    }
}

/// An `openssl req` CSR (EC P-256 key) for `cn` with a DNS SAN.
fn openssl_csr(dir: &Path, cn: &str) -> std::path::PathBuf {
    let req = dir.join(format!("{cn}.csr"));
    let key = dir.join(format!("{cn}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path(&key),
            "-out",
            path(&req),
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName=DNS:{cn}"),
        ])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl req failed");
    req
}

async fn manual_approval(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&backend, &dir);
    let csr = openssl_csr(tmp.path(), "example.org");

    // Submitted: pending, nothing issued yet.
    let before = backend.ok(&dir, &["ca", "list"]);
    let id = backend
        .ok(
            &dir,
            &[
                "ra",
                "submit",
                "--csr",
                path(&csr),
                "--profile",
                "tls-server",
            ],
        )
        .trim()
        .to_owned();
    assert!(id.parse::<i64>().is_ok(), "{id}");
    assert_eq!(before, backend.ok(&dir, &["ca", "list"]));
    let pending = backend.ok(&dir, &["ra", "pending"]);
    assert!(
        pending
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("tls-server")),
        "{pending}"
    );

    // Approved by the console's officer: issued, recorded as that RA's approval.
    let cert = tmp.path().join("server.pem");
    let serial = backend
        .ok(
            &dir,
            &[
                "ra",
                "approve",
                &id,
                "--out",
                path(&cert),
                "--comment",
                "checked by phone",
            ],
        )
        .trim()
        .to_owned();
    let verify = Command::new("openssl")
        .args(["x509", "-in", path(&cert), "-noout", "-serial"])
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&verify.stdout)
            .to_lowercase()
            .contains(&serial),
        "{serial}"
    );
    let show = backend.ok(&dir, &["ca", "show", &serial]);
    assert!(
        show.contains("approved by   officer:ra@example.org"),
        "{show}"
    );
    let history = backend.ok(&dir, &["ra", "history", &id]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "{history}");
    assert!(lines[0].contains("issued"), "{history}");
    assert!(lines[1].contains("submitted") && lines[1].contains("requester"));
    assert!(
        lines[2].contains("approved")
            && lines[2].contains("officer:ra@example.org")
            && lines[2].contains("(checked by phone)"),
        "{history}"
    );
    assert!(lines[3].contains("issued") && lines[3].contains("ca"));
    assert!(backend.ok(&dir, &["ra", "pending"]).is_empty());
    let e = backend.fails(&dir, &["ra", "approve", &id], &[]);
    assert!(e.contains("not pending"), "{e}");

    // Rejected by another officer, with the reason kept; a rejected request stays rejected.
    let cred = tmp.path().join("carol.pem");
    backend.ok(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "carol@example.org",
            "--out",
            path(&cred),
            "--no-passphrase",
        ],
    );
    let client_csr = openssl_csr(tmp.path(), "example.net");
    let id2 = backend
        .ok(
            &dir,
            &[
                "ra",
                "submit",
                "--csr",
                path(&client_csr),
                "--profile",
                "tls-client",
            ],
        )
        .trim()
        .to_owned();
    let as_carol = [
        "--officer",
        "carol@example.org",
        "--credential",
        path(&cred),
    ];
    let mut args = vec!["ra", "reject", &id2, "--reason", ""];
    args.extend(as_carol);
    backend.fails(&dir, &args, &[]);
    let mut args = vec!["ra", "reject", &id2, "--reason", "unknown requester"];
    args.extend(as_carol);
    backend.ok(&dir, &args);
    let history = backend.ok(&dir, &["ra", "history", &id2]);
    assert!(
        history
            .lines()
            .next()
            .is_some_and(|l| l.contains("rejected"))
    );
    assert!(
        history.contains("officer:carol@example.org") && history.contains("(unknown requester)"),
        "{history}"
    );
    backend.fails(&dir, &["ra", "approve", &id2], &[]);

    // Scopes follow RFC 5280 name constraints: `example.org` covers chat.example.org, not
    // evil-example.org; scope entries outside the CA's domains are refused.
    let frank = tmp.path().join("frank.pem");
    backend.ok(
        &dir,
        &[
            "ra",
            "officers",
            "add",
            "frank@example.org",
            "--scope",
            "example.org",
            "--scope",
            ".example.org",
            "--out",
            path(&frank),
            "--no-passphrase",
        ],
    );
    let as_frank = [
        "--officer",
        "frank@example.org",
        "--credential",
        path(&frank),
    ];
    let submit = |csr: &Path| {
        backend
            .ok(
                &dir,
                &[
                    "ra",
                    "submit",
                    "--csr",
                    path(csr),
                    "--profile",
                    "tls-server",
                ],
            )
            .trim()
            .to_owned()
    };
    let sub = submit(&openssl_csr(tmp.path(), "chat.example.org"));
    let sub_cert = tmp.path().join("chat.pem");
    let mut args = vec!["ra", "approve", &sub, "--out", path(&sub_cert)];
    args.extend(as_frank);
    backend.ok(&dir, &args);
    assert!(sub_cert.exists());
    for lookalike in ["evil-example.org", "example.org.evil"] {
        let id = submit(&openssl_csr(tmp.path(), lookalike));
        let out = tmp.path().join(format!("{lookalike}.pem"));
        let mut args = vec!["ra", "approve", &id, "--out", path(&out)];
        args.extend(as_frank);
        let e = backend.fails(&dir, &args, &[]);
        assert!(e.contains("not authorised") || e.contains("refused"), "{e}");
        assert!(!out.exists());
        assert!(backend.ok(&dir, &["ra", "pending"]).contains(&id));
    }
    for scope in ["evil-example.org", "example.org.evil", ".org"] {
        let out = tmp.path().join("grace.pem");
        let e = backend.fails(
            &dir,
            &[
                "ra",
                "officers",
                "add",
                "grace@example.org",
                "--scope",
                scope,
                "--out",
                path(&out),
                "--no-passphrase",
            ],
            &[],
        );
        assert!(e.contains("not within"), "{scope}: {e}");
        assert!(!out.exists());
    }

    // Bad input: one line, nothing recorded.
    let garbage = tmp.path().join("garbage.csr");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n").expect("write");
    backend.fails(
        &dir,
        &[
            "ra",
            "submit",
            "--csr",
            path(&garbage),
            "--profile",
            "tls-server",
        ],
        &[],
    );
    backend.fails(
        &dir,
        &[
            "ra",
            "submit",
            "--csr",
            path(&csr),
            "--profile",
            "ocsp-signer",
        ],
        &[],
    );
    let e = backend.fails(&dir, &["ra", "approve", "999999"], &[]);
    assert!(e.contains("unknown request"), "{e}");
    backend.fails(&dir, &["ra", "history", "999999"], &[]);
    backend.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_approval_sqlite() {
    manual_approval(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_approval_postgres() {
    if let Some(backend) = Backend::postgres().await {
        manual_approval(backend).await;
    }
}
