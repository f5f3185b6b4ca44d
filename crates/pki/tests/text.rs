//! `text::certificate` and `text::crl` against `openssl x509 -text -noout` and
//! `openssl crl -text -noout` (OpenSSL 3.0), line for line.
//!
//! Certificates for every key type (Ed25519, X25519, P-256, P-384, RSA-2048) are generated with
//! the `openssl` command line, with the common extensions and an unknown one, then printed by
//! both. The tests are skipped (pass trivially, with a note) when `openssl` is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use confianza_pki::text::{self, Options, UnknownExtensions};
use der::{Decode, DecodePem};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

const LEAF_EXT: &str = "\
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement
extendedKeyUsage=serverAuth,clientAuth,1.2.3.4.5
subjectAltName=DNS:example.org,DNS:*.example.org,email:alice@example.org,URI:https://example.org/a,IP:192.0.2.1,IP:2001:db8::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
crlDistributionPoints=URI:http://pki.example.org/ca.crl
authorityInfoAccess=OCSP;URI:http://pki.example.org/ocsp,caIssuers;URI:http://pki.example.org/ca.crt
certificatePolicies=2.5.29.32.0,1.3.6.1.4.1.99999.1
1.2.3.4.5.6=DER:04:03:01:02:03

[rich]
basicConstraints=critical,CA:TRUE,pathlen:3
keyUsage=digitalSignature,nonRepudiation,dataEncipherment,encipherOnly,decipherOnly
extendedKeyUsage=codeSigning,emailProtection,timeStamping,OCSPSigning,anyExtendedKeyUsage
subjectAltName=DNS:a.example,dirName:dir_sect,RID:1.2.3.4,otherName:1.2.3.4;UTF8:hello
authorityKeyIdentifier=keyid:always,issuer:always
crlDistributionPoints=URI:http://a.example/1.crl,URI:http://b.example/2.crl
certificatePolicies=ia5org,@pol1,1.2.3
issuerAltName=email:ca@example.org
nameConstraints=critical,permitted;DNS:example.org,permitted;IP:10.0.0.0/255.0.0.0,excluded;email:bad@example.org
1.3.6.1.5.5.7.48.1.5=ASN1:NULL
1.2.3.4.5.7=critical,DER:30:0a:0c:08:48:65:6c:6c:6f:0a:21:7f

[dp]
crlDistributionPoints=dp1,dp2
authorityInfoAccess=1.3.6.1.5.5.7.48.5;URI:http://repo.example/,1.2.3.9;email:x@example.org

[dp1]
fullname=URI:http://a.example/1.crl,URI:ldap://a.example/cn=crl
reasons=keyCompromise,CACompromise,superseded
CRLissuer=dirName:dir_sect

[dp2]
fullname=URI:http://c.example/3.crl

[confianza]
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyAgreement
subjectAltName=email:alice@example.org
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
crlDistributionPoints=URI:http://pki.example.org/ca.crl
authorityInfoAccess=OCSP;URI:http://pki.example.org/ocsp

[dir_sect]
C=ES
O=Dir Org
CN=Dir Name

[pol1]
policyIdentifier=1.3.6.1.4.1.5555.1
CPS.1=\"http://cps.example/\"
userNotice.1=@notice

[notice]
explicitText=\"Explicit text here\"
organization=\"Org Name\"
noticeNumbers=1,2,3
";

struct Fixtures {
    dir: PathBuf,
}

