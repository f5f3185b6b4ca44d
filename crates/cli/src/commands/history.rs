//! `confianza history ADDRESS` and `confianza history --group NAME`: the stored conversation,
//! oldest first, one message a line, read from the local store only (a group's name is looked
//! up on the server). Printing is not reading: no message is marked seen and no read receipt
//! is sent (`receive` and `chat` do that).

use anyhow::{Context, Result};
use confianza_client::groups::group_conversation;
use confianza_client::store::StoredMessage;

use super::profile::{self, Globals};
use super::transcript;

/// Messages printed when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 50;

/// `confianza history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The contact whose conversation to print, user@domain.
    #[arg(required_unless_present = "group", conflicts_with = "group")]
    pub address: Option<String>,
    /// Print this group's conversation instead (by name).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Print only the last N messages.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

/// One line: time, author, state (delivery and read state of one's own messages,
/// verification of the sender's key for the others), body.
pub fn history_line(message: &StoredMessage) -> String {
    format!(
        "{}  {} [{}]: {}",
        transcript::time(message),
        transcript::author(message),
        transcript::state(message),
        transcript::body(message)
    )
}

/// Runs `confianza history`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let limit = args.limit;
    let messages = match (args.address, args.group) {
        (Some(address), _) => profile::block_on(profile::with_open(globals, async |client| {
            Ok(client.history(&address, limit).await?)
        }))?,
        (None, Some(name)) => {
            profile::block_on(profile::with_connected(globals, async |client| {
                let group = client
                    .find_group(&name)
                    .await
                    .with_context(|| format!("cannot find group {name:?}"))?;
                Ok(client
                    .history(&group_conversation(&group.id), limit)
                    .await?)
            }))?
        }
        (None, None) => anyhow::bail!("expected ADDRESS or --group NAME"),
    };
    if messages.is_empty() {
        eprintln!("no messages");
    }
    for message in &messages {
        println!("{}", history_line(message));
    }
    Ok(())
}
