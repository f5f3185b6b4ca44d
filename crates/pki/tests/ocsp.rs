//! OCSP: requests, responder, response checking — against OpenSSL 3 in both directions.
//!
//! A CA (P-256), a delegated OCSP signer (Ed25519, `id-kp-OCSPSigning`) and a signer without
//! that EKU are made with the `openssl` command line; our responder signs with the PEM keys
//! OpenSSL generated, and `openssl ocsp` verifies what we produce. OpenSSL's own responder
//! (`openssl ocsp -index`) produces responses that our checker must accept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use confianza_pki::ocsp::{
    self, BasicResponseBuilder, CertIdHash, CertStatusSource, CheckError, CheckOptions,
    OcspResponseStatus, ParsedResponse, RequestBuilder, RequestError, Responder, ResponseError,
    SingleStatus, Status, StatusUnavailable, limits,
};
use der::asn1::ObjectIdentifier;
use der::{Decode, DecodePem, Encode};
use proptest::prelude::*;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::serial_number::SerialNumber;

const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Everything `openssl` generated for the tests.
struct Pki {
    dir: PathBuf,
    ca: Certificate,
    ca_key: p256::ecdsa::SigningKey,
    signer: Certificate,
    signer_key: ed25519_dalek::SigningKey,
    no_eku: Certificate,
    no_eku_key: ed25519_dalek::SigningKey,
    other_ca: Certificate,
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn read_cert(dir: &Path, name: &str) -> Certificate {
    let pem = std::fs::read(dir.join(name)).expect("read cert");
    Certificate::from_pem(&pem).expect("parse cert")
}

fn key_der(dir: &Path, name: &str) -> Vec<u8> {
    let out = openssl(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", name, "-outform", "DER",
        ],
    );
    out.stdout
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("confianza-ocsp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let d = dir.as_path();
        for (name, subject) in [
            ("ca", "/O=Confianza Test/CN=Test CA"),
            ("other", "/CN=Other CA"),
        ] {
            let key = format!("{name}.key");
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &key,
                ],
            );
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    &key,
                    "-subj",
                    subject,
                    "-days",
                    "3650",
                    "-out",
                    &format!("{name}.pem"),
                    "-addext",
                    "basicConstraints=critical,CA:true",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        std::fs::write(
            d.join("ocsp.ext"),
            "extendedKeyUsage=critical,OCSPSigning\nbasicConstraints=critical,CA:false\n\
             keyUsage=critical,digitalSignature\n1.3.6.1.5.5.7.48.1.5=ASN1:NULL\n",
        )
        .expect("write ext");
        std::fs::write(
            d.join("noeku.ext"),
            "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("write ext");
        for (name, ext, serial) in [("ocsp", "ocsp.ext", "0x99"), ("noeku", "noeku.ext", "0x98")] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", &key]);
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-subj",
                    &format!("/CN={name}"),
                    "-out",
                    &csr,
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    serial,
                    "-days",
                    "365",
                    "-extfile",
                    ext,
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        Pki {
            ca: read_cert(d, "ca.pem"),
            ca_key: p256::ecdsa::SigningKey::from_pkcs8_der(&key_der(d, "ca.key")).expect("ca key"),
            signer: read_cert(d, "ocsp.pem"),
            signer_key: ed25519_dalek::SigningKey::from_pkcs8_der(&key_der(d, "ocsp.key"))
                .expect("ocsp key"),
            no_eku: read_cert(d, "noeku.pem"),
            no_eku_key: ed25519_dalek::SigningKey::from_pkcs8_der(&key_der(d, "noeku.key"))
                .expect("noeku key"),
            other_ca: read_cert(d, "other.pem"),
            dir,
        }
    })
}

/// The CA database, as the responder sees it.
struct Database {
    statuses: HashMap<Vec<u8>, Status>,
    unavailable: Option<StatusUnavailable>,
}

