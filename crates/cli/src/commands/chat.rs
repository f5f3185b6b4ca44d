//! `confianza chat`: the terminal UI (ratatui on crossterm).
//!
//! The screen: conversations on the left, the selected conversation's messages (with their
//! verification and delivery state) on the right, the input line below, a status line at the
//! bottom. Your own messages show how far they got (sent, delivered, read; in a group, read
//! by how many of its members). The list holds your groups (`#name`), the conversation asked for, and whoever writes.
//! Keys: Enter sends, Tab / Up / Down switch conversation, `/open ADDRESS` opens one,
//! Esc or Ctrl-C quits. Messages are received while the UI runs: each is decrypted and
//! stored by the client library before it is acknowledged, as with `receive`.

use anyhow::{Context, Result};
use confianza_api::{GroupId, GroupSummary};
use confianza_client::account::Client;
use confianza_client::groups::group_conversation;
use confianza_client::messaging::ClientEvent;
use confianza_client::store::StoredMessage;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::{DefaultTerminal, Frame};
use tokio::sync::mpsc;

use super::profile::{self, Globals};
use super::transcript;

/// Messages of a conversation loaded into the view.
const HISTORY_IN_VIEW: u32 = 500;
/// Width of the conversation list, in columns.
const CONVERSATION_LIST_WIDTH: u16 = 28;
/// Terminal events buffered between the reader thread and the UI.
const KEY_QUEUE: usize = 64;
/// Reconnection attempts when the link drops, before the UI gives up.
const RECONNECT_ATTEMPTS: u32 = 10;

/// `confianza chat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The conversation to open first (more with `/open ADDRESS`).
    pub address: Option<String>,
    /// Open this group's conversation first.
    #[arg(long, value_name = "NAME", conflicts_with = "address")]
    pub group: Option<String>,
    /// Do not tell senders that you read their messages (by default the messages shown in
    /// the open conversation are acknowledged with end-to-end encrypted read receipts).
    #[arg(long)]
    pub no_read_receipts: bool,
}

/// One entry of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conversation {
    /// What the list shows: the address, or `#name` for a group.
    label: String,
    /// The history's conversation key: the address, or `group:HEX`.
    key: String,
    /// Set for a group.
    group: Option<GroupId>,
}

impl Conversation {
    fn direct(address: &str) -> Self {
        Self {
            label: address.to_owned(),
            key: address.to_owned(),
            group: None,
        }
    }

    fn group(summary: &GroupSummary) -> Self {
        Self {
            label: format!("#{}", summary.name),
            key: group_conversation(&summary.id),
            group: Some(summary.id),
        }
    }
}

/// What the UI shows.
struct View {
    me: String,
    conversations: Vec<Conversation>,
    selected: usize,
    messages: Vec<StoredMessage>,
    input: String,
    status: String,
    /// Whether to send read receipts for the messages shown.
    read_receipts: bool,
}

impl View {
    fn current(&self) -> Option<&Conversation> {
        self.conversations.get(self.selected)
    }

    /// Adds `conversation` to the list if it is not there; returns its index.
    fn add(&mut self, conversation: Conversation) -> usize {
        match self
            .conversations
            .iter()
            .position(|c| c.key == conversation.key)
        {
            Some(index) => index,
            None => {
                self.conversations.push(conversation);
                self.conversations.len() - 1
            }
        }
    }

    fn open(&mut self, conversation: Conversation) {
        self.selected = self.add(conversation);
    }

