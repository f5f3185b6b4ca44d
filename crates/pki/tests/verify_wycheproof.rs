//! `confianza_pki::verify` against Wycheproof signature vectors (`vectors/wycheproof`).
//!
//! Every `valid` case must verify and every `invalid` case must be rejected (with an error, not a
//! panic). Policy for `acceptable` cases: the only one in these files is RSA PKCS#1 v1.5
//! `MissingNull` (a `DigestInfo` without the NULL hash parameter), which we **reject**; the test
//! asserts that.

use std::path::PathBuf;

use confianza_pki::verify::{SignatureError, verify_signature};
use der::Decode;
use serde_json::Value;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

fn shared_dir() -> PathBuf {
    match std::env::var_os("CONFIANZA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn load(name: &str) -> Value {
    let path = shared_dir().join("vectors/wycheproof").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().expect("hex string")).expect("hex")
}

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

/// Runs every test of every group with the given algorithm identifier (DER).
fn run(file: &str, alg_der: &[u8]) -> Counts {
    let json = load(file);
    let alg = AlgorithmIdentifierRef::from_der(alg_der).expect("algorithm identifier");
    let mut counts = Counts::default();
    for group in json["testGroups"].as_array().expect("groups") {
        let spki_der = hex_field(group, "publicKeyDer");
        let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).expect("SPKI");
        for test in group["tests"].as_array().expect("tests") {
            let id = test["tcId"].as_u64().expect("tcId");
            let msg = hex_field(test, "msg");
            let sig = hex_field(test, "sig");
            let result = verify_signature(&spki, &alg, &msg, &sig);
            match test["result"].as_str().expect("result") {
                "valid" => {
                    assert_eq!(result, Ok(()), "{file} tcId {id} should verify");
                    counts.valid += 1;
                }
                "invalid" => {
                    assert!(result.is_err(), "{file} tcId {id} should be rejected");
                    counts.invalid += 1;
                }
                "acceptable" => {
                    let flags: Vec<&str> = test["flags"]
                        .as_array()
                        .expect("flags")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert_eq!(flags, ["MissingNull"], "{file} tcId {id}: unexpected flags");
                    assert_eq!(
                        result,
                        Err(SignatureError::BadSignature),
                        "{file} tcId {id}: MissingNull is rejected by policy"
                    );
                    counts.acceptable += 1;
                }
                other => panic!("unknown result {other}"),
            }
        }
    }
    println!("{file}: {counts:?}");
    counts
}

// AlgorithmIdentifier DER encodings.
const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

#[test]
fn ed25519() {
    let c = run("ed25519_test.json", ED25519);
    assert_eq!((c.valid, c.invalid, c.acceptable), (88, 63, 0));
}

#[test]
fn ecdsa_p256_sha256_der() {
    let c = run("ecdsa_secp256r1_sha256_test.json", ECDSA_SHA256);
    assert_eq!((c.valid, c.invalid, c.acceptable), (174, 310, 0));
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    let c = run("rsa_signature_2048_sha256_test.json", RSA_SHA256);
    assert_eq!((c.valid, c.invalid, c.acceptable), (9, 249, 1));
}

#[test]
fn rsa_pkcs1_3072_sha256() {
    let c = run("rsa_signature_3072_sha256_test.json", RSA_SHA256);
    assert_eq!((c.valid, c.invalid, c.acceptable), (8, 250, 1));
}

#[test]
fn rsa_pkcs1_4096_sha256() {
    let c = run("rsa_signature_4096_sha256_test.json", RSA_SHA256);
    assert_eq!((c.valid, c.invalid, c.acceptable), (7, 250, 1));
}

#[test]
fn key_algorithm_mismatch_is_typed() {
    let json = load("ed25519_test.json");
    let spki_der = hex_field(&json["testGroups"][0], "publicKeyDer");
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).expect("SPKI");
    let alg = AlgorithmIdentifierRef::from_der(ECDSA_SHA256).expect("alg");
    assert_eq!(
        verify_signature(&spki, &alg, b"m", &[0u8; 64]),
        Err(SignatureError::KeyAlgorithmMismatch)
    );
}

// Self-signed OpenSSL certificates (tests/data/verify): each certificate's signature is checked
// with its own key through the same code as path validation.

fn openssl_cert(name: &str) -> confianza_pki::path::ParsedCertificate {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/verify")
        .join(name);
    let der =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    confianza_pki::path::ParsedCertificate::from_der(&der).expect("certificate parses")
}

fn self_check(name: &str) -> Result<(), SignatureError> {
    let cert = openssl_cert(name);
    let key = cert.public_key()?;
    cert.verify_signed_by(key)
}

#[test]
fn openssl_supported_algorithms_verify() {
    use confianza_pki::verify::{HashAlgorithm, SignatureAlgorithm};
    for (name, alg) in [
        (
            "rsa-pss-sha256.der",
            SignatureAlgorithm::RsaPss {
                hash: HashAlgorithm::Sha256,
                salt_len: 32,
            },
        ),
        (
            "rsa-pss-sha512.der",
            SignatureAlgorithm::RsaPss {
                hash: HashAlgorithm::Sha512,
                salt_len: 64,
            },
        ),
        (
            "rsa-pkcs1-sha384.der",
            SignatureAlgorithm::RsaPkcs1(HashAlgorithm::Sha384),
        ),
        (
            "p384-sha384.der",
            SignatureAlgorithm::Ecdsa(HashAlgorithm::Sha384),
        ),
        (
            "p384-sha256.der",
            SignatureAlgorithm::Ecdsa(HashAlgorithm::Sha256),
        ),
    ] {
        assert_eq!(openssl_cert(name).signature_algorithm(), Ok(alg), "{name}");
        assert_eq!(self_check(name), Ok(()), "{name}");
    }
}

#[test]
fn openssl_refused_algorithms_and_keys() {
    // MGF1 must use the message hash.
    assert_eq!(
        self_check("rsa-pss-sha256-mgf1-sha1.der"),
        Err(SignatureError::WeakAlgorithm(
            const_oid::db::rfc5912::ID_SHA_1
        ))
    );
    assert!(matches!(
        self_check("rsa-pkcs1-sha1.der"),
        Err(SignatureError::WeakAlgorithm(_))
    ));
    assert_eq!(
        self_check("rsa1024-sha256.der"),
        Err(SignatureError::WeakKey { bits: 1024 })
    );
}

#[test]
fn openssl_pss_signature_with_wrong_salt_length_fails() {
    // Same key and signature as rsa-pss-sha256.der, verified as if the salt were 20 bytes.
    use confianza_pki::verify::{HashAlgorithm, SignatureAlgorithm};
    let cert = openssl_cert("rsa-pss-sha256.der");
    let key = cert.public_key().expect("RSA key");
    let tbs = der::Encode::to_der(cert.certificate().tbs_certificate()).expect("re-encode");
    let sig = cert.certificate().signature().raw_bytes();
    let right = SignatureAlgorithm::RsaPss {
        hash: HashAlgorithm::Sha256,
        salt_len: 32,
    };
    assert_eq!(key.verify(right, &tbs, sig), Ok(()));
    let wrong = SignatureAlgorithm::RsaPss {
        hash: HashAlgorithm::Sha256,
        salt_len: 20,
    };
    assert_eq!(
        key.verify(wrong, &tbs, sig),
        Err(SignatureError::BadSignature)
    );
    let mut flipped = sig.to_vec();
    flipped[10] ^= 0x40;
    assert_eq!(
        key.verify(right, &tbs, &flipped),
        Err(SignatureError::BadSignature)
    );
}