impl CertStatusSource for Database {
    fn status(
        &self,
        _issuer_key_hash: &[u8],
        serial: &SerialNumber,
    ) -> Result<Status, StatusUnavailable> {
        if let Some(e) = self.unavailable {
            return Err(e);
        }
        Ok(self
            .statuses
            .get(serial.as_bytes())
            .copied()
            .unwrap_or(Status::Unknown))
    }
}

fn revocation_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600) // 2025-01-01T00:00:00Z
}

fn database() -> Database {
    let mut statuses = HashMap::new();
    statuses.insert(vec![0x10, 0x01], Status::Good);
    statuses.insert(
        vec![0x10, 0x02],
        Status::Revoked {
            time: revocation_time(),
            reason: Some(CrlReason::KeyCompromise),
        },
    );
    Database {
        statuses,
        unavailable: None,
    }
}

fn serial(bytes: &[u8]) -> SerialNumber {
    SerialNumber::new(bytes).expect("serial")
}

fn ed25519_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_ED25519,
        parameters: None,
    }
}

fn ed25519_signer(
    key: &ed25519_dalek::SigningKey,
) -> impl FnMut(&[u8]) -> Result<Vec<u8>, std::convert::Infallible> + '_ {
    use ed25519_dalek::Signer as _;
    move |msg| Ok(key.sign(msg).to_bytes().to_vec())
}

fn delegated_responder() -> Responder {
    let p = pki();
    Responder::new(
        &p.ca,
        Some(&p.signer),
        ed25519_alg(),
        Duration::from_secs(3600),
    )
    .expect("responder")
}

fn respond(request: &[u8], now: SystemTime) -> ocsp::Answer {
    let p = pki();
    delegated_responder().respond(request, now, &database(), ed25519_signer(&p.signer_key))
}

fn unique(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    pki()
        .dir
        .join(format!("{name}-{}.der", N.fetch_add(1, Ordering::Relaxed)))
}

