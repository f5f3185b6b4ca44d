//! The `CaStore` conformance suite: one set of test functions run against SQLite (a temporary
//! file) and against PostgreSQL when `DATABASE_URL` is set (each test in a fresh schema
//! `t_<random>`, dropped afterwards).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p confianza-server --test ca_store
//! ```

use std::sync::Arc;

use confianza_server::store::ca::{
    CaStore, CertificateQuery, CertificateRecord, CrlRecord, EnrollmentCodeRecord, EventRecord,
    Issuance, MAX_CODES_PER_ADDRESS, OfficerRecord, RequestOutcome, RequestRecord, RequestState,
    RevocationRecord, SqlCaStore, StatusFilter, StoredStatus,
};
use confianza_server::store::{Database, StoreError};
use postgres_schema::TestSchema;

#[path = "support/postgres.rs"]
mod postgres_schema;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const ISSUER: &str = "00112233445566778899aabbccddeeff00112233";

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(TestSchema),
}

struct Fixture {
    store: SqlCaStore,
    cleanup: Cleanup,
}

impl Fixture {
    async fn finish(self) {
        if let Cleanup::Postgres(schema) = self.cleanup {
            if let Database::Postgres(pool) = self.store.database() {
                pool.close().await;
            }
            schema.drop_schema().await;
        }
    }
}

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open_sqlite_file(&dir.path().join("ca.db"))
        .await
        .expect("open SQLite");
    Fixture {
        store: SqlCaStore::new(db),
        cleanup: Cleanup::Sqlite(dir),
    }
}

async fn postgres_fixture() -> Option<Fixture> {
    let schema = TestSchema::create("CA store").await?;
    let db = schema.connect().await;
    Some(Fixture {
        store: SqlCaStore::new(db),
        cleanup: Cleanup::Postgres(schema),
    })
}

/// Runs `test` on the fixture, then cleans up (also after a panic, which is then resumed).
async fn run<F, Fut>(fixture: Fixture, test: F)
where
    F: FnOnce(Arc<SqlCaStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = Arc::new(fixture.store.clone());
    let outcome = tokio::spawn(test(store)).await;
    fixture.finish().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = super::sqlite_fixture().await;
                    super::run(fixture, |s| async move { super::$name(&s).await }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = super::postgres_fixture().await else { return };
                    super::run(fixture, |s| async move { super::$name(&s).await }).await;
                }
            )*
        }
    };
}

conformance!(
    issuance_records_certificate_and_history,
    duplicate_serial_is_a_conflict_and_records_nothing,
    a_code_is_consumed_by_exactly_one_issuance,
    revocation_happens_once,
    concurrent_revocations_have_one_winner,
    status_for_ocsp,
    listing_filters_and_escaping,
    expiring_skips_revoked_renewed_and_expired,
    enrollment_codes_limit_at_n_and_n_plus_1,
    officers,
    crl_numbers_increase_and_latest_wins,
    pending_requests_are_decided_once,
    officer_credentials_are_replaced,
);

fn serial(n: u32) -> String {
    format!("4{n:031x}")
}

fn cert(n: u32, subject: &str, not_after: i64) -> CertificateRecord {
    CertificateRecord {
        serial: serial(n),
        issuer_key_id: ISSUER.into(),
        kind: "identity".into(),
        subject: subject.into(),
        sans: vec![subject.into()],
        key_sha256: format!("{n:064x}"),
        not_before: NOW - DAY,
        not_after,
        approved_by: "code:ra@example.org".into(),
        approved_at: NOW - DAY,
        previous_serial: None,
        request_id: None,
        revocation: None,
        der: vec![0x30, 0x03, 0x02, 0x01, u8::try_from(n % 128).unwrap_or(0)],
    }
}

fn issue(c: CertificateRecord) -> Issuance {
    Issuance {
        certificate: c,
        request: None,
        consume_code: None,
    }
}

