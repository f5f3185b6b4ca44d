//! The account: enrollment (`init`), opening a profile, the server link, prekey stock and
//! certificate renewal.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use confianza_api::{
    self as api, DeviceSelector, EnrollRequest, Notice, PreKeyCount, PreKeyUpload, RequestBody,
    ResponseBody,
};
use confianza_noise::{ServerKeyRejected, StaticKeyPair};
use confianza_pki::path::is_valid_dns_name;
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use rand_core::CryptoRng;

use crate::connection::{Connection, ConnectionError, RequestError, task_rng};
use crate::limits::{KYBER_PREKEY_BATCH, ONE_TIME_PREKEY_BATCH, PREKEY_LOW_WATERMARK};
use crate::sealing::Passphrase;
use crate::store::{AccountRecord, DATABASE_FILE, KEY_FILE, Protection, Store, StoreError};
use crate::trust::{FirstContact, PinnedCa, RevocationInfo, TrustError, TrustedServer};

/// The first wait before reconnecting.
pub const RECONNECT_INITIAL_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest wait between reconnection attempts.
pub const RECONNECT_MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(30);

/// Counter names for prekey ids.
const ONE_TIME_IDS: &str = "one_time_pre_key";
const KYBER_IDS: &str = "kyber_pre_key";
const SIGNED_IDS: &str = "signed_pre_key";

/// What went wrong in a client operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The server failed its check in the Noise handshake (its certificate, its CA chain, the
    /// root's fingerprint), so nothing was sent to it: no request, no enrollment code.
    #[error("server refused before anything was sent to it: {0}")]
    ServerRefused(TrustError),
    /// The profile has no enrolled account.
    #[error("this profile is not enrolled: run init first")]
    NotEnrolled,
    /// Not connected to the server.
    #[error("not connected to the server")]
    NotConnected,
    /// The server address is not `HOST:PORT`.
    #[error("invalid server address {0:?}: expected HOST:PORT")]
    BadServerAddress(String),
    /// The server issued a certificate that does not certify this device's identity key.
    #[error("the server returned a certificate for another key")]
    WrongCertificate,
    /// An argument is out of its limits (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// The server broke the protocol (the message says how).
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
}

/// How to create a profile.
#[derive(Debug)]
pub struct InitOptions {
    /// The profile directory (see [`crate::profile::profile_dir`]).
    pub dir: PathBuf,
    /// How to protect the store key.
    pub protection: Protection,
    /// `HOST:PORT` of the Noise service.
    pub server: String,
    /// The DNS name in the server's certificate; by default the host when it is a name, else
    /// the name the certificate carries.
    pub server_name: Option<String>,
    /// The account address, `user@domain`.
    pub address: String,
    /// The enrollment code the RA gave out of band.
    pub code: String,
    /// The root's SHA-256 fingerprint, when the user has it (else trust on first use).
    pub expected_ca_fingerprint: Option<String>,
}

/// What `init` tells the user.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub address: String,
    pub device_id: u32,
    /// SHA-256 of the pinned root, hex: compare it out of band.
    pub root_fingerprint: String,
    /// Whether the fingerprint was checked against one the user gave.
    pub fingerprint_checked: bool,
}

/// An enrolled client with its open store.
pub struct Client {
    pub(crate) store: Store,
    pub(crate) account: AccountRecord,
    pub(crate) identity: IdentityKeyPair,
    pub(crate) device_key: StaticKeyPair,
    pub(crate) ca: PinnedCa,
    pub(crate) revocation: RevocationInfo,
    pub(crate) connection: Option<Connection>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.account.address)
            .field("device_id", &self.account.device_id)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn split_host(server: &str) -> Result<&str, ClientError> {
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| ClientError::BadServerAddress(server.to_owned()))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(ClientError::BadServerAddress(server.to_owned()));
    }
    Ok(host.trim_start_matches('[').trim_end_matches(']'))
}

/// Fresh prekeys to publish, with the records to keep.
struct MintedPreKeys {
    signed: Option<SignedPreKeyRecord>,
    one_time: Vec<PreKeyRecord>,
    kyber: Vec<KyberPreKeyRecord>,
    kyber_last_resort: Option<KyberPreKeyRecord>,
}