#[test]
fn openssl_verifies_delegated_response_with_nonce_and_all_statuses() {
    let p = pki();
    let d = p.dir.as_path();
    let req = unique("req");
    let req_s = req.to_str().expect("utf8");
    // OpenSSL's client builds the request: three serials and a random nonce.
    openssl(
        d,
        &[
            "ocsp", "-issuer", "ca.pem", "-serial", "0x1001", "-serial", "0x1002", "-serial",
            "0x1003", "-reqout", req_s,
        ],
    );
    let request = std::fs::read(&req).expect("read request");
    let parsed = ocsp::parse_request(&request).expect("parse openssl request");
    assert_eq!(parsed.cert_ids().count(), 3);
    assert_eq!(parsed.nonce().map(<[u8]>::len), Some(16));

    let answer = respond(&request, SystemTime::now());
    assert_eq!(answer.status, OcspResponseStatus::Successful);
    let resp = unique("resp");
    std::fs::write(&resp, &answer.der).expect("write response");
    let resp_s = resp.to_str().expect("utf8");

    // Signature, delegation and nonce, checked by OpenSSL against the request.
    let (ok, text) = openssl_status(
        d,
        &[
            "ocsp",
            "-respin",
            resp_s,
            "-CAfile",
            "ca.pem",
            "-reqin",
            req_s,
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("Nonce Verify error"), "{text}");
    assert!(text.contains("OCSP Nonce"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");
    assert!(text.contains("Cert Status: revoked"), "{text}");
    assert!(
        text.contains("Revocation Reason: keyCompromise (0x1)"),
        "{text}"
    );
    assert!(
        text.contains("Revocation Time: Jan  1 00:00:00 2025 GMT"),
        "{text}"
    );
    assert!(text.contains("Cert Status: unknown"), "{text}");
    assert!(text.contains("Next Update:"), "{text}");
    assert!(
        text.contains("Subject: CN=ocsp"),
        "the delegated cert is included:\n{text}"
    );

    // Per-serial status lines (OpenSSL matches each CertID itself).
    for (serial, expected) in [
        ("0x1001", "0x1001: good"),
        ("0x1002", "0x1002: revoked"),
        ("0x1003", "0x1003: unknown"),
    ] {
        let (ok, text) = openssl_status(
            d,
            &[
                "ocsp",
                "-respin",
                resp_s,
                "-CAfile",
                "ca.pem",
                "-issuer",
                "ca.pem",
                "-serial",
                serial,
                "-no_nonce",
            ],
        );
        assert!(ok, "{text}");
        assert!(text.contains(expected), "{text}");
    }
    let (_, text) = openssl_status(
        d,
        &[
            "ocsp",
            "-respin",
            resp_s,
            "-CAfile",
            "ca.pem",
            "-issuer",
            "ca.pem",
            "-serial",
            "0x1002",
            "-no_nonce",
        ],
    );
    assert!(text.contains("Reason: keyCompromise"), "{text}");
}

#[test]
fn openssl_rejects_a_response_for_another_nonce() {
    let p = pki();
    let d = p.dir.as_path();
    let ours = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("cert id")
        .nonce(&[1; 16])
        .expect("nonce")
        .to_der()
        .expect("request");
    let answer = respond(&ours, SystemTime::now());
    let resp = unique("resp");
    std::fs::write(&resp, &answer.der).expect("write");
    // A different request (different nonce) must not match.
    let req = unique("req");
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-serial",
            "0x1001",
            "-reqout",
            req.to_str().expect("utf8"),
        ],
    );
    let (ok, text) = openssl_status(
        d,
        &[
            "ocsp",
            "-respin",
            resp.to_str().expect("utf8"),
            "-CAfile",
            "ca.pem",
            "-reqin",
            req.to_str().expect("utf8"),
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("Nonce Verify error"), "{text}");
}

#[test]
fn openssl_verifies_response_signed_by_the_ca_itself_with_sha256_cert_id() {
    let p = pki();
    let responder = Responder::new(
        &p.ca,
        None,
        AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        Duration::from_secs(600),
    )
    .expect("responder");
    let request = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha256)
        .expect("cert id")
        .to_der()
        .expect("request");
    let answer = responder.respond(&request, SystemTime::now(), &database(), |msg: &[u8]| {
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::DerSignature = p.ca_key.sign(msg);
        Ok::<_, std::convert::Infallible>(sig.as_bytes().to_vec())
    });
    assert_eq!(answer.status, OcspResponseStatus::Successful);
    let resp = unique("resp");
    std::fs::write(&resp, &answer.der).expect("write");
    let (ok, text) = openssl_status(
        pki().dir.as_path(),
        &[
            "ocsp",
            "-respin",
            resp.to_str().expect("utf8"),
            "-VAfile",
            "ca.pem",
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    // Our checker agrees.
    let verified = ocsp::check_response(
        &answer.der,
        &p.ca,
        &serial(&[0x10, 0x01]),
        &CheckOptions::at(SystemTime::now()),
    )
    .expect("check");
    assert_eq!(verified.status(), Status::Good);
}

#[test]
fn check_accepts_openssl_responder_output() {
    let p = pki();
    let d = p.dir.as_path();
    std::fs::write(
        d.join("index.txt"),
        "V\t301231235959Z\t\t1001\tunknown\t/CN=alice\n\
         R\t301231235959Z\t250101000000Z,keyCompromise\t1002\tunknown\t/CN=bob\n",
    )
    .expect("index");
    for (serial_hex, serial_bytes) in [("0x1001", [0x10, 0x01]), ("0x1002", [0x10, 0x02])] {
        let req = unique("req");
        let resp = unique("oresp");
        openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-serial",
                serial_hex,
                "-reqout",
                req.to_str().expect("utf8"),
            ],
        );
        openssl(
            d,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-rsigner",
                "ocsp.pem",
                "-rkey",
                "ocsp.key",
                "-reqin",
                req.to_str().expect("utf8"),
                "-respout",
                resp.to_str().expect("utf8"),
                "-nmin",
                "60",
            ],
        );
        let request = ocsp::parse_request(&std::fs::read(&req).expect("req")).expect("parse");
        let nonce = request.nonce().expect("openssl sends a nonce").to_vec();
        let der = std::fs::read(&resp).expect("resp");
        let mut options = CheckOptions::at(SystemTime::now());
        options.nonce = Some(&nonce);
        let verified =
            ocsp::check_response(&der, &p.ca, &serial(&serial_bytes), &options).expect("check");
        match serial_bytes {
            [0x10, 0x01] => assert_eq!(verified.status(), Status::Good),
            _ => assert_eq!(
                verified.status(),
                Status::Revoked {
                    time: revocation_time(),
                    reason: Some(CrlReason::KeyCompromise)
                }
            ),
        }
        assert!(verified.next_update().is_some());
        // OpenSSL's responder names itself byName: a wrong nonce is still caught.
        options.nonce = Some(&[0; 16]);
        assert_eq!(
            ocsp::check_response(&der, &p.ca, &serial(&serial_bytes), &options),
            Err(CheckError::NonceMismatch)
        );
    }
}

