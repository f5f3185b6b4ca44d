//! Requests under the manual approval policy: a PKCS#10 request for a kind whose policy is
//! [`ApprovalPolicy::Manual`] (TLS server and client certificates, by default) waits as
//! pending until an RA officer approves it (then the CA issues it) or rejects it; each step
//! is recorded with who and when.
//!
//! `ca issue` stays the CA operator's direct issuance: the operator at the console is the
//! approval there. `ra submit` is the RA route.

use std::time::SystemTime;

use confianza_pki::ca::IssuedCertificate;
use confianza_pki::csr;
use confianza_pki::profile::CertificateKind;
use confianza_pki::ra::{Actor, ApprovalPolicy, Event, PendingRequest, RaOfficer};

use super::{
    Authority, AuthorityError, action_text, actor_text, certificate_record, from_unix, unix,
};
use crate::store::StoreError;
use crate::store::ca::{CaStore, EventRecord, RequestOutcome, RequestRecord, RequestState};

/// Most pending requests `ra pending` lists.
pub const MAX_PENDING_LISTED: u32 = 1000;

/// The kinds a request may be submitted for at the RA.
pub const SUBMITTABLE_KINDS: [CertificateKind; 2] =
    [CertificateKind::TlsServer, CertificateKind::TlsClient];

fn event_record(e: &Event) -> EventRecord {
    EventRecord {
        action: action_text(&e.action),
        actor: actor_text(&e.by),
        at: unix(e.at),
        comment: e.comment.clone(),
    }
}

impl Authority {
    /// Submits a PKCS#10 request (PEM or DER, signature checked) for `kind`, under that
    /// kind's manual approval policy: recorded as pending. Returns the request id.
    pub async fn submit_csr(
        &self,
        csr_bytes: &[u8],
        kind: CertificateKind,
        now: SystemTime,
    ) -> Result<i64, AuthorityError> {
        if !SUBMITTABLE_KINDS.contains(&kind) {
            return Err(AuthorityError::InvalidRequest(format!(
                "requests for {} certificates are not submitted at the RA",
                kind.name()
            )));
        }
        if *self.inner.policy.get(kind) != ApprovalPolicy::Manual {
            return Err(AuthorityError::InvalidRequest(format!(
                "{} certificates are not approved by hand",
                kind.name()
            )));
        }
        // Stored as given (PEM or DER, at most MAX_CSR_BYTES) once it verified.
        let template = csr::parse_csr(csr_bytes)?.into_template(kind)?;
        let subject = template
            .common_name()
            .map(str::to_owned)
            .or_else(|| template.names().first().map(|n| n.as_str().to_owned()))
            .unwrap_or_default();
        let id = self.inner.store.next_request_id().await?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        let pending = PendingRequest::submit(request_id, template, Actor::Requester, now);
        let record = RequestRecord {
            id,
            kind: kind.name().to_owned(),
            subject,
            state: RequestState::Pending,
            created_at: unix(now),
            events: pending.history().iter().map(event_record).collect(),
        };
        self.inner
            .store
            .submit_request(record, csr_bytes.to_vec())
            .await?;
        Ok(id)
    }

    /// Pending requests, oldest first.
    pub async fn pending_requests(&self) -> Result<Vec<RequestRecord>, AuthorityError> {
        Ok(self
            .inner
            .store
            .pending_requests(MAX_PENDING_LISTED)
            .await?)
    }

    /// A request and its history (unknown id: [`AuthorityError::UnknownRequest`]).
    pub async fn request(&self, id: i64) -> Result<RequestRecord, AuthorityError> {
        self.inner
            .store
            .request(id)
            .await?
            .ok_or(AuthorityError::UnknownRequest(id))
    }

    /// The pending request `id`, rebuilt from its stored PKCS#10 request.
    async fn pending(&self, id: i64) -> Result<PendingRequest, AuthorityError> {
        let record = self.request(id).await?;
        if record.state != RequestState::Pending {
            return Err(AuthorityError::InvalidRequest(format!(
                "request {id} is {}, not pending",
                record.state.name()
            )));
        }
        let der = self
            .inner
            .store
            .pending_csr(id)
            .await?
            .ok_or(AuthorityError::UnknownRequest(id))?;
        let kind = CertificateKind::from_name(&record.kind)
            .ok_or_else(|| AuthorityError::Corrupt(format!("request {id} kind")))?;
        let template = csr::parse_csr(&der)?.into_template(kind)?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        Ok(PendingRequest::submit(
            request_id,
            template,
            Actor::Requester,
            from_unix(record.created_at),
        ))
    }

    /// An RA officer approves pending request `id` (within the officer's scope); the CA issues
    /// it, and certificate, approval and issuance are recorded in one transaction.
    pub async fn approve_request(
        &self,
        officer: &RaOfficer,
        id: i64,
        comment: Option<&str>,
        now: SystemTime,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let pending = self.pending(id).await?;
        let submitted = pending.history().len();
        let approved = officer
            .approve(pending, now, comment)
            .map_err(|refused| AuthorityError::Refused(refused.error.to_string()))?;
        let mut events: Vec<EventRecord> = approved.history()[submitted..]
            .iter()
            .map(event_record)
            .collect();
        events.push(EventRecord {
            action: "issued".into(),
            actor: "ca".into(),
            at: unix(now),
            comment: None,
        });
        let issued = self
            .inner
            .intermediate
            .issue(approved, now, &mut rand::rng())?;
        let certificate = certificate_record(&issued, &self.inner.issuer_key_id, Some(id))?;
        self.finish(id, events, RequestOutcome::Issued(Box::new(certificate)))
            .await?;
        Ok(issued)
    }

    /// An RA officer rejects pending request `id` with `reason`.
    pub async fn reject_request(
        &self,
        officer: &RaOfficer,
        id: i64,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), AuthorityError> {
        if reason.trim().is_empty() {
            return Err(AuthorityError::InvalidRequest(
                "a rejection needs a reason".into(),
            ));
        }
        let pending = self.pending(id).await?;
        let submitted = pending.history().len();
        let rejected = officer
            .reject(pending, now, Some(reason))
            .map_err(|refused| AuthorityError::Refused(refused.error.to_string()))?;
        let events = rejected.history[submitted..]
            .iter()
            .map(event_record)
            .collect();
        self.finish(id, events, RequestOutcome::Rejected).await
    }

    async fn finish(
        &self,
        id: i64,
        events: Vec<EventRecord>,
        outcome: RequestOutcome,
    ) -> Result<(), AuthorityError> {
        match self.inner.store.finish_request(id, events, outcome).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(m)) => Err(AuthorityError::InvalidRequest(m)),
            Err(e) => Err(e.into()),
        }
    }
}