impl MintedPreKeys {
    fn upload(&self) -> Result<PreKeyUpload, ClientError> {
        let kyber = |record: &KyberPreKeyRecord| {
            let public_key =
                api::KyberPublicKey::from_slice(&record.key_pair.public.serialize())
                    .ok_or_else(|| ClientError::Invalid("Kyber key of unexpected length".into()))?;
            Ok::<_, ClientError>(api::KyberPreKey {
                id: record.id,
                public_key,
                signature: record.signature,
            })
        };
        Ok(PreKeyUpload {
            signed_pre_key: self.signed.as_ref().map(|record| api::SignedPreKey {
                id: record.id,
                public_key: record.key_pair.public.serialize(),
                signature: record.signature,
            }),
            one_time_pre_keys: self
                .one_time
                .iter()
                .map(|record| api::OneTimePreKey {
                    id: record.id,
                    public_key: record.key_pair.public.serialize(),
                })
                .collect(),
            kyber_pre_keys: self.kyber.iter().map(kyber).collect::<Result<_, _>>()?,
            kyber_last_resort: self.kyber_last_resort.as_ref().map(kyber).transpose()?,
        })
    }

    async fn save(&self, store: &Store) -> Result<(), StoreError> {
        if let Some(signed) = &self.signed {
            store.save_signed_pre_key(signed).await?;
        }
        store.save_one_time_pre_keys(&self.one_time).await?;
        store.save_kyber_pre_keys(&self.kyber, false).await?;
        if let Some(last_resort) = &self.kyber_last_resort {
            store
                .save_kyber_pre_keys(std::slice::from_ref(last_resort), true)
                .await?;
        }
        Ok(())
    }
}

/// Mints prekeys with ids from the store's counters.
async fn mint(
    store: &Store,
    identity: &IdentityKeyPair,
    signed: bool,
    one_time: usize,
    kyber: usize,
    last_resort: bool,
) -> Result<MintedPreKeys, StoreError> {
    let now = now_ms() / 1000;
    let signed_id = match signed {
        true => Some(store.allocate_ids(SIGNED_IDS, 1).await?),
        false => None,
    };
    let first_one_time = store.allocate_ids(ONE_TIME_IDS, one_time as u32).await?;
    let kyber_count = kyber + usize::from(last_resort);
    let first_kyber = store.allocate_ids(KYBER_IDS, kyber_count as u32).await?;
    let mut rng = task_rng();
    let minted = MintedPreKeys {
        signed: signed_id.map(|id| SignedPreKeyRecord::generate(id, identity, now, &mut rng)),
        one_time: (0..one_time as u32)
            .map(|i| PreKeyRecord::generate(first_one_time + i, &mut rng))
            .collect(),
        kyber: (0..kyber as u32)
            .map(|i| KyberPreKeyRecord::generate(first_kyber + i, identity, now, &mut rng))
            .collect(),
        kyber_last_resort: last_resort.then(|| {
            KyberPreKeyRecord::generate(first_kyber + kyber as u32, identity, now, &mut rng)
        }),
    };
    Ok(minted)
}

/// A registration id in Signal's range.
fn registration_id(rng: &mut impl CryptoRng) -> u32 {
    let mut bytes = [0u8; 4];
    rng.fill_bytes(&mut bytes);
    api::limits::MIN_REGISTRATION_ID
        + u32::from_le_bytes(bytes)
            % (api::limits::MAX_REGISTRATION_ID - api::limits::MIN_REGISTRATION_ID + 1)
}

