//! `confianza demo`: the whole trust story in one process, narrated.
//!
//! Everything here is the real code of the protocol and PKI crates; what the server and the
//! network add (mailboxes, fan-out, the Noise link, UDP media) arrives with the server and the
//! client, and the demo says so where it stands in for them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Args as ClapArgs;
use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole, IssuerUrls};
use confianza_pki::crl::{CrlParams, RevocationReason, build_crl};
use confianza_pki::csr::{self, IdentityRequest};
use confianza_pki::path::{self, CrlSet, ExpectedName, PathOptions, RevocationOptions};
use confianza_pki::profile::{CertificateKind, SubjectName};
use confianza_pki::ra::{Actor, PendingRequest, RaOfficer, RaPolicy, RaScope};
use confianza_pki::signer::{CaAlgorithm, CaKey};
use confianza_protocol::attachment::{AttachmentEncryptor, AttachmentKeys, AttachmentVerifier};
use confianza_protocol::call::{CallKeyMessage, CallMasterSecret, CallRole, CallSrtpKeys};
use confianza_protocol::fingerprint::{Fingerprint, Iterations, Party, ScannableVersion};
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::message::{CiphertextMessage, PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::{
    InMemoryPreKeys, KyberPreKeyPublic, KyberPreKeyRecord, PreKeyBundle, SignedPreKeyRecord,
};
use confianza_protocol::sender_keys::{
    DistributionId, SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord,
};
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use confianza_protocol::xeddsa;
use der::{Decode, Encode};
use rand::rngs::ThreadRng;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

#[derive(ClapArgs)]
pub struct Args {}

const ORG: &str = "Example Org";
const DAY: Duration = Duration::from_secs(86_400);

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

/// The organisation's PKI: root, online intermediate, one RA officer.
struct Pki {
    root: Issuer,
    intermediate: Issuer,
    officer: RaOfficer,
    policy: RaPolicy,
    issued: Vec<IssuedCertificate>,
}

fn urls(name: &str) -> IssuerUrls {
    IssuerUrls {
        crl: format!("http://pki.example.org/{name}.crl"),
        ocsp: "http://pki.example.org/ocsp".into(),
        ca_issuers: format!("http://pki.example.org/{name}.crt"),
    }
}

impl Pki {
    fn create(now: SystemTime, rng: &mut ThreadRng) -> Result<Self> {
        let root = Issuer::new_root(
            CaKey::generate(CaAlgorithm::Ed25519, rng)?,
            "Example Org Root CA",
            Some(ORG),
            now,
            None,
            rng,
        )?
        .with_urls(urls("root"))?;
        let intermediate_key = CaKey::generate(CaAlgorithm::Ed25519, rng)?;
        let template = csr::intermediate_template(
            intermediate_key.public_key_info_der(),
            "Example Org Issuing CA",
        )?;
        let approved =
            confianza_pki::ra::ApprovedRequest::by_ca_operator(0, template, "operator", now);
        let issued = root.issue(approved, now, rng)?;
        let intermediate = Issuer::from_certificate(
            intermediate_key,
            &issued.der,
            IssuerRole::Intermediate,
            Some(urls("issuing")),
        )?;

        // The RA officer's own credential, from a real PKCS#10 request.
        let officer_key = ed25519_dalek::SigningKey::generate(rng);
        let request = officer_csr("ra.officer@example.org", &officer_key)?;
        let template = csr::parse_csr(&request)?.into_template(CertificateKind::RaOfficer)?;
        let approved =
            confianza_pki::ra::ApprovedRequest::by_ca_operator(1, template, "operator", now);
        let credential = intermediate.issue(approved, now, rng)?;
        let officer = RaOfficer::from_credential(
            &credential.der,
            intermediate.certificate_der(),
            now,
            RaScope {
                kinds: vec![CertificateKind::UserIdentity],
                domains: vec!["example.org".into()],
            },
        )?;
        Ok(Self {
            root,
            intermediate,
            officer,
            policy: RaPolicy::for_domains(&["example.org"]),
            issued: Vec::new(),
        })
    }

    /// RA enrollment: the officer makes a code after checking the person; the person's client
    /// proves possession of its identity key with XEdDSA over a fresh challenge and presents
    /// the code; the RA approves automatically and the CA issues.
    fn enroll(
        &mut self,
        address: &str,
        identity: &IdentityKeyPair,
        now: SystemTime,
        rng: &mut ThreadRng,
    ) -> Result<Vec<u8>> {
        let name = SubjectName::address(address)?;
        let (code, mut stored) = self.officer.create_enrollment_code(
            &name,
            CertificateKind::UserIdentity,
            7 * DAY,
            now,
            rng,
        )?;
        let mut challenge = [0u8; 32];
        rand::Rng::fill_bytes(rng, &mut challenge);
        let message = csr::identity_pop_message(address, &challenge);
        let request = IdentityRequest {
            identity_key: *identity.identity_key().public_key().u(),
            address,
            challenge: &challenge,
            signature: identity.sign(&message, rng),
        };
        let verified = csr::verify_identity_request(&request, xeddsa::verify)?;
        let pending = PendingRequest::submit(
            self.issued.len() as u64 + 10,
            verified.into_template()?,
            Actor::Requester,
            now,
        );
        let redeemed = stored.redeem(code.as_str(), now)?;
        let approved = pending
            .approve_with_code(redeemed, &self.policy, now)
            .map_err(|refused| anyhow!("RA refused: {}", refused.error))?;
        let issued = self.intermediate.issue(approved, now, rng)?;
        say(format!(
            "{address:<20} code {}…  proof of possession ✓  certificate serial {}",
            &code.as_str()[..4],
            issued.serial
        ));
        let der = issued.der.clone();
        self.issued.push(issued);
        Ok(der)
    }
}

fn officer_csr(address: &str, key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>> {
    use std::str::FromStr;
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let subject = x509_cert::name::Name::from_str(&format!("CN={address}"))?;
    let mut builder = RequestBuilder::new(subject)?;
    builder.add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
        der::asn1::Ia5String::new(address)?,
    )]))?;
    let request = builder.build::<_, ed25519_dalek::Signature>(key)?;
    Ok(request.to_der()?)
}

