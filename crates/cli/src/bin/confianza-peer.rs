//! `confianza-peer`: one Signal-protocol party with in-memory state, driven by JSON lines on
//! standard input (one request per line, one reply per line). See `shared/protocol/PEER.md`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use confianza_protocol::address::{ProtocolAddress, address_binding};
use confianza_protocol::kem::KemPublicKey;
use confianza_protocol::keys::{IdentityKey, IdentityKeyPair, PublicKey};
use confianza_protocol::message::{PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::{
    KyberPreKeyPublic, KyberPreKeyRecord, PreKeyBundle, PreKeyRecord, SignedPreKeyRecord,
};
use confianza_protocol::session::{self, EncryptOptions, PreKeySource};
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
    signed_pre_key: SignedPreKeyRecord,
    kyber_pre_key: KyberPreKeyRecord,
    pre_keys: HashMap<u32, PreKeyRecord>,
    next_pre_key_id: u32,
}

impl PreKeySource for Account {
    fn signed_pre_key(&self, id: u32) -> Option<SignedPreKeyRecord> {
        (id == self.signed_pre_key.id).then(|| self.signed_pre_key.clone())
    }
    fn pre_key(&self, id: u32) -> Option<PreKeyRecord> {
        self.pre_keys.get(&id).cloned()
    }
    fn kyber_pre_key(&self, id: u32) -> Option<KyberPreKeyRecord> {
        (id == self.kyber_pre_key.id).then(|| self.kyber_pre_key.clone())
    }
}

struct Peer {
    options: Options,
    account: Option<Account>,
    /// Trust on first use: the identity key seen for each name.
    identities: HashMap<String, IdentityKey>,
    sessions: HashMap<(String, u32), SessionRecord>,
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
                "groups": false,
                "displayable_fingerprint": false,
                "scannable_fingerprint": false,
            })),
            "init" => self.init(request),
            "bundle" => self.bundle(request),
            "process_bundle" => self.process_bundle(request),
            "encrypt" => self.encrypt(request),
            "decrypt" => self.decrypt(request),
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
            signed_pre_key: SignedPreKeyRecord::generate(1, &identity, now(), &mut rng),
            kyber_pre_key: KyberPreKeyRecord::generate(1, &identity, now(), &mut rng),
            identity,
            pre_keys: HashMap::new(),
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
        let spk = &account.signed_pre_key;
        let mut reply = json!({
            "registration_id": account.registration_id,
            "device_id": account.device_id,
            "identity_key": B64.encode(account.identity.identity_key().serialize()),
            "signed_prekey_id": spk.id,
            "signed_prekey": B64.encode(spk.key_pair.public.serialize()),
            "signed_prekey_signature": B64.encode(spk.signature),
        });
        if !no_prekey {
            let id = account.next_pre_key_id;
            account.next_pre_key_id += 1;
            let record = PreKeyRecord::generate(id, &mut rand::rng());
            reply["prekey_id"] = json!(id);
            reply["prekey"] = json!(B64.encode(record.key_pair.public.serialize()));
            account.pre_keys.insert(id, record);
        }
        if kyber {
            let kyber = &account.kyber_pre_key;
            reply["kyber_prekey_id"] = json!(kyber.id);
            reply["kyber_prekey"] = json!(B64.encode(kyber.key_pair.public.serialize()));
            reply["kyber_prekey_signature"] = json!(B64.encode(kyber.signature));
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
                    &*account,
                    &message,
                    expected.as_ref(),
                    &mut rng,
                )
                .map_err(Failure::from_error)?;
                if let Some(id) = outcome.consumed_pre_key {
                    account.pre_keys.remove(&id);
                }
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
