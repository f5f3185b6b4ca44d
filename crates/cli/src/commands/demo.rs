//! `confianza demo`: the whole system on an embedded server, narrated.
//!
//! A temporary directory holds a real CA data directory (`init`: Ed25519, no passphrase,
//! SQLite) and the messaging service runs in process on 127.0.0.1. Alice, bob and carol are
//! enrolled through the RA with the client library exactly as `confianza init` does, each in
//! its own profile directory, and everything after that goes through the server: bundles from
//! the prekey directory, mailboxes, group fan-out, read receipts, the blob store, call
//! signaling, stapled OCSP; the call's SRTP audio crosses real UDP sockets. The server delivers
//! a mailbox in order, so the out-of-order act takes a batch of deliveries through the client
//! library and decrypts them in a shuffled order (what a client sees when messages race over
//! different paths), and says so.

mod embedded;
mod media;
mod rogue;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use clap::Args as ClapArgs;
use confianza_api::{DeviceSelector, RequestBody, ResponseBody};
use confianza_client::account::{Client, InitOptions};
use confianza_client::messaging::ClientEvent;
use confianza_client::store::{Protection, StoredMessage};
use confianza_client::trust::fingerprint_hex;
use confianza_protocol::keys::IdentityKeyPair;
use der::Decode;
use x509_cert::Certificate;

use self::embedded::{DOMAIN, EmbeddedServer, ORGANISATION, SERVER_NAME};
use super::profile::block_on;

/// `confianza demo` takes no options.
#[derive(ClapArgs)]
pub struct Args {}

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
/// How long the demo waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long the demo waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(300);

fn section(number: u32, title: &str) {
    println!("\n{number:>2}. {title}");
}

fn say(text: impl AsRef<str>) {
    println!("    {}", text.as_ref());
}

/// Waits at most [`PATIENCE`] for `future`.
async fn in_time<T>(what: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(PATIENCE, future)
        .await
        .with_context(|| format!("timed out: {what}"))?
}

/// The next stored text message of `client` (receipts and key distributions are skipped).
async fn next_text(client: &mut Client) -> Result<StoredMessage> {
    let address = client.account().address.clone();
    in_time(&format!("a message for {address}"), async {
        loop {
            match client.next_event().await? {
                ClientEvent::Message(message) if message.kind == "text" => return Ok(message),
                ClientEvent::Refused { sender, reason } => {
                    bail!("{address} refused a message from {sender}: {reason}")
                }
                ClientEvent::Disconnected(reason) => bail!("{address} was disconnected: {reason}"),
                _ => {}
            }
        }
    })
    .await
}

/// The first bundle of `address` from the server's prekey directory, as a client fetches it.
async fn fetch_bundle(client: &Client, address: &str) -> Result<confianza_api::PreKeyBundle> {
    match client
        .request(RequestBody::FetchBundle {
            address: address.to_owned(),
            device: DeviceSelector::All,
        })
        .await?
    {
        ResponseBody::Bundles(bundles) => bundles
            .into_iter()
            .next()
            .with_context(|| format!("the server has no device for {address}")),
        _ => bail!("the server answered a bundle request with something else"),
    }
}

/// Subject and serial of a certificate, for the narration.
fn describe_certificate(der: &[u8]) -> Result<(String, String)> {
    let certificate = Certificate::from_der(der).context("parsing an issued certificate")?;
    let tbs = certificate.tbs_certificate();
    Ok((tbs.subject().to_string(), tbs.serial_number().to_string()))
}

/// `confianza demo`.
pub fn run(_args: &Args) -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("confianza-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    if let Err(error) = block_on(demo(dir.path())) {
        println!("\n✗ the demo stopped: {error:#}");
        return Err(error);
    }
    println!(
        "\nDone in {:.1} s: every check above passed.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn demo(dir: &Path) -> Result<()> {
    println!("Confianza demo: messaging whose identity keys are certified by the organisation.");

    section(
        1,
        "An embedded server: the organisation's CA and the messaging service",
    );
    let mut server = EmbeddedServer::start(&dir.join("server")).await?;
    let root_fingerprint = fingerprint_hex(server.authority.root_der());
    say(format!(
        "data directory {} (SQLite, temporary)",
        dir.join("server").display()
    ));
    say(format!(
        "root CA \"{ORGANISATION} Root CA\" (Ed25519) and an online issuing CA"
    ));
    say(format!(
        "root fingerprint (SHA-256, compare out of band): {root_fingerprint}"
    ));
    say(format!(
        "service {SERVER_NAME} listening on {} (Noise Pipes)",
        server.noise_addr
    ));
    let result = acts(dir, &server, &root_fingerprint).await;
    server.shutdown().await;
    result
}

