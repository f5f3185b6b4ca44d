//! The repository routes (RFC 5280 §4.2.1.13 / §4.2.2.1 URLs point here; RFC 2585 and
//! RFC 6960 media types).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /ca/chain.pem` | intermediate then root, PEM (`application/pem-certificate-chain`) |
//! | `GET /ca/root.crt`, `/ca/intermediate.crt` | DER (`application/pkix-cert`) |
//! | `GET /crl` | the issuing CA's current CRL, DER (`application/pkix-crl`) |
//! | `GET /crl/root` | the root's CRL (revoked intermediates) |
//! | `POST /ocsp` | `application/ocsp-request` in, `application/ocsp-response` out |
//! | `GET /ocsp/{base64}` | RFC 6960 A.1: the URL-encoded base64 DER request |
//! | `GET /certs/{serial}` | an issued certificate, DER (`application/pkix-cert`) |
//! | `GET /certs?subject=…` | JSON list of matching certificates |
//!
//! OCSP and certificate status come from the live database on every request.

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use confianza_pki::ca::pem_encode;
use confianza_pki::ocsp::limits::MAX_REQUEST_BYTES;
use serde::{Deserialize, Serialize};

use crate::authority::{Authority, AuthorityError, unix};
use crate::store::ca::{CertificateQuery, CertificateRecord, MAX_SUBJECT_QUERY_LEN};

/// Longest `GET /ocsp/{base64}` path segment: the base64 of [`MAX_REQUEST_BYTES`], URL-encoded
/// (each of `+`, `/`, `=` may take three characters).
pub const MAX_OCSP_GET_CHARS: usize = MAX_REQUEST_BYTES.div_ceil(3) * 4 * 3;

/// Results a subject search returns when `limit` is not given.
pub const SEARCH_RESULTS: u32 = 100;

/// Most results a subject search returns.
pub const MAX_SEARCH_RESULTS: u32 = 1000;

const PKIX_CERT: &str = "application/pkix-cert";
const PKIX_CRL: &str = "application/pkix-crl";
const PEM_CHAIN: &str = "application/pem-certificate-chain";
const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";
const JSON: &str = "application/json";

/// The repository's routes on `authority`.
pub fn repository_router(authority: Authority) -> Router {
    Router::new()
        .route("/ca/chain.pem", get(chain_pem))
        .route("/ca/root.crt", get(root_der))
        .route("/ca/intermediate.crt", get(intermediate_der))
        .route("/crl", get(crl))
        .route("/crl/root", get(root_crl))
        .route(
            "/ocsp",
            axum::routing::post(ocsp_post).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
        )
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/certs", get(search))
        .route("/certs/{serial}", get(certificate))
        .with_state(authority)
}

fn typed(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        message.into() + "\n",
    )
        .into_response()
}

