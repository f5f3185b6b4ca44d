//! `confianza` end to end against a real `confianza-server` process: enrollment with RA codes
//! and root pinning, send and receive, offline delivery exactly once, safety numbers and QR
//! codes, revoked contacts refused, certificates, bad input refused without data loss, the
//! stored history with per-member read state in groups, and no `-wal`/`-shm` files left
//! beside the store after a command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use e2e_support::{
    Server, User, messages_from, snapshot, start_server_with_users, stderr, stdout, wal_files,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// The 60 digits printed by `verify` (three lines of four groups of five).
fn safety_number(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .skip_while(|line| !line.starts_with("safety number with"))
        .skip(1)
        .take(3)
        .collect();
    for line in &lines {
        let groups: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(groups.len(), 4, "{line:?}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
        );
    }
    let digits: String = lines.concat().split_whitespace().collect();
    assert_eq!(digits.len(), 60, "{output}");
    digits
}

fn payload(output: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix("scannable payload: "))
        .expect("a payload line")
        .to_owned()
}

#[test]
fn enroll_send_receive_offline_exactly_once_and_verify() {
    let server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);

    // Alice checks the root fingerprint she got out of band; it is printed like openssl does.
    let fingerprint = server.root_fingerprint();
    let code = server.code(ALICE);
    let out = alice.ok(&[
        "init",
        "--server",
        &server.noise.to_string(),
        "--name",
        ALICE,
        "--code",
        &code,
        "--ca-fingerprint",
        &fingerprint,
        "--no-passphrase",
    ]);
    let colon = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    assert!(out.contains(&colon), "{out}");
    assert!(out.contains("matches the fingerprint you gave"), "{out}");
    // Bob trusts on first use: he is told to compare.
    let out = bob.init(&server);
    assert!(out.contains(&colon), "{out}");
    assert!(out.contains("compare it"), "{out}");

    // Online: a certified session from Bob's bundle.
    let out = alice.ok(&["send", BOB, "hello bob"]);
    assert!(
        out.contains("sent to bob@example.org (1 device, certified)"),
        "{out}"
    );
    let out = bob.ok(&["receive"]);
    let lines = messages_from(&out, ALICE);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].ends_with("alice@example.org [certified]: hello bob"),
        "{out}"
    );
    assert!(lines[0].contains(" UTC "), "{out}");

    // Bob's reply; Alice also learns her first message was delivered.
    bob.ok(&["send", ALICE, "hi alice"]);
    let mut alice_saw = alice.ok(&["receive"]);
    assert_eq!(messages_from(&alice_saw, BOB).len(), 1, "{alice_saw}");

    // Offline: Bob runs nothing while three messages wait; he gets each exactly once, in order.
    for i in 1..=3 {
        alice.ok(&["send", BOB, &format!("offline {i}")]);
    }
    let out = bob.ok(&["receive"]);
    let bodies: Vec<&str> = messages_from(&out, ALICE)
        .iter()
        .map(|line| line.rsplit(": ").next().unwrap())
        .collect();
    assert_eq!(bodies, ["offline 1", "offline 2", "offline 3"], "{out}");
    let out = bob.run(&["receive"]);
    assert!(out.status.success());
    assert!(messages_from(&stdout(&out), ALICE).is_empty(), "{out:?}");
    assert!(stderr(&out).contains("no new messages"));

    // Safety numbers: the same 60 digits on both sides, and a QR code.
    let at_alice = alice.ok(&["verify", BOB]);
    let at_bob = bob.ok(&["verify", ALICE]);
    assert_eq!(safety_number(&at_alice), safety_number(&at_bob));
    assert!(
        at_alice.contains('█') || at_alice.contains('▀'),
        "{at_alice}"
    );
    assert!(at_alice.contains("certified by the organisation CA, not verified by you"));

    // A code that is not Bob's (Alice scans her own screen): refused, nothing marked.
    let error = alice.fails(&[
        "verify",
        BOB,
        "--scan",
        &payload(&at_alice),
        "--mark-verified",
    ]);
    assert!(error.contains("does NOT match"), "{error}");
    assert!(alice.ok(&["verify", BOB]).contains("not verified by you"));
    // Garbage is an error too.
    let error = alice.fails(&["verify", BOB, "--scan", "zz"]);
    assert!(error.contains("hexadecimal"), "{error}");

    // Bob's code: match, and verified from now on, also in received messages.
    let out = alice.ok(&[
        "verify",
        BOB,
        "--scan",
        &payload(&at_bob),
        "--mark-verified",
    ]);
    assert!(out.contains("the scanned code matches"), "{out}");
    assert!(out.contains("bob@example.org: verified by you"), "{out}");
    bob.ok(&["send", ALICE, "now verified"]);
    let out = alice.ok(&["receive"]);
    assert!(
        out.contains("bob@example.org [verified]: now verified"),
        "{out}"
    );
    // Bob's receipts for what he read reached Alice along the way.
    alice_saw.push_str(&out);
    assert!(
        alice_saw.contains("delivered to bob@example.org"),
        "{alice_saw}"
    );

    // An unknown contact has no safety number.
    let error = alice.fails(&["verify", "carol@example.org"]);
    assert!(error.contains("not a known contact"), "{error}");
}