fn code(n: u8, address: &str, created_at: i64) -> EnrollmentCodeRecord {
    EnrollmentCodeRecord {
        hash: [n; 32],
        address: address.into(),
        kind: "identity".into(),
        created_by: "ra@example.org".into(),
        created_by_serial: serial(999),
        created_at,
        expires_at: created_at + 7 * DAY,
        used_at: None,
    }
}

fn revocation(reason: u8) -> RevocationRecord {
    RevocationRecord {
        at: NOW,
        reason,
        by: "operator:console".into(),
    }
}

fn query() -> CertificateQuery {
    CertificateQuery {
        status: None,
        subject: None,
        kind: None,
        now: NOW,
        limit: 100,
    }
}

async fn issuance_records_certificate_and_history(s: &SqlCaStore) {
    let id = s.next_request_id().await.expect("id");
    assert!(s.next_request_id().await.expect("id") > id);
    let request = RequestRecord {
        id,
        kind: "identity".into(),
        subject: "alice@example.org".into(),
        state: RequestState::Issued,
        created_at: NOW,
        events: vec![
            EventRecord {
                action: "submitted".into(),
                actor: "requester".into(),
                at: NOW,
                comment: None,
            },
            EventRecord {
                action: "approved".into(),
                actor: "code:ra@example.org".into(),
                at: NOW,
                comment: Some("checked passport".into()),
            },
        ],
    };
    let mut c = cert(1, "alice@example.org", NOW + 365 * DAY);
    c.request_id = Some(id);
    s.record_issuance(Issuance {
        certificate: c.clone(),
        request: Some(request.clone()),
        consume_code: None,
    })
    .await
    .expect("issue");
    let stored = s
        .certificate(&serial(1).to_uppercase())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored, c);
    assert_eq!(s.request(id).await.expect("request"), Some(request));
    assert_eq!(s.request(id + 1000).await.expect("request"), None);
    assert_eq!(s.certificate(&serial(2)).await.expect("get"), None);
}

