//! The demo's acts on deliveries, files and calls, all through the embedded server with the
//! client library: a batch of deliveries decrypted out of order, an attachment through the
//! blob store (and one altered on the server's disk, refused), and a call whose offer and
//! answer are encrypted messages and whose audio is SRTP over UDP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use confianza_client::account::Client;
use confianza_client::attachments::AttachmentError;
use confianza_client::call::{self, AudioFormat, Wav};
use confianza_client::messaging::{ClientEvent, PendingDelivery};
use confianza_client::store::StoredMessage;
use tokio::net::UdpSocket;

use super::{ALICE, BOB, PATIENCE, in_time, say};

/// Messages of the out-of-order act.
const BATCH: usize = 5;
/// The order bob's client processes them in (indexes into the batch).
const SHUFFLED: [usize; BATCH] = [3, 0, 4, 2, 1];
/// Size of the demo attachment.
const ATTACHMENT_SIZE: usize = 1024 * 1024;
/// Length of the call's audio: 50 SRTP packets of 20 ms.
const CALL_FRAMES: usize = 8_000;
/// Sample rate of the call's audio.
const CALL_SAMPLE_RATE: u32 = 8_000;

/// The next event of `client` that `pick` accepts (others are handled and skipped).
async fn next_matching<T>(
    client: &mut Client,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> Result<T> {
    let address = client.account().address.clone();
    in_time(&format!("{what} for {address}"), async {
        loop {
            match client.next_event().await? {
                ClientEvent::Refused { sender, reason } => {
                    bail!("{address} refused a message from {sender}: {reason}")
                }
                ClientEvent::Disconnected(reason) => bail!("{address} was disconnected: {reason}"),
                event => {
                    if let Some(found) = pick(event) {
                        return Ok(found);
                    }
                }
            }
        }
    })
    .await
}

/// Alice sends five messages while bob is offline; bob's client takes the five deliveries
/// as one batch and decrypts them in a shuffled order; one delivered again is dropped.
pub async fn out_of_order(alice: &Client, bob: &mut Client) -> Result<()> {
    bob.disconnect();
    let texts: Vec<String> = (1..=BATCH).map(|i| format!("message {i}")).collect();
    for text in &texts {
        alice.send_text(BOB, text).await?;
    }
    bob.connect().await?;
    // The server's delivery receipts for bob's own messages may come first: those are
    // processed at once; alice's five envelopes are kept for the shuffled order.
    let batch = in_time("bob's deliveries", async {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            for delivery in bob.take_deliveries(BATCH - batch.len()).await? {
                if delivery.sender() == Some(ALICE) {
                    batch.push(delivery);
                } else {
                    bob.process_delivery(delivery).await?;
                }
            }
        }
        Ok(batch)
    })
    .await?;
    say(format!(
        "bob's client takes the {BATCH} deliveries as one batch (the server delivers in order) and decrypts them in the order {}:",
        SHUFFLED
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut again: Option<PendingDelivery> = None;
    for index in SHUFFLED {
        let delivery = batch[index].clone();
        let wire = delivery.ciphertext_len();
        if index == 2 {
            again = Some(delivery.clone());
        }
        match bob.process_delivery(delivery).await? {
            ClientEvent::Message(message) if message.body == texts[index] => say(format!(
                "✓ #{} ({wire} bytes on the wire): {}",
                index + 1,
                message.body
            )),
            other => bail!("message {} came out as {other:?}", index + 1),
        }
    }
    if let Some(delivery) = again {
        match bob.process_delivery(delivery).await? {
            ClientEvent::Duplicate => say(
                "✓ #3 delivered again (as after a lost acknowledgement): recognised by its message id and dropped",
            ),
            other => bail!("a repeated delivery came out as {other:?}"),
        }
    }
    Ok(())
}

/// Bob marks messages seen; alice receives his encrypted read receipt.
pub async fn read_receipt(
    alice: &mut Client,
    bob: &Client,
    messages: &[StoredMessage],
) -> Result<()> {
    let report = bob.mark_seen(messages, true).await?;
    ensure!(
        report.receipts_sent_to == [ALICE] && report.marked == messages.len(),
        "bob's read receipt: {report:?}"
    );
    let count = next_matching(alice, "a read receipt", |event| match event {
        ClientEvent::Read { reader, count } if reader == BOB => Some(count),
        _ => None,
    })
    .await?;
    let shown = alice.history(BOB, 100).await?;
    let read = shown
        .iter()
        .filter(|message| message.outgoing && message.read)
        .count();
    ensure!(
        count == messages.len() && read >= count,
        "read state not recorded"
    );
    say(format!(
        "✓ bob has seen them: his read receipt travels end-to-end encrypted (the server sees a message like any other); alice's history marks {count} messages read"
    ));
    Ok(())
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The next attachment message of `client`.
async fn next_attachment(client: &mut Client) -> Result<StoredMessage> {
    next_matching(client, "an attachment", |event| match event {
        ClientEvent::Message(message) if message.kind == "attachment" => Some(message),
        _ => None,
    })
    .await
}

/// A 1 MiB file from alice to bob through the blob store; then a second one whose stored
/// blob is altered on the server's disk, refused by bob's client before anything is written.
pub async fn attachment(dir: &Path, blobs: &Path, alice: &Client, bob: &mut Client) -> Result<()> {
    let outbox = dir.join("alice-files");
    let downloads = dir.join("bob-downloads");
    for folder in [&outbox, &downloads] {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    let file: Vec<u8> = (0..ATTACHMENT_SIZE).map(|i| (i % 251) as u8).collect();
    let path = outbox.join("report.pdf");
    std::fs::write(&path, &file).context("writing the demo file")?;
    let mut uploaded = 0;
    alice
        .send_attachment(BOB, &path, |progress| uploaded = progress.total)
        .await?;
    say(format!(
        "alice encrypts report.pdf ({ATTACHMENT_SIZE} bytes) with fresh keys as a stream, uploads the {uploaded}-byte blob in chunks, and sends its pointer (keys, digest) in an encrypted message"
    ));
    let message = next_attachment(bob).await?;
    let saved = bob.save_attachment(message.id, &downloads, |_| {}).await?;
    let received = std::fs::read(&saved.path).context("reading the saved file")?;
    ensure!(received == file, "the saved attachment differs");
    say(format!(
        "✓ bob downloads the blob, checks digest and MAC before decrypting, and saves {}: identical",
        saved
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));

    let before = files_under(blobs);
    let second = outbox.join("invoice.pdf");
    std::fs::write(&second, &file[..10_000]).context("writing the demo file")?;
    alice.send_attachment(BOB, &second, |_| {}).await?;
    let fresh: Vec<PathBuf> = files_under(blobs)
        .into_iter()
        .filter(|file| !before.contains(file))
        .collect();
    ensure!(!fresh.is_empty(), "no new blob on the server's disk");
    for chunk in &fresh {
        let mut stored = std::fs::read(chunk).context("reading a stored blob")?;
        let middle = stored.len() / 2;
        if let Some(byte) = stored.get_mut(middle) {
            *byte ^= 1;
        }
        std::fs::write(chunk, stored).context("altering a stored blob")?;
    }
    say("mallory, with access to the server's disk, flips one bit of the next blob alice sends");
    let message = next_attachment(bob).await?;
    match bob.save_attachment(message.id, &downloads, |_| {}).await {
        Ok(_) => bail!("an altered attachment was accepted"),
        Err(error @ (AttachmentError::MacMismatch | AttachmentError::DigestMismatch)) => {
            say(format!(
                "✓ bob's client refuses it: {error}; nothing was saved"
            ));
        }
        Err(error) => return Err(error.into()),
    }
    ensure!(
        !downloads.join("invoice.pdf").exists(),
        "the altered attachment was written"
    );
    Ok(())
}

/// Alice calls bob: the offer and the answer are encrypted messages through the server; the
/// audio is SRTP over UDP on 127.0.0.1.
pub async fn call(alice: &mut Client, bob: &mut Client) -> Result<()> {
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let caller = UdpSocket::bind(localhost)
        .await
        .context("binding a UDP socket")?;
    let answerer = UdpSocket::bind(localhost)
        .await
        .context("binding a UDP socket")?;
    let (invitation, outgoing) = call::start_call(&mut rand::rng(), caller.local_addr()?)?;
    alice.send_call_offer(BOB, &invitation).await?;
    let call_id = invitation.call_id();
    drop(invitation);
    say(format!(
        "alice draws a 32-byte SRTP master secret for call {call_id:016x} and sends it, with her UDP address, in an encrypted message"
    ));
    let (caller_address, offer) = next_matching(bob, "a call offer", |event| match event {
        ClientEvent::CallOffer {
            sender, invitation, ..
        } => Some((sender, invitation)),
        _ => None,
    })
    .await?;
    ensure!(
        caller_address == ALICE && offer.call_id() == call_id,
        "bob received another call"
    );
    let incoming = offer.answer();
    drop(offer);
    bob.send_call_answer(ALICE, call_id, answerer.local_addr()?, true)
        .await?;
    let accepted = next_matching(alice, "a call answer", |event| match event {
        ClientEvent::CallAnswered {
            sender,
            call_id: answered,
            accepted,
            ..
        } if sender == BOB && answered == call_id => Some(accepted),
        _ => None,
    })
    .await?;
    ensure!(accepted, "bob declined the call");
    say(
        "✓ bob's client decrypts the offer, derives the SRTP keys (AES_CM_128_HMAC_SHA1_80, one per direction) and answers with an encrypted message",
    );
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
        "✓ bob's authenticated SRTP \"ready\" reaches alice; {} SRTP packets over UDP: the received audio equals the sent audio ({} bytes)",
        report.audio_packets,
        sent.to_bytes().len()
    ));
    Ok(())
}