#[test]
fn revoked_contacts_are_refused_and_own_certificates_shown_renewed_revoked() {
    let (server, [alice, _carol, dave]) =
        start_server_with_users([ALICE, "carol@example.org", "dave@example.org"]);

    // Own certificate, as openssl prints it; and the pinned CA.
    let out = alice.ok(&["cert", "show"]);
    assert!(out.contains("Certificate:"), "{out}");
    assert!(out.contains(ALICE), "{out}");
    assert_eq!(alice.ok(&["cert", "show", ALICE]), out);
    let ca = alice.ok(&["cert", "show", "--ca"]);
    assert!(ca.contains("Example Org"), "{ca}");
    let error = alice.fails(&["cert", "show", "zed@example.org"]);
    assert!(
        error.contains("is not a contact of this profile"),
        "{error}"
    );

    let out = alice.ok(&["cert", "renew"]);
    assert!(
        out.contains("renewed the certificate of alice@example.org"),
        "{out}"
    );
    assert!(out.contains("valid until"), "{out}");

    // The CA revokes Carol (operator side): Alice refuses a session with her.
    server.revoke("carol@example.org", "keyCompromise");
    let error = alice.fails(&["send", "carol@example.org", "are you there?"]);
    assert!(error.contains("revoked"), "{error}");

    // Dave revokes his own certificate: same refusal.
    let error = dave.fails(&["cert", "revoke", "--reason", "key-compromise"]);
    assert!(error.contains("--yes"), "{error}");
    let out = dave.ok(&["cert", "revoke", "--reason", "key-compromise", "--yes"]);
    assert!(
        out.contains("revoked the certificate of dave@example.org"),
        "{out}"
    );
    let error = alice.fails(&["send", "dave@example.org", "hello"]);
    assert!(error.contains("revoked"), "{error}");
}

