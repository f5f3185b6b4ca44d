//! `confianza-peer`: one Signal-protocol party with in-memory state, driven by JSON lines on
//! standard input (one request per line, one reply per line). See `shared/protocol/PEER.md`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use confianza_protocol::address::{ProtocolAddress, address_binding};
use confianza_protocol::fingerprint::{Fingerprint, Iterations, Party, ScannableVersion};
use confianza_protocol::kem::KemPublicKey;
use confianza_protocol::keys::{IdentityKey, IdentityKeyPair, PublicKey};
use confianza_protocol::message::{PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::{InMemoryPreKeys, KyberPreKeyPublic, PreKeyBundle};
use confianza_protocol::sender_keys::{
    DistributionId, SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord,
};
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use serde_json::{Value, json};

/// A request the peer refuses, with the name of the error kind.
struct Failure {
    name: String,
    message: String,
    unsupported: bool,
}

impl Failure {
    fn new(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            message: message.into(),
            unsupported: false,
        }
    }

    /// From a library error: the name is the enum variant.
    fn from_error<E: std::fmt::Debug + std::fmt::Display>(e: E) -> Self {
        let debug = format!("{e:?}");
        let name = debug
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or("Error");
        Self::new(name, e.to_string())
    }
}

type Reply = Result<Value, Failure>;

struct Options {
    kyber: bool,
    legacy_version_byte: bool,
}

/// The local account: identity, pre-keys, and what we know of others.
struct Account {
    name: String,
    device_id: u32,
    registration_id: u32,
    identity: IdentityKeyPair,
    keys: InMemoryPreKeys,
    next_pre_key_id: u32,
}

struct Peer {
    options: Options,
    account: Option<Account>,
    /// Trust on first use: the identity key seen for each name.
    identities: HashMap<String, IdentityKey>,
    sessions: HashMap<(String, u32), SessionRecord>,
    /// Sender keys by (sender name, sender device, distribution id); ours included.
    sender_keys: HashMap<(String, u32, DistributionId), SenderKeyRecord>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn field<'a>(request: &'a Value, name: &str) -> Result<&'a Value, Failure> {
    request
        .get(name)
        .ok_or_else(|| Failure::new("BadRequest", format!("missing field {name:?}")))
}

fn text<'a>(request: &'a Value, name: &str) -> Result<&'a str, Failure> {
    field(request, name)?
        .as_str()
        .ok_or_else(|| Failure::new("BadRequest", format!("field {name:?} must be a string")))
}

fn number(request: &Value, name: &str) -> Result<u32, Failure> {
    field(request, name)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Failure::new("BadRequest", format!("field {name:?} must be a u32")))
}

fn bytes(request: &Value, name: &str) -> Result<Vec<u8>, Failure> {
    B64.decode(text(request, name)?)
        .map_err(|_| Failure::new("BadRequest", format!("field {name:?} is not base64")))
}

fn device(request: &Value) -> Result<u32, Failure> {
    match request.get("device") {
        None | Some(Value::Null) => Ok(1),
        Some(_) => number(request, "device"),
    }
}

fn flag(request: &Value, name: &str) -> Option<bool> {
    request.get(name).and_then(Value::as_bool)
}

fn parse_bundle(value: &Value) -> Result<PreKeyBundle, Failure> {
    let key = |name: &str| -> Result<PublicKey, Failure> {
        PublicKey::deserialize(&bytes(value, name)?).map_err(Failure::from_error)
    };
    let pre_key = match value.get("prekey") {
        Some(Value::String(_)) => Some((number(value, "prekey_id")?, key("prekey")?)),
        _ => None,
    };
    let kyber_pre_key = match value.get("kyber_prekey") {
        Some(Value::String(_)) => Some(KyberPreKeyPublic {
            id: number(value, "kyber_prekey_id")?,
            key: KemPublicKey::deserialize(&bytes(value, "kyber_prekey")?)
                .map_err(Failure::from_error)?,
            signature: bytes(value, "kyber_prekey_signature")?,
        }),
        _ => None,
    };
    Ok(PreKeyBundle {
        registration_id: number(value, "registration_id")?,
        device_id: device(value)?,
        identity_key: IdentityKey::deserialize(&bytes(value, "identity_key")?)
            .map_err(Failure::from_error)?,
        pre_key,
        signed_pre_key_id: number(value, "signed_prekey_id")?,
        signed_pre_key: key("signed_prekey")?,
        signed_pre_key_signature: bytes(value, "signed_prekey_signature")?,
        kyber_pre_key,
    })
}

