//! Interoperability with the real `openssl` command (OpenSSL 3): chains verify for every
//! profile and CA algorithm, CRLs built here revoke in `openssl verify -crl_check`, `openssl
//! x509/crl -text` parse X25519 identity certificates and CRLs, and CSRs made by `openssl req`
//! are accepted (a tampered one refused). Skips, with a printed reason, when `openssl` is absent.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use common::{Hierarchy, TestRng, hierarchy, now, operator_approval, rng};
use confianza_pki::ca::{IssuedCertificate, pem_encode};
use confianza_pki::crl::{CrlParams, RevocationReason, RevokedEntry, build_crl};
use confianza_pki::csr::{self, CsrError};
use confianza_pki::profile::CertificateKind;
use confianza_pki::signer::CaAlgorithm;

const OPENSSL: &str = "openssl";

fn openssl_available() -> bool {
    match Command::new(OPENSSL).arg("version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            eprintln!("SKIPPED: the `openssl` command is not available");
            false
        }
    }
}

/// A unique scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "confianza-pki-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write");
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Output {
    ok: bool,
    text: String,
}

fn openssl(args: &[&str]) -> Output {
    let out = Command::new(OPENSSL)
        .args(args)
        .output()
        .expect("run openssl");
    Output {
        ok: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `-attime` for the fixed test clock (with a minute of margin after issuance).
fn attime() -> String {
    let t = now() + Duration::from_secs(60);
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string()
}

/// A private key made by `openssl genpkey ARGS`, as PKCS#8 DER.
fn openssl_pkcs8(dir: &Scratch, name: &str, genpkey_args: &[&str]) -> Vec<u8> {
    let pem = dir.path(&format!("{name}.pem"));
    let der = dir.path(&format!("{name}.der"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey_args);
    args.extend_from_slice(&["-out", s(&pem)]);
    assert!(openssl(&args).ok, "genpkey {name}");
    let to_der = [
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        s(&pem),
        "-outform",
        "DER",
        "-out",
        s(&der),
    ];
    assert!(openssl(&to_der).ok, "pkcs8 {name}");
    std::fs::read(der).expect("read key")
}

/// An RSA-3072 PKCS#8 key from `openssl genpkey` (RSA generation in a debug build of the Rust
/// code takes too long for a test; this also exercises PKCS#8 import of foreign keys).
fn openssl_rsa_pkcs8(dir: &Scratch, name: &str) -> Vec<u8> {
    openssl_pkcs8(
        dir,
        name,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    )
}

fn make_hierarchy(alg: CaAlgorithm, dir: &Scratch, rng: &mut TestRng) -> Hierarchy {
    let (root_pk8, int_pk8) = if alg == CaAlgorithm::Rsa3072 {
        (
            Some(openssl_rsa_pkcs8(dir, "root-key")),
            Some(openssl_rsa_pkcs8(dir, "int-key")),
        )
    } else {
        (None, None)
    };
    let root_key = common::ca_key(alg, rng, root_pk8.as_deref());
    let int_key = common::ca_key(alg, rng, int_pk8.as_deref());
    hierarchy(root_key, int_key, rng)
}

/// `openssl req -new` with a fresh key of `key_kind` ("rsa", "ec", "ed25519").
fn openssl_csr(
    dir: &Scratch,
    name: &str,
    key_kind: &str,
    subject: &str,
    san: Option<&str>,
) -> Vec<u8> {
    let key = dir.path(&format!("{name}.key"));
    let out = dir.path(&format!("{name}.csr"));
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    match key_kind {
        "rsa" => args.extend(["-newkey".into(), "rsa:2048".into()]),
        "ec" => args.extend([
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
        ]),
        _ => args.extend(["-newkey".into(), "ed25519".into()]),
    }
    args.extend([
        "-keyout".into(),
        s(&key).into(),
        "-subj".into(),
        subject.into(),
    ]);
    if let Some(san) = san {
        args.extend(["-addext".into(), format!("subjectAltName={san}")]);
    }
    args.extend(["-out".into(), s(&out).into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = openssl(&argv);
    assert!(r.ok, "openssl req failed: {}", r.text);
    std::fs::read(out).expect("read csr")
}

fn issue_from_csr(
    h: &Hierarchy,
    kind: CertificateKind,
    csr_pem: &[u8],
    rng: &mut TestRng,
) -> IssuedCertificate {
    let verified = csr::parse_csr(csr_pem).expect("CSR accepted");
    let template = verified.into_template(kind).expect("template");
    h.intermediate
        .issue(operator_approval(template), now(), rng)
        .expect("issue")
}

fn verify_chain(dir: &Scratch, leaf: &IssuedCertificate, extra: &[&str]) -> Output {
    let leaf_path = dir.write(&format!("leaf-{}.pem", leaf.serial), leaf.to_pem());
    let at = attime();
    let mut args = vec![
        "verify",
        "-attime",
        &at,
        "-CAfile",
        "PLACEHOLDER_ROOT",
        "-untrusted",
        "PLACEHOLDER_INT",
    ];
    args.extend_from_slice(extra);
    let root = dir.path("root.pem");
    let int = dir.path("int.pem");
    let args: Vec<&str> = args
        .into_iter()
        .map(|a| match a {
            "PLACEHOLDER_ROOT" => s(&root),
            "PLACEHOLDER_INT" => s(&int),
            other => other,
        })
        .chain(std::iter::once(s(&leaf_path)))
        .collect();
    openssl(&args)
}

#[test]
fn every_profile_and_ca_algorithm_verifies() {
    if !openssl_available() {
        return;
    }
    let mut rng = rng(100);
    for alg in CaAlgorithm::ALL {
        let dir = Scratch::new("chain");
        let h = make_hierarchy(alg, &dir, &mut rng);
        dir.write("root.pem", h.root.certificate_pem());
        dir.write("int.pem", h.intermediate.certificate_pem());
        // The intermediate itself verifies against the root.
        let r = openssl(&[
            "verify",
            "-attime",
            &attime(),
            "-CAfile",
            s(&dir.path("root.pem")),
            s(&dir.path("int.pem")),
        ]);
        assert!(r.ok, "{alg:?} intermediate: {}", r.text);

        let mut leaves: Vec<(String, IssuedCertificate, Vec<&str>)> = Vec::new();
        leaves.push((
            "identity".into(),
            common::issue_identity(&h, "alice@example.org", &mut rng),
            vec![],
        ));
        // An address longer than a commonName may be: empty subject, critical SAN.
        let long = format!("{}@example.org", "l".repeat(60));
        let cert = common::issue_identity(&h, &long, &mut rng);
        assert_eq!(cert.common_name, None);
        leaves.push(("identity-long-address".into(), cert, vec![]));
        let noise_key = common::IdentityKey::generate(&mut rng);
        let noise =
            csr::noise_server_template(&noise_key.public, "chat.example.org").expect("noise");
        leaves.push((
            "noise".into(),
            h.intermediate
                .issue(operator_approval(noise), now(), &mut rng)
                .expect("issue"),
            vec![],
        ));
        for key_kind in ["rsa", "ec", "ed25519"] {
            let server = openssl_csr(
                &dir,
                &format!("srv-{key_kind}"),
                key_kind,
                "/CN=chat.example.org",
                Some("DNS:chat.example.org,DNS:www.example.org"),
            );
            leaves.push((
                format!("tls-server-{key_kind}"),
                issue_from_csr(&h, CertificateKind::TlsServer, &server, &mut rng),
                vec!["-purpose", "sslserver"],
            ));
            let client = openssl_csr(
                &dir,
                &format!("cli-{key_kind}"),
                key_kind,
                "/CN=device1.example.org",
                None,
            );
            leaves.push((
                format!("tls-client-{key_kind}"),
                issue_from_csr(&h, CertificateKind::TlsClient, &client, &mut rng),
                vec!["-purpose", "sslclient"],
            ));
        }
        let officer = openssl_csr(
            &dir,
            "officer",
            "ec",
            "/CN=officer@example.org",
            Some("email:officer@example.org"),
        );
        leaves.push((
            "ra-officer".into(),
            issue_from_csr(&h, CertificateKind::RaOfficer, &officer, &mut rng),
            vec!["-purpose", "sslclient"],
        ));
        let ocsp = openssl_csr(
            &dir,
            "ocsp",
            "ed25519",
            "/CN=Confianza OCSP responder",
            None,
        );
        leaves.push((
            "ocsp-signer".into(),
            issue_from_csr(&h, CertificateKind::OcspSigner, &ocsp, &mut rng),
            vec!["-purpose", "ocsphelper"],
        ));
        for (name, leaf, extra) in &leaves {
            let r = verify_chain(&dir, leaf, extra);
            assert!(
                r.ok && r.text.contains(": OK"),
                "{alg:?} {name}: {}",
                r.text
            );
        }
        // The profile-specific extensions, as openssl reads them.
        for (name, leaf, _) in &leaves {
            let p = dir.write(&format!("text-{}.pem", leaf.serial), leaf.to_pem());
            let t = openssl(&["x509", "-in", s(&p), "-text", "-noout"]).text;
            let needles: &[&str] = match name.as_str() {
                "ocsp-signer" => &["OCSP Signing", "OCSP No Check", "Digital Signature"],
                "noise" => &[
                    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.2",
                    "DNS:chat.example.org",
                    "Key Agreement",
                ],
                "ra-officer" => &[
                    "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.3",
                    "TLS Web Client Authentication",
                ],
                "identity-long-address" => &["Subject: \n", "Subject Alternative Name: critical"],
                n if n.starts_with("tls-server") => {
                    &["TLS Web Server Authentication", "DNS:www.example.org"]
                }
                _ => &["CA:FALSE"],
            };
            for needle in needles {
                assert!(
                    t.contains(needle),
                    "{alg:?} {name}: missing {needle:?} in\n{t}"
                );
            }
        }
    }
}

#[test]
fn crl_check_rejects_revoked_and_accepts_unrevoked() {
    if !openssl_available() {
        return;
    }
    let mut rng = rng(200);
    for alg in CaAlgorithm::ALL {
        let dir = Scratch::new("crl");
        let h = make_hierarchy(alg, &dir, &mut rng);
        dir.write("root.pem", h.root.certificate_pem());
        dir.write("int.pem", h.intermediate.certificate_pem());
        let revoked = common::issue_identity(&h, "mallory@example.org", &mut rng);
        let good = common::issue_identity(&h, "bob@example.org", &mut rng);
        let entries = [RevokedEntry {
            serial: revoked.serial,
            revoked_at: now(),
            reason: RevocationReason::KeyCompromise,
        }];
        let crl = build_crl(&h.intermediate, &CrlParams::new(7, now()), &entries).expect("crl");
        let crl_path = dir.write("int.crl", pem_encode("X509 CRL", &crl));
        let r = verify_chain(&dir, &revoked, &["-crl_check", "-CRLfile", s(&crl_path)]);
        assert!(
            !r.ok && r.text.contains("certificate revoked"),
            "{alg:?} revoked: {}",
            r.text
        );
        let r = verify_chain(&dir, &good, &["-crl_check", "-CRLfile", s(&crl_path)]);
        assert!(r.ok && r.text.contains(": OK"), "{alg:?} good: {}", r.text);
        // The CRL's own signature, checked by openssl against the intermediate.
        let r = openssl(&[
            "crl",
            "-in",
            s(&crl_path),
            "-CAfile",
            s(&dir.path("int.pem")),
            "-noout",
        ]);
        assert!(
            r.ok && r.text.contains("verify OK"),
            "{alg:?} crl signature: {}",
            r.text
        );
    }
}

#[test]
fn text_output_of_identity_certificate_and_crl() {
    if !openssl_available() {
        return;
    }
    let mut rng = rng(300);
    let dir = Scratch::new("text");
    let h = make_hierarchy(CaAlgorithm::Ed25519, &dir, &mut rng);
    let cert = common::issue_identity(&h, "alice@example.org", &mut rng);
    let path = dir.write("identity.pem", cert.to_pem());
    let r = openssl(&["x509", "-in", s(&path), "-text", "-noout"]);
    assert!(r.ok, "{}", r.text);
    for needle in [
        "Version: 3 (0x2)",
        "Public Key Algorithm: X25519",
        "Signature Algorithm: ED25519",
        "Key Agreement",
        "CA:FALSE",
        "1.2.840.113556.1.8000.2554.35196.38532.14706.20308.35525.16036227.4689682.1.1",
        "email:alice@example.org",
        "URI:http://pki.example.org/intermediate.crl",
        "OCSP - URI:http://pki.example.org/ocsp",
        "CA Issuers - URI:http://pki.example.org/intermediate.crt",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(
            r.text.contains(needle),
            "missing {needle:?} in:\n{}",
            r.text
        );
    }
    let entries = [
        RevokedEntry {
            serial: cert.serial,
            revoked_at: now(),
            reason: RevocationReason::KeyCompromise,
        },
        RevokedEntry {
            serial: confianza_pki::serial::Serial::random(&mut rng),
            revoked_at: now(),
            reason: RevocationReason::Unspecified,
        },
    ];
    let crl = build_crl(&h.intermediate, &CrlParams::new(12345, now()), &entries).expect("crl");
    let crl_path = dir.write("int.crl", pem_encode("X509 CRL", &crl));
    let r = openssl(&["crl", "-in", s(&crl_path), "-text", "-noout"]);
    assert!(r.ok, "{}", r.text);
    for needle in [
        "Version 2 (0x1)",
        "X509v3 CRL Number",
        "12345",
        "X509v3 Issuing Distribution Point: critical",
        "Only User Certificates",
        "Key Compromise",
        &cert.serial.to_hex().to_uppercase(),
    ] {
        assert!(
            r.text.contains(needle),
            "missing {needle:?} in:\n{}",
            r.text
        );
    }
}

#[test]
fn openssl_csrs_are_accepted_and_tampering_is_refused() {
    if !openssl_available() {
        return;
    }
    let dir = Scratch::new("csr");
    for key_kind in ["rsa", "ec", "ed25519"] {
        let pem = openssl_csr(
            &dir,
            key_kind,
            key_kind,
            "/CN=host.example.org",
            Some("DNS:host.example.org"),
        );
        let verified = csr::parse_csr(&pem).expect("PEM CSR accepted");
        assert_eq!(verified.common_name(), Some("host.example.org"));
        assert_eq!(verified.dns_names(), ["host.example.org".to_owned()]);
        // The same request in DER.
        let der_path = dir.path(&format!("{key_kind}.csr.der"));
        let r = openssl(&[
            "req",
            "-in",
            s(&dir.path(&format!("{key_kind}.csr"))),
            "-outform",
            "DER",
            "-out",
            s(&der_path),
        ]);
        assert!(r.ok, "{}", r.text);
        let der = std::fs::read(&der_path).expect("read");
        assert_eq!(csr::parse_csr(&der).expect("DER CSR accepted"), verified);
        // Change one letter of the subject: the signature no longer covers it.
        let mut tampered = der.clone();
        let at = tampered
            .windows(4)
            .position(|w| w == b"host")
            .expect("CN in DER");
        tampered[at] = b'g';
        assert!(
            matches!(csr::parse_csr(&tampered), Err(CsrError::BadSignature(_))),
            "{key_kind}: tampered CSR accepted"
        );
        // A flipped bit in the signature itself.
        let mut bad_sig = der;
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1;
        assert!(matches!(
            csr::parse_csr(&bad_sig),
            Err(CsrError::BadSignature(_))
        ));
    }
}

#[test]
fn openssl_keys_import_only_when_fit_for_a_ca() {
    if !openssl_available() {
        return;
    }
    use confianza_pki::signer::{CaKey, KeyError};
    let dir = Scratch::new("keys");
    let make = |name: &str, args: &[&str]| openssl_pkcs8(&dir, name, args);
    let ed = make("ed", &["-algorithm", "ed25519"]);
    assert_eq!(
        CaKey::from_pkcs8_der(&ed).map(|k| k.algorithm()).ok(),
        Some(CaAlgorithm::Ed25519)
    );
    let p256 = make(
        "p256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    assert_eq!(
        CaKey::from_pkcs8_der(&p256).map(|k| k.algorithm()).ok(),
        Some(CaAlgorithm::P256)
    );
    let rsa2048 = make(
        "rsa2048",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    assert!(matches!(
        CaKey::from_pkcs8_der(&rsa2048),
        Err(KeyError::WrongRsaSize(2048))
    ));
    let p384 = make(
        "p384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    assert!(matches!(
        CaKey::from_pkcs8_der(&p384),
        Err(KeyError::UnsupportedAlgorithm(_))
    ));
    let x25519 = make("x25519", &["-algorithm", "X25519"]);
    assert!(matches!(
        CaKey::from_pkcs8_der(&x25519),
        Err(KeyError::UnsupportedAlgorithm(_))
    ));
}