fn fixtures() -> Option<&'static Fixtures> {
    static F: OnceLock<Option<Fixtures>> = OnceLock::new();
    F.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("openssl not installed: skipping text comparisons");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("confianza-text-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let d = dir.as_path();
        std::fs::write(d.join("ext.cnf"), LEAF_EXT).expect("ext");
        openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"]);
        openssl(
            d,
            &[
                "req", "-x509", "-new", "-key", "ca.key", "-subj",
                "/C=ES/O=Confianza Test/CN=Test CA", "-days", "3650", "-out", "ca.pem",
                "-addext", "basicConstraints=critical,CA:true,pathlen:0",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        // Subject keys of every type.
        openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", "ed25519.key"]);
        openssl(d, &["genpkey", "-algorithm", "X25519", "-out", "x25519.key"]);
        openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "p256.key"]);
        openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "p384.key"]);
        openssl(d, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.key"]);
        for (key_name, subject, section, serial) in [
            ("ed25519", "/CN=alice@example.org/O=Confianza", "leaf", "0x1001"),
            ("x25519", "/CN=bob/OU=Unit, with comma/L=Z\u{fc}rich", "leaf", "0x7fffffffffffffff"),
            ("p256", "/CN=#lead/O=a\\+b/OU= spaced /CN=x+CN=y", "rich", "0x8000000000000000"),
            ("p384", "/C=ES/ST=Madrid/O=Org/OU=A/OU=B/CN=carol/emailAddress=c@example.org", "rich", "0x00ff"),
            ("ed25519", "/CN=eve", "dp", "0x01"),
            ("rsa", "/DC=org/DC=example/UID=u1/serialNumber=42/CN=dave", "leaf", "0x0123456789abcdef0123456789abcdef01234567"),
        ] {
            let name = if section == "dp" { "dp".to_owned() } else { key_name.to_owned() };
            let key = format!("{key_name}.key");
            let pubkey = format!("{key_name}.pub");
            openssl(d, &["pkey", "-in", &key, "-pubout", "-out", &pubkey]);
            // `x509 -new -force_pubkey` works for keys that cannot sign a CSR (X25519).
            openssl(
                d,
                &[
                    "x509", "-new", "-force_pubkey", &pubkey, "-subj", subject, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
                    serial, "-days", "365", "-extfile", "ext.cnf", "-extensions", section,
                    "-out", &format!("{name}.pem"),
                ],
            );
        }
        // Confianza's own shape: an Ed25519 root and an X25519 identity certificate under it.
        openssl(
            d,
            &[
                "req", "-x509", "-new", "-key", "ed25519.key", "-subj",
                "/O=Confianza/CN=Confianza Root CA", "-days", "3650", "-out", "ed-ca.pem",
                "-addext", "basicConstraints=critical,CA:true",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "x509", "-new", "-force_pubkey", "x25519.pub", "-subj",
                "/O=Confianza/CN=alice@example.org", "-CA", "ed-ca.pem", "-CAkey", "ed25519.key",
                "-set_serial", "0x5eed", "-days", "365", "-extfile", "ext.cnf", "-extensions",
                "confianza", "-out", "identity.pem",
            ],
        );
        // An RSA-signed, self-signed certificate (RSA signature dump, no extensions beyond
        // the defaults).
        openssl(
            d,
            &[
                "req", "-x509", "-new", "-key", "rsa.key", "-subj", "/CN=RSA CA", "-days", "10",
                "-out", "rsa-ca.pem",
            ],
        );
        // A CRL from `openssl ca`: reasons, no reason, long serial, AKI, CRL number.
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\n\
             default_md=sha256\ndefault_crl_days=7\ncrl_extensions=crl_ext\n\
             [crl_ext]\nauthorityKeyIdentifier=keyid:always\n\
             issuingDistributionPoint=critical,@idp\n\
             [idp]\nfullname=URI:http://pki.example.org/ca.crl\nonlyuser=TRUE\n\
             onlysomereasons=keyCompromise,superseded\n",
        )
        .expect("ca.cnf");
        std::fs::write(d.join("crlnumber"), "1F\n").expect("crlnumber");
        std::fs::write(
            d.join("index.txt"),
            "R\t301231235959Z\t250101000000Z,keyCompromise\t1002\tunknown\t/CN=bob\n\
             R\t301231235959Z\t250201000000Z\t10AB\tunknown\t/CN=carol\n\
             R\t301231235959Z\t250301000000Z,superseded\t00FF112233445566778899\tunknown\t/CN=dave\n\
             R\t301231235959Z\t250401000000Z,cessationOfOperation\t01\tunknown\t/CN=erin\n\
             V\t301231235959Z\t\t1001\tunknown\t/CN=alice\n",
        )
        .expect("index");
        openssl(
            d,
            &["ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem", "-out", "crl.pem"],
        );
        std::fs::write(d.join("empty-index.txt"), "").expect("index");
        // A CRL number makes it a v2 CRL (x509-cert parses v2 CRLs only).
        std::fs::write(d.join("crlnumber-empty"), "0123456789ABCDEF0123456789ABCDEF01\n")
            .expect("crlnumber");
        std::fs::write(
            d.join("ca-empty.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=empty-index.txt\ndefault_md=sha256\n\
             default_crl_days=30\ncrlnumber=crlnumber-empty\n",
        )
        .expect("cnf");
        openssl(
            d,
            &[
                "ca", "-config", "ca-empty.cnf", "-gencrl", "-keyfile", "rsa.key", "-cert",
                "rsa-ca.pem", "-out", "crl-empty.pem",
            ],
        );
        Some(Fixtures { dir })
    })
    .as_ref()
}

