//! x509-limbo harness: reads a limbo test suite (JSON) on stdin, validates every test case with
//! `confianza_pki::path`, and writes limbo harness results on stdout:
//!
//! ```text
//! {"version": 1, "harness": "confianza",
//!  "results": [{"id": "…", "actual_result": "SUCCESS" | "FAILURE" | "SKIPPED", "context": "…" | null}]}
//! ```
//!
//! Usage: `cargo run -p confianza-pki --features limbo --bin confianza-limbo < limbo.json > results.json`

use std::io::Read;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use confianza_pki::path::{
    CrlSet, EKU_CLIENT_AUTH, EKU_SERVER_AUTH, ExpectedName, ParsedCertificate, ParsedCrl,
    PathOptions, RevocationScope, UnknownStatus, validate,
};
use const_oid::ObjectIdentifier;
use serde_json::{Value, json};
use x509_cert::ext::pkix::KeyUsages;

/// Features whose test cases this harness does not run, with the reason.
pub const UNSUPPORTED_FEATURES: &[(&str, &str)] = &[
    (
        "pedantic-public-suffix-wildcard",
        "no public suffix list: wildcard SANs are only required to cover two labels",
    ),
    (
        "pedantic-rfc5280",
        "trust anchors are trusted as configured; a cross-signed anchor need not carry an \
         authorityKeyIdentifier (cve::cve-2024-0567 needs exactly that)",
    ),
];

/// Test families that exercise a check this harness's profile leaves off, with the reason.
/// x509-limbo gives them no feature flag, so they are named by their id prefix.
pub const UNSUPPORTED_CHECKS: &[(&str, &str)] = &[(
    "webpki::cn::",
    "CABF BR 7.1.4.3 commonName/subjectAltName consistency is a CA issuance rule, not a \
     relying-party one: names are matched against the subjectAltName only (RFC 9525 6.3), as \
     rustls-webpki, Go and pyca/cryptography do (pyca skips these cases too). The suite \
     contradicts itself here: 11 cases it expects to SUCCEED (rfc5280::nc::*, \
     webpki::san::*) have leaves with CN=example.com absent from their SAN. The rule is \
     available as PathOptions::require_common_names_in_san and checked against this family \
     in tests/limbo.rs",
)];

/// Conflicting cases (limbo `conflicts_with`, or a case that depends on the same policy as a
/// conflicting pair) where we follow the other side.
pub const NOT_FOLLOWED: &[(&str, &str)] = &[
    (
        "webpki::eku::ee-without-eku",
        "conflicts with rfc5280::eku::ee-without-eku: an end entity without extKeyUsage is \
         unrestricted (RFC 5280 4.2.1.12)",
    ),
    (
        "rfc5280::ca-as-leaf",
        "conflicts with webpki::ca-as-leaf: a CA certificate is refused as end entity (CABF \
         7.1.2.7.8 cA MUST be false, 7.1.2.7.11 no keyCertSign), as rustls-webpki and \
         pyca/cryptography do",
    ),
    (
        "pathlen::validation-ignores-pathlen-in-leaf",
        "its end entity is a CA certificate (cA=TRUE, keyCertSign), the policy of the \
         rfc5280::ca-as-leaf / webpki::ca-as-leaf conflict; we follow webpki::ca-as-leaf \
         (pyca/cryptography skips this case for the same reason)",
    ),
    (
        "webpki::nc::permitted-dns-match-noncritical",
        "conflicts with rfc5280::nc::permitted-dns-match-noncritical: nameConstraints MUST be \
         critical (RFC 5280 4.2.1.10)",
    ),
];

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The test case id.
    pub id: String,
    /// `SUCCESS`, `FAILURE` or `SKIPPED`.
    pub actual: &'static str,
    /// Why (for FAILURE and SKIPPED).
    pub context: Option<String>,
}

impl CaseResult {
    fn to_json(&self) -> Value {
        json!({"id": self.id, "actual_result": self.actual, "context": self.context})
    }
}

/// Evaluates a whole suite; `now` stands for test cases without a validation time.
pub fn evaluate_suite(suite: &Value, now: Duration) -> Vec<CaseResult> {
    evaluate_suite_with(suite, now, |_| {})
}

