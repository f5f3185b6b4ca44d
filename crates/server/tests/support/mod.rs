//! A test harness for the messaging service: a data directory made by the real `init`, the
//! service started in-process on 127.0.0.1:0, and a small client built from
//! `confianza_noise` and `confianza_api` that enrolls devices with real keys and talks the
//! protocol. Shared by the `service_*` test binaries.
#![allow(dead_code)]

pub mod blobs;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use confianza_api::{
    ApiError, ClientFrame, Delivery, EnrollRequest, KyberPreKey, KyberPublicKey, Notice,
    OneTimePreKey, PreKeyUpload, Request, RequestBody, Response, ResponseBody, ServerFrame,
    SignedPreKey, proof_message,
};
use confianza_noise::driver::{NoiseReader, NoiseWriter, connect};
use confianza_noise::{ClientConfig, PublicKey, ServerKeyRejected, StaticKeyPair};
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use confianza_protocol::kem::KemKeyPair;
use confianza_protocol::keys::{IdentityKeyPair, KeyPair};
use confianza_server::authority::Authority;
use confianza_server::authority::init::{InitOptions, init};
use confianza_server::service::{RunningService, ServiceOptions, start};
use confianza_server::store::{AnyMessageStore, Database};
use rand::rngs::StdRng;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A data directory with its CA, and the service running on it.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub authority: Authority,
    pub store: AnyMessageStore,
    pub running: Option<RunningService>,
    pub noise_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

