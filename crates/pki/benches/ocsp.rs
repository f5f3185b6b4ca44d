//! OCSP responder throughput: one request (one certificate, 16-octet nonce) in, one signed
//! response out, with an Ed25519 delegated signer; plus request parsing and client checking.
//!
//! The CA and signer certificates are made with the `openssl` command line at start-up.
//!
//! ```text
//! cargo bench -p confianza-pki --bench ocsp
//! ```

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use confianza_pki::ocsp::{
    self, CertIdHash, CertStatusSource, CheckOptions, RequestBuilder, Responder, Status,
    StatusUnavailable,
};
use criterion::{Criterion, Throughput};
use der::DecodePem;
use der::asn1::ObjectIdentifier;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::serial_number::SerialNumber;

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

struct AllGood;

impl CertStatusSource for AllGood {
    fn status(&self, _: &[u8], _: &SerialNumber) -> Result<Status, StatusUnavailable> {
        Ok(Status::Good)
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("confianza-ocsp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let d = dir.as_path();
    openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", "ca.key"]);
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Bench CA",
            "-days",
            "30",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:true",
        ],
    );
    std::fs::write(d.join("ocsp.ext"), "extendedKeyUsage=OCSPSigning\n").expect("ext");
    openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", "ocsp.key"]);
    openssl(
        d,
        &[
            "req", "-new", "-key", "ocsp.key", "-subj", "/CN=ocsp", "-out", "ocsp.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "ocsp.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "30",
            "-extfile", "ocsp.ext", "-out", "ocsp.pem",
        ],
    );
    let key_der = openssl(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "ocsp.key", "-outform", "DER",
        ],
    );
    let ca = Certificate::from_pem(std::fs::read(d.join("ca.pem")).expect("ca")).expect("ca");
    let signer =
        Certificate::from_pem(std::fs::read(d.join("ocsp.pem")).expect("ocsp")).expect("ocsp");
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&key_der).expect("key");
    let _ = std::fs::remove_dir_all(&dir);

    let alg = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.3.101.112"),
        parameters: None,
    };
    let responder =
        Responder::new(&ca, Some(&signer), alg, Duration::from_secs(3600)).expect("responder");
    let serial = SerialNumber::new(&[0x10, 0x01]).expect("serial");
    let nonce = [7u8; 16];
    let request = RequestBuilder::new()
        .certificate(&ca, &serial, CertIdHash::Sha1)
        .expect("id")
        .nonce(&nonce)
        .expect("nonce")
        .to_der()
        .expect("request");
    let now = SystemTime::now();
    let sign = |msg: &[u8]| Ok::<_, std::convert::Infallible>(key.sign(msg).to_bytes().to_vec());
    let response = responder.respond(&request, now, &AllGood, sign).der;

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("ocsp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("respond_ed25519", |b| {
        b.iter(|| responder.respond(black_box(&request), now, &AllGood, sign))
    });
    group.bench_function("parse_request", |b| {
        b.iter(|| ocsp::parse_request(black_box(&request)))
    });
    group.bench_function("check_response", |b| {
        let mut options = CheckOptions::at(now);
        options.nonce = Some(&nonce);
        b.iter(|| ocsp::check_response(black_box(&response), &ca, &serial, &options))
    });
    group.finish();
    c.final_summary();
}
