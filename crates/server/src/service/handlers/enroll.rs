//! Enrollment (RA code + proof of possession → certificate → device), renewal, revocation.

use std::time::Instant;

use confianza_api::limits::MAX_DEVICES_PER_ACCOUNT;
use confianza_api::{
    Challenge, EnrollRequest, ErrorCode, PreKeyUpload, RenewCertificateRequest, ResponseBody,
    RevocationReason, proof_message,
};
use confianza_protocol::keys::IdentityKey;
use rand::Rng;

use super::check_pre_key_signatures;
use crate::service::error::Failure;
use crate::service::limits::CHALLENGE_TTL;
use crate::service::session::Session;
use crate::service::state::unix_ms;
use crate::store::{MessageStore, NewDevice};

impl<S: MessageStore + Clone> Session<S> {
    /// A fresh challenge for this connection; it replaces any earlier one.
    pub(crate) fn enroll_challenge(&mut self) -> Result<ResponseBody, Failure> {
        let mut challenge: Challenge = [0; 32];
        rand::rng().fill_bytes(&mut challenge);
        self.challenge = Some((challenge, Instant::now()));
        let expires = self.now() + CHALLENGE_TTL;
        Ok(ResponseBody::EnrollChallenge {
            challenge,
            expires_at_ms: unix_ms(expires),
        })
    }

    /// Uses up this connection's challenge: it must be `offered`, and fresh.
    fn take_challenge(&mut self, offered: &Challenge) -> Result<(), Failure> {
        let Some((challenge, issued)) = self.challenge.take() else {
            return Err(Failure::refuse(
                ErrorCode::BadRequest,
                "ask for a challenge on this connection first",
            ));
        };
        if issued.elapsed() >= CHALLENGE_TTL {
            return Err(Failure::refuse(ErrorCode::Expired, "the challenge expired"));
        }
        if &challenge != offered {
            return Err(Failure::refuse(
                ErrorCode::InvalidProof,
                "not this connection's challenge",
            ));
        }
        Ok(())
    }

    pub(crate) async fn enroll(&mut self, request: EnrollRequest) -> Result<ResponseBody, Failure> {
        if self.device.is_some() {
            return Err(Failure::refuse(
                ErrorCode::Conflict,
                "this connection's key is already an enrolled device",
            ));
        }
        self.take_challenge(&request.challenge)?;
        if request.device_noise_key != self.noise_key {
            return Err(Failure::refuse(
                ErrorCode::InvalidProof,
                "device_noise_key is not the key this connection was authenticated with",
            ));
        }
        let identity = IdentityKey::deserialize(&request.identity_key).map_err(|_| {
            Failure::refuse(
                ErrorCode::BadRequest,
                "identity_key is not a Curve25519 key",
            )
        })?;
        let message = proof_message(
            &request.address,
            &request.challenge,
            &request.identity_key,
            &self.noise_key,
        );
        if !identity.verify_signature(&message, &request.proof) {
            return Err(Failure::refuse(
                ErrorCode::InvalidProof,
                "the proof of possession does not verify",
            ));
        }
        if request.pre_keys.signed_pre_key.is_none() || request.pre_keys.kyber_last_resort.is_none()
        {
            return Err(Failure::refuse(
                ErrorCode::BadRequest,
                "enrollment needs a signed prekey and a Kyber last-resort key",
            ));
        }
        check_pre_key_signatures(&identity, &request.pre_keys)?;

        // Checks that need no CA come first, so a doomed request does not use up the code.
        let existing = self.shared.store.devices(&request.address).await?;
        if existing.len() >= MAX_DEVICES_PER_ACCOUNT {
            return Err(Failure::refuse(
                ErrorCode::TooLarge,
                format!("an account has at most {MAX_DEVICES_PER_ACCOUNT} devices"),
            ));
        }
        let code = match request.enrollment_code.as_str() {
            "" if self.shared.authority.open_registration() => None,
            "" => {
                return Err(Failure::refuse(
                    ErrorCode::Forbidden,
                    "open registration is off: an enrollment code is needed",
                ));
            }
            code => Some(code),
        };
        let now = self.now();
        let issued = self
            .shared
            .authority
            .enroll_identity(&request.address, code, &request.identity_key, now)
            .await?;
        let device = self
            .shared
            .store
            .enroll(NewDevice {
                address: request.address.clone(),
                registration_id: request.registration_id,
                noise_key: self.noise_key,
                identity_key: request.identity_key,
                certificate: issued.certificate_der.clone(),
                now_ms: unix_ms(now),
            })
            .await?;
        self.shared
            .store
            .upload_pre_keys(&device.address, &request.pre_keys)
            .await?;
        tracing::info!(
            address = %device.address.address,
            device = device.address.device_id,
            "device enrolled"
        );
        let device_id = device.address.device_id;
        self.device = Some(device);
        self.start_delivery();
        Ok(ResponseBody::Enrolled {
            device_id,
            identity_certificate: issued.certificate_der,
            ca_chain: issued.chain_der,
        })
    }

    pub(crate) async fn renew(
        &mut self,
        request: RenewCertificateRequest,
    ) -> Result<ResponseBody, Failure> {
        let device = self.authenticated()?.clone();
        self.take_challenge(&request.challenge)?;
        let identity = IdentityKey::deserialize(&request.identity_key).map_err(|_| {
            Failure::refuse(
                ErrorCode::BadRequest,
                "identity_key is not a Curve25519 key",
            )
        })?;
        let message = proof_message(
            &device.address.address,
            &request.challenge,
            &request.identity_key,
            &self.noise_key,
        );
        if !identity.verify_signature(&message, &request.proof) {
            return Err(Failure::refuse(
                ErrorCode::InvalidProof,
                "the proof of possession does not verify",
            ));
        }
        if request.identity_key != device.identity_key {
            // The directory keeps one identity key per device for its lifetime; a new identity
            // key is a new device (enroll it with a new code).
            return Err(Failure::refuse(
                ErrorCode::Unsupported,
                "renewal keeps the identity key; enroll a new device for a new one",
            ));
        }
        check_pre_key_signatures(&identity, &request.pre_keys)?;
        let issued = self
            .shared
            .authority
            .renew_identity(&device.certificate, &request.identity_key, self.now())
            .await?;
        self.shared
            .store
            .set_certificate(&device.address, issued.certificate_der.clone())
            .await?;
        self.shared.ocsp.forget(&device.certificate);
        if request.pre_keys != PreKeyUpload::default() {
            self.shared
                .store
                .upload_pre_keys(&device.address, &request.pre_keys)
                .await?;
        }
        if let Some(current) = self.device.as_mut() {
            current.certificate = issued.certificate_der.clone();
        }
        tracing::info!(address = %device.address.address, device = device.address.device_id, "certificate renewed");
        Ok(ResponseBody::Certificate {
            identity_certificate: issued.certificate_der,
            ca_chain: issued.chain_der,
        })
    }

    pub(crate) async fn revoke(
        &mut self,
        reason: RevocationReason,
    ) -> Result<ResponseBody, Failure> {
        let device = self.authenticated()?.clone();
        let now = self.now();
        self.shared
            .authority
            .revoke_by_holder(&device.certificate, reason, now)
            .await?;
        self.shared.ocsp.forget(&device.certificate);
        tracing::info!(address = %device.address.address, device = device.address.device_id, ?reason, "certificate revoked by its holder");
        Ok(ResponseBody::Revoked {
            revoked_at_ms: unix_ms(now),
        })
    }
}