    fn draw(&self, frame: &mut Frame) {
        let [main, status] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
        let [list_area, right] = Layout::horizontal([
            Constraint::Length(CONVERSATION_LIST_WIDTH),
            Constraint::Min(10),
        ])
        .areas(main);
        let [messages_area, input_area] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(3)]).areas(right);

        let items: Vec<ListItem> = self
            .conversations
            .iter()
            .map(|conversation| ListItem::new(conversation.label.as_str()))
            .collect();
        let mut state = ListState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(
            List::new(items)
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title("Conversations"),
                )
                .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            list_area,
            &mut state,
        );

        let lines: Vec<Line> = self.messages.iter().map(message_line).collect();
        let height = usize::from(messages_area.height.saturating_sub(2));
        let skip = lines.len().saturating_sub(height);
        let title = match self.current() {
            Some(conversation) => format!("{} — you are {}", conversation.label, self.me),
            None => format!("no conversation — /open ADDRESS (you are {})", self.me),
        };
        frame.render_widget(
            Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>())
                .block(Block::default().borders(Borders::ALL).title(title))
                .wrap(Wrap { trim: false }),
            messages_area,
        );
        frame.render_widget(
            Paragraph::new(format!("> {}", self.input)).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("Enter: send · Tab: next · Esc: quit"),
            ),
            input_area,
        );
        let cursor_x = input_area
            .x
            .saturating_add(3)
            .saturating_add(u16::try_from(self.input.chars().count()).unwrap_or(u16::MAX));
        frame.set_cursor_position((cursor_x, input_area.y.saturating_add(1)));
        frame.render_widget(Paragraph::new(self.status.as_str()), status);
    }
}

/// One message: the time of day, who, the body, and its state ([`transcript::state`]).
fn message_line(message: &StoredMessage) -> Line<'static> {
    let time = transcript::time(message);
    let clock = time.get(11..19).unwrap_or(&time).to_owned();
    Line::from(vec![
        Span::raw(format!("{clock} ")),
        Span::styled(
            format!("{}: ", transcript::author(message)),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(transcript::body(message)),
        Span::styled(
            format!("  [{}]", transcript::state(message)),
            Style::default().add_modifier(Modifier::DIM),
        ),
    ])
}

/// Runs `confianza chat`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    // Connected before the screen is taken, so a failure is a plain one-line error.
    profile::block_on(profile::with_connected(globals, async |client| {
        let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
        let result = ui(&mut terminal, client, args).await;
        ratatui::restore();
        result
    }))
}

/// What woke the UI.
enum Wake {
    Key(Event),
    Client(Result<ClientEvent, confianza_client::account::ClientError>),
}