/// A user's device: identity, pre-keys, certificate, sessions, sender keys.
struct User {
    address: &'static str,
    identity: IdentityKeyPair,
    certificate: Vec<u8>,
    keys: InMemoryPreKeys,
    sessions: HashMap<&'static str, SessionRecord>,
    /// Sender keys by (sender, group).
    sender_keys: HashMap<(&'static str, DistributionId), SenderKeyRecord>,
}

/// What the directory hands out: a bundle and the certificate for its identity key.
struct Published {
    bundle: PreKeyBundle,
    certificate: Vec<u8>,
}

impl User {
    fn new(
        address: &'static str,
        pki: &mut Pki,
        now: SystemTime,
        rng: &mut ThreadRng,
    ) -> Result<Self> {
        let identity = IdentityKeyPair::generate(rng);
        let certificate = pki.enroll(address, &identity, now, rng)?;
        let mut keys = InMemoryPreKeys::generate(&identity, unix(now), rng);
        for id in 1..=5 {
            keys.add_one_time(id, rng);
        }
        Ok(Self {
            address,
            identity,
            certificate,
            keys,
            sessions: HashMap::new(),
            sender_keys: HashMap::new(),
        })
    }

    fn publish(&self) -> Result<Published> {
        let one_time = self.keys.one_time.keys().min().copied();
        let bundle = self
            .keys
            .bundle(&self.identity, 1, 1, one_time, true)
            .context("no signed pre-key")?;
        Ok(Published {
            bundle,
            certificate: self.certificate.clone(),
        })
    }

    fn send(
        &mut self,
        to: &'static str,
        text: &[u8],
        now: SystemTime,
    ) -> Result<CiphertextMessage> {
        let record = self.sessions.get_mut(to).context("no session")?;
        Ok(session::encrypt(
            record,
            text,
            EncryptOptions::default(),
            unix(now),
        )?)
    }