async fn duplicate_serial_is_a_conflict_and_records_nothing(s: &SqlCaStore) {
    s.record_issuance(issue(cert(1, "a@example.org", NOW + DAY)))
        .await
        .expect("first");
    s.add_enrollment_code(code(7, "b@example.org", NOW))
        .await
        .expect("code");
    // Same serial again, consuming a code: the whole transaction is refused.
    let result = s
        .record_issuance(Issuance {
            certificate: cert(1, "b@example.org", NOW + DAY),
            request: None,
            consume_code: Some(([7; 32], NOW)),
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let codes = s.enrollment_codes("b@example.org").await.expect("codes");
    assert_eq!(
        codes.first().and_then(|c| c.used_at),
        None,
        "code not consumed"
    );
    let stored = s
        .certificate(&serial(1))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.subject, "a@example.org");
}

async fn a_code_is_consumed_by_exactly_one_issuance(s: &SqlCaStore) {
    s.add_enrollment_code(code(1, "alice@example.org", NOW))
        .await
        .expect("code");
    assert!(matches!(
        s.add_enrollment_code(code(1, "alice@example.org", NOW))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let with_code = |n| Issuance {
        certificate: cert(n, "alice@example.org", NOW + DAY),
        request: None,
        consume_code: Some(([1; 32], NOW)),
    };
    s.record_issuance(with_code(1)).await.expect("first use");
    let again = s.record_issuance(with_code(2)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(s.certificate(&serial(2)).await.expect("get"), None);
    let codes = s
        .enrollment_codes("alice@example.org")
        .await
        .expect("codes");
    assert_eq!(codes.len(), 1);
    assert_eq!(codes.first().and_then(|c| c.used_at), Some(NOW));
    assert!(
        !s.consume_enrollment_code(&[1; 32], NOW)
            .await
            .expect("consume")
    );
}

async fn revocation_happens_once(s: &SqlCaStore) {
    s.record_issuance(issue(cert(1, "a@example.org", NOW + DAY)))
        .await
        .expect("issue");
    let revoked = s.revoke(&serial(1), revocation(1)).await.expect("revoke");
    assert_eq!(revoked.revocation, Some(revocation(1)));
    let again = s.revoke(&serial(1), revocation(4)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let unknown = s.revoke(&serial(9), revocation(1)).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let stored = s
        .certificate(&serial(1))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.revocation, Some(revocation(1)), "first reason kept");
    let rows = s.revoked(ISSUER).await.expect("revoked");
    assert_eq!(rows.len(), 1);
    assert!(s.revoked("ffff").await.expect("revoked").is_empty());
}

async fn concurrent_revocations_have_one_winner(s: &SqlCaStore) {
    s.record_issuance(issue(cert(1, "a@example.org", NOW + DAY)))
        .await
        .expect("issue");
    let mut tasks = Vec::new();
    for reason in 0..8u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.revoke(&serial(1), revocation(reason)).await.is_ok()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn status_for_ocsp(s: &SqlCaStore) {
    s.record_issuance(issue(cert(1, "a@example.org", NOW + DAY)))
        .await
        .expect("issue");
    assert_eq!(
        s.status(ISSUER, &serial(1)).await.expect("status"),
        Some(StoredStatus::Good)
    );
    assert_eq!(s.status("other", &serial(1)).await.expect("status"), None);
    assert_eq!(s.status(ISSUER, &serial(2)).await.expect("status"), None);
    s.revoke(&serial(1), revocation(1)).await.expect("revoke");
    assert_eq!(
        s.status(ISSUER, &serial(1)).await.expect("status"),
        Some(StoredStatus::Revoked(revocation(1)))
    );
}

async fn listing_filters_and_escaping(s: &SqlCaStore) {
    s.record_issuance(issue(cert(1, "alice@example.org", NOW + DAY)))
        .await
        .expect("issue");
    s.record_issuance(issue(cert(2, "bob@example.org", NOW - 1)))
        .await
        .expect("issue");
    s.record_issuance(issue(cert(3, "a_b@example.org", NOW + DAY)))
        .await
        .expect("issue");
    s.revoke(&serial(3), revocation(1)).await.expect("revoke");
    let serials = |v: Vec<CertificateRecord>| {
        let mut s: Vec<String> = v.into_iter().map(|c| c.serial).collect();
        s.sort();
        s
    };
    let all = s.certificates(&query()).await.expect("list");
    assert_eq!(serials(all), vec![serial(1), serial(2), serial(3)]);
    let with = |status| CertificateQuery {
        status: Some(status),
        ..query()
    };
    assert_eq!(
        serials(
            s.certificates(&with(StatusFilter::Valid))
                .await
                .expect("list")
        ),
        vec![serial(1)]
    );
    assert_eq!(
        serials(
            s.certificates(&with(StatusFilter::Expired))
                .await
                .expect("list")
        ),
        vec![serial(2)]
    );
    assert_eq!(
        serials(
            s.certificates(&with(StatusFilter::Revoked))
                .await
                .expect("list")
        ),
        vec![serial(3)]
    );
    // Case-insensitive substring; `_` is a literal, not a wildcard.
    let subject = |text: &str| CertificateQuery {
        subject: Some(text.into()),
        ..query()
    };
    assert_eq!(
        serials(s.certificates(&subject("ALICE")).await.expect("list")),
        vec![serial(1)]
    );
    assert_eq!(
        serials(s.certificates(&subject("a_b")).await.expect("list")),
        vec![serial(3)]
    );
    assert!(
        s.certificates(&subject("%"))
            .await
            .expect("list")
            .is_empty()
    );
    let limited = CertificateQuery {
        limit: 2,
        ..query()
    };
    assert_eq!(s.certificates(&limited).await.expect("list").len(), 2);
}

async fn expiring_skips_revoked_renewed_and_expired(s: &SqlCaStore) {
    for (n, not_after) in [(1, NOW + 5 * DAY), (2, NOW + 6 * DAY), (3, NOW + 7 * DAY)] {
        s.record_issuance(issue(cert(n, "a@example.org", not_after)))
            .await
            .expect("issue");
    }
    s.record_issuance(issue(cert(4, "a@example.org", NOW - DAY)))
        .await
        .expect("expired");
    s.record_issuance(issue(cert(5, "a@example.org", NOW + 100 * DAY)))
        .await
        .expect("far");
    s.revoke(&serial(2), revocation(1)).await.expect("revoke");
    let mut renewal = cert(6, "a@example.org", NOW + 400 * DAY);
    renewal.previous_serial = Some(serial(3));
    s.record_issuance(issue(renewal)).await.expect("renewal");
    let due = s
        .expiring(None, NOW, NOW + 30 * DAY)
        .await
        .expect("expiring");
    let serials: Vec<String> = due.into_iter().map(|c| c.serial).collect();
    assert_eq!(serials, vec![serial(1)]);
    assert!(
        s.expiring(Some("tls-server"), NOW, NOW + 30 * DAY)
            .await
            .expect("expiring")
            .is_empty()
    );
}

async fn enrollment_codes_limit_at_n_and_n_plus_1(s: &SqlCaStore) {
    let n = u8::try_from(MAX_CODES_PER_ADDRESS).expect("small");
    for i in 0..n {
        s.add_enrollment_code(code(i, "a@example.org", NOW + i64::from(i)))
            .await
            .expect("code");
    }
    assert_eq!(
        s.enrollment_codes("a@example.org")
            .await
            .expect("codes")
            .len(),
        usize::from(n)
    );
    s.add_enrollment_code(code(n, "a@example.org", NOW + i64::from(n)))
        .await
        .expect("code");
    let codes = s.enrollment_codes("a@example.org").await.expect("codes");
    assert_eq!(codes.len(), usize::from(n), "at most the newest N");
    assert_eq!(codes.first().map(|c| c.hash), Some([n; 32]), "newest first");
    assert!(codes.iter().all(|c| c.hash != [0; 32]), "oldest dropped");
    assert!(
        s.enrollment_codes("b@example.org")
            .await
            .expect("codes")
            .is_empty()
    );
}

async fn officers(s: &SqlCaStore) {
    let officer = OfficerRecord {
        name: "ra@example.org".into(),
        credential_serial: serial(9),
        kinds: vec!["identity".into()],
        domains: vec!["example.org".into(), "example.net".into()],
        created_at: NOW,
        disabled_at: None,
    };
    s.add_officer(officer.clone()).await.expect("add");
    assert!(matches!(
        s.add_officer(officer.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.officers().await.expect("list"), vec![officer.clone()]);
    s.disable_officer("ra@example.org", NOW + 1)
        .await
        .expect("disable");
    assert!(matches!(
        s.disable_officer("ra@example.org", NOW + 2).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = s.officers().await.expect("list");
    assert_eq!(listed.first().and_then(|o| o.disabled_at), Some(NOW + 1));
}

async fn crl_numbers_increase_and_latest_wins(s: &SqlCaStore) {
    assert_eq!(s.latest_crl(ISSUER).await.expect("latest"), None);
    let one = s.next_crl_number(ISSUER).await.expect("number");
    let two = s.next_crl_number(ISSUER).await.expect("number");
    assert_eq!((one, two), (1, 2));
    assert_eq!(s.next_crl_number("other").await.expect("number"), 1);
    let crl = |number| CrlRecord {
        issuer_key_id: ISSUER.into(),
        number,
        this_update: NOW,
        next_update: NOW + 7 * DAY,
        der: vec![0x30, 0x00],
    };
    s.publish_crl(crl(two)).await.expect("publish");
    s.publish_crl(crl(one)).await.expect("publish");
    assert!(matches!(
        s.publish_crl(crl(two)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.latest_crl(ISSUER).await.expect("latest"), Some(crl(two)));
}

fn event(action: &str, actor: &str, at: i64) -> EventRecord {
    EventRecord {
        action: action.into(),
        actor: actor.into(),
        at,
        comment: None,
    }
}

fn pending_request(id: i64) -> RequestRecord {
    RequestRecord {
        id,
        kind: "tls-server".into(),
        subject: format!("host{id}.example.org"),
        state: RequestState::Pending,
        created_at: NOW,
        events: vec![event("submitted", "requester", NOW)],
    }
}

async fn pending_requests_are_decided_once(s: &SqlCaStore) {
    s.submit_request(pending_request(1), b"csr one".to_vec())
        .await
        .expect("submit");
    s.submit_request(pending_request(2), b"csr two".to_vec())
        .await
        .expect("submit");
    assert!(matches!(
        s.submit_request(pending_request(1), b"again".to_vec())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let pending = s.pending_requests(10).await.expect("pending");
    assert_eq!(
        pending.iter().map(|r| r.id).collect::<Vec<_>>(),
        [1, 2],
        "oldest first"
    );
    assert_eq!(s.pending_requests(1).await.expect("pending").len(), 1);
    assert_eq!(
        s.pending_csr(1).await.expect("csr").as_deref(),
        Some(&b"csr one"[..])
    );
    assert_eq!(s.pending_csr(99).await.expect("csr"), None);

    // Approved: the certificate and the events in one transaction; the CSR is dropped.
    let mut c = cert(1, "host1.example.org", NOW + 365 * DAY);
    c.kind = "tls-server".into();
    let approval = vec![
        event("approved", "officer:ra@example.org", NOW + 1),
        event("issued", "ca", NOW + 1),
    ];
    s.finish_request(
        1,
        approval.clone(),
        RequestOutcome::Issued(Box::new(c.clone())),
    )
    .await
    .expect("approve");
    let r = s.request(1).await.expect("request").expect("stored");
    assert_eq!(r.state, RequestState::Issued);
    assert_eq!(r.events.len(), 3);
    assert_eq!(r.events[1..], approval[..]);
    assert_eq!(s.pending_csr(1).await.expect("csr"), None);
    let stored = s
        .certificate(&c.serial)
        .await
        .expect("cert")
        .expect("stored");
    assert_eq!(stored.request_id, Some(1));
    // Decided twice: the second loses and records nothing.
    assert!(matches!(
        s.finish_request(
            1,
            vec![event("rejected", "x", NOW + 2)],
            RequestOutcome::Rejected
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.request(1).await.expect("r").expect("r").events.len(), 3);

    // A serial clash rolls the whole decision back: still pending.
    let mut clash = c.clone();
    clash.kind = "tls-server".into();
    assert!(matches!(
        s.finish_request(2, approval, RequestOutcome::Issued(Box::new(clash)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let r = s.request(2).await.expect("r").expect("r");
    assert_eq!(r.state, RequestState::Pending);
    assert_eq!(r.events.len(), 1);
    s.finish_request(
        2,
        vec![event("rejected", "officer:carol@example.org", NOW + 3)],
        RequestOutcome::Rejected,
    )
    .await
    .expect("reject");
    assert_eq!(
        s.request(2).await.expect("r").expect("r").state,
        RequestState::Rejected
    );
    assert!(s.pending_requests(10).await.expect("pending").is_empty());
}

async fn officer_credentials_are_replaced(s: &SqlCaStore) {
    s.add_officer(OfficerRecord {
        name: "ra@example.org".into(),
        credential_serial: serial(1),
        kinds: vec!["identity".into()],
        domains: vec!["example.org".into()],
        created_at: NOW,
        disabled_at: None,
    })
    .await
    .expect("add");
    s.set_officer_credential("ra@example.org", &serial(2).to_uppercase())
        .await
        .expect("replace");
    let officers = s.officers().await.expect("officers");
    assert_eq!(officers[0].credential_serial, serial(2));
    assert!(matches!(
        s.set_officer_credential("nobody@example.org", &serial(3))
            .await,
        Err(StoreError::NotFound(_))
    ));
}
