//! The real messaging service, started in-process on 127.0.0.1:0 from a data directory made by
//! the server's own `init` (with a local blob folder for attachments), and clients enrolled on
//! it with RA codes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use confianza_client::account::{Client, InitOptions};
use confianza_client::messaging::ClientEvent;
use confianza_client::sealing::Passphrase;
use confianza_client::store::{Protection, StoredMessage};
use confianza_client::trust::fingerprint_hex;
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use confianza_server::authority::Authority;
use confianza_server::authority::init::{InitOptions as ServerInit, init};
use confianza_server::service::{BlobStore, RunningService, ServiceOptions, start};
use confianza_server::store::{AnyMessageStore, Database};

/// How long a test waits for something that should happen (a 1 MiB attachment on a loaded
/// machine included).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The passphrase of every profile enrolled here.
const PASSPHRASE: &str = "correct horse battery";

pub struct Server {
    dir: tempfile::TempDir,
    pub authority: Authority,
    running: Option<RunningService>,
    pub address: SocketAddr,
}

impl Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerInit {
            organisation: "Example Org".into(),
            name: "chat.example.org".into(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec!["example.org".into()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".into(),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        };
        init(dir.path(), options, None, None).await.unwrap();
        let authority = Authority::open(dir.path(), None, None).await.unwrap();
        let database = Database::open_sqlite_file(&authority.layout().database())
            .await
            .unwrap();
        let noise = confianza_server::service::handshake::server_config(&authority).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut options = ServiceOptions::new(
            AnyMessageStore::new(&database).expect("message store"),
            Arc::new(authority.clone()),
            noise,
            any,
            any,
        );
        options.blobs = Some(BlobStore::local(&dir.path().join("blobs")).unwrap());
        let running = start(options).await.unwrap();
        Self {
            address: running.noise_addr,
            running: Some(running),
            dir,
            authority,
        }
    }

    /// A fresh enrollment code for `address`.
    pub async fn code(&self, address: &str) -> String {
        self.authority
            .create_enrollment_code(address, Duration::from_secs(3600), SystemTime::now())
            .await
            .unwrap()
            .as_str()
            .to_owned()
    }

    pub fn root_fingerprint(&self) -> String {
        fingerprint_hex(self.authority.root_der())
    }

    /// How `init` enrolls `address` in the profile `dir` with `code`: passphrase-protected,
    /// trusting the server's root on first use.
    pub fn options(&self, dir: &Path, address: &str, code: String) -> InitOptions {
        InitOptions {
            dir: dir.to_owned(),
            protection: Protection::Passphrase(
                Passphrase::new(PASSPHRASE).unwrap(),
                SealParams::INSECURE_FOR_TESTS,
            ),
            server: self.address.to_string(),
            server_name: None,
            address: address.into(),
            code,
            expected_ca_fingerprint: None,
        }
    }

    /// Enrolls `address` in the profile `home/ADDRESS`.
    pub async fn enroll(&self, home: &Path, address: &str) -> Client {
        let code = self.code(address).await;
        let (client, _) = Client::init(self.options(&home.join(address), address, code))
            .await
            .unwrap();
        client
    }

    /// Enrolls each of `addresses` ([`Server::enroll`]), connects it again and drains what the
    /// server queued for it at enrollment.
    pub async fn connected<const N: usize>(
        &self,
        home: &Path,
        addresses: [&str; N],
    ) -> [Client; N] {
        let mut clients = Vec::with_capacity(N);
        for address in addresses {
            let mut client = self.enroll(home, address).await;
            client.connect().await.unwrap();
            drain(&mut client).await;
            clients.push(client);
        }
        clients.try_into().ok().unwrap()
    }

    /// Every stored chunk file of every blob, in name order.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.dir.path().join("blobs"), &mut files);
        files.sort();
        files
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// The passphrase of the profiles [`Server::options`] makes, as `Client::open` asks for it.
pub fn passphrase() -> Option<Passphrase> {
    Some(Passphrase::new(PASSPHRASE).unwrap())
}

/// The next stored message, skipping receipts and the end-of-backlog notice.
pub async fn next_message(client: &mut Client) -> StoredMessage {
    let wait = async {
        loop {
            match client.next_event().await.unwrap() {
                ClientEvent::Message(message) => return message,
                ClientEvent::Disconnected(reason) => panic!("disconnected: {reason}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("a message in time")
}

/// Receives until the backlog is drained.
pub async fn drain(client: &mut Client) -> Vec<ClientEvent> {
    tokio::time::timeout(PATIENCE, client.receive_pending())
        .await
        .expect("drained in time")
        .unwrap()
}
