//! The prekey directory: uploads (signatures checked), counts, bundle fetches (one-time keys
//! claimed atomically, certificate with a stapled OCSP response).

use std::time::Instant;

use confianza_api::{
    ApiError, DeviceSelector, ErrorCode, Notice, PreKeyBundle, PreKeyCount, PreKeyUpload,
    ResponseBody,
};
use confianza_protocol::keys::IdentityKey;

use crate::service::error::Failure;
use crate::service::events::{Event, NoticeTarget};
use crate::service::limits::PREKEYS_LOW_THRESHOLD;
use crate::service::session::Session;
use crate::store::{Device, DeviceAddress, MessageStore};

/// Checks every signature of an upload against the device's identity key: Signal signs the
/// serialized public key (type byte included) with XEdDSA.
pub fn check_pre_key_signatures(
    identity: &IdentityKey,
    upload: &PreKeyUpload,
) -> Result<(), Failure> {
    if let Some(signed) = &upload.signed_pre_key
        && !identity.verify_signature(&signed.public_key, &signed.signature)
    {
        return Err(Failure::refuse(
            ErrorCode::InvalidSignature,
            format!("signed prekey {} has a bad signature", signed.id),
        ));
    }
    for kyber in upload
        .kyber_pre_keys
        .iter()
        .chain(upload.kyber_last_resort.as_ref())
    {
        if !identity.verify_signature(kyber.public_key.as_bytes(), &kyber.signature) {
            return Err(Failure::refuse(
                ErrorCode::InvalidSignature,
                format!("Kyber prekey {} has a bad signature", kyber.id),
            ));
        }
    }
    Ok(())
}

/// Whether a device should replenish.
fn is_low(count: &PreKeyCount) -> bool {
    count.one_time < PREKEYS_LOW_THRESHOLD
        || count.kyber_one_time < PREKEYS_LOW_THRESHOLD
        || count.kyber_last_resort_used
}

impl<S: MessageStore + Clone> Session<S> {
    pub(crate) async fn upload_pre_keys(
        &mut self,
        upload: PreKeyUpload,
    ) -> Result<ResponseBody, Failure> {
        let device = self.authenticated()?;
        let identity = IdentityKey::deserialize(&device.identity_key).map_err(|_| {
            tracing::error!(address = %device.address.address, "stored identity key does not parse");
            Failure::refuse(ErrorCode::Internal, "internal server error")
        })?;
        check_pre_key_signatures(&identity, &upload)?;
        let me = device.address.clone();
        self.shared.store.upload_pre_keys(&me, &upload).await?;
        let count = self.shared.store.pre_key_count(&me).await?;
        Ok(ResponseBody::PreKeyCount(count))
    }

    pub(crate) async fn pre_key_count(&mut self) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        Ok(ResponseBody::PreKeyCount(
            self.shared.store.pre_key_count(&me).await?,
        ))
    }

    pub(crate) async fn fetch_bundle(
        &mut self,
        address: &str,
        selector: DeviceSelector,
    ) -> Result<ResponseBody, Failure> {
        self.authenticated()?;
        if let Err(wait) = self.bundle_fetches.take(Instant::now()) {
            return Err(Failure::Refused(ApiError {
                retry_after_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                ..ApiError::new(ErrorCode::RateLimited, "too many bundle fetches")
            }));
        }
        let devices = self.shared.store.devices(address).await?;
        if devices.is_empty() {
            return Err(Failure::refuse(ErrorCode::NotFound, "no such account"));
        }
        let chosen: Vec<Device> = match selector {
            DeviceSelector::All => devices,
            DeviceSelector::One(id) => {
                let device = devices
                    .into_iter()
                    .find(|device| device.address.device_id == id)
                    .ok_or_else(|| Failure::refuse(ErrorCode::NotFound, "no such device"))?;
                vec![device]
            }
        };
        let mut bundles = Vec::with_capacity(chosen.len());
        for device in chosen {
            let Some(claimed) = self.shared.store.claim_pre_keys(&device.address).await? else {
                // Enrolled, but its prekeys never arrived: nothing to start a session with.
                continue;
            };
            let ocsp_response = self.stapled_ocsp(&claimed.certificate).await;
            bundles.push(PreKeyBundle {
                device_id: device.address.device_id,
                registration_id: claimed.registration_id,
                identity_key: claimed.identity_key,
                identity_certificate: claimed.certificate,
                ocsp_response,
                signed_pre_key: claimed.signed_pre_key,
                one_time_pre_key: claimed.one_time_pre_key,
                kyber_pre_key: claimed.kyber_pre_key,
                kyber_is_last_resort: claimed.kyber_is_last_resort,
            });
            self.warn_if_low(&device.address).await;
        }
        if bundles.is_empty() {
            return Err(Failure::refuse(
                ErrorCode::NotFound,
                "no device of this account has published prekeys",
            ));
        }
        Ok(ResponseBody::Bundles(bundles))
    }

    /// An OCSP response for `certificate`, cached for a few minutes. `None` when the CA cannot
    /// produce one (the client falls back to the CRL).
    async fn stapled_ocsp(&self, certificate: &[u8]) -> Option<Vec<u8>> {
        self.shared
            .ocsp
            .staple(
                self.shared.authority.as_ref(),
                certificate,
                self.now(),
                Instant::now(),
            )
            .await
    }

    /// Tells the device its stock is low, if it is.
    async fn warn_if_low(&self, device: &DeviceAddress) {
        match self.shared.store.pre_key_count(device).await {
            Ok(count) if is_low(&count) => self.shared.bus.publish(vec![Event::Notice {
                to: NoticeTarget::Device(device.clone()),
                notice: Notice::PreKeysLow(count),
            }]),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "counting prekeys after a claim failed"),
        }
    }
}
