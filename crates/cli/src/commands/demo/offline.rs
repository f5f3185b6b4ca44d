//! The acts the client library cannot show through the server yet, run on the protocol crate
//! in process: deliveries reordered on purpose (the server delivers in order), a replay and a
//! forgery, and the streamed attachment encryption (no blob-store client API yet).

use std::time::SystemTime;

use anyhow::{Context, Result, ensure};
use confianza_protocol::attachment::{AttachmentEncryptor, AttachmentKeys, AttachmentVerifier};
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::message::{CiphertextMessage, PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::InMemoryPreKeys;
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use rand::rngs::ThreadRng;

use super::{hex, say, unix};

/// Size of the demo attachment.
const ATTACHMENT_SIZE: u32 = 1024 * 1024;
/// Chunk size of the streamed attachment encryption.
const CHUNK: usize = 64 * 1024;
/// Registration id of the in-process devices.
const REGISTRATION_ID: u32 = 1;

/// One device with its keys and its session with the other.
struct Device {
    identity: IdentityKeyPair,
    keys: InMemoryPreKeys,
    session: SessionRecord,
}

impl Device {
    fn new(now: SystemTime, rng: &mut ThreadRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let mut keys = InMemoryPreKeys::generate(&identity, unix(now), rng);
        keys.add_one_time(1, rng);
        Self {
            identity,
            keys,
            session: SessionRecord::new(),
        }
    }

    fn send(&mut self, text: &[u8], now: SystemTime) -> Result<CiphertextMessage> {
        Ok(session::encrypt(
            &mut self.session,
            text,
            EncryptOptions::default(),
            unix(now),
        )?)
    }

    /// Receives a message of Signal's ciphertext type `kind` (2 Whisper, 3 PreKey).
    fn receive_bytes(&mut self, kind: u8, message: &[u8], rng: &mut ThreadRng) -> Result<Vec<u8>> {
        if kind == 3 {
            let prekey = PreKeySignalMessage::deserialize(message)?;
            let outcome = session::decrypt_pre_key(
                &mut self.session,
                &self.identity,
                REGISTRATION_ID,
                &self.keys,
                &prekey,
                None,
                rng,
            )?;
            self.keys.consume(&outcome);
            return Ok(outcome.plaintext);
        }
        let message = SignalMessage::deserialize(message)?;
        Ok(session::decrypt(&mut self.session, &message, None, rng)?)
    }

    fn receive(&mut self, message: &CiphertextMessage, rng: &mut ThreadRng) -> Result<Vec<u8>> {
        self.receive_bytes(message.type_number(), message.serialized(), rng)
    }
}

/// A PQXDH session between two in-process devices.
pub struct Pair {
    sender: Device,
    receiver: Device,
}

impl Pair {
    /// The receiver publishes a bundle (signatures checked), the sender sets up the session.
    pub fn new(now: SystemTime, rng: &mut ThreadRng) -> Result<Self> {
        let mut sender = Device::new(now, rng);
        let receiver = Device::new(now, rng);
        let bundle = receiver
            .keys
            .bundle(&receiver.identity, REGISTRATION_ID, 1, Some(1), true)
            .context("no signed prekey")?
            .verify()?;
        session::process_bundle(
            &mut sender.session,
            &sender.identity,
            REGISTRATION_ID,
            &bundle,
            unix(now),
            rng,
        )?;
        Ok(Self { sender, receiver })
    }

    /// Encrypts `payload` at the sender and decrypts it at the receiver.
    pub fn carry(
        &mut self,
        payload: &[u8],
        now: SystemTime,
        rng: &mut ThreadRng,
    ) -> Result<Vec<u8>> {
        let message = self.sender.send(payload, now)?;
        self.receiver.receive(&message, rng)
    }

    /// Five messages read in the order 4, 1, 5, 3, 2; a replay and a flipped bit refused.
    pub fn out_of_order(&mut self, now: SystemTime, rng: &mut ThreadRng) -> Result<()> {
        let texts: Vec<String> = (1..=5).map(|i| format!("message {i}")).collect();
        let mut sent = Vec::new();
        for text in &texts {
            sent.push(self.sender.send(text.as_bytes(), now)?);
        }
        for i in [3usize, 0, 4, 2, 1] {
            let plaintext = self.receiver.receive(&sent[i], rng)?;
            ensure!(
                plaintext == texts[i].as_bytes(),
                "message {} changed",
                i + 1
            );
            say(format!(
                "✓ bob reads #{} ({} bytes on the wire): {}",
                i + 1,
                sent[i].serialized().len(),
                texts[i]
            ));
        }
        let replay = self.receiver.receive(&sent[2], rng);
        let Err(error) = replay else {
            anyhow::bail!("a replayed message was accepted");
        };
        say(format!("✓ replay of #3 refused: {error}"));
        // A reply completes the handshake, so what follows is a plain Signal message whose
        // last bytes are its MAC.
        let reply = self.receiver.send(b"got all five", now)?;
        let read = self.sender.receive(&reply, rng)?;
        say(format!(
            "✓ alice reads the reply: {}",
            String::from_utf8_lossy(&read)
        ));
        let forged = self.sender.send(b"pay mallory", now)?;
        let mut tampered = forged.serialized().to_vec();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        let Err(error) = self
            .receiver
            .receive_bytes(forged.type_number(), &tampered, rng)
        else {
            anyhow::bail!("a tampered message was accepted");
        };
        say(format!("✓ a flipped bit refused: {error}"));
        Ok(())
    }
}

/// A 1 MiB file streamed through AES-256-CBC + HMAC-SHA256; digest and MAC checked before
/// decryption; a flipped bit refused.
pub fn attachment(rng: &mut ThreadRng) -> Result<()> {
    let file: Vec<u8> = (0..ATTACHMENT_SIZE).map(|i| (i % 251) as u8).collect();
    let keys = AttachmentKeys::generate(rng);
    let mut encryptor = AttachmentEncryptor::new(&keys, rng);
    let mut blob = Vec::new();
    for chunk in file.chunks(CHUNK) {
        encryptor.update(chunk, &mut blob)?;
    }
    let encrypted = encryptor.finish(&mut blob);
    say(format!(
        "blob {} bytes, SHA-256 digest {}…",
        blob.len(),
        &hex(&encrypted.digest)[..16]
    ));
    let mut verifier = AttachmentVerifier::new(keys.clone(), blob.len() as u64, encrypted.digest)?;
    for chunk in blob.chunks(CHUNK) {
        verifier.update(chunk)?;
    }
    let mut decryptor = verifier.finish()?.into_decryptor();
    let mut received = Vec::new();
    for chunk in blob.chunks(CHUNK) {
        decryptor.update(chunk, &mut received)?;
    }
    decryptor.finish()?;
    ensure!(received == file, "the attachment changed");
    say("✓ bob verified digest and MAC before decrypting: identical file");
    if let Some(byte) = blob.get_mut(1000) {
        *byte ^= 1;
    }
    let mut verifier = AttachmentVerifier::new(keys, blob.len() as u64, encrypted.digest)?;
    let tampered = blob
        .chunks(CHUNK)
        .try_for_each(|c| verifier.update(c))
        .and_then(|()| verifier.finish().map(|_| ()));
    let Err(error) = tampered else {
        anyhow::bail!("a tampered attachment was accepted");
    };
    say(format!("✓ one flipped bit in the blob refused: {error}"));
    Ok(())
}