#[test]
fn round_trip_statuses_through_our_checker() {
    let p = pki();
    let now = SystemTime::now();
    let nonce = [0x5a; 32];
    let request = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .certificate(&p.ca, &serial(&[0x10, 0x02]), CertIdHash::Sha256)
        .expect("id")
        .certificate(&p.ca, &serial(&[0x10, 0x03]), CertIdHash::Sha1)
        .expect("id")
        .nonce(&nonce)
        .expect("nonce")
        .to_der()
        .expect("request");
    let parsed = ocsp::parse_request(&request).expect("parse");
    assert_eq!(parsed.nonce(), Some(&nonce[..]));
    assert_eq!(parsed.cert_ids().count(), 3);

    let answer = respond(&request, now);
    let mut options = CheckOptions::at(now);
    options.nonce = Some(&nonce);
    let check = |s: &[u8]| ocsp::check_response(&answer.der, &p.ca, &serial(s), &options);
    assert_eq!(check(&[0x10, 0x01]).expect("good").status(), Status::Good);
    assert_eq!(
        check(&[0x10, 0x02]).expect("revoked").status(),
        Status::Revoked {
            time: revocation_time(),
            reason: Some(CrlReason::KeyCompromise)
        }
    );
    assert_eq!(
        check(&[0x10, 0x03]).expect("unknown").status(),
        Status::Unknown
    );
    assert_eq!(check(&[0x10, 0x04]), Err(CheckError::NoMatchingResponse));

    // Nonce: wrong, or missing from the response.
    let mut wrong = options;
    wrong.nonce = Some(&[0x5b; 32]);
    assert_eq!(
        ocsp::check_response(&answer.der, &p.ca, &serial(&[0x10, 0x01]), &wrong),
        Err(CheckError::NonceMismatch)
    );
    let no_nonce_request = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("request");
    let answer2 = respond(&no_nonce_request, now);
    assert_eq!(
        ocsp::check_response(&answer2.der, &p.ca, &serial(&[0x10, 0x01]), &options),
        Err(CheckError::NonceMismatch)
    );
    // Stapled use: no nonce expected.
    assert!(
        ocsp::check_response(
            &answer2.der,
            &p.ca,
            &serial(&[0x10, 0x01]),
            &CheckOptions::at(now)
        )
        .is_ok()
    );
    // Another issuer with the same serial does not match.
    assert_eq!(
        ocsp::check_response(&answer.der, &p.other_ca, &serial(&[0x10, 0x01]), &options),
        Err(CheckError::UnauthorizedResponder("not issued by the CA"))
    );
}

