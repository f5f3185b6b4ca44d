//! `confianza send`: a text or a file to every device of a contact or to a group.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use confianza_client::account::Client;
use confianza_client::attachments::Progress;
use indicatif::{ProgressBar, ProgressStyle};

use super::profile::{self, Globals};

/// A one-to-one send.
struct SendTo {
    address: String,
    text: String,
}

/// Layout of the transfer progress bar: bytes, rate, ETA.
const PROGRESS_TEMPLATE: &str =
    "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";

/// `confianza send ADDRESS TEXT`, `confianza send ADDRESS --file PATH`,
/// `confianza send --group NAME TEXT` or `confianza send --group NAME --file PATH`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipient, user@domain (with --group: left out, only TEXT or --file).
    #[arg(required_unless_present = "group")]
    pub address: Option<String>,
    /// The message.
    pub text: Option<String>,
    /// Send to this group instead (by name).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Send this file as an attachment instead of a text (to a group: uploaded once, and
    /// every member downloads it). Running the same command again after an interruption
    /// resumes the upload.
    #[arg(long, value_name = "PATH", conflicts_with = "text")]
    pub file: Option<PathBuf>,
}

/// A progress bar for a transfer of `total` bytes on standard error, hidden when standard
/// error is not a terminal (so scripts and logs get only the final lines).
pub fn transfer_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
        bar.set_style(style);
    }
    bar
}

/// A progress callback for an upload: sets the bar's length on the first call (saying so
/// when an earlier upload is resumed) and records the blob's size in `blob`.
fn upload_progress<'a>(
    bar: &'a ProgressBar,
    blob: &'a mut Option<u64>,
) -> impl FnMut(Progress) + 'a {
    move |progress: Progress| {
        if blob.is_none() {
            *blob = Some(progress.total);
            bar.set_length(progress.total);
            if progress.done > 0 {
                bar.suspend(|| eprintln!("resuming at {} bytes", progress.done));
            }
        }
        bar.set_position(progress.done);
    }
}

/// Sends the file at `path` to group `name` with a progress bar, then prints one line.
async fn send_group_file(client: &Client, name: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    let group = client
        .find_group(name)
        .await
        .with_context(|| format!("cannot send to group {name:?}"))?;
    let bar = transfer_bar(0);
    let mut blob: Option<u64> = None;
    let report = client
        .send_group_attachment(group.id, path, upload_progress(&bar, &mut blob))
        .await;
    bar.finish_and_clear();
    let report = report.with_context(|| format!("cannot send {shown} to group {name:?}"))?;
    let blob = blob.map_or_else(|| "?".to_owned(), |blob| blob.to_string());
    let size = size.map_or_else(|| "?".to_owned(), |size| size.to_string());
    println!(
        "sent {shown} ({size} bytes, blob {blob} bytes) to group {name} (revision {}) at {}",
        report.revision,
        profile::format_time(report.server_timestamp_ms)
    );
    Ok(())
}

/// Sends the file at `path` to `address` with a progress bar, then prints one line.
async fn send_file(client: &Client, address: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    // Read before the upload: the source may change afterwards.
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    let bar = transfer_bar(0);
    let mut blob: Option<u64> = None;
    let report = client
        .send_attachment(address, path, upload_progress(&bar, &mut blob))
        .await;
    bar.finish_and_clear();
    let report = report.with_context(|| format!("cannot send {shown} to {address}"))?;
    let blob = blob.map_or_else(|| "?".to_owned(), |blob| blob.to_string());
    let verification = client.verification_of(address).await?;
    let devices = report.devices.len();
    let size = size.map_or_else(|| "?".to_owned(), |size| size.to_string());
    println!(
        "sent {shown} ({size} bytes, blob {blob} bytes) to {address} ({devices} device{}, {}) at {}",
        if devices == 1 { "" } else { "s" },
        verification.as_str(),
        profile::format_time(report.server_timestamp_ms)
    );
    Ok(())
}

/// Runs `confianza send`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    if let Some(path) = args.file {
        if let Some(name) = args.group {
            if args.address.is_some() || args.text.is_some() {
                bail!("expected --group NAME --file PATH, without ADDRESS or TEXT");
            }
            return profile::block_on(profile::with_connected(globals, async |client| {
                send_group_file(client, &name, &path).await
            }));
        }
        let (Some(address), None) = (args.address, args.text) else {
            bail!("expected ADDRESS --file PATH");
        };
        return profile::block_on(profile::with_connected(globals, async |client| {
            send_file(client, &address, &path).await
        }));
    }
    // With --group, the one positional argument is the text.
    let (address, text) = match (&args.group, args.address, args.text) {
        (Some(_), Some(text), None) | (Some(_), None, Some(text)) => (None, text),
        (None, Some(address), Some(text)) => (Some(address), text),
        _ => bail!("expected ADDRESS TEXT, ADDRESS --file PATH, or --group NAME TEXT"),
    };
    profile::block_on(profile::with_connected(globals, async |client| {
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
    }))
}