#[test]
fn bad_input_is_a_one_line_error_and_loses_no_data() {
    let mut server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);
    let endpoint = server.noise.to_string();

    // A bad code: refused, and nothing is left behind, so the right code works afterwards.
    let error = alice.fails(&[
        "init",
        "--server",
        &endpoint,
        "--name",
        ALICE,
        "--code",
        "not-a-code",
        "--no-passphrase",
    ]);
    assert!(error.contains("cannot enroll"), "{error}");
    assert!(!alice.profile().join("store.db").exists());
    // A root that is not the one expected: refused.
    let code = server.code(ALICE);
    let error = alice.fails(&[
        "init",
        "--server",
        &endpoint,
        "--name",
        ALICE,
        "--code",
        &code,
        "--ca-fingerprint",
        &"ab".repeat(32),
        "--no-passphrase",
    ]);
    assert!(error.contains("fingerprint"), "{error}");
    // No passphrase and no --no-passphrase: told what to do.
    let error = alice.fails(&[
        "init", "--server", &endpoint, "--name", ALICE, "--code", "x",
    ]);
    assert!(error.contains("CONFIANZA_PASSPHRASE"), "{error}");
    alice.init(&server);
    bob.init(&server);

    // init over an existing profile: refused, and the profile still works.
    let before = snapshot(&alice.profile());
    let code = server.code(ALICE);
    let error = alice.fails(&[
        "init",
        "--server",
        &endpoint,
        "--name",
        ALICE,
        "--code",
        &code,
        "--no-passphrase",
    ]);
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(snapshot(&alice.profile()), before);

    // The longest text goes; one byte more is refused before anything is sent.
    let longest = "x".repeat(confianza_client::limits::MAX_TEXT_LEN);
    alice.ok(&["send", BOB, &longest]);
    let error = alice.fails(&["send", BOB, &format!("{longest}x")]);
    assert!(error.contains("at most"), "{error}");
    let out = bob.ok(&["receive"]);
    let lines = messages_from(&out, ALICE);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].ends_with(&format!(": {longest}")));

    // Unknown address, malformed address, a profile that does not exist, a bad profile name.
    let error = alice.fails(&["send", "nobody@example.org", "hi"]);
    assert!(error.contains("nobody@example.org"), "{error}");
    alice.fails(&["send", "not an address", "hi"]);
    let error = alice.fails(&["--profile", "work", "receive"]);
    assert!(error.contains("no Confianza profile"), "{error}");
    let error = alice.fails(&["--profile", "../escape", "receive"]);
    assert!(error.contains("invalid profile name"), "{error}");
    let error = alice.fails(&["cert", "show", "/nonexistent/cert.pem"]);
    assert!(error.contains("cannot read"), "{error}");

    // The server is down: a clear error; once it is back, the same profile works.
    server.stop();
    let error = alice.fails(&["send", BOB, "while down"]);
    assert!(error.contains("cannot connect to the server"), "{error}");
    bob.fails(&["receive"]);
    server.run();
    alice.ok(&["send", BOB, "after restart"]);
    let out = bob.ok(&["receive"]);
    let lines = messages_from(&out, ALICE);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].ends_with(": after restart"), "{out}");

    // A corrupted store: a clear error, and the file is left as it was.
    let carol = User::new("carol@example.org");
    carol.init(&server);
    // Damaged after a clean checkpoint: no write-ahead log left to recover from.
    let db = carol.profile().join("store.db");
    for log in ["store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(carol.profile().join(log));
    }
    std::fs::write(&db, b"this is not a database, it was damaged on disk").unwrap();
    let before = snapshot(&carol.profile());
    let error = carol.fails(&["receive"]);
    assert!(error.contains("corrupt"), "{error}");
    assert_eq!(snapshot(&carol.profile()), before);
}

