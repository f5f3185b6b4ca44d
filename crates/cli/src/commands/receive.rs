//! `confianza receive`: prints what arrived, saves incoming attachments, then exits (or
//! follows).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use confianza_client::account::Client;
use confianza_client::attachments::{AttachmentError, Progress};
use confianza_client::groups::group_conversation;
use confianza_client::messaging::ClientEvent;
use confianza_client::store::StoredMessage;

use super::profile::{self, Globals};
use super::send::transfer_bar;
use super::transcript::{self, ATTACHMENT_KIND};

/// How the history names a group's conversation.
pub const GROUP_CONVERSATION_PREFIX: &str = "group:";
/// Reconnection attempts while following before giving up.
const FOLLOW_RECONNECT_ATTEMPTS: u32 = 10;

/// `confianza receive`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep receiving (reconnecting when the link drops) until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Folder incoming attachments are saved into (default: the current directory). An
    /// existing file is never replaced: a numbered suffix is added instead.
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Do not tell senders that their messages were read (by default each sender gets an
    /// end-to-end encrypted read receipt for the messages printed; the server cannot tell it
    /// from a message).
    #[arg(long)]
    pub no_read_receipts: bool,
}

/// Marks `messages` seen (sending read receipts when `send_receipts`) and empties the list.
/// Returns the problems to report: a receipt that cannot be sent is not an error (the
/// messages were received, and their receipt is tried again on a later run).
pub async fn flush_seen(
    client: &Client,
    messages: &mut Vec<StoredMessage>,
    send_receipts: bool,
) -> Vec<String> {
    if messages.is_empty() {
        return Vec::new();
    }
    let problems = match client.mark_seen(messages, send_receipts).await {
        Ok(report) => report
            .failed
            .into_iter()
            .map(|(sender, error)| format!("cannot send a read receipt to {sender}: {error}"))
            .collect(),
        Err(error) => vec![format!("cannot record messages as read: {error}")],
    };
    messages.clear();
    problems
}

/// Downloads, verifies and saves the attachment of `message` into `dir`, with a progress bar,
/// and prints the outcome. Returns whether it was saved; a failure is reported, not raised,
/// so the messages after it are still received.
async fn save_attachment(client: &Client, message: &StoredMessage, dir: &Path) -> bool {
    let sender = &message.peer;
    let bar = transfer_bar(0);
    let mut first = true;
    let result = client
        .save_attachment(message.id, dir, |progress: Progress| {
            if first {
                first = false;
                bar.set_length(progress.total);
            }
            bar.set_position(progress.done);
        })
        .await;
    bar.finish_and_clear();
    match result {
        Ok(saved) => {
            println!(
                "saved {} ({} bytes) from {sender} [{}]",
                saved.path.display(),
                saved.size,
                message.verification
            );
            true
        }
        Err(error @ (AttachmentError::MacMismatch | AttachmentError::DigestMismatch)) => {
            eprintln!(
                "refused the attachment {:?} from {sender}: {error}; nothing was saved",
                message.body
            );
            false
        }
        Err(error) => {
            eprintln!(
                "cannot save the attachment {:?} from {sender}: {error}",
                message.body
            );
            false
        }
    }
}

/// One line for a stored message: time, sender (and group), verification state, body.
pub fn message_line(message: &StoredMessage, groups: &GroupNames) -> String {
    let time = transcript::time(message);
    let body = transcript::body(message);
    let place = match groups.name_of(&message.conversation) {
        Some(name) => format!(" in {name}"),
        None => String::new(),
    };
    format!(
        "{time}  {}{place} [{}]: {body}",
        message.peer, message.verification
    )
}

/// Names of the groups this account is in, by history conversation (`group:HEX`).
#[derive(Debug, Default)]
pub struct GroupNames {
    names: HashMap<String, String>,
}

impl GroupNames {
    /// The name to show for `conversation`: `None` for a one-to-one conversation, the
    /// conversation itself for a group not (or no longer) listed.
    pub fn name_of<'a>(&'a self, conversation: &'a str) -> Option<&'a str> {
        if !conversation.starts_with(GROUP_CONVERSATION_PREFIX) {
            return None;
        }
        Some(
            self.names
                .get(conversation)
                .map(String::as_str)
                .unwrap_or(conversation),
        )
    }

