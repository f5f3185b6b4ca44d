//! Issuance and CRL benchmarks.
//!
//! ```text
//! cargo bench -p confianza-pki --bench issue                 # criterion
//! CONFIANZA_BENCH_ONESHOT=crl1m  <bench binary>              # one 1 000 000-entry CRL, for
//! CONFIANZA_BENCH_ONESHOT=issue  <bench binary>              #   /usr/bin/time -v (peak RSS)
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use confianza_pki::crl::{CrlParams, RevocationReason, RevokedEntry, build_crl};
use confianza_pki::profile::CertificateTemplate;
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::serial::Serial;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use criterion::{Criterion, Throughput, criterion_group};

fn hierarchy(alg: CaAlgorithm, rng: &mut common::TestRng) -> common::Hierarchy {
    let root = CaKey::generate(alg, rng).expect("root key");
    let int = CaKey::generate(alg, rng).expect("intermediate key");
    common::hierarchy(root, int, rng)
}

fn identity_template(rng: &mut common::TestRng) -> CertificateTemplate {
    let (_, verified) = common::identity_request("alice@example.org", rng);
    verified.into_template().expect("template")
}

fn crl_entries(n: usize, rng: &mut common::TestRng) -> Vec<RevokedEntry> {
    let t = common::now();
    (0..n)
        .map(|i| RevokedEntry {
            serial: Serial::random(rng),
            revoked_at: t - Duration::from_secs(i as u64 % 1_000_000),
            reason: RevocationReason::ALL[i % RevocationReason::ALL.len()],
        })
        .collect()
}

fn bench_issue(c: &mut Criterion) {
    let mut rng = common::rng(1);
    let mut group = c.benchmark_group("issue_identity");
    group.throughput(Throughput::Elements(1));
    for alg in [CaAlgorithm::Ed25519, CaAlgorithm::P256] {
        let h = hierarchy(alg, &mut rng);
        let template = identity_template(&mut rng);
        group.bench_function(alg.name(), |b| {
            b.iter(|| {
                let approved =
                    ApprovedRequest::by_ca_operator(1, template.clone(), "bench", common::now());
                black_box(
                    h.intermediate
                        .issue(approved, common::now(), &mut rng)
                        .expect("issue"),
                )
            })
        });
    }
    group.finish();
}

fn bench_crl(c: &mut Criterion) {
    let mut rng = common::rng(2);
    let h = hierarchy(CaAlgorithm::Ed25519, &mut rng);
    let mut group = c.benchmark_group("crl");
    group.sample_size(10);
    for n in [10_000usize, 1_000_000] {
        let entries = crl_entries(n, &mut rng);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("build_{n}"), |b| {
            b.iter(|| {
                black_box(
                    build_crl(&h.intermediate, &CrlParams::new(1, common::now()), &entries)
                        .expect("crl"),
                )
            })
        });
    }
    group.finish();
}

/// One measured run outside criterion, so `/usr/bin/time -v` sees only this work.
fn oneshot(what: &str) {
    let mut rng = common::rng(3);
    let h = hierarchy(CaAlgorithm::Ed25519, &mut rng);
    match what {
        "crl1m" => {
            let entries = crl_entries(1_000_000, &mut rng);
            let start = Instant::now();
            let crl = build_crl(&h.intermediate, &CrlParams::new(1, common::now()), &entries)
                .expect("crl");
            let took = start.elapsed();
            println!(
                "CRL with {} entries: {} bytes in {:.3} s",
                entries.len(),
                crl.len(),
                took.as_secs_f64()
            );
        }
        "sign" => {
            // The signature alone, to see what the encoder adds on top of it.
            let tbs = vec![0x5au8; 420];
            let n = 100_000u32;
            let start = Instant::now();
            for _ in 0..n {
                black_box(h.intermediate.key().sign(black_box(&tbs)).expect("sign"));
            }
            let took = start.elapsed();
            println!(
                "{n} Ed25519 signatures over 420 bytes in {:.3} s = {:.0} signatures/s",
                took.as_secs_f64(),
                f64::from(n) / took.as_secs_f64()
            );
        }
        _ => {
            let template = identity_template(&mut rng);
            let n = 100_000u32;
            let start = Instant::now();
            for _ in 0..n {
                let approved =
                    ApprovedRequest::by_ca_operator(1, template.clone(), "bench", common::now());
                black_box(
                    h.intermediate
                        .issue(approved, common::now(), &mut rng)
                        .expect("issue"),
                );
            }
            let took = start.elapsed();
            println!(
                "{n} identity certificates in {:.3} s = {:.0} certificates/s",
                took.as_secs_f64(),
                f64::from(n) / took.as_secs_f64()
            );
        }
    }
}

criterion_group!(benches, bench_issue, bench_crl);

fn main() {
    if let Ok(what) = std::env::var("CONFIANZA_BENCH_ONESHOT") {
        oneshot(&what);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