impl Peer {
    fn account(&self) -> Result<&Account, Failure> {
        self.account
            .as_ref()
            .ok_or_else(|| Failure::new("NotInitialized", "send init first"))
    }

    /// Trust on first use; a changed key for a known name is refused.
    fn check_identity(&mut self, name: &str, key: &IdentityKey) -> Result<(), Failure> {
        match self.identities.get(name) {
            Some(known) if known != key => Err(Failure::new(
                "UntrustedIdentity",
                format!("the identity key of {name} changed"),
            )),
            Some(_) => Ok(()),
            None => {
                self.identities.insert(name.to_owned(), *key);
                Ok(())
            }
        }
    }

    fn handle(&mut self, request: &Value) -> Reply {
        match text(request, "cmd")? {
            "info" => Ok(json!({
                "implementation": "confianza",
                "version": env!("CARGO_PKG_VERSION"),
                "kyber_in_bundle": self.options.kyber,
                "groups": true,
                "displayable_fingerprint": true,
                "scannable_fingerprint": true,
            })),
            "init" => self.init(request),
            "bundle" => self.bundle(request),
            "process_bundle" => self.process_bundle(request),
            "encrypt" => self.encrypt(request),
            "decrypt" => self.decrypt(request),
            "skdm" => self.skdm(request),
            "process_skdm" => self.process_skdm(request),
            "group_encrypt" => self.group_encrypt(request),
            "group_decrypt" => self.group_decrypt(request),
            "fingerprint" => fingerprint(request, self.account()?),
            "session_info" => {
                let key = (text(request, "peer")?.to_owned(), device(request)?);
                let record = self.sessions.get(&key);
                Ok(json!({
                    "exists": record.is_some(),
                    "has_current_state": record.is_some_and(SessionRecord::has_current_state),
                    "session_version": record
                        .and_then(SessionRecord::current)
                        .map(|s| s.session_version())
                        .unwrap_or(0),
                }))
            }
            "archive_session" => {
                let key = (text(request, "peer")?.to_owned(), device(request)?);
                if let Some(record) = self.sessions.get_mut(&key) {
                    record.archive_current();
                }
                Ok(json!({"ok": true}))
            }
            other => Err(Failure {
                name: "Unsupported".into(),
                message: format!("command {other:?} is not implemented"),
                unsupported: true,
            }),
        }
    }

    fn skdm(&mut self, request: &Value) -> Reply {
        let group = uuid(text(request, "group")?)?;
        let account = self.account()?;
        let key = (account.name.clone(), account.device_id, group);
        let message = self
            .sender_keys
            .entry(key)
            .or_default()
            .create_distribution(group, &mut rand::rng());
        Ok(json!({
            "body": B64.encode(message.serialized()),
            "chain_id": message.chain_id(),
            "iteration": message.iteration(),
        }))
    }

    fn process_skdm(&mut self, request: &Value) -> Reply {
        let sender = text(request, "sender")?.to_owned();
        let device_id = device(request)?;
        let message = SenderKeyDistributionMessage::deserialize(&bytes(request, "body")?)
            .map_err(Failure::from_error)?;
        self.sender_keys
            .entry((sender, device_id, message.distribution_id()))
            .or_default()
            .process_distribution(&message);
        Ok(json!({"ok": true}))
    }