fn authority_error(e: &AuthorityError) -> Response {
    match e {
        AuthorityError::UnknownSerial(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        AuthorityError::InvalidSerial(_) | AuthorityError::InvalidRequest(_) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        _ => {
            tracing::warn!(error = %e, "repository request failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

async fn chain_pem(State(authority): State<Authority>) -> Response {
    let pem: String = authority
        .chain_der()
        .iter()
        .map(|der| pem_encode("CERTIFICATE", der))
        .collect();
    typed(PEM_CHAIN, pem.into_bytes())
}

async fn root_der(State(authority): State<Authority>) -> Response {
    typed(PKIX_CERT, authority.root_der().to_vec())
}

async fn intermediate_der(State(authority): State<Authority>) -> Response {
    typed(PKIX_CERT, authority.intermediate_der().to_vec())
}

async fn crl(State(authority): State<Authority>) -> Response {
    match authority.current_crl(SystemTime::now()).await {
        Ok(crl) => typed(PKIX_CRL, crl.der),
        Err(e) => authority_error(&e),
    }
}

async fn root_crl(State(authority): State<Authority>) -> Response {
    match authority.root_crl() {
        Some(der) => typed(PKIX_CRL, der),
        None => error(StatusCode::NOT_FOUND, "no root CRL"),
    }
}

async fn ocsp_answer(authority: &Authority, request: &[u8]) -> Response {
    let answer = authority.ocsp_respond(request, SystemTime::now()).await;
    typed(OCSP_RESPONSE, answer.der)
}

async fn ocsp_post(
    State(authority): State<Authority>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(OCSP_REQUEST) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: {OCSP_REQUEST}"),
        );
    }
    ocsp_answer(&authority, &body).await
}

async fn ocsp_get(State(authority): State<Authority>, Path(request): Path<String>) -> Response {
    if request.len() > MAX_OCSP_GET_CHARS {
        return error(StatusCode::URI_TOO_LONG, "OCSP request too long");
    }
    // Path decoding already undid the URL encoding; accept standard and URL-safe base64.
    let trimmed = request.trim_start_matches('/');
    let der = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed));
    match der {
        // A request that does not decode still gets an OCSP answer: malformedRequest.
        Ok(der) => ocsp_answer(&authority, &der).await,
        Err(_) => ocsp_answer(&authority, &[]).await,
    }
}

async fn certificate(State(authority): State<Authority>, Path(serial): Path<String>) -> Response {
    let (serial, pem) = match serial.strip_suffix(".pem") {
        Some(s) => (s.to_owned(), true),
        None => (
            serial.strip_suffix(".crt").unwrap_or(&serial).to_owned(),
            false,
        ),
    };
    match authority.certificate(&serial).await {
        Ok(record) if pem => typed(
            "application/x-pem-file",
            pem_encode("CERTIFICATE", &record.der).into_bytes(),
        ),
        Ok(record) => typed(PKIX_CERT, record.der),
        Err(e) => authority_error(&e),
    }
}

/// `GET /certs` query.
#[derive(Debug, Deserialize)]
struct SearchParams {
    subject: Option<String>,
    limit: Option<u32>,
}

/// One search result.
#[derive(Debug, Serialize)]
struct CertificateSummary<'a> {
    serial: &'a str,
    subject: &'a str,
    subject_alt_names: &'a [String],
    kind: &'a str,
    not_before: i64,
    not_after: i64,
    status: &'static str,
    revoked_at: Option<i64>,
    revocation_reason: Option<u8>,
    url: String,
}

/// `valid`, `revoked` or `expired` at `now`.
pub(crate) fn status_name(record: &CertificateRecord, now: i64) -> &'static str {
    if record.revocation.is_some() {
        "revoked"
    } else if record.not_after <= now {
        "expired"
    } else {
        "valid"
    }
}

async fn search(
    State(authority): State<Authority>,
    Query(params): Query<SearchParams>,
) -> Response {
    let subject = params.subject.unwrap_or_default();
    if subject.len() > MAX_SUBJECT_QUERY_LEN {
        return error(StatusCode::BAD_REQUEST, "subject query too long");
    }
    let now = unix(SystemTime::now());
    let query = CertificateQuery {
        status: None,
        subject: Some(subject),
        kind: None,
        now,
        limit: params
            .limit
            .unwrap_or(SEARCH_RESULTS)
            .min(MAX_SEARCH_RESULTS),
    };
    let records = match authority.certificates(&query).await {
        Ok(r) => r,
        Err(e) => return authority_error(&e),
    };
    let base = authority.config().http_url.trim_end_matches('/').to_owned();
    let list: Vec<CertificateSummary<'_>> = records
        .iter()
        .map(|r| CertificateSummary {
            serial: &r.serial,
            subject: &r.subject,
            subject_alt_names: &r.sans,
            kind: &r.kind,
            not_before: r.not_before,
            not_after: r.not_after,
            status: status_name(r, now),
            revoked_at: r.revocation.as_ref().map(|v| v.at),
            revocation_reason: r.revocation.as_ref().map(|v| v.reason),
            url: format!("{base}/certs/{}", r.serial),
        })
        .collect();
    match serde_json::to_vec(&list) {
        Ok(body) => typed(JSON, body),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed"),
    }
}