#[test]
fn freshness_is_enforced() {
    let p = pki();
    // An hour after the signer certificate's notBefore, so only the response's times matter.
    let produced = SystemTime::now() + Duration::from_secs(3600);
    let request = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("request");
    let der = respond(&request, produced).der;
    let check = |now: SystemTime| {
        ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x01]), &CheckOptions::at(now))
    };
    // nextUpdate = produced + 1 h; skew 5 min.
    assert!(check(produced + Duration::from_secs(3600 + 299)).is_ok());
    assert_eq!(
        check(produced + Duration::from_secs(3600 + 301)),
        Err(CheckError::Stale)
    );
    assert!(check(produced - Duration::from_secs(299)).is_ok());
    assert_eq!(
        check(produced - Duration::from_secs(301)),
        Err(CheckError::NotYetValid)
    );
    // The signer certificate has expired a year and a day later.
    assert_eq!(
        ocsp::check_response(
            &respond(&request, produced + Duration::from_secs(366 * 86400)).der,
            &p.ca,
            &serial(&[0x10, 0x01]),
            &CheckOptions::at(produced + Duration::from_secs(366 * 86400)),
        ),
        Err(CheckError::UnauthorizedResponder(
            "outside its validity period"
        ))
    );
    // Without nextUpdate, the age limit (one day by default) applies.
    let der = BasicResponseBuilder::new(delegated_id(&p.signer), produced)
        .single(SingleStatus {
            cert_id: ocsp::cert_id(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1).expect("id"),
            status: Status::Good,
            this_update: produced,
            next_update: None,
        })
        .certs(vec![p.signer.clone()])
        .sign(ed25519_alg(), ed25519_signer(&p.signer_key))
        .expect("sign");
    let check = |now: SystemTime| {
        ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x01]), &CheckOptions::at(now))
    };
    let day = 86_400;
    assert!(check(produced + Duration::from_secs(day + 299)).is_ok());
    assert_eq!(
        check(produced + Duration::from_secs(day + 301)),
        Err(CheckError::Stale)
    );
}

#[test]
fn tampered_or_unauthorized_responses_are_rejected() {
    let p = pki();
    let now = SystemTime::now();
    let id = ocsp::cert_id(&p.ca, &serial(&[0x10, 0x02]), CertIdHash::Sha1).expect("id");
    let single = SingleStatus {
        cert_id: id.clone(),
        status: Status::Good,
        this_update: now,
        next_update: Some(now + Duration::from_secs(600)),
    };
    let options = CheckOptions::at(now);

    // A delegate without id-kp-OCSPSigning, although issued by the CA.
    let responder_id = delegated_id(&p.no_eku);
    let der = BasicResponseBuilder::new(responder_id, now)
        .single(single.clone())
        .certs(vec![p.no_eku.clone()])
        .sign(ed25519_alg(), ed25519_signer(&p.no_eku_key))
        .expect("sign");
    assert_eq!(
        ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x02]), &options),
        Err(CheckError::UnauthorizedResponder(
            "no id-kp-OCSPSigning extended key usage"
        ))
    );
    // OpenSSL agrees.
    let path = unique("noeku");
    std::fs::write(&path, &der).expect("write");
    let (ok, text) = openssl_status(
        &p.dir,
        &[
            "ocsp",
            "-respin",
            path.to_str().expect("utf8"),
            "-CAfile",
            "ca.pem",
        ],
    );
    assert!(!ok, "{text}");

    // A response claiming "good" for a revoked serial, signed by the real delegate, verifies;
    // flip one bit of the signed data and it does not.
    let der = BasicResponseBuilder::new(delegated_id(&p.signer), now)
        .single(single.clone())
        .certs(vec![p.signer.clone()])
        .sign(ed25519_alg(), ed25519_signer(&p.signer_key))
        .expect("sign");
    assert!(ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x02]), &options).is_ok());
    let mut tampered = der.clone();
    // The serial number's last octet sits inside tbsResponseData.
    let pos = tampered
        .windows(4)
        .position(|w| w == [0x02, 0x02, 0x10, 0x02])
        .expect("serial in response");
    tampered[pos + 3] = 0x01;
    assert!(matches!(
        ocsp::check_response(&tampered, &p.ca, &serial(&[0x10, 0x01]), &options),
        Err(CheckError::BadSignature(_))
    ));

    // Signed by the delegate's key but without its certificate: unknown responder.
    let der = BasicResponseBuilder::new(delegated_id(&p.signer), now)
        .single(single)
        .sign(ed25519_alg(), ed25519_signer(&p.signer_key))
        .expect("sign");
    assert_eq!(
        ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x02]), &options),
        Err(CheckError::UnknownResponder)
    );
}

