//! `confianza-server ra …`: the Registration Authority at the operator's console.

use std::time::{Duration, SystemTime};

use clap::Subcommand;

use super::{Context, OpsError, parse_duration};
use crate::authority::from_unix;
use crate::store::ca::CaStore;

/// `ra` subcommands.
#[derive(Debug, Subcommand)]
pub enum RaCommand {
    /// Make a one-time enrollment code for ADDRESS (after checking the person's identity);
    /// prints only the code
    EnrollCode {
        /// The user's address, e.g. alice@example.org
        address: String,
        /// How long the code is valid (e.g. 7d, 12h)
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        valid_for: Duration,
    },
    /// List certificates that expire within N days and were not renewed
    Expiring {
        /// Horizon in days
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// List the RA officers
    Officers,
}

/// Runs an `ra` subcommand.
pub async fn run(ctx: &Context, command: RaCommand) -> Result<(), OpsError> {
    let authority = ctx.open().await?;
    let now = SystemTime::now();
    match command {
        RaCommand::EnrollCode { address, valid_for } => {
            let code = authority
                .create_enrollment_code(&address, valid_for, now)
                .await?;
            println!("{}", code.as_str());
        }
        RaCommand::Expiring { days } => {
            for c in authority.expiring(days, now).await? {
                let left = from_unix(c.not_after)
                    .duration_since(now)
                    .map(|d| d.as_secs() / 86_400)
                    .unwrap_or(0);
                println!(
                    "{}  {:<14} {:<40} expires in {left} days",
                    c.serial, c.kind, c.subject
                );
            }
        }
        RaCommand::Officers => {
            for o in authority
                .store()
                .officers()
                .await
                .map_err(crate::authority::AuthorityError::from)?
            {
                let state = if o.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let domains = if o.domains.is_empty() {
                    "any domain".to_owned()
                } else {
                    o.domains.join(",")
                };
                println!(
                    "{:<32} {state:<8} credential {}  kinds {}  domains {domains}",
                    o.name,
                    o.credential_serial,
                    o.kinds.join(",")
                );
            }
        }
    }
    Ok(())
}