impl TestServer {
    /// Initialises a data directory (no passphrase, Ed25519 CA, domain example.org) and
    /// starts the service on it.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`Self::start`], with the options adjusted by `adjust` (limits).
    pub async fn start_with(adjust: impl FnOnce(&mut ServiceOptions<AnyMessageStore>)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = InitOptions {
            organisation: "Example Org".to_owned(),
            name: "chat.example.org".to_owned(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec!["example.org".to_owned()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".to_owned(),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        };
        init(dir.path(), options, None, None).await.expect("init");
        let authority = Authority::open(dir.path(), None, None)
            .await
            .expect("open authority");
        let database = Database::open_sqlite_file(&authority.layout().database())
            .await
            .expect("database");
        let store = AnyMessageStore::new(&database).expect("message store");
        let noise =
            confianza_server::service::handshake::server_config(&authority).expect("noise config");
        let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let mut options = ServiceOptions::new(
            store.clone(),
            Arc::new(authority.clone()),
            noise,
            localhost,
            localhost,
        );
        adjust(&mut options);
        let running = start(options).await.expect("service starts");
        Self {
            noise_addr: running.noise_addr,
            http_addr: running.http_addr,
            dir,
            authority,
            store,
            running: Some(running),
        }
    }

    /// A one-time enrollment code for `address`, as `ra enroll-code` makes it.
    pub async fn enrollment_code(&self, address: &str) -> String {
        self.authority
            .create_enrollment_code(address, Duration::from_secs(3600), SystemTime::now())
            .await
            .expect("enrollment code")
            .as_str()
            .to_owned()
    }

    /// Graceful shutdown.
    pub async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Enrolls a new device of `address` with `one_time` EC and Kyber one-time prekeys.
    pub async fn enroll(&self, address: &str, one_time: u32) -> TestClient {
        let code = self.enrollment_code(address).await;
        let keys = DeviceKeys::generate(one_time);
        let mut client = TestClient::connect(self, keys.noise.clone()).await;
        client.enroll(address, &code, keys).await.expect("enrolled");
        client
    }
}

/// Everything a device generates for enrollment.
pub struct DeviceKeys {
    pub identity: IdentityKeyPair,
    pub noise: StaticKeyPair,
    pub registration_id: u32,
    pub upload: PreKeyUpload,
}

impl DeviceKeys {
    /// A device with `one_time` EC one-time prekeys and `min(one_time, 8)` Kyber ones (ids
    /// start at 1).
    pub fn generate(one_time: u32) -> Self {
        let mut rng = rand::rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let noise = StaticKeyPair::generate(&mut rng);
        let registration_id = 1 + rand::RngExt::random_range(&mut rng, 0..16_000);
        let upload = Self::pre_keys(&identity, 1, one_time, one_time.min(8), true);
        Self {
            identity,
            noise,
            registration_id,
            upload,
        }
    }

    /// Prekeys signed by `identity`: `ec` EC and `kyber` Kyber one-time keys from `first_id`,
    /// with a signed prekey and a last-resort Kyber key when `with_signed`.
    pub fn pre_keys(
        identity: &IdentityKeyPair,
        first_id: u32,
        ec: u32,
        kyber: u32,
        with_signed: bool,
    ) -> PreKeyUpload {
        let mut rng = rand::rng();
        let kyber_key = |id: u32, rng: &mut rand::rngs::ThreadRng| {
            let pair = KemKeyPair::generate(rng);
            let public = pair.public.serialize();
            KyberPreKey {
                id,
                signature: identity.sign(&public, rng),
                public_key: KyberPublicKey::from_slice(&public).expect("1569 bytes"),
            }
        };
        let signed_pre_key = with_signed.then(|| {
            let pair = KeyPair::generate(&mut rng);
            let public = pair.public.serialize();
            SignedPreKey {
                id: 1,
                public_key: public,
                signature: identity.sign(&public, &mut rng),
            }
        });
        PreKeyUpload {
            signed_pre_key,
            one_time_pre_keys: (first_id..first_id + ec)
                .map(|id| OneTimePreKey {
                    id,
                    public_key: KeyPair::generate(&mut rng).public.serialize(),
                })
                .collect(),
            kyber_pre_keys: (first_id..first_id + kyber)
                .map(|id| kyber_key(id, &mut rng))
                .collect(),
            kyber_last_resort: with_signed.then(|| kyber_key(1_000_000, &mut rng)),
        }
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub struct Closed {
    /// The last error frame received before the end, if any.
    pub error: Option<ApiError>,
}

/// A protocol client for tests.
pub struct TestClient {
    writer: NoiseWriter<WriteHalf<TcpStream>>,
    frames: mpsc::UnboundedReceiver<ServerFrame>,
    /// Frames received while waiting for something else.
    backlog: VecDeque<ServerFrame>,
    next_id: u64,
    pub keys: Option<DeviceKeys>,
    pub noise: StaticKeyPair,
    pub address: String,
    pub device_id: u32,
}

impl TestClient {
    /// Connects (Noise XX) with the device key `noise`; the server must present the data
    /// directory's Noise certificate in its handshake payload.
    pub async fn connect(server: &TestServer, noise: StaticKeyPair) -> Self {
        let expected = server.authority.noise_certificate_der();
        let verifier = move |_key: &PublicKey, payload: &[u8]| {
            match confianza_api::ServerHandshakePayload::decode(payload) {
                Ok(presented) if presented.certificate == expected => Ok(()),
                _ => Err(ServerKeyRejected::new("not the test server's certificate")),
            }
        };
        let socket = TcpStream::connect(server.noise_addr).await.expect("tcp");
        let mut rng: StdRng = rand::make_rng();
        let (stream, _server) = connect(
            socket,
            &ClientConfig::new(noise.clone()),
            None,
            &verifier,
            b"",
            &mut rng,
        )
        .await
        .expect("noise handshake");
        let (reader, writer) = stream.into_split();
        let (sender, frames) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(reader, sender));
        Self {
            writer,
            frames,
            backlog: VecDeque::new(),
            next_id: 1,
            keys: None,
            noise,
            address: String::new(),
            device_id: 0,
        }
    }

    /// Connects again with this client's keys (a reconnect).
    pub async fn reconnect(self, server: &TestServer) -> Self {
        let mut fresh = Self::connect(server, self.noise.clone()).await;
        fresh.keys = self.keys;
        fresh.address = self.address;
        fresh.device_id = self.device_id;
        fresh
    }

    /// Enrolls with `code`; keeps `keys`.
    pub async fn enroll(
        &mut self,
        address: &str,
        code: &str,
        keys: DeviceKeys,
    ) -> Result<ResponseBody, ApiError> {
        let request = self.enroll_request(address, code, &keys).await?;
        let answer = self.request(RequestBody::Enroll(Box::new(request))).await?;
        if let ResponseBody::Enrolled { device_id, .. } = &answer {
            self.device_id = *device_id;
            self.address = address.to_owned();
        }
        self.keys = Some(keys);
        Ok(answer)
    }

    /// A correctly signed enrollment request for this connection (a fresh challenge).
    pub async fn enroll_request(
        &mut self,
        address: &str,
        code: &str,
        keys: &DeviceKeys,
    ) -> Result<EnrollRequest, ApiError> {
        let ResponseBody::EnrollChallenge { challenge, .. } =
            self.request(RequestBody::EnrollChallenge).await?
        else {
            panic!("not a challenge");
        };
        let identity_key = keys.identity.identity_key().serialize();
        let noise_key = *keys.noise.public_key().as_bytes();
        let proof = keys.identity.sign(
            &proof_message(address, &challenge, &identity_key, &noise_key),
            &mut rand::rng(),
        );
        Ok(EnrollRequest {
            address: address.to_owned(),
            enrollment_code: code.to_owned(),
            registration_id: keys.registration_id,
            device_noise_key: noise_key,
            identity_key,
            challenge,
            proof,
            pre_keys: keys.upload.clone(),
        })
    }

    /// Sends a request and waits for its answer; other frames are kept for later.
    pub async fn request(&mut self, body: RequestBody) -> Result<ResponseBody, ApiError> {
        let id = self.send_request(body).await;
        self.response(id).await.result
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_request(&mut self, body: RequestBody) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&ClientFrame::request(id, body)).await;
        id
    }

    /// Waits for the response to request `id`.
    pub async fn response(&mut self, id: u64) -> Response {
        let frame = self
            .wait_for(|frame| matches!(frame, ServerFrame::Response(r) if r.id == id))
            .await;
        match frame {
            ServerFrame::Response(response) => response,
            _ => unreachable!(),
        }
    }

    /// The response to request `id`, or `None` if the connection closes first.
    pub async fn try_response(&mut self, id: u64) -> Option<Response> {
        let wanted = |frame: &ServerFrame| matches!(frame, ServerFrame::Response(r) if r.id == id);
        if let Some(position) = self.backlog.iter().position(wanted)
            && let Some(ServerFrame::Response(response)) = self.backlog.remove(position)
        {
            return Some(response);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(ServerFrame::Response(response))) if response.id == id => {
                    return Some(response);
                }
                Ok(Some(frame)) => self.backlog.push_back(frame),
                Ok(None) => return None,
                Err(_) => panic!("timed out waiting for response {id}"),
            }
        }
    }

    /// Waits for the next delivery.
    pub async fn delivery(&mut self) -> Delivery {
        match self
            .wait_for(|frame| matches!(frame, ServerFrame::Delivery(_)))
            .await
        {
            ServerFrame::Delivery(delivery) => delivery,
            _ => unreachable!(),
        }
    }

    /// Waits for a notice matching `wanted`.
    pub async fn notice(&mut self, wanted: impl Fn(&Notice) -> bool) -> Notice {
        match self
            .wait_for(|frame| matches!(frame, ServerFrame::Notice(n) if wanted(n)))
            .await
        {
            ServerFrame::Notice(notice) => notice,
            _ => unreachable!(),
        }
    }

    /// Deliveries until `MailboxDrained`, in order.
    pub async fn backlog_until_drained(&mut self) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        loop {
            let frame = self
                .wait_for(|frame| {
                    matches!(
                        frame,
                        ServerFrame::Delivery(_) | ServerFrame::Notice(Notice::MailboxDrained)
                    )
                })
                .await;
            match frame {
                ServerFrame::Delivery(delivery) => deliveries.push(delivery),
                _ => return deliveries,
            }
        }
    }