#[test]
fn a_wrong_passphrase_is_refused_and_loses_nothing() {
    const RIGHT: &str = "correct horse battery staple";
    let server = Server::start();
    let erin = User::new("erin@example.org");
    let frank = User::new("frank@example.org");
    frank.init(&server);
    let with = |passphrase: Option<&str>, args: &[&str]| {
        let mut command = erin.command(args);
        if let Some(passphrase) = passphrase {
            command.env("CONFIANZA_PASSPHRASE", passphrase);
        }
        command.output().unwrap()
    };
    let code = server.code(&erin.address);
    let endpoint = server.noise.to_string();
    let out = with(
        Some(RIGHT),
        &[
            "init",
            "--server",
            &endpoint,
            "--name",
            &erin.address,
            "--code",
            &code,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Sealed under the passphrase: no key file.
    assert!(!erin.profile().join("store.key").exists());
    frank.ok(&["send", &erin.address, "one"]);
    let out = with(Some(RIGHT), &["receive"]);
    assert!(stdout(&out).ends_with("[certified]: one\n"), "{out:?}");

    // A wrong passphrase, then none: refused, one line each.
    let out = with(Some("wrong horse"), &["receive"]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{out:?}");
    assert!(stderr(&out).contains("wrong passphrase"), "{out:?}");
    let error = erin.fails(&["receive"]);
    assert!(error.contains("CONFIANZA_PASSPHRASE"), "{error}");

    // Everything is still there: the contact and its session, and new messages arrive.
    frank.ok(&["send", &erin.address, "two"]);
    let out = with(Some(RIGHT), &["verify", &frank.address]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with(Some(RIGHT), &["receive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = messages_from(&stdout(&out), &frank.address).len();
    assert_eq!(lines, 1, "{out:?}");
    assert!(stdout(&out).ends_with("[certified]: two\n"), "{out:?}");
}

#[test]
fn groups_are_created_changed_listed_and_left() {
    let (_server, [alice, bob, _carol]) =
        start_server_with_users([ALICE, BOB, "carol@example.org"]);

    let out = alice.ok(&["group", "create", "team", BOB]);
    assert!(out.contains("team: 2 members"), "{out}");
    assert!(out.contains("alice@example.org (admin)"), "{out}");
    let out = alice.ok(&["group", "add", "team", "carol@example.org"]);
    assert!(out.contains("team: 3 members"), "{out}");
    let out = bob.ok(&["group", "list"]);
    assert!(out.contains("team: 3 members"), "{out}");
    assert!(out.contains("carol@example.org"), "{out}");

    let out = alice.ok(&["send", "--group", "team", "hello team"]);
    assert!(out.contains("sent to group team"), "{out}");

    // Bob is no admin: he cannot remove anyone, but he can leave.
    bob.fails(&["group", "remove", "team", "carol@example.org"]);
    let out = alice.ok(&["group", "remove", "team", "carol@example.org"]);
    assert!(out.contains("team: 2 members"), "{out}");
    assert!(!out.contains("carol"), "{out}");
    let out = bob.ok(&["group", "leave", "team"]);
    assert!(out.contains("left team"), "{out}");
    let out = bob.run(&["group", "list"]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("team"), "{out:?}");

    let error = alice.fails(&["send", "--group", "nosuch", "hi"]);
    assert!(error.contains("no group named"), "{error}");
    let error = alice.fails(&["group", "leave", "nosuch"]);
    assert!(error.contains("no group named"), "{error}");
}

#[test]
fn every_command_has_help() {
    let user = User::new(ALICE);
    for args in [
        &["--help"][..],
        &["init", "--help"],
        &["send", "--help"],
        &["receive", "--help"],
        &["chat", "--help"],
        &["history", "--help"],
        &["verify", "--help"],
        &["cert", "--help"],
        &["cert", "show", "--help"],
        &["cert", "renew", "--help"],
        &["cert", "revoke", "--help"],
        &["group", "--help"],
        &["group", "create", "--help"],
        &["group", "list", "--help"],
    ] {
        let out = user.ok(args);
        assert!(out.contains("Usage: confianza"), "{args:?}: {out}");
        assert!(out.contains("--profile"), "{args:?}: {out}");
    }
    // A usage error exits with clap's status 2.
    let out = user.run(&["send"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn read_receipts_are_sent_by_default_and_can_be_turned_off() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);

    alice.ok(&["send", BOB, "did you read this?"]);
    let out = bob.ok(&["receive"]);
    assert_eq!(messages_from(&out, ALICE).len(), 1, "{out}");
    // Bob's `receive` printed it, so Alice hears it was read (an encrypted receipt, after
    // the server's own delivery receipt).
    let out = alice.ok(&["receive"]);
    assert!(
        out.contains(&format!("delivered to {BOB}: 1 message")),
        "{out}"
    );
    assert!(out.contains(&format!("read by {BOB}: 1 message")), "{out}");
    // The receipt itself is no message of the conversation.
    assert!(messages_from(&out, BOB).is_empty(), "{out}");

    alice.ok(&["send", BOB, "and this one?"]);
    let out = bob.ok(&["receive", "--no-read-receipts"]);
    assert_eq!(messages_from(&out, ALICE).len(), 1, "{out}");
    bob.ok(&["send", ALICE, "answered without a receipt"]);
    let out = alice.ok(&["receive"]);
    assert_eq!(messages_from(&out, BOB).len(), 1, "{out}");
    assert!(!out.contains("read by"), "{out}");
    // Alice read Bob's answer: Bob hears it.
    let out = bob.ok(&["receive"]);
    assert!(
        out.contains(&format!("read by {ALICE}: 1 message")),
        "{out}"
    );
}

#[test]
fn history_shows_both_sides_with_delivery_read_state_and_attachments() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"minutes of the meeting").unwrap();

    alice.ok(&["send", BOB, "first"]);
    alice.ok(&["send", BOB, "second"]);
    // Nothing delivered yet.
    let out = alice.ok(&["history", BOB]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with("  me [sent]: first"), "{out}");
    assert!(lines[0].contains(" UTC "), "{out}");
    assert!(lines[1].ends_with("  me [sent]: second"), "{out}");

    bob.ok(&["receive", "--save-dir", dir.path().to_str().unwrap()]);
    bob.ok(&["send", ALICE, "--file", file.to_str().unwrap()]);
    let saved = tempfile::tempdir().unwrap();
    alice.ok(&["receive", "--save-dir", saved.path().to_str().unwrap()]);
    let out = alice.ok(&["history", BOB]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].ends_with("  me [read]: first"), "{out}");
    assert!(lines[1].ends_with("  me [read]: second"), "{out}");
    assert!(
        lines[2].ends_with(&format!("  {BOB} [certified]: (attachment \"notes.txt\")")),
        "{out}"
    );
    // Bob's side, once he hears that Alice saved (and so read) his attachment.
    bob.ok(&["receive"]);
    let out = bob.ok(&["history", ALICE]);
    assert_eq!(messages_from(&out, ALICE).len(), 2, "{out}");
    assert!(
        out.contains("me [read]: (attachment \"notes.txt\")"),
        "{out}"
    );

    let out = alice.ok(&["history", BOB, "--limit", "1"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("notes.txt"), "{out}");
    let out = alice.run(&["history", "carol@example.org"]);
    assert!(out.status.success());
    assert!(stdout(&out).is_empty(), "{out:?}");
    assert!(stderr(&out).contains("no messages"), "{out:?}");
    for args in [
        &["history"][..],
        &["history", BOB, "--limit", "0"],
        &["history", BOB, "--group", "team"],
    ] {
        assert_eq!(alice.run(args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn group_messages_are_read_member_by_member() {
    let (_server, [alice, bob, carol]) = start_server_with_users([ALICE, BOB, "carol@example.org"]);
    alice.ok(&["group", "create", "team", BOB, "carol@example.org"]);
    alice.ok(&["send", "--group", "team", "hello team"]);

    let out = alice.ok(&["history", "--group", "team"]);
    assert!(out.trim_end().ends_with("me [sent]: hello team"), "{out}");
    // Each member reads it in turn; Alice's history counts their read receipts.
    for (reader, readers) in [(&bob, 1), (&carol, 2)] {
        reader.ok(&["receive"]);
        alice.ok(&["receive"]);
        let out = alice.ok(&["history", "--group", "team"]);
        let state = format!("me [read by {readers} of 2]: hello team");
        assert!(out.trim_end().ends_with(&state), "{out}");
    }
    let out = bob.ok(&["history", "--group", "team"]);
    assert_eq!(messages_from(&out, ALICE).len(), 1, "{out}");
    assert!(out.trim_end().ends_with(": hello team"), "{out}");

    let error = alice.fails(&["history", "--group", "nosuch"]);
    assert!(error.contains("no group named"), "{error}");
}

#[test]
fn a_profile_at_rest_is_its_database_without_wal_or_shm_files() {
    let (_server, [alice, bob]) = start_server_with_users([ALICE, BOB]);
    assert_eq!(wal_files(&alice.profile()), Vec::<String>::new());

    let dir = tempfile::tempdir().unwrap();
    let save_dir = dir.path().to_str().unwrap();
    let commands: [(&User, &[&str], bool); 9] = [
        (&alice, &["send", BOB, "hello"], true),
        (&bob, &["receive", "--save-dir", save_dir], true),
        (&alice, &["history", BOB], true),
        (&alice, &["verify", BOB], true),
        (&alice, &["group", "list"], true),
        (&alice, &["cert", "show"], true),
        // Failures after the store was opened close it too.
        (&alice, &["send", "zed@example.org", "hello"], false),
        (&alice, &["verify", "zed@example.org"], false),
        (&alice, &["cert", "show", "zed@example.org"], false),
    ];
    for (user, args, succeeds) in commands {
        let out = user.run(args);
        assert_eq!(out.status.success(), succeeds, "{args:?}: {}", stderr(&out));
        assert_eq!(
            wal_files(&user.profile()),
            Vec::<String>::new(),
            "after {args:?}"
        );
    }
}