    fn group_encrypt(&mut self, request: &Value) -> Reply {
        let group = uuid(text(request, "group")?)?;
        let plaintext = bytes(request, "plaintext")?;
        let account = self.account()?;
        let key = (account.name.clone(), account.device_id, group);
        let record = self.sender_keys.get_mut(&key).ok_or_else(|| {
            Failure::new(
                "NoSenderKeyState",
                "no sender key for this group; send skdm first",
            )
        })?;
        let message = record
            .encrypt(group, &plaintext, &mut rand::rng())
            .map_err(Failure::from_error)?;
        Ok(json!({"type": "senderkey", "body": B64.encode(message.serialized())}))
    }

    fn group_decrypt(&mut self, request: &Value) -> Reply {
        let sender = text(request, "sender")?.to_owned();
        let device_id = device(request)?;
        let message =
            SenderKeyMessage::deserialize(&bytes(request, "body")?).map_err(Failure::from_error)?;
        let record = self
            .sender_keys
            .get_mut(&(sender, device_id, message.distribution_id()))
            .ok_or_else(|| {
                Failure::new(
                    "NoSenderKeyState",
                    "no sender key from this sender for this group",
                )
            })?;
        let plaintext = record.decrypt(&message).map_err(Failure::from_error)?;
        Ok(json!({"plaintext": B64.encode(plaintext)}))
    }

    fn init(&mut self, request: &Value) -> Reply {
        let mut rng = rand::rng();
        if let Some(kyber) = flag(request, "kyber") {
            self.options.kyber = kyber;
        }
        let identity = IdentityKeyPair::generate(&mut rng);
        let registration_id = match request.get("registration_id") {
            Some(_) => number(request, "registration_id")?,
            None => rand::random::<u32>() & 0x3fff,
        };
        let account = Account {
            name: text(request, "name")?.to_owned(),
            device_id: device(request)?,
            registration_id,
            keys: InMemoryPreKeys::generate(&identity, now(), &mut rng),
            identity,
            next_pre_key_id: 1,
        };
        let reply = json!({
            "identity_key": B64.encode(account.identity.identity_key().serialize()),
            "registration_id": account.registration_id,
        });
        self.account = Some(account);
        Ok(reply)
    }

    fn bundle(&mut self, request: &Value) -> Reply {
        let kyber = flag(request, "kyber").unwrap_or(self.options.kyber);
        let no_prekey = flag(request, "no_prekey").unwrap_or(false);
        let account = self
            .account
            .as_mut()
            .ok_or_else(|| Failure::new("NotInitialized", "send init first"))?;
        // Each call mints a fresh one-time pre-key; the signed and Kyber pre-keys are reused.
        let one_time = (!no_prekey).then(|| {
            let id = account.next_pre_key_id;
            account.next_pre_key_id += 1;
            account.keys.add_one_time(id, &mut rand::rng());
            id
        });
        let bundle = account
            .keys
            .bundle(
                &account.identity,
                account.registration_id,
                account.device_id,
                one_time,
                kyber,
            )
            .ok_or_else(|| Failure::new("NotInitialized", "no signed pre-key"))?;
        let mut reply = json!({
            "registration_id": bundle.registration_id,
            "device_id": bundle.device_id,
            "identity_key": B64.encode(bundle.identity_key.serialize()),
            "signed_prekey_id": bundle.signed_pre_key_id,
            "signed_prekey": B64.encode(bundle.signed_pre_key.serialize()),
            "signed_prekey_signature": B64.encode(&bundle.signed_pre_key_signature),
        });
        if let Some((id, key)) = bundle.pre_key {
            reply["prekey_id"] = json!(id);
            reply["prekey"] = json!(B64.encode(key.serialize()));
        }
        if let Some(kyber) = &bundle.kyber_pre_key {
            reply["kyber_prekey_id"] = json!(kyber.id);
            reply["kyber_prekey"] = json!(B64.encode(kyber.key.serialize()));
            reply["kyber_prekey_signature"] = json!(B64.encode(&kyber.signature));
        }
        Ok(reply)
    }

