//! The account's own view: who am I, which devices do I have.

use confianza_api::{DeviceInfo, ErrorCode, ResponseBody};

use crate::service::error::Failure;
use crate::service::session::Session;
use crate::service::state::unix_ms;
use crate::store::MessageStore;

impl<S: MessageStore + Clone> Session<S> {
    pub(crate) fn who_am_i(&mut self) -> Result<ResponseBody, Failure> {
        let device = self.authenticated()?;
        let not_after = confianza_pki::path::parse_certificate(&device.certificate)
            .map(|parsed| {
                parsed
                    .certificate()
                    .tbs_certificate()
                    .validity()
                    .not_after
                    .to_system_time()
            })
            .map_err(|error| {
                tracing::error!(?error, address = %device.address.address, "stored certificate does not parse");
                Failure::refuse(ErrorCode::Internal, "internal server error")
            })?;
        Ok(ResponseBody::WhoAmI {
            address: device.address.address.clone(),
            device_id: device.address.device_id,
            certificate_not_after_ms: unix_ms(not_after),
        })
    }

    pub(crate) async fn list_devices(&mut self) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let devices = self.shared.store.devices(&me.address).await?;
        Ok(ResponseBody::Devices(
            devices
                .into_iter()
                .map(|device| DeviceInfo {
                    device_id: device.address.device_id,
                    registration_id: device.registration_id,
                    created_at_ms: device.created_at_ms,
                    last_seen_ms: device.last_seen_ms,
                })
                .collect(),
        ))
    }
}
