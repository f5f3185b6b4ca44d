//! `confianza call ADDRESS --send-audio IN.wav`, `confianza answer --save-audio OUT.wav` and
//! `confianza answer --decline`.
//!
//! The caller draws a fresh 32-byte SRTP master secret and sends it, with the call id and
//! its UDP media address, in an end-to-end encrypted message; the answerer replies with an
//! encrypted answer and proves it holds the key with authenticated SRTP "ready" packets; then
//! the WAV's samples flow as SRTP packets (AES_CM_128_HMAC_SHA1_80) over UDP. The answerer
//! puts packets back in SRTP index order; a packet still missing when the stream ends (after
//! a short grace period for late packets) becomes silence of the same length, and is counted.
//! A declined call is an encrypted answer that says so: the caller then fails with
//! "ADDRESS declined the call".

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confianza_client::account::Client;
use confianza_client::call::signaling::offer_is_fresh;
use confianza_client::call::{self, CallInvitation, Wav};
use confianza_client::messaging::ClientEvent;
use tokio::net::UdpSocket;

use super::profile::{self, Globals};
use super::receive::{GroupNames, event_line};

/// How long to wait by default: for an answer, for a call, for the media to flow.
const DEFAULT_TIMEOUT: &str = "60s";

/// `confianza call`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// Who to call, user@domain.
    pub address: String,
    /// The audio to send: a 16-bit PCM WAV file (mono or stereo).
    #[arg(long, value_name = "IN.wav")]
    pub send_audio: PathBuf,
    /// How long to wait for the answer (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
    pub timeout: humantime::Duration,
    /// The local UDP address for media, IP or IP:PORT (default: the address this machine
    /// uses to reach the server, on a free port).
    #[arg(long, value_name = "IP[:PORT]")]
    pub media_address: Option<String>,
}

/// `confianza answer`.
#[derive(Debug, clap::Args)]
pub struct AnswerArgs {
    /// Where to write the received audio (16-bit PCM WAV). An existing file is replaced
    /// only once the whole call has been received.
    #[arg(long, value_name = "OUT.wav", required_unless_present = "decline")]
    pub save_audio: Option<PathBuf>,
    /// Decline the call instead: the caller is told (end-to-end encrypted) and gives up.
    #[arg(long, conflicts_with_all = ["save_audio", "media_address"])]
    pub decline: bool,
    /// Answer only a call from this address (others are reported and left unanswered).
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,
    /// How long to wait for a call, and for media once answered (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
    pub timeout: humantime::Duration,
    /// The local UDP address for media, IP or IP:PORT (default: the address this machine
    /// uses to reach the server, on a free port).
    #[arg(long, value_name = "IP[:PORT]")]
    pub media_address: Option<String>,
}

/// Parses `IP` or `IP:PORT`.
fn parse_media_address(text: &str) -> Result<SocketAddr> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let ip: IpAddr = text
        .parse()
        .with_context(|| format!("{text:?} is not an IP address or IP:PORT"))?;
    Ok(SocketAddr::new(ip, 0))
}

/// A UDP socket for media: on `requested`, else on the local address this machine uses to
/// reach the server (so the peer can send to it), on a free port.
async fn media_socket(client: &Client, requested: Option<&str>) -> Result<UdpSocket> {
    let local = match requested {
        Some(text) => parse_media_address(text)?,
        None => {
            let server = client.account().server.clone();
            let remote = tokio::net::lookup_host(&server)
                .await
                .with_context(|| format!("cannot resolve the server address {server}"))?
                .next()
                .with_context(|| format!("the server address {server} resolves to nothing"))?;
            let any = SocketAddr::new(
                match remote {
                    SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                    SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
                },
                0,
            );
            // Connecting a UDP socket sends nothing: it only picks the route's local address.
            let probe = UdpSocket::bind(any)
                .await
                .context("cannot open a UDP socket")?;
            probe
                .connect(remote)
                .await
                .with_context(|| format!("no route to the server at {remote}"))?;
            SocketAddr::new(probe.local_addr()?.ip(), 0)
        }
    };
    UdpSocket::bind(local)
        .await
        .with_context(|| format!("cannot listen for media on UDP {local}"))
}

/// Prints the line of an event that is not part of the call (a message arriving meanwhile is
/// stored as usual and shown, so it is not missed).
fn show(event: &ClientEvent) {
    if let Some(line) = event_line(event, &GroupNames::default()) {
        println!("{line}");
    }
}

/// Runs `confianza call`.
pub fn run_call(globals: &Globals, args: CallArgs) -> Result<()> {
    profile::block_on(async {
        let path = &args.send_audio;
        let wav = call::read_wav(path)
            .await
            .with_context(|| format!("cannot send {}", path.display()))?;
        profile::with_connected(globals, async |client| {
            place_call(client, &args, &wav).await
        })
        .await
    })
}