fn delegated_id(cert: &Certificate) -> ocsp::asn1::ResponderId {
    ocsp::asn1::ResponderId::ByKey(
        der::asn1::OctetString::new(ocsp::responder_key_hash(
            cert.tbs_certificate().subject_public_key_info(),
        ))
        .expect("hash"),
    )
}

#[test]
fn responder_refuses_a_delegate_without_eku_or_from_another_ca() {
    let p = pki();
    assert!(matches!(
        Responder::new(
            &p.ca,
            Some(&p.no_eku),
            ed25519_alg(),
            Duration::from_secs(1)
        ),
        Err(ocsp::ResponderError::MissingOcspSigningEku)
    ));
    assert!(matches!(
        Responder::new(
            &p.other_ca,
            Some(&p.signer),
            ed25519_alg(),
            Duration::from_secs(1)
        ),
        Err(ocsp::ResponderError::NotIssuedByCa)
    ));
}

#[test]
fn error_responses() {
    let p = pki();
    let now = SystemTime::now();
    // Garbage → malformedRequest, which OpenSSL reads as such.
    let answer = respond(b"\x30\x03\x02\x01\x00", now);
    assert_eq!(answer.status, OcspResponseStatus::MalformedRequest);
    let path = unique("malformed");
    std::fs::write(&path, &answer.der).expect("write");
    let (_, text) = openssl_status(
        &p.dir,
        &[
            "ocsp",
            "-respin",
            path.to_str().expect("utf8"),
            "-resp_text",
            "-noverify",
        ],
    );
    assert!(
        text.contains("Responder Error: malformedrequest (1)"),
        "{text}"
    );
    assert_eq!(
        ocsp::parse_response(&answer.der),
        Ok(ParsedResponse::Unsuccessful(
            OcspResponseStatus::MalformedRequest
        ))
    );
    assert_eq!(
        ocsp::check_response(&answer.der, &p.ca, &serial(&[1]), &CheckOptions::at(now)),
        Err(CheckError::Unsuccessful(
            OcspResponseStatus::MalformedRequest
        ))
    );

    // Only another CA's certificates → unauthorized.
    let foreign = RequestBuilder::new()
        .certificate(&p.other_ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("request");
    assert_eq!(
        respond(&foreign, now).status,
        OcspResponseStatus::Unauthorized
    );

    // Ours and a foreign one → successful, the foreign one unknown.
    let mixed = RequestBuilder::new()
        .certificate(&p.other_ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("request");
    let answer = respond(&mixed, now);
    assert_eq!(answer.status, OcspResponseStatus::Successful);
    let ParsedResponse::Basic(basic) = ocsp::parse_response(&answer.der).expect("parse") else {
        panic!("expected a basic response");
    };
    let statuses: Vec<_> = basic
        .tbs_response_data
        .responses
        .iter()
        .map(|r| matches!(r.cert_status, ocsp::asn1::CertStatus::Unknown(_)))
        .collect();
    assert_eq!(statuses, [true, false]);

    // The database is down → tryLater / internalError; the signer fails → internalError.
    let ours = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("request");
    let responder = delegated_responder();
    for (unavailable, expected) in [
        (StatusUnavailable::TryLater, OcspResponseStatus::TryLater),
        (
            StatusUnavailable::Internal,
            OcspResponseStatus::InternalError,
        ),
    ] {
        let db = Database {
            statuses: HashMap::new(),
            unavailable: Some(unavailable),
        };
        let answer = responder.respond(&ours, now, &db, ed25519_signer(&p.signer_key));
        assert_eq!(answer.status, expected);
        assert_eq!(
            ocsp::parse_response(&answer.der),
            Ok(ParsedResponse::Unsuccessful(expected))
        );
    }
    let answer = responder.respond(&ours, now, &database(), |_: &[u8]| Err("HSM offline"));
    assert_eq!(answer.status, OcspResponseStatus::InternalError);
    assert_eq!(
        ocsp::error_response(OcspResponseStatus::Successful),
        ocsp::error_response(OcspResponseStatus::InternalError)
    );
}

#[test]
fn request_limits() {
    let p = pki();
    let id = ocsp::cert_id(&p.ca, &serial(&[1]), CertIdHash::Sha1).expect("id");
    let build = |n: usize, nonce: Option<&[u8]>| {
        let mut b = RequestBuilder::new();
        for _ in 0..n {
            b = b.cert_id(id.clone());
        }
        if let Some(nonce) = nonce {
            b = b.nonce(nonce).expect("nonce");
        }
        b.to_der().expect("request")
    };
    assert!(ocsp::parse_request(&build(limits::MAX_REQUESTS, None)).is_ok());
    assert_eq!(
        ocsp::parse_request(&build(limits::MAX_REQUESTS + 1, None)),
        Err(RequestError::TooManyRequests(limits::MAX_REQUESTS + 1))
    );
    let nonce = [9u8; limits::MAX_NONCE_LEN + 1];
    assert!(ocsp::parse_request(&build(1, Some(&nonce[..limits::MAX_NONCE_LEN]))).is_ok());
    assert_eq!(
        ocsp::parse_request(&build(1, Some(&nonce))),
        Err(RequestError::BadNonceLength(limits::MAX_NONCE_LEN + 1))
    );
    assert_eq!(
        ocsp::parse_request(&build(1, Some(&[]))),
        Err(RequestError::BadNonceLength(0))
    );
    assert!(matches!(
        RequestBuilder::new().to_der(),
        Err(RequestError::NothingRequested)
    ));
    // Empty requestList: SEQUENCE { SEQUENCE { SEQUENCE {} } }.
    assert_eq!(
        ocsp::parse_request(&[0x30, 0x04, 0x30, 0x02, 0x30, 0x00]),
        Err(RequestError::Empty)
    );
    // Size: a request padded up to the byte limit parses as far as DER goes, one more is refused
    // before parsing.
    let big = vec![0u8; limits::MAX_REQUEST_BYTES + 1];
    assert_eq!(
        ocsp::parse_request(&big),
        Err(RequestError::TooLarge(limits::MAX_REQUEST_BYTES + 1))
    );
    assert!(matches!(
        ocsp::parse_request(&big[..limits::MAX_REQUEST_BYTES]),
        Err(RequestError::Der(_))
    ));
    // Responses: the size limit.
    let big = vec![0u8; limits::MAX_RESPONSE_BYTES + 1];
    assert_eq!(
        ocsp::parse_response(&big),
        Err(ResponseError::TooLarge(limits::MAX_RESPONSE_BYTES + 1))
    );
    assert!(matches!(
        ocsp::parse_response(&big[..limits::MAX_RESPONSE_BYTES]),
        Err(ResponseError::Der(_))
    ));
}

#[test]
fn response_entry_limit() {
    let p = pki();
    let now = SystemTime::now();
    let id = ocsp::cert_id(&p.ca, &serial(&[1]), CertIdHash::Sha1).expect("id");
    let build = |n: usize| {
        let mut b = BasicResponseBuilder::new(delegated_id(&p.signer), now);
        for _ in 0..n {
            b = b.single(SingleStatus {
                cert_id: id.clone(),
                status: Status::Good,
                this_update: now,
                next_update: None,
            });
        }
        b.sign(ed25519_alg(), ed25519_signer(&p.signer_key))
            .expect("sign")
    };
    assert!(ocsp::parse_response(&build(limits::MAX_RESPONSE_ENTRIES)).is_ok());
    assert_eq!(
        ocsp::parse_response(&build(limits::MAX_RESPONSE_ENTRIES + 1)),
        Err(ResponseError::TooManyEntries(
            limits::MAX_RESPONSE_ENTRIES + 1
        ))
    );
}

#[test]
fn request_der_round_trip() {
    let p = pki();
    let request = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .nonce(&[3; 16])
        .expect("nonce")
        .build()
        .expect("request");
    let der = request.to_der().expect("der");
    let decoded = ocsp::asn1::OcspRequest::from_der(&der).expect("decode");
    assert_eq!(decoded, request);
    // Same bytes as OpenSSL's request for the same serial, apart from the nonce.
    let req = unique("req");
    openssl(
        &p.dir,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-serial",
            "0x1001",
            "-no_nonce",
            "-reqout",
            req.to_str().expect("utf8"),
        ],
    );
    let theirs = std::fs::read(&req).expect("read");
    let ours = RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .to_der()
        .expect("der");
    assert_eq!(ours, theirs);
}

fn valid_request() -> Vec<u8> {
    let p = pki();
    RequestBuilder::new()
        .certificate(&p.ca, &serial(&[0x10, 0x01]), CertIdHash::Sha1)
        .expect("id")
        .nonce(&[1; 16])
        .expect("nonce")
        .to_der()
        .expect("der")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ocsp::parse_request(&bytes);
        let _ = ocsp::parse_response(&bytes);
    }

    #[test]
    fn mutated_requests_never_panic_and_never_verify_wrongly(
        pos in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut req = valid_request();
        let i = pos.index(req.len());
        req[i] = value;
        let answer = respond(&req, SystemTime::now());
        // Either a well-formed error response or a signed response.
        prop_assert!(ocsp::parse_response(&answer.der).is_ok());
    }

    #[test]
    fn mutated_responses_never_panic(
        pos in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let p = pki();
        let now = SystemTime::now();
        let mut der = respond(&valid_request(), now).der;
        let i = pos.index(der.len());
        let changed = der[i] != value;
        der[i] = value;
        let result = ocsp::check_response(&der, &p.ca, &serial(&[0x10, 0x01]), &CheckOptions::at(now));
        if changed {
            // Any change either breaks parsing, the signature or the match — unless it only
            // touched the unsigned certificate list in a way that still verifies.
            if let Ok(v) = result {
                prop_assert_eq!(v.status(), Status::Good);
            }
        }
    }
}

#[test]
fn signed_openssl_request_is_answered() {
    // A signed request (requestorName + optionalSignature with certs): parsed, answered; the
    // signature is not required by this responder, so it is not checked.
    let p = pki();
    let req = unique("sreq");
    openssl(
        &p.dir,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-serial",
            "0x1002",
            "-signer",
            "ca.pem",
            "-signkey",
            "ca.key",
            "-reqout",
            req.to_str().expect("utf8"),
        ],
    );
    let request = std::fs::read(&req).expect("read");
    let parsed = ocsp::parse_request(&request).expect("parse signed request");
    assert!(parsed.request().optional_signature.is_some());
    assert!(parsed.request().tbs_request.requestor_name.is_some());
    let answer = respond(&request, SystemTime::now());
    assert_eq!(answer.status, OcspResponseStatus::Successful);
    let mut options = CheckOptions::at(SystemTime::now());
    options.nonce = parsed.nonce();
    let verified =
        ocsp::check_response(&answer.der, &p.ca, &serial(&[0x10, 0x02]), &options).expect("check");
    assert!(matches!(verified.status(), Status::Revoked { .. }));
}
