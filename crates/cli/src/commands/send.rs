//! `confianza send`: a text to every device of a contact, or to a group.

use anyhow::{Context, Result, bail};

use super::profile::{self, Globals};

/// A one-to-one send.
struct SendTo {
    address: String,
    text: String,
}

/// `confianza send ADDRESS TEXT` or `confianza send --group NAME TEXT`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipient, user@domain (with --group: left out, only TEXT).
    #[arg(required_unless_present = "group")]
    pub address: Option<String>,
    /// The message.
    pub text: Option<String>,
    /// Send to this group instead (by name).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

/// Runs `confianza send`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    // With --group, the one positional argument is the text.
    let (address, text) = match (&args.group, args.address, args.text) {
        (Some(_), Some(text), None) | (Some(_), None, Some(text)) => (None, text),
        (None, Some(address), Some(text)) => (Some(address), text),
        _ => bail!("expected ADDRESS TEXT, or --group NAME TEXT"),
    };
    profile::block_on(async {
        let client = profile::connect(globals).await?;
        let Some(address) = address else {
            let name = args.group.as_deref().unwrap_or_default();
            let group = client
                .find_group(name)
                .await
                .with_context(|| format!("cannot send to group {name:?}"))?;
            let report = client
                .send_group_text(group.id, &text)
                .await
                .with_context(|| format!("cannot send to group {name:?}"))?;
            println!(
                "sent to group {name} (revision {}) at {}",
                report.revision,
                profile::format_time(report.server_timestamp_ms)
            );
            return Ok(());
        };
        let args = SendTo { address, text };
        let report = client
            .send_text(&args.address, &args.text)
            .await
            .with_context(|| format!("cannot send to {}", args.address))?;
        let verification = client.verification_of(&args.address).await?;
        let devices = report.devices.len();
        println!(
            "sent to {} ({} device{}, {}) at {}",
            args.address,
            devices,
            if devices == 1 { "" } else { "s" },
            verification.as_str(),
            profile::format_time(report.server_timestamp_ms)
        );
        Ok(())
    })
}