async fn place_call(client: &mut Client, args: &CallArgs, wav: &Wav) -> Result<()> {
    let address = args.address.as_str();
    let timeout: Duration = args.timeout.into();
    let socket = media_socket(client, args.media_address.as_deref()).await?;
    let local = socket.local_addr()?;
    let (invitation, outgoing) =
        call::start_call(&mut rand::rng(), local).context("cannot start the call")?;
    let call_id = invitation.call_id();
    client
        .send_call_offer(address, &invitation)
        .await
        .with_context(|| format!("cannot call {address}"))?;
    drop(invitation);
    println!("calling {address} (call {call_id:016x}, media on UDP {local})…");
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match client.next_event().await? {
                ClientEvent::CallAnswered {
                    sender,
                    call_id: answered,
                    media_address,
                    accepted,
                } if sender == address && answered == call_id => {
                    return Ok::<_, anyhow::Error>((accepted, media_address));
                }
                ClientEvent::Disconnected(reason) => {
                    bail!("the server closed the connection: {reason}")
                }
                event => show(&event),
            }
        }
    })
    .await;
    let (accepted, media_address) = match answer {
        Ok(answer) => answer?,
        Err(_) => bail!(
            "{address} did not answer within {}",
            humantime::format_duration(timeout)
        ),
    };
    if !accepted {
        bail!("{address} declined the call");
    }
    println!("{address} answered (media on {media_address}); waiting for its SRTP key check…");
    let connected = outgoing
        .await_answer(&socket, timeout)
        .await
        .with_context(|| format!("{address} answered but no authentic SRTP packet came"))?;
    let peer = connected.peer();
    let report = connected
        .send_audio(&socket, wav)
        .await
        .with_context(|| format!("the call to {address} failed"))?;
    println!(
        "sent {} ({} frames, {} SRTP packets) to {address} at UDP {peer}",
        args.send_audio.display(),
        report.frames,
        report.audio_packets
    );
    Ok(())
}

/// Runs `confianza answer`.
pub fn run_answer(globals: &Globals, args: AnswerArgs) -> Result<()> {
    if let Some(path) = &args.save_audio {
        check_output(path)?;
    }
    profile::block_on(async {
        profile::with_connected(globals, async |client| answer_call(client, &args).await).await
    })
}

/// Fails early when the WAV cannot be written where asked.
fn check_output(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!("{}: no such directory", parent.display());
    }
    if path.is_dir() {
        bail!("{}: is a directory", path.display());
    }
    Ok(())
}

async fn answer_call(client: &mut Client, args: &AnswerArgs) -> Result<()> {
    let timeout: Duration = args.timeout.into();
    let offer = tokio::time::timeout(timeout, async {
        loop {
            match client.next_event().await? {
                ClientEvent::CallOffer {
                    sender,
                    server_at_ms,
                    invitation,
                    ..
                } => {
                    if args.from.as_deref().is_some_and(|from| from != sender) {
                        println!(
                            "call from {sender} at {} not answered (waiting for {})",
                            profile::format_time(server_at_ms),
                            args.from.as_deref().unwrap_or_default()
                        );
                    } else if !offer_is_fresh(server_at_ms) {
                        println!(
                            "missed call from {sender} at {}",
                            profile::format_time(server_at_ms)
                        );
                    } else {
                        return Ok::<_, anyhow::Error>((sender, invitation));
                    }
                }
                ClientEvent::Disconnected(reason) => {
                    bail!("the server closed the connection: {reason}")
                }
                event => show(&event),
            }
        }
    })
    .await;
    let (caller, invitation): (String, CallInvitation) = match offer {
        Ok(offer) => offer?,
        Err(_) => bail!("no call within {}", humantime::format_duration(timeout)),
    };
    let call_id = invitation.call_id();
    let Some(path) = &args.save_audio else {
        // Declining: the invitation (and its master secret) is dropped unused.
        drop(invitation);
        client
            .send_call_decline(&caller, call_id)
            .await
            .with_context(|| format!("cannot decline the call from {caller}"))?;
        println!("declined the call from {caller} (call {call_id:016x})");
        return Ok(());
    };
    let socket = media_socket(client, args.media_address.as_deref()).await?;
    let local = socket.local_addr()?;
    let incoming = invitation.answer();
    drop(invitation);
    client
        .send_call_answer(&caller, call_id, local, true)
        .await
        .with_context(|| format!("cannot answer {caller}"))?;
    println!("answered {caller} (call {call_id:016x}, media on UDP {local})");
    let received = incoming
        .receive_audio(&socket, timeout)
        .await
        .with_context(|| format!("the call from {caller} failed"))?;
    write_atomically(path, &received.wav.to_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let refused = received.refused;
    println!(
        "saved {} ({} bytes): {} SRTP packets from {caller}, {} missing (silence in their place), \
         {} refused",
        path.display(),
        received.wav.to_bytes().len(),
        received.audio_packets,
        received.missing_packets,
        refused.authentication + refused.replay + refused.other
    );
    Ok(())
}

/// Writes `bytes` beside `path` and renames it into place, so `path` is either the old file
/// or the whole new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}