/// [`evaluate_suite`] with a hook that may adjust each case's options (used by the tests to
/// isolate one check).
pub fn evaluate_suite_with(
    suite: &Value,
    now: Duration,
    adjust: impl Fn(&mut PathOptions<'_>),
) -> Vec<CaseResult> {
    suite["testcases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .map(|case| evaluate_case_with(case, now, &adjust))
                .collect()
        })
        .unwrap_or_default()
}

/// Renders results as a limbo `LimboResult` document.
pub fn results_json(results: &[CaseResult]) -> Value {
    json!({
        "version": 1,
        "harness": "confianza",
        "results": results.iter().map(CaseResult::to_json).collect::<Vec<_>>(),
    })
}

fn skipped(id: &str, why: impl Into<String>) -> CaseResult {
    CaseResult {
        id: id.to_owned(),
        actual: "SKIPPED",
        context: Some(why.into()),
    }
}

fn failure(id: &str, why: impl Into<String>) -> CaseResult {
    CaseResult {
        id: id.to_owned(),
        actual: "FAILURE",
        context: Some(why.into()),
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    der::pem::decode_vec(pem.as_bytes())
        .ok()
        .map(|(_, der)| der)
}

/// Evaluates one test case.
pub fn evaluate_case(case: &Value, default_now: Duration) -> CaseResult {
    evaluate_case_with(case, default_now, &|_| {})
}

fn evaluate_case_with(
    case: &Value,
    default_now: Duration,
    adjust: &dyn Fn(&mut PathOptions<'_>),
) -> CaseResult {
    let id = case["id"].as_str().unwrap_or("<no id>");
    let features = strings(&case["features"]);
    for (feature, why) in UNSUPPORTED_FEATURES {
        if features.contains(feature) {
            return skipped(id, format!("unsupported feature {feature}: {why}"));
        }
    }
    if let Some((_, why)) = NOT_FOLLOWED.iter().find(|(case_id, _)| *case_id == id) {
        return skipped(id, format!("conflicting policy not followed: {why}"));
    }
    if let Some((prefix, why)) = UNSUPPORTED_CHECKS
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
    {
        return skipped(id, format!("check not in this profile ({prefix}*): {why}"));
    }
    run_case(case, default_now, adjust)
}

/// Validates one test case with the harness profile adjusted by `adjust`, without the
/// [`UNSUPPORTED_CHECKS`] and [`NOT_FOLLOWED`] skips (the tests use it to measure an opt-in
/// check against the family that exercises it). Unsupported inputs are still SKIPPED.
pub fn run_case(
    case: &Value,
    default_now: Duration,
    adjust: &dyn Fn(&mut PathOptions<'_>),
) -> CaseResult {
    let id = case["id"].as_str().unwrap_or("<no id>");
    if !strings(&case["signature_algorithms"]).is_empty() {
        return skipped(id, "signature_algorithms constraints are not supported");
    }

    let mut options = PathOptions::default();
    for usage in strings(&case["key_usage"]) {
        let Some(usage) = key_usage(usage) else {
            return skipped(id, format!("unknown key usage {usage}"));
        };
        options.required_key_usage.push(usage);
    }
    for eku in strings(&case["extended_key_usage"]) {
        let Some(oid) = eku_oid(eku) else {
            return skipped(id, format!("unknown extended key usage {eku}"));
        };
        options.required_ekus.push(oid);
    }
    let mut peer_names: Vec<&Value> = Vec::new();
    if !case["expected_peer_name"].is_null() {
        peer_names.push(&case["expected_peer_name"]);
    }
    if let Some(names) = case["expected_peer_names"].as_array() {
        peer_names.extend(names);
    }
    for name in peer_names {
        let value = name["value"].as_str().unwrap_or_default();
        let expected = match name["kind"].as_str() {
            Some("DNS") => ExpectedName::Dns(value.to_owned()),
            Some("RFC822") => ExpectedName::Email(value.to_owned()),
            Some("IP") => match value.parse::<IpAddr>() {
                Ok(ip) => ExpectedName::Ip(ip),
                Err(_) => return skipped(id, format!("unparsable IP peer name {value}")),
            },
            other => return skipped(id, format!("unsupported peer name kind {other:?}")),
        };
        options.expected_names.push(expected);
    }
    if let Some(depth) = case["max_chain_depth"].as_u64() {
        options.max_chain_depth = usize::try_from(depth).unwrap_or(usize::MAX);
    }

    let now = match case["validation_time"].as_str() {
        None => default_now,
        Some(text) => match parse_rfc3339(text) {
            Some(t) => t,
            None => return skipped(id, format!("unparsable validation time {text}")),
        },
    };

    let Some(leaf_der) = case["peer_certificate"].as_str().and_then(pem_to_der) else {
        return failure(id, "peer certificate: bad PEM");
    };
    let leaf = match ParsedCertificate::from_der(&leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => return failure(id, format!("peer certificate: {e}")),
    };
    // Unusable anchors and intermediates are left out: they cannot be on a valid path.
    let parse_all = |key: &str| -> Vec<ParsedCertificate> {
        strings(&case[key])
            .into_iter()
            .filter_map(pem_to_der)
            .filter_map(|der| ParsedCertificate::from_der(&der).ok())
            .collect()
    };
    let anchors = parse_all("trusted_certs");
    let intermediates = parse_all("untrusted_intermediates");

    // CRLs the caller hands over must be usable: an unparsable one fails the validation.
    let mut crls = Vec::new();
    for pem in strings(&case["crls"]) {
        let Some(der) = pem_to_der(pem) else {
            return failure(id, "CRL: bad PEM");
        };
        match ParsedCrl::from_der(&der) {
            Ok(crl) => crls.push(crl),
            Err(e) => return failure(id, format!("CRL: {e}")),
        }
    }
    let crl_set = CrlSet::new(crls);
    if !crl_set.crls().is_empty() {
        options.revocation.sources.push(&crl_set);
        options.revocation.scope = RevocationScope::Chain;
        options.revocation.unknown = UnknownStatus::Allow;
    }

    adjust(&mut options);
    match validate(&leaf, &intermediates, &anchors, now, &options) {
        Ok(_) => CaseResult {
            id: id.to_owned(),
            actual: "SUCCESS",
            context: None,
        },
        Err(e) => failure(id, e.to_string()),
    }
}

fn key_usage(name: &str) -> Option<KeyUsages> {
    Some(match name {
        "digitalSignature" => KeyUsages::DigitalSignature,
        "contentCommitment" | "nonRepudiation" => KeyUsages::NonRepudiation,
        "keyEncipherment" => KeyUsages::KeyEncipherment,
        "dataEncipherment" => KeyUsages::DataEncipherment,
        "keyAgreement" => KeyUsages::KeyAgreement,
        "keyCertSign" => KeyUsages::KeyCertSign,
        "cRLSign" => KeyUsages::CRLSign,
        "encipherOnly" => KeyUsages::EncipherOnly,
        "decipherOnly" => KeyUsages::DecipherOnly,
        _ => return None,
    })
}

fn eku_oid(name: &str) -> Option<ObjectIdentifier> {
    use const_oid::db::rfc5280 as oids;
    Some(match name {
        "serverAuth" => EKU_SERVER_AUTH,
        "clientAuth" => EKU_CLIENT_AUTH,
        "codeSigning" => oids::ID_KP_CODE_SIGNING,
        "emailProtection" => oids::ID_KP_EMAIL_PROTECTION,
        "timeStamping" => oids::ID_KP_TIME_STAMPING,
        "OCSPSigning" => oids::ID_KP_OCSP_SIGNING,
        "anyExtendedKeyUsage" => oids::ANY_EXTENDED_KEY_USAGE,
        dotted => return ObjectIdentifier::new(dotted).ok(),
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)` to time since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u32>().ok()?
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Duration::new(u64::try_from(secs).ok()?, nanos))
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("confianza-limbo: reading stdin: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let suite: Value = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("confianza-limbo: parsing the suite: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let results = evaluate_suite(&suite, now);
    match serde_json::to_string_pretty(&results_json(&results)) {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confianza-limbo: writing results: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