    /// Receives a message of Signal's ciphertext type `kind` (2 Whisper, 3 PreKey).
    fn receive_bytes(
        &mut self,
        from: &'static str,
        kind: u8,
        message: &[u8],
        rng: &mut ThreadRng,
    ) -> Result<Vec<u8>> {
        if kind == 3 {
            let prekey = PreKeySignalMessage::deserialize(message)?;
            let mut record = self.sessions.remove(from).unwrap_or_default();
            let outcome = session::decrypt_pre_key(
                &mut record,
                &self.identity,
                1,
                &self.keys,
                &prekey,
                None,
                rng,
            );
            self.sessions.insert(from, record);
            let outcome = outcome?;
            self.keys.consume(&outcome);
            return Ok(outcome.plaintext);
        }
        let message = SignalMessage::deserialize(message)?;
        let record = self.sessions.get_mut(from).context("no session")?;
        Ok(session::decrypt(record, &message, None, rng)?)
    }

    fn receive(
        &mut self,
        from: &'static str,
        message: &CiphertextMessage,
        rng: &mut ThreadRng,
    ) -> Result<Vec<u8>> {
        self.receive_bytes(from, message.type_number(), message.serialized(), rng)
    }
}

/// Alice's client checking a bundle before any session: the certificate chains to the pinned
/// root, names the expected address, is not revoked, and certifies exactly the bundle's identity
/// key; then the pre-key signatures.
fn check_bundle(
    published: &Published,
    expected_address: &str,
    root: &[u8],
    intermediate: &[u8],
    crls: &CrlSet,
    now: SystemTime,
) -> Result<confianza_protocol::prekeys::VerifiedPreKeyBundle> {
    let leaf = path::parse_certificate(&published.certificate)?;
    let anchors = [path::parse_certificate(root)?];
    let intermediates = [path::parse_certificate(intermediate)?];
    let options = PathOptions {
        expected_names: vec![ExpectedName::Email(expected_address.into())],
        revocation: RevocationOptions {
            sources: vec![crls],
            ..RevocationOptions::default()
        },
        ..PathOptions::default()
    };
    let now = now.duration_since(SystemTime::UNIX_EPOCH)?;
    path::validate(&leaf, &intermediates, &anchors, now, &options)
        .map_err(|e| anyhow!("certificate refused: {e}"))?;
    let cert = Certificate::from_der(&published.certificate)?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let certified = spki.subject_public_key.raw_bytes();
    ensure!(
        certified == published.bundle.identity_key.public_key().u(),
        "the bundle's identity key is not the certified key of {expected_address}"
    );
    Ok(published.bundle.clone().verify()?)
}

fn fingerprint_of(local: &User, remote: &User) -> Result<Fingerprint> {
    Ok(Fingerprint::new(
        ScannableVersion::V2,
        Iterations::DEFAULT,
        Party {
            stable_id: local.address.as_bytes(),
            identity_key: &local.identity.identity_key().serialize(),
        },
        Party {
            stable_id: remote.address.as_bytes(),
            identity_key: &remote.identity.identity_key().serialize(),
        },
    ))
}

pub fn run(_args: &Args) -> Result<()> {
    let started = std::time::Instant::now();
    let mut rng = rand::rng();
    let now = SystemTime::now();
    println!("Confianza demo: messaging whose identity keys are certified by the organisation.");

    section(
        1,
        "The organisation's CA: an offline-capable root and an online issuing CA",
    );
    let mut pki = Pki::create(now, &mut rng)?;
    let root_der = pki.root.certificate_der().to_vec();
    let intermediate_der = pki.intermediate.certificate_der().to_vec();
    say("root CA      Ed25519, \"Example Org Root CA\"");
    say("issuing CA   Ed25519, signed by the root");
    say(format!(
        "root fingerprint (SHA-256, compare out of band): {}",
        hex(&Sha256::digest(&root_der))
    ));

    section(2, "The Registration Authority enrolls alice, bob and carol");
    let mut alice = User::new("alice@example.org", &mut pki, now, &mut rng)?;
    let mut bob = User::new("bob@example.org", &mut pki, now, &mut rng)?;
    let mut carol = User::new("carol@example.org", &mut pki, now, &mut rng)?;
    let no_crls = CrlSet::new(Vec::new());

    section(3, "A man in the middle hands alice a forged bundle for bob");
    let mallory = IdentityKeyPair::generate(&mut rng);
    let mut forged = bob.publish()?;
    forged.bundle.identity_key = *mallory.identity_key();
    let spk = SignedPreKeyRecord::generate(9, &mallory, unix(now), &mut rng);
    let kyber = KyberPreKeyRecord::generate(9, &mallory, unix(now), &mut rng);
    forged.bundle.signed_pre_key = spk.key_pair.public;
    forged.bundle.signed_pre_key_signature = spk.signature.to_vec();
    forged.bundle.kyber_pre_key = Some(KyberPreKeyPublic {
        id: 9,
        key: kyber.key_pair.public.clone(),
        signature: kyber.signature.to_vec(),
    });
    say("its pre-keys are correctly signed — by mallory's key");
    match check_bundle(
        &forged,
        bob.address,
        &root_der,
        &intermediate_der,
        &no_crls,
        now,
    ) {
        Ok(_) => bail!("a forged bundle was accepted"),
        Err(e) => say(format!("refused: {e}")),
    }
    say("mallory runs her own CA and enrolls \"bob\" there:");
    let rogue = Pki::create(now, &mut rng)?;
    let mut forged_cert = bob.publish()?;
    forged_cert.certificate = {
        let mut rogue = rogue;
        rogue.enroll("bob@example.org", &mallory, now, &mut rng)?
    };
    forged_cert.bundle.identity_key = *mallory.identity_key();
    match check_bundle(
        &forged_cert,
        bob.address,
        &root_der,
        &intermediate_der,
        &no_crls,
        now,
    ) {
        Ok(_) => bail!("a certificate from another CA was accepted"),
        Err(e) => say(format!(
            "with a certificate from mallory's own CA: refused: {e}"
        )),
    }

    section(
        4,
        "Alice checks bob's real bundle and sets up a PQXDH session (version 4)",
    );
    let verified = check_bundle(
        &bob.publish()?,
        bob.address,
        &root_der,
        &intermediate_der,
        &no_crls,
        now,
    )?;
    say("certificate chains to the pinned root, names bob@example.org, certifies the bundle's key");
    let record = alice.sessions.entry(bob.address).or_default();
    session::process_bundle(record, &alice.identity, 1, &verified, unix(now), &mut rng)?;

    section(
        5,
        "Messages delivered out of order, a replay and a forgery refused",
    );
    let texts: Vec<String> = (1..=5).map(|i| format!("message {i}")).collect();
    let mut sent = Vec::new();
    for text in &texts {
        sent.push(alice.send(bob.address, text.as_bytes(), now)?);
    }
    for i in [3usize, 0, 4, 2, 1] {
        let plaintext = bob.receive(alice.address, &sent[i], &mut rng)?;
        ensure!(plaintext == texts[i].as_bytes(), "wrong plaintext");
        say(format!(
            "bob reads #{} ({} bytes on the wire, first byte {:#04x}): {}",
            i + 1,
            sent[i].serialized().len(),
            sent[i].serialized()[0],
            texts[i]
        ));
    }
    let reply = bob.send(alice.address, b"got all five", now)?;
    say(format!(
        "alice reads: {}",
        String::from_utf8_lossy(&alice.receive(bob.address, &reply, &mut rng)?)
    ));
    let again = bob.receive(alice.address, &sent[2], &mut rng);
    say(format!(
        "replay of #3: {}",
        again.err().map(|e| e.to_string()).unwrap_or_default()
    ));
    let forged = alice.send(bob.address, b"pay mallory", now)?;
    let mut tampered = forged.serialized().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    say(format!(
        "a flipped bit: {}",
        bob.receive_bytes(alice.address, forged.type_number(), &tampered, &mut rng)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    ));

    section(
        6,
        "A group with sender keys: one ciphertext for all members",
    );
    let group = DistributionId::random(&mut rng);
    // Sessions between every pair carry the distribution messages.
    for (a, b) in [(0usize, 2usize), (1, 2)] {
        let users = [&mut alice, &mut bob, &mut carol];
        let published = users[b].publish()?;
        let address_b = users[b].address;
        let address_a = users[a].address;
        let verified = check_bundle(
            &published,
            address_b,
            &root_der,
            &intermediate_der,
            &no_crls,
            now,
        )?;
        let record = users[a].sessions.entry(address_b).or_default();
        session::process_bundle(
            record,
            &users[a].identity,
            1,
            &verified,
            unix(now),
            &mut rng,
        )?;
        let hello = users[a].send(address_b, b"hello", now)?;
        users[b].receive(address_a, &hello, &mut rng)?;
        let reply = users[b].send(address_a, b"hello", now)?;
        users[a].receive(address_b, &reply, &mut rng)?;
    }
    let members = [alice.address, bob.address, carol.address];
    distribute(
        &mut [&mut alice, &mut bob, &mut carol],
        group,
        &members,
        now,
        &mut rng,
    )?;
    let message = alice
        .sender_keys
        .get_mut(&(alice.address, group))
        .context("own sender key")?
        .encrypt(group, b"lunch at noon?", &mut rng)?;
    say(format!(
        "alice sends one {}-byte ciphertext; the fan-out copies it to each member",
        message.serialized().len()
    ));
    for member in [&mut bob, &mut carol] {
        let record = member
            .sender_keys
            .get_mut(&(alice.address, group))
            .context("sender key")?;
        let plaintext = record.decrypt(&SenderKeyMessage::deserialize(message.serialized())?)?;
        say(format!(
            "{} reads: {}",
            member.address,
            String::from_utf8_lossy(&plaintext)
        ));
    }
    say("carol leaves: everyone drops their sender keys and distributes new ones to who remains");
    for member in [&mut alice, &mut bob] {
        member.sender_keys.retain(|(_, g), _| *g != group);
    }
    distribute(
        &mut [&mut alice, &mut bob],
        group,
        &members[..2],
        now,
        &mut rng,
    )?;
    let after = alice
        .sender_keys
        .get_mut(&(alice.address, group))
        .context("own sender key")?
        .encrypt(group, b"carol has left", &mut rng)?;
    let bob_reads = bob
        .sender_keys
        .get_mut(&(alice.address, group))
        .context("sender key")?
        .decrypt(&SenderKeyMessage::deserialize(after.serialized())?)?;
    say(format!(
        "bob reads: {}",
        String::from_utf8_lossy(&bob_reads)
    ));
    let carol_reads = carol
        .sender_keys
        .get_mut(&(alice.address, group))
        .context("old sender key")?
        .decrypt(&SenderKeyMessage::deserialize(after.serialized())?);
    ensure!(carol_reads.is_err(), "carol read a message after leaving");
    say(format!(
        "carol, with the old key: {}",
        carol_reads.err().map(|e| e.to_string()).unwrap_or_default()
    ));

    section(
        7,
        "An attachment: 1 MiB, streamed through AES-256-CBC + HMAC-SHA256",
    );
    let file: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let keys = AttachmentKeys::generate(&mut rng);
    let mut encryptor = AttachmentEncryptor::new(&keys, &mut rng);
    let mut blob = Vec::new();
    for chunk in file.chunks(64 * 1024) {
        encryptor.update(chunk, &mut blob)?;
    }
    let encrypted = encryptor.finish(&mut blob);
    say(format!(
        "blob {} bytes, SHA-256 digest {}…",
        blob.len(),
        &hex(&encrypted.digest)[..16]
    ));
    let mut verifier = AttachmentVerifier::new(keys.clone(), blob.len() as u64, encrypted.digest)?;
    for chunk in blob.chunks(64 * 1024) {
        verifier.update(chunk)?;
    }
    let mut decryptor = verifier.finish()?.into_decryptor();
    let mut received = Vec::new();
    for chunk in blob.chunks(64 * 1024) {
        decryptor.update(chunk, &mut received)?;
    }
    decryptor.finish()?;
    ensure!(received == file, "attachment changed");
    say("bob verified digest and MAC before decrypting: identical file");
    blob[1000] ^= 1;
    let mut verifier = AttachmentVerifier::new(keys, blob.len() as u64, encrypted.digest)?;
    let tampered = blob
        .chunks(64 * 1024)
        .try_for_each(|c| verifier.update(c))
        .and_then(|()| verifier.finish().map(|_| ()));
    say(format!(
        "one flipped bit in the blob: {}",
        tampered.err().map(|e| e.to_string()).unwrap_or_default()
    ));

    section(
        8,
        "Safety numbers: no CA needed for users who compare in person",
    );
    let at_alice = fingerprint_of(&alice, &bob)?;
    let at_bob = fingerprint_of(&bob, &alice)?;
    ensure!(
        at_alice.displayable().to_string() == at_bob.displayable().to_string(),
        "safety numbers differ"
    );
    let digits = at_alice.displayable().to_string();
    for line in digits.as_bytes().chunks(20) {
        let line = std::str::from_utf8(line).unwrap_or_default();
        let groups: Vec<&str> = (0..line.len())
            .step_by(5)
            .map(|i| &line[i..(i + 5).min(line.len())])
            .collect();
        say(groups.join(" "));
    }
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
    say(format!(
        "bob scans alice's QR code ({} bytes): {}",
        scanned.len(),
        if matches { "match" } else { "MISMATCH" }
    ));
    ensure!(matches, "scannable fingerprints differ");

    section(
        9,
        "A call: the SRTP master secret travels in an encrypted message",
    );
    let secret = CallMasterSecret::generate(&mut rng);
    let offer = CallKeyMessage::new(42, secret);
    let carried = alice.send(bob.address, offer.encode().as_ref(), now)?;
    let opened = CallKeyMessage::decode(&bob.receive(alice.address, &carried, &mut rng)?)?;
    let caller = CallSrtpKeys::derive(&offer, CallRole::Caller);
    let callee = CallSrtpKeys::derive(&opened, CallRole::Callee);
    ensure!(
        caller.send.ct_eq(&callee.receive) && caller.receive.ct_eq(&callee.send),
        "SRTP keys differ"
    );
    say(
        "both sides derived the same SRTP master keys and salts (AES_CM_128_HMAC_SHA1_80), one pair per direction",
    );

    section(10, "Revocation: bob's key is compromised");
    let bob_issued = pki
        .issued
        .iter()
        .find(|c| c.names.iter().any(|n| n.as_str() == bob.address))
        .context("bob's certificate")?;
    let revocation = pki
        .officer
        .revoke(bob_issued, RevocationReason::KeyCompromise, now)?;
    let crl = build_crl(
        &pki.intermediate,
        &CrlParams::new(1, now),
        &[revocation.entry()],
    )?;
    say(format!(
        "the RA revokes serial {} (keyCompromise); CRL #1 lists it ({} bytes)",
        revocation.serial,
        crl.len()
    ));
    let crls = CrlSet::new(vec![path::parse_crl(&crl)?]);
    match check_bundle(
        &bob.publish()?,
        bob.address,
        &root_der,
        &intermediate_der,
        &crls,
        now + Duration::from_secs(1),
    ) {
        Ok(_) => bail!("a revoked identity was accepted"),
        Err(e) => say(format!("carol tries to start a session with bob: {e}")),
    }

    println!(
        "\nDone in {:.1} s: every check above passed.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every member creates (or reuses) its sender key for `group` and sends the distribution
/// message to every other member through their 1:1 sessions.
fn distribute(
    users: &mut [&mut User],
    group: DistributionId,
    members: &[&'static str],
    now: SystemTime,
    rng: &mut ThreadRng,
) -> Result<()> {
    for i in 0..users.len() {
        let sender = users[i].address;
        let skdm = users[i]
            .sender_keys
            .entry((sender, group))
            .or_default()
            .create_distribution(group, rng);
        for j in 0..users.len() {
            if i == j || !members.contains(&users[j].address) {
                continue;
            }
            let receiver = users[j].address;
            // The distribution message travels inside the pairwise session when there is one.
            let bytes = match users[i].sessions.get(receiver) {
                Some(_) => {
                    let wrapped = users[i].send(receiver, skdm.serialized(), now)?;
                    users[j].receive(sender, &wrapped, rng)?
                }
                None => skdm.serialized().to_vec(),
            };
            let parsed = SenderKeyDistributionMessage::deserialize(&bytes)?;
            users[j]
                .sender_keys
                .entry((sender, group))
                .or_default()
                .process_distribution(&parsed);
        }
    }
    Ok(())
}
