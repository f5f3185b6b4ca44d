//! Path validations per second: a 3-certificate chain (root, intermediate, end entity) in
//! Ed25519 and in ECDSA P-256, generated with x509-cert's builder. Parsing is done once,
//! outside the measured loop; each iteration builds and checks the path (two signatures).
//!
//! `cargo bench -p confianza-pki --bench path`

use std::time::Duration;

use confianza_pki::path::{ExpectedName, ParsedCertificate, PathOptions, validate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/support/path_chain.rs"]
mod path_chain;

use path_chain::{Alg, NOW, chain};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("path_validation");
    group.throughput(Throughput::Elements(1));
    for (label, alg) in [
        ("ed25519_3_certs", Alg::Ed25519),
        ("p256_3_certs", Alg::P256),
    ] {
        let ders = chain(alg, 1);
        let certs: Vec<ParsedCertificate> = ders
            .iter()
            .map(|d| ParsedCertificate::from_der(d).expect("generated certificate parses"))
            .collect();
        let (leaf, rest) = certs.split_first().expect("chain");
        let (root, intermediates) = rest.split_last().expect("chain");
        let anchors = [root.clone()];
        let options = PathOptions {
            expected_names: vec![ExpectedName::Dns("alice.example.org".into())],
            ..PathOptions::default()
        };
        let now = Duration::from_secs(NOW);
        validate(leaf, intermediates, &anchors, now, &options).expect("valid chain");
        group.bench_function(label, |b| {
            b.iter(|| {
                validate(leaf, intermediates, &anchors, now, &options)
                    .expect("valid")
                    .chain()
                    .len()
            });
        });
        let leaf_der = &ders[0];
        group.bench_function(format!("{label}_including_parse"), |b| {
            b.iter(|| {
                let leaf = ParsedCertificate::from_der(leaf_der).expect("parse");
                validate(&leaf, intermediates, &anchors, now, &options)
                    .expect("valid")
                    .chain()
                    .len()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
