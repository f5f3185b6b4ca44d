//! Call signaling over the messaging channel: the caller's offer (the call key and its media
//! address) and the answerer's reply travel as end-to-end encrypted messages through the
//! server, like any text. The server sees two ordinary envelopes.
//!
//! ```text
//! caller                         server                        answerer
//!   send_call_offer ──(CallOffer)──►│──────────► ClientEvent::CallOffer
//!                                   │          CallInvitation::answer, bind UDP
//!   ClientEvent::CallAnswered ◄─────│◄──(CallAnswer)── send_call_answer
//!   await_answer (SRTP "ready") ◄────────── UDP ──────────── receive_audio
//!   send_audio ─────────────────────────── UDP ───────────► (SRTP audio, end marker)
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use super::session::CallInvitation;
use crate::account::{Client, ClientError, now_ms};
use crate::content::{Body, CallAnswer};
use crate::messaging::SendReport;

/// An offer older than this (by the server's clock) is a missed call, not one to answer.
pub const MAX_OFFER_AGE: Duration = Duration::from_secs(60);

/// Whether an offer the server accepted at `server_at_ms` is still worth answering now.
pub fn offer_is_fresh(server_at_ms: u64) -> bool {
    let age = now_ms().saturating_sub(server_at_ms);
    u128::from(age) <= MAX_OFFER_AGE.as_millis()
}

impl Client {
    /// Sends a call offer (the 32-byte master secret, the call id and the caller's media
    /// address) to every device of `address`, end-to-end encrypted. It is in the history as
    /// `call-offer`.
    pub async fn send_call_offer(
        &self,
        address: &str,
        invitation: &CallInvitation,
    ) -> Result<SendReport, ClientError> {
        let body = Body::CallOffer(invitation.to_content());
        let shown = format!("call {:016x}", invitation.call_id());
        self.send_body(address, body, Some(("call-offer", &shown)))
            .await
    }

    /// Answers (or, with `accepted` false, declines) call `call_id` from `address`, saying
    /// where this device receives media. To decline without opening a media socket, see
    /// [`Client::send_call_decline`].
    pub async fn send_call_answer(
        &self,
        address: &str,
        call_id: u64,
        media_address: SocketAddr,
        accepted: bool,
    ) -> Result<SendReport, ClientError> {
        let body = Body::CallAnswer(CallAnswer {
            call_id,
            media_address: media_address.to_string(),
            accepted,
        });
        self.send_body(address, body, None).await
    }

    /// Declines call `call_id` from `address`: an end-to-end encrypted answer saying so, with
    /// no media address (nothing is listened on), after which the caller gives up.
    pub async fn send_call_decline(
        &self,
        address: &str,
        call_id: u64,
    ) -> Result<SendReport, ClientError> {
        let body = Body::CallAnswer(CallAnswer {
            call_id,
            media_address: String::new(),
            accepted: false,
        });
        self.send_body(address, body, None).await
    }
}