    fn process_bundle(&mut self, request: &Value) -> Reply {
        let name = text(request, "peer")?.to_owned();
        let device_id = device(request)?;
        let bundle = parse_bundle(field(request, "bundle")?)?;
        let mut verified = bundle.verify().map_err(Failure::from_error)?;
        if !self.options.kyber {
            verified = verified.without_kyber();
        }
        self.check_identity(&name, &verified.bundle().identity_key)?;
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| Failure::new("NotInitialized", "send init first"))?;
        let mut rng = rand::rng();
        let record = self.sessions.entry((name, device_id)).or_default();
        session::process_bundle(
            record,
            &account.identity,
            account.registration_id,
            &verified,
            now(),
            &mut rng,
        )
        .map_err(Failure::from_error)?;
        Ok(json!({"ok": true}))
    }

    fn encrypt(&mut self, request: &Value) -> Reply {
        let key = (text(request, "peer")?.to_owned(), device(request)?);
        let plaintext = bytes(request, "plaintext")?;
        let options = EncryptOptions {
            legacy_version_byte: self.options.legacy_version_byte,
        };
        let record = self
            .sessions
            .get_mut(&key)
            .ok_or_else(|| Failure::new("NoSession", "no session with this peer"))?;
        let message =
            session::encrypt(record, &plaintext, options, now()).map_err(Failure::from_error)?;
        let kind = if message.type_number() == 3 {
            "prekey"
        } else {
            "whisper"
        };
        Ok(json!({"type": kind, "body": B64.encode(message.serialized())}))
    }

    fn decrypt(&mut self, request: &Value) -> Reply {
        let name = text(request, "peer")?.to_owned();
        let device_id = device(request)?;
        let body = bytes(request, "body")?;
        let account = self.account()?;
        let expected = address_binding(
            &ProtocolAddress::new(name.clone(), device_id),
            &ProtocolAddress::new(account.name.clone(), account.device_id),
        );
        let mut rng = rand::rng();
        let plaintext = match text(request, "type")? {
            "prekey" => {
                let message =
                    PreKeySignalMessage::deserialize(&body).map_err(Failure::from_error)?;
                self.check_identity(&name, message.identity_key())?;
                let account = self
                    .account
                    .as_mut()
                    .ok_or_else(|| Failure::new("NotInitialized", "send init first"))?;
                let record = self.sessions.entry((name, device_id)).or_default();
                let outcome = session::decrypt_pre_key(
                    record,
                    &account.identity,
                    account.registration_id,
                    &account.keys,
                    &message,
                    expected.as_ref(),
                    &mut rng,
                )
                .map_err(Failure::from_error)?;
                account.keys.consume(&outcome);
                outcome.plaintext
            }
            "whisper" => {
                let message = SignalMessage::deserialize(&body).map_err(Failure::from_error)?;
                let record = self
                    .sessions
                    .get_mut(&(name, device_id))
                    .ok_or_else(|| Failure::new("NoSession", "no session with this peer"))?;
                session::decrypt(record, &message, expected.as_ref(), &mut rng)
                    .map_err(Failure::from_error)?
            }
            other => {
                return Err(Failure::new(
                    "BadRequest",
                    format!("unknown message type {other:?}"),
                ));
            }
        };
        Ok(json!({"plaintext": B64.encode(plaintext)}))
    }
}

/// A UUID string (with or without dashes) as 16 bytes.
fn uuid(text: &str) -> Result<DistributionId, Failure> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(Failure::new(
            "BadRequest",
            format!("{text:?} is not a UUID"),
        ));
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Failure::new("BadRequest", format!("{text:?} is not a UUID")))?;
    }
    Ok(DistributionId::from_bytes(bytes))
}