async fn enroll(
    dir: &Path,
    server: &EmbeddedServer,
    address: &str,
    root_fingerprint: &str,
) -> Result<Client> {
    let code = server.enrollment_code(address).await?;
    let name = address.split('@').next().unwrap_or(address);
    let (client, enrolled) = Client::init(InitOptions {
        dir: dir.join("profiles").join(name),
        protection: Protection::KeyFile,
        server: server.noise_addr.to_string(),
        server_name: Some(SERVER_NAME.to_owned()),
        address: address.to_owned(),
        code,
        expected_ca_fingerprint: Some(root_fingerprint.to_owned()),
    })
    .await
    .with_context(|| format!("enrolling {address}"))?;
    ensure!(
        enrolled.fingerprint_checked && enrolled.root_fingerprint == root_fingerprint,
        "{address}'s client pinned another root"
    );
    let (subject, serial) = describe_certificate(&client.account().certificate)?;
    say(format!(
        "✓ {address:<18} code redeemed, proof of possession checked; root pinned ({}…); \
         certificate {subject}, serial {serial}",
        enrolled.root_fingerprint.get(..16).unwrap_or_default()
    ));
    Ok(client)
}

async fn acts(dir: &Path, server: &EmbeddedServer, root_fingerprint: &str) -> Result<()> {
    let mut rng = rand::rng();
    let now = SystemTime::now();

    section(
        2,
        "The RA enrolls alice, bob and carol (codes given out of band)",
    );
    let mut alice = enroll(dir, server, ALICE, root_fingerprint).await?;
    let mut bob = enroll(dir, server, BOB, root_fingerprint).await?;
    let mut carol = enroll(dir, server, CAROL, root_fingerprint).await?;
    say("✓ each client checked the server's certified Noise key against the pinned root");

    section(3, "A man in the middle hands alice a forged bundle for bob");
    let genuine = fetch_bundle(&alice, BOB).await?;
    let mallory = IdentityKeyPair::generate(&mut rng);
    let mut swapped = genuine.clone();
    swapped.identity_key = mallory.identity_key().serialize();
    swapped.signed_pre_key.signature = mallory.sign(&swapped.signed_pre_key.public_key, &mut rng);
    swapped.kyber_pre_key.signature =
        mallory.sign(swapped.kyber_pre_key.public_key.as_bytes(), &mut rng);
    say("mallory swaps in her identity key and re-signs the prekeys with it:");
    match alice.trust_bundle(BOB, &swapped).await {
        Ok(_) => bail!("a bundle with a swapped identity key was accepted"),
        Err(error) => say(format!("✓ refused: {error}")),
    }
    say(format!(
        "mallory runs her own \"{ORGANISATION}\" CA and enrolls \"{BOB}\" there:"
    ));
    let rogue = rogue::RogueCa::create(ORGANISATION, DOMAIN, now, &mut rng)?;
    let mut rogue_bundle = swapped.clone();
    rogue_bundle.identity_certificate = rogue.enroll(BOB, &mallory, now, &mut rng)?;
    rogue_bundle.ocsp_response = None;
    match alice.trust_bundle(BOB, &rogue_bundle).await {
        Ok(_) => bail!("a certificate from another CA was accepted"),
        Err(error) => say(format!(
            "✓ with a certificate from mallory's own CA: refused: {error}"
        )),
    }

    section(
        4,
        "Sessions through the server's prekey directory (PQXDH), offline delivery",
    );
    bob.disconnect();
    say("bob is offline");
    alice.send_text(BOB, "hello bob").await?;
    alice.send_text(BOB, "are you there?").await?;
    say(
        "✓ alice fetched bob's bundle, checked his certificate (chain, name, stapled OCSP, key), set up a PQXDH session and sent two messages; the server stored them",
    );
    bob.connect().await?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let message = next_text(&mut bob).await?;
        say(format!(
            "✓ bob reconnects and reads from {} ({}): {}",
            message.peer, message.verification, message.body
        ));
        seen.push(message);
    }
    media::read_receipt(&mut alice, &bob, &seen).await?;
    bob.send_text(ALICE, "here now").await?;
    let reply = next_text(&mut alice).await?;
    say(format!(
        "✓ alice reads from {} ({}): {}",
        reply.peer, reply.verification, reply.body
    ));
    say("messages out of order: bob goes offline again and alice sends five");
    media::out_of_order(&alice, &mut bob).await?;

    section(
        5,
        "A group: one ciphertext, fanned out by the server; carol leaves",
    );
    let group = alice
        .group_create("lunch", &[BOB.to_owned(), CAROL.to_owned()])
        .await?;
    let report = alice.send_group_text(group.id, "lunch at noon?").await?;
    say(format!(
        "alice distributed her sender key pairwise to {} and sent one ciphertext",
        report.distributed_to.join(", ")
    ));
    for member in [&mut bob, &mut carol] {
        let message = next_text(member).await?;
        say(format!(
            "✓ {} reads from {}: {}",
            member.account().address,
            message.peer,
            message.body
        ));
    }
    carol.group_leave(group.id).await?;
    let report = alice.send_group_text(group.id, "carol has left").await?;
    ensure!(
        report.distributed_to == [BOB],
        "alice's new sender key went to {:?}",
        report.distributed_to
    );
    say(format!(
        "✓ carol left (group revision {}): alice's sender key was renewed and sent to bob only",
        report.revision
    ));
    let message = next_text(&mut bob).await?;
    say(format!("✓ bob reads: {}", message.body));
    match tokio::time::timeout(QUIET, next_text(&mut carol)).await {
        Ok(Ok(message)) => bail!("carol received {:?} after leaving", message.body),
        _ => say("✓ carol receives nothing after leaving"),
    }

    section(
        6,
        "An attachment: 1 MiB, AES-256-CBC + HMAC-SHA256, through the server's blob store",
    );
    media::attachment(dir, &server.blob_dir, &alice, &mut bob).await?;

    section(
        7,
        "Safety numbers: no CA needed for users who compare in person",
    );
    safety_numbers(&alice, &bob).await?;

    section(
        8,
        "A call: the SRTP master secret in an encrypted message, SRTP audio over UDP",
    );
    media::call(&mut alice, &mut bob).await?;

    section(9, "Revocation: bob's key is compromised");
    match bob
        .request(RequestBody::RevokeCertificate {
            reason: confianza_api::RevocationReason::KeyCompromise,
        })
        .await?
    {
        ResponseBody::Revoked { .. } => {}
        _ => bail!("the server answered the revocation request with something else"),
    }
    let (_, serial) = describe_certificate(&bob.account().certificate)?;
    say(format!(
        "bob asks the CA to revoke his certificate (serial {serial}, keyCompromise): recorded, CRL published"
    ));
    let bundle = fetch_bundle(&alice, BOB).await?;
    ensure!(
        bundle.ocsp_response.is_some(),
        "the server stapled no OCSP response"
    );
    match alice.trust_bundle(BOB, &bundle).await {
        Ok(_) => bail!("a revoked identity was accepted"),
        Err(error) => say(format!(
            "✓ alice starts a new session with bob: stapled OCSP says {error}: refused"
        )),
    }
    match carol.send_text(BOB, "are you there?").await {
        Ok(_) => bail!("carol started a session with a revoked identity"),
        Err(error) => say(format!(
            "✓ carol tries to start a session with bob: {error}: refused, nothing sent"
        )),
    }
    Ok(())
}

async fn safety_numbers(alice: &Client, bob: &Client) -> Result<()> {
    let at_alice = alice.safety_number(BOB).await?;
    let at_bob = bob.safety_number(ALICE).await?;
    let digits = at_alice.displayable().to_string();
    ensure!(
        digits == at_bob.displayable().to_string(),
        "safety numbers differ"
    );
    for line in digits.as_bytes().chunks(20) {
        let line = std::str::from_utf8(line).unwrap_or_default();
        let groups: Vec<&str> = (0..line.len())
            .step_by(5)
            .map(|i| &line[i..(i + 5).min(line.len())])
            .collect();
        say(groups.join(" "));
    }
    say("✓ alice and bob see the same 60 digits");
    let payload = at_alice.scannable().to_bytes();
    let code = qrcode::QrCode::new(&payload).context("QR encoding")?;
    let picture = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    say("alice's screen shows:");
    for line in picture.lines() {
        say(line);
    }
    let scanned = at_bob.scannable().to_bytes();
    let matches = at_alice.scannable().compare(&scanned)?;
    ensure!(matches, "scannable fingerprints differ");
    say(format!(
        "✓ bob scans alice's QR code ({} bytes): match",
        scanned.len()
    ));
    Ok(())
}