    /// Reads the group list again when `event` is about a group it does not know.
    pub async fn learn(&mut self, client: &Client, event: &ClientEvent) {
        if let ClientEvent::Message(message) = event
            && message.conversation.starts_with(GROUP_CONVERSATION_PREFIX)
            && !self.names.contains_key(&message.conversation)
            && let Ok(groups) = client.group_list().await
        {
            self.names = groups
                .into_iter()
                .map(|group| (group_conversation(&group.id), group.name))
                .collect();
        }
    }
}

/// The line for an event, if it is worth one.
pub fn event_line(event: &ClientEvent, groups: &GroupNames) -> Option<String> {
    match event {
        ClientEvent::Message(message) => Some(message_line(message, groups)),
        ClientEvent::Delivered { recipient, count } => Some(format!(
            "delivered to {recipient}: {count} message{}",
            if *count == 1 { "" } else { "s" }
        )),
        ClientEvent::Refused { sender, reason } => {
            Some(format!("refused a message from {sender}: {reason}"))
        }
        ClientEvent::IdentityChanged { address } => Some(format!(
            "the identity key of {address} changed: their messages are held. Compare safety \
             numbers (confianza verify {address}), then accept the new key (confianza verify \
             {address} --accept)"
        )),
        ClientEvent::Disconnected(reason) => Some(format!("disconnected: {reason}")),
        ClientEvent::Read { reader, count } if *count > 0 => Some(format!(
            "read by {reader}: {count} message{}",
            if *count == 1 { "" } else { "s" }
        )),
        ClientEvent::CallOffer {
            sender,
            server_at_ms,
            ..
        } => Some(format!(
            "{}  call from {sender} (answer with: confianza answer --save-audio FILE; decline \
             with: confianza answer --decline)",
            profile::format_time(*server_at_ms)
        )),
        ClientEvent::CallAnswered {
            sender, accepted, ..
        } => Some(format!(
            "{sender} {} a call",
            if *accepted { "answered" } else { "declined" }
        )),
        _ => None,
    }
}

/// Runs `confianza receive`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    profile::block_on(async {
        let save_dir = match args.save_dir {
            Some(dir) => dir,
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        if !save_dir.is_dir() {
            anyhow::bail!("{}: not a directory", save_dir.display());
        }
        // Shutting down lets the acknowledgements still queued reach the server before the
        // process exits; without them the messages come again and their senders get no receipt.
        profile::with_connected(globals, async |client| {
            tokio::select! {
                result = receive(client, args.follow, &save_dir, !args.no_read_receipts) => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        })
        .await
    })
}

async fn receive(
    client: &mut Client,
    follow: bool,
    save_dir: &Path,
    send_receipts: bool,
) -> Result<()> {
    let mut count = 0usize;
    let mut unsaved = 0usize;
    let mut groups = GroupNames::default();
    // Messages printed and not yet marked seen: one receipt per sender once the backlog is
    // drained, then one per message while following.
    let mut seen = Vec::new();
    let mut drained = false;
    loop {
        if drained {
            for problem in flush_seen(client, &mut seen, send_receipts).await {
                eprintln!("{problem}");
            }
        }
        let event = client.next_event().await.context("receiving failed")?;
        groups.learn(client, &event).await;
        if let Some(line) = event_line(&event, &groups) {
            println!("{line}");
        }
        match event {
            ClientEvent::Message(message) => {
                count += 1;
                if message.kind == ATTACHMENT_KIND
                    && !message.outgoing
                    && !save_attachment(client, &message, save_dir).await
                {
                    unsaved += 1;
                }
                seen.push(message);
            }
            ClientEvent::Drained if follow => drained = true,
            ClientEvent::Drained => {
                for problem in flush_seen(client, &mut seen, send_receipts).await {
                    eprintln!("{problem}");
                }
                if count == 0 {
                    eprintln!("no new messages");
                }
                if unsaved > 0 {
                    anyhow::bail!(
                        "{unsaved} attachment{} could not be saved",
                        if unsaved == 1 { "" } else { "s" }
                    );
                }
                return Ok(());
            }
            ClientEvent::Disconnected(reason) => {
                if !follow {
                    anyhow::bail!("the server closed the connection: {reason}");
                }
                client
                    .reconnect(FOLLOW_RECONNECT_ATTEMPTS)
                    .await
                    .context("cannot reconnect to the server")?;
            }
            _ => {}
        }
    }
}
