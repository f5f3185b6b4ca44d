//! The HTTP repository served on 127.0.0.1:0, queried by `openssl ocsp` (POST), by OCSP GET
//! requests (RFC 6960 A.1) checked with `openssl ocsp -respin`, and by plain HTTP for the
//! chain, the CRL and the certificates; and the `Authority` calls the messaging service makes
//! (enrollment, renewal, holder revocation, stapled OCSP).

use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use base64::Engine;
use confianza_pki::ca::pem_encode;
use confianza_pki::crl::RevocationReason;
use confianza_pki::ocsp::{self, CertIdHash, RequestBuilder};
use confianza_pki::path::{self, PathOptions};
use confianza_pki::profile::CertificateKind;
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use confianza_server::authority::init::{InitOptions, init};
use confianza_server::authority::{Authority, AuthorityError};
use der::Decode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Served {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    authority: Authority,
    port: u16,
}

async fn serve() -> Served {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    init(
        &dir,
        InitOptions {
            organisation: "Example Org".into(),
            name: "chat.example.org".into(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec!["example.org".into()],
            open_registration: false,
            http_url: format!("http://127.0.0.1:{port}"),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        },
        None,
        None,
    )
    .await
    .expect("init");
    let authority = Authority::open(&dir, None, None).await.expect("open");
    let router = confianza_server::http::repository_router(authority.clone());
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    Served {
        _tmp: tmp,
        dir,
        authority,
        port,
    }
}

/// A minimal HTTP/1.1 exchange: (status, content type, body).
async fn http(
    port: u16,
    method: &str,
    target: &str,
    body: &[u8],
    content_type: &str,
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let body = response[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body)
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Issues a TLS server certificate from an `openssl req` CSR; returns its PEM path.
async fn issue_tls(s: &Served, cn: &str) -> (std::path::PathBuf, String) {
    let req = s.dir.join(format!("{cn}.csr"));
    let key = s.dir.join(format!("{cn}.key"));
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ed25519",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&req),
        "-subj",
        &format!("/CN={cn}"),
    ]);
    assert!(out.status.success());
    let csr = std::fs::read(&req).expect("csr");
    let issued = s
        .authority
        .issue_from_csr(&csr, CertificateKind::TlsServer, "test", SystemTime::now())
        .await
        .expect("issue");
    let pem = s.dir.join(format!("{cn}.pem"));
    std::fs::write(&pem, issued.to_pem()).expect("write");
    (pem, issued.serial.to_hex())
}

fn write_chain(s: &Served) -> (std::path::PathBuf, std::path::PathBuf) {
    let chain = s.dir.join("chain.pem");
    let issuer = s.dir.join("issuer.pem");
    let pem: String = s
        .authority
        .chain_der()
        .iter()
        .map(|d| pem_encode("CERTIFICATE", d))
        .collect();
    std::fs::write(&chain, pem).expect("write");
    std::fs::write(
        &issuer,
        pem_encode("CERTIFICATE", s.authority.intermediate_der()),
    )
    .expect("write");
    (chain, issuer)
}

fn openssl_ocsp_post(s: &Served, cert: &Path) -> String {
    let (chain, issuer) = write_chain(s);
    let url = format!("http://127.0.0.1:{}/ocsp", s.port);
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&issuer),
        "-cert",
        p(cert),
        "-url",
        &url,
        "-CAfile",
        p(&chain),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl ocsp: {text}");
    assert!(text.contains("Response verify OK"), "{text}");
    text
}

