//! `confianza chat` driven through a pseudo-terminal (a private tmux server): it starts,
//! shows the conversation, sends what is typed, shows the peer's reply live with its
//! verification state and our message's delivery state, lists and sends to groups (with how
//! many members a group message reached), and quits on Esc.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_support::{PATIENCE, Server, User, confianza_bin, messages_from};

/// A tmux server of this test only (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            socket: format!("confianza-e2e-{}-{nanos}", std::process::id()),
        }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "chat"]).stdout)
            .into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&self) -> bool {
        self.tmux(&["has-session", "-t", "chat"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

#[test]
fn chat_sends_what_is_typed_and_shows_replies_live() {
    if !Tmux::available() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    let server = Server::start();
    let alice = User::new("alice@example.org");
    let bob = User::new("bob@example.org");
    alice.init(&server);
    bob.init(&server);
    alice.ok(&["group", "create", "team", "bob@example.org"]);

    let tmux = Tmux::new();
    let command = format!(
        "env CONFIANZA_HOME='{}' '{}' chat bob@example.org",
        alice.home.path().display(),
        confianza_bin().display()
    );
    let out = tmux.tmux(&[
        "new-session",
        "-d",
        "-s",
        "chat",
        "-x",
        "120",
        "-y",
        "30",
        &command,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = tmux.wait_for("Conversations");
    assert!(screen.contains("bob@example.org"), "{screen}");
    assert!(screen.contains("you are alice@example.org"), "{screen}");
    assert!(screen.contains("#team"), "{screen}");

    // Alice types a message and presses Enter: it is on her screen and reaches Bob.
    tmux.tmux(&["send-keys", "-t", "chat", "-l", "hello from the chat"]);
    tmux.tmux(&["send-keys", "-t", "chat", "Enter"]);
    let screen = tmux.wait_for("me: hello from the chat");
    assert!(screen.contains("sent to bob@example.org"), "{screen}");
    let out = bob.ok(&["receive"]);
    let lines = messages_from(&out, "alice@example.org");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].ends_with("[certified]: hello from the chat"),
        "{out}"
    );

    // Bob's receipts (the server's delivery receipt, then his encrypted read receipt, sent
    // because `receive` printed the message) and his reply appear live.
    tmux.wait_for("[read]");
    bob.ok(&["send", "alice@example.org", "hello from the shell"]);
    let screen = tmux.wait_for("bob@example.org: hello from the shell");
    assert!(screen.contains("[certified]"), "{screen}");
    // On Alice's screen, so seen: Bob hears it was read.
    let out = bob.ok(&["receive"]);
    assert!(
        out.contains("read by alice@example.org: 1 message"),
        "{out}"
    );

    // Up selects the group; what is typed there goes to the group.
    tmux.tmux(&["send-keys", "-t", "chat", "Up"]);
    tmux.wait_for("#team — you are");
    tmux.tmux(&["send-keys", "-t", "chat", "-l", "hello team"]);
    tmux.tmux(&["send-keys", "-t", "chat", "Enter"]);
    let screen = tmux.wait_for("me: hello team");
    assert!(screen.contains("sent to #team"), "{screen}");
    assert!(!screen.contains("hello from the shell"), "{screen}");
    // Bob's device takes it without sending a read receipt: the server's delivery receipt
    // (it names Bob, not the group) counts him as one member reached.
    let out = bob.ok(&["receive", "--no-read-receipts"]);
    assert!(out.contains("hello team"), "{out}");
    tmux.wait_for("hello team  [delivered to 1 of 1]");

    // /open adds a conversation; Esc quits.
    tmux.tmux(&["send-keys", "-t", "chat", "-l", "/open carol@example.org"]);
    tmux.tmux(&["send-keys", "-t", "chat", "Enter"]);
    tmux.wait_for("carol@example.org —");
    tmux.tmux(&["send-keys", "-t", "chat", "Escape"]);
    let deadline = Instant::now() + PATIENCE;
    while tmux.running() {
        assert!(Instant::now() < deadline, "chat did not quit on Esc");
        std::thread::sleep(Duration::from_millis(100));
    }
}
