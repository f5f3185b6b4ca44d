//! `confianza demo`: the whole system on an embedded server, narrated.
//!
//! A temporary directory holds a real CA data directory (`init`: Ed25519, no passphrase,
//! SQLite) and the messaging service runs in process on 127.0.0.1. Alice, bob and carol are
//! enrolled through the RA with the client library exactly as `confianza init` does, each in
//! its own profile directory, and everything after that goes through the server: bundles from
//! the prekey directory, mailboxes, group fan-out, stapled OCSP. Two acts run on the protocol
//! crate in process and say so: reordered deliveries (the server delivers in order) and the
//! attachment (the client has no blob-store API yet); the call's invitation also travels over
//! an in-process Signal session for the same reason, while its SRTP audio crosses real UDP
//! sockets.

mod embedded;
mod offline;
mod rogue;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use clap::Args as ClapArgs;
use confianza_api::{DeviceSelector, RequestBody, ResponseBody};
use confianza_client::account::{Client, InitOptions};
use confianza_client::call::{self, AudioFormat, CallInvitation, Wav};
use confianza_client::messaging::ClientEvent;
use confianza_client::store::{Protection, StoredMessage};
use confianza_client::trust::fingerprint_hex;
use confianza_protocol::keys::IdentityKeyPair;
use der::Decode;
use prost::Message as _;
use tokio::net::UdpSocket;
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
/// Length of the call's audio: 50 SRTP packets of 20 ms.
const CALL_FRAMES: usize = 8_000;
/// Sample rate of the call's audio.
const CALL_SAMPLE_RATE: u32 = 8_000;

fn section(number: u32, title: &str) {
    println!("\n{number:>2}. {title}");
}

fn say(text: impl AsRef<str>) {
    println!("    {}", text.as_ref());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    for _ in 0..2 {
        let message = next_text(&mut bob).await?;
        say(format!(
            "✓ bob reconnects and reads from {} ({}): {}",
            message.peer, message.verification, message.body
        ));
    }
    bob.send_text(ALICE, "here now").await?;
    let reply = next_text(&mut alice).await?;
    say(format!(
        "✓ alice reads from {} ({}): {}",
        reply.peer, reply.verification, reply.body
    ));
    say(
        "messages out of order (the server delivers in order, so the protocol is shown in process):",
    );
    let mut pair = offline::Pair::new(now, &mut rng)?;
    pair.out_of_order(now, &mut rng)?;

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
        "An attachment: 1 MiB streamed through AES-256-CBC + HMAC-SHA256 (in process)",
    );
    offline::attachment(&mut rng)?;

    section(
        7,
        "Safety numbers: no CA needed for users who compare in person",
    );
    safety_numbers(&alice, &bob).await?;

    section(
        8,
        "A call: the SRTP master secret in an encrypted message, SRTP audio over UDP",
    );
    call_act(&mut pair, now, &mut rng).await?;

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

async fn call_act(
    pair: &mut offline::Pair,
    now: SystemTime,
    rng: &mut rand::rngs::ThreadRng,
) -> Result<()> {
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let caller = UdpSocket::bind(localhost)
        .await
        .context("binding a UDP socket")?;
    let answerer = UdpSocket::bind(localhost)
        .await
        .context("binding a UDP socket")?;
    let (invitation, outgoing) = call::start_call(rng, caller.local_addr()?)?;
    let offer = invitation.to_content().encode_to_vec();
    let carried = pair.carry(&offer, now, rng)?;
    let received = confianza_client::content::CallOffer::decode(&carried[..])
        .context("decoding the call offer")?;
    let incoming = CallInvitation::from_content(&received)?.answer();
    ensure!(
        incoming.call_id() == outgoing.call_id(),
        "the call ids differ"
    );
    say(format!(
        "✓ the invitation (32-byte master secret, call id {:#018x}) crossed a Signal session \
         (in process: the client has no call-offer API yet); both sides derived their SRTP keys (AES_CM_128_HMAC_SHA1_80)",
        outgoing.call_id()
    ));
    let format = AudioFormat::new(CALL_SAMPLE_RATE, 1)?;
    let data = (0..CALL_FRAMES * format.frame_len())
        .map(|i| ((i * i) % 257) as u8)
        .collect();
    let sent = Wav::new(format, data)?;
    let receiving = tokio::spawn(async move { incoming.receive_audio(&answerer, PATIENCE).await });
    let connected = outgoing.await_answer(&caller, PATIENCE).await?;
    let report = connected.send_audio(&caller, &sent).await?;
    let heard = receiving.await.context("the answerer's task")??;
    ensure!(
        heard.missing_packets == 0 && heard.wav.to_bytes() == sent.to_bytes(),
        "the received audio differs from the sent audio"
    );
    say(format!(
        "✓ {} SRTP packets over UDP on 127.0.0.1: the received audio equals the sent audio ({} bytes)",
        report.audio_packets,
        sent.to_bytes().len()
    ));
    Ok(())
}
