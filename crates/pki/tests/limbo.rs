//! x509-limbo conformance: every test case of `vectors/x509/limbo/limbo-generated.json` through
//! the same code as the `confianza-limbo` harness binary.
//!
//! Asserts:
//! - no test case limbo expects to FAIL is accepted (ever; no exception can allow it);
//! - every other divergence (a refusal where limbo expects SUCCESS, or a SKIPPED case) is listed
//!   in `tests/limbo-exceptions.json` with its reason, and every listed exception still occurs;
//! - agreement (same result as limbo, over the cases not skipped) is at least
//!   [`MIN_AGREEMENT_PERCENT`], pyca/cryptography's 99.86 % on the full suite. Measured at
//!   177 / 177 = 100 % with 17 skips (4 for unsupported features, 4 sides of conflicting pairs not
//!   followed, the 9 `webpki::cn::*` cases of a check the profile leaves off), so one new
//!   divergence fails this test twice over.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[path = "../src/bin/confianza-limbo.rs"]
#[allow(dead_code)]
mod harness;

/// Lowest agreement accepted (percent of non-skipped cases).
const MIN_AGREEMENT_PERCENT: f64 = 99.86;

fn shared_dir() -> PathBuf {
    match std::env::var_os("CONFIANZA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn load_json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn limbo_suite() {
    let suite = load_json(shared_dir().join("vectors/x509/limbo/limbo-generated.json"));
    let exceptions =
        load_json(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/limbo-exceptions.json"));
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for e in exceptions["exceptions"].as_array().expect("exceptions") {
        let id = e["id"].as_str().expect("id").to_owned();
        let kind = e["kind"].as_str().expect("kind").to_owned();
        assert!(
            kind == "reject" || kind == "skip",
            "{id}: unknown kind {kind}"
        );
        assert!(
            !e["reason"].as_str().unwrap_or_default().is_empty(),
            "{id}: no reason"
        );
        listed.insert(id, kind);
    }

    // Generated certificates are valid 1970..2969; "now" only matters for cases without a time.
    let now = Duration::from_secs(1_790_000_000);
    let results = harness::evaluate_suite(&suite, now);
    let cases = suite["testcases"].as_array().expect("testcases");
    assert_eq!(results.len(), cases.len());
    assert!(cases.len() >= 194, "suite shrank: {}", cases.len());

    let (mut agree, mut reject, mut skipped) = (0usize, 0usize, 0usize);
    let mut wrongly_accepted = Vec::new();
    let mut unlisted = Vec::new();
    let mut seen_exceptions = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        let id = case["id"].as_str().expect("id");
        assert_eq!(id, result.id);
        let expected = case["expected_result"].as_str().expect("expected_result");
        match (expected, result.actual) {
            (_, "SKIPPED") => {
                skipped += 1;
                if listed.get(id).map(String::as_str) == Some("skip") {
                    seen_exceptions.push(id.to_owned());
                } else {
                    unlisted.push(format!("{id}: SKIPPED ({:?})", result.context));
                }
            }
            (e, a) if e == a => agree += 1,
            ("FAILURE", "SUCCESS") => wrongly_accepted.push(id.to_owned()),
            ("SUCCESS", "FAILURE") => {
                reject += 1;
                if listed.get(id).map(String::as_str) == Some("reject") {
                    seen_exceptions.push(id.to_owned());
                } else {
                    unlisted.push(format!("{id}: refused ({:?})", result.context));
                }
            }
            (e, a) => panic!("{id}: unexpected pair {e} / {a}"),
        }
    }
    let evaluated = agree + reject + wrongly_accepted.len();
    #[allow(clippy::cast_precision_loss)]
    let percent = 100.0 * agree as f64 / evaluated as f64;
    println!(
        "limbo: {} cases, {agree} agree, {reject} refused where limbo accepts, {} accepted \
         where limbo refuses, {skipped} skipped; agreement {agree}/{evaluated} = {percent:.1} %",
        cases.len(),
        wrongly_accepted.len()
    );

    assert!(
        wrongly_accepted.is_empty(),
        "accepted test cases limbo expects to FAIL: {wrongly_accepted:#?}"
    );
    assert!(
        unlisted.is_empty(),
        "divergences missing from limbo-exceptions.json: {unlisted:#?}"
    );
    let stale: Vec<_> = listed
        .keys()
        .filter(|id| !seen_exceptions.contains(id))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions that no longer occur (remove them): {stale:#?}"
    );
    assert!(
        percent >= MIN_AGREEMENT_PERCENT,
        "agreement {percent:.1} % below {MIN_AGREEMENT_PERCENT} %"
    );
}

#[test]
fn results_document_has_the_limbo_shape() {
    let suite = load_json(shared_dir().join("vectors/x509/limbo/limbo-generated.json"));
    let one = serde_json::json!({"version": 1, "testcases": [suite["testcases"][0].clone()]});
    let results = harness::evaluate_suite(&one, Duration::from_secs(1_790_000_000));
    let doc = harness::results_json(&results);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["harness"], "confianza");
    let r = &doc["results"][0];
    assert_eq!(r["id"], suite["testcases"][0]["id"]);
    assert!(matches!(
        r["actual_result"].as_str(),
        Some("SUCCESS" | "FAILURE" | "SKIPPED")
    ));
    assert!(r["context"].is_null() || r["context"].is_string());
}

#[test]
fn rfc3339_times() {
    assert_eq!(
        harness::parse_rfc3339("1970-01-01T00:00:03+00:00"),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        harness::parse_rfc3339("2024-03-01T00:00:00.999+00:00"),
        Some(Duration::new(1_709_251_200, 999_000_000))
    );
    assert_eq!(
        harness::parse_rfc3339("2024-04-01T00:00:00Z"),
        Some(Duration::from_secs(1_711_929_600))
    );
    assert_eq!(harness::parse_rfc3339("2024-04-01 00:00:00"), None);
}

/// The opt-in CABF BR 7.1.4.3 rule (`require_common_names_in_san`), measured against the
/// `webpki::cn::*` family the harness skips by default: with the rule on, every one of those
/// cases is refused, and no case limbo expects to FAIL is accepted.
#[test]
fn limbo_with_the_common_name_rule() {
    let suite = load_json(shared_dir().join("vectors/x509/limbo/limbo-generated.json"));
    let now = Duration::from_secs(1_790_000_000);
    let cases = suite["testcases"].as_array().expect("testcases");
    let mut cn_family = 0;
    let mut wrongly_accepted = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let expected = case["expected_result"].as_str().expect("expected");
        let cn_case = id.starts_with("webpki::cn::");
        // Cases skipped for an unsupported feature or a conflict stay out of this count.
        if !cn_case && harness::evaluate_case(case, now).actual == "SKIPPED" {
            continue;
        }
        let result = harness::run_case(case, now, &|o| o.require_common_names_in_san = true);
        if cn_case {
            cn_family += 1;
            assert_eq!(result.actual, "FAILURE", "{id}: {:?}", result.context);
            assert!(
                result
                    .context
                    .as_deref()
                    .is_some_and(|c| c.contains("commonName")),
                "{id} refused for another reason: {:?}",
                result.context
            );
        }
        if expected == "FAILURE" && result.actual == "SUCCESS" {
            wrongly_accepted.push(id.to_owned());
        }
    }
    assert!(cn_family >= 9, "webpki::cn family shrank: {cn_family}");
    assert!(wrongly_accepted.is_empty(), "{wrongly_accepted:#?}");
}