/// A stable identifier in the requested encoding (`utf8`, `uuid`, `hex` or `b64`).
fn identifier(request: &Value, field_name: &str) -> Result<Vec<u8>, Failure> {
    let value = text(request, field_name)?;
    let encoding = request
        .get("id_encoding")
        .and_then(Value::as_str)
        .unwrap_or("utf8");
    let bad = || {
        Failure::new(
            "BadRequest",
            format!("{field_name:?} is not valid {encoding}"),
        )
    };
    match encoding {
        "utf8" => Ok(value.as_bytes().to_vec()),
        "uuid" => Ok(uuid(value)?.as_bytes().to_vec()),
        "hex" => (0..value.len())
            .step_by(2)
            .map(|i| {
                value
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad),
        "b64" => B64.decode(value).map_err(|_| bad()),
        other => Err(Failure::new(
            "BadRequest",
            format!("unknown id_encoding {other:?}"),
        )),
    }
}

fn fingerprint(request: &Value, account: &Account) -> Reply {
    let local_key = match request.get("local_identity") {
        Some(Value::String(_)) => IdentityKey::deserialize(&bytes(request, "local_identity")?)
            .map_err(Failure::from_error)?,
        _ => *account.identity.identity_key(),
    };
    let peer_key =
        IdentityKey::deserialize(&bytes(request, "peer_identity")?).map_err(Failure::from_error)?;
    let iterations = match request.get("iterations") {
        Some(_) => Iterations::new(number(request, "iterations")?).map_err(Failure::from_error)?,
        None => Iterations::DEFAULT,
    };
    let version = match request.get("version") {
        None => ScannableVersion::V2,
        Some(_) => match number(request, "version")? {
            1 => ScannableVersion::V1,
            2 => ScannableVersion::V2,
            other => {
                return Err(Failure::new(
                    "BadRequest",
                    format!("scannable version {other} is not 1 or 2"),
                ));
            }
        },
    };
    let local_id = identifier(request, "local_id")?;
    let peer_id = identifier(request, "peer_id")?;
    let fingerprint = Fingerprint::new(
        version,
        iterations,
        Party {
            stable_id: &local_id,
            identity_key: &local_key.serialize(),
        },
        Party {
            stable_id: &peer_id,
            identity_key: &peer_key.serialize(),
        },
    );
    let scannable = fingerprint.scannable();
    let mut reply = json!({
        "displayable": fingerprint.displayable().to_string(),
        "scannable": B64.encode(scannable.to_bytes()),
    });
    if request.get("compare_with").is_some() {
        let theirs = bytes(request, "compare_with")?;
        reply["matches"] = json!(scannable.compare(&theirs).map_err(Failure::from_error)?);
    }
    Ok(reply)
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        kyber: true,
        legacy_version_byte: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-kyber" => options.kyber = false,
            "--version-byte" => match args.next().as_deref() {
                Some("0x33") => options.legacy_version_byte = true,
                Some("0x34") => options.legacy_version_byte = false,
                other => return Err(format!("--version-byte takes 0x33 or 0x34, not {other:?}")),
            },
            "--help" | "-h" => {
                return Err("usage: confianza-peer [--no-kyber] [--version-byte 0x33]\n\
                     One Signal-protocol party over JSON lines (see shared/protocol/PEER.md)."
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mut peer = Peer {
        options,
        account: None,
        identities: HashMap::new(),
        sessions: HashMap::new(),
        sender_keys: HashMap::new(),
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => peer.handle(&request),
            Err(e) => Err(Failure::new("BadRequest", format!("not JSON: {e}"))),
        };
        let out = match reply {
            Ok(value) => value,
            Err(failure) if failure.unsupported => {
                json!({"error": failure.message, "unsupported": true})
            }
            Err(failure) => json!({"error": failure.message, "name": failure.name}),
        };
        if writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}