async fn ui(terminal: &mut DefaultTerminal, client: &mut Client, args: Args) -> Result<()> {
    let (keys_tx, mut keys) = mpsc::channel(KEY_QUEUE);
    // crossterm's reader blocks: it gets a thread of its own, which ends with the process.
    std::thread::spawn(move || {
        while let Ok(event) = event::read() {
            if keys_tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
    let mut view = View {
        me: client.account().address.clone(),
        conversations: Vec::new(),
        selected: 0,
        messages: Vec::new(),
        input: String::new(),
        status: "connected".into(),
        read_receipts: !args.no_read_receipts,
    };
    for group in client.group_list().await.context("cannot list groups")? {
        view.add(Conversation::group(&group));
    }
    if let Some(address) = &args.address {
        view.open(Conversation::direct(address));
    }
    if let Some(name) = &args.group {
        let group = client
            .find_group(name)
            .await
            .with_context(|| format!("cannot open group {name:?}"))?;
        view.open(Conversation::group(&group));
    }
    reload(client, &mut view).await?;
    loop {
        terminal.draw(|frame| view.draw(frame))?;
        // Dropping an unfinished `next_event` is safe: a delivery is acknowledged only after
        // it is stored, and one stored but not acknowledged is dropped as a duplicate later.
        let wake = tokio::select! {
            key = keys.recv() => match key {
                Some(key) => Wake::Key(key),
                None => return Ok(()),
            },
            event = client.next_event() => Wake::Client(event),
        };
        match wake {
            Wake::Key(Event::Key(key)) if key.kind != KeyEventKind::Release => match key.code {
                KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(());
                }
                KeyCode::Enter => submit(client, &mut view).await?,
                KeyCode::Backspace => {
                    view.input.pop();
                }
                KeyCode::Tab | KeyCode::Down if !view.conversations.is_empty() => {
                    view.selected = (view.selected + 1) % view.conversations.len();
                    reload(client, &mut view).await?;
                }
                KeyCode::Up if !view.conversations.is_empty() => {
                    view.selected = view
                        .selected
                        .checked_sub(1)
                        .unwrap_or(view.conversations.len() - 1);
                    reload(client, &mut view).await?;
                }
                KeyCode::Char(c) => view.input.push(c),
                _ => {}
            },
            Wake::Key(_) => {}
            Wake::Client(Ok(event)) => {
                match &event {
                    ClientEvent::Message(message) => {
                        learn_conversation(client, &mut view, &message.conversation).await;
                        view.status = format!("new message from {}", message.peer);
                    }
                    ClientEvent::Disconnected(reason) => {
                        view.status = format!("disconnected ({reason}); reconnecting…");
                        terminal.draw(|frame| view.draw(frame))?;
                        client
                            .reconnect(RECONNECT_ATTEMPTS)
                            .await
                            .context("cannot reconnect to the server")?;
                        view.status = "connected".into();
                    }
                    other => {
                        if let Some(line) = super::receive::event_line(
                            other,
                            &super::receive::GroupNames::default(),
                        ) {
                            view.status = line;
                        }
                    }
                }
                reload(client, &mut view).await?;
            }
            Wake::Client(Err(error)) => {
                return Err(anyhow::Error::new(error).context("receiving failed"));
            }
        }
    }
}

/// Handles Enter: a command, or a message to the open conversation.
async fn submit(client: &Client, view: &mut View) -> Result<()> {
    let input = std::mem::take(&mut view.input);
    let text = input.trim();
    if text.is_empty() {
        return Ok(());
    }
    if let Some(address) = text.strip_prefix("/open ") {
        view.open(Conversation::direct(address.trim()));
        return reload(client, view).await;
    }
    let Some(conversation) = view.current().cloned() else {
        view.status = "no conversation open: /open ADDRESS".into();
        view.input = input;
        return Ok(());
    };
    let sent = match conversation.group {
        Some(group_id) => client.send_group_text(group_id, text).await.map(|_| ()),
        None => client.send_text(&conversation.key, text).await.map(|_| ()),
    };
    match sent {
        Ok(()) => view.status = format!("sent to {}", conversation.label),
        Err(error) => {
            // The text stays in the input line, so nothing typed is lost.
            view.status = format!("not sent: {error}");
            view.input = input;
        }
    }
    reload(client, view).await
}

/// Reloads the open conversation from the store.
async fn reload(client: &Client, view: &mut View) -> Result<()> {
    view.messages = match view.current() {
        Some(conversation) => client.history(&conversation.key, HISTORY_IN_VIEW).await?,
        None => Vec::new(),
    };
    // What is on the screen counts as seen.
    if view
        .messages
        .iter()
        .any(|message| !message.outgoing && !message.read)
    {
        let mut shown = view.messages.clone();
        if let Some(problem) = super::receive::flush_seen(client, &mut shown, view.read_receipts)
            .await
            .pop()
        {
            view.status = problem;
        }
    }
    Ok(())
}

/// Adds the conversation a message arrived in to the list (a group's name is read from the
/// server; if that fails, the group is listed by its key).
async fn learn_conversation(client: &Client, view: &mut View, key: &str) {
    if view.conversations.iter().any(|c| c.key == key) {
        return;
    }
    if key.starts_with(super::receive::GROUP_CONVERSATION_PREFIX)
        && let Ok(groups) = client.group_list().await
        && let Some(group) = groups.iter().find(|g| group_conversation(&g.id) == key)
    {
        view.add(Conversation::group(group));
        return;
    }
    view.add(Conversation {
        label: key.to_owned(),
        key: key.to_owned(),
        group: None,
    });
}