/// Removes what a failed `init` created, so the user can try again.
fn remove_created(dir: &Path) {
    for name in [
        DATABASE_FILE.to_owned(),
        format!("{DATABASE_FILE}-wal"),
        format!("{DATABASE_FILE}-shm"),
        KEY_FILE.to_owned(),
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

impl Client {
    /// Creates a profile and enrolls it: keys are generated and stored sealed, the device
    /// connects (Noise XX) and authenticates the server in the handshake with the CA chain it
    /// presents ([`FirstContact`]: the root checked against `expected_ca_fingerprint` when
    /// given, else trusted on first use), then enrolls with the code and pins that root. A
    /// server refused in the handshake never sees the code. On failure, the files created here
    /// are removed.
    pub async fn init(options: InitOptions) -> Result<(Self, Enrollment), ClientError> {
        let host = split_host(&options.server)?.to_owned();
        if options.address.len() > api::limits::MAX_ADDRESS_LEN || !options.address.contains('@') {
            return Err(ClientError::Invalid(format!(
                "invalid address {:?}: expected user@domain",
                options.address
            )));
        }
        let mut rng = task_rng();
        let store = Store::create(&options.dir, &options.protection, &mut rng).await?;
        match Self::enroll(store, &options, &host).await {
            Ok(done) => Ok(done),
            Err(error) => {
                remove_created(&options.dir);
                Err(error)
            }
        }
    }

    async fn enroll(
        store: Store,
        options: &InitOptions,
        host: &str,
    ) -> Result<(Self, Enrollment), ClientError> {
        let mut rng = task_rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let device_key = StaticKeyPair::generate(&mut rng);
        let registration_id = registration_id(&mut rng);
        store
            .save_device_secrets(&identity, &device_key.secret_bytes())
            .await?;
        let minted = mint(
            &store,
            &identity,
            true,
            ONE_TIME_PREKEY_BATCH,
            KYBER_PREKEY_BATCH,
            true,
        )
        .await?;
        minted.save(&store).await?;

        // First contact: nothing is pinned yet. The server is checked in the handshake with the
        // chain it presents, before anything (the code above all) is sent.
        let named = options.server_name.clone().or_else(|| {
            (host.parse::<std::net::IpAddr>().is_err() && is_valid_dns_name(host))
                .then(|| host.to_owned())
        });
        let first_contact = FirstContact::new(named, options.expected_ca_fingerprint.clone());
        let connected =
            Connection::connect(&options.server, &device_key, None, &first_contact).await;
        let (connection, TrustedServer { ca, server_name }) =
            match (connected, first_contact.outcome()) {
                (Ok(connection), Some(Ok(trusted))) => (connection, trusted),
                // The server was refused: say why in the trust layer's words.
                (Err(_), Some(Err(refusal))) => return Err(ClientError::ServerRefused(refusal)),
                (Err(error), _) => return Err(error.into()),
                (Ok(_), _) => {
                    return Err(ClientError::Protocol(
                        "the handshake completed without presenting the server's certificate"
                            .into(),
                    ));
                }
            };
        let challenge = match connection.request(RequestBody::EnrollChallenge).await? {
            ResponseBody::EnrollChallenge { challenge, .. } => challenge,
            _ => return Err(RequestError::UnexpectedResponse.into()),
        };
        let identity_public = identity.identity_key().serialize();
        let noise_public = *device_key.public_key().as_bytes();
        let proof_message = api::proof_message(
            &options.address,
            &challenge,
            &identity_public,
            &noise_public,
        );
        let proof = identity.sign(&proof_message, &mut rng);
        let request = EnrollRequest {
            address: options.address.clone(),
            enrollment_code: options.code.clone(),
            registration_id,
            device_noise_key: noise_public,
            identity_key: identity_public,
            challenge,
            proof,
            pre_keys: minted.upload()?,
        };
        let (device_id, certificate, ca_chain) = match connection
            .request(RequestBody::Enroll(Box::new(request)))
            .await?
        {
            ResponseBody::Enrolled {
                device_id,
                identity_certificate,
                ca_chain,
            } => (device_id, identity_certificate, ca_chain),
            _ => return Err(RequestError::UnexpectedResponse.into()),
        };
        // The root stays the one checked in the handshake; the enrollment's chain brings the
        // CA certificates that issued the identity certificate.
        let (enrollment_root, intermediates) =
            ca_chain.split_last().ok_or(TrustError::NoCaChain)?;
        if enrollment_root.as_slice() != ca.root_der() {
            return Err(ClientError::Protocol(
                "the enrollment's CA chain ends at another root than the handshake's".into(),
            ));
        }
        let ca = PinnedCa::from_der(ca.root_der(), intermediates)?;
        let server_key = connection.server_key();
        let (certified, _) = ca.verify_identity_certificate(
            &certificate,
            &options.address,
            None,
            &RevocationInfo::default(),
            SystemTime::now(),
        )?;
        if &certified != identity.identity_key().public_key().u() {
            return Err(ClientError::WrongCertificate);
        }
        let account = AccountRecord {
            address: options.address.clone(),
            device_id,
            registration_id,
            server: options.server.clone(),
            server_name,
            server_key: Some(server_key),
            certificate,
            enrolled_at_ms: now_ms(),
        };
        store
            .save_account(&account, ca.root_der(), &ca.intermediates_der())
            .await?;
        let enrollment = Enrollment {
            address: account.address.clone(),
            device_id,
            root_fingerprint: ca.root_fingerprint(),
            fingerprint_checked: options.expected_ca_fingerprint.is_some(),
        };
        Ok((
            Self {
                store,
                account,
                identity,
                device_key,
                ca,
                revocation: RevocationInfo::default(),
                connection: Some(connection),
            },
            enrollment,
        ))
    }

    /// Opens an enrolled profile. `passphrase` is asked only if the store has one.
    pub async fn open(
        dir: &Path,
        passphrase: impl FnOnce() -> Option<Passphrase>,
    ) -> Result<Self, ClientError> {
        let store = Store::open(dir, passphrase).await?;
        match Self::load(&store).await {
            Ok((account, identity, device_key, ca)) => Ok(Self {
                store,
                account,
                identity,
                device_key,
                ca,
                revocation: RevocationInfo::default(),
                connection: None,
            }),
            Err(error) => {
                // Closed, not dropped: a dropped pool leaves `-wal` and `-shm` files behind.
                store.close().await;
                Err(error)
            }
        }
    }

    /// What [`Client::open`] reads from an open store.
    async fn load(
        store: &Store,
    ) -> Result<(AccountRecord, IdentityKeyPair, StaticKeyPair, PinnedCa), ClientError> {
        let account = store.account().await?.ok_or(ClientError::NotEnrolled)?;
        let identity = store.identity().await?;
        let device_key = StaticKeyPair::from_secret_bytes(*store.noise_secret().await?);
        let ca_certificates = store.ca_certificates().await?;
        let (root, chain) = ca_certificates
            .split_first()
            .ok_or_else(|| StoreError::Corrupt("no pinned root".into()))?;
        let ca = PinnedCa::from_der(root, chain)?;
        Ok((account, identity, device_key, ca))
    }

    /// The account.
    pub fn account(&self) -> &AccountRecord {
        &self.account
    }

    /// The local store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The pinned CA.
    pub fn pinned_ca(&self) -> &PinnedCa {
        &self.ca
    }

    /// Replaces the CRLs used when no stapled OCSP response speaks (fetched from the
    /// repository by the caller).
    pub fn set_revocation_info(&mut self, revocation: RevocationInfo) {
        self.revocation = revocation;
    }

    /// Connects (IK with the cached server key) and checks the server's certificate against
    /// the pinned root; then tops up the prekey stock if it runs low. A server refused by that
    /// check is a [`ClientError::ServerRefused`] (not worth retrying), not a connection
    /// failure.
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        self.connection = None;
        let ca = &self.ca;
        let name = self.account.server_name.clone();
        let refusal = std::sync::Mutex::new(None);
        let verifier = |key: &confianza_noise::PublicKey, payload: &[u8]| {
            ca.verify_server_payload(key.as_bytes(), payload, &name, SystemTime::now())
                .map_err(|error| {
                    let rejected = ServerKeyRejected::new(error.to_string());
                    *refusal
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                    rejected
                })
        };
        let connected = Connection::connect(
            &self.account.server,
            &self.device_key,
            self.account.server_key,
            &verifier,
        )
        .await;
        let refusal = refusal
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let connection = match (connected, refusal) {
            (Ok(connection), _) => connection,
            (Err(_), Some(refusal)) => return Err(ClientError::ServerRefused(refusal)),
            (Err(error), None) => return Err(error.into()),
        };
        let server_key = connection.server_key();
        if self.account.server_key != Some(server_key) {
            self.store.set_server_key(&server_key).await?;
            self.account.server_key = Some(server_key);
        }
        self.connection = Some(connection);
        let count = match self.request(RequestBody::GetPreKeyCount).await? {
            ResponseBody::PreKeyCount(count) => count,
            _ => return Err(RequestError::UnexpectedResponse.into()),
        };
        self.replenish_pre_keys(count).await?;
        Ok(())
    }

    /// Connects again after the link dropped, waiting [`RECONNECT_INITIAL_DELAY`] and then
    /// twice as long after each failure (at most [`RECONNECT_MAX_DELAY`]), `attempts` times.
    /// Nothing is lost meanwhile: the server keeps every unacknowledged delivery and pushes it
    /// again, and the store drops what it already has (same sender and message id).
    pub async fn reconnect(&mut self, attempts: u32) -> Result<(), ClientError> {
        let mut delay = RECONNECT_INITIAL_DELAY;
        let mut last = None;
        for _ in 0..attempts {
            match self.connect().await {
                Ok(()) => return Ok(()),
                Err(error @ (ClientError::Connection(_) | ClientError::Request(_))) => {
                    tracing::info!(%error, ?delay, "reconnecting");
                    last = Some(error);
                }
                Err(other) => return Err(other),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX_DELAY);
        }
        Err(last.unwrap_or(ClientError::NotConnected))
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Drops the connection.
    pub fn disconnect(&mut self) {
        self.connection = None;
    }

    /// Disconnects gracefully: the acknowledgements already queued reach the server before
    /// the connection closes (call this before the program exits).
    pub async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.close().await;
        }
    }

    /// Closes the connection as [`Client::close`] does, then the store: the last connection
    /// to close checkpoints SQLite's write-ahead log into the database file and removes the
    /// `-wal` and `-shm` files, so a profile at rest is one database file (and its key file).
    pub async fn shutdown(mut self) {
        self.close().await;
        self.store.close().await;
    }

    pub(crate) fn connection(&self) -> Result<&Connection, ClientError> {
        self.connection.as_ref().ok_or(ClientError::NotConnected)
    }

    /// Sends a request on the open connection.
    pub async fn request(&self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        Ok(self.connection()?.request(body).await?)
    }

    /// Uploads fresh prekeys where the server's stock (`count`) runs low.
    pub async fn replenish_pre_keys(&self, count: PreKeyCount) -> Result<bool, ClientError> {
        let one_time = if count.one_time < PREKEY_LOW_WATERMARK {
            ONE_TIME_PREKEY_BATCH
        } else {
            0
        };
        let kyber = if count.kyber_one_time < PREKEY_LOW_WATERMARK.min(KYBER_PREKEY_BATCH as u32) {
            KYBER_PREKEY_BATCH
        } else {
            0
        };
        let last_resort = count.kyber_last_resort_used;
        if one_time == 0 && kyber == 0 && !last_resort {
            return Ok(false);
        }
        let minted = mint(
            &self.store,
            &self.identity,
            false,
            one_time,
            kyber,
            last_resort,
        )
        .await?;
        // Kept before they are published: a key the server hands out must be here.
        minted.save(&self.store).await?;
        match self
            .request(RequestBody::UploadPreKeys(minted.upload()?))
            .await?
        {
            ResponseBody::PreKeyCount(_) => Ok(true),
            _ => Err(RequestError::UnexpectedResponse.into()),
        }
    }

    /// Renews the identity certificate for the same identity key.
    pub async fn renew_certificate(&mut self) -> Result<u64, ClientError> {
        let challenge = match self.request(RequestBody::EnrollChallenge).await? {
            ResponseBody::EnrollChallenge { challenge, .. } => challenge,
            _ => return Err(RequestError::UnexpectedResponse.into()),
        };
        let identity_key = self.identity.identity_key().serialize();
        let message = api::proof_message(
            &self.account.address,
            &challenge,
            &identity_key,
            self.device_key.public_key().as_bytes(),
        );
        let proof = self.identity.sign(&message, &mut task_rng());
        let request = api::RenewCertificateRequest {
            identity_key,
            challenge,
            proof,
            pre_keys: PreKeyUpload::default(),
        };
        let (certificate, chain) = match self
            .request(RequestBody::RenewCertificate(Box::new(request)))
            .await?
        {
            ResponseBody::Certificate {
                identity_certificate,
                ca_chain,
            } => (identity_certificate, ca_chain),
            _ => return Err(RequestError::UnexpectedResponse.into()),
        };
        // The root stays pinned: a renewal never changes it.
        let intermediates = chain.split_last().map(|(_, rest)| rest).unwrap_or_default();
        let ca = PinnedCa::from_der(self.ca.root_der(), intermediates)?;
        let (certified, not_after) = ca.verify_identity_certificate(
            &certificate,
            &self.account.address,
            None,
            &self.revocation,
            SystemTime::now(),
        )?;
        if &certified != self.identity.identity_key().public_key().u() {
            return Err(ClientError::WrongCertificate);
        }
        self.store
            .set_certificate(&certificate, intermediates)
            .await?;
        self.account.certificate = certificate;
        self.ca = ca;
        Ok(not_after)
    }

    /// Acts on a notice: replenishes prekeys, renews the certificate. Returns whether it was
    /// the end of the backlog.
    pub async fn handle_notice(&mut self, notice: &Notice) -> Result<bool, ClientError> {
        match notice {
            Notice::PreKeysLow(count) => {
                self.replenish_pre_keys(*count).await?;
            }
            Notice::CertificateExpiring { .. } => {
                self.renew_certificate().await?;
            }
            Notice::MembershipChanged { group_id, revision } => {
                // Our chain was known to the old membership: the next send starts a new one.
                tracing::info!(?group_id, revision, "group membership changed");
                self.store
                    .reset_own_sender_key(
                        &self.account.address,
                        self.account.device_id,
                        &group_id.0,
                    )
                    .await?;
            }
            Notice::MailboxDrained => return Ok(true),
        }
        Ok(false)
    }

    /// Bundles of every device of `address` (the server claims one one-time prekey each).
    pub(crate) async fn fetch_bundles(
        &self,
        address: &str,
        device: DeviceSelector,
    ) -> Result<Vec<api::PreKeyBundle>, ClientError> {
        match self
            .request(RequestBody::FetchBundle {
                address: address.to_owned(),
                device,
            })
            .await?
        {
            ResponseBody::Bundles(bundles) => Ok(bundles),
            _ => Err(RequestError::UnexpectedResponse.into()),
        }
    }
}