/// A GET request as RFC 6960 A.1 builds it, checked by `openssl ocsp -respin`.
async fn ocsp_get(s: &Served, cert_pem: &Path) -> String {
    let cert_der = openssl(&["x509", "-in", p(cert_pem), "-outform", "DER"]).stdout;
    let cert = x509_cert::Certificate::from_der(&cert_der).expect("parse");
    let issuer = x509_cert::Certificate::from_der(s.authority.intermediate_der()).expect("issuer");
    let request = RequestBuilder::new()
        .certificate(
            &issuer,
            cert.tbs_certificate().serial_number(),
            CertIdHash::Sha1,
        )
        .expect("cert id")
        .to_der()
        .expect("request");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&request);
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let (status, content_type, body) = http(
        s.port,
        "GET",
        &format!("/ocsp/{encoded}"),
        b"",
        "text/plain",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/ocsp-response");
    let resp = s.dir.join("resp.der");
    std::fs::write(&resp, &body).expect("write");
    let (chain, issuer) = write_chain(s);
    let out = openssl(&[
        "ocsp",
        "-respin",
        p(&resp),
        "-issuer",
        p(&issuer),
        "-cert",
        p(cert_pem),
        "-CAfile",
        p(&chain),
        "-no_nonce",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Response verify OK"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_reports_good_then_revoked_by_post_and_get() {
    let s = serve().await;
    let (cert, serial) = issue_tls(&s, "www.example.org").await;
    let post = tokio::task::block_in_place(|| openssl_ocsp_post(&s, &cert));
    assert!(post.contains(": good"), "{post}");
    let get = ocsp_get(&s, &cert).await;
    assert!(get.contains(": good"), "{get}");
    s.authority
        .revoke_by_operator(
            &serial,
            RevocationReason::KeyCompromise,
            "test",
            SystemTime::now(),
        )
        .await
        .expect("revoke");
    // No refresh lag: the very next answer is revoked.
    let post = tokio::task::block_in_place(|| openssl_ocsp_post(&s, &cert));
    assert!(post.contains(": revoked"), "{post}");
    assert!(post.contains("keyCompromise"), "{post}");
    let get = ocsp_get(&s, &cert).await;
    assert!(get.contains(": revoked"), "{get}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_serves_chain_crl_and_certificates() {
    let s = serve().await;
    let (cert, serial) = issue_tls(&s, "files.example.org").await;
    let (status, ct, chain) = http(s.port, "GET", "/ca/chain.pem", b"", "text/plain").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/pem-certificate-chain")
    );
    assert_eq!(
        String::from_utf8_lossy(&chain)
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let (status, ct, root) = http(s.port, "GET", "/ca/root.crt", b"", "text/plain").await;
    assert_eq!((status, ct.as_str()), (200, "application/pkix-cert"));
    assert_eq!(root, s.authority.root_der());
    let (_, _, int) = http(s.port, "GET", "/ca/intermediate.crt", b"", "text/plain").await;
    assert_eq!(int, s.authority.intermediate_der());
    s.authority
        .revoke_by_operator(
            &serial,
            RevocationReason::Superseded,
            "test",
            SystemTime::now(),
        )
        .await
        .expect("revoke");
    let (status, ct, crl) = http(s.port, "GET", "/crl", b"", "text/plain").await;
    assert_eq!((status, ct.as_str()), (200, "application/pkix-crl"));
    let crl_path = s.dir.join("served.crl");
    std::fs::write(&crl_path, &crl).expect("write");
    let _ = &cert;
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl_path),
        "-noout",
        "-text",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&serial.to_uppercase()));
    let (status, ct, _) = http(s.port, "GET", "/crl/root", b"", "text/plain").await;
    assert_eq!((status, ct.as_str()), (200, "application/pkix-crl"));

    let (status, ct, der) = http(
        s.port,
        "GET",
        &format!("/certs/{}", serial.to_uppercase()),
        b"",
        "text/plain",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/pkix-cert"));
    assert!(x509_cert::Certificate::from_der(&der).is_ok());
    let (status, _, _) = http(
        s.port,
        "GET",
        "/certs/4a0b0c0d0e0f00112233445566778899",
        b"",
        "text/plain",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = http(s.port, "GET", "/certs/nothex", b"", "text/plain").await;
    assert_eq!(status, 400);
    let (status, ct, json) = http(
        s.port,
        "GET",
        "/certs?subject=FILES.example",
        b"",
        "text/plain",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let list: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    let first = list.get(0).expect("one result");
    assert_eq!(
        first.get("serial").and_then(|v| v.as_str()),
        Some(serial.as_str())
    );
    assert_eq!(
        first.get("status").and_then(|v| v.as_str()),
        Some("revoked")
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let long = "a".repeat(confianza_server::store::ca::MAX_SUBJECT_QUERY_LEN + 1);
    let (status, _, _) = http(
        s.port,
        "GET",
        &format!("/certs?subject={long}"),
        b"",
        "text/plain",
    )
    .await;
    assert_eq!(status, 400);
    let at_limit = "a".repeat(confianza_server::store::ca::MAX_SUBJECT_QUERY_LEN);
    let (status, _, _) = http(
        s.port,
        "GET",
        &format!("/certs?subject={at_limit}"),
        b"",
        "text/plain",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ocsp_requests_get_ocsp_errors() {
    let s = serve().await;
    // Wrong media type.
    let (status, _, _) = http(s.port, "POST", "/ocsp", b"\x30\x00", "text/plain").await;
    assert_eq!(status, 415);
    // Garbage: an OCSPResponse with malformedRequest.
    let (status, ct, body) = http(
        s.port,
        "POST",
        "/ocsp",
        b"\x30\x03\x02\x01\x00",
        "application/ocsp-request",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/ocsp-response"));
    assert!(matches!(
        ocsp::parse_response(&body),
        Ok(ocsp::ParsedResponse::Unsuccessful(
            ocsp::OcspResponseStatus::MalformedRequest
        ))
    ));
    let (status, _, body) = http(s.port, "GET", "/ocsp/!!!", b"", "text/plain").await;
    assert_eq!(status, 200);
    assert!(matches!(
        ocsp::parse_response(&body),
        Ok(ocsp::ParsedResponse::Unsuccessful(
            ocsp::OcspResponseStatus::MalformedRequest
        ))
    ));
    // At the OCSP request limit: read, and answered (malformedRequest).
    let at_limit = vec![0u8; ocsp::limits::MAX_REQUEST_BYTES];
    let (status, ct, _) = http(
        s.port,
        "POST",
        "/ocsp",
        &at_limit,
        "application/ocsp-request",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/ocsp-response"));
    // Larger than the OCSP request limit: refused before it is read.
    let big = vec![0u8; ocsp::limits::MAX_REQUEST_BYTES + 1];
    let (status, _, _) = http(s.port, "POST", "/ocsp", &big, "application/ocsp-request").await;
    assert_eq!(status, 413);
    let long = "A".repeat(confianza_server::http::MAX_OCSP_GET_CHARS + 1);
    let (status, _, _) = http(s.port, "GET", &format!("/ocsp/{long}"), b"", "text/plain").await;
    assert_eq!(status, 414);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_enrollment_renewal_stapling_and_holder_revocation() {
    let s = serve().await;
    let now = SystemTime::now();
    let code = s
        .authority
        .create_enrollment_code(
            "carol@example.org",
            std::time::Duration::from_secs(3600),
            now,
        )
        .await
        .expect("code");
    let mut key = [0x05u8; 33];
    key[1..].copy_from_slice(&[0x21; 32]);
    let issued = s
        .authority
        .enroll_identity("carol@example.org", Some(code.as_str()), &key, now)
        .await
        .expect("enroll");
    // The client's view: the identity certificate and the Noise certificate validate to the
    // pinned root with the path validator.
    let root = path::parse_certificate(s.authority.root_der()).expect("root");
    let int = path::parse_certificate(s.authority.intermediate_der()).expect("int");
    let at = now.duration_since(SystemTime::UNIX_EPOCH).expect("time");
    for der in [
        &issued.certificate_der,
        &s.authority.noise_certificate_der(),
    ] {
        let leaf = path::parse_certificate(der).expect("leaf");
        path::validate(
            &leaf,
            std::slice::from_ref(&int),
            std::slice::from_ref(&root),
            at,
            &PathOptions::default(),
        )
        .expect("validates to the root");
    }
    // Stapled OCSP: good.
    let stapled = s
        .authority
        .ocsp_for_certificate(&issued.certificate_der, now)
        .await
        .expect("ocsp");
    assert!(matches!(
        ocsp::parse_response(&stapled),
        Ok(ocsp::ParsedResponse::Basic(_))
    ));
    // Re-key: new key, same subject, linked to the previous serial.
    let mut new_key = key;
    new_key[1..].copy_from_slice(&[0x37; 32]);
    let renewed = s
        .authority
        .renew_identity(&issued.certificate_der, &new_key, now)
        .await
        .expect("renew");
    let record = s
        .authority
        .certificate(&renewed.serial_hex)
        .await
        .expect("stored");
    assert_eq!(
        record.previous_serial.as_deref(),
        Some(issued.serial_hex.as_str())
    );
    assert_eq!(record.subject, "carol@example.org");
    // A certificate this CA did not issue is refused.
    let mut forged = issued.certificate_der.clone();
    if let Some(b) = forged.last_mut() {
        *b ^= 1;
    }
    assert!(matches!(
        s.authority
            .revoke_by_holder(&forged, RevocationReason::KeyCompromise, now)
            .await,
        Err(AuthorityError::NotOurCertificate)
    ));
    // Holder revocation: a holder may not claim a CA compromise.
    assert!(matches!(
        s.authority
            .revoke_by_holder(&issued.certificate_der, RevocationReason::CaCompromise, now)
            .await,
        Err(AuthorityError::Refused(_))
    ));
    s.authority
        .revoke_by_holder(
            &issued.certificate_der,
            RevocationReason::KeyCompromise,
            now,
        )
        .await
        .expect("revoke");
    assert!(matches!(
        s.authority
            .revoke_by_holder(
                &issued.certificate_der,
                RevocationReason::KeyCompromise,
                now
            )
            .await,
        Err(AuthorityError::Revoked(_))
    ));
    assert!(matches!(
        s.authority
            .renew_identity(&issued.certificate_der, &key, now)
            .await,
        Err(AuthorityError::Revoked(_))
    ));
    // Wrong identity key form.
    let mut bad = key;
    bad[0] = 0x04;
    assert!(matches!(
        s.authority
            .enroll_identity("carol@example.org", None, &bad, now)
            .await,
        Err(AuthorityError::InvalidIdentityKey)
    ));
}