/// Compares line by line and reports every differing line.
fn assert_same(ours: &str, theirs: &str, what: &str) {
    let a: Vec<&str> = ours.split('\n').collect();
    let b: Vec<&str> = theirs.split('\n').collect();
    let mut report = String::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            report.push_str(&format!(
                "line {}:\n  ours:    {:?}\n  openssl: {:?}\n",
                i + 1,
                x,
                y
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{what} differs from OpenSSL:\n{report}\n--- ours ---\n{ours}"
    );
}

fn cert(f: &Fixtures, name: &str) -> Certificate {
    Certificate::from_pem(std::fs::read(f.dir.join(name)).expect("read")).expect("parse")
}

fn compare_certificate(name: &str) {
    let Some(f) = fixtures() else { return };
    let c = cert(f, name);
    let theirs = openssl(&f.dir, &["x509", "-in", name, "-text", "-noout"]);
    assert_same(&text::certificate(&c), &theirs, name);
    let theirs = openssl(
        &f.dir,
        &[
            "x509", "-in", name, "-text", "-noout", "-certopt", "ext_dump",
        ],
    );
    let options = Options {
        unknown_extensions: UnknownExtensions::HexDump,
    };
    assert_same(
        &text::certificate_with(&c, &options),
        &theirs,
        &format!("{name} (ext_dump)"),
    );
}

#[test]
fn ed25519_leaf_matches_openssl() {
    compare_certificate("ed25519.pem");
}

#[test]
fn x25519_leaf_matches_openssl() {
    compare_certificate("x25519.pem");
}

#[test]
fn p256_with_every_rendered_extension_matches_openssl() {
    compare_certificate("p256.pem");
}

#[test]
fn p384_matches_openssl() {
    compare_certificate("p384.pem");
}

#[test]
fn rsa_key_matches_openssl() {
    compare_certificate("rsa.pem");
}

#[test]
fn rsa_signed_self_signed_ca_matches_openssl() {
    compare_certificate("rsa-ca.pem");
}

#[test]
fn distribution_point_details_match_openssl() {
    compare_certificate("dp.pem");
}

#[test]
fn ed25519_root_and_x25519_identity_match_openssl() {
    compare_certificate("ed-ca.pem");
    compare_certificate("identity.pem");
}

#[test]
fn ec_ca_matches_openssl() {
    compare_certificate("ca.pem");
}

#[test]
fn crls_match_openssl() {
    let Some(f) = fixtures() else { return };
    for name in ["crl.pem", "crl-empty.pem"] {
        let pem = std::fs::read(f.dir.join(name)).expect("read");
        let (_, der) = pem_rfc7468_decode(&pem);
        let crl = CertificateList::from_der(&der).expect("parse CRL");
        let theirs = openssl(&f.dir, &["crl", "-in", name, "-text", "-noout"]);
        assert_same(&text::crl(&crl), &theirs, name);
    }
}

fn pem_rfc7468_decode(pem: &[u8]) -> (String, Vec<u8>) {
    let text = std::str::from_utf8(pem).expect("utf-8 PEM");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    (String::new(), der)
}

#[test]
fn unknown_extension_is_still_printed() {
    let Some(f) = fixtures() else { return };
    let out = text::certificate(&cert(f, "ed25519.pem"));
    assert!(
        out.contains("            1.2.3.4.5.6: \n                .....\n"),
        "{out}"
    );
}
