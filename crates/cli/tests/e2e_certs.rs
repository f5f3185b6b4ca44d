//! `confianza` against real `confianza-server` processes: the server authenticated in the
//! handshake before the enrollment code is sent (a pinned fingerprint, another organisation's
//! server, trust on first use), and contacts' certificates shown with `cert show ADDRESS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use e2e_support::{Server, User};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";

fn init_args<'a>(server: &'a str, address: &'a str, code: &'a str) -> Vec<&'a str> {
    vec![
        "init",
        "--server",
        server,
        "--name",
        address,
        "--code",
        code,
        "--no-passphrase",
    ]
}

/// The fingerprint `init` printed, as hex without colons.
fn printed_fingerprint(output: &str) -> String {
    let line = output
        .lines()
        .skip_while(|line| !line.contains("SHA-256 fingerprint"))
        .nth(1)
        .expect("a fingerprint line");
    line.trim().replace(':', "").to_lowercase()
}

#[test]
fn a_wrong_fingerprint_is_refused_before_the_code_is_sent() {
    let server = Server::start();
    let alice = User::new(ALICE);
    let address = server.noise.to_string();
    let code = server.code(ALICE);
    let wrong = "ab".repeat(32);

    let mut args = init_args(&address, ALICE, &code);
    args.extend(["--ca-fingerprint", &wrong]);
    let error = alice.fails(&args);
    assert!(error.contains("fingerprint"), "{error}");
    assert!(error.contains(&wrong), "{error}");
    // Nothing is left of the attempt.
    let profile = alice.profile();
    assert!(
        !profile.exists() || std::fs::read_dir(&profile).unwrap().next().is_none(),
        "files left in {}",
        profile.display()
    );

    // The code never reached the server: it still enrolls, now with the right fingerprint.
    let right = server.root_fingerprint();
    let mut args = init_args(&address, ALICE, &code);
    args.extend(["--ca-fingerprint", &right]);
    let out = alice.ok(&args);
    assert!(out.contains("it matches the fingerprint you gave"), "{out}");
    assert_eq!(printed_fingerprint(&out), right);
}

#[test]
fn another_organisations_server_is_refused() {
    let ours = Server::start();
    let mut theirs = Server::start();
    let code = ours.code(CAROL);

    // First contact, pinned: their server presents a chain to another root.
    let carol = User::new(CAROL);
    let their_address = theirs.noise.to_string();
    let mut args = init_args(&their_address, CAROL, &code);
    let right = ours.root_fingerprint();
    args.extend(["--ca-fingerprint", &right]);
    let error = carol.fails(&args);
    assert!(error.contains("fingerprint"), "{error}");

    // Trust on first use: the root is pinned and shown, to compare out of band.
    let bob = User::new(BOB);
    let out = bob.init(&ours);
    assert_eq!(printed_fingerprint(&out), ours.root_fingerprint());
    assert!(out.contains("compare it"), "{out}");

    // Later connections: their server takes over our address; its certificate comes from
    // another CA and is refused before any request.
    let mut ours = ours;
    ours.stop();
    theirs.stop();
    theirs.noise = ours.noise;
    theirs.http = ours.http;
    theirs.run();
    let error = bob.fails(&["receive"]);
    assert!(
        error.contains("not issued by the pinned organisation CA"),
        "{error}"
    );
    theirs.stop();

    // Carol's code was never used: she enrolls at our server with it.
    ours.run();
    let our_address = ours.noise.to_string();
    let mut args = init_args(&our_address, CAROL, &code);
    args.extend(["--ca-fingerprint", &right]);
    carol.ok(&args);
}

#[test]
fn cert_show_prints_a_contacts_certificate() {
    let server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);
    alice.init(&server);
    bob.init(&server);

    // Nobody known yet.
    let error = alice.fails(&["cert", "show", BOB]);
    assert!(error.contains("not a contact"), "{error}");

    // Alice verifies Bob's bundle when she writes to him; Bob verifies Alice's certificate
    // when her first message arrives.
    alice.ok(&["send", BOB, "hello Bob"]);
    bob.ok(&["receive"]);

    let bobs_own = bob.ok(&["cert", "show"]);
    let alices_view = alice.ok(&["cert", "show", BOB]);
    assert_eq!(alices_view, bobs_own);
    assert!(alices_view.starts_with("Certificate:"), "{alices_view}");
    assert!(alices_view.contains(BOB), "{alices_view}");

    let alices_own = alice.ok(&["cert", "show", ALICE]);
    assert_eq!(bob.ok(&["cert", "show", ALICE]), alices_own);

    // An address nobody wrote to stays unknown: one line, an exit status other than 0.
    let error = alice.fails(&["cert", "show", CAROL]);
    assert!(error.contains(CAROL), "{error}");
}