    /// No delivery arrives within [`QUIET`].
    pub async fn expect_no_delivery(&mut self) {
        assert!(
            !self
                .backlog
                .iter()
                .any(|frame| matches!(frame, ServerFrame::Delivery(_))),
            "a delivery is waiting"
        );
        if let Ok(Some(frame)) = tokio::time::timeout(QUIET, self.frames.recv()).await {
            assert!(
                !matches!(frame, ServerFrame::Delivery(_)),
                "unexpected delivery {frame:?}"
            );
            self.backlog.push_back(frame);
        }
    }

    /// Acknowledges deliveries.
    pub async fn ack(&mut self, delivery_ids: Vec<u64>) {
        self.send_frame(&ClientFrame::Ack { delivery_ids }).await;
    }

    /// Sends an encoded client frame.
    pub async fn send_frame(&mut self, frame: &ClientFrame) {
        let bytes = frame.encode().expect("frame encodes");
        self.send_raw(&bytes).await;
    }

    /// Sends arbitrary bytes as one encrypted transport message.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.send(bytes).await.expect("send");
    }

    /// Waits for the server to close the connection; returns the last error it sent.
    pub async fn closed(&mut self) -> Closed {
        let mut error = None;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        for frame in self.backlog.drain(..) {
            if let ServerFrame::Response(Response { result: Err(e), .. }) = frame {
                error = Some(e);
            }
        }
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(ServerFrame::Response(Response { result: Err(e), .. }))) => {
                    error = Some(e);
                }
                Ok(Some(_)) => {}
                Ok(None) => return Closed { error },
                Err(_) => panic!("the server did not close the connection"),
            }
        }
    }

    /// How the connection ended if the server closes it within `within`; `None` if it is
    /// still open then (frames received meanwhile are kept).
    pub async fn try_closed(&mut self, within: Duration) -> Option<Closed> {
        let mut error = None;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(frame)) => {
                    if let ServerFrame::Response(Response { result: Err(e), .. }) = &frame {
                        error = Some(e.clone());
                    }
                    self.backlog.push_back(frame);
                }
                Ok(None) => return Some(Closed { error }),
                Err(_) => return None,
            }
        }
    }

    async fn wait_for(&mut self, wanted: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        if let Some(position) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(position).expect("present");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(frame)) if wanted(&frame) => return frame,
                Ok(Some(frame)) => self.backlog.push_back(frame),
                Ok(None) => panic!("connection closed; backlog {:?}", self.backlog),
                Err(_) => panic!("timed out; backlog {:?}", self.backlog),
            }
        }
    }
}

async fn read_frames(
    mut reader: NoiseReader<ReadHalf<TcpStream>>,
    frames: mpsc::UnboundedSender<ServerFrame>,
) {
    while let Ok(Some(bytes)) = reader.recv().await {
        let frame = ServerFrame::decode(&bytes).expect("the server sends valid frames");
        if frames.send(frame).is_err() {
            return;
        }
    }
}

/// The request of a response, for readability in tests.
pub fn request(id: u64, body: RequestBody) -> Request {
    Request { id, body }
}
